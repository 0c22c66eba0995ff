"""Every explanation method, as reusable objects, and the registry of their names.

Examples:
    >>> import torch, torchvision
    >>> from axiomcam.methods import XGradCAM
    >>> model = torchvision.models.resnet18(num_classes=10)
    >>> with XGradCAM(model, "layer4") as cam:
    ...     maps = [cam(torch.rand(2, 3, 64, 64)).maps for _ in range(3)]
    >>> maps[0].shape
    torch.Size([2, 64, 64])
"""

from __future__ import annotations

from ..support import AxiomCamWarning
from .activation import CAM, FEM, EigenCAM, RandomCAM
from .base import BaseCAM, Explainer, GradientCAM, PartialResult
from .capture import LayerCapture, TargetLayer, capturing
from .context import LayerContext, capture_layer
from .decomposition import KERNELS, KPCACAM, EigenGradCAM
from .engine import (
    ABLATION_COPY_BYTES,
    DEFAULT_BATCH_SIZE,
    AblationCache,
    PerturbationEngine,
    check_batch_size,
    model_output,
)
from .fullgrad import FullGrad
from .gradient import (
    FinerCAM,
    GradCAM,
    GradCAMElementWise,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ShapleyCAM,
    SmoothGradCAMPlusPlus,
    XGradCAM,
)
from .guided import Guided, GuidedBackprop
from .occlusion import Occlusion, occlusion_positions
from .perturbation import ISCAM, SSCAM, AblationCAM, ScoreCAM, masked_input_probabilities
from .registry import (
    CAM_METHODS,
    CHANNEL_WEIGHT_METHODS,
    COUNTERFACTUAL_METHODS,
    METHOD_NAMES,
    METHODS,
    VARIANT_NAMES,
    MethodInfo,
    create,
    has_channel_weights,
    method_info,
    method_options,
    normalise_method_name,
)

__all__ = [
    "ABLATION_COPY_BYTES", "CAM", "CAM_METHODS", "CHANNEL_WEIGHT_METHODS",
    "COUNTERFACTUAL_METHODS", "DEFAULT_BATCH_SIZE", "FEM", "ISCAM", "KERNELS", "KPCACAM",
    "METHODS", "METHOD_NAMES", "SSCAM", "VARIANT_NAMES", "AblationCAM", "AblationCache",
    "AxiomCamWarning", "BaseCAM", "EigenCAM", "EigenGradCAM", "Explainer", "FinerCAM",
    "FullGrad", "GradCAM", "GradCAMElementWise", "GradCAMPlusPlus", "GradientCAM", "Guided",
    "GuidedBackprop", "HiResCAM", "LayerCAM", "LayerCapture", "LayerContext", "MethodInfo",
    "Occlusion", "PartialResult", "PerturbationEngine", "RandomCAM", "ScoreCAM", "ShapleyCAM",
    "SmoothGradCAMPlusPlus", "TargetLayer", "XGradCAM", "capture_layer", "capturing",
    "check_batch_size", "create", "has_channel_weights", "masked_input_probabilities",
    "method_info", "method_options", "model_output", "normalise_method_name",
    "occlusion_positions",
]
