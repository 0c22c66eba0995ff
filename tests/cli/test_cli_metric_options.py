"""``axiomcam evaluate --metric-option NAME=VALUE``: the value reaches the run's metrics and
configuration; a bad pair is a one-line usage error before anything is loaded."""

from __future__ import annotations

import pytest
from cli_helpers import invoke, one_line_error

from axiomcam.evaluation.store import ResultStore


def test_a_metric_option_reaches_the_run(tmp_path):
    out = tmp_path / "run"
    result = invoke("evaluate", "--model", "mobilenet_v2", "--data", "composite:1",
                    "--methods", "gradcam", "--layer", "features.18", "--metrics",
                    "localization", "--metric-option", "pointing_tolerance=1000",
                    "--metric-option", "iou_threshold=0", "--gallery-images", "0",
                    "--out", str(out))
    assert result.exit_code == 0, result.output + result.stderr
    with ResultStore.open(out) as store:
        config = store.config
        rows = {row.metric: row.value for row in store.results()}
    assert config["parameters"]["pointing_tolerance"] == 1000
    assert config["parameters"]["iou_threshold"] == 0
    # 1000 px reaches every box of a 224-pixel image; an IoU >= 0 always counts as located
    assert rows["pointing_game"] == 100.0
    assert rows["localization_error"] == 0.0
    assert "`pointing_tolerance = 1000 (default: 15.0)`" in (out / "summary.md").read_text()


@pytest.mark.parametrize(("pair", "expected"), [
    ("correlation_runs", "--metric-option must be NAME=VALUE, got 'correlation_runs'"),
    ("deletion_steps=3", "--metric-option: deletion_steps has its own keyword"),
    ("correlation_runz=3", "--metric-option: unknown metric parameter 'correlation_runz'; "
                           "known: deletion_steps, road_percentages"),
    ("correlation_runs=-2", "--metric-option: correlation_runs must be an int >= 1, got -2"),
])
def test_a_bad_pair_is_a_usage_error(tmp_path, pair, expected):
    result = invoke("evaluate", "--data", "composite:1", "--out", str(tmp_path / "run"),
                    "--metric-option", pair)
    assert result.exit_code == 2
    assert expected in one_line_error(result)
    assert not (tmp_path / "run").exists()


def test_a_pair_given_twice_is_a_usage_error(tmp_path):
    result = invoke("evaluate", "--data", "composite:1", "--out", str(tmp_path / "run"),
                    "--metric-option", "correlation_runs=3", "--metric-option",
                    "correlation_runs=4")
    assert result.exit_code == 2
    assert "--metric-option correlation_runs is given twice" in one_line_error(result)
