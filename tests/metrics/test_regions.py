"""Maps as masks and boxes: thresholds on maps whose masks are known by hand, Otsu against
scikit-image, boxes of known components, mask IoU on hand cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.filters import threshold_otsu
from skimage.measure import label, regionprops

from axiomcam.metrics import (
    map_to_box,
    map_to_mask,
    mask_iou,
    mask_thresholds,
    mask_to_boxes,
    otsu_thresholds,
)


def test_fraction_of_the_maximum_by_hand():
    maps = torch.tensor([[[0.0, 0.2, 0.4], [0.8, 0.3, 0.0]],
                         [[0.1, 0.05, 0.0], [0.0, 0.0, 0.02]]])
    masks = map_to_mask(maps, "fraction", 0.5)      # >= 0.4 and >= 0.05
    assert masks.tolist() == [[[False, False, True], [True, False, False]],
                              [[True, True, False], [False, False, False]]]
    # exactly at the threshold is kept; 0 never is, even with a fraction of 0
    assert map_to_mask(maps, "fraction", 0.0)[0].tolist() == [[False, True, True],
                                                            [True, True, False]]


def test_percentile_by_hand():
    maps = torch.arange(10, dtype=torch.float32).reshape(1, 2, 5) / 9   # 0, 1/9, ..., 1
    # the 75th percentile of 0..9 (linear) is 6.75: values 7, 8, 9 are kept
    assert mask_thresholds(maps, "percentile", 75).item() == pytest.approx(6.75 / 9)
    assert map_to_mask(maps, "percentile", 75).flatten().tolist() == [False] * 7 + [True] * 3
    # the default is the 80th percentile: 7.2, so 8 and 9
    assert map_to_mask(maps, "percentile").sum().item() == 2


def test_otsu_matches_scikit_image():
    torch.manual_seed(0)
    maps = torch.rand(6, 17, 23) ** 2
    maps[1, 4:10, 5:15] = 0.9                             # a clearly bimodal map
    maps[2] = torch.rand(17, 23).round() * 0.5            # two values only
    maps[3] = 0.25                                        # constant: its value, empty mask
    thresholds = otsu_thresholds(maps)
    for image in range(6):
        reference = threshold_otsu(maps[image].double().numpy())
        assert thresholds[image].item() == pytest.approx(float(reference), abs=1e-12)
        expected = maps[image].double().numpy() > reference
        assert (map_to_mask(maps, "otsu")[image].numpy() == expected).all()
    assert not map_to_mask(maps, "otsu")[3].any()
    assert map_to_mask(maps, "otsu")[1, 4:10, 5:15].all()


def test_an_all_zero_map_has_an_empty_mask_whatever_the_method():
    maps = torch.zeros(1, 4, 4)
    for method in ("fraction", "percentile", "otsu"):
        assert not map_to_mask(maps, method).any()


def test_bad_thresholds_are_refused():
    maps = torch.rand(1, 3, 3)
    with pytest.raises(ValueError, match="unknown threshold method 'mean'"):
        map_to_mask(maps, "mean")
    with pytest.raises(ValueError, match=r"'fraction' threshold must be a number in \[0, 1\]"):
        map_to_mask(maps, "fraction", 1.5)
    with pytest.raises(ValueError, match=r"in \[0, 100\], got -1"):
        map_to_mask(maps, "percentile", -1)
    with pytest.raises(ValueError, match="takes no value"):
        map_to_mask(maps, "otsu", 0.3)
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        map_to_mask(maps * 3, "fraction")


def test_boxes_of_known_components():
    masks = torch.zeros(2, 8, 10, dtype=torch.bool)
    masks[0, 1:3, 1:3] = True          # 4 pixels, box (1, 1, 3, 3)
    masks[0, 0, 9] = True              # 1 pixel
    masks[0, 4:8, 5:8] = True          # 12 pixels, box (5, 4, 8, 8)
    masks[0, 3, 3] = True              # diagonal to the first block: joins it (5 pixels)
    boxes = mask_to_boxes(masks)
    assert boxes[0].tolist() == [[5, 4, 8, 8], [1, 1, 4, 4], [9, 0, 10, 1]]
    assert boxes[1].shape == (0, 4)
    assert mask_to_boxes(masks, largest=True)[0].tolist() == [[5, 4, 8, 8]]
    assert mask_to_boxes(masks, min_pixels=5)[0].tolist() == [[5, 4, 8, 8], [1, 1, 4, 4]]


def test_boxes_match_scikit_image_regions_on_random_masks():
    torch.manual_seed(1)
    masks = torch.rand(4, 20, 30) > 0.8
    for mask, boxes in zip(masks, mask_to_boxes(masks), strict=True):
        # skimage numbers regions in scan order; a stable sort puts the largest first
        regions = sorted(regionprops(label(mask.numpy(), connectivity=2)), key=lambda r: -r.area)
        expected = [[r.bbox[1], r.bbox[0], r.bbox[3], r.bbox[2]] for r in regions]
        assert len(expected) > 5
        assert boxes.int().tolist() == expected


def test_largest_box_of_the_fraction_mask_is_the_protocol_box():
    torch.manual_seed(2)
    maps = torch.nn.functional.interpolate(torch.rand(5, 1, 6, 6), size=(30, 30),
                                           mode="bilinear", align_corners=False)[:, 0]
    maps = maps / maps.flatten(1).amax(1)[:, None, None]
    largest = mask_to_boxes(map_to_mask(maps, "fraction", 0.6), largest=True)
    protocol = map_to_box(maps, 0.6)
    for image in range(5):
        # the same box unless two components tie in size (the protocol then prefers the peak)
        sizes = np.bincount(label(map_to_mask(maps, "fraction", 0.6)[image].numpy(),
                                  connectivity=2).ravel())[1:]
        if (sizes == sizes.max()).sum() == 1:
            assert largest[image][0].tolist() == protocol[image].tolist()


def test_mask_iou_by_hand():
    masks = torch.zeros(3, 4, 4, dtype=torch.bool)
    truth = torch.zeros(3, 4, 4, dtype=torch.bool)
    masks[0, :2, :2] = True            # 4 pixels
    truth[0, :2, :] = True             # 8 pixels: IoU 4 / 8
    masks[1, 0, 0] = True
    truth[1, 3, 3] = True              # disjoint: 0
    # image 2: both empty, 0 by definition
    assert mask_iou(masks, truth).tolist() == [0.5, 0.0, 0.0]
    assert mask_iou(truth, truth)[:2].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="same shape"):
        mask_iou(masks, truth[:, :2])
    with pytest.raises(TypeError, match="bool"):
        mask_iou(masks.float(), truth)
