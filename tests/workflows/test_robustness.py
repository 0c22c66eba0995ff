"""``axiomcam robustness`` as a library (:func:`axiomcam.workflows.robustness`): on the colour
classifier (:mod:`colour_toy`), whose Grad-CAM map of a class is that class's colour
channel computed from the pixels, the images an attack flips are found, skipped images are
counted, and the original class's maps clean vs attacked (pointing game, energy in the
box, Spearman correlation) equal a per-pixel reference on the attacked pixels; the
targeted attack aims at a class that is not on the image; the files say the same.
"""

from __future__ import annotations

import json

import colour_toy as toy
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from axiomcam.workflows.attacks import attack, pixels_of
from axiomcam.workflows.robustness import AttackSettings, robustness
from axiomcam.workflows.robustness_report import robustness_json, write_robustness

RED, GREEN = 0, 1
RED_BOX, GREEN_BOX, DISTRACTOR = (2, 2, 10, 10), (14, 16, 24, 24), (24, 2, 30, 8)


def _scenes(seed: int):
    """id -> (image, label, boxes, box labels)."""
    return {
        # red (a boxed patch and an unboxed one) barely wins over a green patch: an attack
        # of 0.2 flips it, and zeroes the red pixels below 0.6 (the ranks change)
        "flips": (toy.scene(seed, [RED_BOX, DISTRACTOR], [GREEN_BOX]), RED,
                  [RED_BOX, GREEN_BOX], [RED, GREEN]),
        # a large red patch alone: the same attack does not flip it
        "holds": (toy.scene(seed + 1, [(2, 2, 20, 20)], []), RED, [(2, 2, 20, 20)], [RED]),
        # labelled red but green wins: misclassified clean, skipped
        "wrong": (toy.scene(seed + 2, [(2, 2, 5, 5)], [(10, 10, 30, 30)]), RED,
                  [(2, 2, 5, 5)], [RED]),
        "unlabelled": (toy.scene(seed + 3, [RED_BOX], []), None, [], []),
    }


def _dataset(seed: int = 0, names=None) -> toy.Samples:
    scenes = _scenes(seed)
    return toy.Samples([toy.sample(name, *scenes[name]) for name in names or scenes])


def _reference(image, box, epsilon: float, targeted: bool, cls: int):
    """From the pixels: the red maps clean and attacked (relu(R - G - B) / max), their
    pointing game (tolerance 0), energy in ``box`` and Spearman correlation."""
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    attacked = pixels_of(attack(toy.build(), pixels, torch.tensor([cls]), epsilon=epsilon,
                                mean=(0, 0, 0), std=(1, 1, 1), kind="fgsm", targeted=targeted),
                         (0, 0, 0), (1, 1, 1))[0].double().numpy()
    maps = []
    for values in (pixels[0].double().numpy(), attacked):
        red = np.maximum(values[0] - values[1] - values[2], 0)
        maps.append(red / red.max())
    x0, y0, x1, y1 = box
    inside = np.zeros(maps[0].shape, dtype=bool)
    inside[y0:y1, x0:x1] = True
    pointing = tuple(bool(inside.flat[int(np.argmax(m))]) for m in maps)
    energy = tuple(float(m[inside].sum() / m.sum()) for m in maps)
    return pointing, energy, float(spearmanr(maps[0].ravel(), maps[1].ravel())[0]), attacked


def test_flipped_images_and_their_maps_match_a_pixel_reference():
    torch.manual_seed(0)
    pretrained = toy.pretrained()
    run = robustness(pretrained, _dataset(), AttackSettings("fgsm", 0.2), methods="gradcam",
                     layer=toy.LAYER, batch_size=3, tolerance=0, progress=False)
    assert (run.images, run.skipped) == (4, 2)
    assert [(a.image_id, a.flipped) for a in run.attacked] == [("flips", True),
                                                               ("holds", False)]
    flipped = run.attacked[0]
    assert (flipped.original, flipped.predicted, flipped.target) == (RED, GREEN, None)
    clean_probability = toy.probabilities(_scenes(0)["flips"][0])[RED]
    assert flipped.probabilities[0] == pytest.approx(clean_probability, abs=1e-5)
    assert flipped.probabilities[1] < 0.5 < flipped.probabilities[0]
    pointing, energy, correlation, attacked = _reference(_scenes(0)["flips"][0], RED_BOX, 0.2,
                                                          False, RED)
    change = flipped.maps["gradcam"]
    assert change.pointing == pointing
    assert abs(energy[1] - energy[0]) > 0.01 and correlation < 0.95   # not a trivial case
    # float32 maps and a float64 reference: ~1e-6
    assert change.energy == pytest.approx(energy, abs=1e-5)
    assert change.correlation == pytest.approx(correlation, abs=1e-4)
    assert run.attacked[1].maps == {}
    # the kept example is the attacked image the maps were computed on
    image_id, _, example, maps = run.examples[0]
    assert image_id == "flips" and set(maps) == {"gradcam"}
    assert np.allclose(example.numpy(), attacked, atol=1e-5)


def test_targeted_attack_aims_at_a_class_not_on_the_image():
    torch.manual_seed(0)
    scene = toy.scene(5, [RED_BOX, DISTRACTOR], [GREEN_BOX])
    data = toy.Samples([toy.sample("one", scene, RED, [RED_BOX], [RED])])
    run = robustness(toy.pretrained(), data, AttackSettings("fgsm", 0.2, targeted=True),
                     layer=toy.LAYER, tolerance=0, progress=False)
    [image] = run.attacked
    assert image.target == GREEN and image.predicted == GREEN and image.flipped
    _, energy, correlation, _ = _reference(scene, RED_BOX, 0.2, True, GREEN)
    assert image.maps["gradcam"].energy == pytest.approx(energy, abs=1e-5)
    assert image.maps["gradcam"].correlation == pytest.approx(correlation, abs=1e-4)
    summary = robustness_json(run)
    assert summary["target_reached"]["mean"] == 1.0
    both = toy.Samples([toy.sample("both", scene, RED, [RED_BOX, GREEN_BOX], [RED, GREEN])])
    with pytest.raises(ValueError, match="holds every class"):
        robustness(toy.pretrained(), both, AttackSettings("fgsm", 0.1, targeted=True),
                   layer=toy.LAYER, progress=False)


def test_the_files_say_what_the_run_found(tmp_path):
    torch.manual_seed(0)
    announced = []
    run = robustness(toy.pretrained(), _dataset(), AttackSettings("pgd", 0.1, steps=3),
                     methods=["gradcam", "xgradcam"], layer=toy.LAYER, tolerance=0,
                     progress=False, announce=announced.append)
    assert len(announced) == 1 and announced[0].startswith("robustness: 4 images of ")
    assert "s per attacked image" in announced[0]
    files = write_robustness(run, tmp_path)
    assert [f.name for f in files] == ["results.json", "robustness.png", "report.html"]
    summary = json.loads((tmp_path / "results.json").read_text())
    flips = [a.flipped for a in run.attacked]
    assert summary["attacked"] == len(flips) == 2 and summary["flipped"] == sum(flips)
    assert summary["flip_rate"]["mean"] == pytest.approx(sum(flips) / len(flips))
    for method in ("gradcam", "xgradcam"):
        measures = summary["methods_summary"][method]
        energies = [a.maps[method].energy for a in run.flipped]
        assert measures["energy_change"]["mean"] == pytest.approx(
            np.mean([after - before for before, after in energies]))
        low, high = measures["correlation"]["low"], measures["correlation"]["high"]
        assert low <= measures["correlation"]["mean"] <= high
    page = (tmp_path / "report.html").read_text()
    assert "XGrad-CAM" in page and "flip rate" in page and "data:image/jpeg" in page


def test_no_flip_writes_no_figure_and_bad_input_is_refused(tmp_path):
    torch.manual_seed(0)
    run = robustness(toy.pretrained(), _dataset(names=["holds"]), AttackSettings("fgsm", 0.01),
                     layer=toy.LAYER, progress=False)
    assert run.flipped == []
    (tmp_path / "robustness.png").write_bytes(b"old")
    files = write_robustness(run, tmp_path)
    assert [f.name for f in files] == ["results.json", "report.html"]
    assert not (tmp_path / "robustness.png").exists()
    assert "No image was flipped" in (tmp_path / "report.html").read_text()
    with pytest.raises(ValueError, match="not one; use a CAM method"):
        robustness(toy.pretrained(), _dataset(), methods="guided_backprop", progress=False)
    with pytest.raises(ValueError, match="unknown attack 'cw'"):
        robustness(toy.pretrained(), _dataset(), AttackSettings("cw"), progress=False)
    with pytest.raises(ValueError, match="epsilon"):
        robustness(toy.pretrained(), _dataset(), AttackSettings("pgd", 3.0), progress=False)
    with pytest.raises(ValueError, match="tolerance"):
        robustness(toy.pretrained(), _dataset(), tolerance=-1, progress=False)
