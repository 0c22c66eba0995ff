"""Perturbation methods: Ablation-CAM, Score-CAM and its sampled forms SS-CAM and IS-CAM.

Each says which copies it measures (Ablation-CAM: the layer's output with one channel
zeroed, :meth:`~axiomcam.methods.LayerContext.channel_ablation_scores`; Score-CAM: the
input masked by one channel) and how the measured scores become channel weights; the
:class:`~axiomcam.methods.engine.PerturbationEngine` runs the copies (one per channel, in
batches of ``batch_size``, with progress).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal

import torch
from torch import nn

from ..support import check_scores
from .base import BaseCAM
from .context import LayerContext
from .engine import check_noise_std, check_samples, noise_generator
from .maps import minmax_scale_quiet, safe_divide, upsample, weighted_sum

__all__ = [
    "ISCAM", "SSCAM", "AblationCAM", "AblationWeights", "ScoreCAM", "baseline_probabilities",
    "masked_input_probabilities", "sampled_mask_probabilities",
]

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


class SSCAM(BaseCAM):
    """SS-CAM, Smoothed Score-CAM (Wang, Naidu et al., arXiv:2006.14255, 2020).

    Score-CAM with each mask perturbed by Gaussian noise, ``N`` times (the paper's
    smoothing of the feature maps, "SS-CAM(1)"):
    ``s_k = (1/N) sum_i p_c(x * (M_k + delta_ik)) - p_c(0)``, ``delta_ik ~ N(0, std^2)``
    drawn at every input position, ``M_k`` as in :class:`ScoreCAM` (channel ``k``
    upsampled and min-max scaled to [0, 1]); ``L = ReLU(sum_k s_k A^k)``.  Like our
    Score-CAM, the ``s_k`` are not softmaxed over channels and the baseline is the
    all-zero image (torchcam: a softmax of logit differences to the unmasked image;
    docs/peers.md).  Every channel is run (a constant channel's noisy mask is not zero):
    ``N * K`` passes per image, batched by the perturbation engine.

    Args:
        num_samples: ``N``, noisy masks per channel (35, torchcam's default).
        std: the noise's standard deviation, on the [0, 1] scale of the masks (2.0,
            torchcam's default).
        seed: seeds the noise (0 by default, so a call gives the same map every time;
            ``None``: fresh noise per call). On the CPU the noise does not depend on
            ``batch_size`` when ``H * W`` is a multiple of 16 (torch draws normal noise
            in blocks of 16).
        **options: see :class:`BaseCAM`.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from axiomcam.methods import SSCAM
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
        >>> cam = SSCAM(model, "1", num_samples=4, std=0.5, seed=0)
        >>> exp = cam(torch.rand(2, 3, 16, 16))  # 4 x 8 noisy masked copies per image
        >>> exp.channel_weights.shape, exp.maps.shape
        (torch.Size([2, 8]), torch.Size([2, 16, 16]))
    """

    name = "sscam"
    title = "SS-CAM"
    cost = "noisy masking"

    def __init__(self, model: nn.Module, target_layer: str | nn.Module | None = None, *,
                 num_samples: int = 35, std: float = 2.0, seed: int | None = 0,
                 **options: object) -> None:
        super().__init__(model, target_layer, seed=seed, **options)
        self.num_samples = check_samples(num_samples)
        self.std = check_noise_std(std)

    def compute(self, context: LayerContext) -> tuple[torch.Tensor, torch.Tensor]:
        generator = noise_generator(self.seed, context.inputs.device)

        def noisy(_sample: int, masks: torch.Tensor) -> torch.Tensor:
            return masks + self.std * torch.randn(masks.shape, generator=generator,
                                                  device=masks.device, dtype=masks.dtype)

        baseline = baseline_probabilities(context)
        masked = sampled_mask_probabilities(context, "SS-CAM", samples=self.num_samples,
                                            perturb=noisy)
        channel_weights = masked - baseline[..., None]
        return weighted_sum(channel_weights, context.activations), channel_weights


class ISCAM(BaseCAM):
    """IS-CAM, Integrated Score-CAM (Naidu et al., arXiv:2010.03023, 2020).

    Score-CAM's confidence integrated along the straight path from the all-zero image to
    the masked image, a Riemann sum of ``N`` steps (the integration of Integrated
    Gradients): ``s_k = (1/N) sum_{i=1..N} p_c(x * (i/N) M_k) - p_c(0)``, ``M_k`` as in
    :class:`ScoreCAM`; ``L = ReLU(sum_k s_k A^k)``.  torchcam scales the ``i``-th mask by
    the *cumulative* ``sum_{j<=i} j/N`` (up to ``(N+1)/2``, past the image) and softmaxes
    the scores (docs/peers.md).  A constant channel's path stays at the baseline: no pass.
    ``N * K`` passes per image, batched by the perturbation engine.

    Args:
        num_samples: ``N``, steps along the path (10, torchcam's default).

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from axiomcam.methods import ISCAM, ScoreCAM
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
        >>> x = torch.rand(1, 3, 16, 16)
        >>> one_step = ISCAM(model, "1", num_samples=1)(x).channel_weights  # the path's end
        >>> torch.allclose(one_step, ScoreCAM(model, "1")(x).channel_weights)
        True
    """

    name = "iscam"
    title = "IS-CAM"
    cost = "integrated masking"

    def __init__(self, model: nn.Module, target_layer: str | nn.Module | None = None, *,
                 num_samples: int = 10, **options: object) -> None:
        super().__init__(model, target_layer, **options)
        self.num_samples = check_samples(num_samples)

    def compute(self, context: LayerContext) -> tuple[torch.Tensor, torch.Tensor]:
        steps = self.num_samples

        def scaled(sample: int, masks: torch.Tensor) -> torch.Tensor:
            return masks * ((sample + 1) / steps)

        baseline = baseline_probabilities(context)
        masked = sampled_mask_probabilities(context, "IS-CAM", baseline=baseline,
                                            samples=steps, perturb=scaled)
        channel_weights = masked - baseline[..., None]
        return weighted_sum(channel_weights, context.activations), channel_weights


def masked_input_probabilities(context: LayerContext) -> tuple[torch.Tensor, torch.Tensor]:
    """Score-CAM's forward passes: ``(B, n, K)`` the target probability of ``x * M_k``
    (``M_k`` channel ``k`` upsampled to the input and min-max scaled to [0, 1]) and
    ``(B, n)`` the probability of the all-zero baseline.  A channel that is constant over
    positions has an all-zero mask ``M_k`` (see :func:`~axiomcam.methods.maps.minmax_scale`):
    its masked image *is* the baseline, so it gets the baseline's probability and no pass
    is run for it."""
    baseline = baseline_probabilities(context)
    return sampled_mask_probabilities(context, "Score-CAM", baseline=baseline), baseline


def baseline_probabilities(context: LayerContext) -> torch.Tensor:
    """``(B, n)``: the target probability of the all-zero image (Score-CAM's baseline)."""
    inputs = context.inputs
    with torch.no_grad():
        return context.targets.probabilities(context.engine.forward(torch.zeros_like(inputs)),
                                             torch.arange(context.batch_size,
                                                          device=inputs.device))


#: how a sampled Score-CAM changes the masks of sample ``i``: ``(i, masks (m, 1, *input))
#: -> masks``
MaskPerturbation = Callable[[int, torch.Tensor], torch.Tensor]


def sampled_mask_probabilities(context: LayerContext, description: str, *,
                               baseline: torch.Tensor | None = None, samples: int = 1,
                               perturb: MaskPerturbation | None = None) -> torch.Tensor:
    """``(B, n, K)``: ``(1/N) sum_i p_c(x * perturb(i, M_k))`` over ``N = samples``, the
    masked-input passes of Score-CAM (``N = 1``, no ``perturb``) and its sampled forms
    (SS-CAM's noisy masks, IS-CAM's scaled ones), run by the perturbation engine in
    batches with one progress bar, sample by sample, image by image, channel by channel
    (which is also the order in which a ``perturb`` drawing noise draws it).

    With ``baseline`` ``(B, n)``, the channels constant over positions (all-zero mask, so
    every ``x * c M_k`` is the all-zero image) get the baseline's probability and no pass;
    without, every channel is run (a noisy mask is not zero).
    """
    engine, inputs, targets = context.engine, context.inputs, context.targets
    batch, channels = context.batch_size, context.num_channels
    input_size = tuple(inputs.shape[2:])
    flat = context.activations
    activations = flat.view(batch, channels, *context.spatial_shape)
    run = torch.ones(batch, channels, dtype=torch.bool, device=flat.device)
    if baseline is not None:
        run = (flat.amax(-1) - flat.amin(-1)) > torch.finfo(flat.dtype).tiny
    total = flat.new_zeros(batch, targets.count, channels)
    with torch.no_grad():
        for row, chunk in engine.chunks(run.repeat(samples, 1), description,
                                        engine.images_per_pass):
            sample, image = divmod(row, batch)
            masks = upsample(activations[image:image + 1, chunk], input_size)
            masks = minmax_scale_quiet(masks).transpose(0, 1)  # (m, 1, *input)
            if perturb is not None:
                masks = perturb(sample, masks)
            total[image, :, chunk] += engine.copy_scores(
                image, inputs[image:image + 1] * masks, targets.probabilities).T
    total = total / samples
    if baseline is not None:
        total = torch.where(run[:, None, :], total, baseline[..., None])
    return check_scores(total)
