"""Localization metrics: hand-computed boxes, IoUs, pointing games and mass shares on tiny
maps, slow per-pixel references, and clear errors on bad input."""

from __future__ import annotations

import math

import pytest
import torch

from axiomcam.metrics.localization import (
    box_localization,
    class_discrimination,
    energy_pointing_game,
    map_to_box,
    pointing_game,
)

# ---------------------------------------------------------------------------- map_to_box


def test_map_to_box_takes_the_largest_blob_not_the_one_with_the_maximum():
    maps = torch.zeros(1, 6, 6)
    maps[0, 0, 0] = maps[0, 0, 1] = maps[0, 1, 0] = 1.0   # 3 pixels, holds the maximum
    maps[0, 3, 2:5] = 0.5                                 # rows 3..5, columns 2..4:
    maps[0, 4, 3] = 0.5                                   # 5 pixels
    maps[0, 5, 4] = 0.2
    assert torch.equal(map_to_box(maps), torch.tensor([[2.0, 3.0, 5.0, 6.0]]))


def test_map_to_box_a_value_exactly_at_the_threshold_is_inside():
    # {0, 1} (at exactly 15% of the max) is the larger component only if it is kept
    maps = torch.tensor([[[0.15, 0.15, 0.0, 1.0, 0.0]]])
    assert torch.equal(map_to_box(maps), torch.tensor([[0.0, 0.0, 2.0, 1.0]]))
    # just below the threshold, the maximum's pixel is the only component
    below = torch.tensor([[[0.1499, 0.1499, 0.0, 1.0, 0.0]]])
    assert torch.equal(map_to_box(below), torch.tensor([[3.0, 0.0, 4.0, 1.0]]))
    # the threshold is relative to the map's maximum (0.25 = 0.5 * 0.5 exactly)
    half = torch.tensor([[[0.25, 0.25, 0.2, 0.5, 0.0]]])
    assert torch.equal(map_to_box(half, threshold=0.5), torch.tensor([[0.0, 0.0, 2.0, 1.0]]))
    assert torch.equal(map_to_box(half, threshold=0.0), torch.tensor([[0.0, 0.0, 5.0, 1.0]]))


def test_map_to_box_is_eight_connected():
    maps = torch.zeros(1, 6, 6)
    maps[0, 0, 0] = maps[0, 1, 1] = maps[0, 2, 2] = 0.5   # a diagonal: one component of 3
    maps[0, 5, 3] = maps[0, 5, 4] = 1.0                    # a pair with the maximum
    assert torch.equal(map_to_box(maps), torch.tensor([[0.0, 0.0, 3.0, 3.0]]))


def test_map_to_box_ties_go_to_the_maximum_then_to_scan_order():
    maps = torch.zeros(2, 6, 6)
    for image in range(2):
        maps[image, 0, 4:6] = 0.5    # first in scan order (top right)
        maps[image, 2, 0:2] = 0.5    # second in scan order (left)
    maps[0, 5, 5] = 1.0              # the maximum alone: neither tied component holds it
    maps[1, 2, 1] = 1.0              # the maximum in the second component
    assert torch.equal(map_to_box(maps), torch.tensor([[4.0, 0.0, 6.0, 1.0],
                                                       [0.0, 2.0, 2.0, 3.0]]))


def test_map_to_box_all_zero_map_is_the_whole_image_and_shapes_are_per_image():
    maps = torch.zeros(3, 4, 7)
    maps[1, 1:3, 5] = 0.7            # a column strip: x in [5, 6), y in [1, 3)
    maps[2, 3, 0] = 1.0
    expected = torch.tensor([[0.0, 0.0, 7.0, 4.0], [5.0, 1.0, 6.0, 3.0], [0.0, 3.0, 1.0, 4.0]])
    boxes = map_to_box(maps)
    assert boxes.dtype == torch.float32
    assert torch.equal(boxes, expected)
    assert torch.equal(map_to_box(maps.double()), expected)


def _slow_largest_component_box(cam_map: torch.Tensor, threshold: float) -> list[float]:
    """Flood fill over the 8 neighbours, pixel by pixel, with the documented tie rule."""
    height, width = cam_map.shape
    peak = float(cam_map.max())
    if peak == 0:
        return [0.0, 0.0, float(width), float(height)]
    keep = [[float(cam_map[i, j]) >= threshold * peak for j in range(width)]
            for i in range(height)]
    flat_peak = int(cam_map.flatten().argmax())
    seen = [[False] * width for _ in range(height)]
    components = []                                   # in scan order of their first pixel
    for i in range(height):
        for j in range(width):
            if keep[i][j] and not seen[i][j]:
                stack, pixels = [(i, j)], []
                seen[i][j] = True
                while stack:
                    a, b = stack.pop()
                    pixels.append((a, b))
                    for da in (-1, 0, 1):
                        for db in (-1, 0, 1):
                            u, v = a + da, b + db
                            if 0 <= u < height and 0 <= v < width and keep[u][v] \
                                    and not seen[u][v]:
                                seen[u][v] = True
                                stack.append((u, v))
                components.append(pixels)
    largest = max(len(c) for c in components)
    tied = [c for c in components if len(c) == largest]
    with_peak = [c for c in tied if divmod(flat_peak, width) in c]
    chosen = with_peak[0] if with_peak else tied[0]
    rows = [a for a, _ in chosen]
    columns = [b for _, b in chosen]
    return [min(columns), min(rows), max(columns) + 1.0, max(rows) + 1.0]


def test_map_to_box_agrees_with_a_flood_fill_reference():
    generator = torch.Generator().manual_seed(0)
    # sparse speckle: many small components, frequent ties
    maps = torch.rand(6, 9, 13, generator=generator)
    maps = torch.where(torch.rand(6, 9, 13, generator=generator) < 0.35, maps, 0.0)
    maps = torch.round(maps * 4) / 4
    expected = torch.tensor([_slow_largest_component_box(m, 0.3) for m in maps])
    assert torch.equal(map_to_box(maps, threshold=0.3), expected)


# ---------------------------------------------------------------------- box_localization


def _square_map(x0: int, y0: int, x1: int, y1: int, height: int = 6,
                width: int = 8) -> torch.Tensor:
    maps = torch.zeros(height, width)
    maps[y0:y1, x0:x1] = 1.0
    return maps


def test_box_localization_iou_by_hand():
    maps = _square_map(0, 0, 2, 2)[None]                 # predicted (0, 0, 2, 2), area 4
    # ground truth (1, 0, 3, 2): overlap column 1, rows 0..1 = 2; union 4 + 4 - 2 = 6
    result = box_localization(maps, [torch.tensor([[1.0, 0.0, 3.0, 2.0]])])
    assert torch.equal(result.predicted, torch.tensor([[0.0, 0.0, 2.0, 2.0]]))
    assert torch.allclose(result.iou, torch.tensor([1 / 3]))
    assert result.correct.tolist() == [False]


def test_box_localization_correct_at_the_iou_threshold():
    maps = _square_map(0, 0, 2, 2)[None]
    truth = [torch.tensor([[0.0, 0.0, 2.0, 4.0]])]       # contains the prediction: 4 / 8
    assert box_localization(maps, truth).iou.tolist() == [0.5]
    assert box_localization(maps, truth).correct.tolist() == [True]
    assert box_localization(maps, truth, iou_threshold=0.51).correct.tolist() == [False]


def test_box_localization_best_over_the_images_own_boxes():
    maps = torch.stack([_square_map(0, 0, 2, 2), _square_map(4, 2, 6, 4)])
    truth = [
        torch.tensor([[4.0, 2.0, 6.0, 4.0]]),                           # IoU 0
        # image 1: (0, 0, 2, 2) would be a perfect match for image 0, not for image 1;
        # (4, 2, 6, 3) is half of image 1's box: 2 / 4
        torch.tensor([[0.0, 0.0, 2.0, 2.0], [4.0, 2.0, 6.0, 3.0], [7.0, 5.0, 8.0, 6.0]]),
    ]
    result = box_localization(maps, truth)
    assert result.iou.tolist() == [0.0, 0.5]
    assert result.correct.tolist() == [False, True]
    # several boxes: the best one counts, whatever the order
    best = box_localization(maps[:1], [torch.tensor([[3.0, 3.0, 4.0, 4.0],
                                                     [1.0, 0.0, 3.0, 2.0],
                                                     [0.0, 0.0, 2.0, 2.0]])])
    assert best.iou.tolist() == [1.0]


def test_box_localization_uses_the_threshold_of_map_to_box():
    maps = torch.zeros(1, 4, 4)
    maps[0, 0, 0] = 1.0
    maps[0, 0, 1:4] = 0.3        # kept at 0.15, dropped at 0.5
    truth = [torch.tensor([[0.0, 0.0, 4.0, 1.0]])]
    assert box_localization(maps, truth).iou.tolist() == [1.0]
    assert box_localization(maps, truth, threshold=0.5).iou.tolist() == [0.25]
    assert torch.equal(box_localization(maps, truth, threshold=0.5).predicted,
                       map_to_box(maps, threshold=0.5))


# -------------------------------------------------------------------------- pointing game


def _peak_map(row: int, column: int, height: int = 8, width: int = 12) -> torch.Tensor:
    maps = torch.full((height, width), 0.1)
    maps[row, column] = 1.0
    return maps


BOX = torch.tensor([[2.0, 2.0, 5.0, 4.0]])     # columns 2..4, rows 2..3


def test_pointing_game_inside_near_and_far():
    maps = torch.stack([
        _peak_map(3, 4),     # inside (last column and row of the box)
        _peak_map(3, 7),     # centre x = 7.5: 2.5 px right of the box
        _peak_map(6, 8),     # centre (8.5, 6.5): hypot(3.5, 2.5) = 4.30 px away
    ])
    boxes = [BOX] * 3
    assert pointing_game(maps, boxes, tolerance=0.0).tolist() == [True, False, False]
    assert pointing_game(maps, boxes, tolerance=2.5).tolist() == [True, True, False]
    assert pointing_game(maps, boxes, tolerance=2.4).tolist() == [True, False, False]
    assert math.hypot(3.5, 2.5) < 4.31
    assert pointing_game(maps, boxes, tolerance=4.31).tolist() == [True, True, True]
    assert pointing_game(maps, boxes, tolerance=4.30).tolist() == [True, True, False]


def test_pointing_game_default_tolerance_is_15_pixels():
    near, far = _peak_map(2, 19, 40, 40), _peak_map(2, 20, 40, 40)   # 14.5 and 15.5 px
    result = pointing_game(torch.stack([near, far]), [torch.tensor([[0.0, 0.0, 5.0, 5.0]])] * 2)
    assert result.tolist() == [True, False]


def test_pointing_game_any_box_and_first_maximum_and_zero_map():
    far_box = torch.tensor([[10.0, 6.0, 12.0, 8.0]])
    two_boxes = torch.cat([far_box, BOX])
    first_inside = _peak_map(2, 2)
    first_inside[7, 0] = 1.0                 # a tie later in scan order, far away
    first_outside = _peak_map(0, 11)         # far away, first in scan order (row 0)
    first_outside[3, 3] = 1.0                # the tie inside the box comes later
    zero = torch.zeros(8, 12)                # argmax would be (0, 0), inside the box
    maps = torch.stack([_peak_map(3, 3), first_inside, first_outside, zero])
    boxes = [two_boxes, BOX, BOX, torch.tensor([[0.0, 0.0, 2.0, 2.0]])]
    assert pointing_game(maps, boxes, tolerance=0.0).tolist() == [True, True, False, False]
    assert pointing_game(maps[:1], [far_box], tolerance=0.0).tolist() == [False]


def test_pointing_game_agrees_with_a_per_box_loop():
    generator = torch.Generator().manual_seed(1)
    height, width = 20, 30
    maps = torch.rand(12, height, width, generator=generator)
    boxes = []
    for _ in range(12):
        count = int(torch.randint(1, 4, (1,), generator=generator))
        x0 = torch.randint(0, width - 1, (count,), generator=generator).float()
        y0 = torch.randint(0, height - 1, (count,), generator=generator).float()
        x1 = x0 + 1 + torch.rand(count, generator=generator) * (width - 1 - x0)
        y1 = y0 + 1 + torch.rand(count, generator=generator) * (height - 1 - y0)
        boxes.append(torch.stack([x0, y0, x1, y1], 1))
    for tolerance in (0.0, 3.0, 7.5):
        expected = []
        for cam_map, image_boxes in zip(maps, boxes, strict=True):
            i, j = divmod(int(cam_map.flatten().argmax()), width)
            x, y = j + 0.5, i + 0.5
            expected.append(any(
                math.hypot(max(x0 - x, 0.0, x - x1), max(y0 - y, 0.0, y - y1)) <= tolerance
                for x0, y0, x1, y1 in image_boxes.tolist()))
        assert pointing_game(maps, boxes, tolerance=tolerance).tolist() == expected


# -------------------------------------------------------------------- energy pointing game

ENERGY_MAP = torch.tensor([[
    [0.0, 0.5, 1.0, 0.0],
    [0.25, 0.5, 0.0, 0.0],
    [0.0, 0.0, 0.0, 0.75],
    [0.0, 0.0, 0.0, 0.0],
]])                                                          # total mass 3


def test_energy_pointing_game_by_hand():
    # columns 1..2, rows 0..1: 0.5 + 1.0 + 0.5 + 0.0 = 2
    inside = energy_pointing_game(ENERGY_MAP, [torch.tensor([[1.0, 0.0, 3.0, 2.0]])])
    assert torch.allclose(inside, torch.tensor([2 / 3]))
    # with a second box over columns 2..3, rows 0..2 (overlapping at column 2): the union
    # adds 0.75 only, pixels in both boxes count once
    union = energy_pointing_game(ENERGY_MAP, [torch.tensor([[1.0, 0.0, 3.0, 2.0],
                                                            [2.0, 0.0, 4.0, 3.0]])])
    assert torch.allclose(union, torch.tensor([2.75 / 3]))
    whole = energy_pointing_game(ENERGY_MAP, [torch.tensor([[0.0, 0.0, 4.0, 4.0]])])
    assert whole.tolist() == [1.0]


def test_energy_pointing_game_pixel_centres_decide_and_zero_map_is_zero():
    # x in [0.4, 1.6) holds the centres 0.5 and 1.5: columns 0 and 1
    fractional = energy_pointing_game(ENERGY_MAP, [torch.tensor([[0.4, 0.0, 1.6, 2.0]])])
    assert torch.allclose(fractional, torch.tensor([1.25 / 3]))
    zero = energy_pointing_game(torch.zeros(2, 4, 4), torch.tensor([[0.0, 0.0, 2.0, 2.0]] * 2))
    assert zero.tolist() == [0.0, 0.0]


def test_energy_pointing_game_agrees_with_a_per_pixel_loop():
    generator = torch.Generator().manual_seed(2)
    maps = torch.rand(5, 7, 9, generator=generator)
    boxes = [torch.tensor([[0.0, 0.0, 3.0, 2.0], [2.0, 1.0, 9.0, 4.0]]),
             torch.tensor([[1.5, 2.2, 6.7, 7.0]]),
             torch.tensor([[8.0, 6.0, 9.0, 7.0]]),
             torch.tensor([[0.0, 0.0, 9.0, 7.0], [1.0, 1.0, 2.0, 2.0]]),
             torch.tensor([[3.0, 3.0, 4.0, 4.0], [3.0, 3.0, 4.0, 4.0]])]
    expected = []
    for cam_map, image_boxes in zip(maps, boxes, strict=True):
        inside = 0.0
        for i in range(7):
            for j in range(9):
                if any(x0 <= j + 0.5 < x1 and y0 <= i + 0.5 < y1
                       for x0, y0, x1, y1 in image_boxes.tolist()):
                    inside += float(cam_map[i, j])
        expected.append(inside / float(cam_map.sum()))
    assert torch.allclose(energy_pointing_game(maps, boxes), torch.tensor(expected))


# ------------------------------------------------------------------- class discrimination

TWO_OBJECTS = torch.tensor([[
    [1.0, 0.0, 0.0, 0.5],
    [0.0, 0.5, 0.0, 0.0],
    [0.0, 0.0, 0.25, 0.25],
]])                                                          # total mass 2.5


def test_class_discrimination_by_hand():
    right = torch.tensor([[0.0, 0.0, 2.0, 2.0]])            # 1 + 0.5 = 1.5 -> 0.6
    wrong = torch.tensor([[2.0, 1.0, 4.0, 3.0]])            # 0.25 + 0.25 = 0.5 -> 0.2
    result = class_discrimination(TWO_OBJECTS, right, wrong)
    assert torch.allclose(result.right, torch.tensor([0.6]))
    assert torch.allclose(result.wrong, torch.tensor([0.2]))
    assert torch.allclose(result.share, torch.tensor([0.75]))
    swapped = class_discrimination(TWO_OBJECTS, wrong, right)
    assert torch.allclose(swapped.share, torch.tensor([0.25]))


def test_class_discrimination_overlap_counts_for_both():
    right = [torch.tensor([[0.0, 0.0, 3.0, 3.0]])]   # columns 0..2: 1 + 0.5 + 0.25 = 1.75
    wrong = [torch.tensor([[1.0, 0.0, 4.0, 3.0]])]   # columns 1..3: 0.5 + 0.5 + 0.25 + 0.25
    result = class_discrimination(TWO_OBJECTS, right, wrong)
    assert torch.allclose(result.right, torch.tensor([0.7]))
    assert torch.allclose(result.wrong, torch.tensor([0.6]))
    assert torch.allclose(result.share, torch.tensor([0.7 / 1.3]))


def test_class_discrimination_no_evidence_is_one_half():
    maps = torch.zeros(2, 3, 4)
    maps[1, 2, 3] = 1.0                               # all mass outside both boxes
    result = class_discrimination(maps, torch.tensor([[0.0, 0.0, 2.0, 2.0]] * 2),
                                  torch.tensor([[2.0, 0.0, 3.0, 2.0]] * 2))
    assert result.right.tolist() == [0.0, 0.0]
    assert result.wrong.tolist() == [0.0, 0.0]
    assert result.share.tolist() == [0.5, 0.5]


# -------------------------------------------------------------------------------- bad input

GOOD_BOXES = [torch.tensor([[0.0, 0.0, 2.0, 2.0]])]


def _every_metric(maps, boxes):
    return [
        lambda: box_localization(maps, boxes),
        lambda: pointing_game(maps, boxes),
        lambda: energy_pointing_game(maps, boxes),
        lambda: class_discrimination(maps, boxes, GOOD_BOXES),
        lambda: class_discrimination(maps, GOOD_BOXES, boxes),
    ]


@pytest.mark.parametrize("box", [[0.0, 0.0, 5.0, 2.0], [0.0, -1.0, 2.0, 2.0],
                                 [0.0, 0.0, 2.0, 4.5], [2.0, 0.0, 2.0, 2.0]])
def test_box_outside_the_image_or_empty_is_an_error(box):
    maps = torch.rand(1, 4, 4)
    for call in _every_metric(maps, [torch.tensor([box])]):
        with pytest.raises(ValueError, match=r"outside|x0 < x1"):
            call()


def test_box_list_length_mismatch_is_an_error():
    maps = torch.rand(2, 4, 4)
    for call in _every_metric(maps, GOOD_BOXES):
        with pytest.raises(ValueError, match=r"1 .*entries for a batch of 2"):
            call()


@pytest.mark.parametrize("maps, error, message", [
    (torch.rand(4, 4), ValueError, r"\(B, H, W\)"),
    (torch.rand(1, 1, 4, 4), ValueError, r"\(B, H, W\)"),
    (torch.full((1, 4, 4), float("nan")), ValueError, "NaN"),
    (torch.full((1, 4, 4), 2.0), ValueError, r"\[0, 1\]"),
    (torch.ones(1, 4, 4, dtype=torch.long), TypeError, "float"),
])
def test_bad_maps_are_an_error(maps, error, message):
    calls = [lambda: map_to_box(maps), *_every_metric(maps, GOOD_BOXES)]
    for call in calls:
        with pytest.raises(error, match=message):
            call()


def test_bad_thresholds_are_an_error():
    maps = torch.rand(1, 4, 4)
    with pytest.raises(ValueError, match="threshold"):
        map_to_box(maps, threshold=1.5)
    with pytest.raises(ValueError, match="iou_threshold"):
        box_localization(maps, GOOD_BOXES, iou_threshold=-0.1)
    with pytest.raises(ValueError, match="tolerance"):
        pointing_game(maps, GOOD_BOXES, tolerance=-1.0)
    with pytest.raises(ValueError, match="tolerance"):
        pointing_game(maps, GOOD_BOXES, tolerance=float("nan"))
