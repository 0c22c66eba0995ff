"""Sigmoid, binary and multi-label heads: ``ClassScore(c, sigmoid=True)``, a single-logit
model's positive (``z``) and negative (``-z``) classes, several labels per image in one
pass, and :class:`~axiomcam.targets.LabelsAbove` (each image's labels above a threshold).

References: Grad-CAM by hand (:func:`hand_reference.hand_cam`: a hook and
``torch.autograd.grad``), Score-CAM by hand (a forward pass per masked copy), and the
closed forms ``d sigmoid(z) / dA = sigmoid'(z) dz/dA`` and ``d(-z)/dA = -dz/dA``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hand_reference import TinyNet, assert_relative, hand_cam
from torch import nn

import axiomcam
from axiomcam.targets import NEGATIVE, POSITIVE, ClassScore, LabelsAbove, TopClasses
from axiomcam.targets.selection import labels_above

LAYER = "features.2"


class BinaryNet(nn.Module):
    """TinyNet's features, a linear head with one logit: ``(B, 1)``, or ``(B,)`` with
    ``squeeze``.  The bias is set so that the batch's logits straddle 0 (both sides
    predicted)."""

    def __init__(self, squeeze: bool = False) -> None:
        super().__init__()
        self.features = TinyNet().features
        self.head = nn.Linear(5, 1)
        self.squeeze = squeeze

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit = self.head(self.features(x).mean(dim=(2, 3)))
        return logit[:, 0] if self.squeeze else logit


def binary_model(inputs: torch.Tensor, squeeze: bool = False) -> BinaryNet:
    model = BinaryNet(squeeze).eval()
    with torch.no_grad():
        logits = model(inputs).flatten()
        model.head.bias -= logits.median() + 1e-3  # about half the images on each side
    return model


def multi_label_model(labels: int = 6) -> nn.Module:
    model = TinyNet()
    model.head = nn.Linear(5, labels)
    return model.eval()


def hand_scorecam_weights(model: nn.Module, inputs: torch.Tensor, layer: nn.Module,
                          confidence) -> torch.Tensor:
    """Score-CAM's ``s_k = confidence(x * M_k) - confidence(0)`` for one image, one forward
    pass per channel (``M_k``: channel ``k`` upsampled bilinearly, min-max scaled)."""
    kept = {}
    handle = layer.register_forward_hook(lambda module, args, output: kept.update(A=output))
    try:
        with torch.no_grad():
            model(inputs)
            activations = kept["A"][0]
            baseline = confidence(model(torch.zeros_like(inputs)))[0]
            weights = []
            for channel in activations:
                mask = F.interpolate(channel[None, None], size=inputs.shape[2:],
                                     mode="bilinear", align_corners=False)[0, 0]
                span = mask.max() - mask.min()
                mask = (mask - mask.min()) / span if span > 0 else torch.zeros_like(mask)
                weights.append(confidence(model(inputs * mask))[0] - baseline)
    finally:
        handle.remove()
    return torch.stack(weights)


# ------------------------------------------------------------------ sigmoid probability


def test_sigmoid_target_gradient_is_sigmoid_prime_times_the_logits():
    """Grad-CAM of ``sigmoid(z_c)``: the hand computation of its gradient, which is
    ``sigmoid'(z_c) dz_c/dA`` (channel weights and raw map scaled by it, per image)."""
    torch.manual_seed(0)
    model, inputs = multi_label_model(), torch.rand(3, 3, 8, 8)
    classes = [4, 1, 2]
    by_sigmoid = axiomcam.explain(model, inputs, "gradcam", LAYER,
                                  targets=ClassScore(classes, sigmoid=True))
    by_logit = axiomcam.explain(model, inputs, "gradcam", LAYER, targets=classes)
    rows = torch.arange(3)
    with torch.no_grad():
        logits = model(inputs)[rows, classes]
    torch.testing.assert_close(by_sigmoid.scores, torch.sigmoid(logits))
    weights, raw = hand_cam(model, inputs, model.features[2],
                            lambda out: torch.sigmoid(out[rows, classes]), "gradcam")
    assert_relative(by_sigmoid.channel_weights, weights, 1e-5)
    assert_relative(by_sigmoid.raw, raw, 1e-5)
    slope = torch.sigmoid(logits) * (1 - torch.sigmoid(logits))
    assert (slope < 0.25).all() and (slope > 0.05).all()  # a real rescaling, not 1
    torch.testing.assert_close(by_sigmoid.channel_weights,
                               slope[:, None] * by_logit.channel_weights)
    torch.testing.assert_close(by_sigmoid.raw, slope[:, None, None] * by_logit.raw)
    # a positive rescaling of each image's map: the same min-max scaled maps
    torch.testing.assert_close(by_sigmoid.maps, by_logit.maps, rtol=0, atol=1e-5)
    assert by_sigmoid.targets.tolist() == classes


def test_class_score_of_top_classes_explains_their_probabilities():
    torch.manual_seed(1)
    model, inputs = multi_label_model(), torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        logits = model(inputs)
    top = axiomcam.explain(model, inputs, "gradcam", LAYER,
                           targets=ClassScore(TopClasses(2), sigmoid=True))
    expected = torch.sigmoid(logits).topk(2, dim=1)
    assert torch.equal(top.targets, logits.topk(2, dim=1).indices)
    torch.testing.assert_close(top.scores, expected.values)
    softmax = axiomcam.explain(model, inputs, "gradcam", LAYER,
                               targets=ClassScore(TopClasses(2), softmax=True))
    torch.testing.assert_close(softmax.scores, torch.softmax(logits, 1).topk(2, dim=1).values)
    assert not torch.allclose(softmax.scores, top.scores)


# ------------------------------------------------------------------ binary (one logit)


@pytest.mark.parametrize("squeeze", [False, True], ids=["(B, 1)", "(B,)"])
def test_binary_model_positive_and_negative_classes(squeeze):
    """Class 1 explains ``z``, class 0 explains ``-z``: Grad-CAM's and XGrad-CAM's channel
    weights of the negative are exactly the positive's negated, and so are the raw maps
    (before the ReLU); ``None`` explains each image's predicted side."""
    torch.manual_seed(2)
    inputs = torch.rand(6, 3, 8, 8)
    model = binary_model(inputs, squeeze)
    with torch.no_grad():
        z = model(inputs).flatten()
    assert (z > 0).any() and (z < 0).any()
    for method in ("gradcam", "xgradcam"):
        positive = axiomcam.explain(model, inputs, method, LAYER, targets=POSITIVE)
        negative = axiomcam.explain(model, inputs, method, LAYER, targets=NEGATIVE)
        torch.testing.assert_close(positive.scores, z)
        torch.testing.assert_close(negative.scores, -z)
        assert torch.equal(negative.channel_weights, -positive.channel_weights)
        torch.testing.assert_close(negative.raw, -positive.raw)
        weights, raw = hand_cam(model, inputs, model.features[2],
                                lambda out: out.flatten(), method)
        assert_relative(positive.channel_weights, weights, 1e-5)
        assert_relative(positive.raw, raw, 1e-5)
        torch.testing.assert_close(positive.logits, torch.stack([-z, z], dim=1))
        predicted = axiomcam.explain(model, inputs, method, LAYER)
        assert predicted.targets.tolist() == (z >= 0).long().tolist()
        torch.testing.assert_close(predicted.scores, z.abs())
        sides = torch.where(z >= 0, 1.0, -1.0)
        torch.testing.assert_close(predicted.raw, sides[:, None, None] * positive.raw)


def test_binary_sigmoid_form_is_one_minus_sigmoid_for_the_negative():
    torch.manual_seed(3)
    inputs = torch.rand(4, 3, 8, 8)
    model = binary_model(inputs)
    with torch.no_grad():
        z = model(inputs)[:, 0]
    positive = axiomcam.explain(model, inputs, "gradcam", LAYER,
                                targets=ClassScore(POSITIVE, sigmoid=True))
    negative = axiomcam.explain(model, inputs, "gradcam", LAYER,
                                targets=ClassScore(NEGATIVE, sigmoid=True))
    torch.testing.assert_close(positive.scores, torch.sigmoid(z))
    torch.testing.assert_close(negative.scores, 1 - torch.sigmoid(z))
    torch.testing.assert_close(negative.channel_weights, -positive.channel_weights)
    weights, _ = hand_cam(model, inputs, model.features[2],
                          lambda out: 1 - torch.sigmoid(out[:, 0]), "gradcam")
    assert_relative(negative.channel_weights, weights, 1e-5)
    # the called form agrees with the resolved one, on (N,) and (N, 1) outputs
    target = ClassScore([0, 1, 1, 0], sigmoid=True)
    expected = torch.sigmoid(torch.stack([-z, z, z, -z]).diagonal())
    torch.testing.assert_close(target(z[:, None]), expected)
    torch.testing.assert_close(target(z), expected)


def test_binary_scorecam_confidence_is_the_sigmoid():
    """Score-CAM's confidence of a single-logit model is ``sigmoid(z)`` (the softmax of one
    logit would be 1 and every weight 0); the negative's weights are the positive's
    negated, ``(1 - s) - (1 - s_0) = -(s - s_0)``."""
    torch.manual_seed(4)
    inputs = torch.rand(4, 3, 8, 8)
    model = binary_model(inputs)
    positive = axiomcam.explain(model, inputs[:1], "scorecam", LAYER, targets=POSITIVE)
    negative = axiomcam.explain(model, inputs[:1], "scorecam", LAYER, targets=NEGATIVE)
    expected = hand_scorecam_weights(model, inputs[:1], model.features[2],
                                     lambda out: torch.sigmoid(out[:, 0]))
    assert expected.abs().max() > 1e-4
    assert_relative(positive.channel_weights[0], expected, 1e-5)
    torch.testing.assert_close(negative.channel_weights, -positive.channel_weights)


# ------------------------------------------------------------------ several labels


@pytest.mark.parametrize("method", ["gradcam", "xgradcam", "ablationcam", "scorecam"])
def test_several_labels_in_one_pass_equal_separate_calls(method):
    torch.manual_seed(5)
    model, inputs = multi_label_model(), torch.rand(2, 3, 8, 8)
    labels = [[1, 4], [2, 3]]
    for sigmoid in (False, True):
        together = axiomcam.explain(model, inputs, method, LAYER,
                                    targets=ClassScore(labels, sigmoid=sigmoid))
        assert together.maps.shape == (2, 2, 8, 8)
        assert together.targets.tolist() == labels
        for column in range(2):
            alone = axiomcam.explain(model, inputs, method, LAYER, targets=ClassScore(
                [row[column] for row in labels], sigmoid=sigmoid))
            picked = together.target(column)
            torch.testing.assert_close(picked.raw, alone.raw)
            torch.testing.assert_close(picked.maps, alone.maps)
            torch.testing.assert_close(picked.scores, alone.scores)
            torch.testing.assert_close(picked.channel_weights, alone.channel_weights)
    # plain rows of labels are the (B, k) tensor
    rows = axiomcam.explain(model, inputs, method, LAYER, targets=labels)
    tensor = axiomcam.explain(model, inputs, method, LAYER, targets=torch.tensor(labels))
    torch.testing.assert_close(rows.maps, tensor.maps)


def test_labels_above_selects_exactly_the_labels_at_or_above_the_threshold():
    logits = torch.tensor([[2.0, -1.0, 0.0, 3.0, -0.5],     # 3 labels (0.0 is exactly 0.5)
                           [-2.0, -3.0, -1.0, -4.0, -0.1],  # none
                           [1.0, -1.0, -2.0, -3.0, -4.0]])  # 1
    classes, selected = labels_above(logits, LabelsAbove(0.5))
    assert classes.tolist() == [[3, 0, 2], [4, 2, 0], [0, 1, 2]]
    assert selected.tolist() == [[True, True, True], [False, False, False],
                                 [True, False, False]]
    classes, selected = labels_above(logits, LabelsAbove(0.9))  # sigmoid(2) = 0.88
    assert classes.tolist() == [[3], [4], [0]] and selected.tolist() == [[True], [False],
                                                                         [False]]
    classes, selected = labels_above(logits, LabelsAbove(0.5, max_labels=2))
    assert classes.tolist() == [[3, 0], [4, 2], [0, 1]]


def test_labels_above_explanation_against_the_sigmoid_and_class_targets():
    """On a model whose images have 0 to several labels: the selected classes are exactly
    ``{c : sigmoid(z_c) >= t}``, the others are the next-highest labels, ``n`` is the
    largest count, and the maps are those of the same classes given as a tensor."""
    torch.manual_seed(6)
    model, inputs = multi_label_model(8), torch.rand(5, 3, 8, 8)
    with torch.no_grad():
        logits = model(inputs)
        model.head.bias -= logits.mean(dim=0)  # each label on both sides over the batch
        logits = model(inputs)
    threshold = 0.5
    above = torch.sigmoid(logits) >= threshold
    counts = above.sum(dim=1)
    assert len(set(counts.tolist())) > 1  # the counts differ: the padding is exercised
    for sigmoid in (False, True):
        exp = axiomcam.explain(model, inputs, "gradcam", LAYER, targets=ClassScore(
            LabelsAbove(threshold), sigmoid=sigmoid) if sigmoid else LabelsAbove(threshold))
        n = max(1, int(counts.max()))
        assert exp.maps.shape == (5, n, 8, 8) and exp.selected.shape == (5, n)
        for image in range(5):
            chosen = exp.targets[image][exp.selected[image]].tolist()
            assert set(chosen) == set(torch.nonzero(above[image]).flatten().tolist())
            assert exp.targets[image].tolist() == logits[image].topk(n).indices.tolist()
        as_classes = axiomcam.explain(model, inputs, "gradcam", LAYER,
                                      targets=ClassScore(exp.targets, sigmoid=sigmoid))
        torch.testing.assert_close(exp.maps, as_classes.maps)
        torch.testing.assert_close(exp.scores, as_classes.scores)
        assert torch.equal(exp.target(0).selected, exp.selected[:, 0])


def test_scorecam_confidence_follows_the_target():
    """Score-CAM measures ``LabelsAbove``'s labels by their sigmoid (as a sigmoid
    ``ClassScore`` of the same classes), plain class indices by their softmax, and a
    ``ClassScore`` by the score it names."""
    torch.manual_seed(8)
    model, inputs = multi_label_model(), torch.rand(1, 3, 8, 8)
    above = axiomcam.explain(model, inputs, "scorecam", LAYER, targets=LabelsAbove(0.5))
    classes = above.targets
    sigmoid = axiomcam.explain(model, inputs, "scorecam", LAYER,
                               targets=ClassScore(classes, sigmoid=True))
    torch.testing.assert_close(above.channel_weights, sigmoid.channel_weights)
    label = int(classes[0, 0])
    expected = hand_scorecam_weights(model, inputs, model.features[2],
                                     lambda out: torch.sigmoid(out[:, label]))
    assert_relative(above.channel_weights[0, 0], expected, 1e-5)
    softmax = axiomcam.explain(model, inputs, "scorecam", LAYER, targets=label)
    expected = hand_scorecam_weights(model, inputs, model.features[2],
                                     lambda out: torch.softmax(out, 1)[:, label])
    assert_relative(softmax.channel_weights[0], expected, 1e-5)
    logit = axiomcam.explain(model, inputs, "scorecam", LAYER, targets=ClassScore(label))
    expected = hand_scorecam_weights(model, inputs, model.features[2],
                                     lambda out: out[:, label])
    assert_relative(logit.channel_weights[0], expected, 1e-5)


def test_a_shared_ablation_cache_keeps_logit_and_sigmoid_scores_apart():
    from axiomcam.methods import AblationCache, create

    torch.manual_seed(9)
    model, inputs = multi_label_model(), torch.rand(2, 3, 8, 8)
    cache = AblationCache()
    for sigmoid in (False, True):
        target = ClassScore([1, 3], sigmoid=sigmoid)
        alone = axiomcam.explain(model, inputs, "ablationcam", LAYER, targets=target)
        shared = create("ablationcam", model, LAYER)
        shared.ablation_cache = cache
        torch.testing.assert_close(shared(inputs, target).channel_weights,
                                   alone.channel_weights)
    assert len(cache) == 2


# ------------------------------------------------------------------ misuse


def test_misuse_is_a_clear_error():
    torch.manual_seed(7)
    inputs = torch.rand(2, 3, 8, 8)
    binary, multi = binary_model(inputs), multi_label_model()
    with pytest.raises(ValueError, match="softmax=True and sigmoid=True together"):
        ClassScore(1, softmax=True, sigmoid=True)
    with pytest.raises(ValueError, match="chooses its classes in the explanation's own "
                                         "forward pass: give it as targets="):
        ClassScore(TopClasses(2), sigmoid=True)(torch.zeros(2, 3))
    for targets in (2, ClassScore(2), [1, 2]):
        with pytest.raises(ValueError, match=r"target class 2 is out of range: the model "
                                             r"has a single logit z: class 0 is the negative "
                                             r"\(-z\), 1 the positive \(z\)"):
            axiomcam.explain(binary, inputs, "gradcam", LAYER, targets=targets)
    with pytest.raises(ValueError, match="ClassScore: class 2 is out of range: the output "
                                         r"has 2 classes \(0..1\)"):
        ClassScore(2)(torch.zeros(3, 1))
    for targets in (ClassScore(1, softmax=True), ClassScore(TopClasses(1), softmax=True)):
        with pytest.raises(ValueError, match=r"softmax=True on a single-logit \(binary\) "
                                             r"output: the softmax of one logit is always 1"):
            axiomcam.explain(binary, inputs, "gradcam", LAYER, targets=targets)
    with pytest.raises(ValueError, match="softmax=True on a single-logit"):
        ClassScore(0, softmax=True)(torch.zeros(3))
    for threshold in (0, 1, 1.5, -0.1, float("nan"), "0.5", True):
        with pytest.raises(ValueError, match=r"threshold must be a sigmoid probability in "
                                             rf"\(0, 1\).*got {threshold!r}"):
            LabelsAbove(threshold)
    with pytest.raises(ValueError, match="max_labels must be a positive int or None, got 0"):
        LabelsAbove(0.5, max_labels=0)
    with pytest.raises(ValueError, match="targets has rows of 1, 2 classes: give the same "
                                         "number of classes for every image"):
        axiomcam.explain(multi, inputs, "gradcam", LAYER, targets=[[1], [2, 3]])
    with pytest.raises(ValueError, match="classes has rows of 1, 2 classes"):
        ClassScore([[1], [2, 3]])
    with pytest.raises(TypeError, match=r"integer class indices, got 2.0 in \[1, 2.0\]"):
        axiomcam.explain(multi, inputs, "gradcam", LAYER, targets=[[1, 2.0], [2, 3]])
    with pytest.raises(ValueError, match=r"got 3 targets for a batch of 2 images"):
        axiomcam.explain(multi, inputs, "gradcam", LAYER, targets=[[1], [2], [3]])
    with pytest.raises(ValueError, match="class 6 is out of range: the model has 6 classes"):
        axiomcam.explain(multi, inputs, "gradcam", LAYER, targets=ClassScore([[1, 6], [2, 3]]))
    squeezed = nn.Sequential(multi, nn.Flatten(0))  # (1, 6) -> (6,): not one logit per image
    with pytest.raises(ValueError, match=r"class scores of shape \(6,\) for a batch of 1 "
                                         "images: class targets need one row per image"):
        axiomcam.explain(squeezed, inputs[:1], "gradcam", f"0.{LAYER}")
