"""The mask_iou group in a tiny evaluate run: on the toy colour classifier the Grad-CAM map
of a colour is exactly where that colour is, so the IoU with a given true mask is known by
hand."""

from __future__ import annotations

import pytest
import torch
from test_runner import BLUE, GREEN, Listed, colour_classifier, painted, values

from axiomcam.data import Sample
from axiomcam.evaluation.runner import evaluate
from axiomcam.evaluation.store import ResultStore


def square_mask(x0: int, y0: int, x1: int, y1: int, size: int = 32) -> torch.Tensor:
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_mask_iou_rows_are_the_hand_computed_overlaps(tmp_path):
    torch.manual_seed(0)
    image = painted((0, 0, 0), [(GREEN, 0, 0, 16, 16), (BLUE, 16, 16, 32, 32)])
    box = torch.tensor([[0.0, 0.0, 16.0, 16.0], [16.0, 16.0, 32.0, 32.0]])
    labels = torch.tensor([1, 2])
    samples = [
        # the true green mask is the green square: the map's mask is it exactly, IoU 1
        Sample("exact", image, 1, box, labels,
               masks=torch.stack([square_mask(0, 0, 16, 16), square_mask(16, 16, 32, 32)])),
        # the true mask of green is the left half of the square only: IoU 1/2
        Sample("half", image, 1, box, labels,
               masks=torch.stack([square_mask(0, 0, 8, 16), square_mask(16, 16, 32, 32)])),
        # the true mask of green is the blue square (a wrong annotation): IoU 0
        Sample("wrong", image, 1, box, labels,
               masks=torch.stack([square_mask(16, 16, 32, 32), square_mask(0, 0, 16, 16)])),
        # no masks at all: no mask_iou row
        Sample("no-masks", image, 1, box, labels),
    ]
    run = evaluate(colour_classifier(), Listed(samples), "gradcam", out_dir=tmp_path,
                   metrics="mask_iou", progress=False, gallery_images=0)
    with ResultStore.open(run.out_dir) as store:
        got = values(store)
    # at input size 16 the green square is rows and columns 0..7, its last row and column
    # at 0.875 of the maximum (the antialiased resize): cut at 50% or by Otsu the map's
    # mask is the 8 x 8 square; the half mask is 8 rows x 4 columns
    for metric in ("mask_iou", "mask_iou_otsu", "mask_iou_best"):
        assert got[("exact", "gradcam", metric)] == pytest.approx(1.0)
        assert got[("wrong", "gradcam", metric)] == pytest.approx(0.0)
    assert got[("half", "gradcam", "mask_iou")] == pytest.approx(32 / 64)
    assert got[("half", "gradcam", "mask_iou_otsu")] == pytest.approx(32 / 64)
    # cut at 90% or 95%, the map's mask is 7 x 7: 4 x 7 in common, 49 + 32 - 28 in the union
    assert got[("half", "gradcam", "mask_iou_best")] == pytest.approx(28 / 53)
    assert not [key for key in got if key[0] == "no-masks"]
    assert {summary.metric for summary in run.summaries} == {"mask_iou", "mask_iou_otsu",
                                                             "mask_iou_best"}


def test_mask_iou_asked_for_without_masks_warns(tmp_path):
    image = painted((0, 0, 0), [(GREEN, 0, 0, 16, 16)])
    samples = [Sample("a", image, 1, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))]
    with pytest.warns(UserWarning, match="no image has a label and a true mask"):
        evaluate(colour_classifier(), Listed(samples), "gradcam", out_dir=tmp_path,
                 metrics="mask_iou,axioms", progress=False, gallery_images=0)
