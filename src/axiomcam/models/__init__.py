"""Loading a classifier to explain: one entry point, :func:`load`, for every form the CLI's
``--model`` takes, and :func:`from_onnx` for ONNX files with their options.

- :func:`load`: a built-in pretrained model (:func:`available`: ``"mobilenet_v2"``,
  ``"efficientnet_lite0"``, weights from installed packages), a torchvision or timm
  architecture with a state-dict file, a whole-model file, an ONNX file, or
  ``package.module:factory``; nothing is downloaded;
- :func:`from_onnx` and :func:`onnx_layer`: ONNX files converted by onnx2torch, layers named
  by their ONNX node names;
- :class:`PretrainedModel`: what they return (the network, its preprocessing, its class
  names and default layer);
- :func:`read_state_dict`, :func:`load_state_dict_file`, :func:`read_class_names`: the
  weights and class-name files.

Modules: :mod:`~axiomcam.models.pretrained` (PretrainedModel, ImageNet preprocessing),
:mod:`~axiomcam.models.builtin` (the packaged models), :mod:`~axiomcam.models.files` (state
dicts, whole-model and class-name files), :mod:`~axiomcam.models.specs` (reading a spec:
:func:`load`), :mod:`~axiomcam.models.onnx` and :mod:`~axiomcam.models.onnx_graph` (the
input layout, a final Softmax, baked-in rescaling), :mod:`~axiomcam.models.checks` (errors
and shared checks).

Examples:
    >>> from axiomcam import models
    >>> from axiomcam.images import sample_image
    >>> pretrained = models.load("mobilenet_v2")
    >>> logits = pretrained.model(pretrained.prepare(sample_image("coffee")))
    >>> pretrained.top_classes(logits, k=1)[0][0][:2]
    (967, 'espresso')
"""

from __future__ import annotations

from .builtin import TFLITE_MEAN, TFLITE_STD, available
from .checks import MissingWeightsError, ModelSpecError
from .files import load_state_dict_file, read_class_names, read_state_dict
from .onnx import ONNX_LAYERS_KEY, ONNX_SCORES, from_onnx, onnx_layer
from .pretrained import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INPUT_SIZE,
    PREPROCESS_PRESETS,
    RESIZE_TO,
    PretrainedModel,
)
from .specs import load

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "INPUT_SIZE", "ONNX_LAYERS_KEY", "ONNX_SCORES",
    "PREPROCESS_PRESETS", "RESIZE_TO", "TFLITE_MEAN", "TFLITE_STD", "MissingWeightsError",
    "ModelSpecError", "PretrainedModel", "available",
    "from_onnx", "load", "load_state_dict_file", "onnx_layer", "read_class_names",
    "read_state_dict",
]
