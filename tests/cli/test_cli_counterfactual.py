"""``--counterfactual`` on ``axiomcam explain`` and ``axiomcam compare`` (the pretrained
MobileNetV2 on a two-object composite image): the files and ``results.json`` record it, the
raw maps are the plain ones negated (Grad-CAM is linear in the gradient), the figure's
titles say "counterfactual", the axioms are measured against ``-y``, and methods without
a counterfactual form are usage errors (or, from compare's default list, left out)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import invoke, one_line_error


@pytest.fixture(scope="module")
def two_objects(tmp_path_factory):
    """A composite image holding two objects of different classes; (path, their classes)."""
    from torchvision.models import MobileNet_V2_Weights

    from axiomcam.data import CompositeBenchmark

    names = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
    sample = CompositeBenchmark(1, names, seed=0, two_object_fraction=1.0)[0]
    path = tmp_path_factory.mktemp("images") / "two.png"
    sample.image.save(path)
    return path, [int(label) for label in sample.box_labels]


def test_explain_writes_counterfactual_maps_beside_the_plain_ones(two_objects, tmp_path):
    path, (first, _) = two_objects
    out = tmp_path / "maps"
    plain = invoke("explain", str(path), "--method", "gradcam", "--target", str(first),
                   "--layer", "features.17.conv.1", "--out", str(out))
    assert plain.exit_code == 0, plain.stderr
    against = invoke("explain", str(path), "--method", "gradcam", "--target", str(first),
                     "--layer", "features.17.conv.1", "--out", str(out), "--counterfactual")
    assert against.exit_code == 0, against.stderr
    assert "gradcam (counterfactual) at features.17.conv.1" in against.stdout
    assert "replaced" not in against.stderr  # the plain maps' files are kept
    results = json.loads((out / "results.json").read_text())
    assert results["counterfactual"] is True and results["method"] == "gradcam"
    (entry,) = results["images"][0]["maps"]
    assert entry["raw"].startswith(f"two_gradcam-counterfactual_{first}-")
    plain_raw = out / entry["raw"].replace("-counterfactual", "")
    # Grad-CAM is linear in G: the counterfactual raw map is the plain one negated
    np.testing.assert_allclose(np.load(out / entry["raw"]), -np.load(plain_raw), rtol=1e-5,
                               atol=1e-6)
    from PIL import Image

    assert Image.open(out / entry["overlay"]).text["counterfactual"] == "True"


@pytest.mark.parametrize(("arguments", "expected"), [
    (["explain", "--method", "scorecam"], "--counterfactual: scorecam has no counterfactual "
                                          "form (only gradient methods do: gradcam, "),
    (["compare", "--methods", "gradcam,cam,eigencam"],
     "--counterfactual: cam, eigencam have no counterfactual form"),
])
def test_a_method_without_the_form_is_a_usage_error(two_objects, tmp_path, arguments,
                                                    expected):
    path, _ = two_objects
    result = invoke(*arguments, str(path), "--counterfactual", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert expected in one_line_error(result)
    assert not (tmp_path / "o").exists()


def test_compare_titles_counterfactual_maps_and_measures_them_against_minus_y(
        two_objects, tmp_path, monkeypatch):
    from axiomcam.workflows import comparing

    drawn = []
    real_save_grid = comparing.save_grid

    def recording_save_grid(path, pictures, titles, captions=None):
        drawn.append((titles, captions))
        return real_save_grid(path, pictures, titles, captions)

    monkeypatch.setattr(comparing, "save_grid", recording_save_grid)
    path, (first, _) = two_objects
    common = [str(path), "--target", str(first), "--layer", "features.18", "--axioms"]
    plain = invoke("compare", *common, "--methods", "gradcam,xgradcam",
                   "--out", str(tmp_path / "plain.png"))
    assert plain.exit_code == 0, plain.stderr
    # the default methods: Ablation-CAM and Score-CAM have no counterfactual form
    against = invoke("compare", *common, "--counterfactual", "--out", str(tmp_path / "c.png"))
    assert against.exit_code == 0, against.stderr
    assert "axiomcam: warning: --counterfactual: leaving out ablationcam, scorecam (no " \
        "counterfactual form)" in against.stderr
    assert "compared 3 methods (counterfactual maps) on 1 image" in against.stdout
    (plain_titles, plain_captions), (titles, captions) = drawn
    assert titles[0][1:] == ["Grad-CAM (counterfactual)", "Grad-CAM++ (counterfactual)",
                             "XGrad-CAM (counterfactual)"]
    assert plain_titles[0][1:] == ["Grad-CAM", "XGrad-CAM"]
    # measured against -y, the errors of a map linear in G are the plain map's: at a layer
    # feeding global pooling and one linear layer both conserve all but the bias share
    plain_errors = [float(value) for value in plain_captions[0][1].split()[1::2]]
    errors = [float(value) for value in captions[0][1].split()[1::2]]
    assert errors == pytest.approx(plain_errors, abs=2e-3)
    assert errors[0] < 0.5  # against +y the conservation error would be about 2
