"""``--eigen-smooth`` on ``axiomcam explain`` and ``axiomcam compare`` (the pretrained
MobileNetV2 on a composite image): the raw map written is the eigen-smoothed map of the
same method through the Python API, ``results.json`` records it, and methods with no
channel terms are usage errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_helpers import invoke, one_line_error
from PIL import Image

LAYER = "features.17.conv.1"


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    from torchvision.models import MobileNet_V2_Weights

    from axiomcam.data import CompositeBenchmark

    names = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
    sample = CompositeBenchmark(1, names, seed=1)[0]
    path = tmp_path_factory.mktemp("images") / "one.png"
    sample.image.save(path)
    return path


def test_explain_writes_the_eigen_smoothed_raw_map(image_path, tmp_path):
    from axiomcam.methods import create
    from axiomcam.models import load
    from axiomcam.workflows import network_inputs

    out = tmp_path / "maps"
    result = invoke("explain", str(image_path), "--method", "xgradcam", "--target", "top1",
                    "--layer", LAYER, "--out", str(out), "--eigen-smooth")
    assert result.exit_code == 0, result.stderr
    assert "xgradcam (eigen-smoothed) at features.17.conv.1" in result.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["eigen_smooth"] is True
    (entry,) = results["images"][0]["maps"]
    written = np.load(out / entry["raw"])
    pretrained = load("mobilenet_v2")
    inputs = network_inputs(pretrained, [Image.open(image_path).convert("RGB")])
    with torch.no_grad():
        top = int(pretrained.model(inputs).argmax())
    assert entry["class_index"] == top
    smoothed = create("xgradcam", pretrained.model, LAYER, eigen_smooth=True)(inputs, top)
    plain = create("xgradcam", pretrained.model, LAYER)(inputs, top)
    scale = float(smoothed.raw.abs().max())
    np.testing.assert_allclose(written, smoothed.raw[0].numpy(), atol=1e-4 * scale)
    assert not np.allclose(written, plain.raw[0].numpy(), atol=1e-2 * scale)


def test_compare_draws_eigen_smoothed_columns(image_path, tmp_path):
    figure = tmp_path / "figure.png"
    result = invoke("compare", str(image_path), "--methods", "gradcam,hirescam",
                    "--layer", LAYER, "--out", str(figure), "--eigen-smooth")
    assert result.exit_code == 0, result.stderr
    assert "compared 2 methods (eigen-smoothed)" in result.stdout and figure.exists()


@pytest.mark.parametrize(("arguments", "expected"), [
    (["explain", "--method", "eigencam"], "--eigen-smooth: eigencam has no channel terms"),
    (["compare", "--methods", "gradcam,kpcacam,occlusion"],
     "--eigen-smooth: kpcacam, occlusion have no channel terms"),
])
def test_a_method_without_channel_terms_is_a_usage_error(image_path, tmp_path, arguments,
                                                          expected):
    result = invoke(arguments[0], str(image_path), *arguments[1:], "--eigen-smooth",
                    "--out", str(tmp_path / "out.png"))
    assert result.exit_code == 2
    assert expected in one_line_error(result)
