"""``evaluate(..., metric_options=...)`` and ``--metric-option NAME=VALUE``: the groups'
protocol parameters reach the metrics, the configuration, the cost estimate, the summary
and the report, and bad ones are refused by name."""

from __future__ import annotations

import pytest
import torch
from test_runner import GREEN, RED, Listed, colour_classifier, painted, values

from axiomcam.data import Sample
from axiomcam.evaluation.groups import (
    GROUPS,
    PARAMETERS,
    changed_parameters,
    check_metric_options,
    check_parameters,
    metric_group,
)
from axiomcam.evaluation.runner import evaluate
from axiomcam.evaluation.store import ConfigurationMismatchError, ResultStore


def half_boxed() -> list[Sample]:
    """A green square whose box is its exact outline, and one whose box is its left half:
    the map's box has IoU 1 with the first and 1/2 with the second."""
    square = painted(RED, [(GREEN, 8, 8, 24, 24)])
    return [Sample("exact", square, 1, torch.tensor([[8.0, 8.0, 24.0, 24.0]]),
                   torch.tensor([1])),
            Sample("half", square, 1, torch.tensor([[8.0, 8.0, 16.0, 24.0]]),
                   torch.tensor([1]))]


def localization_run(tmp_path, name, **options):
    """The two half-boxed images, Grad-CAM, box localization."""
    run = evaluate(colour_classifier(), Listed(half_boxed()), "gradcam",
                   out_dir=tmp_path / name, metrics="localization", progress=False,
                   gallery_images=0, metric_options=options or None)
    with ResultStore.open(run.out_dir) as store:
        return run, values(store)


def test_the_iou_threshold_given_decides_each_images_localization_error(tmp_path):
    errors = {}
    for threshold in (0.3, 0.7):
        run, got = localization_run(tmp_path, f"at-{threshold}", iou_threshold=threshold)
        assert run.config["parameters"]["iou_threshold"] == threshold
        assert got[("exact", "gradcam", "localization_iou")] == pytest.approx(1.0)
        assert got[("half", "gradcam", "localization_iou")] == pytest.approx(0.5)
        errors[threshold] = [got[(image_id, "gradcam", "localization_error")]
                             for image_id in ("exact", "half")]
    # IoU 1/2 is located at 0.3 and not at 0.7
    assert errors == {0.3: [0.0, 0.0], 0.7: [0.0, 100.0]}


def test_the_defaults_are_stored_and_a_changed_option_is_another_configuration(tmp_path):
    run, _ = localization_run(tmp_path, "run")
    assert run.config["parameters"]["pointing_tolerance"] == 15.0
    with pytest.raises(ConfigurationMismatchError, match="pointing_tolerance"):
        localization_run(tmp_path, "run", pointing_tolerance=0.0)


def test_the_summary_and_report_say_which_defaults_the_run_changed(tmp_path):
    run, _ = localization_run(tmp_path, "changed", pointing_tolerance=2.5)
    summary = (run.out_dir / "summary.md").read_text()
    assert "changed from the defaults the descriptions quote: " \
        "`pointing_tolerance = 2.5 (default: 15.0)`" in summary
    report = (run.out_dir / "report.html").read_text()
    assert "this run changed pointing_tolerance = 2.5 (default: 15.0)" in report
    run, _ = localization_run(tmp_path, "defaults")
    assert "changed from the defaults" not in (run.out_dir / "summary.md").read_text()
    assert "this run changed" not in (run.out_dir / "report.html").read_text()


def test_the_declared_cost_follows_the_options():
    group = metric_group("faithfulness_correlation")
    default = group.passes_at(check_parameters({})).whole
    fewer = group.passes_at(check_parameters({"correlation_runs": 10, "irof_segments": 20}))
    assert default - fewer.whole == (100 - 10) + (100 - 20)
    robust = metric_group("robustness").passes_at(check_parameters({"robustness_samples": 3}))
    assert robust.explanations == 2 * 3 + 1


@pytest.mark.parametrize(("options", "error", "message"), [
    ({"deletion_steps": 3}, ValueError,
     r"deletion_steps has its own keyword: evaluate\(..., deletion_steps=...\) "
     r"\(--deletion-steps on the command line\)"),
    ({"correlation_runz": 3}, ValueError,
     "unknown metric parameter 'correlation_runz'; known: deletion_steps"),
    ({"correlation_runs": 0}, ValueError, "correlation_runs must be an int >= 1, got 0"),
    ({"iou_threshold": 1.5}, ValueError, "iou_threshold"),
    ({"top_k_pixels": 0}, ValueError, "top_k_pixels must be an int >= 1, got 0"),
    ({"lipschitz_std": 0}, ValueError, r"lipschitz_std must be a number in \(0, inf\], got 0"),
    ([("correlation_runs", 3)], TypeError, "metric_options must be a mapping"),
])
def test_bad_options_are_refused_before_anything_is_written(tmp_path, options, error, message):
    with pytest.raises(error, match=message):
        check_metric_options(options)
    with pytest.raises(error, match=message):
        evaluate(colour_classifier(), Listed(half_boxed()), "gradcam",
                 out_dir=tmp_path / "run", metrics="localization", progress=False,
                 metric_options=options)
    assert not (tmp_path / "run").exists()


def test_every_protocol_parameter_is_settable_and_only_those():
    protocol = [parameter for parameter in PARAMETERS if not parameter.option]
    assert {"correlation_runs", "robustness_samples", "top_k_pixels"} <= \
        {parameter.name for parameter in protocol}
    for parameter in protocol:
        assert check_metric_options({parameter.name: parameter.default}) == \
            {parameter.name: parameter.checked(parameter.default)}
    assert changed_parameters(check_parameters({})) == []


def test_the_guide_lists_every_protocol_parameter_with_its_group_and_default():
    from pathlib import Path

    guide = Path(__file__).parents[2] / "docs" / "measuring.md"
    rows = {}
    for line in guide.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`") and cells[0].endswith("`"):
            rows[cells[0].strip("`")] = (cells[1], cells[2])
    expected = {parameter.name: (group.name, str(parameter.default))
                for group in GROUPS for parameter in group.parameters if not parameter.option}
    assert rows == expected
