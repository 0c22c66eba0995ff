"""Map arithmetic shared by the methods and the metrics: weighted channel sums, division
without NaN, min-max scaling and upsampling.

Example:
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

from ..support import AxiomCamWarning, warn

__all__ = ["minmax_scale", "minmax_scale_quiet", "safe_divide", "upsample", "weighted_sum"]


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
        where = [tuple(i) for i in constant.squeeze(-1).nonzero().tolist()]
        warn(
            f"the {what} of (image, target) {where} is constant (all-zero activations or "
            "gradients, or nothing positive): returned as all zeros"
        )
    scaled = torch.where(constant, torch.zeros_like(flat), (flat - low) / span.clamp_min(
        torch.finfo(maps.dtype).tiny))
    return scaled.view_as(maps)


def upsample(maps: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Bilinear (trilinear for 3D) upsampling of ``(B, n, *spatial)`` maps to ``size``."""
    if tuple(maps.shape[2:]) == tuple(size):
        return maps
    mode = "bilinear" if len(size) == 2 else "trilinear"
    return F.interpolate(maps, size=size, mode=mode, align_corners=False)


def minmax_scale_quiet(maps: torch.Tensor) -> torch.Tensor:
    """:func:`minmax_scale` without the warning (constant channels are expected here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AxiomCamWarning)
        return minmax_scale(maps)
