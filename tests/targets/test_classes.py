""":class:`~axiomcam.targets.ClassScore`: hand values, the class of the image each row
copies, the same maps as class targets, clear errors."""

from __future__ import annotations

import math

import pytest
import torch
from hand_reference import TinyNet, assert_relative, hand_cam
from torch import nn

import axiomcam
from axiomcam.targets import ClassScore


@pytest.fixture(scope="module")
def tiny() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return TinyNet().eval(), torch.rand(2, 3, 8, 8)


def test_class_score_hand_values_logit_and_softmax():
    logits = torch.tensor([[1.0, 3.0, 0.0], [2.0, 0.0, 5.0]])
    assert ClassScore([1, 2])(logits).tolist() == [3.0, 5.0]
    assert ClassScore(0)(logits).tolist() == [1.0, 2.0]
    assert ClassScore(torch.tensor([2, 0]))({"logits": logits}).tolist() == [0.0, 2.0]
    probabilities = ClassScore([1, 2], softmax=True)(logits)
    expected = [math.exp(3) / (math.exp(1) + math.exp(3) + 1),
                math.exp(5) / (math.exp(2) + 1 + math.exp(5))]
    assert probabilities.tolist() == pytest.approx(expected, rel=1e-6)


def test_class_score_uses_the_class_of_the_image_each_row_copies():
    logits = torch.tensor([[1.0, 3.0, 0.0], [2.0, 0.0, 5.0], [7.0, 8.0, 9.0]])
    target = ClassScore([0, 2])  # image 0: class 0, image 1: class 2
    # three perturbed copies of image 1
    assert target(logits, torch.tensor([1, 1, 1])).tolist() == [0.0, 5.0, 9.0]
    assert target(logits, torch.tensor([0, 1, 0])).tolist() == [1.0, 5.0, 7.0]


def test_class_score_equals_class_targets_for_gradient_and_perturbation_methods(tiny):
    model, inputs = tiny
    classes = [2, 0]
    for method in ("gradcam", "ablationcam"):
        by_index = axiomcam.explain(model, inputs, method=method, target_layer="features.2",
                                    targets=classes)
        by_target = axiomcam.explain(model, inputs, method=method,
                                     target_layer="features.2", targets=ClassScore(classes))
        torch.testing.assert_close(by_target.maps, by_index.maps)
        torch.testing.assert_close(by_target.scores, by_index.scores)
    # Score-CAM scores class targets by their softmax probability: the same as softmax=True
    by_index = axiomcam.explain(model, inputs, method="scorecam", target_layer="features.2",
                                targets=classes)
    by_target = axiomcam.explain(model, inputs, method="scorecam", target_layer="features.2",
                                 targets=ClassScore(classes, softmax=True))
    torch.testing.assert_close(by_target.maps, by_index.maps)
    torch.testing.assert_close(by_target.channel_weights, by_index.channel_weights)


def test_class_score_softmax_explains_the_probability(tiny):
    model, inputs = tiny
    exp = axiomcam.explain(model, inputs, method="gradcam", target_layer="features.2",
                           targets=ClassScore(1, softmax=True))
    with torch.no_grad():
        expected = torch.softmax(model(inputs), dim=1)[:, 1]
    torch.testing.assert_close(exp.scores, expected)
    weights, raw = hand_cam(model, inputs, model.features[2],
                            lambda out: torch.softmax(out, dim=1)[:, 1], "gradcam")
    assert_relative(exp.channel_weights, weights, 1e-5)
    assert_relative(exp.raw, raw, 1e-5)


def test_class_score_bad_input():
    with pytest.raises(ValueError, match=r"class 3 is out of range: the output has 3 classes"):
        ClassScore([0, 3])(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"ClassScore needs a model output of shape "
                                         r"\(N, num_classes\), or \(N,\) for one logit; "
                                         r"this output has shape \(2, 3, 4, 4\)"):
        ClassScore(0)(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="classes must be >= 0, got -1"):
        ClassScore(-1)
    with pytest.raises(TypeError, match=r"dtype torch\.float32"):
        ClassScore(torch.tensor([1.0]))
    with pytest.raises(TypeError, match="not a bool"):
        ClassScore(True)
    with pytest.raises(ValueError, match="holds data for 2 images but the output has 3 rows"):
        ClassScore([0, 1])(torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"data for 2 images \(0..1\); it was asked about "
                                         r"image 2"):
        ClassScore([0, 1])(torch.zeros(1, 4), torch.tensor([2]))
    with pytest.raises(ValueError, match=r"image_indices must be \(2,\) integers"):
        ClassScore(0)(torch.zeros(2, 4), torch.tensor([0]))
