"""Localisation against a true mask: how much of a map, and which of its pixels, lie on
the object.

Five scores of Quantus 0.6's localisation metrics, batch-first in torch on the maps'
device: maps ``(B, H, W)`` in ``[0, 1]`` (:attr:`axiomcam.Explanation.maps`) and masks
``(B, H, W)`` bool, each with at least one pixel (the object's silhouette, or its boxes
through :func:`~axiomcam.metrics.localization.boxes_to_masks`):

- :func:`relevance_mass_accuracy`: the share of the map's mass on the mask (Arras et al.
  2022); on a box mask it is :func:`~axiomcam.metrics.energy_pointing_game`;
- :func:`relevance_rank_accuracy`: the share of the ``K = |mask|`` highest pixels on the
  mask (Arras et al. 2022);
- :func:`top_k_intersection`: the share of the ``k`` highest pixels on the mask (Theiner
  et al. 2022);
- :func:`attribution_localisation`: the mass share divided by the mask's share of the
  image (Kohlbrenner et al. 2020), 1 for a map that ignores the mask;
- :func:`mask_auc`: the ROC AUC of the map's values as scores of the mask's pixels
  (Fawcett 2006).

Where pixels tie at the cut of the ``K`` (or ``k``) highest, the rank scores count each
tied pixel by its chance of being ranked in (the mean over random orders of the ties),
and the AUC counts a tie as half a win, so a constant map scores the mask's share of the
image, or 0.5 for the AUC, whatever the order of the pixels.

Examples:
    >>> import torch
    >>> maps = torch.tensor([[[1.0, 0.5], [0.5, 0.0]]])
    >>> masks = torch.tensor([[[True, True], [False, False]]])
    >>> relevance_mass_accuracy(maps, masks), relevance_rank_accuracy(maps, masks)
    (tensor([0.7500]), tensor([0.7500]))
"""

from __future__ import annotations

import torch

from ..methods.maps import safe_divide
from .common import check_maps
from .regions import check_masks

__all__ = [
    "attribution_localisation",
    "mask_auc",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "top_k_intersection",
]


def _checked(maps: object, masks: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Maps and masks checked against each other, the masks on the maps' device."""
    maps = check_maps(maps)
    masks = check_masks(masks)
    if masks.shape != maps.shape:
        raise ValueError(f"masks must have the maps' shape {tuple(maps.shape)}, got "
                         f"{tuple(masks.shape)}")
    empty = (~masks.flatten(1).any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"the masks of images {empty} are empty: a mask needs at least "
                         "one pixel of the object")
    return maps, masks.to(maps.device)


def relevance_mass_accuracy(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The share of each map's mass that lies on its mask.

    Arras, Osman & Samek, "CLEVR-XAI: a benchmark dataset for the ground truth evaluation
    of neural network explanations", Information Fusion 2022:
    ``sum_{i in mask} a_i / sum_i a_i``. An all-zero map has no mass on the mask: 0. With
    the union of the boxes as the mask it is the energy pointing game (Score-CAM's
    :func:`~axiomcam.metrics.energy_pointing_game`), and on non-negative maps it is also
    Kohlbrenner et al.'s unweighted attribution localisation.

    Args:
        maps: ``(B, H, W)`` maps in ``[0, 1]``.
        masks: ``(B, H, W)`` bool, the object's pixels, none empty.

    Returns:
        ``(B,)`` in ``[0, 1]``, higher is better.

    Raises:
        TypeError: maps or masks of the wrong type.
        ValueError: bad maps, masks of another shape, an empty mask.

    Examples:
        >>> import torch
        >>> relevance_mass_accuracy(torch.tensor([[[0.2, 0.6]]]), torch.tensor([[[False, True]]]))
        tensor([0.7500])
    """
    maps, masks = _checked(maps, masks)
    return safe_divide((maps * masks).sum(dim=(1, 2)), maps.sum(dim=(1, 2))).clamp(0, 1)


def _share_of_top(maps: torch.Tensor, masks: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """``(B,)`` the expected share of each map's ``counts`` highest pixels on its mask, the
    pixels tied at the cut drawn in a random order: those above the cut count in full, the
    tied ones by ``slots / ties``."""
    flat, inside = maps.flatten(1), masks.flatten(1)
    ordered = flat.sort(dim=1, descending=True).values
    cut = ordered.gather(1, (counts - 1)[:, None])                         # the k-th value
    above, tied = flat > cut, flat == cut
    slots = counts - above.sum(dim=1)                     # places left for the tied pixels
    hits = (above & inside).sum(dim=1) + slots * (tied & inside).sum(dim=1) / tied.sum(dim=1)
    return (hits / counts).to(maps.dtype)


def relevance_rank_accuracy(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The share of each map's ``K`` highest pixels on its mask, ``K`` the mask's size.

    Arras, Osman & Samek, Information Fusion 2022: with ``P_top`` the ``K = |mask|``
    pixels of highest value, ``|P_top ∩ mask| / K``, 1 when the mask's pixels are the
    map's highest. Pixels tied at the cut count by their chance of being ranked in (see
    the module), so a constant map scores ``K / n``.

    Args:
        maps: ``(B, H, W)`` maps in ``[0, 1]``.
        masks: ``(B, H, W)`` bool, none empty.

    Returns:
        ``(B,)`` in ``[0, 1]``, higher is better.

    Raises:
        TypeError, ValueError: as :func:`relevance_mass_accuracy`.

    Examples:
        >>> import torch
        >>> maps = torch.tensor([[[0.9, 0.1, 0.8, 0.2]]])     # the top 2: pixels 0 and 2
        >>> relevance_rank_accuracy(maps, torch.tensor([[[True, True, False, False]]]))
        tensor([0.5000])
    """
    maps, masks = _checked(maps, masks)
    return _share_of_top(maps, masks, masks.flatten(1).sum(dim=1))


def top_k_intersection(maps: torch.Tensor, masks: torch.Tensor, *, k: int = 1000
                       ) -> torch.Tensor:
    """The share of each map's ``k`` highest pixels on its mask.

    Theiner, Müller-Budack & Ewerth, "Interpretable semantic photo geolocation", WACV 2022:
    ``|top_k(a) ∩ mask| / k`` (Quantus's default ``k = 1000`` pixels, 2% of a 224 x 224
    image). Pixels tied at the cut count by their chance of being ranked in.

    Args:
        maps: ``(B, H, W)`` maps in ``[0, 1]``.
        masks: ``(B, H, W)`` bool, none empty.
        k: pixels, an int in ``[1, H W]``.

    Returns:
        ``(B,)`` in ``[0, 1]``, higher is better.

    Raises:
        TypeError, ValueError: as :func:`relevance_mass_accuracy`; ``k`` not an int in
            ``[1, H W]``.

    Examples:
        >>> import torch
        >>> maps = torch.tensor([[[0.9, 0.1, 0.8, 0.2]]])
        >>> top_k_intersection(maps, torch.tensor([[[True, False, False, False]]]), k=2)
        tensor([0.5000])
    """
    maps, masks = _checked(maps, masks)
    pixels = maps.shape[1] * maps.shape[2]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= pixels:
        raise ValueError(f"k must be an int in [1, {pixels}] (the pixels of a map), got {k!r}")
    counts = torch.full((maps.shape[0],), k, dtype=torch.long, device=maps.device)
    return _share_of_top(maps, masks, counts)


def attribution_localisation(maps: torch.Tensor, masks: torch.Tensor, *,
                             weighted: bool = True) -> torch.Tensor:
    """The share of each map's mass on its mask, divided by the mask's share of the image.

    Kohlbrenner et al., "Towards best practice in explaining neural network decisions with
    LRP", IJCNN 2020: ``mu = R_in / R_tot`` (the positive relevance inside the object
    over the total; our maps are non-negative, so ``mu`` is
    :func:`relevance_mass_accuracy`), and weighted ``mu_w = mu * S_tot / S_in`` with
    ``S_in`` the mask's pixels and ``S_tot`` the image's: 1 for a map spread evenly,
    ``n / |mask|`` for a map wholly on a mask. ``weighted=False`` returns ``mu``.

    Args:
        maps: ``(B, H, W)`` maps in ``[0, 1]``.
        masks: ``(B, H, W)`` bool, none empty.
        weighted: divide by the mask's share of the image (the paper's ``mu_w``).

    Returns:
        ``(B,)`` in ``[0, n / |mask|]`` (``[0, 1]`` unweighted), higher is better.

    Raises:
        TypeError, ValueError: as :func:`relevance_mass_accuracy`.

    Examples:
        >>> import torch
        >>> maps = torch.tensor([[[1.0, 1.0, 0.0, 0.0]]])
        >>> attribution_localisation(maps, torch.tensor([[[True, False, False, False]]]))
        tensor([2.])
    """
    share = relevance_mass_accuracy(maps, masks)
    if not weighted:
        return share
    masks = check_masks(masks).to(share.device).flatten(1)
    return share * (masks.shape[1] / masks.sum(dim=1)).to(share.dtype)


def mask_auc(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The ROC AUC of each map's values as a score of its mask's pixels.

    Fawcett, "An introduction to ROC analysis", Pattern Recognition Letters 2006: the
    area under the curve of the true-positive rate against the false-positive rate as
    the cut runs down the map's values, which is the chance that a random pixel of the
    mask scores higher than a random pixel outside it, a tie counting half (the
    Mann-Whitney statistic): ``(sum_{i in mask} r_i - P (P + 1) / 2) / (P N)`` with ``r_i``
    the pixels' ranks (ties averaged), ``P`` pixels in the mask, ``N`` outside. 0.5 for
    a constant map, and for a mask covering the whole image (nothing to tell apart).

    Args:
        maps: ``(B, H, W)`` maps in ``[0, 1]``.
        masks: ``(B, H, W)`` bool, none empty.

    Returns:
        ``(B,)`` in ``[0, 1]``, higher is better.

    Raises:
        TypeError, ValueError: as :func:`relevance_mass_accuracy`.

    Examples:
        >>> import torch
        >>> maps = torch.tensor([[[0.9, 0.1, 0.5, 0.5]]])   # in: 0.9, 0.5; out: 0.1, 0.5
        >>> mask_auc(maps, torch.tensor([[[True, False, True, False]]]))   # (1 + 1 + 1 + .5) / 4
        tensor([0.8750])
    """
    maps, masks = _checked(maps, masks)
    flat, inside = maps.flatten(1).double(), masks.flatten(1)
    ordered = flat.sort(dim=1).values.contiguous()
    below = torch.searchsorted(ordered, flat.contiguous(), right=False)
    up_to = torch.searchsorted(ordered, flat.contiguous(), right=True)
    ranks = (below + up_to + 1).double() / 2                     # 1-based, ties averaged
    positives = inside.sum(dim=1).double()
    negatives = inside.shape[1] - positives
    wins = (ranks * inside).sum(dim=1) - positives * (positives + 1) / 2
    auc = torch.where(negatives > 0, wins / (positives * negatives.clamp_min(1)),
                      torch.full_like(wins, 0.5))
    return auc.to(maps.dtype)
