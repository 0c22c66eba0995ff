"""Perturbation methods: Ablation-CAM and Score-CAM.

Their forward passes (one per channel, in batches of ``batch_size``) are run by the core;
the classes only say how the measured scores become channel weights.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from .core import BaseCAM, LayerContext
from .maps import safe_divide, weighted_sum

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

    Example:
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

    Example:
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
        masked, baseline = context.masked_input_probabilities()
        channel_weights = masked - baseline[..., None]
        return weighted_sum(channel_weights, context.activations), channel_weights
