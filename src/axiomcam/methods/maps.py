"""Map arithmetic shared by the methods and the metrics: weighted channel sums, division
without NaN, min-max scaling and upsampling.

Examples:
    >>> import torch
    >>> from axiomcam.methods.maps import minmax_scale, weighted_sum
    >>> weights, activations = torch.tensor([[[1.0, -1.0]]]), torch.tensor([[[2.0, 0.0],
    ...                                                                        [1.0, 1.0]]])
    >>> weighted_sum(weights, activations)
    tensor([[[ 1., -1.]]])
    >>> minmax_scale(torch.tensor([[[0.0, 2.0, 4.0]]]))
    tensor([[[0.0000, 0.5000, 1.0000]]])
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from ..support import AxiomCamWarning, image_name, warn

__all__ = ["INTERPOLATION_MODES", "fuse_maps", "minmax_scale", "minmax_scale_quiet",
           "orient", "principal_projection", "safe_divide", "upsample", "weighted_sum"]


def safe_divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """``numerator / denominator`` with 0 where the denominator is 0 (never NaN/inf)."""
    zero = denominator == 0
    return torch.where(zero, torch.zeros_like(numerator),
                       numerator / torch.where(zero, torch.ones_like(denominator), denominator))


def weighted_sum(channel_weights: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    """``sum_k w_k A^k``: ``(B, n, K)`` weights and ``(B, K, S)`` activations -> ``(B, n, S)``."""
    return torch.einsum("bnk,bks->bns", channel_weights, activations)


def minmax_scale(maps: torch.Tensor, what: str = "map") -> torch.Tensor:
    """Scale each map of ``(B, n, *spatial)`` to ``[0, 1]``; a constant map becomes zeros."""
    flat = maps.flatten(2)
    low = flat.amin(-1, keepdim=True)
    span = flat.amax(-1, keepdim=True) - low
    constant = span <= torch.finfo(maps.dtype).tiny
    if constant.any():
        where = [(image_name(image), target)
                 for image, target in constant.squeeze(-1).nonzero().tolist()]
        warn(
            f"the {what} of (image, target) {where} is constant (all-zero activations or "
            "gradients, or nothing positive): returned as all zeros"
        )
    scaled = torch.where(constant, torch.zeros_like(flat), (flat - low) / span.clamp_min(
        torch.finfo(maps.dtype).tiny))
    return scaled.view_as(maps)


#: how maps of 1, 2 and 3 spatial axes are upsampled
INTERPOLATION_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


def upsample(maps: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Linear (1D signals), bilinear (images) or trilinear (3D) upsampling of
    ``(B, n, *spatial)`` maps to ``size``, ``align_corners=False``.

    Examples:
        >>> upsample(torch.tensor([[[0.0, 1.0]]]), (4,))
        tensor([[[0.0000, 0.2500, 0.7500, 1.0000]]])
    """
    if tuple(maps.shape[2:]) == tuple(size):
        return maps
    return F.interpolate(maps, size=size, mode=INTERPOLATION_MODES[len(size)],
                         align_corners=False)


def fuse_maps(maps: list[torch.Tensor]) -> torch.Tensor:
    """The fused map of several layers: ``minmax(mean_l M_l)`` of their final maps ``M_l``
    (each ``(B, n, *input_spatial)``, already in ``[0, 1]``).

    Examples:
        >>> fuse_maps([torch.tensor([[[0.0, 1.0, 1.0]]]), torch.tensor([[[0.0, 0.0, 1.0]]])])
        tensor([[[0.0000, 0.5000, 1.0000]]])
    """
    return minmax_scale(torch.stack(maps).mean(0), "fused map")


def minmax_scale_quiet(maps: torch.Tensor) -> torch.Tensor:
    """:func:`minmax_scale` without the warning (constant channels are expected here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AxiomCamWarning)
        return minmax_scale(maps)


def orient(projection: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``projection`` ``(..., S)`` with its sign flipped where it correlates negatively with
    ``reference`` ``(..., S)``: the sign convention of every principal-component map
    (a component's sign is arbitrary; the map is made to agree with the channel mean of
    the matrix it decomposes).

    Examples:
        >>> orient(torch.tensor([[1.0, -1.0]]), torch.tensor([[0.0, 5.0]]))
        tensor([[-1.,  1.]])
    """
    agreement = ((projection - projection.mean(-1, keepdim=True))
                 * (reference - reference.mean(-1, keepdim=True))).sum(-1, keepdim=True)
    return torch.where(agreement < 0, -projection, projection)


def principal_projection(matrix: torch.Tensor) -> torch.Tensor:
    """The first principal component scores of ``matrix`` ``(..., S, K)`` (``S`` positions,
    ``K`` channels): ``X = matrix - mean_S``, ``v`` the first right singular vector of
    ``X``, ``X v`` oriented (:func:`orient`) to correlate positively with the channel
    mean of ``matrix``. NaNs count as 0. The core of Eigen-CAM, Eigen-Grad-CAM and
    ``eigen_smooth``.

    Examples:
        >>> matrix = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [2.0, 4.0]]])  # rank 1
        >>> principal_projection(matrix)
        tensor([[-2.2361,  2.2361,  0.0000]])
    """
    matrix = torch.nan_to_num(matrix, nan=0.0)
    centred = matrix - matrix.mean(-2, keepdim=True)
    _, _, right_vectors = torch.linalg.svd(centred, full_matrices=False)
    projection = (centred @ right_vectors[..., 0, :, None]).squeeze(-1)
    return orient(projection, matrix.mean(-1))
