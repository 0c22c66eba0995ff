"""``axiomcam robustness`` end to end on the colour classifier (tests/workflows/colour_toy.py)
and a folder of its scenes with COCO boxes: what it prints and writes agrees with the
library's run on the same data; bad options are one-line usage errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from cli_helpers import invoke, one_line_error

TOYS = Path(__file__).parents[1] / "workflows"
RED_BOX, GREEN_BOX, DISTRACTOR = (2, 2, 10, 10), (14, 16, 24, 24), (24, 2, 30, 8)


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.syspath_prepend(str(TOYS))
    import colour_toy

    yield colour_toy
    sys.modules.pop("colour_toy", None)


def _folder(root: Path, toy) -> tuple[Path, Path]:
    """Two red-labelled scenes (one the attack flips, one it does not) and their boxes."""
    scenes = {"flips": (toy.scene(0, [RED_BOX, DISTRACTOR], [GREEN_BOX]),
                        [RED_BOX, GREEN_BOX], [0, 1]),
              "holds": (toy.scene(1, [(2, 2, 20, 20)], []), [(2, 2, 20, 20)], [0])}
    (root / "images" / "red").mkdir(parents=True)
    images, annotations = [], []
    for number, (name, (image, boxes, labels)) in enumerate(scenes.items(), start=1):
        image.save(root / "images" / "red" / f"{name}.png")
        images.append({"id": number, "file_name": f"{name}.png", "width": toy.SIZE,
                       "height": toy.SIZE})
        annotations += [{"id": len(annotations) + 1, "image_id": number, "category_id": label,
                         "bbox": [x0, y0, x1 - x0, y1 - y0]}
                        for (x0, y0, x1, y1), label in zip(boxes, labels, strict=True)]
    coco = root / "boxes.json"
    coco.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [
        {"id": index, "name": name} for index, name in enumerate(toy.CLASSES)]}))
    (root / "c.txt").write_text("\n".join(toy.CLASSES))
    return root / "images", coco


def _command(root: Path, toy, *extra: str) -> list[str]:
    data, coco = _folder(root, toy)
    return ["robustness", "--model", "colour_toy:build", "--classes", str(root / "c.txt"),
            "--size", str(toy.SIZE), "--mean", "0,0,0", "--std", "1,1,1", "--layer", toy.LAYER,
            "--data", str(data), "--boxes", "coco", str(coco), "--out", str(root / "out"),
            "--tolerance", "0", *extra]


def test_the_command_writes_what_the_library_finds(tmp_path, toy):
    torch.manual_seed(0)
    result = invoke(*_command(tmp_path, toy, "--attack", "fgsm", "--epsilon", "51/255",
                              "--method", "gradcam,xgradcam"))
    assert result.exit_code == 0, result.output + result.stderr
    assert result.stderr.startswith("robustness: 2 images of ")
    assert ("2 images, 2 attacked (0 skipped: no label or box of it, or misclassified clean), "
            "1 flipped by untargeted FGSM, epsilon 0.2 (51/255)") in result.output
    summary = json.loads((tmp_path / "out" / "results.json").read_text())
    assert summary["attack"]["epsilon"] == pytest.approx(0.2)
    assert [(image["image"], image["flipped"]) for image in summary["per_image"]] == [
        ("red/flips.png", True), ("red/holds.png", False)]
    flipped = summary["per_image"][0]["maps"]
    # Grad-CAM and XGrad-CAM agree on this one-layer toy (same constant gradient)
    assert flipped["gradcam"]["energy"] == pytest.approx(flipped["xgradcam"]["energy"])
    energy = flipped["gradcam"]["energy"]
    assert f"energy in box {energy[0]:.2f} -> {energy[1]:.2f}" in result.output
    assert (tmp_path / "out" / "robustness.png").exists()
    assert "axiomcam robustness" in (tmp_path / "out" / "report.html").read_text()


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("--epsilon", "two", "--epsilon: epsilon must be a number or a fraction"),
    ("--epsilon", "2", "must be in (0, 1]"),
    ("--method", "guided_backprop", "is not a class activation map"),
    ("--method", "gradkam", "unknown method 'gradkam'"),
])
def test_bad_options_are_usage_errors(tmp_path, toy, option, value, expected):
    torch.manual_seed(0)
    result = invoke(*_command(tmp_path, toy, option, value))
    assert result.exit_code == 2
    assert expected in one_line_error(result)
    assert not (tmp_path / "out").exists()


def test_the_command_has_help_with_an_example():
    result = invoke("robustness", "--help")
    assert result.exit_code == 0
    assert "axiomcam robustness --data composite:100" in result.output
    assert "pip install 'axiomcam[attacks]'" in result.output
