"""Perturbation methods: Ablation-CAM and Score-CAM.

Each says which copies it measures (Ablation-CAM: the layer's output with one channel
zeroed, :meth:`~axiomcam.methods.LayerContext.channel_ablation_scores`; Score-CAM: the
input masked by one channel) and how the measured scores become channel weights; the
:class:`~axiomcam.methods.engine.PerturbationEngine` runs the copies (one per channel, in
batches of ``batch_size``, with progress).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from ..support import check_scores
from .base import BaseCAM
from .context import LayerContext
from .maps import minmax_scale_quiet, safe_divide, upsample, weighted_sum

__all__ = ["AblationCAM", "AblationWeights", "ScoreCAM", "masked_input_probabilities"]

AblationWeights = Literal["score", "activation"]


class AblationCAM(BaseCAM):
    """Ablation-CAM (Desai & Ramaswamy, WACV 2020).

    ``y^c_(k)`` is the score with channel ``k`` of the target layer's output set to zero;
    ``L = ReLU(sum_k w_k A^k)`` with

    - ``weights="score"`` (default, the paper's form): ``w_k = (y^c - y^c_(k)) / y^c``;
    - ``weights="activation"``: ``w_k = (y^c - y^c_(k)) / sum_ij A^k_ij`` (0 for an
      all-zero channel), the form that satisfies XGrad-CAM's sensitivity axiom exactly
      (``sum_ij w_k A^k_ij = y^c - y^c_(k)``).

    Only the network *after* the target layer is re-run for the ``K`` ablated copies when
    the model allows it (the copies are swapped in at the layer's forward hook); models
    whose later layers reshape with the input's batch size fall back to re-running the
    whole network on copies of the image (a warning says so).

    Examples:
        >>> import torch, torchvision
        >>> from axiomcam.methods import AblationCAM
        >>> model = torchvision.models.resnet18(num_classes=10)
        >>> exp = AblationCAM(model, "layer4", weights="activation")(torch.rand(1, 3, 64, 64))
        >>> exp.channel_weights.shape
        torch.Size([1, 512])
    """

    name = "ablationcam"
    title = "Ablation-CAM"
    cost = "ablation"
    #: ``"ablationcam:activation"`` names the sensitivity-exact form (see :func:`create`)
    variant_option: ClassVar[str] = "weights"
    variants: ClassVar[tuple[str, ...]] = ("activation",)

    def __init__(self, model: nn.Module, target_layer: str | nn.Module | None = None, *,
                 weights: AblationWeights = "score", **options: object) -> None:
        if weights not in ("score", "activation"):
            raise ValueError(f"weights must be 'score' or 'activation', got {weights!r}")
        super().__init__(model, target_layer, **options)
        self.weights = weights
        if weights != "score":
            self.name = f"ablationcam:{weights}"  # what Explanation.method reports

    def compute(self, context: LayerContext) -> tuple[torch.Tensor, torch.Tensor]:
        drop = context.scores[..., None] - context.channel_ablation_scores()  # (B, n, K)
        if self.weights == "score":
            channel_weights = safe_divide(drop, context.scores[..., None])
        else:
            channel_weights = safe_divide(drop, context.activations.sum(-1)[:, None, :])
        return weighted_sum(channel_weights, context.activations), channel_weights


class ScoreCAM(BaseCAM):
    """Score-CAM (Wang et al., CVPR workshops 2020).

    ``M_k`` = channel ``k`` upsampled to the input (bilinear) and min-max scaled to
    ``[0, 1]``; ``s_k = p_c(x * M_k) - p_c(0)`` with ``p_c`` the softmax probability of
    the class (for a callable target: the callable's value) and ``0`` the all-zero
    baseline image; ``L = ReLU(sum_k s_k A^k)``.  Unlike some libraries, the ``s_k`` are
    *not* softmax-normalised over channels: they are the raw increases in confidence.

    Examples:
        >>> import torch, torchvision
        >>> from axiomcam.methods import ScoreCAM
        >>> model = torchvision.models.resnet18(num_classes=10)
        >>> ScoreCAM(model, "layer4", batch_size=128)(torch.rand(1, 3, 64, 64)).maps.shape
        torch.Size([1, 64, 64])
    """

    name = "scorecam"
    title = "Score-CAM"
    cost = "masking"

    def compute(self, context: LayerContext) -> tuple[torch.Tensor, torch.Tensor]:
        masked, baseline = masked_input_probabilities(context)
        channel_weights = masked - baseline[..., None]
        return weighted_sum(channel_weights, context.activations), channel_weights


def masked_input_probabilities(context: LayerContext) -> tuple[torch.Tensor, torch.Tensor]:
    """Score-CAM's forward passes: ``(B, n, K)`` the target probability of ``x * M_k``
    (``M_k`` channel ``k`` upsampled to the input and min-max scaled to [0, 1]) and
    ``(B, n)`` the probability of the all-zero baseline.  A channel that is constant over
    positions has an all-zero mask ``M_k`` (see :func:`~axiomcam.methods.maps.minmax_scale`):
    its masked image *is* the baseline, so it gets the baseline's probability and no pass
    is run for it."""
    engine, inputs, targets = context.engine, context.inputs, context.targets
    batch, channels = context.batch_size, context.num_channels
    input_size = tuple(inputs.shape[2:])
    flat = context.activations
    activations = flat.view(batch, channels, *context.spatial_shape)
    with torch.no_grad():
        baseline = targets.probabilities(engine.forward(torch.zeros_like(inputs)),
                                         torch.arange(batch, device=inputs.device))
        result = baseline[..., None].repeat(1, 1, channels)
        varying = (flat.amax(-1) - flat.amin(-1)) > torch.finfo(flat.dtype).tiny
        for image, chunk in engine.chunks(varying, "Score-CAM", engine.images_per_pass):
            masks = upsample(activations[image:image + 1, chunk], input_size)
            masks = minmax_scale_quiet(masks).transpose(0, 1)  # (m, 1, *input)
            result[image, :, chunk] = engine.copy_scores(
                image, inputs[image:image + 1] * masks, targets.probabilities).T
    return check_scores(result), baseline
