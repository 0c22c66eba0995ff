"""``axiomcam explain`` on sigmoid heads: a multi-label model (``--target above0.5``,
``--score sigmoid``, ``--head sigmoid``) and a single-logit binary model (``--target
positive,negative``); ``results.json`` says the head and the score, and its probabilities,
scores and raw maps are those of the same network explained in Python.  Every misuse is a
one-line usage error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_helpers import invoke, one_line_error
from torch import nn

import axiomcam
from axiomcam.targets import ClassScore, TopClasses
from axiomcam.workflows import (
    TargetChoice,
    choose_head,
    network_inputs,
    parse_targets,
    probabilities_from_logits,
)

SIZE = 64
LAYER = "3"  # the second convolution's ReLU: a 7x7 grid at 64 pixels




def small_cnn(outputs: int, squeeze: bool = False) -> nn.Sequential:
    layers = [nn.Conv2d(3, 8, 3, stride=4), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2), nn.ReLU(),
              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, outputs)]
    return nn.Sequential(*layers, *([nn.Flatten(0)] if squeeze else [])).eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two photographs, a 6-label model whose labels straddle 0.5 differently on each, and
    a binary model returning one logit per image, ``(B,)``, saved whole."""
    from axiomcam.images import sample_image

    folder = tmp_path_factory.mktemp("sigmoid")
    photos = []
    for name in ("chelsea", "coffee"):
        sample_image(name).save(folder / f"{name}.png")
        photos.append(folder / f"{name}.png")
    torch.manual_seed(0)
    labels, binary = small_cnn(6), small_cnn(1, squeeze=True)
    pretrained = axiomcam.models.load(_save(labels, folder / "labels.pt"), size=SIZE)
    inputs = network_inputs(pretrained, [_open(path) for path in photos])
    with torch.no_grad():
        logits = labels(inputs)
        # centre each label between the two photos: labels above 0.5 differ per image
        labels[-1].bias -= logits.mean(dim=0)
        binary[-2].bias -= binary(inputs).mean()  # one photo on each side
    return {"photos": photos, "labels": _save(labels, folder / "labels.pt"),
            "binary": _save(binary, folder / "binary.pt"), "inputs": inputs,
            "models": {"labels": labels, "binary": binary}}


def _save(model: nn.Module, path) -> str:
    torch.save(model, path)
    return str(path)


def _open(path):
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


def run(files, model: str, out, *options: str) -> dict:
    result = invoke("explain", *map(str, files["photos"]), "--model", files[model],
                    "--size", str(SIZE), "--method", "gradcam", "--layer", LAYER,
                    "--out", str(out), *options)
    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads((out / "results.json").read_text())
    report["stdout"] = result.stdout
    return report


def test_labels_above_a_threshold_with_sigmoid_scores(files, tmp_path):
    model, inputs = files["models"]["labels"], files["inputs"]
    report = run(files, "labels", tmp_path, "--target", "above0.5", "--score", "sigmoid")
    assert (report["targets"], report["head"], report["explained"]) == ("above0.5", "sigmoid",
                                                                         "sigmoid")
    assert report["score"] == "the model's output"
    assert "sigmoid head: sigmoid explained" in report["stdout"]
    with torch.no_grad():
        probabilities = torch.sigmoid(model(inputs))
    counts = []
    for image, record in enumerate(report["images"]):
        above = {c for c in range(6) if probabilities[image, c] >= 0.5}
        assert {entry["class_index"] for entry in record["maps"]} == above
        counts.append(len(above))
        for entry in record["top_classes"]:  # sigmoid probabilities, not softmax
            assert entry["probability"] == pytest.approx(
                float(probabilities[image, entry["index"]]), abs=1e-6)
        for entry in record["maps"]:
            c = entry["class_index"]
            assert entry["probability"] == pytest.approx(float(probabilities[image, c]),
                                                         abs=1e-6)
            assert entry["score"] == pytest.approx(float(probabilities[image, c]), abs=1e-6)
            assert entry["overlay"].endswith(f"_p{float(probabilities[image, c]):.2f}.png")
            expected = axiomcam.explain(model, inputs[image:image + 1], "gradcam", LAYER,
                                        targets=ClassScore(c, sigmoid=True)).raw[0]
            np.testing.assert_allclose(np.load(tmp_path / entry["raw"]), expected.numpy(),
                                       rtol=1e-4, atol=1e-7)
    assert counts[0] != counts[1] and max(counts) > 1  # padding was exercised


def test_several_labels_with_logit_and_probability_scores(files, tmp_path):
    model, inputs = files["models"]["labels"], files["inputs"]
    with torch.no_grad():
        logits = model(inputs)
    logit = run(files, "labels", tmp_path / "logit", "--target", "1,4", "--head", "sigmoid")
    sigmoid = run(files, "labels", tmp_path / "sigmoid", "--target", "1,4", "--score",
                  "probability", "--head", "sigmoid")
    assert (logit["head"], logit["explained"], sigmoid["explained"]) == ("sigmoid", "logit",
                                                                         "sigmoid")
    for image in range(2):
        for report, values in ((logit, logits), (sigmoid, torch.sigmoid(logits))):
            entries = report["images"][image]["maps"]
            assert [entry["class_index"] for entry in entries] == [1, 4]
            assert [entry["score"] for entry in entries] == pytest.approx(
                values[image, [1, 4]].tolist(), abs=1e-6)
            assert [entry["probability"] for entry in entries] == pytest.approx(
                torch.sigmoid(logits[image, [1, 4]]).tolist(), abs=1e-6)


def test_binary_model_positive_negative_and_the_predicted_side(files, tmp_path):
    model, inputs = files["models"]["binary"], files["inputs"]
    with torch.no_grad():
        z = model(inputs)
    assert z.shape == (2,) and z[0] * z[1] < 0
    report = run(files, "binary", tmp_path / "both", "--target", "positive,negative")
    assert (report["head"], report["explained"], report["targets"]) == ("sigmoid", "logit",
                                                                         [1, 0])
    for image, record in enumerate(report["images"]):
        positive, negative = record["maps"]
        assert (positive["class_name"], negative["class_name"]) == ("positive", "negative")
        assert (positive["score"], negative["score"]) == pytest.approx(
            (float(z[image]), -float(z[image])), abs=1e-6)
        assert (positive["probability"], negative["probability"]) == pytest.approx(
            (float(torch.sigmoid(z[image])), float(1 - torch.sigmoid(z[image]))), abs=1e-6)
        # Grad-CAM's raw maps of the two sides are opposite
        raw_positive = np.load(tmp_path / "both" / positive["raw"])
        np.testing.assert_allclose(np.load(tmp_path / "both" / negative["raw"]), -raw_positive,
                                   rtol=1e-5, atol=1e-9)
        assert np.abs(raw_positive).max() > 0
    predicted = run(files, "binary", tmp_path / "top", "--score", "probability")
    sides = [record["maps"][0]["class_name"] for record in predicted["images"]]
    assert sides == ["positive" if float(side) >= 0 else "negative" for side in z]
    assert [record["maps"][0]["score"] for record in predicted["images"]] == pytest.approx(
        torch.sigmoid(z.abs()).tolist(), abs=1e-6)


@pytest.mark.parametrize(("model", "arguments", "message"), [
    ("binary", ["--head", "softmax"], "the model has one output, a binary head"),
    ("binary", ["--score", "softmax"], "the model has one output, a binary head"),
    ("binary", ["--target", "2"], "target class 2 is out of range: the model has 2 classes"),
    ("binary", ["--target", "sideways"], "unknown class name 'sideways'"),
    ("labels", ["--target", "above1.5"], "T in aboveT must be a sigmoid probability between "
                                         "0 and 1"),
    ("labels", ["--target", "above0"], "T in aboveT must be a sigmoid probability"),
    ("labels", ["--target", "abovehalf"], "T in aboveT must be a sigmoid probability"),
    ("labels", ["--target", "above0.5,3"], "aboveT cannot be combined with other targets"),
    ("labels", ["--target", "above0.5", "--head", "softmax"], "needs a sigmoid head"),
    ("labels", ["--score", "sigmoid", "--head", "softmax"],
     "--score sigmoid explains a sigmoid head's probability, but --head softmax"),
    ("labels", ["--score", "softmax", "--head", "sigmoid"],
     "--score softmax explains a softmax head's probability, but --head sigmoid"),
    ("labels", ["--head", "tanh"], "Invalid value for '--head'"),
])
def test_misuse_is_a_one_line_usage_error(files, tmp_path, model, arguments, message):
    result = invoke("explain", str(files["photos"][0]), "--model", files[model], "--size",
                    str(SIZE), "--out", str(tmp_path), *arguments)
    assert result.exit_code == 2, result.output + result.stderr
    assert message in one_line_error(result)
    assert not (tmp_path / "results.json").exists()


def test_compare_names_a_binary_models_sides_and_refuses_a_threshold(files, tmp_path):
    figure = tmp_path / "compare.png"
    result = invoke("compare", str(files["photos"][0]), "--model", files["binary"], "--size",
                    str(SIZE), "--methods", "gradcam,scorecam", "--layer", LAYER,
                    "--target", "negative", "--out", str(figure))
    assert result.exit_code == 0, result.stderr
    assert figure.is_file()
    refused = invoke("compare", str(files["photos"][0]), "--model", files["labels"], "--size",
                     str(SIZE), "--target", "above0.5", "--out", str(figure))
    assert refused.exit_code == 2
    assert "compare shows one class per image" in one_line_error(refused)


# ------------------------------------------------------------------ the workflow's parts


def test_parse_targets_and_choose_head():
    names = ["a", "b", "c"]
    assert parse_targets("above0.25", names) == TargetChoice(threshold=0.25)
    assert parse_targets("positive", ["class 0"]).classes == (1,)
    assert parse_targets("negative,cat", ["cat"]).classes == (0, 1)
    assert parse_targets("not cat", ["cat"]).classes == (0,)
    choice = choose_head(TargetChoice(threshold=0.5), None, "logit", False)
    assert (choice.head, choice.score, choice.explained) == ("sigmoid", "logit", "logit")
    choice = choose_head(TargetChoice(top=1), None, "probability", True)
    assert (choice.head, choice.explained) == ("sigmoid", "sigmoid")
    choice = choose_head(TargetChoice(top=1), None, "probability", False)
    assert (choice.head, choice.explained) == ("softmax", "softmax")
    # what the explainer gets: a sigmoid head's classes are always a ClassScore (no
    # softmax in any method), a softmax head's logits stay plain class indices
    assert isinstance(choose_head(TargetChoice(classes=(1,)), "sigmoid", "logit", False)
                      .spec(2, torch.device("cpu")), ClassScore)
    assert torch.is_tensor(TargetChoice(classes=(1,)).spec(2, torch.device("cpu")))
    with pytest.raises(ValueError, match="unknown score 'odds'"):
        choose_head(TargetChoice(top=1), None, "odds", False)
    # the loader's rule: an ONNX graph's Sigmoid tail is a sigmoid head; an output that
    # already is probabilities takes no head, probability score, threshold or binary view
    assert choose_head(TargetChoice(top=1), None, "logit", False, "sigmoid").head == "sigmoid"
    with pytest.raises(ValueError, match="its ONNX graph ends in a Sigmoid"):
        choose_head(TargetChoice(top=1), "softmax", "logit", False, "sigmoid")
    output = choose_head(TargetChoice(top=2), None, "logit", False, "output")
    assert (output.head, output.explained) == ("output", "logit")
    assert isinstance(output.spec(2, torch.device("cpu")), TopClasses)
    for head, score, choice, single in ((None, "probability", TargetChoice(top=1), False),
                                        ("sigmoid", "logit", TargetChoice(top=1), False),
                                        (None, "logit", TargetChoice(threshold=0.5), False),
                                        (None, "logit", TargetChoice(top=1), True)):
        with pytest.raises(ValueError, match=r"the model's output already is its "
                                             r"probabilities.*use --onnx-score logits"):
            choose_head(choice, head, score, single, "output")


def test_probabilities_from_logits_by_head():
    logits = torch.tensor([[2.0, -1.0, 0.0]])
    torch.testing.assert_close(probabilities_from_logits(logits), torch.softmax(logits, 1))
    torch.testing.assert_close(probabilities_from_logits(logits, head="sigmoid"),
                               torch.sigmoid(logits))
    probabilities = torch.tensor([[0.2, 0.0, 1.0]])  # "output": taken as they are...
    torch.testing.assert_close(probabilities_from_logits(probabilities, head="output"),
                               probabilities)
    with pytest.raises(ValueError, match=r"not probabilities: they lie in \[-1, 2\]"):
        probabilities_from_logits(logits, head="output")  # ...when they are probabilities
    with pytest.raises(ValueError, match="unknown head 'tanh': one of softmax, sigmoid"):
        probabilities_from_logits(logits, head="tanh")


def test_the_app_shows_a_sigmoid_heads_probabilities_and_refuses_a_binary_model(files):
    from axiomcam.app.explorer import Explorer
    from axiomcam.cli.model import with_head

    pretrained = axiomcam.models.load(files["labels"], size=SIZE)
    explorer = Explorer(with_head(pretrained, "sigmoid"))
    opened = explorer.open_image(_open(files["photos"][0]))
    with torch.no_grad():
        expected = torch.sigmoid(files["models"]["labels"](opened.inputs))[0]
    torch.testing.assert_close(opened.probabilities, expected)
    assert [entry["index"] for entry in opened.top_classes] == \
        expected.topk(5).indices.tolist()
    assert with_head(pretrained, None).probability == "softmax"
    refused = invoke("serve", "--model", files["binary"], "--size", str(SIZE), "--port", "0")
    assert refused.exit_code == 2
    assert "serve and evaluate do not take models with one output" in one_line_error(refused)


def test_evaluate_head_reaches_the_run(files, tmp_path):
    """``evaluate --head sigmoid``: the stored configuration says so, and the predictions'
    probabilities are the sigmoid of the largest logit; without it, the softmax; a binary
    model is refused with the way out."""
    from axiomcam.evaluation.inputs import evaluation_inputs
    from axiomcam.evaluation.store import ResultStore

    listing = tmp_path / "list.csv"
    listing.write_text("path,label\n" + "".join(f"{path},class {label}\n" for path, label
                                                 in zip(files["photos"], (1, 4), strict=True)))
    common = ("--model", files["labels"], "--size", str(SIZE), "--layer", LAYER, "--data",
              str(listing), "--methods", "gradcam", "--metrics", "faithfulness",
              "--gallery-images", "0")
    pretrained = axiomcam.models.load(files["labels"], size=SIZE)
    inputs, _ = evaluation_inputs(pretrained, [_open(path) for path in files["photos"]],
                                  [torch.zeros(0, 4)] * 2)
    with torch.no_grad():
        logits = files["models"]["labels"](inputs).double()
    for head, expected in (("sigmoid", torch.sigmoid(logits).amax(1)),
                           (None, torch.softmax(logits, 1).amax(1))):
        out = tmp_path / str(head)
        result = invoke("evaluate", *common, "--out", str(out),
                        *(["--head", head] if head else []))
        assert result.exit_code == 0, result.output + result.stderr
        with ResultStore.open(out) as store:
            assert store.config["probability"] == (head or "softmax")
            stored = [row.predicted_probability for row in store.images()]
        np.testing.assert_allclose(sorted(stored), sorted(expected.tolist()), rtol=1e-6)
    refused = invoke("evaluate", *common[:1], files["binary"], *common[2:], "--out",
                     str(tmp_path / "binary"))
    assert refused.exit_code == 2
    assert "evaluate do not take models with one output" in one_line_error(refused)


def test_the_apps_deletion_curves_read_the_sigmoid_head(files):
    """``serve --head sigmoid``: the deletion-curve area the app shows is the one of
    ``p_c = sigmoid(z_c)``, not of the softmax."""
    from axiomcam.app.explorer import Explorer
    from axiomcam.cli.model import with_head
    from axiomcam.metrics import deletion_insertion

    torch.manual_seed(0)
    pretrained = with_head(axiomcam.models.load(files["labels"], size=SIZE), "sigmoid")
    explorer = Explorer(pretrained)
    opened = explorer.open_image(_open(files["photos"][0]))
    [result] = explorer.explain(opened, 2, LAYER, ["gradcam"])
    classes = torch.tensor([2])
    maps = axiomcam.explain(pretrained.model, opened.inputs, "gradcam", LAYER, classes).maps
    by_head = {rule: float(deletion_insertion(
        pretrained.model, opened.inputs, maps, classes, steps=explorer.deletion_steps,
        probability=rule).deletion_auc[0]) for rule in ("sigmoid", "softmax")}
    assert result.deletion_auc == pytest.approx(by_head["sigmoid"], abs=1e-6)
    assert abs(by_head["sigmoid"] - by_head["softmax"]) > 0.01
