"""axiomcam: class activation maps for any PyTorch CNN, and measures of how good they are.

Examples:
    >>> import torch, torchvision, axiomcam
    >>> model = torchvision.models.resnet18(num_classes=10)
    >>> exp = axiomcam.explain(model, torch.rand(2, 3, 64, 64), method="xgradcam")
    >>> exp.target_layer, exp.maps.shape
    ('layer4', torch.Size([2, 64, 64]))
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import torch
from torch import nn

from . import methods
from .explanation import Explanation
from .methods import METHOD_NAMES, AxiomCamWarning
from .targets import LabelsAbove, TargetSpec, TopClasses

__version__ = "0.1.0"


def explain(model: nn.Module, inputs: torch.Tensor, method: str = "xgradcam",
            target_layer: str | nn.Module | Sequence[str | nn.Module] | None = None,
            targets: TargetSpec = None, **options: object) -> Explanation:
    """Explain a batch: which parts of each image made the model give its score.

    Args:
        model: any ``torch.nn.Module`` (put in eval mode for the call, restored after;
            no parameter gradient is computed or stored).
        inputs: ``(B, C, H, W)`` float tensor on the model's device, preprocessed as the
            model expects (``(B, C, T, H, W)`` for 3D networks, ``(B, C, L)`` for 1D
            signals: maps are then ``(B, L)``).
        method: one of :data:`axiomcam.METHOD_NAMES`: ``"cam"``, ``"gradcam"``,
            ``"gradcam++"``, ``"xgradcam"``, ``"hirescam"``, ``"layercam"``,
            ``"ablationcam"``, ``"scorecam"``, ``"eigencam"``, ``"guided_backprop"`` and
            ``"guided_<cam>"`` for each of them (``"guided_gradcam"``, ...).
        target_layer: a qualified name (``"layer4"``, ``"features.18"``), a module, or
            ``None`` for the last layer with a ``(B, C, h, w)`` output with ``h*w > 1``
            (reported in ``Explanation.target_layer``), or a list of them: each layer's
            explanation in ``Explanation.layers`` and the fused map in ``maps`` (see
            :class:`~axiomcam.methods.BaseCAM`).
        targets: ``None`` (each image's top class), an int, one class per image (a
            sequence or 1-D tensor of length ``B``), a ``(B, k)`` tensor (``k`` maps per
            image from one forward pass; also equal-length rows ``[[1, 4], [2, 3]]``),
            ``TopClasses(k)`` (each image's ``k`` most probable classes, found in the same
            forward pass), ``LabelsAbove(t)`` (each image's labels with
            ``sigmoid(z_c) >= t``, a multi-label head), ``ClassScore(c, sigmoid=True)``
            (or ``softmax=True``: a probability instead of the logit), or a callable
            ``output -> (B,)`` scores.  A single-logit (binary) model has classes ``0``
            (the negative, ``-z``) and ``1`` (the positive, ``z``).
        **options: ``smooth`` (noisy copies to average, SmoothGrad-style), ``smooth_sigma``
            (0.15 of the image's range), ``seed``, ``batch_size`` (perturbed copies per
            forward pass), ``progress``, ``counterfactual=True`` (the evidence *against*
            each target: a gradient method's formula of ``-dy^c/dA``; see
            :class:`~axiomcam.methods.Explainer`), ``aug_smooth=True`` (the mean of the
            maps of flipped and intensity-scaled copies, brought back), and method options such as
            Ablation-CAM's ``weights="score" | "activation"``.

    Returns:
        an :class:`Explanation` (``maps``, ``raw``, ``channel_weights``, ``scores``,
        ``targets``, ``target_layer``, ``guided``, ``logits``, ``selected``).
    """
    return methods.create(method, model, target_layer, **options)(inputs, targets)


# imported on first use (PEP 562): axiomcam.models imports torchvision's model code, which
# `import axiomcam` alone does not need
_LAZY_SUBMODULES = ("models",)


def __getattr__(name: str) -> object:
    """``axiomcam.models``, imported the first time it is asked for, so that
    ``import axiomcam; axiomcam.models.load("mobilenet_v2")`` works while ``import axiomcam``
    stays fast.

    Raises:
        AttributeError: ``name`` is not an attribute of axiomcam.
    """
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names, the lazily imported ``models`` included."""
    return sorted({*globals(), *_LAZY_SUBMODULES})


__all__ = [
    "METHOD_NAMES", "AxiomCamWarning", "Explanation", "LabelsAbove", "TopClasses", "explain",
    "methods", "models",
]
