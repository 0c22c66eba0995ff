"""Gradient methods: Grad-CAM, Grad-CAM++, XGrad-CAM, HiResCAM, Layer-CAM.

Each takes the target layer's activations ``A`` (``K`` channels) and the gradient
``G = dy^c / dA`` from one backward pass that stops at the layer.

Counterfactual explanations (``counterfactual=True``; Selvaraju et al., 2017): every
method here receives ``-G`` instead of ``G`` (negated once, in
:func:`~axiomcam.methods.context.score_gradients`) and applies its own formula, so its map
shows the evidence against the class. Grad-CAM, XGrad-CAM and HiResCAM are linear in ``G``:
their counterfactual ``raw`` is exactly ``-raw`` and the map ``ReLU(-raw)``. Grad-CAM++ and
Layer-CAM take ``ReLU(G)`` inside, so their counterfactual maps are not ``ReLU(-raw)``; each
class's docstring gives its form.
"""

from __future__ import annotations

import torch

from .base import GradientCAM
from .maps import safe_divide


class GradCAM(GradientCAM):
    """Grad-CAM (Selvaraju et al., ICCV 2017).

    ``w_k = mean_ij G^k_ij``;  ``L = ReLU(sum_k w_k A^k)``.  Counterfactual (the paper's
    own form): ``w_k = mean_ij (-G^k_ij)``, the regions whose removal would raise ``y^c``.

    Examples:
        >>> import torch, torchvision
        >>> from axiomcam.methods import GradCAM
        >>> model = torchvision.models.resnet18(num_classes=10)
        >>> with GradCAM(model, "layer4") as cam:
        ...     exp = cam(torch.rand(2, 3, 64, 64), targets=[3, 7])
        >>> exp.maps.shape, exp.targets.tolist()
        (torch.Size([2, 64, 64]), [3, 7])
    """

    name = "gradcam"
    title = "Grad-CAM"

    def channel_weights_from(self, activations: torch.Tensor,
                             gradients: torch.Tensor) -> torch.Tensor:
        return gradients.mean(-1)


class XGradCAM(GradientCAM):
    """XGrad-CAM (Fu et al., "Axiom-based Grad-CAM", BMVC 2020).

    ``w_k = sum_ij (A^k_ij / sum_ab A^k_ab) G^k_ij`` (0 for an all-zero channel);
    ``L = ReLU(sum_k w_k A^k)``.  These weights minimise the deviation from the
    conservation and sensitivity axioms; ``sum_ij raw = sum_k sum_ij G^k_ij A^k_ij``, which
    equals ``y^c`` when the network after the layer has no bias terms (Euler's theorem).
    Counterfactual: ``w_k = sum_ij (A^k_ij / sum_ab A^k_ab) (-G^k_ij)``, i.e. the weights
    and raw map negated (it then conserves ``-y^c``).

    Examples:
        >>> import torch, torchvision
        >>> from axiomcam.methods import XGradCAM
        >>> model = torchvision.models.resnet18(num_classes=10)
        >>> with XGradCAM(model, "layer3") as cam:
        ...     exp = cam(torch.rand(1, 3, 64, 64))
        >>> exp.raw.shape
        torch.Size([1, 4, 4])
    """

    name = "xgradcam"
    title = "XGrad-CAM"

    def channel_weights_from(self, activations: torch.Tensor,
                             gradients: torch.Tensor) -> torch.Tensor:
        return safe_divide((activations * gradients).sum(-1), activations.sum(-1))


class GradCAMPlusPlus(GradientCAM):
    """Grad-CAM++ (Chattopadhay et al., WACV 2018), the exponential-score closed form.

    ``alpha^k_ij = G_ij^2 / (2 G_ij^2 + (sum_ab A^k_ab) G_ij^3)`` (0 where the denominator
    is 0); ``w_k = sum_ij alpha^k_ij ReLU(G^k_ij)``; ``L = ReLU(sum_k w_k A^k)``.  With
    ``y = exp(S)`` the ``exp(S)`` factors of the higher derivatives cancel in ``alpha``,
    which leaves powers of the first derivative, as in the paper's eq. 19.

    Counterfactual: the same formula of ``-G`` (the exp-score form of ``y = exp(-S)``):
    ``alpha = G^2 / (2 G^2 - (sum_ab A^k_ab) G^3)`` and ``w_k = sum_ij alpha ReLU(-G)``.
    It is well defined where it counts: at the positions with ``-G > 0`` and a
    non-negative layer (``A >= 0``, after a ReLU) the denominator is
    ``2 G^2 + (sum A) |G|^3 > 0``; elsewhere ``ReLU(-G) = 0`` (a zero denominator gives
    ``alpha = 0``, as in the plain form).

    Examples:
        >>> import torch, torchvision
        >>> from axiomcam.methods import GradCAMPlusPlus
        >>> model = torchvision.models.resnet18(num_classes=10)
        >>> GradCAMPlusPlus(model, "layer4")(torch.rand(1, 3, 64, 64)).channel_weights.shape
        torch.Size([1, 512])
    """

    name = "gradcam++"
    title = "Grad-CAM++"
    aliases = ("gradcamplusplus",)

    def channel_weights_from(self, activations: torch.Tensor,
                             gradients: torch.Tensor) -> torch.Tensor:
        squared = gradients.pow(2)
        denominator = 2 * squared + activations.sum(-1, keepdim=True) * gradients.pow(3)
        alpha = safe_divide(squared, denominator)
        return (alpha * torch.relu(gradients)).sum(-1)


class HiResCAM(GradientCAM):
    """HiResCAM (Draelos & Carin, 2020): ``L = ReLU(sum_k G^k * A^k)`` element-wise.

    No channel weights.  Like XGrad-CAM, ``sum_ij raw = sum G * A``, so it conserves the
    score exactly on bias-free ReLU heads.  Counterfactual: ``L = ReLU(sum_k -G^k * A^k)``
    (``raw`` negated).

    Examples:
        >>> import torch, torchvision
        >>> from axiomcam.methods import HiResCAM
        >>> model = torchvision.models.resnet18(num_classes=10)
        >>> HiResCAM(model, "layer3")(torch.rand(1, 3, 64, 64)).channel_weights is None
        True
    """

    name = "hirescam"
    title = "HiResCAM"
    has_channel_weights = False

    def raw_from(self, activations: torch.Tensor,
                 gradients: torch.Tensor) -> tuple[torch.Tensor, None]:
        return (gradients * activations).sum(2), None


class LayerCAM(GradientCAM):
    """Layer-CAM (Jiang et al., IEEE TIP 2021): ``L = ReLU(sum_k ReLU(G^k) * A^k)``.

    No channel weights: each position has its own weight ``ReLU(G^k_ij)``.
    Counterfactual: ``L = ReLU(sum_k ReLU(-G^k) * A^k)``: the positions where the gradient
    is negative, which the plain form leaves out (not ``ReLU(-raw)``).

    Examples:
        >>> import torch, torchvision
        >>> from axiomcam.methods import LayerCAM
        >>> model = torchvision.models.resnet18(num_classes=10)
        >>> LayerCAM(model, "layer2")(torch.rand(1, 3, 64, 64)).raw.shape
        torch.Size([1, 8, 8])
    """

    name = "layercam"
    title = "Layer-CAM"
    has_channel_weights = False

    def raw_from(self, activations: torch.Tensor,
                 gradients: torch.Tensor) -> tuple[torch.Tensor, None]:
        return (torch.relu(gradients) * activations).sum(2), None
