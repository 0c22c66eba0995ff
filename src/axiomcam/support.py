"""What every part of axiomcam shares: its warning, progress reporting, eval mode and the
checks of a model, an input batch and the target scores.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> from axiomcam.support import check_inputs, eval_mode
    >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout())
    >>> with eval_mode(model):
    ...     model.training
    False
    >>> model.training  # each module's own flag is restored
    True
    >>> check_inputs(model, torch.rand(2, 3, 8, 8)).shape
    torch.Size([2, 3, 8, 8])
"""

from __future__ import annotations

import contextvars
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from tqdm.auto import tqdm

__all__ = [
    "CONVOLUTION_INPUT_DIMS", "AxiomCamWarning", "CallbackProgress", "Progress", "check_inputs",
    "check_model", "check_positive_int", "check_scores", "eval_mode", "image_name",
    "progress_bar", "warn", "warning_context",
]


class AxiomCamWarning(UserWarning):
    """Something about an explanation the user should know (an all-zero map, a fallback)."""


_PACKAGE_DIRECTORY = os.path.dirname(os.path.abspath(__file__))


#: what the warnings of the current work are about (:func:`warning_context`)
_CONTEXT: contextvars.ContextVar[tuple[str, tuple[str, ...]] | None] = \
    contextvars.ContextVar("axiomcam_warning_context", default=None)


@contextmanager
def warning_context(about: str, image_ids: Sequence[str] = ()) -> Iterator[None]:
    """Within the block, :func:`warn` starts each message with ``about`` (``"gradcam at
    features.18"``), and :func:`image_name` names batch image ``i`` by ``image_ids[i]``:
    an evaluation's warnings then say which method, layer and image they are about.

    Examples:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     with warning_context("gradcam at features.18", ["cat.jpg", "dog.jpg"]):
        ...         warn(f"the map of image {image_name(1)!r} is constant")
        >>> str(caught[0].message)
        "gradcam at features.18: the map of image 'dog.jpg' is constant"
    """
    token = _CONTEXT.set((about, tuple(image_ids)))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def image_name(index: int) -> int | str:
    """Image ``index`` of the batch by its id within :func:`warning_context` (when it has
    one), else the index itself."""
    context = _CONTEXT.get()
    if context is not None and 0 <= index < len(context[1]):
        return context[1][index]
    return index


def warn(message: str) -> None:
    """Warn with the location of the user's call, not of axiomcam's internals (and, within
    :func:`warning_context`, what the warning is about first)."""
    context = _CONTEXT.get()
    if context is not None:
        message = f"{context[0]}: {message}"
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
            _PACKAGE_DIRECTORY):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, AxiomCamWarning, stacklevel=level + 1)


#: what ``progress=`` takes: ``None`` (a bar on a terminal when the work is long), a bool
#: (always / never a bar), or a callable ``(done, total, description)`` told after each
#: step (a web page's progress, a log line)
Progress = bool | Callable[[int, int, str], object] | None


class CallbackProgress:
    """tqdm's ``update`` / context protocol, reporting to a callable instead of a bar."""

    def __init__(self, report: Callable[[int, int, str], object], total: int,
                 description: str) -> None:
        self.report, self.total, self.description, self.done = report, total, description, 0

    def __enter__(self) -> CallbackProgress:
        self.report(0, self.total, self.description)
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def update(self, steps: int = 1) -> None:
        self.done += steps
        self.report(self.done, self.total, self.description)


def progress_bar(progress: Progress, total: int, description: str, unit: str = "batch"
                 ) -> tqdm | CallbackProgress:
    """A progress reporter over ``total`` steps, used as ``with ...: bar.update(1)``.

    ``progress``: ``None`` shows a tqdm bar on a terminal when there are more than 8 steps,
    ``True`` / ``False`` always / never, a callable gets ``(done, total, description)``
    at the start and after every step.
    """
    if callable(progress):
        return CallbackProgress(progress, total, description)
    disable = (not progress) if progress is not None else (None if total > 8 else True)
    return tqdm(total=total, desc=description, unit=unit, leave=False, disable=disable)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every module in eval mode and restore each module's own flag afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def check_model(model: object) -> nn.Module:
    """``model`` if it is an ``nn.Module`` with parameters (a TypeError or ValueError else).

    An Ultralytics ``YOLO(...)`` object gives its network, ``.model``: its own forward is
    ``predict`` (resizing, non-maximum suppression, ``Results``), which no gradient crosses.
    """
    if any(cls.__name__ == "Model" and cls.__module__ == "ultralytics.engine.model"
           for cls in type(model).__mro__) and isinstance(getattr(model, "model", None),
                                                          nn.Module):
        model = model.model
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    if next(model.parameters(), None) is None:
        raise ValueError(
            f"{type(model).__name__} has no parameters: axiomcam explains trained networks"
        )
    return model


#: the batch dimensions each kind of convolution takes: ``(B, C, L)``, ``(B, C, H, W)``,
#: ``(B, C, T, H, W)``
CONVOLUTION_INPUT_DIMS: dict[type[nn.Module], int] = {nn.Conv1d: 3, nn.Conv2d: 4, nn.Conv3d: 5}


def check_inputs(model: nn.Module, inputs: object) -> torch.Tensor:
    """Reject what would crash deep inside the model or give a silent wrong answer.

    A 3-D batch ``(B, C, L)`` is a batch of 1D signals (audio, time series, spectra); it is
    refused, with a hint to add the batch axis, when the model's first convolution is a
    ``Conv2d`` or ``Conv3d`` (it is then one image without its batch axis).
    """
    if not torch.is_tensor(inputs):
        raise TypeError(
            f"inputs must be a torch.Tensor of shape (B, C, H, W), not {type(inputs).__name__}"
        )
    if not inputs.is_floating_point():
        raise TypeError(
            f"inputs must be a float tensor, got dtype {inputs.dtype}: convert and normalise "
            "images as the model expects (e.g. the `preprocess` of axiomcam.models.load)"
        )
    first_conv = next((m for m in model.modules()
                       if isinstance(m, tuple(CONVOLUTION_INPUT_DIMS))), None)
    expected_dims = None if first_conv is None else next(
        dims for kind, dims in CONVOLUTION_INPUT_DIMS.items() if isinstance(first_conv, kind))
    if inputs.dim() not in (3, 4, 5) or (inputs.dim() == 3 and expected_dims in (4, 5)):
        hint = " Add a batch axis with inputs.unsqueeze(0)." if inputs.dim() == 3 else ""
        raise ValueError(
            f"inputs must be a batch (B, C, H, W), or (B, C, T, H, W) for 3D networks, or "
            f"(B, C, L) for 1D networks; got shape {tuple(inputs.shape)}.{hint}"
        )
    if inputs.shape[0] == 0:
        raise ValueError("inputs is an empty batch (B = 0)")
    parameter = next(model.parameters())
    if inputs.device != parameter.device:
        raise ValueError(
            f"inputs are on {inputs.device} but the model is on {parameter.device}: move one "
            f"of them (e.g. inputs.to('{parameter.device}'))"
        )
    if inputs.dtype != parameter.dtype:
        raise TypeError(
            f"inputs have dtype {inputs.dtype} but the model's parameters {parameter.dtype}"
        )
    if (first_conv is not None and inputs.dim() == expected_dims
            and inputs.shape[1] != first_conv.in_channels):
        raise ValueError(
            f"inputs have {inputs.shape[1]} channels but the model's first convolution "
            f"expects {first_conv.in_channels} (inputs shape {tuple(inputs.shape)})"
        )
    if not torch.isfinite(inputs).all():
        bad = (~torch.isfinite(inputs)).flatten(1).any(1).nonzero().flatten().tolist()
        raise ValueError(f"inputs contain NaN or inf (images {bad})")
    return inputs


def check_scores(scores: torch.Tensor) -> torch.Tensor:
    """``scores`` if every value is finite, else a ValueError listing them."""
    if not torch.isfinite(scores).all():
        raise ValueError(
            f"the model's target scores contain NaN or inf: {scores.detach().flatten().tolist()}"
        )
    return scores


def check_positive_int(value: object, name: str, minimum: int = 1) -> int:
    """``value`` if it is an int (not a bool) of at least ``minimum``, else a ValueError
    naming ``name`` and the value.

    Examples:
        >>> check_positive_int(3, "batch_size")
        3
        >>> check_positive_int(0, "batch_size")
        Traceback (most recent call last):
        ...
        ValueError: batch_size must be an int >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value
