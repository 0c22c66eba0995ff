"""The complexity, random_logit and mask_localization groups in a tiny evaluate run on
the toy colour classifier: the rows are the metric functions of the run's own maps, and
on maps known by hand they have the values the definitions give."""

from __future__ import annotations

import math

import pytest
import torch
from test_mask_iou_group import square_mask
from test_runner import BLUE, GREEN, Listed, colour_classifier, painted, values

import axiomcam
from axiomcam.data import Sample
from axiomcam.evaluation.inputs import evaluation_inputs
from axiomcam.evaluation.runner import evaluate
from axiomcam.evaluation.store import ResultStore
from axiomcam.metrics import (
    complexity,
    effective_complexity,
    mask_auc,
    random_other_classes,
    relevance_mass_accuracy,
    sparseness,
    structural_similarity,
)

#: the green map's mass on the green square (see below)
INSIDE = 49 + 14 * 223 / 255 + 195 / 255

NEW_METRICS = {
    "complexity": ("sparseness", "complexity", "effective_complexity"),
    "random_logit": ("random_logit_ssim",),
    "mask_localization": ("relevance_mass_accuracy", "relevance_rank_accuracy",
                          "top_k_intersection", "attribution_localisation", "mask_auc"),
}


def test_rows_are_the_metrics_of_the_runs_maps(tmp_path):
    torch.manual_seed(0)
    image = painted((0, 0, 0), [(GREEN, 0, 0, 16, 16), (BLUE, 16, 16, 32, 32)])
    box = torch.tensor([[0.0, 0.0, 16.0, 16.0], [16.0, 16.0, 32.0, 32.0]])
    labels = torch.tensor([1, 2])
    green, blue = square_mask(0, 0, 16, 16), square_mask(16, 16, 32, 32)
    samples = [
        Sample("exact", image, 1, box, labels, masks=torch.stack([green, blue])),
        Sample("wrong", image, 1, box, labels, masks=torch.stack([blue, green])),
        Sample("blue", image, 2, box, labels, masks=torch.stack([green, blue])),
        Sample("no-masks", image, 1, box, labels),
    ]
    with pytest.warns(UserWarning, match="constant"):   # the red map: no red anywhere
        run = evaluate(colour_classifier(), Listed(samples), "gradcam", out_dir=tmp_path,
                       metrics="complexity,random_logit,mask_localization",
                       progress=False, gallery_images=0, seed=3)
    with ResultStore.open(run.out_dir) as store:
        got = values(store)
    pretrained = colour_classifier()
    inputs, _ = evaluation_inputs(pretrained, [image] * 4, [box] * 4)
    targets = torch.tensor([1, 1, 2, 1])
    maps = axiomcam.explain(pretrained.model, inputs, "gradcam", targets=targets,
                            target_layer="1").maps
    ids = ["exact", "wrong", "blue", "no-masks"]
    for index, image_id in enumerate(ids):
        one = maps[index:index + 1]
        assert got[(image_id, "gradcam", "sparseness")] == pytest.approx(
            sparseness(one).item(), abs=1e-6)
        assert got[(image_id, "gradcam", "complexity")] == pytest.approx(
            complexity(one).item(), abs=1e-6)
        assert got[(image_id, "gradcam", "effective_complexity")] == \
            effective_complexity(one).item()
    # the run's one batch draws the other classes with the run's seed
    others = random_other_classes(targets, 3, seed=3)
    with pytest.warns(UserWarning, match="constant"):
        second = axiomcam.explain(pretrained.model, inputs, "gradcam", targets=others,
                                  target_layer="1").maps
    expected = structural_similarity(maps, second)
    for index, image_id in enumerate(ids):
        assert got[(image_id, "gradcam", "random_logit_ssim")] == pytest.approx(
            expected[index].item(), abs=1e-6)
    # the green map is the antialiased resize of the 16 px square to 8 px, in 8-bit
    # values: 7 x 7 ones, then a row and a column of 223/255 (corner 195/255) and one of
    # 32/255 (corners 28/255, 4/255): mass 64, of which INSIDE on the exact mask (rows and
    # columns 0..7) and 4/255 on the wrong one (8..15); its 64 highest pixels (>= 195/255)
    # are the exact mask's
    assert got[("exact", "gradcam", "relevance_mass_accuracy")] == pytest.approx(
        INSIDE / 64)
    assert got[("exact", "gradcam", "relevance_rank_accuracy")] == pytest.approx(1.0)
    assert got[("exact", "gradcam", "attribution_localisation")] == pytest.approx(
        INSIDE / 64 * 256 / 64)
    assert got[("exact", "gradcam", "mask_auc")] == pytest.approx(1.0)
    assert got[("wrong", "gradcam", "relevance_mass_accuracy")] == pytest.approx(
        4 / 255 / 64)
    assert got[("wrong", "gradcam", "relevance_rank_accuracy")] == pytest.approx(0.0)
    # k = min(1000, 256): every pixel is in the top k, 64 of them on the mask
    assert got[("exact", "gradcam", "top_k_intersection")] == pytest.approx(64 / 256)
    # the blue image's true mask is the blue square, rows and columns 8..15 at size 16
    truth = square_mask(8, 8, 16, 16, 16)[None]
    assert got[("blue", "gradcam", "relevance_mass_accuracy")] == pytest.approx(
        relevance_mass_accuracy(maps[2:3], truth).item(), abs=1e-6)
    assert got[("blue", "gradcam", "mask_auc")] == pytest.approx(
        mask_auc(maps[2:3], truth).item(), abs=1e-6)
    assert got[("blue", "gradcam", "mask_auc")] == pytest.approx(1.0)
    assert not [key for key in got if key[0] == "no-masks" and key[2] in
                NEW_METRICS["mask_localization"]]
    summarised = {summary.metric for summary in run.summaries}
    assert summarised == {metric for names in NEW_METRICS.values() for metric in names}
    assert math.isfinite(got[("no-masks", "gradcam", "random_logit_ssim")])
