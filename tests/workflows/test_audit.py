"""``axiomcam audit`` (:func:`axiomcam.workflows.audit`): on a colour classifier whose maps
are known from the pixels (:mod:`colour_toy`), a constructed biased class (the green
images' green, the class's only evidence, lies on the background while their boxes hold
a grey object) is flagged and an unbiased one (the red inside the red images' boxes) is
not; every image's background share equals a per-pixel reference; accuracy, intervals,
the threshold option, the files and the command agree; bad input is refused clearly; and the
contrast score's maps equal ``relu(sum_k (W_ck - mean_j W_jk) A^k)`` on a linear head.
"""

from __future__ import annotations

import json
from pathlib import Path

import colour_toy as toy
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from axiomcam.cli import main
from axiomcam.evaluation.summary import bootstrap_interval
from axiomcam.workflows import audit

HERE = Path(__file__).parent
RED, GREEN = 0, 1


def _scenes(seed: int) -> dict[str, tuple]:
    """id -> (image, label, boxes, box labels). Red images: the red object fills its box
    (a small red speck on the background). Green images: the box holds a grey object with
    a green speck; the green, the class's evidence, is mostly on the background."""
    scenes = {}
    for number in range(3):
        shift = 2 * number
        scenes[f"red-{number}"] = (
            toy.scene(seed + number, [(4 + shift, 4, 20 + shift, 20), (26, 26, 29, 29)], []),
            RED, [(4 + shift, 4, 20 + shift, 20)], [RED])
        scenes[f"green-{number}"] = (
            toy.scene(seed + 10 + number, [], [(6 + shift, 6, 9 + shift, 9), (18, 2, 30, 30)]),
            GREEN, [(4 + shift, 4, 16 + shift, 16)], [GREEN])
    # counts for accuracy only (no box of its class), or not at all (no label)
    scenes["red-no-box"] = (toy.scene(seed + 20, [(2, 2, 12, 12)], [(20, 20, 30, 30)]), RED,
                            [], [])
    scenes["unlabelled"] = (toy.scene(seed + 21, [(2, 2, 12, 12)], []), None, [], [])
    return scenes


def _dataset(seed: int = 0) -> toy.Samples:
    return toy.Samples([toy.sample(name, image, label, boxes, box_labels)
                        for name, (image, label, boxes, box_labels) in _scenes(seed).items()])


def _reference(image, label: int, boxes) -> tuple[float, float]:
    """Per pixel, from the pixels: the labelled class's channel's share outside every box,
    and the background's share of the area."""
    mass = toy.activations(image)[label]
    boxed = np.zeros(mass.shape, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        boxed[y0:y1, x0:x1] = True
    return float(mass[~boxed].sum() / mass.sum()), float((~boxed).mean())


def _hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._backward_hooks) for m in model.modules())


def test_the_biased_class_is_flagged_and_the_unbiased_one_is_not(tmp_path):
    torch.manual_seed(0)
    scenes = _scenes(0)
    run = audit(toy.pretrained(), _dataset(), tmp_path, progress=False, batch_size=3)
    assert run.images == len(scenes) and len(run.records) == len(scenes) - 1
    by_id = {record.image_id: record for record in run.records}
    for name, (image, label, boxes, _) in scenes.items():
        if label is None:
            assert name not in by_id
            continue
        truth = int(np.argmax(toy.probabilities(image)))
        assert by_id[name].correct == (truth == label)
        assert by_id[name].probability == pytest.approx(toy.probabilities(image)[label],
                                                        abs=1e-5)
        if not boxes:
            assert by_id[name].background is None and by_id[name].area is None
            continue
        background, area = _reference(image, label, boxes)
        assert by_id[name].background == pytest.approx(background, abs=1e-4)
        assert by_id[name].area == pytest.approx(area, abs=1e-6)
    red, green = run.classes
    assert (red.name, red.images, red.located, green.name, green.located) == \
        ("red", 4, 3, "green", 3)
    for item, prefix in ((red, "red-"), (green, "green-")):
        shares = [_reference(scenes[f"{prefix}{n}"][0], item.index,
                             scenes[f"{prefix}{n}"][2])[0] for n in range(3)]
        assert item.background[0] == pytest.approx(np.mean(shares), abs=1e-4)
        low, high = bootstrap_interval([by_id[f"{prefix}{n}"].background for n in range(3)],
                                       seed=0)
        assert item.background[1:] == pytest.approx((low, high))
        assert item.correct == sum(r.correct for r in run.records if r.label == item.index)
    # red: evidence on the object (share well under the area's); green: on the background
    assert red.background[0] < 0.2 < red.area and not red.flagged
    assert green.background[0] > green.area > 0.8 and green.flagged
    assert green.worst == tuple(sorted((f"green-{n}" for n in range(3)),
                                       key=lambda i: -by_id[i].background))
    assert _hooks(toy.pretrained().model) == 0


def test_a_fixed_threshold_flags_by_share(tmp_path):
    torch.manual_seed(0)
    shares = {}
    for threshold, flagged in ((0.99, []), (0.5, ["green"]), (0.0, ["red", "green"])):
        run = audit(toy.pretrained(), _dataset(), tmp_path / str(threshold),
                    threshold=threshold, progress=False)
        assert [item.name for item in run.classes if item.flagged] == flagged
        shares[threshold] = [item.background for item in run.classes]
    assert shares[0.99] == shares[0.0]  # the threshold changes the flag, not the measure


def test_the_json_figures_and_page_say_what_the_run_found(tmp_path):
    torch.manual_seed(0)
    run = audit(toy.pretrained(), _dataset(), tmp_path, worst=2, progress=False)
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["flagged"] == ["green"] and written["threshold"] == "uniform"
    assert [c["name"] for c in written["classes"]] == ["red", "green"]
    green = written["classes"][1]
    assert green["background_share"]["mean"] == pytest.approx(run.classes[1].background[0])
    assert green["accuracy"] == 1.0 and len(green["worst"]) == 2
    assert len(written["images_audited"]) == 7
    assert written["pictures"] == {"green": "worst/1-green.png"}
    assert sorted(p.name for p in (tmp_path / "worst").iterdir()) == ["1-green.png"]
    page = (tmp_path / "report.html").read_text()
    assert 'id="class-1"' in page and 'id="class-0"' not in page
    assert "data:image/jpeg;base64," in page and "denser on the background" in page
    # a second audit of the same folder with nothing flagged leaves no stale figure
    audit(toy.pretrained(), _dataset(), tmp_path, threshold=1.0, progress=False)
    assert list((tmp_path / "worst").iterdir()) == []
    assert "No class is flagged" in (tmp_path / "report.html").read_text()


def test_bad_input_is_refused_clearly_and_leaves_no_hook(tmp_path):
    torch.manual_seed(0)
    pretrained = toy.pretrained()
    for threshold in ("high", 1.5, -0.1, True):
        with pytest.raises(ValueError, match="threshold must be 'uniform' or a background"):
            audit(pretrained, _dataset(), tmp_path, threshold=threshold, progress=False)
    with pytest.raises(ValueError, match="'guided_gradcam' is not one"):
        audit(pretrained, _dataset(), tmp_path, method="guided_gradcam", progress=False)
    with pytest.raises(ValueError, match="worst"):
        audit(pretrained, _dataset(), tmp_path, worst=0, progress=False)
    image = toy.scene(0, [(2, 2, 8, 8)], [])
    unlabelled = toy.Samples([toy.sample("a", image, None, [], [])], "one unlabelled")
    with pytest.raises(ValueError, match="none of the 1 images of one unlabelled has a label"):
        audit(pretrained, unlabelled, tmp_path, progress=False)
    outside = toy.Samples([toy.sample("far", image, 5, [], [])])
    with pytest.raises(ValueError, match="image 'far' has label 5, outside the model's 2"):
        audit(pretrained, outside, tmp_path, progress=False)
    assert _hooks(pretrained.model) == 0


# ------------------------------------------------------------------------ the command
def _folder(root: Path) -> tuple[Path, Path]:
    """The labelled scenes as class folders, their boxes as a COCO file."""
    images, annotations = [], []
    labelled = [(n, s) for n, s in _scenes(0).items() if s[1] is not None]
    for number, (name, (image, label, boxes, box_labels)) in enumerate(labelled):
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
    return ["audit", "--model", "colour_toy:build", "--classes", str(out.parent / "c.txt"),
            "--size", str(toy.SIZE), "--mean", "0,0,0", "--std", "1,1,1", "--layer", toy.LAYER,
            "--data", str(data), "--out", str(out), "--batch-size", "2", *extra]


def test_the_command_audits_a_folder_with_coco_boxes(tmp_path, monkeypatch):
    torch.manual_seed(0)
    monkeypatch.syspath_prepend(str(HERE))
    (tmp_path / "c.txt").write_text("\n".join(toy.CLASSES))
    data, coco = _folder(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, _command(data, out, "--boxes", "coco", str(coco)))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("audit: 7 images of ") and "s per image" in lines[0]
    assert "flagged (1): green" in lines
    green = next(line for line in lines if line.startswith("  green: 3, 1.000, "))
    assert green.endswith("FLAGGED")
    assert not next(line for line in lines if line.startswith("  red: 4")).endswith("FLAGGED")
    written = json.loads((out / "results.json").read_text())
    assert written["flagged"] == ["green"] and (out / "worst" / "1-green.png").is_file()
    result = CliRunner().invoke(main, _command(data, tmp_path / "o2", "--threshold", "2"))
    assert result.exit_code == 2 and "threshold must be 'uniform'" in result.output
    result = CliRunner().invoke(main, _command(data, tmp_path / "o3", "--method",
                                               "guided_gradcam"))
    assert result.exit_code == 2 and "is not a class activation map" in result.output


def test_the_command_has_help_with_an_example():
    result = CliRunner().invoke(main, ["audit", "--help"])
    assert result.exit_code == 0
    assert "axiomcam audit --model mobilenet_v2" in result.output
    assert "--threshold" in result.output and "--worst" in result.output


def test_the_contrast_score_leaves_out_evidence_every_class_shares():
    """On average pooling and a linear head, Grad-CAM of ``y_c - mean_j y_j`` is
    ``relu(sum_k (W_ck - mean_j W_jk) A^k)``: a channel every class weighs alike drops out."""
    from axiomcam.methods import create
    from axiomcam.workflows.auditing import LogitAboveMean, evidence_maps

    torch.manual_seed(1)
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.ReLU())
    head = torch.nn.Linear(4, 3)
    with torch.no_grad():
        head.weight[:, 3] = 5.0  # channel 3 raises every class alike
    model = torch.nn.Sequential(conv, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                head).eval()
    inputs = torch.rand(2, 3, 6, 6)
    classes = torch.tensor([0, 2])
    with create("gradcam", model, "0.1") as explainer:
        contrast = evidence_maps(explainer(inputs, LogitAboveMean(classes)), (6, 6))
        logit = evidence_maps(explainer(inputs, classes), (6, 6))
    activations = conv(inputs).detach()
    centred = head.weight.detach() - head.weight.detach().mean(dim=0)
    for image, cls in enumerate(classes.tolist()):
        for weights, measured in ((centred[cls], contrast), (head.weight.detach()[cls], logit)):
            reference = torch.relu(torch.einsum("k,khw->hw", weights, activations[image]))
            assert reference.max() > 0
            assert torch.allclose(measured[image], reference / reference.max(), atol=1e-5)
    assert not torch.allclose(contrast, logit, atol=1e-2)
