"""Explaining image files (axiomcam.workflows): targets, collecting paths, the files written and
their contents, the comparison figure and its axiom errors, failures that do not stop a run.

A tiny random conv net with a GAP + linear head stands in for a classifier, so that every
value written can be recomputed here with axiomcam.explain on the same preprocessing."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import axiomcam
from axiomcam import AxiomCamWarning
from axiomcam.evaluation import evaluation_inputs
from axiomcam.metrics.axioms import measure_axioms, probe_layer
from axiomcam.models import PretrainedModel
from axiomcam.workflows import (
    Failure,
    TargetChoice,
    check_layer,
    collect_images,
    compare_files,
    explain_files,
    method_slug,
    parse_targets,
)

CLASSES = ["cat", "dog", "car", "tiger cat"]
SIZE = 32


@pytest.fixture(scope="module")
def pretrained() -> PretrainedModel:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(6, 8, 3, padding=1, stride=2), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, len(CLASSES)))
    return PretrainedModel("tiny", model.eval(), None, None, CLASSES, "3", SIZE,
                           mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def write_images(folder) -> dict[str, Image.Image]:
    """Images of different sizes and modes; returns the RGB each should load as."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = np.random.default_rng(0)
    rgb = Image.fromarray(generator.integers(0, 256, (30, 45, 3), dtype=np.uint8))
    grey = Image.fromarray(generator.integers(0, 256, (50, 20), dtype=np.uint8))
    rgba = Image.fromarray(generator.integers(0, 256, (24, 24, 4), dtype=np.uint8))
    rgb.save(folder / "a.png")
    grey.save(folder / "b.png")
    rgba.save(folder / "c.png")
    return {"a": rgb, "b": grey.convert("RGB"), "c": rgba.convert("RGB")}


# ------------------------------------------------------------------------------ targets


def test_parse_targets_reads_top_indices_and_names():
    assert parse_targets("top1", CLASSES) == TargetChoice(top=1)
    assert parse_targets(" TOP4 ", CLASSES) == TargetChoice(top=4)
    assert parse_targets("2", CLASSES) == TargetChoice(classes=(2,))
    assert parse_targets("Tiger Cat, 0,cat", CLASSES) == TargetChoice(classes=(3, 0))


@pytest.mark.parametrize(("text", "message"), [
    ("", "no target in ''"),
    ("top0", "between 1 and 4"),
    ("top5", "between 1 and 4"),
    ("top2,cat", "cannot be combined"),
    ("4", "target class 4 is out of range: the model has 4 classes"),
    ("-1", "target class -1 is out of range"),
    ("tigr cat", "unknown class name 'tigr cat'; did you mean 'tiger cat'"),
    ("zebra", "unknown class name 'zebra' (or give top1"),
])
def test_parse_targets_rejects_with_a_message(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_targets(text, CLASSES)


def test_a_name_shared_by_two_classes_asks_for_the_index():
    with pytest.raises(ValueError, match="'crane' is shared by classes 1, 2"):
        parse_targets("crane", ["bird", "crane", "crane"])


# ---------------------------------------------------------------------------- collecting


def test_collect_images_from_files_folders_and_patterns(tmp_path):
    write_images(tmp_path / "photos")
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    (tmp_path / "photos" / "deeper").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "photos" / "deeper" / "d.jpg")
    (tmp_path / "empty").mkdir()
    paths, failures = collect_images([
        tmp_path / "photos" / "c.png",          # a file first: the order given is kept
        tmp_path / "photos",                    # a folder: its images, sorted, not recursive
        str(tmp_path / "photos" / "**" / "*.jpg"),  # a recursive pattern
        tmp_path / "missing.png", tmp_path / "empty", str(tmp_path / "*.webp"),
    ])
    assert [p.name for p in paths] == ["c.png", "a.png", "b.png", "d.jpg"]  # no repeats
    assert [(f.path, f.reason.split(" (")[0]) for f in failures] == [
        (str(tmp_path / "missing.png"), "no such file or directory"),
        (str(tmp_path / "empty"), "directory has no image files"),
        (str(tmp_path / "*.webp"), "the pattern matches no file"),
    ]


# ------------------------------------------------------------------------------- layers


def test_check_layer_accepts_spatial_layers_and_names_the_problem_otherwise(pretrained):
    assert check_layer(pretrained, None) == "3"
    assert check_layer(pretrained, "1") == "1"
    with pytest.raises(ValueError, match="'9' does not exist"):
        check_layer(pretrained, "9")
    with pytest.raises(ValueError, match="layer '5' has no \\(B, C, h, w\\) output"):
        check_layer(pretrained, "5")  # Flatten: (B, 8)


# ------------------------------------------------------------------------------ explain


def test_explain_files_writes_overlays_raw_maps_and_results(pretrained, tmp_path):
    originals = write_images(tmp_path / "in")
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG not really")
    paths, failures = collect_images([tmp_path / "in", tmp_path / "gone.jpg"])
    run = explain_files(pretrained, paths, "gradcam", tmp_path / "out",
                        targets=TargetChoice(top=2), batch_size=2, failures=failures)

    # recompute what the files must hold, with the public API on the same preprocessing
    images = [originals[name] for name in "abc"]
    inputs, _ = evaluation_inputs(pretrained, images, [torch.zeros(0, 4)] * 3)
    with torch.no_grad():
        probabilities = pretrained.model(inputs).softmax(1)
    top2 = probabilities.topk(2, dim=1).indices
    expected = axiomcam.explain(pretrained.model, inputs, "gradcam", "3", targets=top2)

    results = json.loads(run.results_file.read_text())
    assert results["method"] == "gradcam" and results["layer"] == "3"
    assert [image["path"] for image in results["images"]] == [
        str(tmp_path / "in" / f"{name}.png") for name in "abc"]
    assert {f["path"] for f in results["failures"]} == {
        str(tmp_path / "in" / "broken.png"), str(tmp_path / "gone.jpg")}
    assert run.explained == 3 and len(run.failures) == 2
    for row, (name, image_record) in enumerate(zip("abc", results["images"], strict=True)):
        original = originals[name]
        assert image_record["size"] == list(original.size)
        top = image_record["top_classes"]
        assert [t["index"] for t in top[:2]] == top2[row].tolist()
        assert top[0]["probability"] == pytest.approx(float(probabilities[row].max()), abs=1e-6)
        for column, entry in enumerate(image_record["maps"]):
            class_index = int(top2[row, column])
            assert entry["class_index"] == class_index
            assert entry["class_name"] == CLASSES[class_index]
            assert entry["score"] == pytest.approx(float(expected.scores[row, column]), abs=1e-5)
            probability = float(probabilities[row, class_index])
            assert entry["probability"] == pytest.approx(probability, abs=1e-6)
            slug = CLASSES[class_index].replace(" ", "-")
            assert entry["overlay"] == f"{name}_gradcam_{class_index}-{slug}_p{probability:.2f}.png"
            picture = Image.open(tmp_path / "out" / entry["overlay"])
            assert picture.size == original.size  # drawn at the original resolution
            assert picture.text["class"] == CLASSES[class_index]
            assert float(picture.text["probability"]) == pytest.approx(probability, abs=1e-5)
            assert picture.text["layer"] == "3" and picture.text["method"] == "gradcam"
            expected_overlay = axiomcam.images.overlay(original, expected.maps[row, column])
            assert np.array_equal(np.asarray(picture.convert("RGB")),
                                  np.asarray(expected_overlay))
            raw = np.load(tmp_path / "out" / entry["raw"])
            assert np.allclose(raw, expected.raw[row, column].numpy(), atol=1e-6)
            assert "guided" not in entry


@pytest.mark.parametrize("targets", [TargetChoice(top=2), TargetChoice(classes=(3, 0))])
def test_explain_files_runs_the_model_once_per_batch(pretrained, tmp_path, targets):
    # the classes and probabilities come from the explanation's own forward pass
    write_images(tmp_path / "in")
    paths, _ = collect_images([tmp_path / "in"])
    calls = []
    handle = pretrained.model.register_forward_hook(lambda *args: calls.append(1))
    try:
        run = explain_files(pretrained, paths, "xgradcam", tmp_path / "out", targets=targets,
                            batch_size=2)
    finally:
        handle.remove()
    assert run.explained == 3 and len(calls) == 2  # batches of 2 and 1
    results = json.loads(run.results_file.read_text())
    expected = [2, 2, 2] if targets.top else [[3, 0]] * 3
    got = [[entry["class_index"] for entry in image["maps"]] for image in results["images"]]
    if targets.top:
        got = [len(classes) for classes in got]
    assert got == expected


def test_guided_methods_also_write_the_guided_picture(pretrained, tmp_path):
    write_images(tmp_path / "in")
    paths, _ = collect_images([tmp_path / "in" / "b.png"])
    run = explain_files(pretrained, paths, "guided_gradcam", tmp_path / "out",
                        targets=TargetChoice(classes=(1,)))
    entry = json.loads(run.results_file.read_text())["images"][0]["maps"][0]
    guided = Image.open(tmp_path / "out" / entry["guided"])
    assert guided.size == (20, 50) and entry["class_name"] == "dog"
    assert np.load(tmp_path / "out" / entry["raw"]).shape == (16, 16)  # the CAM's raw map


def test_two_inputs_with_the_same_name_do_not_overwrite_each_other(pretrained, tmp_path):
    for folder in ("x", "y"):
        write_images(tmp_path / folder)
    paths, _ = collect_images([tmp_path / "x" / "a.png", tmp_path / "y" / "a.png"])
    run = explain_files(pretrained, paths, "xgradcam", tmp_path / "out")
    overlays = [entry["overlay"] for image in json.loads(run.results_file.read_text())["images"]
                for entry in image["maps"]]
    assert overlays[0].startswith("a_xgradcam_") and overlays[1].startswith("a-2_xgradcam_")


def test_a_batch_that_cannot_be_explained_fails_its_images_only(pretrained, tmp_path):
    write_images(tmp_path / "in")
    paths, _ = collect_images([tmp_path / "in"])

    class NaNOnSecondBatch(nn.Module):  # scores become NaN for the batch holding "c.png"
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.inner(x)
            return out * float("nan") if x.shape[0] == 1 else out

    model = NaNOnSecondBatch(pretrained.model)
    broken = PretrainedModel("nan", model, None, None, CLASSES, "inner.3", SIZE,
                             mean=pretrained.mean, std=pretrained.std)
    run = explain_files(broken, paths, "gradcam", tmp_path / "out", batch_size=2)
    assert run.explained == 2
    assert [f.path for f in run.failures] == [str(tmp_path / "in" / "c.png")]
    assert "NaN" in run.failures[0].reason
    results = json.loads(run.results_file.read_text())
    assert len(results["images"]) == 2 and len(results["failures"]) == 1


def test_hooks_are_removed_after_a_run(pretrained, tmp_path):
    write_images(tmp_path / "in")
    paths, _ = collect_images([tmp_path / "in" / "a.png"])
    explain_files(pretrained, paths, "gradcam", tmp_path / "out")
    compare_files(pretrained, paths, ["gradcam", "layercam"], tmp_path / "c.png")
    assert all(not module._forward_hooks and not module._backward_hooks
               for module in pretrained.model.modules())


# ------------------------------------------------------------------------------ compare


def test_compare_files_draws_a_figure_with_the_axiom_errors(pretrained, tmp_path):
    originals = write_images(tmp_path / "in")
    paths, failures = collect_images([tmp_path / "in", tmp_path / "nothing.png"])
    methods = ["gradcam", "xgradcam", "layercam"]
    run = compare_files(pretrained, paths, methods, tmp_path / "figs" / "compare.png",
                        layer="1", axioms=True, batch_size=2, failures=failures)
    assert run.figure.is_file() and Image.open(run.figure).size[0] > 0
    assert run.images == 3 and run.failures == [
        Failure(str(tmp_path / "nothing.png"), "no such file or directory")]
    inputs, _ = evaluation_inputs(pretrained, [originals[n] for n in "abc"],
                                  [torch.zeros(0, 4)] * 3)
    expected = measure_axioms(pretrained.model, inputs, ["gradcam", "xgradcam"], "1")
    for method in ("gradcam", "xgradcam"):
        measured = np.array(run.axiom_errors[method])
        assert np.allclose(measured[:, 0], expected[method].conservation_error.numpy(),
                           atol=1e-5)
        assert np.allclose(measured[:, 1], expected[method].sensitivity_error.numpy(),
                           atol=1e-5)
    assert run.axiom_errors["layercam"] == [None, None, None]


@pytest.mark.parametrize("first", ["guided_backprop", "gradcam"])
def test_compare_classifies_in_the_first_methods_pass(pretrained, tmp_path, first):
    # one model call per method and batch, none to classify; the classes are the top-1
    originals = write_images(tmp_path / "in")
    paths, _ = collect_images([tmp_path / "in"])
    inputs, _ = evaluation_inputs(pretrained, [originals[n] for n in "abc"],
                                  [torch.zeros(0, 4)] * 3)
    calls = []
    handle = pretrained.model.register_forward_hook(lambda *args: calls.append(1))
    try:
        probe_layer(pretrained.model, inputs[:2], torch.tensor([0, 0]), "1")
        probe_calls = len(calls)
        calls.clear()
        run = compare_files(pretrained, paths, [first, "xgradcam"], tmp_path / "c.png",
                            layer="1", axioms=True, batch_size=2)
    finally:
        handle.remove()
    assert run.images == 3 and len(calls) == 2 * (2 + probe_calls)  # 2 batches
    expected = measure_axioms(pretrained.model, inputs, ["xgradcam"], "1")["xgradcam"]
    assert np.allclose(np.array(run.axiom_errors["xgradcam"])[:, 0],
                       expected.conservation_error.numpy(), atol=1e-5)


def test_compare_refuses_several_targets_and_unreadable_inputs(pretrained, tmp_path):
    write_images(tmp_path / "in")
    paths, _ = collect_images([tmp_path / "in"])
    with pytest.raises(ValueError, match="one class per image; got 2 targets"):
        compare_files(pretrained, paths, ["gradcam"], tmp_path / "c.png",
                      target=TargetChoice(top=2))
    (tmp_path / "bad.png").write_text("text")
    with pytest.raises(ValueError, match=r"no image could be read: .*bad\.png"):
        compare_files(pretrained, [tmp_path / "bad.png"], ["gradcam"], tmp_path / "c.png")


# ------------------------------------------------------- file names and replaced results


def test_every_method_gets_a_file_name_of_its_own():
    slugs = {method: method_slug(method) for method in axiomcam.METHOD_NAMES}
    assert len(set(slugs.values())) == len(slugs), slugs
    assert slugs["gradcam++"] == "gradcampp" and slugs["gradcam"] == "gradcam"
    assert slugs["ablationcam:activation"] == "ablationcam-activation"
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", slug) for slug in slugs.values())


def test_two_methods_into_one_folder_keep_both_results(pretrained, tmp_path):
    write_images(tmp_path / "in")
    paths, _ = collect_images([tmp_path / "in" / "a.png"])
    first = explain_files(pretrained, paths, "gradcam", tmp_path / "out")
    with pytest.warns(AxiomCamWarning, match=r"replaced 1 file .*\(method gradcam, .*: "
                                             r"results\.json") as caught:
        second = explain_files(pretrained, paths, "gradcam++", tmp_path / "out")
    assert len(caught) == 1 and list(second.replaced) == [second.results_file]
    overlays = [path for path in first.written + second.written if path.suffix == ".png"]
    assert len(set(overlays)) == 2 and all(path.is_file() for path in overlays)
    assert [Image.open(path).text["method"] for path in overlays] == ["gradcam", "gradcam++"]
    assert overlays[1].name.startswith("a_gradcampp_")


def test_a_result_of_another_layer_or_model_is_replaced_with_a_warning(pretrained, tmp_path):
    write_images(tmp_path / "in")
    paths, _ = collect_images([tmp_path / "in" / "a.png"])
    cat = TargetChoice(classes=(0,))
    explain_files(pretrained, paths, "xgradcam", tmp_path / "out", layer="3", targets=cat)
    with pytest.warns(AxiomCamWarning, match=r"replaced 3 files in .* that held another "
                                             r"result \(method xgradcam, model tiny, layer 3\)"):
        run = explain_files(pretrained, paths, "xgradcam", tmp_path / "out", layer="1",
                            targets=cat)
    assert sorted(path.name for path in run.replaced) == sorted(
        path.name for path in run.written)  # the overlay, the raw map and results.json
    # another model: another probability, so another overlay's name, but the same raw
    # map's, known as another result's by the overlay written with it
    torch.manual_seed(1)
    other = PretrainedModel("other", nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1, stride=2),
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, len(CLASSES))).eval(),
        None, None, CLASSES, "3", SIZE, mean=pretrained.mean, std=pretrained.std)
    with pytest.warns(AxiomCamWarning, match=r"replaced 2 files .*model tiny, layer 1\): "
                                             r"results\.json, a_xgradcam_0-cat\.npy"):
        again = explain_files(other, paths, "xgradcam", tmp_path / "out", layer="1",
                              targets=cat)
    overlays = [path.name for path in run.written + again.written if path.suffix == ".png"]
    assert overlays[0] != overlays[1] and overlays[0].startswith("a_xgradcam_0-cat_p")


def test_the_same_run_again_replaces_its_files_silently(pretrained, tmp_path):
    write_images(tmp_path / "in")
    paths, _ = collect_images([tmp_path / "in"])
    explain_files(pretrained, paths, "guided_gradcam", tmp_path / "out", model_spec="tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = explain_files(pretrained, paths, "guided_gradcam", tmp_path / "out",
                            model_spec="tiny")
    assert run.replaced == {}


def test_explain_files_at_several_layers_writes_the_fused_map_and_each_raw_map(pretrained,
                                                                               tmp_path):
    originals = write_images(tmp_path / "in")
    paths, _ = collect_images([tmp_path / "in" / "a.png", tmp_path / "in" / "c.png"])
    run = explain_files(pretrained, paths, "xgradcam", tmp_path / "out", layer=["1", "3"],
                        targets=TargetChoice(classes=(1,)), model_spec="tiny")
    images = [originals[name] for name in "ac"]
    inputs, _ = evaluation_inputs(pretrained, images, [torch.zeros(0, 4)] * 2)
    expected = axiomcam.explain(pretrained.model, inputs, "xgradcam", ["1", "3"], targets=1)
    results = json.loads(run.results_file.read_text())
    assert results["layer"] == ["1", "3"]
    for row, (name, record) in enumerate(zip("ac", results["images"], strict=True)):
        (entry,) = record["maps"]
        assert entry["raw"] == f"{name}_xgradcam_1-dog.npz"
        raw = np.load(tmp_path / "out" / entry["raw"])
        assert sorted(raw.files) == ["1", "3"]
        assert raw["1"].shape == (32, 32) and raw["3"].shape == (16, 16)
        for layer in ("1", "3"):  # each layer's raw map, as that layer alone gives it
            alone = axiomcam.explain(pretrained.model, inputs, "xgradcam", layer, targets=1)
            assert np.allclose(raw[layer], alone.raw[row].numpy(), atol=1e-6)
        picture = Image.open(tmp_path / "out" / entry["overlay"])
        assert picture.text["layer"] == "1+3"
        assert np.array_equal(np.asarray(picture.convert("RGB")), np.asarray(
            axiomcam.images.overlay(images[row], expected.maps[row])))  # the fused map
    with warnings.catch_warnings():  # the same run again: nothing of another result
        warnings.simplefilter("error")
        again = explain_files(pretrained, paths, "xgradcam", tmp_path / "out",
                              layer=["1", "3"], targets=TargetChoice(classes=(1,)),
                              model_spec="tiny")
    assert again.replaced == {}
    with pytest.warns(AxiomCamWarning, match=r"another result \(method xgradcam, model tiny, "
                                             r"layer 1\+3\)"):
        explain_files(pretrained, paths, "xgradcam", tmp_path / "out", layer="1",
                      targets=TargetChoice(classes=(1,)), model_spec="tiny")
