"""Complexity: how concentrated a map is, whatever the network or the object.

Three scores of one map each, batch-first (maps ``(B, H, W)`` in ``[0, 1]``,
:attr:`axiomcam.Explanation.maps`), in torch on the maps' device, as Quantus 0.6 defines
them (``quantus.Sparseness``, ``quantus.Complexity``, ``quantus.EffectiveComplexity``) on
maps normalised by their maximum (which ours are):

- :func:`sparseness`: the Gini index of the map's values (Chalasani et al., ICML 2020),
  0 for a uniform map, ``1 - 1/n`` for a single pixel: higher is sparser;
- :func:`complexity`: the entropy of the map as a distribution (Bhatt et al., IJCAI
  2020), ``log n`` for a uniform map, 0 for a single pixel: lower is simpler;
- :func:`effective_complexity`: how many pixels exceed a small threshold (Nguyen &
  Martinez 2020): lower is simpler.

An all-zero map is treated as a uniform one (no pixel stands out): sparseness 0,
complexity ``log n``, effective complexity 0.

Examples:
    >>> import torch
    >>> maps = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]])
    >>> sparseness(maps), complexity(maps), effective_complexity(maps)
    (tensor([0.7500, 0.0000]), tensor([0.0000, 1.3863]), tensor([1, 4]))
"""

from __future__ import annotations

import math

import torch

from .common import check_maps

__all__ = ["complexity", "effective_complexity", "sparseness"]


def _flat_or_uniform(maps: torch.Tensor) -> torch.Tensor:
    """``(B, n)`` the maps flattened in float64, an all-zero map replaced by ones."""
    flat = maps.flatten(1).double()
    empty = flat.sum(dim=1, keepdim=True) == 0
    return torch.where(empty, torch.ones_like(flat), flat)


def sparseness(maps: torch.Tensor) -> torch.Tensor:
    """The Gini index of each map's values: how few pixels hold its mass.

    Chalasani et al., "Concise explanations of neural networks using adversarial
    training", ICML 2020 (the Gini index of Hurley & Rickard 2009): with ``a_(1) <= ... <=
    a_(n)`` the map's ``n`` values in ascending order,
    ``G = sum_k (2k - n - 1) a_(k) / (n sum_k a_(k))``, in ``[0, 1 - 1/n]``: 0 when every
    pixel has the same value (an all-zero map too), ``1 - 1/n`` when one pixel holds
    everything. Scale-free: a map and a multiple of it score the same.

    Args:
        maps: ``(B, H, W)`` maps in ``[0, 1]``.

    Returns:
        ``(B,)`` in the maps' dtype (computed in float64), higher is sparser.

    Raises:
        TypeError, ValueError: bad maps (see :func:`axiomcam.metrics.common.check_maps`).

    Examples:
        >>> import torch
        >>> sparseness(torch.tensor([[[0.0, 1.0, 0.0, 1.0]]]))   # (-1*0 -1*0 +1*1 +3*1) / (4*2)
        tensor([0.5000])
    """
    maps = check_maps(maps)
    flat = _flat_or_uniform(maps).sort(dim=1).values
    n = flat.shape[1]
    ranks = torch.arange(1, n + 1, dtype=flat.dtype, device=flat.device)
    gini = ((2 * ranks - n - 1) * flat).sum(dim=1) / (n * flat.sum(dim=1))
    return gini.to(maps.dtype)


def complexity(maps: torch.Tensor) -> torch.Tensor:
    """The entropy of each map taken as a distribution over its pixels.

    Bhatt, Weller & Moura, "Evaluating and aggregating feature-based model explanations",
    IJCAI 2020: ``p_i = a_i / sum_j a_j`` and ``H = -sum_i p_i log p_i`` (natural log,
    ``0 log 0 = 0``), in ``[0, log n]``: 0 when one pixel holds the whole mass, ``log n``
    for a uniform map (an all-zero map too). In nats, not divided by ``log n``: compare
    maps of one input size.

    Args:
        maps: ``(B, H, W)`` maps in ``[0, 1]``.

    Returns:
        ``(B,)`` in the maps' dtype (computed in float64), lower is simpler.

    Raises:
        TypeError, ValueError: bad maps.

    Examples:
        >>> import torch
        >>> complexity(torch.tensor([[[0.0, 1.0, 0.0, 1.0]]]))   # two halves: log 2
        tensor([0.6931])
    """
    maps = check_maps(maps)
    flat = _flat_or_uniform(maps)
    shares = flat / flat.sum(dim=1, keepdim=True)
    return torch.special.entr(shares).sum(dim=1).to(maps.dtype)


def effective_complexity(maps: torch.Tensor, *, threshold: float = 1e-5) -> torch.Tensor:
    """How many pixels of each map exceed ``threshold`` times its maximum.

    Nguyen & Martinez, "On quantitative aspects of model interpretability", arXiv
    2007.07584 (2020): ``#{i : a_i / max_j a_j > threshold}``; Quantus's default threshold
    is ``1e-5`` on the map divided by its maximum, as here. An all-zero map has none.

    Args:
        maps: ``(B, H, W)`` maps in ``[0, 1]``.
        threshold: a share of the maximum, in ``[0, 1)``.

    Returns:
        ``(B,)`` long: pixels, lower is simpler.

    Raises:
        TypeError, ValueError: bad maps; a threshold outside ``[0, 1)``.

    Examples:
        >>> import torch
        >>> effective_complexity(torch.tensor([[[0.0, 0.5, 1e-6, 1.0]]]))
        tensor([2])
    """
    maps = check_maps(maps)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) \
            or not math.isfinite(threshold) or not 0 <= threshold < 1:
        raise ValueError(f"threshold must be a number in [0, 1), got {threshold!r}")
    flat = maps.flatten(1)
    peaks = flat.amax(dim=1, keepdim=True)
    return ((flat > threshold * peaks) & (peaks > 0)).sum(dim=1)
