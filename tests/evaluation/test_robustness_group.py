"""The ``robustness`` group in a tiny evaluate run: each stored max-sensitivity, average
sensitivity and local Lipschitz estimate equals a slow per-image, per-copy loop on the
documented noise (seeded with the run's seed and the batch's ids); the group is expensive
(left out by default and named) and reaches the summary and the report."""

from __future__ import annotations

import zlib

import pytest
import torch
from test_occlusion_correlation import Pictures, small_classifier

import axiomcam
from axiomcam.evaluation import evaluate
from axiomcam.evaluation.groups import METRICS, check_parameters, metric_group
from axiomcam.evaluation.inputs import evaluation_inputs
from axiomcam.evaluation.request import default_selection
from axiomcam.evaluation.store import ResultStore
from axiomcam.metrics.robustness import gaussian_noise, uniform_noise


def _slow(pretrained, inputs, targets, noise, lipschitz):
    """Per image, the ratios of every copy, then max and mean."""
    def explain(x, target):
        return axiomcam.explain(pretrained.model, x[None], "gradcam", "3",
                                targets=target).maps[0].double()

    values = []
    for index in range(inputs.shape[0]):
        target = targets[index:index + 1]
        clean = explain(inputs[index], target)
        ratios = []
        for copy in noise[:, index]:
            moved = (explain(inputs[index] + copy, target) - clean).norm()
            ratios.append(moved / (copy.double().norm() + 1e-10) if lipschitz
                          else moved / clean.norm())
        values.append((max(ratios), sum(ratios) / len(ratios)))
    return values


def test_each_stored_value_is_a_slow_loop_on_the_documented_noise(tmp_path):
    torch.manual_seed(0)
    pretrained = small_classifier()
    data = Pictures(pretrained.class_names)
    run = evaluate(pretrained, data, ["gradcam"], out_dir=tmp_path, metrics="robustness",
                   progress=False, gallery_images=1, seed=3)
    with ResultStore.open(tmp_path) as store:
        stored = {(row.image_id, row.metric): row.value for row in store.results()}
    inputs, _ = evaluation_inputs(pretrained, data.images, [torch.zeros(0, 4)] * 3)
    targets = pretrained.model(inputs).argmax(1)
    ids = [f"picture{index}" for index in range(3)]
    generator = torch.Generator().manual_seed(zlib.crc32(" ".join(ids).encode()) ^ 3)
    uniform = uniform_noise(inputs, 10, 0.2, generator)
    gaussian = gaussian_noise(inputs, 10, 0.1, generator)
    sensitivities = _slow(pretrained, inputs, targets, uniform, lipschitz=False)
    lipschitz = _slow(pretrained, inputs, targets, gaussian, lipschitz=True)
    for index, image_id in enumerate(ids):
        # float32 maps vs float64 norms
        assert stored[(image_id, "max_sensitivity")] == pytest.approx(
            float(sensitivities[index][0]), rel=1e-4)
        assert stored[(image_id, "avg_sensitivity")] == pytest.approx(
            float(sensitivities[index][1]), rel=1e-4)
        assert stored[(image_id, "local_lipschitz")] == pytest.approx(
            float(lipschitz[index][0]), rel=1e-4)
    assert stored[(ids[0], "max_sensitivity")] > stored[(ids[0], "avg_sensitivity")] > 0
    assert {summary.metric for summary in run.summaries} == {
        "max_sensitivity", "avg_sensitivity", "local_lipschitz"}
    report = run.report.read_text(encoding="utf-8")
    assert "max_sensitivity" in report and METRICS["local_lipschitz"].better == "lower"


def test_the_group_is_left_out_by_default_and_declares_its_cost():
    group = metric_group("robustness")
    assert group.passes_at(check_parameters({})).explanations == 21
    assert not group.passes_at(check_parameters({})).cheap
    _, groups = default_selection(None, None, check_parameters({}), include_expensive=False)
    assert "robustness" in groups.left_out and "robustness" not in groups.chosen


def test_an_all_zero_map_gets_a_lipschitz_row_and_no_sensitivity_row(tmp_path):
    from test_runner import GREEN, RED, Listed, colour_classifier, painted

    from axiomcam.data import Sample

    torch.manual_seed(0)
    no_box = torch.zeros(0, 4)
    samples = [  # labelled green: the first has no green anywhere, so its map is all zero
        Sample("all-red", painted(RED, []), 1, no_box, torch.zeros(0, dtype=torch.long)),
        Sample("green-square", painted(RED, [(GREEN, 8, 8, 24, 24)]), 1, no_box,
               torch.zeros(0, dtype=torch.long)),
    ]
    with pytest.warns(UserWarning, match="constant"):
        evaluate(colour_classifier(), Listed(samples), "gradcam", out_dir=tmp_path,
                 metrics="robustness", progress=False, gallery_images=0)
    with ResultStore.open(tmp_path) as store:
        metrics = {(row.image_id, row.metric): row.value for row in store.results()}
    assert set(metrics) == {("all-red", "local_lipschitz"), ("green-square", "local_lipschitz"),
                            ("green-square", "max_sensitivity"),
                            ("green-square", "avg_sensitivity")}
    # the noise gives the all-red image some green: its map moves, from zero
    assert metrics[("all-red", "local_lipschitz")] > 0
