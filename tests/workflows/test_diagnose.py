"""``axiomcam diagnose`` (:func:`axiomcam.workflows.diagnose`): on a colour classifier whose
maps are known from the pixels (:mod:`colour_toy`), each failure's evidence is found where
the scene put it (on the background, on another object, on the labelled object), with the
shares of a per-pixel reference; the failures are grouped by confusion pair; the JSON,
figures and page say the same; the command runs end to end; bad input is refused clearly.
"""

from __future__ import annotations

import json
from pathlib import Path

import colour_toy as toy
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from axiomcam.cli import main
from axiomcam.workflows import (
    ClassProbability,
    Misclassification,
    confusion_pairs,
    diagnose,
)
from axiomcam.workflows.diagnosis import diagnosis_json

HERE = Path(__file__).parent
RED, GREEN = 0, 1
OBJECT_BOX = (2, 2, 8, 8)


def _brightest(image: Image.Image, x: int, y: int) -> Image.Image:
    """``image`` with pixel (x, y) pure green at full intensity: the green map's one peak."""
    pixels = np.asarray(image).copy()
    pixels[y, x] = (0, 255, 0)
    return Image.fromarray(pixels)


def _scenes(seed: int) -> dict[str, tuple]:
    """id -> (image, label, boxes, box labels): a failure of each kind, a right answer, an
    unlabelled image and a failure without boxes."""
    return {
        # the green patch that wins is on the background, outside every box
        "background": (toy.scene(seed, [OBJECT_BOX], [(16, 16, 28, 28)]), RED,
                       [OBJECT_BOX], [RED]),
        # the green that wins is another labelled object
        "other-object": (toy.scene(seed + 1, [OBJECT_BOX], [(14, 4, 26, 16)]), RED,
                         [OBJECT_BOX, (14, 4, 26, 16)], [RED, GREEN]),
        # the labelled object's box holds most of the green, and its brightest pixel
        "object": (_brightest(toy.scene(seed + 2, [(26, 26, 30, 30)], [(10, 10, 26, 22)]),
                              12, 12), RED, [(4, 4, 20, 20)], [RED]),
        "right": (toy.scene(seed + 3, [(2, 2, 20, 20)], [(24, 24, 28, 28)]), RED,
                  [(2, 2, 20, 20)], [RED]),
        "unlabelled": (toy.scene(seed + 4, [OBJECT_BOX], [(12, 12, 30, 30)]), None, [], []),
        "no-boxes": (toy.scene(seed + 5, [OBJECT_BOX], [(12, 12, 30, 30)]), RED, [], []),
    }


def _dataset(seed: int = 0) -> toy.Samples:
    return toy.Samples([toy.sample(name, image, label, boxes, box_labels)
                        for name, (image, label, boxes, box_labels) in _scenes(seed).items()])


def _reference_shares(image: Image.Image, label: int, boxes, box_labels, cls: int
                      ) -> tuple[float, float, float, str]:
    """Per pixel, from the pixels: the class's channel's shares on the labelled object,
    the other objects and the background, and the region of its first maximum."""
    mass = toy.activations(image)[cls]
    on_object = np.zeros(mass.shape, dtype=bool)
    on_other = np.zeros(mass.shape, dtype=bool)
    for (x0, y0, x1, y1), box_label in zip(boxes, box_labels, strict=True):
        (on_object if box_label == label else on_other)[y0:y1, x0:x1] = True
    on_other &= ~on_object
    total = mass.sum()
    shares = (mass[on_object].sum() / total, mass[on_other].sum() / total)
    row, column = np.unravel_index(np.argmax(mass), mass.shape)
    peak = "object" if on_object[row, column] else \
        "other object" if on_other[row, column] else "background"
    return shares[0], shares[1], 1 - shares[0] - shares[1], peak


def test_each_failure_is_found_where_the_scene_put_its_evidence(tmp_path):
    torch.manual_seed(0)
    pretrained = toy.pretrained()
    # no tolerance: on 32-pixel scenes the pointing game's 15 pixels reach every box
    run = diagnose(pretrained, _dataset(), tmp_path, method="xgradcam", batch_size=4,
                   tolerance=0, progress=False)
    assert (run.images, run.labelled, run.correct) == (6, 5, 1)
    assert [f.image_id for f in run.failures] == ["background", "other-object", "object",
                                                 "no-boxes"]
    scenes = _scenes(0)
    expected_verdicts = {"background": "background", "other-object": "other object",
                         "object": "object"}
    for failure in run.failures:
        image, label, boxes, box_labels = scenes[failure.image_id]
        probabilities = toy.probabilities(image)
        assert (failure.true.name, failure.predicted.name) == ("red", "green")
        assert failure.true.probability == pytest.approx(probabilities[RED], rel=1e-5)
        assert failure.predicted.probability == pytest.approx(probabilities[GREEN], rel=1e-5)
        if failure.image_id == "no-boxes":
            assert failure.evidence is failure.true_evidence is failure.area is None
            continue
        for evidence, cls in ((failure.evidence, GREEN), (failure.true_evidence, RED)):
            *shares, peak = _reference_shares(image, label, boxes, box_labels, cls)
            assert (evidence.object, evidence.other_object, evidence.background) == \
                pytest.approx(shares, abs=1e-5)
            assert evidence.verdict == peak
        assert failure.evidence.verdict == expected_verdicts[failure.image_id]
        # the red map finds the red object (in "object" the only red is off every box)
        assert failure.true_evidence.verdict == \
            ("background" if failure.image_id == "object" else "object")
        # a uniform map's shares are the regions' areas
        area = _reference_shares(Image.new("RGB", (toy.SIZE,) * 2, (0, 255, 0)), label,
                                 boxes, box_labels, GREEN)[:3]
        assert (failure.area.object, failure.area.other_object, failure.area.background) == \
            pytest.approx(area, abs=1e-6)
        assert failure.named_another_object == (failure.image_id == "other-object")
    # the constructed cases are not borderline: each verdict's region holds real mass
    by_id = {f.image_id: f.evidence for f in run.failures}
    assert by_id["background"].background == pytest.approx(1.0, abs=1e-6)
    assert by_id["other-object"].other_object == pytest.approx(1.0, abs=1e-6)
    assert 0.4 < by_id["object"].object < 0.7  # the green square sticks out of the box


def test_failures_are_grouped_by_confusion_pair_most_frequent_first():
    torch.manual_seed(0)
    cat, dog, fox = (ClassProbability(index, name, 0.0) for index, name in
                     enumerate(("cat", "dog", "fox")))

    def failure(name: str, true: ClassProbability, predicted: ClassProbability,
                p_true: float, p_predicted: float) -> Misclassification:
        return Misclassification(
            name, None, ClassProbability(true.index, true.name, p_true),
            ClassProbability(predicted.index, predicted.name, p_predicted), None, None,
            None, False, "")

    failures = [failure("a", cat, fox, 0.1, 0.5), failure("b", dog, cat, 0.2, 0.6),
                failure("c", cat, dog, 0.3, 0.4), failure("d", dog, cat, 0.4, 0.8),
                failure("e", cat, fox, 0.3, 0.7), failure("f", fox, cat, 0.1, 0.9)]
    pairs = confusion_pairs(failures)
    assert [(p.true.name, p.predicted.name, p.count, p.image_ids) for p in pairs] == [
        ("cat", "fox", 2, ("a", "e")), ("dog", "cat", 2, ("b", "d")),  # ties: first seen
        ("cat", "dog", 1, ("c",)), ("fox", "cat", 1, ("f",))]
    assert pairs[0].true.probability == pytest.approx(0.2)       # mean of 0.1 and 0.3
    assert pairs[1].predicted.probability == pytest.approx(0.7)  # mean of 0.6 and 0.8
    assert sum(p.count for p in pairs) == len(failures)


def test_the_json_figures_and_page_say_what_the_run_found(tmp_path):
    torch.manual_seed(0)
    run = diagnose(toy.pretrained(), _dataset(seed=7), tmp_path, batch_size=3, tolerance=0,
                   progress=False)
    written = json.loads((tmp_path / "diagnose.json").read_text())
    assert written == json.loads(json.dumps(diagnosis_json(run)))
    assert (written["images"], written["labelled"], written["correct"],
            written["misclassified"]) == (6, 5, 1, 4)
    assert (written["tolerance"], written["method"], written["layer"]) == (0, "xgradcam",
                                                                         toy.LAYER)
    assert written["pairs"] == [{
        "true": {"index": RED, "name": "red",
                 "probability": pytest.approx(np.mean([f.true.probability
                                                       for f in run.failures]))},
        "predicted": {"index": GREEN, "name": "green",
                      "probability": pytest.approx(np.mean([f.predicted.probability
                                                            for f in run.failures]))},
        "count": 4, "images": ["background", "other-object", "object", "no-boxes"]}]
    predicted = written["evidence"]["predicted_class"]
    assert predicted["images"] == 3
    assert predicted["verdicts"] == {"object": 1, "other object": 1, "background": 1,
                                     "none": 0}
    located = [f.evidence for f in run.failures if f.evidence is not None]
    mean_object = np.mean([e.object for e in located])
    share = predicted["shares"]["object"]
    assert share["mean"] == pytest.approx(mean_object)
    assert share["low"] <= share["mean"] <= share["high"]
    for failure in written["failures"]:
        figure = tmp_path / failure["picture"]
        with Image.open(figure) as picture:  # three panels side by side
            assert picture.width > 2 * picture.height
    page = (tmp_path / "report.html").read_text()
    assert page.count('<figure data-image-id="') == 4
    assert "red &rarr; green (4)" in page and "http://" not in page
    assert "<script" not in page


def test_no_failure_is_said_and_written(tmp_path):
    torch.manual_seed(0)
    scenes = _scenes(0)
    image, label, boxes, box_labels = scenes["right"]
    run = diagnose(toy.pretrained(), toy.Samples([toy.sample("right", image, label, boxes,
                                                             box_labels)]),
                   tmp_path, progress=False)
    assert (run.labelled, run.correct, run.failures) == (1, 1, [])
    written = json.loads((tmp_path / "diagnose.json").read_text())
    assert written["misclassified"] == 0 and written["pairs"] == []
    assert "nothing to diagnose" in (tmp_path / "report.html").read_text()


def _hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for m in model.modules())


def test_bad_input_is_refused_clearly_and_leaves_no_hook(tmp_path):
    torch.manual_seed(0)
    pretrained = toy.pretrained()
    image = toy.scene(0, [OBJECT_BOX], [])
    unlabelled = toy.Samples([toy.sample("a", image, None, [], [])], "two unlabelled")
    with pytest.raises(ValueError, match="none of the 1 images of two unlabelled has a label"):
        diagnose(pretrained, unlabelled, tmp_path, progress=False)
    with pytest.raises(ValueError, match="'guided_gradcam' is not one"):
        diagnose(pretrained, _dataset(), tmp_path, method="guided_gradcam", progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        diagnose(pretrained, _dataset(), tmp_path, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="tolerance must be a finite number of pixels >= 0"):
        diagnose(pretrained, _dataset(), tmp_path, tolerance=-2, progress=False)
    outside = toy.Samples([toy.sample("far", image, 5, [], [])])
    with pytest.raises(ValueError, match="image 'far' has label 5, outside the model's 2"):
        diagnose(pretrained, outside, tmp_path, progress=False)
    assert _hooks(pretrained.model) == 0


# ------------------------------------------------------------------------ the command
def _folder(root: Path, seed: int, names: list[str]) -> tuple[Path, Path]:
    """The scenes as class folders (``red/NAME.png``), their boxes as a COCO file."""
    images, annotations = [], []
    for number, (name, (image, label, boxes, box_labels)) in enumerate(
            (name, scene) for name, scene in _scenes(seed).items() if name in names):
        folder = root / "images" / toy.CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{name}.png")
        images.append({"id": number + 1, "file_name": f"{name}.png", "width": toy.SIZE,
                       "height": toy.SIZE})
        annotations += [{"id": len(annotations) + 1, "image_id": number + 1,
                         "category_id": box_label, "bbox": [x0, y0, x1 - x0, y1 - y0]}
                        for (x0, y0, x1, y1), box_label in zip(boxes, box_labels, strict=True)]
    coco = root / "boxes.json"
    coco.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [
        {"id": index, "name": name} for index, name in enumerate(toy.CLASSES)]}))
    return root / "images", coco


def _command(data: Path, out: Path, *extra: str) -> list[str]:
    return ["diagnose", "--model", "colour_toy:build", "--classes", str(out.parent / "c.txt"),
            "--size", str(toy.SIZE), "--mean", "0,0,0", "--std", "1,1,1", "--layer", toy.LAYER,
            "--data", str(data), "--out", str(out), "--batch-size", "2", "--tolerance", "0",
            *extra]


def test_the_command_diagnoses_a_folder_with_coco_boxes(tmp_path, monkeypatch):
    torch.manual_seed(0)
    monkeypatch.syspath_prepend(str(HERE))
    (tmp_path / "c.txt").write_text("\n".join(toy.CLASSES))
    data, coco = _folder(tmp_path, 0, ["background", "other-object", "object", "right"])
    out = tmp_path / "out"
    result = CliRunner().invoke(main, _command(data, out, "--boxes", "coco", str(coco)))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("diagnose: 4 images of ") and "if every one is" in lines[0]
    assert "4 images, 4 labelled, 3 misclassified (xgradcam at features.1" in result.output
    assert "  red -> green: 3" in lines
    assert ("peak of the predicted class's map (3 failures with boxes): object 1, "
            "other object 1, background 1") in lines
    written = json.loads((out / "diagnose.json").read_text())
    assert {f["image"]: f["evidence"]["verdict"] for f in written["failures"]} == {
        "red/background.png": "background", "red/other-object.png": "other object",
        "red/object.png": "object"}
    assert sorted(p.name for p in (out / "failures").iterdir()) == [
        "red-background.png", "red-object.png", "red-other-object.png"]


def test_the_command_says_when_there_is_nothing_to_diagnose_or_no_label(tmp_path,
                                                                         monkeypatch):
    torch.manual_seed(0)
    monkeypatch.syspath_prepend(str(HERE))
    (tmp_path / "c.txt").write_text("\n".join(toy.CLASSES))
    data, _ = _folder(tmp_path, 0, ["right"])
    result = CliRunner().invoke(main, _command(data, tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "no labelled image was misclassified: nothing to diagnose" in result.output
    flat = tmp_path / "flat"
    flat.mkdir()
    toy.scene(0, [OBJECT_BOX], []).save(flat / "a.png")
    result = CliRunner().invoke(main, _command(flat, tmp_path / "out2"))
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith(
        "axiomcam: error: none of the 1 images of ")
    result = CliRunner().invoke(main, _command(data, tmp_path / "out3", "--method",
                                               "guided_gradcam"))
    assert result.exit_code == 2 and "is not a class activation map" in result.output


def test_the_command_has_help_with_an_example():
    result = CliRunner().invoke(main, ["diagnose", "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and "axiomcam diagnose --model mobilenet_v2" in result.output
    assert "--tolerance" in result.output and "--boxes" in result.output
