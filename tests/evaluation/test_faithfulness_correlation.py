"""The ``faithfulness_correlation`` group and the two pytorch-grad-cam metrics added to
the ``faithfulness`` and ``road`` groups, in a tiny evaluate run: every stored value is
the metric function's value on the same images, maps, classes and seed (the functions
themselves are checked against slow loops and the peers in tests/metrics/), and the
summary and the report carry the metrics."""

from __future__ import annotations

import pytest
import torch
from test_occlusion_correlation import Pictures, small_classifier
from torch import nn

import axiomcam
from axiomcam.evaluation import evaluate
from axiomcam.evaluation.groups import METRICS, check_parameters, metric_group
from axiomcam.evaluation.inputs import evaluation_inputs
from axiomcam.evaluation.request import default_selection
from axiomcam.evaluation.store import ResultStore
from axiomcam.metrics import (
    confidence_change,
    faithfulness_correlation,
    irof,
    monotonicity_correlation,
    road,
)

SIDE = 16  # 256 pixels: more than the 224 of a faithfulness-correlation subset
NEW_METRICS = ("faithfulness_pearson", "monotonicity_spearman", "irof_aoc")


def expected_values(model: nn.Module, inputs, maps, targets) -> dict[str, torch.Tensor]:
    """The metrics at the groups' parameters and the run's seed (0)."""
    change = confidence_change(model, inputs, maps, targets)
    return {
        "faithfulness_pearson": faithfulness_correlation(model, inputs, maps, targets,
                                                         subset_size=224, runs=100, seed=0),
        "monotonicity_spearman": monotonicity_correlation(model, inputs, maps, targets,
                                                          steps=32, samples=4, seed=0),
        "irof_aoc": irof(model, inputs, maps, targets, n_segments=100).aoc,
        "confidence_change": change.masked - change.original,
        "road_combined": road(model, inputs, maps, targets, percentages=(30, 70),
                              seed=0).combined,
    }


def test_each_stored_value_is_the_metric_of_the_same_maps(tmp_path):
    torch.manual_seed(0)
    pretrained, methods = small_classifier(SIDE), ["gradcam", "layercam"]
    data = Pictures(pretrained.class_names, seed=3)
    run = evaluate(pretrained, data, methods, out_dir=tmp_path,
                   metrics="faithfulness_correlation,faithfulness,road",
                   road_percentages=(30, 70), progress=False, gallery_images=0)
    with ResultStore.open(tmp_path) as store:
        stored = {(row.image_id, row.method, row.metric): row.value
                  for row in store.results()}
    summarised = {summary.metric for summary in run.summaries}
    assert set(NEW_METRICS) | {"confidence_change", "road_combined"} <= summarised

    inputs, _ = evaluation_inputs(pretrained, data.images, [torch.zeros(0, 4)] * 3)
    targets = pretrained.model(inputs).argmax(1)
    for method in methods:
        maps = axiomcam.explain(pretrained.model, inputs, method, "3", targets=targets).maps
        for metric, values in expected_values(pretrained.model, inputs, maps,
                                              targets).items():
            for index in range(3):
                assert stored[(f"picture{index}", method, metric)] == pytest.approx(
                    float(values[index]), abs=1e-5), (metric, method, index)
    assert len({round(stored[("picture0", m, "irof_aoc")], 6) for m in methods}) == 2
    report = run.report.read_text(encoding="utf-8")
    for metric in (*NEW_METRICS, "confidence_change", "road_combined"):
        assert metric in report and METRICS[metric].better == "higher"


def test_the_group_is_left_out_by_default_and_declares_its_passes():
    group = metric_group("faithfulness_correlation")
    passes = group.passes_at(check_parameters({}))
    assert passes.whole == 3 + 100 + 32 * 4 + 100 and not passes.cheap
    assert "331" in group.cost
    _, groups = default_selection(None, None, check_parameters({}), include_expensive=False)
    assert "faithfulness_correlation" in groups.left_out
    # the two metrics added to cheap groups cost no pass: the groups' passes are unchanged
    assert metric_group("faithfulness").passes_at(check_parameters({})).whole == 4
