"""From what a user types after ``--model`` to a ready-to-use :class:`PretrainedModel`:
:func:`load`, the one way to load a model.

:func:`load` reads ``spec`` as the first of these forms that fits:

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
:func:`load` tries both on the model and, when they fail, says so and asks for the
eager model (pickled, or a state dict with its architecture).

Examples:
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from torch import nn
    >>> from axiomcam import models
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
    ...                     nn.Flatten(), nn.Linear(4, 2))
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     torch.save(net, Path(folder, "tiny.pt"))
    ...     loaded = models.load(str(Path(folder, "tiny.pt")), size=32)
    >>> loaded.name, loaded.class_names, loaded.default_layer, loaded.input_size
    ('tiny.pt', ['class 0', 'class 1'], '1', 32)
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import os
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
import torchvision
from torch import nn

from ..layers import find_default_layer
from .builtin import available, load_builtin
from .checks import (
    MissingWeightsError,
    ModelSpecError,
    check_hookable,
    checked_channels,
    checked_device,
    checked_file,
    checked_size,
    first_channels,
    first_line,
    fit_channels,
    forward_on_zeros,
    near_matches,
    output_description,
)
from .files import (
    cwd_importable,
    fit_state_dict,
    load_state_dict_file,
    read_class_names,
    read_model_file,
    read_state_dict,
)
from .onnx import from_onnx
from .pretrained import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INPUT_SIZE,
    PREPROCESS_PRESETS,
    PretrainedModel,
    channel_note,
    chosen_normalisation,
    default_class_names,
    imagenet_transforms,
    preset_mean_std,
)

__all__ = ["TIMM_INSTALL", "TIMM_PREFIX", "TORCHVISION_PREFIX", "load"]

TIMM_INSTALL = 'pip install "axiomcam[timm]"'
TORCHVISION_PREFIX = "torchvision:"
TIMM_PREFIX = "timm:"
# names that look like a file the user meant (a typo in a path gives "no such file")
_MODEL_FILE_SUFFIXES = {".pt", ".pth", ".pt2", ".ts", ".jit", ".pkl", ".pickle", ".ckpt", ".bin"}


def load(
    spec: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    weights_path: str | os.PathLike[str] | None = None,
    *,
    weights: str | os.PathLike[str] | None = None,
    classes: str | os.PathLike[str] | None = None,
    size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    preprocess: str | None = None,
    onnx_score: str = "logits",
) -> PretrainedModel:
    """Load the classifier that ``spec`` names, with its preprocessing and class names.

    Nothing is downloaded. ``spec`` is read as the first form that fits (the module
    docstring explains each):

    - a built-in pretrained model, :func:`available`: ``load("mobilenet_v2")``,
      ``load("efficientnet_lite0", "cuda")``, ``load("mobilenet_v2",
      weights_path="mine.pth")`` (a state dict of the same architecture instead of the
      packaged weights);
    - a torchvision architecture with a state-dict file: ``load("resnet18",
      weights="resnet18.pth")`` or ``load("torchvision:resnet18", weights="resnet18.pth")``;
    - a timm architecture with a state-dict file: ``load("timm:resnet10t",
      weights="resnet10t.pth")`` (or ``"resnet10t"``, when no torchvision name is the same);
    - a whole-model file, ``torch.save(model, FILE)`` or a hookable TorchScript archive:
      ``load("model.pt", size=96)`` (a path object too);
    - an ONNX file, through :func:`axiomcam.models.from_onnx`: ``load("model.onnx")``;
    - your own code, ``package.module:factory`` (a function, an ``nn.Module`` class or
      instance, imported from the current directory too): ``load("mynets.resnet:build")``.

    Preprocessing: a built-in model keeps its own unless ``size``, ``mean``, ``std`` or
    ``preprocess`` is given (each replaces only its own part). Any other model: the shorter
    side resized to ``round(size * 256 / 224)``, a centre crop of ``size`` (default 224),
    normalised with ``mean``/``std`` or the ``preprocess`` preset (default ImageNet's; a
    timm architecture defaults to the mean, std and, if the architecture needs a fixed size,
    the input size of its ``pretrained_cfg``; an ONNX file as :func:`from_onnx` says).

    Channels: the model's first 2-D convolution's input channels (an ONNX file: its input's,
    :func:`from_onnx`), 3 when it has none. A model of other than 3 channels defaults to the
    ``unit`` preset (pixels in [0, 1]), since ImageNet's statistics are for RGB; ``mean``
    and ``std`` take 1 number (for every channel) or 1 per channel.

    Number of classes: a torchvision or timm architecture is built with as many outputs as
    the weights file's final layer has (the file's tensor under the key of the model's last
    weight of two or more dimensions, e.g. ``fc.weight``).  The model's outputs are counted
    with one forward pass on a ``(1, 3, size, size)`` input of zeros.

    Args:
        spec: a built-in name, an architecture, a file or ``package.module:factory`` (what
            the CLI's ``--model`` takes; a path-like object is read as a file).
        device: where to put the model (``"cpu"``, ``"cuda"``, a ``torch.device``).
        weights_path: the same as ``weights`` (its older name, kept for
            ``load(name, device, weights_path)`` calls); give one of the two.
        weights: a state-dict file (``torch.save(model.state_dict(), FILE)``; a checkpoint
            dict holding it under ``"state_dict"``, ``"model"`` or ``"model_state_dict"``
            and DataParallel's ``module.`` prefix are accepted). Required for torchvision
            and timm architectures; loaded into the model for every other form but ONNX
            too when given.
        classes: a class-names file: one name per line (blank lines skipped), a JSON list
            of names, or a JSON object ``{"0": name, ...}`` (``[wnid, name]`` values, as in
            ``imagenet_class_index.json``, too). Default: the 1000 ImageNet names for a
            model with 1000 outputs, else ``"class 0"``, ``"class 1"``, ...
        size: the side of the square input the network sees, in pixels.
        mean: per-channel mean (pixels in [0, 1]): 1 per channel, or 1 for all channels.
        std: per-channel standard deviation, all > 0: 1 per channel, or 1 for all channels.
        preprocess: a preset instead of ``mean`` and ``std``
            (:data:`~axiomcam.models.pretrained.PREPROCESS_PRESETS`): ``"imagenet"``,
            ``"unit"`` (pixels in [0, 1]), ``"raw255"`` ([0, 255]), ``"tf"`` ([-1, 1]).
        onnx_score: ``"logits"`` or ``"probability"``: what is explained of an ONNX graph
            that ends in a Softmax or Sigmoid (:func:`from_onnx`'s ``score``); refused for
            other models.

    Returns:
        a :class:`~axiomcam.models.PretrainedModel`, model in eval mode on ``device``, named
        ``spec`` (a file: its file name).

    Raises:
        TypeError: ``spec`` is not a string; a factory needs arguments or returns something
            other than an ``nn.Module`` (named in the message).
        ValueError: ``weights`` and ``weights_path`` both given; an unknown ``spec`` (the
            forms are explained and near matches listed); an architecture name without
            ``weights``; a file holding a state dict rather than a model; a TorchScript
            model that cannot be hooked; a weights file that cannot be read or does not
            fit (missing, unexpected and mismatched keys are listed); a classes file whose
            length differs from the model's outputs; a model whose output is not
            ``(1, N)``; an invalid ``size``, ``mean``, ``std``, ``preprocess`` or ``device``;
            ``preprocess`` with ``mean`` or ``std``; ``mean`` or ``std`` of another length
            than 1 or the model's channels (both named with the channels); a factory
            module that cannot be imported; an ONNX file :func:`from_onnx` refuses.
            :class:`~axiomcam.models.ModelSpecError` (a ValueError) marks the usage errors.
        FileNotFoundError: ``weights``, ``classes`` or a model file that looks like a path
            does not exist.
        IsADirectoryError: ``weights`` or ``classes`` is a directory.
        axiomcam.models.MissingWeightsError: a built-in model's package is not installed,
            or a ``timm:`` name is given without timm installed.

    Examples:
        >>> from axiomcam import models
        >>> pretrained = models.load("mobilenet_v2")
        >>> pretrained.default_layer, pretrained.input_size, len(pretrained.class_names)
        ('features.18', 224, 1000)
        >>> try:
        ...     models.load("resnet18")
        ... except ValueError as error:
        ...     print(str(error)[:60])
        resnet18 is a torchvision architecture without weights: pass
    """
    if weights is not None and weights_path is not None:
        raise ModelSpecError(
            f"give weights or weights_path, not both (weights={weights!r}, "
            f"weights_path={weights_path!r}): weights_path is the older name of weights"
        )
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise TypeError(f"the model spec must be a str, not {type(spec).__name__}: {spec!r}")
    if not spec.strip():
        raise ModelSpecError("the model spec is empty: " + _forms_help())
    torch_device = checked_device(device)
    size = checked_size(size)
    mean, std = _checked_normalisation(mean, std, preprocess, spec)
    is_onnx = Path(spec).suffix.lower() == ".onnx"
    _check_onnx_score(onnx_score, spec, is_onnx)
    weights = weights if weights is not None else weights_path
    checked_weights = None if weights is None else checked_file(weights, "weights file")
    class_names = None if classes is None else read_class_names(classes)

    if spec in available():
        if preprocess is not None:
            mean, std = preset_mean_std(preprocess)
        return _builtin(spec, checked_weights, class_names, size, mean, std, torch_device)
    if is_onnx:  # converted by onnx2torch: see the module doc
        if checked_weights is not None:
            raise ModelSpecError(
                f"--weights does not apply to the ONNX model {spec!r}: its weights are in the file"
            )
        return from_onnx(spec, class_names=class_names, input_size=size, mean=mean, std=std,
                         preprocess=preprocess, score=onnx_score, device=torch_device)
    built = _build(spec, checked_weights)
    if checked_weights is not None and not built.weights_loaded:
        load_state_dict_file(built.model, checked_weights, architecture=built.name)
    return _ready(built, class_names, classes, size, (mean, std, preprocess), torch_device)


def _checked_normalisation(mean: Sequence[float] | None, std: Sequence[float] | None,
                           preprocess: str | None, spec: str
                           ) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """``mean`` and ``std`` checked as numbers (their count is checked against the
    model's channels once it is built); a preset checked, and refused with either."""
    mean = None if mean is None else checked_channels(mean, "mean", channels=None)
    std = None if std is None else checked_channels(std, "std", positive=True, channels=None)
    if preprocess is not None:  # a preset is a mean and a std: checked now, given alone
        chosen_normalisation(mean, std, preprocess, None, preprocess, spec)
    return mean, std


def _check_onnx_score(onnx_score: str, spec: str, is_onnx: bool) -> None:
    """``onnx_score`` is the default, or asked for an ONNX file."""
    if onnx_score != "logits" and not is_onnx:
        raise ModelSpecError(f"--onnx-score {onnx_score} applies to ONNX files (FILE.onnx), "
                             f"not to {spec!r}: explain a probability with a target instead "
                             "(ClassScore(c, softmax=True))")


def _ready(built: _Built, class_names: list[str] | None,
           classes: str | os.PathLike[str] | None, size: int | None,
           normalisation: tuple[tuple[float, ...] | None, tuple[float, ...] | None, str | None],
           device: torch.device) -> PretrainedModel:
    """The built model on ``device`` in eval mode, checked (its outputs counted, its hooks
    tried), with its preprocessing (the options, else its form's defaults; ``unit`` for a
    model of other than 3 channels) and class names."""
    model = built.model.to(device).eval()
    size = size if size is not None else built.size
    channels = first_channels(model)
    mean, std, preset = normalisation
    if preset is not None:
        mean, std = preset_mean_std(preset)
    default_mean, default_std = (built.mean, built.std) if channels == 3 else \
        preset_mean_std("unit")
    mean, std = fit_channels(default_mean if mean is None else mean,
                             default_std if std is None else std, channels, built.name)
    zeros = torch.zeros(1, channels, size, size, device=device)
    num_outputs = _count_outputs(model, zeros, built.name)
    check_hookable(model, zeros, built.name)
    if class_names is None:
        class_names = default_class_names(num_outputs)
    elif len(class_names) != num_outputs:
        raise ValueError(
            f"the classes file {os.fspath(classes)!r} has {len(class_names)} names but "
            f"{built.name} has {num_outputs} outputs"
        )
    notes = [note for note in [channel_note(channels)] if note is not None]
    if channels != 3 and normalisation == (None, None, None):
        notes.append(f"preprocessing 'unit': {PREPROCESS_PRESETS['unit'][2]} (ImageNet's "
                     "statistics are for RGB); --preprocess or --mean/--std change it")
    return PretrainedModel.with_imagenet_crop(
        built.name, model, class_names, find_default_layer(model, zeros), size, mean, std,
        channels=channels, notes=tuple(notes))


def _count_outputs(model: nn.Module, zeros: torch.Tensor, name: str) -> int:
    """``N`` for a model that maps ``zeros`` to a ``(1, N)`` tensor of class scores; 1 for
    a binary model's ``(1,)`` (one logit per image, squeezed)."""
    output = forward_on_zeros(model, zeros, name, "set the input size with --size",
                              reason=first_line)
    if torch.is_tensor(output) and output.shape == (1,):
        return 1
    if not torch.is_tensor(output) or output.dim() != 2 or output.shape[0] != 1 \
            or output.shape[1] < 1:
        raise ValueError(
            f"{name} returns {output_description(output)} for an input of shape "
            f"{tuple(zeros.shape)}, not (1, N) class scores: axiomcam explains classifiers"
        )
    return int(output.shape[1])


# ----------------------------------------------------------------------------- the forms


@dataclasses.dataclass
class _Built:
    """A model built from a spec, with the preprocessing defaults its form implies."""

    name: str
    model: nn.Module
    weights_loaded: bool = False
    size: int = INPUT_SIZE
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
                f"{near_matches(architecture, _torchvision_names())}"
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
        return _Built(path.name, read_model_file(path))
    if spec in _torchvision_names():
        return _from_torchvision(spec, spec, weights_path)
    if _timm_installed() and _timm().is_model(spec):
        return _from_timm(spec, spec, weights_path)
    if os.sep in spec or "/" in spec or path.suffix.lower() in _MODEL_FILE_SUFFIXES:
        raise FileNotFoundError(f"model file {spec!r} does not exist")
    raise ModelSpecError(f"unknown model {spec!r}. {_forms_help()}{near_matches(spec, _known())}")


def _builtin(name: str, weights_path: Path | None, class_names: list[str] | None,
             size: int | None, mean: tuple[float, ...] | None, std: tuple[float, ...] | None,
             device: torch.device) -> PretrainedModel:
    pretrained = load_builtin(name, device, weights_path)
    changes: dict[str, object] = {}
    if size is not None or mean is not None or std is not None:
        input_size = size if size is not None else pretrained.input_size
        mean, std = fit_channels(mean if mean is not None else pretrained.mean,
                                 std if std is not None else pretrained.std, 3, name)
        display, preprocess = imagenet_transforms(mean, std, input_size)
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
    with cwd_importable():
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
                    f"{near_matches(part, public)}"
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
    fit_state_dict(model, state, weights_path, spec)
    return _Built(spec, model, weights_loaded=True)


def _from_timm(spec: str, architecture: str, weights_path: Path | None) -> _Built:
    if not _timm_installed():
        raise MissingWeightsError(
            f"timm is not installed, so {spec!r} cannot be built: run `{TIMM_INSTALL}`",
            name="timm",
        )
    timm = _timm()
    if not timm.is_model(architecture):
        raise ModelSpecError(
            f"{architecture!r} is not a timm architecture"
            f"{near_matches(architecture, timm.list_models())}"
        )
    state = _required_weights(spec, "timm", weights_path)

    def build(num_classes: int | None) -> nn.Module:
        extra = {} if num_classes is None else {"num_classes": num_classes}
        # pretrained=False: the architecture only, nothing is downloaded
        return timm.create_model(architecture, pretrained=False, **extra)

    model = _with_file_outputs(build, state)
    fit_state_dict(model, state, weights_path, spec)
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
            "downloads weights, and a network with random weights has nothing to explain "
            f"(the built-in pretrained models need none: {', '.join(available())})"
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


# ----------------------------------------------------------------------------- helpers


def _torchvision_names() -> list[str]:
    return torchvision.models.list_models(module=torchvision.models)


def _timm_installed() -> bool:
    return importlib.util.find_spec("timm") is not None


def _timm() -> types.ModuleType:  # imported only when needed: importing timm takes seconds
    return importlib.import_module("timm")


def _known() -> list[str]:
    return [*available(), *_torchvision_names()]


def _forms_help() -> str:
    timm_note = "" if _timm_installed() else f" (timm needs `{TIMM_INSTALL}`)"
    return (
        f"--model takes a built-in pretrained model ({', '.join(available())}); a "
        f"torchvision or timm architecture name with --weights FILE{timm_note}, e.g. resnet18, "
        "timm:resnet10t; an ONNX file (FILE.onnx); a model file saved whole with "
        "torch.save(model, FILE) (TorchScript files are refused: hooks cannot run in them); or "
        "package.module:factory for your own code"
    )


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
