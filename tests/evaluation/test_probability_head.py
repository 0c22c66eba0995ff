"""``evaluate`` reads every probability by the model's head (``pretrained.probability``):
the stored metric rows, the predictions, and the run's configuration, so that a run with
another head is not mixed into it.  Single-logit models are refused with the way out."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from test_runner import Listed, colour_classifier, toy_samples
from torch import nn

from axiomcam.evaluation.inputs import evaluation_inputs
from axiomcam.evaluation.runner import evaluate
from axiomcam.evaluation.store import ConfigurationMismatchError, ResultStore
from axiomcam.methods import create
from axiomcam.metrics import confidence_change, deletion_insertion
from axiomcam.models import PretrainedModel

STEPS = 5


def stored_rows(directory) -> tuple[dict, dict]:
    with ResultStore.open(directory) as store:
        rows = {(r.image_id, r.metric): r.value for r in store.results()}
        images = {row.image_id: row for row in store.images()}
    return rows, images


def direct_values(pretrained: PretrainedModel, samples, probability: str):
    """Average Drop and the deletion AUC of Grad-CAM's maps, from the metric functions
    called directly on the images ``evaluate`` feeds (labels explained)."""
    inputs, _ = evaluation_inputs(pretrained, [s.image for s in samples],
                                  [s.boxes for s in samples])
    targets = torch.tensor([s.label for s in samples])
    with create("gradcam", pretrained.model, pretrained.default_layer) as explainer:
        maps = explainer(inputs, targets).maps
    drop = confidence_change(pretrained.model, inputs, maps, targets,
                             probability=probability).drop
    curves = deletion_insertion(pretrained.model, inputs, maps, targets, steps=STEPS,
                                probability=probability)
    return inputs, drop, curves.deletion_auc


def test_a_sigmoid_run_stores_the_sigmoid_numbers_and_its_head(tmp_path):
    torch.manual_seed(0)
    softmax_model = colour_classifier()
    sigmoid_model = dataclasses.replace(softmax_model, probability="sigmoid")
    samples = toy_samples()[:2]  # both labelled
    run = evaluate(sigmoid_model, Listed(samples), "gradcam", out_dir=tmp_path / "sigmoid",
                   metrics="faithfulness,deletion", deletion_steps=STEPS, progress=False)
    assert run.config["probability"] == "sigmoid"
    assert "- p_c read by: `sigmoid`" in (tmp_path / "sigmoid" / "summary.md").read_text()
    assert "<th>p_c read by (the model's head)</th><td>sigmoid</td>" in \
        run.report.read_text(encoding="utf-8")
    rows, images = stored_rows(tmp_path / "sigmoid")
    inputs, drop, auc = direct_values(sigmoid_model, samples, "sigmoid")
    _, soft_drop, soft_auc = direct_values(softmax_model, samples, "softmax")
    for index, sample in enumerate(samples):
        assert rows[(sample.id, "average_drop")] == pytest.approx(float(drop[index]), abs=1e-9)
        assert rows[(sample.id, "deletion_auc")] == pytest.approx(float(auc[index]), abs=1e-9)
        # and not the softmax numbers
        assert abs(rows[(sample.id, "deletion_auc")] - float(soft_auc[index])) > 0.01
    assert any(abs(rows[(s.id, "average_drop")] - float(soft_drop[i])) > 1
               for i, s in enumerate(samples))
    # predictions: the largest logit, its sigmoid stored as the probability
    with torch.no_grad():
        logits = softmax_model.model(inputs).double()
    for index, sample in enumerate(samples):
        row = images[sample.id]
        assert row.predicted == int(logits[index].argmax())
        assert row.predicted_probability == pytest.approx(
            float(torch.sigmoid(logits[index].max())), rel=1e-6)
    # a softmax run in the same directory is another configuration: refused, naming it
    with pytest.raises(ConfigurationMismatchError, match="probability: 'sigmoid' -> 'softmax'"):
        evaluate(softmax_model, Listed(samples), "gradcam", out_dir=tmp_path / "sigmoid",
                 metrics="faithfulness,deletion", deletion_steps=STEPS, progress=False)


def test_a_softmax_run_is_unchanged(tmp_path):
    torch.manual_seed(0)
    pretrained = colour_classifier()
    samples = toy_samples()[:2]
    run = evaluate(pretrained, Listed(samples), "gradcam", out_dir=tmp_path,
                   metrics="faithfulness", progress=False)
    assert run.config["probability"] == "softmax"
    rows, _ = stored_rows(tmp_path)
    _, drop, _ = direct_values(pretrained, samples, "softmax")
    for index, sample in enumerate(samples):
        assert rows[(sample.id, "average_drop")] == pytest.approx(float(drop[index]), abs=1e-9)


def test_a_single_logit_model_is_refused_with_the_way_out(tmp_path):
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                            nn.Flatten(), nn.Linear(4, 1)).eval()
    binary = PretrainedModel("binary", network, None, None, ["red", "green", "blue"], "1",
                             input_size=16, mean=(0.0,) * 3, std=(1.0,) * 3,
                             probability="sigmoid")
    with pytest.raises(ValueError, match=r"one output.*\[-z, z\].*probability='sigmoid'"):
        evaluate(binary, Listed(toy_samples()[:1]), "gradcam", out_dir=tmp_path,
                 metrics="faithfulness", progress=False)


def test_a_run_stored_before_the_head_was_recorded_continues_as_softmax(tmp_path):
    import json
    import sqlite3

    pretrained = colour_classifier()
    data = Listed(toy_samples()[:1])
    evaluate(pretrained, data, "gradcam", out_dir=tmp_path, metrics="faithfulness",
             progress=False, gallery_images=0)
    database = tmp_path / "results.sqlite"
    with sqlite3.connect(database) as connection:  # as a database of an older axiomcam
        config = json.loads(connection.execute("SELECT config FROM run").fetchone()[0])
        del config["probability"]
        connection.execute("UPDATE run SET config = ?", (json.dumps(config),))
    run = evaluate(pretrained, data, "gradcam", out_dir=tmp_path, metrics="faithfulness",
                   progress=False, gallery_images=0)
    assert run.config["probability"] == "softmax"
    with pytest.raises(ConfigurationMismatchError, match="probability: 'softmax' -> 'sigmoid'"):
        evaluate(dataclasses.replace(pretrained, probability="sigmoid"), data, "gradcam",
                 out_dir=tmp_path, metrics="faithfulness", progress=False, gallery_images=0)
