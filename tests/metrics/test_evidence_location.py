"""``evidence_location``: a map's mass on the labelled object, on other objects and on the
background, and the region of its peak, against a slow per-pixel loop; closed forms (a
uniform map gives the areas); degenerate maps and boxes; clear errors."""

from __future__ import annotations

import math

import pytest
import torch

from axiomcam.metrics import EVIDENCE_REGIONS, energy_pointing_game, evidence_location


def _slow_reference(cam_map: torch.Tensor, object_boxes: torch.Tensor,
                    other_boxes: torch.Tensor, tolerance: float = 0.0
                    ) -> tuple[float, float, float, int]:
    """Pixel by pixel: a pixel is in a box when its centre (j + 0.5, i + 0.5) is in
    [x0, x1) x [y0, y1); the object wins over another object. The peak is the first
    maximum in scan order; it points at the nearest box (the object on ties) within
    ``tolerance`` of its centre, measured to the closed box."""
    height, width = cam_map.shape

    def inside(boxes: torch.Tensor, i: int, j: int) -> bool:
        return any(x0 <= j + 0.5 < x1 and y0 <= i + 0.5 < y1 for x0, y0, x1, y1 in boxes.tolist())

    def nearest(boxes: torch.Tensor, i: int, j: int) -> float:
        x, y = j + 0.5, i + 0.5
        return min((math.hypot(max(x0 - x, 0, x - x1), max(y0 - y, 0, y - y1))
                    for x0, y0, x1, y1 in boxes.tolist()), default=math.inf)

    totals = [0.0, 0.0, 0.0]
    best, top = -1.0, (0, 0)
    for i in range(height):
        for j in range(width):
            value = float(cam_map[i, j])
            region = 0 if inside(object_boxes, i, j) else 1 if inside(other_boxes, i, j) else 2
            totals[region] += value
            if value > best:
                best, top = value, (i, j)
    to_object, to_other = nearest(object_boxes, *top), nearest(other_boxes, *top)
    peak = 0 if to_object <= min(tolerance, to_other) else 1 if to_other <= tolerance else 2
    mass = sum(totals)
    return (*(total / mass for total in totals), peak)


def _random_boxes(generator: torch.Generator, count: int, size: int) -> torch.Tensor:
    corners = torch.rand(count, 2, 2, generator=generator) * size
    low, high = corners.min(dim=1).values, corners.max(dim=1).values + 0.5
    return torch.cat([low, high.clamp(max=size)], dim=1)  # fractional edges, overlaps


@pytest.mark.parametrize("tolerance", [0.0, 1.5, 4.0])
def test_shares_and_peak_match_a_slow_per_pixel_loop(tolerance):
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    maps = torch.rand(6, 12, 10, generator=generator) ** 3
    object_boxes = [_random_boxes(generator, n, 10) for n in (1, 2, 0, 1, 3, 1)]
    other_boxes = [_random_boxes(generator, n, 10) for n in (1, 0, 2, 3, 1, 0)]
    result = evidence_location(maps, object_boxes, other_boxes, tolerance=tolerance)
    for image in range(6):
        *shares, peak = _slow_reference(maps[image], object_boxes[image], other_boxes[image],
                                        tolerance)
        got = (result.object[image], result.other[image], result.background[image])
        assert [float(value) for value in got] == pytest.approx(shares, abs=1e-5)
        assert int(result.peak[image]) == peak
    total = result.object + result.other + result.background
    assert torch.allclose(total, torch.ones(6))
    # the object's share is the energy pointing game of its boxes, where it has some
    assert torch.allclose(result.object[0], energy_pointing_game(maps[:1], object_boxes[:1]))


def test_a_uniform_map_gives_the_areas_and_a_peaked_map_its_peak_region():
    torch.manual_seed(0)
    uniform = torch.ones(1, 10, 20)
    object_boxes = [torch.tensor([[0.0, 0.0, 5.0, 4.0]])]           # 20 pixels
    other_boxes = [torch.tensor([[3.0, 0.0, 13.0, 10.0]])]          # 100, 4 x 2 shared
    result = evidence_location(uniform, object_boxes, other_boxes)
    assert (float(result.object), float(result.other), float(result.background)) == \
        pytest.approx((20 / 200, (100 - 8) / 200, (200 - 112) / 200))
    peaked = torch.zeros(3, 10, 20)
    peaked[0, 1, 1] = peaked[1, 5, 10] = peaked[2, 9, 19] = 1.0      # object, other, background
    peaked[:, 9, 0] = 0.5                                             # the rest on background
    again = evidence_location(peaked, object_boxes * 3, other_boxes * 3)
    assert [EVIDENCE_REGIONS[i] for i in again.peak.tolist()] == ["object", "other object",
                                                                   "background"]
    assert again.object.tolist() == pytest.approx([1 / 1.5, 0.0, 0.0])


def test_a_peak_just_off_a_box_points_at_it_within_the_tolerance():
    torch.manual_seed(0)
    maps = torch.zeros(1, 20, 20)
    maps[0, 2, 9] = 1.0                                    # centre (9.5, 2.5)
    object_boxes = [torch.tensor([[0.0, 0.0, 6.0, 6.0]])]  # 3.5 px to the left
    other_boxes = [torch.tensor([[11.0, 0.0, 16.0, 6.0]])]  # 1.5 px to the right
    regions = [EVIDENCE_REGIONS[int(evidence_location(
        maps, object_boxes, other_boxes, tolerance=tolerance).peak)]
        for tolerance in (0.0, 1.0, 1.5, 15.0)]
    assert regions == ["background", "background", "other object", "other object"]
    alone = evidence_location(maps, object_boxes, [torch.zeros(0, 4)], tolerance=3.5)
    assert EVIDENCE_REGIONS[int(alone.peak)] == "object"
    with pytest.raises(ValueError, match="tolerance must be a finite number"):
        evidence_location(maps, object_boxes, other_boxes, tolerance=-1.0)


def test_degenerate_maps_and_images_without_boxes():
    torch.manual_seed(0)
    maps = torch.zeros(2, 4, 4)
    maps[1, 2, 2] = 1.0
    empty = [torch.zeros(0, 4), torch.zeros(0, 4)]
    result = evidence_location(maps, empty, empty)
    assert result.object.tolist() == [0.0, 0.0] and result.other.tolist() == [0.0, 0.0]
    assert result.background.tolist() == [0.0, 1.0]  # an all-zero map has no mass anywhere
    assert result.peak.tolist() == [-1, EVIDENCE_REGIONS.index("background")]


@pytest.mark.parametrize(("object_boxes", "other_boxes", "message"), [
    ([torch.tensor([[0.0, 0.0, 9.0, 2.0]])], [torch.zeros(0, 4)], "outside"),
    ([torch.tensor([[2.0, 0.0, 1.0, 2.0]])], [torch.zeros(0, 4)], "x0 < x1"),
    ([torch.zeros(0, 4)] * 2, [torch.zeros(0, 4)], "got 2 object_boxes entries"),
    ([torch.zeros(0, 4)], [torch.tensor([[0.0, float("nan"), 1.0, 2.0]])],
     "other_boxes of image 0 contain NaN"),
])
def test_bad_boxes_are_named(object_boxes, other_boxes, message):
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=message):
        evidence_location(torch.rand(1, 4, 4), object_boxes, other_boxes)


def test_bad_maps_are_refused():
    torch.manual_seed(0)
    with pytest.raises(ValueError):
        evidence_location(torch.full((1, 4, 4), 2.0), [torch.zeros(0, 4)], [torch.zeros(0, 4)])
    with pytest.raises(TypeError):
        evidence_location([[0.5]], [torch.zeros(0, 4)], [torch.zeros(0, 4)])
