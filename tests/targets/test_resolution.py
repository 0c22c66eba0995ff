"""Target specs resolved against models beyond classifiers: the mistakes a user makes with
segmentation and detection models are clear errors."""

from __future__ import annotations

import pytest
import torch
from hand_reference import build_detector, build_segmentation
from torch import nn

import axiomcam
from axiomcam.targets import DetectionBox


@pytest.fixture(scope="module")
def segmentation() -> tuple[nn.Module, torch.Tensor]:
    """LR-ASPP MobileNetV3, random weights, 4 classes
    (:func:`hand_reference.build_segmentation`)."""
    return build_segmentation()


@pytest.fixture(scope="module")
def detector() -> tuple[nn.Module, torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Faster R-CNN MobileNetV3-320 FPN, random weights, 5 classes, every box kept
    (:func:`hand_reference.build_detector`)."""
    return build_detector()


def test_mistakes_with_segmentation_and_detection_models_are_clear_errors(segmentation,
                                                                        detector):
    """A target callable of the wrong shape, a non-differentiable target or output, class
    targets for a dense or list output, a layer off the differentiable path."""
    model, inputs = segmentation
    wrong = [
        # the class's score map instead of one number per image
        (lambda out: out["out"][:, 1], ValueError,
         r"a target callable must return one score per image, shape \(2,\); it returned "
         r"\(2, 64, 64\)"),
        (lambda out: out["out"].argmax(1).float().sum(dim=(1, 2)), ValueError,
         "does not depend differentiably on the target layer's output"),
        (lambda out: out["out"][:, 1].detach().sum(dim=(1, 2)), ValueError,
         "does not depend differentiably"),
        (1, ValueError, r"class targets need \(B, num_classes\) scores; the model returned "
                        r"tensor \(2, 4, 64, 64\)"),
    ]
    for targets, error, message in wrong:
        for method in ("gradcam", "xgradcam"):
            with pytest.raises(error, match=message):
                axiomcam.explain(model, inputs, method=method, target_layer="backbone.12",
                                 targets=targets)
    detector_model, images, detections = detector
    target = DetectionBox.from_detection(detections, 0)
    wrong = [
        ("backbone.body.16", lambda out: out, TypeError,
         r"a target callable must return a tensor of shape \(2,\), got list"),
        ("backbone.body.16", lambda out: torch.stack([d["scores"][:2] for d in out]),
         ValueError, r"one score per image, shape \(2,\); it returned \(2, 2\)"),
        ("backbone.body.16", None, ValueError, r"class targets need \(B, num_classes\) "
                                               r"scores; the model returned list of 2"),
        # the proposal network's proposals are detached: its layers are not on the path
        ("rpn.head.conv", target, ValueError,
         "does not depend on the target layer's output"),
    ]
    for layer, targets, error, message in wrong:
        with pytest.raises(error, match=message):
            axiomcam.explain(detector_model, images, method="gradcam", target_layer=layer,
                             targets=targets)
