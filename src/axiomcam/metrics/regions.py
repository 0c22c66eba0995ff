"""Maps as segmentation seeds and boxes: a map cut into a binary mask, a mask split into
boxes, a mask compared with the object's true mask.

Weakly supervised localization and segmentation start from a class activation map: cut it
at a threshold (:func:`map_to_mask`: a fraction of its maximum, a percentile of its values,
or Otsu's threshold), take the connected regions (:func:`mask_to_boxes`: one box per
8-connected component, or the largest), and compare the mask with the object's
(:func:`mask_iou`).  Everything is batch-first: maps ``(B, H, W)`` in ``[0, 1]``
(:attr:`axiomcam.Explanation.maps`), masks ``(B, H, W)`` bool; boxes are ``x0, y0, x1, y1``
in pixels with ``x1``/``y1`` exclusive, as in :mod:`axiomcam.metrics.localization`.

An all-zero map has no region: its mask is empty whatever the threshold.

Examples:
    >>> import torch
    >>> maps = torch.tensor([[[0.0, 0.2, 0.9, 1.0],
    ...                       [0.0, 0.1, 0.8, 0.0]]])
    >>> masks = map_to_mask(maps, "fraction", 0.5)      # keep map >= 0.5 * max
    >>> masks.int()
    tensor([[[0, 0, 1, 1],
             [0, 0, 1, 0]]], dtype=torch.int32)
    >>> mask_to_boxes(masks)
    [tensor([[2., 0., 4., 2.]])]
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage

from .common import check_maps

__all__ = [
    "THRESHOLD_METHODS",
    "component_labels",
    "map_to_mask",
    "mask_iou",
    "mask_thresholds",
    "mask_to_boxes",
    "otsu_thresholds",
]

#: how :func:`map_to_mask` cuts a map, and the value each takes by default
THRESHOLD_METHODS: dict[str, float | None] = {"fraction": 0.5, "percentile": 80.0, "otsu": None}

# 8-connectivity: diagonal neighbours belong to the same component
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def check_masks(masks: object, what: str = "masks") -> torch.Tensor:
    """``masks`` as a ``(B, H, W)`` bool tensor (0/1 integers are accepted).

    Raises:
        TypeError: not a tensor, or a float tensor.
        ValueError: not ``(B, H, W)``, empty, or integers other than 0 and 1.
    """
    if not torch.is_tensor(masks):
        raise TypeError(f"{what} must be a torch.Tensor (B, H, W) of bool, not "
                        f"{type(masks).__name__}")
    if masks.dim() != 3 or masks.numel() == 0:
        raise ValueError(f"{what} must have shape (B, H, W) with H, W >= 1, got "
                         f"{tuple(masks.shape)}")
    if masks.is_floating_point() or masks.is_complex():
        raise TypeError(f"{what} must be bool (or 0/1 integers), got dtype {masks.dtype}; "
                        "cut a map into a mask with map_to_mask")
    if masks.dtype != torch.bool and not ((masks == 0) | (masks == 1)).all():
        raise ValueError(f"{what} must hold only 0 and 1, got values in "
                         f"[{int(masks.min())}, {int(masks.max())}]")
    return masks.bool()


def otsu_thresholds(maps: torch.Tensor, bins: int = 256) -> torch.Tensor:
    """Otsu's threshold of each map: the cut that maximises the between-class variance.

    As ``skimage.filters.threshold_otsu(map, nbins=bins)`` on the map in float64: the
    values' histogram of ``bins`` equal bins over ``[min, max]`` (``numpy.histogram``'s
    bins, the last one closed), and with ``w1, m1`` the count and mean (of bin centres)
    of the bins up to ``t`` and ``w2, m2`` those above, the centre of the bin ``t`` that
    maximises ``w1 w2 (m1 - m2)^2`` (the first if several do).  A constant map's
    threshold is its value.

    Args:
        maps: ``(B, H, W)`` maps in ``[0, 1]``.
        bins: the histogram's bins, an int >= 2.

    Returns:
        ``(B,)`` float64 thresholds on the maps' device; :func:`map_to_mask` keeps
        ``map > threshold``.

    Examples:
        >>> import torch
        >>> maps = torch.tensor([[[0.0, 0.1, 0.9, 1.0]]])
        >>> otsu_thresholds(maps, bins=4)          # bin centres 0.125 .. 0.875
        tensor([0.1250], dtype=torch.float64)
    """
    maps = check_maps(maps)
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ValueError(f"bins must be an int >= 2, got {bins!r}")
    values = maps.flatten(1).double()
    low, high = values.amin(dim=1, keepdim=True), values.amax(dim=1, keepdim=True)
    span = torch.where(high > low, high - low, torch.ones_like(high))
    steps = torch.linspace(0, 1, bins + 1, dtype=values.dtype, device=values.device)
    edges = low + steps * span                                           # (B, bins + 1)
    index = ((values - low) * (bins / span)).floor().long().clamp(0, bins - 1)
    # numpy.histogram's corrections: a value below its bin's left edge goes one bin down,
    # one at or above the right edge one bin up (never past the last, closed bin)
    index = index - (values < edges.gather(1, index)).long()
    index = index + ((values >= edges.gather(1, index + 1)) & (index != bins - 1)).long()
    counts = torch.zeros(values.shape[0], bins, dtype=values.dtype, device=values.device)
    counts.scatter_add_(1, index, torch.ones_like(values))
    centres = (edges[:, :-1] + edges[:, 1:]) / 2
    weight1, weight2 = counts.cumsum(1), counts.flip(1).cumsum(1).flip(1)
    mass = counts * centres
    # weight1 > 0 everywhere (the minimum is in the first bin), weight2 too (the maximum)
    mean1 = mass.cumsum(1) / weight1.clamp_min(1)
    mean2 = mass.flip(1).cumsum(1).flip(1) / weight2.clamp_min(1)
    variance = weight1[:, :-1] * weight2[:, 1:] * (mean1[:, :-1] - mean2[:, 1:]) ** 2
    chosen = centres.gather(1, variance.argmax(dim=1, keepdim=True)).squeeze(1)
    return torch.where(high.squeeze(1) > low.squeeze(1), chosen, low.squeeze(1))


def _check_value(method: str, value: object) -> float | None:
    if method == "otsu":
        if value is not None:
            raise ValueError(f"the 'otsu' threshold takes no value, got {value!r}")
        return None
    if value is None:
        return THRESHOLD_METHODS[method]
    low, high = (0.0, 1.0) if method == "fraction" else (0.0, 100.0)
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"a {method!r} threshold must be a number in [{low:g}, {high:g}], "
                         f"got {value!r}")
    return float(value)


def check_threshold(method: object, value: object = None) -> tuple[str, float | None]:
    """``(method, value)`` checked, the value defaulted (:data:`THRESHOLD_METHODS`).

    Raises:
        ValueError: an unknown method (the known ones are named), a value outside the
            method's range (``fraction`` in ``[0, 1]``, ``percentile`` in ``[0, 100]``), or
            a value for ``otsu``.

    Examples:
        >>> check_threshold("percentile")
        ('percentile', 80.0)
    """
    if not isinstance(method, str) or method.strip().lower() not in THRESHOLD_METHODS:
        raise ValueError(f"unknown threshold method {method!r}: use one of "
                         f"{', '.join(THRESHOLD_METHODS)}")
    name = method.strip().lower()
    return name, _check_value(name, value)


def mask_thresholds(maps: torch.Tensor, method: str = "fraction",
                    value: float | None = None) -> torch.Tensor:
    """The threshold :func:`map_to_mask` cuts each map at.

    - ``"fraction"``: ``value * max(map)`` (``value`` in ``[0, 1]``, default 0.5);
    - ``"percentile"``: the ``value``-th percentile of the map's values (``[0, 100]``,
      default 80; linear interpolation, as ``numpy.percentile``);
    - ``"otsu"``: :func:`otsu_thresholds` (no value).

    Returns:
        ``(B,)`` float64 thresholds on the maps' device.

    Examples:
        >>> import torch
        >>> maps = torch.tensor([[[0.0, 0.25, 0.5, 1.0]]])
        >>> mask_thresholds(maps, "percentile", 50)     # between 0.25 and 0.5
        tensor([0.3750], dtype=torch.float64)
    """
    maps = check_maps(maps)
    method, value = check_threshold(method, value)
    values = maps.flatten(1).double()
    if method == "fraction":
        return value * values.amax(dim=1)
    if method == "percentile":
        return torch.quantile(values, value / 100.0, dim=1)
    return otsu_thresholds(maps)


def map_to_mask(maps: torch.Tensor, method: str = "fraction",
                value: float | None = None) -> torch.Tensor:
    """A binary mask per map: its pixels at or above the threshold of :func:`mask_thresholds`.

    ``mask = (map >= t) & (map > 0)`` for ``"fraction"`` and ``"percentile"`` (a value
    exactly at the threshold is kept, as in the ILSVRC box protocol), and
    ``mask = map > t`` for ``"otsu"`` (as scikit-image's ``image > threshold_otsu(image)``;
    a constant map gives an empty mask).  Pixels where the map is 0 are never kept, so an
    all-zero map has an empty mask.

    Args:
        maps: ``(B, H, W)`` maps in ``[0, 1]``.
        method: ``"fraction"``, ``"percentile"`` or ``"otsu"``.
        value: the fraction or percentile (``None``: 0.5 or 80); none for Otsu.

    Returns:
        ``(B, H, W)`` bool on the maps' device.

    Raises:
        TypeError: ``maps`` is not a float tensor.
        ValueError: bad maps (not ``(B, H, W)``, NaN, outside ``[0, 1]``), an unknown
            method, or a value outside its range.

    Examples:
        >>> import torch
        >>> maps = torch.tensor([[[0.1, 0.2, 0.8, 1.0]]])
        >>> map_to_mask(maps, "otsu").tolist()
        [[[False, False, True, True]]]
    """
    maps = check_maps(maps)
    method, value = check_threshold(method, value)
    thresholds = mask_thresholds(maps, method, value)[:, None, None]
    values = maps.double()
    if method == "otsu":
        return values > thresholds
    return (values >= thresholds) & (values > 0)


def component_labels(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 8-connected components of one ``(H, W)`` mask (diagonal neighbours connect).

    Returns:
        ``(labels, sizes)``: ``labels`` ``(H, W)`` int, 0 outside the mask and ``k`` on
        component ``k`` (numbered in scan order of their first pixel, from 1), and
        ``sizes`` ``(count,)`` pixels per component (``sizes[k - 1]`` for label ``k``).

    Examples:
        >>> import numpy as np
        >>> labels, sizes = component_labels(np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0],
        ...                                            [1, 1, 0]], dtype=bool))
        >>> labels.tolist(), sizes.tolist()
        ([[1, 0, 0], [0, 1, 0], [0, 0, 0], [2, 2, 0]], [2, 2])
    """
    labels, count = ndimage.label(mask, structure=EIGHT_CONNECTED)
    return labels, np.bincount(labels.ravel(), minlength=count + 1)[1:]


def _component_boxes(labels: np.ndarray, count: int) -> np.ndarray:
    """``(count, 4)`` the bounding box of each labelled component, in label order."""
    boxes = np.zeros((count, 4), dtype=np.float32)
    for label, where in enumerate(ndimage.find_objects(labels), start=1):
        rows, columns = where
        boxes[label - 1] = (columns.start, rows.start, columns.stop, rows.stop)
    return boxes


def mask_to_boxes(masks: torch.Tensor, *, largest: bool = False,
                  min_pixels: int = 1) -> list[torch.Tensor]:
    """The boxes of each mask's regions: one per 8-connected component.

    Each component's box is the smallest ``x0, y0, x1, y1`` (``x1``/``y1`` exclusive)
    holding its pixels.  Boxes come largest component first (by pixels; equal sizes in
    scan order of their first pixel).  ``largest=True`` keeps only the first, as the
    ILSVRC box protocol does (:func:`axiomcam.metrics.map_to_box` also breaks a tie by the
    map's maximum, which a mask does not have).

    Args:
        masks: ``(B, H, W)`` bool (or 0/1 integer) masks.
        largest: only the largest component's box.
        min_pixels: leave out components of fewer pixels (an int >= 1).

    Returns:
        ``B`` float32 tensors ``(n_i, 4)`` on the masks' device (``(0, 4)`` for an empty
        mask).

    Raises:
        TypeError: float masks (cut maps first with :func:`map_to_mask`).
        ValueError: not ``(B, H, W)``, integers other than 0/1, a bad ``min_pixels``.

    Examples:
        >>> import torch
        >>> masks = torch.zeros(1, 5, 6, dtype=torch.bool)
        >>> masks[0, 0, 0] = True                    # one pixel
        >>> masks[0, 2:5, 3:6] = True                # a 3 x 3 block
        >>> mask_to_boxes(masks)
        [tensor([[3., 2., 6., 5.],
                [0., 0., 1., 1.]])]
        >>> mask_to_boxes(masks, min_pixels=2)[0].tolist()
        [[3.0, 2.0, 6.0, 5.0]]
    """
    masks = check_masks(masks)
    if isinstance(min_pixels, bool) or not isinstance(min_pixels, int) or min_pixels < 1:
        raise ValueError(f"min_pixels must be an int >= 1, got {min_pixels!r}")
    result = []
    for mask in masks.cpu().numpy():
        labels, sizes = component_labels(mask)
        boxes = _component_boxes(labels, len(sizes))
        order = np.argsort(-sizes, kind="stable")          # largest first, ties in scan order
        order = order[sizes[order] >= min_pixels]
        if largest:
            order = order[:1]
        result.append(torch.from_numpy(boxes[order]).reshape(-1, 4).to(masks.device))
    return result


def mask_iou(masks: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Intersection over union of each mask with the true mask: ``|M ∩ T| / |M ∪ T|``.

    Pixels are counted; when both masks are empty there is no overlap to speak of: 0.

    Args:
        masks: ``(B, H, W)`` bool masks (e.g. :func:`map_to_mask`).
        truth: ``(B, H, W)`` bool true masks of the same shape.

    Returns:
        ``(B,)`` float in ``[0, 1]`` on the masks' device.

    Raises:
        TypeError: float masks.
        ValueError: shapes that differ, or not ``(B, H, W)``.

    Examples:
        >>> import torch
        >>> masks = torch.tensor([[[1, 1, 0, 0]]], dtype=torch.bool)
        >>> truth = torch.tensor([[[0, 1, 1, 0]]], dtype=torch.bool)
        >>> mask_iou(masks, truth)                     # 1 / 3
        tensor([0.3333])
    """
    masks = check_masks(masks)
    truth = check_masks(truth, "truth")
    if masks.shape != truth.shape:
        raise ValueError(f"masks {tuple(masks.shape)} and truth {tuple(truth.shape)} must "
                         "have the same shape (resize the true masks to the maps' size)")
    truth = truth.to(masks.device)
    intersection = (masks & truth).flatten(1).sum(dim=1).float()
    union = (masks | truth).flatten(1).sum(dim=1).float()
    return torch.where(union > 0, intersection / union.clamp_min(1), torch.zeros_like(union))
