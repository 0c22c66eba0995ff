"""Methods that need no gradient: CAM (from the classifier's weights) and Eigen-CAM."""

from __future__ import annotations

import torch
from torch import nn

from ..outputs import select_output
from .base import BaseCAM
from .context import LayerContext
from .maps import weighted_sum


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
    correlates positively with the channel-mean activation.  Class-agnostic: every target
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

    def compute(self, context: LayerContext) -> tuple[torch.Tensor, None]:
        positions = context.activations.transpose(1, 2)  # (B, S, K)
        centred = positions - positions.mean(1, keepdim=True)
        _, _, right_vectors = torch.linalg.svd(centred, full_matrices=False)
        projection = (centred @ right_vectors[:, 0, :, None]).squeeze(-1)  # (B, S)
        mean_activation = context.activations.mean(1)
        agreement = ((projection - projection.mean(-1, keepdim=True))
                     * (mean_activation - mean_activation.mean(-1, keepdim=True))).sum(-1)
        projection = torch.where(agreement[:, None] < 0, -projection, projection)
        count = context.scores.shape[1]
        return projection[:, None].expand(-1, count, -1), None
