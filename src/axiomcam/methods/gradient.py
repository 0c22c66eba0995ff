"""Gradient methods: Grad-CAM, Grad-CAM++, XGrad-CAM, HiResCAM, Layer-CAM, Grad-CAM
element-wise, Shapley-CAM (second order: also ``H A``), Finer-CAM (Grad-CAM of a class
against its most similar classes), Smooth Grad-CAM++ (the gradients averaged over
noisy copies of the input).

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
from torch import nn

from ..explanation import Explanation
from ..targets import ClassContrast, ResolvedTargets, TargetSpec
from .base import GradientCAM, PartialResult
from .capture import LayerSpec
from .context import LayerContext, noisy_gradient_moments
from .engine import check_noise_std, check_samples, noise_generator
from .maps import safe_divide, weighted_sum


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
        return plus_plus_weights(activations, gradients, gradients.pow(2), gradients.pow(3))


def plus_plus_weights(activations: torch.Tensor, first: torch.Tensor, second: torch.Tensor,
                      third: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++'s channel weights from the first, second and third derivatives (in the
    exponential-score closed form: ``G``, ``G^2``, ``G^3``), ``(B, 1, K, S)`` activations
    and ``(B, n, K, S)`` derivatives -> ``(B, n, K)``:
    ``w_k = sum_ij ReLU(D1) D2 / (2 D2 + (sum_ab A^k_ab) D3)`` (0 where the denominator is 0).

    Examples:
        >>> import torch
        >>> g, a = torch.tensor([[[[1.0, -1.0]]]]), torch.tensor([[[[1.0, 1.0]]]])
        >>> plus_plus_weights(a, g, g.pow(2), g.pow(3))  # 1 / (2 + 2 * 1)
        tensor([[[0.2500]]])
    """
    denominator = 2 * second + activations.sum(-1, keepdim=True) * third
    return (safe_divide(second, denominator) * torch.relu(first)).sum(-1)


class SmoothGradCAMPlusPlus(GradientCAM):
    """Smooth Grad-CAM++ (Omeiza et al., arXiv:1908.01224, 2019).

    Grad-CAM++ with each derivative averaged over ``N`` noisy copies of the input
    (SmoothGrad's noise, ``x + delta_i``, ``delta_i ~ N(0, std^2)``): with
    ``G_i = dy^c/dA`` at copy ``i``, ``D_p = (1/N) sum_i G_i^p`` (the exponential-score
    closed form's ``p``-th derivative), ``alpha = D_2 / (2 D_2 + (sum_ab A^k_ab) D_3)``,
    ``w_k = sum_ij alpha ReLU(D_1)``, ``L = ReLU(sum_k w_k A^k)`` with ``A`` the clean
    image's activations.  The gradients are averaged, not the maps.  (The paper's alpha
    prints ``D_1`` in the numerator, where Grad-CAM++ has the second derivative; like
    torchcam we read it as ``D_2``.)  torchcam 0.5 weights ``ReLU`` of the *last* copy's
    gradient instead of ``D_1`` and sums the last copy's activations (docs/peers.md).

    Args:
        num_samples: ``N``, noisy copies (4, torchcam's default).
        std: the noise's standard deviation, in the input's units (0.3, torchcam's).
        seed: seeds the noise (0 by default: the same map every call; ``None``: fresh).
        **options: see :class:`BaseCAM`. No counterfactual form.

    Examples:
        >>> import torch, torchvision
        >>> from axiomcam.methods import SmoothGradCAMPlusPlus
        >>> model = torchvision.models.resnet18(num_classes=10)
        >>> cam = SmoothGradCAMPlusPlus(model, "layer4", num_samples=2, seed=0)
        >>> cam(torch.rand(1, 3, 64, 64)).channel_weights.shape
        torch.Size([1, 512])
    """

    name = "smoothgradcam++"
    title = "Smooth Grad-CAM++"
    aliases = ("smoothgradcamplusplus", "smoothgradcampp")
    cost = "noisy backward"
    has_counterfactual = False

    def __init__(self, model: nn.Module, target_layer: LayerSpec = None, *,
                 num_samples: int = 4, std: float = 0.3, seed: int | None = 0,
                 **options: object) -> None:
        super().__init__(model, target_layer, seed=seed, **options)
        self.num_samples = check_samples(num_samples)
        self.std = check_noise_std(std)

    def compute(self, context: LayerContext) -> tuple[torch.Tensor, torch.Tensor]:
        generator = noise_generator(self.seed, context.inputs.device)
        first, second, third = noisy_gradient_moments(
            context, self.num_samples, self.std, generator, description=self.title)
        weights = plus_plus_weights(context.activations[:, None], first, second, third)
        return weighted_sum(weights, context.activations), weights


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

    def channel_terms(self, context: LayerContext,
                      channel_weights: torch.Tensor | None) -> torch.Tensor:
        """``(B, n, K, S)``: the element-wise terms ``eigen_smooth`` decomposes."""
        return context.gradients() * context.activations[:, None]


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

    def channel_terms(self, context: LayerContext,
                      channel_weights: torch.Tensor | None) -> torch.Tensor:
        """``(B, n, K, S)``: the element-wise terms ``eigen_smooth`` decomposes."""
        return torch.relu(context.gradients()) * context.activations[:, None]

class GradCAMElementWise(GradientCAM):
    """Grad-CAM element-wise (pytorch-grad-cam's ``GradCAMElementWise``):
    ``L = ReLU(sum_k ReLU(G^k * A^k))``.

    HiResCAM's product with a ReLU on each channel's term before the sum, so a channel
    that speaks against the class at a position cannot cancel one that speaks for it.
    No channel weights. Counterfactual: ``L = sum_k ReLU(-G^k * A^k)``, the terms that
    speak against the class (not ``ReLU(-raw)``).

    Examples:
        >>> import torch, torchvision
        >>> from axiomcam.methods import GradCAMElementWise
        >>> model = torchvision.models.resnet18(num_classes=10)
        >>> exp = GradCAMElementWise(model, "layer3")(torch.rand(1, 3, 64, 64))
        >>> exp.raw.shape, bool(exp.raw.min() >= 0)
        (torch.Size([1, 4, 4]), True)
    """

    name = "gradcamelementwise"
    title = "Grad-CAM element-wise"
    aliases = ("gradcam_elementwise", "elementwisegradcam")
    has_channel_weights = False

    def raw_from(self, activations: torch.Tensor,
                 gradients: torch.Tensor) -> tuple[torch.Tensor, None]:
        return torch.relu(gradients * activations).sum(2), None


class ShapleyCAM(GradientCAM):
    """Shapley-CAM (Cai, "CAMs as Shapley Value-based Explainers", 2025):
    ``w_k = mean_ij (G - H A / 2)^k_ij``; ``L = ReLU(sum_k w_k A^k)``.

    ``H = d^2 y^c / dA^2`` is the Hessian of the score with respect to the layer's output;
    ``H A`` is one Hessian-vector product (:meth:`LayerContext.hessian_vector_products`,
    a second backward pass through the first, never forming ``H``). With the utility
    ``v(S) = y(A_S)`` (the neurons outside ``S`` set to 0) expanded to second order around
    ``A``, the Shapley value of neuron ``j`` is exactly ``phi_j = A_j (g - H A / 2)_j``;
    Shapley-CAM averages ``g - H A / 2`` over positions as Grad-CAM averages ``g``. Where
    the network after the layer is piecewise linear in ``A`` (ReLU, pooling, a linear
    head) and the score is a logit, ``H A = 0`` and the map is Grad-CAM's: the paper
    explains ReST, ``z_c + log p_c`` (``ClassScore`` of the log-probability is not built
    in; pass it as a callable target). Counterfactual: ``G`` and ``H A`` of ``-y^c``, the
    weights and ``raw`` negated.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from axiomcam.methods import ShapleyCAM
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Tanh(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
        >>> ShapleyCAM(model, "2")(torch.rand(2, 3, 16, 16)).channel_weights.shape
        torch.Size([2, 4])
    """

    name = "shapleycam"
    title = "Shapley-CAM"
    cost = "hessian"
    needs_hessian = True

    def compute(self, context: LayerContext) -> tuple[torch.Tensor, torch.Tensor]:
        gradients = context.gradients() - 0.5 * context.hessian_vector_products()
        weights = gradients.mean(-1)
        return weighted_sum(weights, context.activations), weights


class FinerCAM(GradCAM):
    """Finer-CAM (Zhang et al., CVPR 2025): Grad-CAM of the target class against its most
    similar classes, ``y = z_c - alpha * sum_d w_d z_d``
    (:class:`~axiomcam.targets.ClassContrast`: the ``comparisons`` classes whose logits
    are nearest ``z_c``, weighted by their softmax probabilities normalised to 1, held
    constant). ``w_k = mean_ij dy/dA^k_ij``; ``L = ReLU(sum_k w_k A^k)``. The map keeps
    what tells ``c`` apart from the classes it is most easily confused with.

    The same score with any other method: ``targets=ClassContrast(...)``. A target given
    here chooses the class ``c`` (``None``: each image's top class; one class per image).

    Args:
        comparisons: how many similar classes (pytorch-grad-cam's default: 3).
        alpha: the comparison strength (0: plain Grad-CAM; 1, the default, the full
            difference).

    Examples:
        >>> import torch, torchvision
        >>> from axiomcam.methods import FinerCAM
        >>> model = torchvision.models.resnet18(num_classes=10)
        >>> exp = FinerCAM(model, "layer4", comparisons=2)(torch.rand(2, 3, 64, 64), [3, 7])
        >>> exp.maps.shape
        torch.Size([2, 64, 64])
    """

    name = "finercam"
    title = "Finer-CAM"

    def __init__(self, model: nn.Module, target_layer: LayerSpec = None, *,
                 comparisons: int = 3, alpha: float = 1.0, **options: object) -> None:
        #: the contrast explained (its classes replaced by each call's targets)
        self.contrast = ClassContrast(None, comparisons=comparisons, alpha=alpha)
        super().__init__(model, target_layer, **options)

    def contrasted(self, targets: TargetSpec | ResolvedTargets
                   ) -> TargetSpec | ResolvedTargets:
        """``targets`` as this method's :class:`~axiomcam.targets.ClassContrast` (already
        resolved targets and contrasts are kept)."""
        if isinstance(targets, ResolvedTargets | ClassContrast):
            return targets
        return ClassContrast(targets, self.contrast.comparisons, self.contrast.alpha)

    def __call__(self, inputs: torch.Tensor, targets: TargetSpec = None) -> Explanation:
        return super().__call__(inputs, self.contrasted(targets))

    def explain_batch(self, inputs: torch.Tensor,
                      targets: TargetSpec | ResolvedTargets) -> PartialResult:
        return super().explain_batch(inputs, self.contrasted(targets))
