"""Decomposition methods: the map is the first component of a decomposition of the target
layer's activations (or of their product with the gradients), not a weighted sum.

Eigen-CAM (in :mod:`~axiomcam.methods.activation`), Eigen-Grad-CAM and KPCA-CAM share one
sign convention (:func:`~axiomcam.methods.maps.orient`): a component's sign is arbitrary,
so the map is the sign that correlates positively with the channel mean of the matrix
decomposed. pytorch-grad-cam keeps whatever sign its solver returns.
"""

from __future__ import annotations

from typing import ClassVar, Literal, get_args

import torch
from torch import nn

from .base import BaseCAM, GradientCAM
from .capture import LayerSpec
from .context import LayerContext
from .maps import orient, principal_projection

__all__ = ["KERNELS", "KPCACAM", "EigenGradCAM", "Kernel", "kernel_matrix",
           "kernel_principal_projection"]

Kernel = Literal["sigmoid", "rbf", "poly", "linear", "cosine"]
#: the kernels of KPCA-CAM (scikit-learn's ``KernelPCA`` names, which pytorch-grad-cam uses)
KERNELS: tuple[str, ...] = get_args(Kernel)


class EigenGradCAM(GradientCAM):
    """Eigen-Grad-CAM (pytorch-grad-cam's variant of Eigen-CAM, Muhammad & Yeasin, 2020):
    the first principal component of the gradient-weighted activations.

    ``X`` = ``G * A`` (element-wise) as an ``(h w) x K`` matrix per target, centred per
    channel; ``v`` its first right singular vector; ``L = ReLU(X v)``, signed to correlate
    positively with ``sum_k G^k * A^k`` (HiResCAM's raw map). Class-specific (``G`` is the
    target's), no channel weights. No counterfactual form here: it would be ``-raw``.

    Examples:
        >>> import torch, torchvision
        >>> from axiomcam.methods import EigenGradCAM
        >>> model = torchvision.models.resnet18(num_classes=10)
        >>> EigenGradCAM(model, "layer3")(torch.rand(2, 3, 64, 64), targets=[1, 2]).raw.shape
        torch.Size([2, 4, 4])
    """

    name = "eigengradcam"
    title = "Eigen-Grad-CAM"
    has_channel_weights = False
    has_channel_terms = False
    has_counterfactual = False

    def raw_from(self, activations: torch.Tensor,
                 gradients: torch.Tensor) -> tuple[torch.Tensor, None]:
        return principal_projection((gradients * activations).transpose(-1, -2)), None


def kernel_matrix(points: torch.Tensor, kernel: Kernel = "sigmoid", gamma: float | None = None,
                  *, degree: int = 3, coef0: float = 1.0) -> torch.Tensor:
    """The ``(..., S, S)`` kernel matrix of ``points`` ``(..., S, K)``, with
    scikit-learn's definitions (``gamma`` ``None``: ``1 / K``):
    ``linear`` ``<x, y>``; ``poly`` ``(gamma <x, y> + coef0)^degree``;
    ``sigmoid`` ``tanh(gamma <x, y> + coef0)``; ``rbf`` ``exp(-gamma |x - y|^2)``;
    ``cosine`` ``<x, y> / (|x| |y|)``.

    Examples:
        >>> kernel_matrix(torch.tensor([[0.0, 0.0], [1.0, 1.0]]), "rbf", gamma=1.0)
        tensor([[1.0000, 0.1353],
                [0.1353, 1.0000]])
    """
    gamma = 1.0 / points.shape[-1] if gamma is None else gamma
    dot = points @ points.transpose(-1, -2)
    if kernel == "linear":
        return dot
    if kernel == "poly":
        return (gamma * dot + coef0) ** degree
    if kernel == "sigmoid":
        return torch.tanh(gamma * dot + coef0)
    if kernel == "rbf":
        squared = points.square().sum(-1)
        distances = (squared[..., :, None] + squared[..., None, :] - 2 * dot).clamp_min(0)
        return torch.exp(-gamma * distances)
    if kernel == "cosine":
        norms = points.norm(dim=-1).clamp_min(torch.finfo(points.dtype).tiny)
        return dot / (norms[..., :, None] * norms[..., None, :])
    raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, not {kernel!r}")


def kernel_principal_projection(points: torch.Tensor, kernel: Kernel = "sigmoid",
                                gamma: float | None = None) -> torch.Tensor:
    """The first kernel principal component scores of ``points`` ``(..., S, K)``:
    ``Kc = (I - 1/S) K (I - 1/S)`` the centred kernel matrix (:func:`kernel_matrix`),
    ``(lambda, alpha)`` its largest eigenpair, scores ``alpha sqrt(max(lambda, 0))``
    (scikit-learn's ``KernelPCA.fit_transform``), up to sign.

    Examples:
        >>> points = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
        >>> kernel_principal_projection(points, "linear").abs()  # PCA: the linear kernel
        tensor([1.4142, 0.0000, 1.4142])
    """
    matrix = kernel_matrix(points, kernel, gamma)
    centred = (matrix - matrix.mean(-1, keepdim=True) - matrix.mean(-2, keepdim=True)
               + matrix.mean((-2, -1), keepdim=True))
    values, vectors = torch.linalg.eigh(centred)  # ascending eigenvalues
    return vectors[..., -1] * values[..., -1:].clamp_min(0).sqrt()


class KPCACAM(BaseCAM):
    """KPCA-CAM (Karmani et al., 2024, "KPCA-CAM: Visual Explainability of Deep Computer
    Vision Models using Kernel PCA"): Eigen-CAM with kernel PCA.

    ``X`` = ``A`` as an ``(h w) x K`` matrix, centred per channel (as pytorch-grad-cam
    does before its ``KernelPCA``); ``L = ReLU(first kernel principal component scores
    of X)`` (:func:`kernel_principal_projection`), signed to correlate positively with
    the channel-mean activation. With ``kernel="linear"`` it is Eigen-CAM. Class-agnostic.

    Args:
        kernel: one of :data:`KERNELS` (default ``"sigmoid"``, pytorch-grad-cam's).
        gamma: the kernel's scale (``None``: ``1 / K``); ``degree=3`` and ``coef0=1`` are
            scikit-learn's defaults, which pytorch-grad-cam keeps.

    Examples:
        >>> import torch, torchvision
        >>> from axiomcam.methods import KPCACAM
        >>> model = torchvision.models.resnet18(num_classes=10)
        >>> KPCACAM(model, "layer3", kernel="rbf")(torch.rand(1, 3, 64, 64)).maps.shape
        torch.Size([1, 64, 64])
    """

    name = "kpcacam"
    title = "KPCA-CAM"
    has_channel_weights = False
    has_channel_terms = False
    cost: ClassVar[str] = "forward"

    def __init__(self, model: nn.Module, target_layer: LayerSpec = None, *,
                 kernel: Kernel = "sigmoid", gamma: float | None = None,
                 **options: object) -> None:
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, not {kernel!r}")
        if gamma is not None and (isinstance(gamma, bool) or not isinstance(gamma, int | float)
                                  or not gamma > 0):
            raise ValueError(f"gamma must be None or a number > 0, got {gamma!r}")
        super().__init__(model, target_layer, **options)
        self.kernel = kernel
        self.gamma = gamma

    def compute(self, context: LayerContext) -> tuple[torch.Tensor, None]:
        positions = torch.nan_to_num(context.activations.transpose(1, 2), nan=0.0)
        centred = positions - positions.mean(1, keepdim=True)
        projection = orient(kernel_principal_projection(centred, self.kernel, self.gamma),
                            positions.mean(-1))
        return projection[:, None].expand(-1, context.scores.shape[1], -1), None
