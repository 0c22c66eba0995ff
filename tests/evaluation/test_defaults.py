"""``evaluate``'s defaults: the cheap groups and methods by the written rule of
:mod:`axiomcam.evaluation.costs`, the cost estimate told before the first batch, warnings
that name the method, the layer and the image, and explicit requests that still run."""

from __future__ import annotations

import warnings

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

from axiomcam import AxiomCamWarning, evaluation
from axiomcam.cli import main
from axiomcam.data import Dataset, Sample
from axiomcam.evaluation import costs, request, runner
from axiomcam.evaluation.costs import CHEAP_PASSES, Passes
from axiomcam.evaluation.groups import GROUPS, MetricGroup, check_parameters
from axiomcam.evaluation.runner import evaluate
from axiomcam.evaluation.store import ResultStore
from axiomcam.models import PretrainedModel

CHEAP_GROUPS = ["axioms", "faithfulness", "localization", "discrimination", "mask_iou",
                "counterfactual", "complexity", "random_logit", "mask_localization",
                "box_localization"]
EXPENSIVE_GROUPS = ["deletion", "road", "sanity", "occlusion_correlation",
                    "faithfulness_correlation", "robustness"]


def toy_model() -> PretrainedModel:
    """A seeded conv -> ReLU -> pooling -> linear classifier of 3 classes (layer "1")."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(4, 3)).eval()
    # mean 0 and std 1: a black image is 0 everywhere, padding included
    return PretrainedModel("toy", net, None, None, ["a", "b", "c"], "1", input_size=16,
                           mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


class Shades(Dataset):
    """``count`` images ``shade-i`` with a box of their label; ``shade-0`` is all black (a
    constant layer output: every map of it is constant)."""

    def __init__(self, count: int = 3):
        super().__init__(["a", "b", "c"], f"{count} shades")
        self.count = count

    def __len__(self):
        return self.count

    def __iter__(self):
        for index in range(self.count):
            image = Image.new("RGB", (20, 20), (0, 0, 0))
            if index:
                image.paste((200, 40 * index, 90), (4, 4, 14, 14))
            yield Sample(f"shade-{index}", image, index % 3, torch.tensor([[4.0, 4, 14, 14]]),
                         torch.tensor([index % 3]))


# ------------------------------------------------------------------------- the rule
@pytest.mark.parametrize(("passes", "cheap"), [
    (Passes(), True),
    (Passes(whole=CHEAP_PASSES), True),
    (Passes(whole=CHEAP_PASSES + 1), False),
    (Passes(whole=1, whole_per_channel=1), False),        # Score-CAM: K whole passes
    (Passes(whole=2, after_layer_per_channel=1), True),   # after the layer: not counted
    (Passes(explanations=2), True),                       # an explanation counts as two
    (Passes(explanations=3), False),
    (Passes(explanations_per_block=1), False),
    (Passes(whole=2, imputations=2), True),
    (Passes(whole=2, imputations=3), False),
])
def test_the_rule_counts_passes_of_the_whole_network(passes, cheap):
    assert passes.cheap is cheap


def test_the_registered_groups_and_methods_are_sorted_by_their_declared_passes():
    methods, groups = request.default_selection(None, None, check_parameters({}),
                                                include_expensive=False)
    assert groups.chosen == CHEAP_GROUPS and groups.left_out == EXPENSIVE_GROUPS
    assert methods.chosen == ["gradcam", "gradcam++", "xgradcam", "ablationcam", "layercam"]
    assert methods.left_out == ["scorecam"]
    # the rule reads the parameters: 1 deletion step is 2 (1 + 1) = 4 passes, cheap
    _, fewer = request.default_selection(None, None, check_parameters({"deletion_steps": 1}),
                                         include_expensive=False)
    assert "deletion" in fewer.chosen and "deletion" not in fewer.left_out
    everything = request.default_selection(None, None, check_parameters({}),
                                           include_expensive=True)
    assert everything[1].chosen == [group.name for group in GROUPS]
    assert everything[0].chosen == list(request.DEFAULT_METHODS)
    assert everything[0].left_out == everything[1].left_out == []


def test_a_new_group_is_picked_up_by_its_declared_cost(monkeypatch):
    def group(name: str, passes) -> MetricGroup:
        return MetricGroup(name=name, title=name, metrics=(), compute=lambda m: None,
                           cost="-", passes=passes)

    added = (group("free", lambda parameters: Passes()),
             group("dear", lambda parameters: Passes(whole=3 * CHEAP_PASSES)),
             group("undeclared", None))
    monkeypatch.setattr(request, "GROUPS", (*GROUPS, *added))
    _, groups = request.default_selection(None, None, check_parameters({}),
                                          include_expensive=False)
    assert groups.chosen == [*CHEAP_GROUPS, "free"]
    assert groups.left_out == [*EXPENSIVE_GROUPS, "dear", "undeclared"]


def test_a_method_of_an_undeclared_cost_class_is_expensive(monkeypatch):
    monkeypatch.delitem(costs.METHOD_PASSES, "backward")
    methods, _ = request.default_selection(None, "axioms", check_parameters({}),
                                           include_expensive=False)
    assert methods.chosen == ["ablationcam"]
    assert methods.left_out == ["gradcam", "gradcam++", "xgradcam", "scorecam", "layercam"]


# ------------------------------------------------------------------ runs of the toy
def test_a_default_run_measures_the_cheap_ones_after_telling_the_estimate(tmp_path,
                                                                           monkeypatch):
    events: list[str] = []
    compute = runner._evaluate_batch

    def batch(*args, **kwargs):
        events.append("batch")
        return compute(*args, **kwargs)

    monkeypatch.setattr(runner, "_evaluate_batch", batch)
    run = evaluate(toy_model(), Shades(3), out_dir=tmp_path, batch_size=2, progress=False,
                   gallery_images=0, on_estimate=lambda text: events.append(text))
    assert events[1:] == ["batch", "batch"]  # told once, before the first batch
    text = events[0]
    assert run.methods == ["gradcam", "gradcam++", "xgradcam", "ablationcam", "layercam"]
    assert run.metric_groups == CHEAP_GROUPS
    assert run.left_out == [*EXPENSIVE_GROUPS, "scorecam"]
    for name in [*run.methods, *run.metric_groups, "total"]:
        assert name in text
    assert "left out as expensive" in text and "--all" in text
    for name in run.left_out:
        assert f"{name} (~" in text
    with ResultStore.open(tmp_path) as store:
        assert store.config["methods"] == run.methods
        assert store.config["metric_groups"] == CHEAP_GROUPS
        stored = {row.metric for row in store.results()}
    assert "conservation_error" in stored and "deletion_auc" not in stored
    # the same call continues the same stored configuration
    again = evaluate(toy_model(), Shades(3), out_dir=tmp_path, batch_size=2, progress=False,
                     gallery_images=0, on_estimate=events.append)
    assert again.resumed == 3 and again.computed == 0 and again.estimate is None


def test_the_estimate_is_the_declared_passes_times_the_probed_seconds(tmp_path):
    run = evaluate(toy_model(), Shades(3), out_dir=tmp_path, progress=False,
                   gallery_images=0, on_estimate=lambda text: None)
    estimate, timing = run.estimate, run.estimate.timing
    whole, after = timing.whole, timing.after_layer
    assert timing.channels == 4 and whole > 0 and after > 0
    seconds = estimate.seconds
    assert seconds["gradcam"]["explain"] == pytest.approx(3 * 2 * whole)
    assert seconds["layercam"]["faithfulness"] == pytest.approx(3 * 4 * whole)
    assert seconds["gradcam"]["localization"] == 0
    # the axioms probe is shared: charged once, to the first method with channel weights
    assert seconds["gradcam"]["axioms"] == pytest.approx(3 * (2 * whole + 4 * after))
    assert "axioms" not in seconds["xgradcam"] and "axioms" not in seconds["layercam"]
    # Ablation-CAM's ablations come from the probe's cache
    assert seconds["ablationcam"]["explain"] == pytest.approx(3 * whole)
    assert estimate.total == pytest.approx(sum(sum(s.values()) for s in seconds.values()))
    # Score-CAM, left out: one whole pass per channel plus its own, then faithfulness's 4
    # (its axioms come from the shared probe, localization and discrimination are free),
    # and random_logit's one more explanation
    assert estimate.left_out["scorecam"] == pytest.approx(
        3 * (1 + 4) * whole + 3 * 4 * whole + 3 * (1 + 4) * whole)
    assert estimate.left_out["deletion"] == pytest.approx(
        len(run.methods) * 3 * 2 * 51 * whole)


def test_named_groups_and_methods_run_even_when_expensive(tmp_path):
    run = evaluate(toy_model(), Shades(2), "scorecam", out_dir=tmp_path, metrics="deletion",
                   deletion_steps=6, progress=False, gallery_images=0,
                   on_estimate=lambda text: None)
    assert run.methods == ["scorecam"] and run.metric_groups == ["deletion"]
    assert run.left_out == []
    with ResultStore.open(tmp_path) as store:
        assert {(row.method, row.metric) for row in store.results()} == {
            ("scorecam", "deletion_auc"), ("scorecam", "insertion_auc")}


def test_warnings_name_the_method_the_layer_and_the_image(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluate(toy_model(), Shades(2), "gradcam,xgradcam", out_dir=tmp_path,
                 metrics="faithfulness", progress=False, gallery_images=1,
                 on_estimate=lambda text: None)
    said = [str(w.message) for w in caught if issubclass(w.category, AxiomCamWarning)]
    for method in ("gradcam", "xgradcam"):
        # the black image's map is constant: the warning says whose map, where, which image
        assert f"{method} at 1: the map of (image, target) [('shade-0', 0)] is constant " \
            "(all-zero activations or gradients, or nothing positive): returned as all zeros" \
            in said
    assert not any("shade-1" in message for message in said)
    # the report's gallery draws the maps again: its warnings say so
    assert any(message.startswith("gradcam at 1 (gallery): the map of (image, target) "
                                  "[('shade-0', 0)] is constant") for message in said)


def test_outside_an_evaluation_the_warning_keeps_its_text():
    torch.manual_seed(0)
    model = toy_model().model
    from axiomcam import explain

    with pytest.warns(AxiomCamWarning) as caught:
        explain(model, torch.zeros(2, 3, 16, 16), "gradcam", target_layer="1")
    assert str(caught[0].message).startswith("the map of (image, target) [(0, 0), (1, 0)]")


# ----------------------------------------------------------------------- the command
def test_the_command_prints_the_estimate_and_what_it_left_out(tmp_path, monkeypatch):
    monkeypatch.setattr("axiomcam.cli.options.ModelOptions.load",
                        lambda self, debug, device=None: toy_model(), raising=True)
    monkeypatch.setattr("axiomcam.cli.evaluate._open_data",
                        lambda *args: Shades(2))
    result = CliRunner().invoke(main, ["evaluate", "--data", "shades", "--out",
                                       str(tmp_path), "--gallery-images", "0"])
    assert result.exit_code == 0, result.output + result.stderr
    assert result.stderr.index("cost estimate for 2 images at 1") < \
        result.stderr.index("left out as expensive")
    assert ("left out as expensive: deletion, road, sanity, occlusion_correlation, "
            "faithfulness_correlation, robustness, scorecam") in result.output
    # --all asks evaluate for the expensive ones too (what that runs: the last test)
    asked = {}

    def record(*args, **kwargs):
        asked.update(kwargs)
        raise RuntimeError("recorded")

    monkeypatch.setattr(evaluation, "evaluate", record)
    everything = CliRunner().invoke(main, ["evaluate", "--data", "shades", "--out",
                                           str(tmp_path / "all"), "--all"])
    assert everything.exit_code == 1 and "recorded" in everything.stderr
    assert asked["include_expensive"] is True and asked["metrics"] is None


def test_a_run_of_the_old_defaults_is_continued_with_include_expensive(tmp_path):
    # before the cheap defaults, no methods meant DEFAULT_METHODS and no groups meant all
    options = dict(out_dir=tmp_path, deletion_steps=2, road_percentages=(50,), sanity_images=1,
                   sanity_steps=1, progress=False, gallery_images=0,
                   on_estimate=lambda text: None)
    old = evaluate(toy_model(), Shades(2), list(request.DEFAULT_METHODS),
                   metrics=[group.name for group in GROUPS], **options)
    again = evaluate(toy_model(), Shades(2), include_expensive=True, **options)
    assert again.metric_groups == [group.name for group in GROUPS] and again.left_out == []
    assert again.resumed == 2 and again.computed == 0
    assert again.config == old.config


def test_a_failed_probe_warns_and_the_run_goes_on(tmp_path, monkeypatch):
    def failing(*args, **kwargs):
        raise RuntimeError("no timer here")

    monkeypatch.setattr(runner, "probe_timing", failing)
    told = []
    with pytest.warns(AxiomCamWarning, match=r"no cost estimate: .*no timer here"):
        run = evaluate(toy_model(), Shades(3), "gradcam", out_dir=tmp_path, metrics="axioms",
                       batch_size=1, progress=False, gallery_images=0, on_estimate=told.append)
    assert told == [] and run.estimate is None and run.computed == 3
