"""Methods that need no gradient: CAM (from the classifier's weights), Eigen-CAM, FEM and
the random-map baseline."""

from __future__ import annotations

import torch
from torch import nn

from ..outputs import select_output
from .base import BaseCAM
from .capture import LayerSpec
from .context import LayerContext
from .maps import principal_projection, weighted_sum


class CAM(BaseCAM):
    """CAM (Zhou et al., CVPR 2016), for a layer that feeds global average pooling and one
    linear layer (ResNet's ``layer4``, MobileNetV2's ``features.18``).

    ``w_k = W[c, k] / (h w)`` with ``W`` that linear layer's weight;
    ``L = ReLU(sum_k w_k A^k)``.  The paper's weights are ``W[c, k]``; the ``1 / (h w)``
    (which changes no map) makes ``raw`` equal Grad-CAM's and XGrad-CAM's on such heads
    and makes ``sum_ij raw = y^c - b_c``.

    The head is checked numerically: the model's output must equal
    ``linear(mean_ij(A))``.  Any other layer raises a ``ValueError``.

    Examples:
        >>> import torch, torchvision
        >>> from axiomcam.methods import CAM, GradCAM
        >>> model = torchvision.models.resnet18(num_classes=10)
        >>> x = torch.rand(2, 3, 64, 64)
        >>> torch.allclose(CAM(model, "layer4")(x).raw, GradCAM(model, "layer4")(x).raw,
        ...                atol=1e-6)
        True
    """

    name = "cam"
    title = "CAM"

    def compute(self, context: LayerContext) -> tuple[torch.Tensor, torch.Tensor]:
        classes = context.targets.classes
        if classes is None:
            raise ValueError(
                "CAM explains class scores with the classifier's weights; for a callable "
                "target use a gradient method (gradcam, xgradcam, ...)"
            )
        linear = self._head(context)
        weight = linear.weight.detach().to(context.activations.dtype)
        channel_weights = weight[classes] / context.activations.shape[-1]  # (B, n, K)
        return weighted_sum(channel_weights, context.activations), channel_weights

    def _head(self, context: LayerContext) -> nn.Linear:
        pooled = context.activations.mean(-1)  # (B, K): global average pooling
        # this pass's class scores (a Hugging Face ModelOutput's logits, a dict's ...)
        output = select_output(context.output, self.output)
        channels = pooled.shape[1]
        largest_difference = None
        for module in reversed(list(self.model.modules())):
            if not (isinstance(module, nn.Linear) and module.in_features == channels):
                continue
            if not (torch.is_tensor(output) and output.shape == (pooled.shape[0],
                                                                  module.out_features)):
                continue
            predicted = nn.functional.linear(pooled, module.weight.detach(),
                                             None if module.bias is None
                                             else module.bias.detach())
            difference = float((predicted - output).abs().max())
            scale = float(output.abs().max().clamp_min(1.0))
            if difference <= 1e-4 * scale:
                return module
            largest_difference = difference
        detail = ("" if largest_difference is None
                  else f" (linear(mean(A)) differs from the output by {largest_difference:.3g})")
        raise ValueError(
            f"CAM needs the target layer to feed global average pooling and one linear "
            f"layer (like ResNet's layer4 or MobileNetV2's features.18); at "
            f"{context.target_layer!r} the model's output is not linear(mean(A)){detail}. "
            "Grad-CAM and XGrad-CAM work at any layer and equal CAM on such heads."
        )


class EigenCAM(BaseCAM):
    """Eigen-CAM (Muhammad & Yeasin, IJCNN 2020): the activations' first principal component.

    ``X`` = ``A`` as an ``(h w) x K`` matrix, centred per channel; ``v`` its first right
    singular vector; ``L = ReLU(X v)``, the sign of ``v`` chosen so that the map
    correlates positively with the channel-mean activation
    (:func:`~axiomcam.methods.maps.principal_projection`).  Class-agnostic: every target
    gets the same map.  No channel weights (the centring adds a constant).

    Examples:
        >>> import torch, torchvision
        >>> from axiomcam.methods import EigenCAM
        >>> model = torchvision.models.resnet18(num_classes=10)
        >>> image = torch.rand(1, 3, 64, 64)
        >>> EigenCAM(model, "layer3")(image).maps.shape
        torch.Size([1, 64, 64])
        >>> maps = EigenCAM(model, "layer3")(image, torch.tensor([[1, 7]])).maps  # two classes,
        >>> torch.equal(maps[:, 0], maps[:, 1])  # one map
        True
    """

    name = "eigencam"
    title = "Eigen-CAM"
    has_channel_weights = False
    has_channel_terms = False

    def compute(self, context: LayerContext) -> tuple[torch.Tensor, None]:
        projection = principal_projection(context.activations.transpose(1, 2))  # (B, S)
        return projection[:, None].expand(-1, context.scores.shape[1], -1), None


class FEM(BaseCAM):
    """FEM, the Feature Explanation Method (Fuad et al., IPTA 2020; Bourqui et al.): the
    channels weighted by how much of each is unusually strong (the k-sigma rule).

    ``mu_k``, ``sigma_k`` the mean and (population) standard deviation of ``A^k`` over the
    positions; ``w_k = mean_ij [A^k_ij > mu_k + t sigma_k]`` (the fraction of positions
    above the threshold, ``t = threshold_sigmas``); ``L = ReLU(sum_k w_k A^k)``.
    Class-agnostic: every target gets the same map. Over ``S`` positions no value lies
    more than ``sqrt(S - 1)`` standard deviations above the mean, so with ``t = 2`` a
    layer of fewer than 6 positions gets all-zero weights (and a zero map).

    Examples:
        >>> import torch, torchvision
        >>> from axiomcam.methods import FEM
        >>> model = torchvision.models.resnet18(num_classes=10)
        >>> FEM(model, "layer3")(torch.rand(1, 3, 64, 64)).channel_weights.shape
        torch.Size([1, 256])
    """

    name = "fem"
    title = "FEM"

    def __init__(self, model: nn.Module, target_layer: LayerSpec = None, *,
                 threshold_sigmas: float = 2.0, **options: object) -> None:
        if isinstance(threshold_sigmas, bool) or not isinstance(threshold_sigmas, int | float):
            raise TypeError(f"threshold_sigmas must be a number, not {threshold_sigmas!r}")
        super().__init__(model, target_layer, **options)
        #: ``t`` of the threshold ``mu_k + t sigma_k``
        self.threshold_sigmas = float(threshold_sigmas)

    def compute(self, context: LayerContext) -> tuple[torch.Tensor, torch.Tensor]:
        activations = context.activations
        threshold = (activations.mean(-1, keepdim=True)
                     + self.threshold_sigmas * activations.std(-1, correction=0, keepdim=True))
        weights = (activations > threshold).to(activations.dtype).mean(-1)  # (B, K)
        channel_weights = weights[:, None].expand(-1, context.scores.shape[1], -1)
        return weighted_sum(channel_weights, activations), channel_weights


class RandomCAM(BaseCAM):
    """A random-map baseline (pytorch-grad-cam's RandomCAM): ``w_k ~ U(-1, 1)``, drawn
    independently per image, target and channel; ``L = ReLU(sum_k w_k A^k)``. It says
    nothing about the model: a metric that cannot tell a method from it measures nothing.

    ``seed`` makes it reproducible (the same seed and batch shape, the same weights on
    every call; the draws are per batch, so an image alone gets other weights than in a
    batch); ``None`` draws fresh weights each call.

    Examples:
        >>> import torch, torchvision
        >>> from axiomcam.methods import RandomCAM
        >>> model, x = torchvision.models.resnet18(num_classes=10), torch.rand(1, 3, 64, 64)
        >>> torch.equal(RandomCAM(model, "layer4", seed=0)(x).channel_weights,
        ...             RandomCAM(model, "layer4", seed=0)(x).channel_weights)
        True
    """

    name = "randomcam"
    title = "Random-CAM"

    def compute(self, context: LayerContext) -> tuple[torch.Tensor, torch.Tensor]:
        activations = context.activations
        generator = torch.Generator(device=activations.device)
        if self.seed is None:
            generator.seed()
        else:
            generator.manual_seed(self.seed)
        shape = (activations.shape[0], context.scores.shape[1], activations.shape[1])
        uniform = torch.rand(shape, generator=generator, device=activations.device,
                             dtype=activations.dtype)
        channel_weights = 2 * uniform - 1
        return weighted_sum(channel_weights, activations), channel_weights
