"""The evaluation runner: hand-checkable runs on a toy colour classifier, then a tiny real
run of the pretrained MobileNetV2 that must write everything and repeat exactly."""

from __future__ import annotations

import dataclasses
import math
import sqlite3
import warnings
from collections import Counter

import pytest
import torch
from PIL import Image, ImageDraw
from torch import nn

from axiomcam import AxiomCamWarning
from axiomcam.data import Dataset, Problem, Sample, open_dataset
from axiomcam.evaluation.groups import METRIC_GROUPS, check_metric_groups
from axiomcam.evaluation.inputs import evaluation_inputs
from axiomcam.evaluation.request import check_methods
from axiomcam.evaluation.runner import evaluate
from axiomcam.evaluation.store import ConfigurationMismatchError, ResultStore
from axiomcam.models import PretrainedModel

GROUP_METRICS = {
    "axioms": ("conservation_error", "sensitivity_error", "sensitivity_correlation",
               "bias_share"),
    "faithfulness": ("average_drop", "increase_in_confidence", "confidence_change",
                     "top_removal_drop"),
    "deletion": ("deletion_auc", "insertion_auc"),
    "road": ("road_morf", "road_lerf", "road_combined"),
    "localization": ("localization_iou", "localization_error", "top1_localization_error",
                     "pointing_game", "energy_pointing_game"),
    "discrimination": ("discrimination_right", "discrimination_wrong",
                       "discrimination_share"),
    "mask_iou": ("mask_iou", "mask_iou_otsu", "mask_iou_best"),
    "sanity": ("sanity_spearman",),
    "counterfactual": ("counterfactual_own", "counterfactual_other",
                       "counterfactual_other_share", "counterfactual_removal_drop"),
    "complexity": ("sparseness", "complexity", "effective_complexity"),
    "random_logit": ("random_logit_ssim",),
    "mask_localization": ("relevance_mass_accuracy", "relevance_rank_accuracy",
                          "top_k_intersection", "attribution_localisation", "mask_auc"),
    "box_localization": ("box_relevance_rank_accuracy", "box_top_k_intersection",
                         "box_attribution_localisation", "box_auc"),
}
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


# ---------------------------------------------------------------- a toy colour classifier
def colour_classifier() -> PretrainedModel:
    """Class c = colour channel c: a 1x1 identity convolution, ReLU, global average pooling
    and 10 * identity, no biases. Inputs are normalised with mean 0, std 1 (pixels in
    [0, 1]), so the logit of class c is 10 x the mean of channel c, and the layer "1"
    activation of class c's channel is exactly where that colour is."""
    convolution = nn.Conv2d(3, 3, 1, bias=False)
    linear = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        convolution.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        linear.weight.copy_(10 * torch.eye(3))
    model = nn.Sequential(convolution, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          linear).eval()
    return PretrainedModel("colours", model, None, None, ["red", "green", "blue"], "1",
                           input_size=16, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def painted(background, squares) -> Image.Image:
    """A 32 x 32 image of ``background`` with (colour, x0, y0, x1, y1) squares."""
    image = Image.new("RGB", (32, 32), background)
    draw = ImageDraw.Draw(image)
    for colour, x0, y0, x1, y1 in squares:
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=colour)  # PIL's corners are inclusive
    return image


class Listed(Dataset):
    """Samples from a list; ``bad`` paths are reported as problems, as the readers do."""

    def __init__(self, samples, bad=()):
        super().__init__(["red", "green", "blue"], "hand-made colours")
        self.samples, self.bad = samples, list(bad)

    def __len__(self):
        return len(self.samples) + len(self.bad)

    def __iter__(self):
        for path in self.bad:
            self._report(path, "cannot identify image file")
        yield from self.samples


def toy_samples() -> list[Sample]:
    boxes = torch.tensor
    return [
        # mostly red, a green square, labelled green: predicted red (wrong), map on the square
        Sample("wrong-class", painted(RED, [(GREEN, 8, 8, 24, 24)]), 1,
               boxes([[8.0, 8.0, 24.0, 24.0]]), torch.tensor([1])),
        # green and blue squares on black, labelled blue: two classes -> discrimination
        Sample("two-objects", painted((0, 0, 0), [(GREEN, 0, 0, 12, 12), (BLUE, 16, 16, 32, 32)]),
               2, boxes([[0.0, 0.0, 12.0, 12.0], [16.0, 16.0, 32.0, 32.0]]),
               torch.tensor([1, 2])),
        # no label: explained for its predicted class (blue), no localization rows
        Sample("unlabelled", painted((0, 0, 0), [(BLUE, 4, 4, 20, 20)]), None,
               boxes([[4.0, 4.0, 20.0, 20.0]]), torch.tensor([2])),
    ]


def values(store: ResultStore) -> dict[tuple[str, str, str], float]:
    return {(r.image_id, r.method, r.metric): r.value for r in store.results()}


def test_toy_run_computes_what_each_image_allows(tmp_path):
    pretrained = colour_classifier()
    run = evaluate(pretrained, Listed(toy_samples(), bad=["broken.png"]), "gradcam,layercam",
                   out_dir=tmp_path, metrics="axioms,localization,discrimination",
                   batch_size=2, progress=False)
    assert run.images == 3 and run.target_layer == "1"
    assert run.problems == [Problem("broken.png", "cannot identify image file")]
    with ResultStore.open(tmp_path) as store:
        stored = values(store)
        images = {row.image_id: row for row in store.images()}
        assert store.problems()[0].path == "broken.png"
    # predictions: 10 x the mean colour; "wrong-class" is 3/4 red
    assert (images["wrong-class"].label, images["wrong-class"].predicted) == (1, 0)
    assert images["unlabelled"].label is None and images["unlabelled"].predicted == 2
    assert (images["wrong-class"].width, images["wrong-class"].height) == (32, 32)
    red_share = torch.softmax(torch.tensor([7.5, 2.5, 0.0], dtype=torch.float64), 0)[0]
    assert images["wrong-class"].predicted_probability == pytest.approx(float(red_share))

    counts = Counter((image, method) for image, method, _ in stored)
    axioms, local, discrimination = (len(GROUP_METRICS[g]) for g in
                                     ("axioms", "localization", "discrimination"))
    assert counts == {
        ("wrong-class", "gradcam"): axioms + local,
        ("two-objects", "gradcam"): axioms + local + discrimination,
        ("unlabelled", "gradcam"): axioms,  # no label: no localization
        ("wrong-class", "layercam"): local,  # no channel weights: no axioms
        ("two-objects", "layercam"): local + discrimination,
    }
    # the green map explains the green square exactly: located, but the top-1 class is red
    for method in ("gradcam", "layercam"):
        assert stored[("wrong-class", method, "localization_iou")] == pytest.approx(1.0)
        assert stored[("wrong-class", method, "localization_error")] == 0.0
        assert stored[("wrong-class", method, "top1_localization_error")] == 100.0
        assert stored[("wrong-class", method, "pointing_game")] == 100.0
        # (the antialiased 2x downscale blurs the square's edges by one pixel: a little
        # of the map leaks out of the box)
        assert stored[("wrong-class", method, "energy_pointing_game")] == \
            pytest.approx(1.0, abs=0.1)
        # the blue map of the two-object image lies in the blue box, none in the green one
        assert stored[("two-objects", method, "discrimination_right")] == \
            pytest.approx(1.0, abs=0.1)
        assert stored[("two-objects", method, "discrimination_wrong")] == 0.0
        assert stored[("two-objects", method, "top1_localization_error")] == 0.0
    # a bias-free ReLU -> GAP -> linear head: Grad-CAM conserves the score exactly
    for image in ("wrong-class", "two-objects", "unlabelled"):
        assert stored[(image, "gradcam", "conservation_error")] == pytest.approx(0, abs=1e-6)
        assert stored[(image, "gradcam", "bias_share")] == pytest.approx(0, abs=1e-6)
    assert (tmp_path / "summary.csv").is_file() and (tmp_path / "summary.md").is_file()


def test_the_progress_bar_shows_the_method_and_stage_a_batch_is_at(tmp_path, capsys):
    evaluate(colour_classifier(), Listed(toy_samples()), "gradcam,layercam", out_dir=tmp_path,
             metrics="faithfulness,localization", batch_size=3, progress=True,
             gallery_images=0)
    states = [state.strip() for state in capsys.readouterr().err.split("\r")
              if state.startswith("evaluate:")]
    stages = [state.rsplit(", ", 1)[-1].rstrip("]") for state in states
              if state.startswith("evaluate:   0%")]
    # one batch of three images: the stages in the order they run
    assert list(dict.fromkeys(stages[1:])) == [
        "forward", "estimate", "gradcam: explain", "gradcam: faithfulness",
        "gradcam: localization",
        "layercam: explain", "layercam: faithfulness", "layercam: localization"]
    assert states[-1].startswith("evaluate: 100%") and states[-1].endswith("image/s]")


def test_boxes_scale_with_the_whole_image_resize():
    pretrained = colour_classifier()  # input 16 x 16
    image = Image.new("RGB", (64, 32), RED)
    inputs, boxes = evaluation_inputs(pretrained, [image], [torch.tensor([[8.0, 4.0, 40.0, 32.0]])])
    assert tuple(inputs.shape) == (1, 3, 16, 16)
    assert boxes[0].tolist() == [[2.0, 2.0, 10.0, 16.0]]  # x / 4, y / 2
    # no crop: the whole red image is still red, normalised with mean 0 and std 1
    assert torch.allclose(inputs[0, 0], torch.ones(16, 16))
    assert torch.allclose(inputs[0, 1:], torch.zeros(2, 16, 16))


def test_no_images_is_an_error_naming_the_data_and_problems(tmp_path):
    pretrained = colour_classifier()
    with pytest.raises(ValueError, match=r"no images to evaluate in hand-made colours "
                                         r"\(2 skipped: a.png: cannot.*; b.png: cannot"):
        evaluate(pretrained, Listed([], bad=["a.png", "b.png"]), "gradcam", out_dir=tmp_path,
                 progress=False)
    with pytest.raises(ValueError, match=r"no images to evaluate.*empty"):
        evaluate(pretrained, Listed([]), "gradcam", out_dir=tmp_path, progress=False)
    assert not (tmp_path / "results.sqlite").exists()


def test_label_outside_the_model_is_an_error(tmp_path):
    sample = toy_samples()[0]
    bad = Sample("far", sample.image, 7, sample.boxes, sample.box_labels)
    with pytest.raises(ValueError, match="'far' has label 7, outside the model's 3 classes"):
        evaluate(colour_classifier(), Listed([bad]), "gradcam", out_dir=tmp_path,
                 metrics="localization", progress=False)


def test_method_and_metric_names_are_checked():
    assert check_methods("gradcam, XGradCAM") == ["gradcam", "xgradcam"]
    with pytest.raises(ValueError, match=r"unknown method 'gradkam'; known methods: cam, "
                                         r"gradcam, gradcam\+\+"):
        check_methods("gradkam")
    with pytest.raises(ValueError, match="guided_backprop is not evaluated"):
        check_methods(["gradcam", "guided_backprop"])
    with pytest.raises(ValueError, match="given twice"):
        check_methods("gradcam,gradcam")
    assert check_metric_groups(None) == list(METRIC_GROUPS)
    assert check_metric_groups("occlusion_correlation") == ["occlusion_correlation"]
    with pytest.raises(ValueError, match=r"occlusion is not evaluated \(it is the reference"):
        check_methods("occlusion")
    assert check_metric_groups(["sanity", "axioms"]) == ["axioms", "sanity"]
    with pytest.raises(ValueError, match="unknown metric group 'speed'; known: axioms, "):
        check_metric_groups("axioms,speed")


def test_the_axioms_asked_for_by_name_need_a_method_with_channel_weights(tmp_path):
    pretrained = colour_classifier()
    with pytest.raises(ValueError, match=r"channel weights \(cam, gradcam, .*\), and "
                                         r"layercam, hirescam have none: add a method"):
        evaluate(pretrained, Listed(toy_samples()), "layercam,hirescam", out_dir=tmp_path,
                 metrics="axioms,faithfulness", progress=False)
    assert not (tmp_path / "results.sqlite").exists()
    with pytest.warns(AxiomCamWarning, match=r"and layercam has none: no axiom rows for it"):
        run = evaluate(pretrained, Listed(toy_samples()), "gradcam,layercam",
                       out_dir=tmp_path, metrics="axioms", progress=False, gallery_images=0)
    with ResultStore.open(run.out_dir) as store:
        methods = {row.method for row in store.results()}
    assert methods == {"gradcam"}
    # all groups by default: each where it applies, without a word
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "the axioms", AxiomCamWarning)
        run = evaluate(pretrained, Listed(toy_samples()[:1]), "layercam",
                       out_dir=tmp_path / "default", progress=False, gallery_images=0)
    assert not {s.metric for s in run.summaries} & set(GROUP_METRICS["axioms"])
    assert "average_drop" in {s.metric for s in run.summaries}


def test_data_dependent_groups_asked_for_by_name_say_when_the_data_gave_none(tmp_path):
    pretrained = colour_classifier()
    # the first image has one box of its label: localization, but no discrimination
    with pytest.warns(AxiomCamWarning) as caught:
        run = evaluate(pretrained, Listed(toy_samples()[:1]), "gradcam", out_dir=tmp_path,
                       metrics="localization,discrimination", progress=False,
                       gallery_images=0)
    messages = [str(w.message) for w in caught if "was asked for" in str(w.message)]
    assert messages == ["metric group 'discrimination' was asked for, but no image has boxes "
                        "of its label and of another class (two-object images): the run has "
                        "no discrimination rows"]
    assert "localization_iou" in {s.metric for s in run.summaries}
    # without boxes: neither
    boxless = [dataclasses.replace(sample, boxes=torch.zeros(0, 4),
                                   box_labels=torch.zeros(0, dtype=torch.long))
               for sample in toy_samples()]
    with pytest.warns(AxiomCamWarning) as caught:
        evaluate(pretrained, Listed(boxless), "gradcam", out_dir=tmp_path / "boxless",
                 metrics="faithfulness,localization,discrimination", progress=False,
                 gallery_images=0)
    messages = [str(w.message) for w in caught if "was asked for" in str(w.message)]
    assert [m.split(" was")[0] for m in messages] == ["metric group 'localization'",
                                                    "metric group 'discrimination'"]
    assert "--boxes voc|coco FILE" in messages[0]
    # the whole toy set allows both: not a word
    with warnings.catch_warnings():
        warnings.filterwarnings("error", ".*was asked for", AxiomCamWarning)
        run = evaluate(pretrained, Listed(toy_samples()), "gradcam", out_dir=tmp_path / "all",
                       metrics="localization,discrimination", progress=False,
                       gallery_images=0)
    assert {"localization_iou", "discrimination_share"} <= {s.metric for s in run.summaries}
    # the sanity check by name on no image: refused before anything is written
    with pytest.raises(ValueError, match=r"sanity check was asked for with sanity_images=0"):
        evaluate(pretrained, Listed(toy_samples()), "gradcam", out_dir=tmp_path / "none",
                 metrics="sanity", sanity_images=0, progress=False)
    assert not (tmp_path / "none" / "results.sqlite").exists()


def test_a_run_refuses_another_configuration_in_the_same_directory(tmp_path):
    pretrained = colour_classifier()
    dataset = Listed(toy_samples()[:1])
    evaluate(pretrained, dataset, "gradcam", out_dir=tmp_path, metrics="axioms", progress=False)
    with pytest.raises(ConfigurationMismatchError, match="seed: 0 -> 1"):
        evaluate(pretrained, dataset, "gradcam", out_dir=tmp_path, metrics="axioms", seed=1,
                 progress=False)
    run = evaluate(pretrained, dataset, "gradcam", out_dir=tmp_path, metrics="axioms", seed=1,
                   overwrite=True, progress=False)
    assert run.config["seed"] == 1


class Interrupted(Exception):
    """Stands for a crash (Ctrl-C, a killed machine) in the middle of a run."""


class Crashing(Listed):
    """Listed, but raising :class:`Interrupted` when asked for sample number ``at``."""

    def __init__(self, samples, at, bad=()):
        super().__init__(samples, bad)
        self.at = at

    def __iter__(self):
        for index, sample in enumerate(super().__iter__()):
            if index == self.at:
                raise Interrupted
            yield sample


def many_samples() -> list[Sample]:
    """Nine labelled images of one coloured square each (repeated ids once: a duplicate)."""
    colours = (RED, GREEN, BLUE)
    samples = [Sample(f"img{i}", painted((20 * i, 30, 60), [(colours[i % 3], 2 * i, 4, 2 * i + 12,
                                                                     20)]),
                      i % 3, torch.tensor([[2.0 * i, 4.0, 2.0 * i + 12, 20.0]]),
                      torch.tensor([i % 3])) for i in range(9)]
    return [*samples[:5], samples[1], *samples[5:]]


@pytest.fixture
def prepared(monkeypatch) -> list[list[str]]:
    """The image ids of every batch the runner prepares (reads and computes) from now on."""
    from axiomcam.evaluation import runner

    batches: list[list[str]] = []
    real_prepare = runner._prepare_batch

    def spying_prepare(pretrained, samples, first_index, timer):
        batches.append([sample.id for sample in samples])
        return real_prepare(pretrained, samples, first_index, timer)

    monkeypatch.setattr(runner, "_prepare_batch", spying_prepare)
    return batches


def test_an_interrupted_run_resumes_computing_only_the_missing_batches(tmp_path, prepared):
    pretrained = colour_classifier()
    options = dict(metrics="axioms,faithfulness,road,sanity", batch_size=2, sanity_images=3,
                   road_percentages=(50,), progress=False, gallery_images=0)
    reference = evaluate(pretrained, Listed(many_samples(), bad=["x.png"]), "gradcam,xgradcam",
                         out_dir=tmp_path / "reference", **options)
    prepared.clear()
    with pytest.raises(Interrupted):  # dies while reading sample 6 (batch 3)
        evaluate(pretrained, Crashing(many_samples(), at=6, bad=["x.png"]), "gradcam,xgradcam",
                 out_dir=tmp_path / "run", **options)
    assert prepared == [["img0", "img1"], ["img2", "img3"], ["img4"]]  # img1 twice: once
    with ResultStore.open(tmp_path / "run") as store:
        assert store.finished is None and store.done_batches() == {
            0: ["img0", "img1"], 1: ["img2", "img3"], 2: ["img4"]}
    prepared.clear()
    run = evaluate(pretrained, Listed(many_samples(), bad=["x.png"]), "gradcam,xgradcam",
                   out_dir=tmp_path / "run", **options)
    assert prepared == [["img5", "img6"], ["img7", "img8"]]
    assert (run.resumed, run.computed, run.images) == (5, 4, 9)
    assert run.problems == reference.problems == [
        Problem("x.png", "cannot identify image file"),
        Problem("img1", "duplicate image id, evaluated once")]
    with ResultStore.open(reference.out_dir) as expected, ResultStore.open(run.out_dir) as got:
        assert got.images() == expected.images()
        assert got.results() == expected.results()  # same values, same order
        assert got.curves() == expected.curves()
        assert got.problems() == expected.problems()
        assert got.details["sanity_layers"] == expected.details["sanity_layers"]
        assert got.details["images"] == 9
    assert (run.out_dir / "summary.csv").read_text() == \
        (reference.out_dir / "summary.csv").read_text()


def test_resuming_on_a_changed_data_set_is_refused(tmp_path):
    pretrained = colour_classifier()
    options = dict(metrics="axioms", batch_size=2, progress=False, gallery_images=0)
    with pytest.raises(Interrupted):
        evaluate(pretrained, Crashing(many_samples(), at=4), "gradcam", out_dir=tmp_path,
                 **options)
    changed = many_samples()
    changed[2] = dataclasses.replace(changed[2], id="new")
    with pytest.raises(ValueError, match=r"changed since this run started: batch 1 held 2 "
                                         r"images \(img2, img3...\) and now holds 2 \(new, img3"):
        evaluate(pretrained, Listed(changed), "gradcam", out_dir=tmp_path, **options)


class Growing(Listed):
    """The first ``count`` of :func:`many_samples`: like the composite benchmark, a longer
    one starts with a shorter one's images."""

    def __init__(self, count):
        super().__init__(many_samples()[:count])
        self.description = f"colours:{count}"

    def first_images_of(self, description):
        name, _, count = description.partition(":")
        if name == "colours" and count.isdigit() and int(count) <= len(self.samples):
            return int(count)
        return None


def test_a_longer_run_of_the_same_data_extends_the_shorter_one(tmp_path, prepared):
    pretrained = colour_classifier()
    options = dict(metrics="axioms,faithfulness,road,sanity", batch_size=2,
                   road_percentages=(50,), progress=False, gallery_images=0)
    reference = evaluate(pretrained, Growing(10), "gradcam,xgradcam",
                         out_dir=tmp_path / "reference", sanity_images=10, **options)
    short = evaluate(pretrained, Growing(7), "gradcam,xgradcam", out_dir=tmp_path / "run",
                     sanity_images=7, **options)
    assert short.extended_from is None and short.images == 6  # img1 is there twice
    prepared.clear()
    # 7 entries in batches of 2: the partial batch 3 (img5) is computed again, whole
    run = evaluate(pretrained, Growing(10), "gradcam,xgradcam", out_dir=tmp_path / "run",
                   sanity_images=10, **options)
    assert prepared == [["img5", "img6"], ["img7", "img8"]]
    assert (run.extended_from, run.resumed, run.computed, run.images) == ("colours:7", 5, 4, 9)
    assert run.config == reference.config
    with ResultStore.open(reference.out_dir) as expected, ResultStore.open(run.out_dir) as got:
        assert got.config == expected.config and got.finished is not None
        assert got.images() == expected.images()
        assert sorted(got.results()) == sorted(expected.results())
        assert sorted(got.curves()) == sorted(expected.curves())
        assert got.problems() == expected.problems()
        assert got.done_batches() == expected.done_batches()
        assert got.details["images"] == expected.details["images"] == 9
    assert (run.out_dir / "summary.csv").read_text() == \
        (reference.out_dir / "summary.csv").read_text()

    # the same data again: nothing to compute
    prepared.clear()
    again = evaluate(pretrained, Growing(10), "gradcam,xgradcam", out_dir=tmp_path / "run",
                     sanity_images=10, **options)
    assert prepared == [] and again.extended_from is None and again.images == 9


def test_a_run_is_not_extended_when_the_images_done_would_change(tmp_path):
    pretrained = colour_classifier()
    options = dict(metrics="axioms,sanity", batch_size=2, progress=False, gallery_images=0)
    evaluate(pretrained, Growing(4), "gradcam", out_dir=tmp_path, sanity_images=2, **options)
    # more sanity images than the 2 the images already done had: refused, naming both
    with pytest.raises(ConfigurationMismatchError,
                       match=r"(?s)data: 'colours:4' -> 'colours:6'.*sanity_images: 2 -> 6"):
        evaluate(pretrained, Growing(6), "gradcam", out_dir=tmp_path, sanity_images=6,
                 **options)
    # fewer images, or another change beside the size: refused
    with pytest.raises(ConfigurationMismatchError, match="data: 'colours:4' -> 'colours:3'"):
        evaluate(pretrained, Growing(3), "gradcam", out_dir=tmp_path, sanity_images=2,
                 **options)
    with pytest.raises(ConfigurationMismatchError, match="seed: 0 -> 1"):
        evaluate(pretrained, Growing(6), "gradcam", out_dir=tmp_path, sanity_images=2,
                 seed=1, **options)
    with ResultStore.open(tmp_path) as store:  # the refusals changed nothing
        assert store.config["data"] == "colours:4" and store.finished is not None
    # the same sanity count on more images: extended (images 4 and 5 get no sanity rows)
    run = evaluate(pretrained, Growing(6), "gradcam", out_dir=tmp_path, sanity_images=2,
                   **options)
    assert (run.extended_from, run.images) == ("colours:4", 5)


# ---------------------------------------------------------------- the real model, tiny
# two images in two batches of one (so batching and per-batch transactions are exercised);
# the axioms probe (960 channel ablations per image), ROAD's imputation and the deletion
# curves dominate the time
TINY_DATA = "composite:2"
TINY = dict(target_layer="features.17.conv.1", batch_size=1, perturbation_batch_size=480,
            deletion_steps=5, road_percentages=(50,), sanity_images=1, sanity_steps=2,
            progress=False, include_expensive=True,
            # every group but the occlusion correlation (170 passes per image), the
            # faithfulness correlations (331) and the robustness group (21 explanations);
            # their own tests run them end to end
            metrics=[group for group in METRIC_GROUPS if group not in (
                "occlusion_correlation", "faithfulness_correlation", "robustness")])
TINY_METHODS = ["gradcam", "xgradcam"]


@pytest.fixture(scope="module")
def mobilenet():
    from axiomcam import models

    return models.load("mobilenet_v2")


@pytest.fixture(scope="module")
def tiny_runs(mobilenet, tmp_path_factory):
    first = tmp_path_factory.mktemp("first")
    second = tmp_path_factory.mktemp("second")
    runs = [evaluate(mobilenet, TINY_DATA, TINY_METHODS, out_dir=directory, **TINY)
            for directory in (first, second)]
    return runs


def expected_counts(mobilenet) -> tuple[int, int]:
    """(result rows, curve rows) of the tiny run, counted from the data set itself."""
    results = curves = 0
    for index, sample in enumerate(open_dataset(TINY_DATA, mobilenet.class_names)):
        # every composite image has its objects' boxes and silhouettes
        per_method = sum(len(GROUP_METRICS[g]) for g in (
            "axioms", "faithfulness", "deletion", "road", "localization", "mask_iou",
            "complexity", "random_logit", "mask_localization", "box_localization"))
        per_method_curves = 2 * (TINY["deletion_steps"] + 1) + 2 * len(TINY["road_percentages"])
        if len(set(sample.box_labels.tolist())) > 1:  # both methods have counterfactuals
            per_method += len(GROUP_METRICS["discrimination"]) + \
                len(GROUP_METRICS["counterfactual"])
        if index < TINY["sanity_images"]:
            per_method += 1
            per_method_curves += TINY["sanity_steps"]
        results += per_method * len(TINY_METHODS)
        curves += per_method_curves * len(TINY_METHODS)
    return results, curves


def test_tiny_real_run_writes_every_row_summary_and_plot(tiny_runs, mobilenet):
    run = tiny_runs[0]
    results, curves = expected_counts(mobilenet)
    with ResultStore.open(run.out_dir) as store:
        assert store.count("images") == 2
        assert store.count("results") == results
        assert store.count("curves") == curves
        assert store.finished is not None
        assert store.config["target_layer"] == "features.17.conv.1"
        assert store.config["methods"] == TINY_METHODS
        assert set(store.config) >= {"model", "data", "metric_groups", "parameters", "seed",
                                     "axiomcam_version", "torch_version"}
        assert all(math.isfinite(row.value) for row in store.results())
        assert all(math.isfinite(row.value) for row in store.curves())
        got = values(store)
    # composite silhouettes lie within their boxes: box and mask localisation rows on every
    # image, at least as much mass inside the boxes, other scores
    for image, method in {(image, method) for image, method, _ in got}:
        assert got[(image, method, "energy_pointing_game")] >= \
            got[(image, method, "relevance_mass_accuracy")] - 1e-6
        for box, mask in (("box_auc", "mask_auc"), ("box_relevance_rank_accuracy",
                                                     "relevance_rank_accuracy")):
            assert got[(image, method, box)] != got[(image, method, mask)]
    connection = sqlite3.connect(run.database)
    duplicates = connection.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM results GROUP BY image_id, method, metric "
        "HAVING COUNT(*) > 1)").fetchone()[0]
    connection.close()
    assert duplicates == 0
    csv_lines = (run.out_dir / "summary.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in csv_lines] == ["method", *TINY_METHODS]
    assert "## conservation_error" in (run.out_dir / "summary.md").read_text()
    for name in ("deletion.png", "insertion.png", "road.png", "sanity.png",
                 "bars/conservation_error.png", "bars/insertion_auc.png"):
        assert (run.out_dir / name).read_bytes()[:4] == b"\x89PNG", name
    # the self-contained report: every plot inlined, each method's best and worst image
    # (2 images: one of each) by insertion - deletion AUC
    assert run.report == run.out_dir / "report.html"
    report = run.report.read_text(encoding="utf-8")
    assert "http://" not in report and "https://" not in report and "<link" not in report
    assert report.count("data:image/png;base64,") == len(run.files.plots)
    assert report.count("data:image/jpeg;base64,") == 2 * len(TINY_METHODS)
    for method in TINY_METHODS:
        for rank in ("best", "worst"):
            assert f'data-method="{method}" data-rank="{rank}"' in report
    assert report.count('data-metric="insertion_minus_deletion"') == 2 * len(TINY_METHODS)
    assert {"gallery", "summary", "report"} <= set(run.seconds)


def test_a_second_identical_run_gives_identical_numbers(tiny_runs):
    first, second = (ResultStore.open(run.out_dir) for run in tiny_runs)
    try:
        assert first.results() == second.results()
        assert first.curves() == second.curves()
        assert first.images() == second.images()
        assert first.config == second.config
    finally:
        first.close()
        second.close()
    assert tiny_runs[0].summaries == tiny_runs[1].summaries


def test_ablation_forms_and_the_axioms_probe_share_one_sweep_per_batch(tmp_path, monkeypatch):
    from axiomcam.evaluation import runner
    from axiomcam.methods import LayerContext

    sweeps = []
    real_sweep = LayerContext._ablate_every_channel

    def counting_sweep(self):
        sweeps.append(self.batch_size)
        return real_sweep(self)

    monkeypatch.setattr(LayerContext, "_ablate_every_channel", counting_sweep)
    options = dict(metrics="axioms", batch_size=2, progress=False, gallery_images=0)
    methods = "ablationcam,ablationcam:activation,gradcam"
    shared = evaluate(colour_classifier(), Listed(toy_samples()), methods,
                      out_dir=tmp_path / "shared", **options)
    assert sweeps == [2, 1]  # one per batch (3 images in batches of 2), not three
    sweeps.clear()
    monkeypatch.setattr(runner, "AblationCache", lambda: None)  # no sharing
    alone = evaluate(colour_classifier(), Listed(toy_samples()), methods,
                     out_dir=tmp_path / "alone", **options)
    assert sweeps == [2, 2, 2, 1, 1, 1]
    with ResultStore.open(shared.out_dir) as first, ResultStore.open(alone.out_dir) as second:
        assert first.results() == second.results()
