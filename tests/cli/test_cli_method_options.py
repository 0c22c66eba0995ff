"""``--method-option NAME=VALUE`` on ``axiomcam explain`` and ``axiomcam compare``: the
option reaches the method's constructor (the map written is the library's with that
option), ``results.json`` records it, each method of ``compare`` gets the options it
takes, and a malformed, reserved or unknown option is a one-line usage error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_helpers import invoke, one_line_error

from axiomcam.cli.method_options import check_method_options, parse_value


def test_explain_passes_the_window_and_stride_to_occlusion(composite_image, tmp_path):
    import axiomcam
    from axiomcam.methods import Occlusion
    from axiomcam.workflows import network_inputs

    path, picture = composite_image
    out = tmp_path / "maps"
    result = invoke("explain", str(path), "--method", "occlusion", "--target", "3",
                    "--method-option", "window=112", "--method-option", "stride=112",
                    "--method-option", "baseline=mean", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["method_options"] == {"window": 112, "stride": 112, "baseline": "mean"}
    (entry,) = results["images"][0]["maps"]
    written = torch.from_numpy(np.load(out / entry["raw"]))
    pretrained = axiomcam.models.load("mobilenet_v2")
    with Occlusion(pretrained.model, window=112, stride=112, baseline="mean") as occlusion:
        expected = occlusion(network_inputs(pretrained, [picture]), 3).raw[0]
    assert torch.allclose(written, expected, rtol=1e-4, atol=1e-5)
    # four 112-pixel windows: the map is constant on each quarter (the default 32-pixel
    # window at stride 16 would give 169 overlapping positions)
    quarters = [written[:112, :112], written[:112, 112:], written[112:, :112],
                written[112:, 112:]]
    assert all(float(quarter.max() - quarter.min()) == 0.0 for quarter in quarters)
    assert len({round(float(quarter[0, 0]), 6) for quarter in quarters}) > 1


def test_compare_gives_each_method_the_options_it_takes(composite_image, tmp_path,
                                                        monkeypatch):
    from axiomcam.workflows import comparing

    made = []
    real_create = comparing.create_explainer

    def recording_create(pretrained, method, layer, **options):
        made.append((method, {k: v for k, v in options.items() if k in ("window", "stride")}))
        return real_create(pretrained, method, layer, **options)

    monkeypatch.setattr(comparing, "create_explainer", recording_create)
    path, _ = composite_image
    result = invoke("compare", str(path), "--methods", "gradcam,occlusion",
                    "--method-option", "window=112", "--method-option", "stride=112",
                    "--out", str(tmp_path / "figure.png"))
    assert result.exit_code == 0, result.stderr
    assert made == [("gradcam", {}), ("occlusion", {"window": 112, "stride": 112})]


@pytest.mark.parametrize(("pairs", "message"), [
    (["window"], "--method-option must be NAME=VALUE, got 'window'"),
    (["window=8", "window=9"], "--method-option window is given twice"),
    (["aug_smooth=true"], "--method-option aug_smooth: use the command's own option "
                          "(--aug-smooth) where it has one"),
    (["windw=8"], "--method-option windw: occlusion takes no option 'windw'; known: "),
])
def test_bad_method_options_are_one_line_usage_errors(composite_image, pairs, message):
    path, _ = composite_image
    arguments = [item for pair in pairs for item in ("--method-option", pair)]
    result = invoke("explain", str(path), "--method", "occlusion", *arguments,
                    "--out", "never-written")
    assert result.exit_code == 2
    assert message in one_line_error(result)


def test_values_are_read_as_numbers_flags_none_or_text():
    assert [parse_value(text) for text in ("3", "-2", "1e-3", "TRUE", "false", "None", "rbf")] \
        == [3, -2, 0.001, True, False, None, "rbf"]
    assert check_method_options(["num_samples=2", "kernel=rbf"], ["sscam", "kpcacam"]) == {
        "sscam": {"num_samples": 2}, "kpcacam": {"kernel": "rbf"}}
