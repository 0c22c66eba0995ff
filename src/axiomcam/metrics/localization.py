"""Localization: do the maps point at the objects? Boxes, pointing games, class discrimination.

Every function takes ``maps`` ``(B, H, W)`` in ``[0, 1]`` (:attr:`axiomcam.Explanation.maps`)
and ground-truth ``boxes``, a sequence of ``B`` float tensors ``(n_i, 4)`` of
``x0, y0, x1, y1`` in input pixels, where pixel ``(row i, column j)`` covers
``[j, j + 1) x [i, i + 1)`` (a box over columns 10..19 has ``x0 = 10, x1 = 20``).

Where a box decides which pixels it holds (the masses of the energy pointing game and of
class discrimination), a pixel belongs to a box when its centre ``(j + 0.5, i + 0.5)`` lies
in ``[x0, x1) x [y0, y1)``: exactly the pixels of columns ``x0 .. x1 - 1`` and rows
``y0 .. y1 - 1`` for integer boxes.

Degenerate cases are defined, never NaN: an all-zero map has the whole image as its box,
misses the pointing game, has no energy inside any box, and is neutral (0.5) in class
discrimination.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.ops import box_iou

from ..methods.maps import safe_divide
from .common import check_boxes, check_maps
from .regions import component_labels


def _check_fraction(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _flatten_boxes(boxes: list[torch.Tensor],
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """All boxes as one ``(M, 4)`` tensor, and ``(M,)`` the image each belongs to."""
    flat = torch.cat(boxes).to(device)
    owner = torch.cat([torch.full((len(b),), image, dtype=torch.long)
                       for image, b in enumerate(boxes)]).to(device)
    return flat, owner


def _union_masks(boxes: list[torch.Tensor], height: int, width: int,
                 device: torch.device) -> torch.Tensor:
    """``(B, H, W)`` bool: the pixels (by their centres) inside any box of each image."""
    flat, owner = _flatten_boxes(boxes, device)
    centres_x = torch.arange(width, device=device, dtype=flat.dtype) + 0.5
    centres_y = torch.arange(height, device=device, dtype=flat.dtype) + 0.5
    in_columns = (centres_x >= flat[:, 0:1]) & (centres_x < flat[:, 2:3])  # (M, W)
    in_rows = (centres_y >= flat[:, 1:2]) & (centres_y < flat[:, 3:4])     # (M, H)
    inside = in_rows[:, :, None] & in_columns[:, None, :]                  # (M, H, W)
    counts = torch.zeros(len(boxes), height, width, device=device)
    counts.index_add_(0, owner, inside.to(counts.dtype))
    return counts > 0


def _mass_inside(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``(B,)`` share of each map's total mass inside its mask, 0 for an all-zero map."""
    # maps are non-negative: a zero total is an all-zero map, whose share is 0
    return safe_divide((maps * masks).sum(dim=(1, 2)), maps.sum(dim=(1, 2))).clamp(0, 1)


def boxes_to_masks(boxes: object, height: int, width: int,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """The pixels inside the boxes of each image, as masks (a pixel is inside when its
    centre is, as for :func:`energy_pointing_game`): the box form of the ground truth that
    the mask metrics (:mod:`axiomcam.metrics.mask_scores`) take.

    Args:
        boxes: ``B`` float tensors ``(n_i, 4)`` (or one ``(B, 4)`` tensor) of ``x0, y0,
            x1, y1`` in pixels, each image at least one box.
        height: the masks' height (the maps').
        width: the masks' width.
        device: where the masks go.

    Returns:
        ``(B, height, width)`` bool, the union of each image's boxes.

    Examples:
        >>> boxes_to_masks([torch.tensor([[1.0, 0.0, 3.0, 1.0]])], 2, 4).int()
        tensor([[[0, 1, 1, 0],
                 [0, 0, 0, 0]]], dtype=torch.int32)
    """
    count = len(boxes) if isinstance(boxes, Sequence | torch.Tensor) else 0
    checked = check_boxes(boxes, count, height, width)
    return _union_masks(checked, height, width, torch.device(device))


def map_to_box(maps: torch.Tensor, threshold: float = 0.15) -> torch.Tensor:
    """The box a map localizes: the bounding box of its largest connected high region.

    The ILSVRC weakly supervised protocol used by CAM (Zhou et al., CVPR 2016) and Grad-CAM
    (Selvaraju et al., ICCV 2017): keep the pixels with ``map >= threshold * max(map)``
    (a value exactly at the threshold is kept), split them into 8-connected components
    (diagonal neighbours connect), and return the bounding box of the largest component.

    Ties between equally large components go to the one holding the map's maximum (the
    first maximum in scan order), otherwise to the one whose first pixel comes first in
    scan order (row by row).  An all-zero map has no region: its box is the whole image
    ``(0, 0, W, H)``.

    Args:
        maps: ``(B, H, W)`` maps in ``[0, 1]``.
        threshold: fraction of each map's maximum, in ``[0, 1]`` (0.15 in the protocol).

    Returns:
        ``(B, 4)`` float32 boxes ``x0, y0, x1, y1`` in pixels, ``x1``/``y1`` exclusive, on
        the maps' device.

    Raises:
        TypeError: ``maps`` is not a float tensor.
        ValueError: ``maps`` is not ``(B, H, W)``, has NaN/inf or values outside ``[0, 1]``;
            ``threshold`` is not in ``[0, 1]``.

    Examples:
        >>> import torch
        >>> maps = torch.zeros(1, 4, 6)
        >>> maps[0, 1:3, 2:5] = 1.0          # rows 1..2, columns 2..4
        >>> map_to_box(maps)
        tensor([[2., 1., 5., 3.]])
    """
    maps = check_maps(maps)
    threshold = _check_fraction(threshold, "threshold")
    _, height, width = maps.shape
    peaks = maps.flatten(1).amax(dim=1)
    masks = (maps >= threshold * peaks[:, None, None]).cpu().numpy()
    first_peaks = maps.flatten(1).argmax(dim=1).tolist()  # the first maximum in scan order
    boxes = torch.empty(maps.shape[0], 4, dtype=torch.float32)
    for image, (mask, peak) in enumerate(zip(masks, first_peaks, strict=True)):
        if float(peaks[image]) == 0:
            boxes[image] = torch.tensor([0.0, 0.0, width, height])
            continue
        labels, sizes = component_labels(mask)                      # component k + 1
        flat = labels.ravel()
        largest = np.flatnonzero(sizes == sizes.max()) + 1
        peak_label = flat[peak]
        if peak_label in largest:
            chosen = peak_label
        else:
            _, first_pixel = np.unique(flat, return_index=True)     # by label, 0 first
            chosen = largest[np.argmin(first_pixel[largest])]
        rows, columns = np.nonzero(labels == chosen)
        boxes[image] = torch.tensor([columns.min(), rows.min(),
                                     columns.max() + 1, rows.max() + 1], dtype=torch.float32)
    return boxes.to(maps.device)


@dataclass(frozen=True)
class BoxLocalization:
    """Per-image result of :func:`box_localization`.

    Attributes:
        predicted: ``(B, 4)`` the boxes of :func:`map_to_box`.
        iou: ``(B,)`` the best IoU of the predicted box with any ground-truth box of the
            image.
        correct: ``(B,)`` bool, ``iou >= iou_threshold``.  The localization error is
            ``1 - correct``; the top-1 localization error also needs the predicted class to
            be right: ``1 - (correct & right_class)``.
    """

    predicted: torch.Tensor
    iou: torch.Tensor
    correct: torch.Tensor


def box_localization(maps: torch.Tensor, boxes: object, *, threshold: float = 0.15,
                     iou_threshold: float = 0.5) -> BoxLocalization:
    """Weakly supervised localization: is the map's box where an object is?

    ``predicted = map_to_box(map, threshold)``;
    ``iou = max_g |predicted ∩ g| / |predicted ∪ g|`` over the image's ground-truth boxes
    ``g`` (areas in pixels, ``torchvision.ops.box_iou``); correct when
    ``iou >= iou_threshold``.  The ILSVRC protocol of CAM (Zhou et al., CVPR 2016) and
    Grad-CAM (Selvaraju et al., ICCV 2017) uses ``threshold = 0.15`` and
    ``iou_threshold = 0.5``; pass the ground-truth boxes of the class explained.

    Args:
        maps: ``(B, H, W)`` maps in ``[0, 1]``.
        boxes: ``B`` float tensors ``(n_i, 4)`` (or one ``(B, 4)`` tensor): ``x0, y0, x1,
            y1`` in pixels, each image at least one box.
        threshold: fraction of each map's maximum kept (see :func:`map_to_box`).
        iou_threshold: the IoU from which a box counts as correct, in ``[0, 1]``.

    Returns:
        a :class:`BoxLocalization` of per-image ``predicted``, ``iou``, ``correct``.

    Raises:
        TypeError: ``maps`` or ``boxes`` of the wrong type.
        ValueError: bad maps (see :func:`map_to_box`); a box outside the image, empty,
            NaN, or ``x1 <= x0``; a number of box entries other than ``B``; a threshold
            outside ``[0, 1]``.

    Examples:
        >>> import torch
        >>> maps = torch.zeros(1, 4, 4)
        >>> maps[0, :2, :2] = 1.0                      # predicted box (0, 0, 2, 2), area 4
        >>> result = box_localization(maps, [torch.tensor([[0.0, 0.0, 2.0, 4.0]])])
        >>> result.iou, result.correct                 # 4 / 8
        (tensor([0.5000]), tensor([True]))
    """
    maps = check_maps(maps)
    iou_threshold = _check_fraction(iou_threshold, "iou_threshold")
    batch, height, width = maps.shape
    checked = check_boxes(boxes, batch, height, width)
    predicted = map_to_box(maps, threshold)
    truth, owner = _flatten_boxes(checked, maps.device)
    overlaps = box_iou(predicted, truth)                                  # (B, M)
    own = owner[None, :] == torch.arange(batch, device=maps.device)[:, None]
    iou = torch.where(own, overlaps, torch.full_like(overlaps, -1.0)).amax(dim=1)
    return BoxLocalization(predicted=predicted, iou=iou, correct=iou >= iou_threshold)


def _check_tolerance(tolerance: object) -> float:
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) \
            or not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a finite number of pixels >= 0, got {tolerance!r}")
    return float(tolerance)


def _peak_distances(maps: torch.Tensor, flat: torch.Tensor, owner: torch.Tensor
                    ) -> torch.Tensor:
    """``(M,)`` the distance from the peak of each box's image (its first maximum in scan
    order, at the pixel's centre) to the nearest point of the box, 0 inside."""
    width = maps.shape[2]
    peak = maps.flatten(1).argmax(dim=1)                 # first maximum in scan order
    x = (peak % width).to(flat.dtype)[owner] + 0.5       # the peak of each box's image
    y = torch.div(peak, width, rounding_mode="floor").to(flat.dtype)[owner] + 0.5
    zero = torch.zeros_like(x)
    dx = torch.maximum(torch.maximum(flat[:, 0] - x, x - flat[:, 2]), zero)
    dy = torch.maximum(torch.maximum(flat[:, 1] - y, y - flat[:, 3]), zero)
    return torch.hypot(dx, dy)


def pointing_game(maps: torch.Tensor, boxes: object, *, tolerance: float = 15.0) -> torch.Tensor:
    """Pointing game: does the map's maximum fall on an object?

    Zhang et al., "Top-down neural attention by excitation backprop", ECCV 2016: a hit
    when the map's maximum lies within ``tolerance`` pixels of a ground-truth box.  The
    maximum is the first in scan order if several pixels share it; its position is the
    pixel centre ``(j + 0.5, i + 0.5)`` and its distance to a box is the Euclidean
    distance to the nearest point of ``[x0, x1] x [y0, y1]`` (0 inside).  Hit when
    ``distance <= tolerance`` for any of the image's boxes.  An all-zero map points
    nowhere: a miss.

    Args:
        maps: ``(B, H, W)`` maps in ``[0, 1]``.
        boxes: ``B`` float tensors ``(n_i, 4)`` (or one ``(B, 4)`` tensor) of ``x0, y0,
            x1, y1`` in pixels.
        tolerance: pixels, ``>= 0`` (15 in the paper).

    Returns:
        ``(B,)`` bool, hit or miss per image.

    Raises:
        TypeError: ``maps`` or ``boxes`` of the wrong type.
        ValueError: bad maps or boxes (see :func:`box_localization`); a negative or
            non-finite ``tolerance``.

    Examples:
        >>> import torch
        >>> maps = torch.zeros(2, 8, 8)
        >>> maps[0, 1, 1] = 1.0        # inside the box
        >>> maps[1, 7, 7] = 1.0        # centre (7.5, 7.5): hypot(4.5, 4.5) = 6.4 px away
        >>> pointing_game(maps, [torch.tensor([[0.0, 0.0, 3.0, 3.0]])] * 2, tolerance=4.0)
        tensor([ True, False])
    """
    maps = check_maps(maps)
    tolerance = _check_tolerance(tolerance)
    batch, height, width = maps.shape
    checked = check_boxes(boxes, batch, height, width)
    flat, owner = _flatten_boxes(checked, maps.device)
    close = _peak_distances(maps, flat, owner) <= tolerance
    hits = torch.zeros(batch, dtype=torch.long, device=maps.device)
    hits.index_add_(0, owner, close.long())
    return (hits > 0) & (maps.flatten(1).amax(dim=1) > 0)


def energy_pointing_game(maps: torch.Tensor, boxes: object) -> torch.Tensor:
    """Energy-based pointing game: the share of the map's mass inside the objects' boxes.

    Wang et al., "Score-CAM", CVPRW 2020: ``sum_{ij in boxes} L_ij / sum_ij L_ij`` with
    ``L`` the map and ``boxes`` the union of the image's ground-truth boxes (a pixel
    counts once however many boxes hold it; a pixel is inside when its centre is).  An
    all-zero map has no mass anywhere: 0.

    Args:
        maps: ``(B, H, W)`` maps in ``[0, 1]``.
        boxes: ``B`` float tensors ``(n_i, 4)`` (or one ``(B, 4)`` tensor) of ``x0, y0,
            x1, y1`` in pixels.

    Returns:
        ``(B,)`` float in ``[0, 1]``.

    Raises:
        TypeError: ``maps`` or ``boxes`` of the wrong type.
        ValueError: bad maps or boxes (see :func:`box_localization`).

    Examples:
        >>> import torch
        >>> maps = torch.tensor([[[1.0, 0.5], [0.5, 0.0]]])
        >>> energy_pointing_game(maps, [torch.tensor([[0.0, 0.0, 1.0, 1.0]])])  # 1 / 2
        tensor([0.5000])
    """
    maps = check_maps(maps)
    batch, height, width = maps.shape
    checked = check_boxes(boxes, batch, height, width)
    return _mass_inside(maps, _union_masks(checked, height, width, maps.device))


@dataclass(frozen=True)
class ClassDiscrimination:
    """Per-image result of :func:`class_discrimination`.

    Attributes:
        right: ``(B,)`` share of the map's mass inside the explained class's boxes.
        wrong: ``(B,)`` share inside the other object's boxes.
        share: ``(B,)`` ``right / (right + wrong)``, 0.5 when both are 0 (no evidence
            either way).
    """

    right: torch.Tensor
    wrong: torch.Tensor
    share: torch.Tensor


def class_discrimination(maps: torch.Tensor, right_boxes: object,
                         wrong_boxes: object) -> ClassDiscrimination:
    """Class discrimination: does the map of class A sit on A's object rather than on B's?

    For images holding two objects of different classes A and B at known boxes, the map
    explaining A should put its mass on A (Selvaraju et al., ICCV 2017, discuss class
    discrimination on such images).  With ``L`` the map and ``R``/``W`` the unions of
    the right and wrong boxes: ``right = sum_{R} L / sum L``, ``wrong = sum_{W} L / sum L``,
    ``share = right / (right + wrong)``.  Pixels inside both (overlapping boxes) count
    for both, so ``right + wrong`` can exceed 1; ``share`` is 0.5 when ``right`` and
    ``wrong`` are both 0 (an all-zero map, or all mass outside both objects).

    Args:
        maps: ``(B, H, W)`` maps in ``[0, 1]`` of the class A of each image.
        right_boxes: ``B`` float tensors ``(n_i, 4)`` (or a ``(B, 4)`` tensor): A's boxes.
        wrong_boxes: the same for the other object B.

    Returns:
        a :class:`ClassDiscrimination` of per-image ``right``, ``wrong``, ``share``.

    Raises:
        TypeError: ``maps`` or boxes of the wrong type.
        ValueError: bad maps or boxes (see :func:`box_localization`).

    Examples:
        >>> import torch
        >>> maps = torch.tensor([[[1.0, 0.0, 0.5, 0.0]]])         # a 1 x 4 map, mass 1.5
        >>> result = class_discrimination(maps, torch.tensor([[0.0, 0.0, 2.0, 1.0]]),
        ...                               torch.tensor([[2.0, 0.0, 4.0, 1.0]]))
        >>> result.right, result.wrong, result.share
        (tensor([0.6667]), tensor([0.3333]), tensor([0.6667]))
    """
    maps = check_maps(maps)
    batch, height, width = maps.shape
    right_checked = check_boxes(right_boxes, batch, height, width, what="right_boxes")
    wrong_checked = check_boxes(wrong_boxes, batch, height, width, what="wrong_boxes")
    right = _mass_inside(maps, _union_masks(right_checked, height, width, maps.device))
    wrong = _mass_inside(maps, _union_masks(wrong_checked, height, width, maps.device))
    both = right + wrong
    share = torch.where(both > 0, safe_divide(right, both), torch.full_like(right, 0.5))
    return ClassDiscrimination(right=right, wrong=wrong, share=share)


#: the regions :func:`evidence_location` tells apart, in the order of its ``peak`` index
EVIDENCE_REGIONS: tuple[str, ...] = ("object", "other object", "background")


@dataclass(frozen=True)
class EvidenceLocation:
    """Per-image result of :func:`evidence_location`.

    Attributes:
        object: ``(B,)`` share of the map's mass on the labelled object's boxes.
        other: ``(B,)`` share on the other objects' boxes, outside the labelled object's.
        background: ``(B,)`` share outside every box.
        peak: ``(B,)`` long, the index in :data:`EVIDENCE_REGIONS` of the region holding
            the map's maximum (the first in scan order), ``-1`` for an all-zero map.
    """

    object: torch.Tensor
    other: torch.Tensor
    background: torch.Tensor
    peak: torch.Tensor


def evidence_location(maps: torch.Tensor, object_boxes: object, other_boxes: object, *,
                      tolerance: float = 0.0) -> EvidenceLocation:
    """Where a map's mass and its peak lie: on the labelled object, on another object, on
    the background.

    With ``L`` the map, ``O`` the union of the labelled object's boxes and ``T`` the union
    of the other objects' boxes (pixels by their centres, as in
    :func:`energy_pointing_game`): ``object = sum_O L / sum L``,
    ``other = sum_{T \\ O} L / sum L`` and ``background = 1 - object - other`` (a pixel in
    both an object's and another's box counts for the object, so the three sum to 1); a
    uniform map gives each region's share of the image's area.

    ``peak`` is where the map's maximum points, as the pointing game (:func:`pointing_game`)
    measures it: the first maximum in scan order, at its pixel's centre; its distance to a
    box is 0 inside. The object if its nearest object box is within ``tolerance`` pixels
    and no farther than the nearest other box; else another object if that one is within
    ``tolerance``; else the background. An all-zero map has no mass: every share is 0 and
    ``peak`` is ``-1``. Either box list may be empty for an image (no box of that kind); an
    image with no box at all has all its mass and its peak on the background.

    Args:
        maps: ``(B, H, W)`` maps in ``[0, 1]``.
        object_boxes: ``B`` float tensors ``(n_i, 4)`` (``n_i`` may be 0) of ``x0, y0, x1,
            y1`` in pixels: the boxes of the object the image is labelled with.
        other_boxes: the same for every other object of the image.
        tolerance: how far (pixels, ``>= 0``) the peak may miss a box and still point at it
            (15 in the pointing game of Zhang et al., ECCV 2016; 0: it must be inside).

    Returns:
        an :class:`EvidenceLocation` of per-image ``object``, ``other``, ``background``,
        ``peak``.

    Raises:
        TypeError: ``maps`` or boxes of the wrong type.
        ValueError: bad maps or boxes (see :func:`box_localization`; an image may have no
            box here); a negative or non-finite ``tolerance``.

    Examples:
        >>> import torch
        >>> maps = torch.tensor([[[0.5, 0.0, 1.0, 0.5]]])         # a 1 x 4 map, mass 2
        >>> where = evidence_location(maps, [torch.tensor([[0.0, 0.0, 1.0, 1.0]])],
        ...                           [torch.tensor([[2.0, 0.0, 3.0, 1.0]])])
        >>> where.object, where.other, where.background, EVIDENCE_REGIONS[where.peak[0]]
        (tensor([0.2500]), tensor([0.5000]), tensor([0.2500]), 'other object')
    """
    maps = check_maps(maps)
    tolerance = _check_tolerance(tolerance)
    batch, height, width = maps.shape
    boxes = [check_boxes(given, batch, height, width, what=what, allow_empty=True)
             for given, what in ((object_boxes, "object_boxes"), (other_boxes, "other_boxes"))]
    on_object, on_other = (_union_masks(checked, height, width, maps.device)
                           for checked in boxes)
    object_share = _mass_inside(maps, on_object)
    boxed = torch.maximum(_mass_inside(maps, on_object | on_other), object_share)
    has_mass = maps.sum(dim=(1, 2)) > 0
    background = torch.where(has_mass, 1 - boxed, torch.zeros_like(boxed))
    nearest = []
    for checked in boxes:  # per image, the distance from the peak to the nearest box
        flat, owner = _flatten_boxes(checked, maps.device)
        distance = torch.full((batch,), math.inf, dtype=flat.dtype, device=maps.device)
        nearest.append(distance.scatter_reduce(0, owner, _peak_distances(maps, flat, owner),
                                               reduce="amin"))
    to_object, to_other = nearest
    peak = torch.where((to_object <= tolerance) & (to_object <= to_other), 0,
                       torch.where(to_other <= tolerance, 1, 2))
    return EvidenceLocation(object=object_share, other=boxed - object_share,
                            background=background, peak=torch.where(has_mass, peak, -1))


__all__ = [
    "EVIDENCE_REGIONS", "BoxLocalization", "ClassDiscrimination", "EvidenceLocation",
    "box_localization", "boxes_to_masks", "class_discrimination", "energy_pointing_game",
    "evidence_location", "map_to_box", "pointing_game",
]
