"""The ``axiomcam`` command line: help, exit codes, one-line errors, a tiny real run."""

from __future__ import annotations

import csv

import pytest
from click.testing import CliRunner

from axiomcam.cli import main


def invoke(*arguments: str):
    return CliRunner().invoke(main, list(arguments))


def one_line_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("axiomcam: error: ")
    assert "Traceback" not in result.output
    return lines[0]


def test_help_shows_the_example():
    result = invoke("evaluate", "--help")
    assert result.exit_code == 0
    assert "axiomcam evaluate --model mobilenet_v2 --data composite:200" in result.output
    assert "--layer features.17.conv.1" in result.output
    top = invoke("--help")
    assert top.exit_code == 0 and "evaluate" in top.output


def test_unknown_method_is_a_usage_error_listing_the_known_ones(tmp_path):
    result = invoke("evaluate", "--data", "composite:2", "--out", str(tmp_path),
                    "--methods", "gradcam,gradkam")
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "unknown method 'gradkam'" in line
    assert "gradcam, gradcam++, xgradcam, hirescam, layercam, ablationcam, scorecam" in line
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("--methods", "guided_gradcam", "guided_gradcam is not evaluated"),
    ("--metrics", "axioms,speed", "unknown metric group 'speed'; known: axioms, faithfulness"),
    ("--road-percentages", "10,100", "--road-percentages must be numbers in (0, 100)"),
    ("--model", "resnet9000", "unknown model 'resnet9000'; known: mobilenet_v2"),
])
def test_bad_choices_are_usage_errors(tmp_path, option, value, expected):
    result = invoke("evaluate", "--data", "composite:2", "--out", str(tmp_path), option, value)
    assert result.exit_code == 2
    assert expected in one_line_error(result)


@pytest.mark.parametrize("spec", ["composite:zero", "composite:-3"])
def test_bad_data_spec_is_a_usage_error(tmp_path, spec):
    result = invoke("evaluate", "--data", spec, "--out", str(tmp_path), "--methods", "gradcam")
    assert result.exit_code == 2
    assert f"'{spec}'" in one_line_error(result)


def test_unknown_layer_is_a_usage_error_with_near_matches(tmp_path):
    result = invoke("evaluate", "--data", "composite:2", "--out", str(tmp_path),
                    "--methods", "gradcam", "--layer", "features.17.conv.9")
    assert result.exit_code == 2
    assert "mobilenet_v2 has no layer 'features.17.conv.9'; did you mean" in \
        one_line_error(result)


def test_missing_folder_is_a_one_line_failure(tmp_path):
    missing = tmp_path / "no" / "such" / "folder"
    result = invoke("evaluate", "--data", str(missing), "--out", str(tmp_path / "out"),
                    "--methods", "gradcam")
    assert result.exit_code == 1
    assert str(missing) in one_line_error(result)


def test_debug_shows_the_exception_itself(tmp_path):
    missing = tmp_path / "missing"
    result = invoke("evaluate", "--data", str(missing), "--out", str(tmp_path / "out"),
                    "--methods", "gradcam", "--debug")
    assert result.exit_code == 1
    assert isinstance(result.exception, FileNotFoundError)


def test_tiny_real_run_writes_the_files_and_prints_a_table(tmp_path):
    out = tmp_path / "run"
    arguments = ["evaluate", "--model", "mobilenet_v2", "--data", "composite:1",
                 "--methods", "gradcam,layercam", "--layer", "features.18",
                 "--metrics", "axioms,faithfulness,deletion,localization", "--deletion-steps", "3",
                 "--batch-size", "1", "--out", str(out)]
    result = invoke(*arguments)
    assert result.exit_code == 0, result.output + result.stderr
    for name in ("results.sqlite", "summary.csv", "summary.md", "deletion.png",
                 "insertion.png", "bars/average_drop.png", "bars/conservation_error.png"):
        assert (out / name).is_file(), name
    with (out / "summary.csv").open() as handle:
        rows = {row["method"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"gradcam", "layercam"}
    assert rows["layercam"]["conservation_error"] == ""  # Layer-CAM has no channel weights
    assert float(rows["gradcam"]["average_drop"]) >= 0
    table = result.stdout.splitlines()
    assert table[0].split() == ["metric", "gradcam", "layercam"]
    assert any(line.split()[:1] == ["conservation_error"] and line.split()[-1] == "-"
               for line in table)
    assert "1 image x 2 methods at features.18" in result.stdout

    # the same directory with another configuration: refused, one line, exit 1
    again = invoke(*arguments, "--seed", "1")
    assert again.exit_code == 1
    assert "different configuration" in one_line_error(again)
    assert "--overwrite" in again.stderr
