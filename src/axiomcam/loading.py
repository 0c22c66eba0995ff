"""From what a user types after ``--model`` to a ready-to-use :class:`PretrainedModel`.

:func:`load_model` reads ``spec`` as the first of these forms that fits:

1. a built-in pretrained model, :func:`axiomcam.models.available` (``mobilenet_v2``,
   ``efficientnet_lite0``): its packaged weights, or ``weights`` instead;
2. ``package.module:factory``: the module is imported (the current directory is searched
   too) and ``factory`` is called without arguments; it must return a ``torch.nn.Module``.
   ``factory`` may also be an ``nn.Module`` instance, or an ``nn.Module`` class;
3. an existing file: a full pickled model (``torch.save(model, FILE)``) or a TorchScript
   archive (``torch.jit.save``), which is refused when hooks cannot run on it (see below);
4. a torchvision classification architecture (``resnet18``, ``torchvision:resnet18``) and
5. a timm architecture (``resnet10t``, ``timm:resnet10t``; needs ``pip install
   "axiomcam[timm]"``), both with ``weights``: a state-dict file.

Before forms 2 to 5, a path ending in ``.onnx`` is an ONNX model file, converted to torch by
onnx2torch (``pip install "axiomcam[onnx]"``; see :func:`axiomcam.models.from_onnx`): its
layers are named by their ONNX node names (``--layer /layer4/layer4.1/relu_1/Relu``), its
input size is the file's when fixed, and ``weights`` does not apply.

Nothing is downloaded, ever: an architecture name without ``weights`` is an error, since a
network with random weights has nothing to explain.

**Trust.** A pickled model file is read with ``torch.load(weights_only=False)``, which runs
code stored in the file: give only files you trust. Weights files are read with
``weights_only=True``, which cannot run code.

**TorchScript.** axiomcam records a layer's output with a forward hook and its gradient
through autograd. A loaded TorchScript module refuses ``register_forward_hook`` (torch 2.x:
"register_forward_hook is not supported on ScriptModules"), and the hooks of a traced
module are never called, since its compiled graph runs instead of the Python modules.
:func:`load_model` tries both on the model and, when they fail, says so and asks for the
eager model (pickled, or a state dict with its architecture).

Example:
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from torch import nn
    >>> from axiomcam.loading import load_model
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
    ...                     nn.Flatten(), nn.Linear(4, 2))
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     torch.save(net, Path(folder, "tiny.pt"))
    ...     loaded = load_model(str(Path(folder, "tiny.pt")), size=32)
    >>> loaded.name, loaded.class_names, loaded.default_layer, loaded.input_size
    ('tiny.pt', ['class 0', 'class 1'], '1', 32)
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.util
import inspect
import json
import math
import os
import sys
import types
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models import MobileNet_V2_Weights

from . import models
from .layers import find_default_layer
from .models import IMAGENET_MEAN, IMAGENET_STD, PretrainedModel, _imagenet_transforms

__all__ = [
    "ModelSpecError", "load_model", "load_state_dict_file", "read_class_names", "read_state_dict",
]


class ModelSpecError(ValueError):
    """The model is asked for wrongly: a spec that names nothing known, an architecture
    without ``weights``, or a bad ``size``/``mean``/``std`` (a usage error, as opposed to a
    file that cannot be read or does not fit).

    Example:
        >>> issubclass(ModelSpecError, ValueError)
        True
    """

#: side of the square input when neither the model nor ``size`` says otherwise
DEFAULT_SIZE = 224
TIMM_INSTALL = 'pip install "axiomcam[timm]"'
TORCHVISION_PREFIX = "torchvision:"
TIMM_PREFIX = "timm:"
# keys under which training scripts commonly nest the real state dict
_NESTED_STATE_KEYS = ("state_dict", "model", "model_state_dict")
# names that look like a file the user meant (a typo in a path gives "no such file")
_MODEL_FILE_SUFFIXES = {".pt", ".pth", ".pt2", ".ts", ".jit", ".pkl", ".pickle", ".ckpt", ".bin"}
_SHOWN = 5  # how many keys of each kind a weights-mismatch message lists


def load_model(
    spec: str,
    *,
    weights: str | os.PathLike[str] | None = None,
    classes: str | os.PathLike[str] | None = None,
    size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    device: str | torch.device = "cpu",
) -> PretrainedModel:
    """Load the classifier that ``spec`` names, with its preprocessing and class names.

    ``spec`` is read as the first form that fits (the module docstring explains each):
    a built-in name; ``package.module:factory``; an existing model file; a torchvision
    architecture (``resnet18`` or ``torchvision:resnet18``); a timm architecture
    (``resnet10t`` or ``timm:resnet10t``).

    Preprocessing: a built-in model keeps its own unless ``size``, ``mean`` or ``std`` is
    given (each replaces only its own part). Any other model: the shorter side resized to
    ``round(size * 256 / 224)``, a centre crop of ``size`` (default 224), normalised with
    ``mean``/``std`` (default ImageNet's; a timm architecture defaults to the mean, std and,
    if the architecture needs a fixed size, the input size of its ``pretrained_cfg``).

    Number of classes: a torchvision or timm architecture is built with as many outputs as
    the weights file's final layer has (the file's tensor under the key of the model's last
    weight of two or more dimensions, e.g. ``fc.weight``).  The model's outputs are counted
    with one forward pass on a ``(1, 3, size, size)`` input of zeros.

    Args:
        spec: what the user typed after ``--model`` (a path-like object is read as a file).
        weights: a state-dict file (``torch.save(model.state_dict(), FILE)``; a checkpoint
            dict holding it under ``"state_dict"``, ``"model"`` or ``"model_state_dict"``
            and DataParallel's ``module.`` prefix are accepted). Required for forms 4 and 5;
            loaded into the model for every other form too when given.
        classes: a class-names file: one name per line (blank lines skipped), a JSON list
            of names, or a JSON object ``{"0": name, ...}`` (``[wnid, name]`` values, as in
            ``imagenet_class_index.json``, too). Default: the 1000 ImageNet names for a
            model with 1000 outputs, else ``"class 0"``, ``"class 1"``, ...
        size: the side of the square input the network sees, in pixels.
        mean: per-channel mean (pixels in [0, 1]): 3 numbers, or 1 for all channels.
        std: per-channel standard deviation, all > 0: 3 numbers, or 1 for all channels.
        device: where to put the model.

    Returns:
        a :class:`~axiomcam.models.PretrainedModel`, model in eval mode on ``device``, named
        ``spec`` (a file: its file name).

    Raises:
        TypeError: ``spec`` is not a string; a factory needs arguments or returns something
            other than an ``nn.Module`` (named in the message).
        ValueError: an unknown ``spec`` (the forms are explained and near matches listed);
            an architecture name without ``weights``; a file holding a state dict rather
            than a model; a TorchScript model that cannot be hooked; a weights file that
            cannot be read or does not fit (missing, unexpected and mismatched keys are
            listed); a classes file whose length differs from the model's outputs; a model
            whose output is not ``(1, N)``; an invalid ``size``, ``mean``, ``std`` or
            ``device``; a factory module that cannot be imported.
        FileNotFoundError: ``weights``, ``classes`` or a model file that looks like a path
            does not exist.
        IsADirectoryError: ``weights`` or ``classes`` is a directory.
        axiomcam.models.MissingWeightsError: a built-in model's package is not installed,
            or a ``timm:`` name is given without timm installed.

    Example:
        >>> from axiomcam.loading import load_model
        >>> try:
        ...     load_model("resnet18")
        ... except ValueError as error:
        ...     print(str(error)[:60])
        resnet18 is a torchvision architecture without weights: pass
    """
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise TypeError(f"the model spec must be a str, not {type(spec).__name__}: {spec!r}")
    if not spec.strip():
        raise ModelSpecError("the model spec is empty: " + _forms_help())
    torch_device = _checked_device(device)
    size = _checked_size(size)
    mean = _checked_channels(mean, "mean")
    std = _checked_channels(std, "std", positive=True)
    weights_path = None if weights is None else _checked_file(weights, "weights file")
    class_names = None if classes is None else read_class_names(classes)

    if spec in models.available():
        return _builtin(spec, weights_path, class_names, size, mean, std, torch_device)
    if Path(spec).suffix.lower() == ".onnx":  # converted by onnx2torch: see the module doc
        if weights_path is not None:
            raise ModelSpecError(
                f"--weights does not apply to the ONNX model {spec!r}: its weights are in the file"
            )
        return models.from_onnx(spec, class_names=class_names, input_size=size,
                                mean=mean or IMAGENET_MEAN, std=std or IMAGENET_STD,
                                device=torch_device)

    built = _build(spec, weights_path)
    model = built.model
    if weights_path is not None and not built.weights_loaded:
        load_state_dict_file(model, weights_path, architecture=built.name)
    model = model.to(torch_device).eval()

    size = size if size is not None else built.size
    mean = mean if mean is not None else built.mean
    std = std if std is not None else built.std
    zeros = torch.zeros(1, 3, size, size, device=torch_device)
    num_outputs = _count_outputs(model, zeros, built.name)
    _check_hookable(model, zeros, built.name)
    if class_names is None:
        class_names = _default_class_names(num_outputs)
    elif len(class_names) != num_outputs:
        raise ValueError(
            f"the classes file {os.fspath(classes)!r} has {len(class_names)} names but "
            f"{built.name} has {num_outputs} outputs"
        )
    display, preprocess = _imagenet_transforms(mean, std, size, _resize_for(size))
    return PretrainedModel(
        name=built.name,
        model=model,
        preprocess=preprocess,
        display=display,
        class_names=class_names,
        default_layer=find_default_layer(model, zeros),
        input_size=size,
        mean=mean,
        std=std,
    )


# ----------------------------------------------------------------------------- the forms


@dataclasses.dataclass
class _Built:
    """A model built from a spec, with the preprocessing defaults its form implies."""

    name: str
    model: nn.Module
    weights_loaded: bool = False
    size: int = DEFAULT_SIZE
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD


def _build(spec: str, weights_path: Path | None) -> _Built:
    """Forms 2 to 5, in order; an unknown spec is a ValueError (FileNotFoundError if it
    looks like a path)."""
    if spec.startswith(TORCHVISION_PREFIX):
        architecture = spec[len(TORCHVISION_PREFIX):]
        if architecture not in _torchvision_names():
            raise ModelSpecError(
                f"{architecture!r} is not a torchvision classification architecture"
                f"{_near_matches(architecture, _torchvision_names())}"
            )
        return _from_torchvision(spec, architecture, weights_path)
    if spec.startswith(TIMM_PREFIX):
        return _from_timm(spec, spec[len(TIMM_PREFIX):], weights_path)
    if ":" in spec and not Path(spec).is_file():
        return _Built(spec, _from_factory(spec))
    path = Path(spec)
    if path.is_dir():
        raise ValueError(f"--model {spec!r} is a directory, not a model file or name")
    if path.exists():
        return _Built(path.name, _from_file(path))
    if spec in _torchvision_names():
        return _from_torchvision(spec, spec, weights_path)
    if _timm_installed() and _timm().is_model(spec):
        return _from_timm(spec, spec, weights_path)
    if os.sep in spec or "/" in spec or path.suffix.lower() in _MODEL_FILE_SUFFIXES:
        raise FileNotFoundError(f"model file {spec!r} does not exist")
    raise ModelSpecError(f"unknown model {spec!r}. {_forms_help()}{_near_matches(spec, _known())}")


def _builtin(name: str, weights_path: Path | None, class_names: list[str] | None,
             size: int | None, mean: tuple[float, ...] | None, std: tuple[float, ...] | None,
             device: torch.device) -> PretrainedModel:
    pretrained = models.load(name, device, weights_path=weights_path)
    changes: dict[str, object] = {}
    if size is not None or mean is not None or std is not None:
        input_size = size if size is not None else pretrained.input_size
        mean = mean if mean is not None else pretrained.mean
        std = std if std is not None else pretrained.std
        display, preprocess = _imagenet_transforms(mean, std, input_size, _resize_for(input_size))
        changes.update(display=display, preprocess=preprocess, input_size=input_size,
                       mean=mean, std=std)
    if class_names is not None:
        if len(class_names) != len(pretrained.class_names):
            raise ValueError(
                f"the classes file has {len(class_names)} names but {name} has "
                f"{len(pretrained.class_names)} outputs"
            )
        changes["class_names"] = class_names
    return dataclasses.replace(pretrained, **changes) if changes else pretrained


def _from_factory(spec: str) -> nn.Module:
    """``package.module:attribute``: an ``nn.Module``, a module class, or a function
    returning a module, called without arguments."""
    module_name, _, attribute = spec.partition(":")
    dotted = [*module_name.split("."), *attribute.split(".")]
    if not module_name or not attribute or not all(part.isidentifier() for part in dotted):
        raise ValueError(
            f"--model {spec!r} has a ':' but is neither an existing file nor "
            "package.module:factory (e.g. mypackage.nets:build_model)"
        )
    with _cwd_importable():
        try:
            found: object = importlib.import_module(module_name)
        except ImportError as error:
            raise ValueError(
                f"cannot import {module_name!r} for --model {spec!r}: {error} (the current "
                f"directory {os.getcwd()!r} is searched too)"
            ) from error
        for part in attribute.split("."):
            if not hasattr(found, part):
                public = [name for name in dir(found) if not name.startswith("_")]
                raise ValueError(
                    f"{module_name!r} has no attribute {attribute!r} (for --model {spec!r})"
                    f"{_near_matches(part, public)}"
                )
            found = getattr(found, part)
        if isinstance(found, nn.Module):
            return found
        if not callable(found):
            raise TypeError(
                f"{spec!r} is a {type(found).__name__}, not an nn.Module or a function "
                "that returns one"
            )
        try:
            inspect.signature(found).bind()
        except TypeError as error:
            raise TypeError(f"{spec!r} must be callable without arguments: {error}") from error
        except ValueError:
            pass  # no signature to inspect (a builtin): just call it
        result = found()
    if not isinstance(result, nn.Module):
        raise TypeError(
            f"{spec!r} returned a {type(result).__name__} ({_short_repr(result)}), "
            "not a torch.nn.Module"
        )
    return result


def _from_file(path: Path) -> nn.Module:
    """A TorchScript archive or a full pickled model (which runs code from the file)."""
    layout = _zip_layout(path)
    if "code" in layout:
        with warnings.catch_warnings():  # torch 2.x deprecates TorchScript with a FutureWarning
            warnings.simplefilter("ignore", FutureWarning)
            try:
                return torch.jit.load(str(path), map_location="cpu")
            except Exception as error:
                raise ValueError(
                    f"cannot read the TorchScript model {str(path)!r}: {_reason(error)}"
                ) from error
    if "archive_format" in layout:
        raise ValueError(
            f"{str(path)!r} is a torch.export archive, which axiomcam cannot hook: save the "
            "eager model instead (torch.save(model, FILE), or its state_dict with --weights)"
        )
    try:  # data only first: a state dict needs no code to read, and is the common mistake
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        loaded = _unpickle_model(path)
    if isinstance(loaded, Mapping) and isinstance(loaded.get("model"), nn.Module):
        loaded = loaded["model"]  # a checkpoint that stores the whole model
    if isinstance(loaded, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        loaded = loaded.module
    if isinstance(loaded, nn.Module):
        return loaded
    if _unwrap_state_dict(loaded) is not None:
        raise ValueError(
            f"{str(path)!r} is a state dict, not a model: give the architecture with "
            "--model NAME and this file with --weights"
        )
    raise ValueError(f"{str(path)!r} holds a {type(loaded).__name__}, not a model")


def _unpickle_model(path: Path) -> object:
    """``torch.load(weights_only=False)``: runs code from the file, so only for files the
    user trusts (see the module docstring)."""
    with _cwd_importable():
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except (AttributeError, ImportError) as error:
            raise ValueError(
                f"cannot unpickle the model in {str(path)!r}: {error}. A pickled model needs "
                "its class importable under the module name it was saved from (not "
                "__main__); or save a state dict and use --model NAME --weights FILE"
            ) from error
        except Exception as error:
            raise ValueError(
                f"cannot read the model file {str(path)!r}: {_reason(error)}"
            ) from error


def _from_torchvision(spec: str, architecture: str, weights_path: Path | None) -> _Built:
    state = _required_weights(spec, "torchvision", weights_path)
    options: dict[str, object] = {}
    if architecture in ("googlenet", "inception_v3"):
        # the auxiliary classifiers exist only if the file has them; init_weights=False
        # skips a slow random initialisation that the weights replace anyway
        options["aux_logits"] = any(key.startswith(("aux1.", "AuxLogits.")) for key in state)
        options["init_weights"] = False

    def build(num_classes: int | None) -> nn.Module:
        extra = {} if num_classes is None else {"num_classes": num_classes}
        return torchvision.models.get_model(architecture, weights=None, **options, **extra)

    model = _with_file_outputs(build, state)
    _fit_state_dict(model, state, weights_path, spec)
    return _Built(spec, model, weights_loaded=True)


def _from_timm(spec: str, architecture: str, weights_path: Path | None) -> _Built:
    if not _timm_installed():
        raise models.MissingWeightsError(
            f"timm is not installed, so {spec!r} cannot be built: run `{TIMM_INSTALL}`",
            name="timm",
        )
    timm = _timm()
    if not timm.is_model(architecture):
        raise ModelSpecError(
            f"{architecture!r} is not a timm architecture"
            f"{_near_matches(architecture, timm.list_models())}"
        )
    state = _required_weights(spec, "timm", weights_path)

    def build(num_classes: int | None) -> nn.Module:
        extra = {} if num_classes is None else {"num_classes": num_classes}
        # pretrained=False: the architecture only, nothing is downloaded
        return timm.create_model(architecture, pretrained=False, **extra)

    model = _with_file_outputs(build, state)
    _fit_state_dict(model, state, weights_path, spec)
    config = getattr(model, "pretrained_cfg", None) or {}
    built = _Built(spec, model, weights_loaded=True)
    if len(config.get("mean", ())) == 3 and len(config.get("std", ())) == 3:
        built.mean = tuple(float(value) for value in config["mean"])
        built.std = tuple(float(value) for value in config["std"])
    if config.get("fixed_input_size") and len(config.get("input_size", ())) == 3:
        built.size = int(config["input_size"][-1])  # e.g. a ViT's position embeddings
    return built


def _required_weights(spec: str, library: str,
                      weights_path: Path | None) -> dict[str, torch.Tensor]:
    if weights_path is None:
        raise ModelSpecError(
            f"{spec} is a {library} architecture without weights: pass --weights FILE (a "
            "state dict saved with torch.save(model.state_dict(), FILE)). axiomcam never "
            "downloads weights, and a network with random weights has nothing to explain"
        )
    return read_state_dict(weights_path)


def _with_file_outputs(build: Callable[[int | None], nn.Module],
                       state: Mapping[str, torch.Tensor]) -> nn.Module:
    """The architecture with as many outputs as the file's classifier.

    The classifier is the model's last weight with two or more dimensions (``fc.weight``,
    ``classifier.1.weight``, ``head.fc.weight``); its first dimension in the file is the
    number of classes. When the key is not in the file the default model is kept, and the
    fit check reports the mismatch.
    """
    model = build(None)
    expected = model.state_dict()
    classifier = [key for key, value in expected.items()
                  if key.endswith("weight") and value.dim() >= 2]
    if not classifier:
        return model
    key = classifier[-1]
    if key in state and state[key].dim() >= 2 and state[key].shape[0] != expected[key].shape[0]:
        return build(int(state[key].shape[0]))
    return model


# ----------------------------------------------------------------------------- weights


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state-dict file safely (``torch.load(weights_only=True)``, on the CPU).

    A checkpoint dict holding the state dict under ``"state_dict"``, ``"model"`` or
    ``"model_state_dict"`` is unwrapped, and a ``module.`` prefix on every key (from
    ``nn.DataParallel``) is removed.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IsADirectoryError: ``path`` is a directory.
        ValueError: the file cannot be read with ``weights_only=True`` (corrupt, or a
            pickled full model) or holds no dict of tensors; the path is named.

    Example:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> from axiomcam.loading import read_state_dict
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder, "w.pth")
        ...     torch.save({"epoch": 3, "state_dict": {"module.fc.bias": torch.ones(2)}}, path)
        ...     read_state_dict(path)
        {'fc.bias': tensor([1., 1.])}
    """
    path = _checked_file(path, "weights file")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"cannot read the weights file {str(path)!r} as a state dict: {_reason(error)} "
            "(a whole pickled or TorchScript model goes to --model FILE, not --weights)"
        ) from error
    state = _unwrap_state_dict(loaded)
    if state is None:
        raise ValueError(
            f"the weights file {str(path)!r} holds a {type(loaded).__name__}, not a state "
            "dict (a dict of parameter names to tensors)"
        )
    return state


def load_state_dict_file(model: nn.Module, path: str | os.PathLike[str], *,
                         architecture: str) -> None:
    """Load a state-dict file into ``model`` (in place), checking that it fits first.

    Raises:
        FileNotFoundError, IsADirectoryError, ValueError: as :func:`read_state_dict`.
        ValueError: the file does not fit ``model``: the message names the file and
            ``architecture`` and lists the first 5 missing keys (in the model, not in the
            file), unexpected keys (in the file only) and keys whose shapes differ, with
            their counts.

    Example:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> from axiomcam.loading import load_state_dict_file
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder, "w.pth")
        ...     torch.save(torch.nn.Linear(3, 2).state_dict(), path)
        ...     try:
        ...         load_state_dict_file(torch.nn.Linear(4, 2), path, architecture="linear")
        ...     except ValueError as error:
        ...         print(str(error).split(": ", 1)[1])
        1 key with another shape: weight (file (2, 3), model (2, 4))
    """
    _fit_state_dict(model, read_state_dict(path), Path(path), architecture)


def _fit_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path | None,
                    architecture: str) -> None:
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mismatched = [
        f"{key} (file {tuple(state[key].shape)}, model {tuple(value.shape)})"
        for key, value in expected.items()
        if key in state and state[key].shape != value.shape
    ]
    problems = [
        _listing(keys, what)
        for keys, what in ((missing, "missing (in the model, not in the file)"),
                           (unexpected, "unexpected (in the file, not in the model)"),
                           (mismatched, "with another shape"))
        if keys
    ]
    if problems:
        raise ValueError(
            f"the weights file {str(path)!r} does not fit {architecture}: "
            + "; ".join(problems)
        )
    model.load_state_dict(state)


def _listing(keys: list[str], what: str) -> str:
    noun = "key" if len(keys) == 1 else "keys"
    shown = ", ".join(keys[:_SHOWN]) + (", ..." if len(keys) > _SHOWN else "")
    return f"{len(keys)} {noun} {what}: {shown}"


def _unwrap_state_dict(loaded: object) -> dict[str, torch.Tensor] | None:
    """The dict of tensors inside ``loaded`` (see :func:`read_state_dict`), or None."""
    for _ in range(3):  # checkpoints nest the state dict one level deep, rarely two
        if not isinstance(loaded, Mapping) or not loaded:
            return None
        if all(isinstance(key, str) and torch.is_tensor(value) for key, value in loaded.items()):
            state = dict(loaded)
            if all(key.startswith("module.") for key in state):
                state = {key.removeprefix("module."): value for key, value in state.items()}
            return state
        loaded = next((loaded[key] for key in _NESTED_STATE_KEYS
                       if isinstance(loaded.get(key), Mapping)), None)
    return None


# ----------------------------------------------------------------------------- classes


def read_class_names(path: str | os.PathLike[str]) -> list[str]:
    """Class names from a file, by output index.

    Formats: a JSON list of names; a JSON object ``{"0": name, "1": name, ...}`` whose keys
    are exactly ``0..N-1`` (values may be ``[wnid, name]`` pairs, as in
    ``imagenet_class_index.json``: the last item is the name); otherwise plain text with one
    name per line, surrounding whitespace stripped and blank lines skipped. A file is read
    as JSON when its first non-blank character is ``[`` or ``{``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IsADirectoryError: ``path`` is a directory.
        ValueError: not UTF-8, invalid JSON, a name that is not a string, JSON keys that
            are not ``0..N-1``, or no names at all; the path is named.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from axiomcam.loading import read_class_names
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder, "classes.json")
        ...     _ = path.write_text('{"1": ["n02", "dog"], "0": ["n01", "cat"]}')
        ...     read_class_names(path)
        ['cat', 'dog']
    """
    path = _checked_file(path, "classes file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"the classes file {str(path)!r} is not UTF-8 text: {error}") from error
    if text.lstrip()[:1] in ("[", "{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"the classes file {str(path)!r} is not valid JSON: {error}"
            ) from error
        names = _json_class_names(parsed, path)
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ValueError(f"the classes file {str(path)!r} has no class names")
    return names


def _json_class_names(parsed: object, path: Path) -> list[str]:
    if isinstance(parsed, dict):
        try:
            indices = {int(key): value for key, value in parsed.items()}
        except ValueError as error:
            raise ValueError(
                f"the classes file {str(path)!r} has a key that is not a class index: {error}"
            ) from error
        if sorted(indices) != list(range(len(indices))):
            raise ValueError(
                f"the keys of the classes file {str(path)!r} must be the indices 0 to "
                f"{len(indices) - 1}, each once"
            )
        values = [indices[index] for index in range(len(indices))]
    elif isinstance(parsed, list):
        values = parsed
    else:
        raise ValueError(
            f"the classes file {str(path)!r} holds a JSON {type(parsed).__name__}, not a list "
            "of names or an object {\"0\": name, ...}"
        )
    names = []
    for index, value in enumerate(values):
        if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
            value = value[-1]  # [wnid, name]
        if not isinstance(value, str):
            raise ValueError(
                f"class {index} in the classes file {str(path)!r} is not a name: {value!r}"
            )
        names.append(value.strip())
    return names


def _default_class_names(num_outputs: int) -> list[str]:
    if num_outputs == 1000:
        # torchvision keeps the ImageNet class names in its code: no download
        return list(MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])
    return [f"class {index}" for index in range(num_outputs)]


# ----------------------------------------------------------------------------- checks


def _count_outputs(model: nn.Module, zeros: torch.Tensor, name: str) -> int:
    """``N`` for a model that maps ``zeros`` to a ``(1, N)`` tensor of class scores."""
    try:
        with torch.no_grad():
            output = model(zeros)
    except Exception as error:
        raise ValueError(
            f"{name} fails on an input of shape {tuple(zeros.shape)} (set the input size with "
            f"--size): {type(error).__name__}: {_reason(error)}"
        ) from error
    if not torch.is_tensor(output) or output.dim() != 2 or output.shape[0] != 1 \
            or output.shape[1] < 1:
        what = f"shape {tuple(output.shape)}" if torch.is_tensor(output) else \
            f"a {type(output).__name__}"
        raise ValueError(
            f"{name} returns {what} for an input of shape {tuple(zeros.shape)}, not (1, N) "
            "class scores: axiomcam explains classifiers"
        )
    return int(output.shape[1])


def _check_hookable(model: nn.Module, zeros: torch.Tensor, name: str) -> None:
    """Refuse a model that contains TorchScript modules unless :func:`_hook_problem` finds
    that hooks work on it."""
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
    leaf that requires grad (as :mod:`axiomcam.methods.core` does), and the model's output
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


def _checked_device(device: str | torch.device) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ModelSpecError(f"invalid device {device!r}: {error}") from error


def _checked_size(size: int | None) -> int | None:
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ModelSpecError(f"size must be a positive int (pixels), not {size!r}")
    return size


def _checked_channels(values: Sequence[float] | None, what: str,
                      positive: bool = False) -> tuple[float, ...] | None:
    """3 finite numbers (1 is repeated for the 3 channels); ``positive``: all > 0."""
    if values is None:
        return None
    numbers = (
        isinstance(values, Sequence) and not isinstance(values, (str, bytes))
        and all(isinstance(value, (int, float)) and not isinstance(value, bool)
                for value in values)
    )
    if not numbers or len(values) not in (1, 3):
        raise ModelSpecError(f"{what} must be 3 numbers (or 1 for all channels), not {values!r}")
    channels = tuple(float(value) for value in values) * (3 if len(values) == 1 else 1)
    if not all(math.isfinite(value) for value in channels):
        raise ModelSpecError(f"{what} must be finite, not {values!r}")
    if positive and not all(value > 0 for value in channels):
        raise ModelSpecError(f"{what} must be > 0 in every channel, not {values!r}")
    return channels


def _checked_file(path: str | os.PathLike[str], what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"{what} {str(path)!r} is a directory, not a file")
    return path


# ----------------------------------------------------------------------------- helpers


def _resize_for(size: int) -> int:
    """The shorter side before the centre crop: ImageNet's 256 for 224, in proportion."""
    return round(size * 256 / 224)


def _zip_layout(path: Path) -> set[str]:
    """The top entries inside a zip archive's root folder (empty for other files):
    TorchScript archives have ``code``, torch.save ones ``data.pkl``, torch.export ones
    ``archive_format``."""
    try:
        if not zipfile.is_zipfile(path):
            return set()
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return set()
    return {name.split("/")[1] for name in names if name.count("/") >= 1}


@contextmanager
def _cwd_importable() -> Iterator[None]:
    """The current directory on ``sys.path`` (first, as ``python -m`` has it) while inside."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _torchvision_names() -> list[str]:
    return torchvision.models.list_models(module=torchvision.models)


def _timm_installed() -> bool:
    return importlib.util.find_spec("timm") is not None


def _timm() -> types.ModuleType:  # imported only when needed: importing timm takes seconds
    return importlib.import_module("timm")


def _known() -> list[str]:
    return [*models.available(), *_torchvision_names()]


def _forms_help() -> str:
    timm_note = "" if _timm_installed() else f" (timm needs `{TIMM_INSTALL}`)"
    return (
        f"--model takes a built-in pretrained model ({', '.join(models.available())}); a "
        f"torchvision or timm architecture name with --weights FILE{timm_note}, e.g. resnet18, "
        "timm:resnet10t; an ONNX file (FILE.onnx); a TorchScript or pickled model file; or "
        "package.module:factory for your own code"
    )


def _near_matches(word: str, candidates: Sequence[str]) -> str:
    near = difflib.get_close_matches(word, list(candidates), n=5, cutoff=0.6)
    return f". Near matches: {', '.join(near)}" if near else ""


def _reason(error: BaseException) -> str:
    """A one-line reason from torch's often multi-paragraph errors."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if "WeightsUnpickler error" in line:
            return line
    return lines[0] if lines else type(error).__name__


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
