""":class:`~axiomcam.targets.DetectionBox` and :func:`~axiomcam.targets.box_iou`: hand
values, the box of the image each row copies, no match, clear errors, and explanations of
random-weight torchvision detectors checked against a reference computed by hand."""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision
from hand_reference import assert_relative, build_detector, hand_cam, hand_maps
from torch import nn
from torchvision.ops import box_iou as torchvision_box_iou

import axiomcam
from axiomcam.methods import AxiomCamWarning
from axiomcam.targets import DetectionBox, box_iou


@pytest.fixture(scope="module")
def detector() -> tuple[nn.Module, torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Faster R-CNN MobileNetV3-320 FPN, random weights, 5 classes, every box kept
    (:func:`hand_reference.build_detector`)."""
    return build_detector()


def _detections(requires_grad: bool = False) -> list[dict[str, torch.Tensor]]:
    return [
        {"boxes": torch.tensor([[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 4.0, 2.0],
                                [10.0, 10.0, 12.0, 12.0]], requires_grad=requires_grad),
         "labels": torch.tensor([1, 2, 2]),
         "scores": torch.tensor([0.9, 0.6, 0.3], requires_grad=requires_grad)},
        {"boxes": torch.tensor([[10.0, 10.0, 14.0, 12.0]], requires_grad=requires_grad),
         "labels": torch.tensor([1]),
         "scores": torch.tensor([0.8], requires_grad=requires_grad)},
    ]


def test_box_iou_hand_values():
    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0], [5.0, 5.0, 6.0, 6.0],
                          [0.0, 0.0, 0.0, 0.0]])
    iou = box_iou(boxes, torch.tensor([1.0, 0.0, 3.0, 2.0]))
    assert iou.tolist() == pytest.approx([2 / 6, 2 / 6, 0.0, 0.0])
    degenerate = box_iou(torch.zeros(1, 4), torch.zeros(4))  # empty union: 0, not NaN
    assert degenerate.tolist() == [0.0]
    torch.testing.assert_close(iou[:3], torchvision_box_iou(boxes[:3], boxes.new_tensor(
        [[1.0, 0.0, 3.0, 2.0]]))[:, 0])


def test_detection_box_hand_values():
    detections = _detections()
    # label 2 boxes: [0,0,4,2] IoU with [0,0,4,3] = 8/12; [10,10,12,12] IoU 0
    assert DetectionBox([0.0, 0.0, 4.0, 3.0], 2)(detections[:1]).tolist() == pytest.approx(
        [0.6 + 8 / 12])
    # label 1 would match [0,0,4,4] with IoU 12/16
    assert DetectionBox([0.0, 0.0, 4.0, 3.0], 1)(detections[:1]).tolist() == pytest.approx(
        [0.9 + 12 / 16])
    # the threshold: IoU 12/16 = 0.75 passes 0.75 and fails 0.76
    assert DetectionBox([0.0, 0.0, 4.0, 3.0], 1, iou_threshold=0.75)(
        detections[:1]).tolist() == pytest.approx([1.65])
    with pytest.warns(AxiomCamWarning, match="no detection of label 1"):
        missed = DetectionBox([0.0, 0.0, 4.0, 3.0], 1, iou_threshold=0.76)(detections[:1])
    assert missed.tolist() == [0.0]
    # one box and label per image
    target = DetectionBox(torch.tensor([[0.0, 0.0, 4.0, 4.0], [10.0, 10.0, 13.0, 12.0]]),
                          torch.tensor([1, 1]))
    assert target(detections).tolist() == pytest.approx([0.9 + 1.0, 0.8 + 6 / 8])


def test_detection_box_uses_the_box_of_the_image_each_row_copies():
    detections = _detections()
    target = DetectionBox(torch.tensor([[0.0, 0.0, 4.0, 4.0], [10.0, 10.0, 13.0, 12.0]]),
                          [1, 1])
    copies = [detections[1], detections[1], detections[0]]  # all copies of image 1
    with pytest.warns(AxiomCamWarning, match="in an output of image 1"):
        values = target(copies, torch.tensor([1, 1, 1]))
    assert values.tolist() == pytest.approx([0.8 + 6 / 8, 0.8 + 6 / 8, 0.0])


def test_detection_box_gradient_reaches_score_and_box():
    detections = _detections(requires_grad=True)
    value = DetectionBox([0.0, 0.0, 4.0, 3.0], 2)(detections[:1])
    value.sum().backward()
    score_grad, box_grad = detections[0]["scores"].grad, detections[0]["boxes"].grad
    assert score_grad.tolist() == [0.0, 1.0, 0.0]
    # d IoU / d y1 of box [0,0,4,2] vs [0,0,4,3]: inter 4*y1, union 12 -> 4/12
    assert box_grad[1, 3].item() == pytest.approx(4 / 12)
    assert box_grad[[0, 2]].abs().sum() == 0


def test_detection_box_without_match_is_a_zero_that_keeps_the_graph_and_warns_once():
    detections = _detections(requires_grad=True)
    target = DetectionBox([20.0, 20.0, 30.0, 30.0], 1)
    with pytest.warns(AxiomCamWarning) as record:
        value = target(detections)
        again = target(detections)
    messages = [str(w.message) for w in record if issubclass(w.category, AxiomCamWarning)]
    assert len(messages) == 2  # once per image, not once per call
    assert "no detection of label 1 overlaps the box [20.0, 20.0, 30.0, 30.0]" in messages[0]
    assert "DetectionBox.from_detection" in messages[0]
    assert value.tolist() == [0.0, 0.0] and again.tolist() == [0.0, 0.0]
    assert value.requires_grad
    value.sum().backward()
    assert detections[0]["scores"].grad.abs().sum() == 0
    # an image without any detection: also 0
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
              "scores": torch.zeros(0)}]
    with pytest.warns(AxiomCamWarning, match=r"\(0 detections\)"):
        assert DetectionBox([0.0, 0.0, 1.0, 1.0], 1)(empty).tolist() == [0.0]


def test_from_detection_and_its_errors():
    detections = _detections()
    target = DetectionBox.from_detection(detections, [1, 0])
    assert target.boxes.tolist() == [[0.0, 0.0, 4.0, 2.0], [10.0, 10.0, 14.0, 12.0]]
    assert target.labels.tolist() == [2, 1]
    assert target(detections).tolist() == pytest.approx([1.6, 1.8])  # score + IoU 1
    assert "label=[2, 1]" in repr(target) and "iou_threshold=0.5" in repr(target)
    with pytest.raises(ValueError, match=r"image 1 has 1 detection \(index 0\); there is no "
                                         r"detection 1"):
        DetectionBox.from_detection(detections, 1)
    with pytest.raises(ValueError, match=r"image 0 has 3 detections \(index 0..2\); there is "
                                         r"no detection 5"):
        DetectionBox.from_detection(detections, [5, 0])
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
              "scores": torch.zeros(0)}]
    with pytest.raises(ValueError, match="image 0 has no detections; there is no detection 0"):
        DetectionBox.from_detection(empty, 0)
    with pytest.raises(ValueError, match="3 detection indices for 2 images"):
        DetectionBox.from_detection(detections, [0, 0, 0])


def test_detection_box_bad_input():
    with pytest.raises(TypeError, match=r"DetectionBox needs a list of dicts with 'boxes'.*"
                                        r"this output is a tensor \(2, 5\)"):
        DetectionBox([0.0, 0.0, 1.0, 1.0], 1)(torch.zeros(2, 5))
    with pytest.raises(TypeError, match=r"element 0 of this output is a dict with keys "
                                        r"\['boxes'\]"):
        DetectionBox([0.0, 0.0, 1.0, 1.0], 1)([{"boxes": torch.zeros(0, 4)}])
    with pytest.raises(ValueError, match=r"box \[3.0, 0.0, 1.0, 1.0\] is not x0 <= x1"):
        DetectionBox([3.0, 0.0, 1.0, 1.0], 1)
    with pytest.raises(ValueError, match=r"got torch.float32 of shape \(3,\)"):
        DetectionBox([0.0, 1.0, 1.0], 1)
    with pytest.raises(ValueError, match=r"iou_threshold must be in \(0, 1\], got 0"):
        DetectionBox([0.0, 0.0, 1.0, 1.0], 1, iou_threshold=0)
    with pytest.raises(ValueError, match="2 boxes but 3 labels"):
        DetectionBox(torch.zeros(2, 4), [1, 2, 3])
    with pytest.raises(ValueError, match=r"data for 2 images \(0..1\); it was asked about "
                                         r"image 4"):
        DetectionBox(torch.zeros(2, 4), 1)(_detections()[:1], torch.tensor([4]))


def _hand_detection_score(output, boxes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """score + IoU of the best-overlapping detection of the label, with torchvision's IoU."""
    values = []
    for found, box, label in zip(output, boxes, labels, strict=True):
        iou = torchvision_box_iou(found["boxes"], box[None])[:, 0]
        candidates = torch.where(found["labels"] == label, iou.detach(), -1.0)
        best = int(candidates.argmax())
        assert candidates[best] >= 0.5
        values.append(found["scores"][best] + iou[best])
    return torch.stack(values)


@pytest.mark.parametrize("method", ["gradcam", "xgradcam"])
def test_detection_box_maps_equal_the_hand_reference(detector, method):
    model, inputs, detections = detector
    assert all(len(found["scores"]) > 1 for found in detections)
    # detection 0 of image 0 as it is; detection 1 of image 1 with its box shifted, so the
    # IoU term is < 1 and its gradient (box-regression agreement) is not degenerate
    boxes = torch.stack([detections[0]["boxes"][0], detections[1]["boxes"][1]
                         + torch.tensor([2.0, 1.0, 2.0, 1.0])])
    labels = torch.stack([detections[0]["labels"][0], detections[1]["labels"][1]])
    target = DetectionBox(boxes, labels)
    layer = "backbone.body.16"
    exp = axiomcam.explain(model, inputs, method=method, target_layer=layer, targets=target)
    expected_scores = _hand_detection_score(detections, boxes, labels)
    assert expected_scores[1] < detections[1]["scores"][1] + 1  # the IoU is below 1
    torch.testing.assert_close(exp.scores, expected_scores, rtol=1e-5, atol=1e-6)
    weights, raw = hand_cam(model, inputs, model.backbone.body["16"],
                            lambda out: _hand_detection_score(out, boxes, labels), method)
    assert exp.raw.shape == (2, 10, 14) and exp.maps.shape == (2, 96, 128)
    for image in range(2):
        assert_relative(exp.channel_weights[image], weights[image], 1e-5)
        assert_relative(exp.raw[image], raw[image], 1e-5)
    torch.testing.assert_close(exp.maps, hand_maps(raw, (96, 128)), rtol=1e-4, atol=1e-4)
    assert (exp.maps.std(dim=(1, 2)) > 0.05).all()  # not trivial


def test_detection_from_detection_explains_each_box(detector):
    model, inputs, detections = detector
    target = DetectionBox.from_detection(detections, 0)
    exp = axiomcam.explain(model, inputs, method="gradcam", target_layer="backbone.body.16",
                           targets=target)
    # the clean forward pass inside explain finds each box again: IoU 1
    torch.testing.assert_close(exp.scores, torch.stack([d["scores"][0] for d in detections])
                               + 1.0, rtol=1e-5, atol=1e-6)
    count = len(detections[1]["scores"])
    with pytest.raises(ValueError, match=rf"image 1 has {count} detections \(index "
                                         rf"0..{count - 1}\); there is no detection {count}"):
        DetectionBox.from_detection(detections, [0, count])


def test_detection_without_match_gives_zero_maps_with_warnings(detector):
    model, inputs, detections = detector
    box = detections[0]["boxes"][0] + 0.5  # IoU < 1 with every detection
    target = DetectionBox(box, int(detections[0]["labels"][0]), iou_threshold=1.0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        exp = axiomcam.explain(model, inputs[:1], method="gradcam",
                               target_layer="backbone.body.16", targets=target)
    messages = [str(w.message) for w in record if issubclass(w.category, AxiomCamWarning)]
    assert any("no detection of label" in m for m in messages)
    assert any("constant" in m for m in messages)  # the core's all-zero map warning
    assert exp.scores.tolist() == [0.0]
    assert (exp.maps == 0).all()


def test_the_default_layer_of_a_detector_is_its_backbones_last(detector):
    """Not the RoI pooling (one row per proposal) nor the proposal network (detached
    proposals): the last layer of ``backbone.body``, as named explicitly above."""
    model, inputs, detections = detector
    target = DetectionBox.from_detection(detections, 0)
    default = axiomcam.explain(model, inputs, method="gradcam", targets=target)
    named = axiomcam.explain(model, inputs, method="gradcam", target_layer="backbone.body.16",
                             targets=target)
    assert default.target_layer == "backbone.body.16"
    torch.testing.assert_close(default.raw, named.raw)


@pytest.mark.parametrize("builder", ["retinanet_resnet50_fpn", "fcos_resnet50_fpn"])
def test_detection_box_explains_retinanet_and_fcos_outputs_too(builder):
    """One-stage detectors return the same list of dicts; their scores come from the
    classification head on the FPN levels, so the map at the backbone's last stage is
    non-trivial and the default layer (``backbone.body.layer4``) is used."""
    torch.manual_seed(0)
    model = getattr(torchvision.models.detection, builder)(
        weights=None, weights_backbone=None, num_classes=3, score_thresh=0.0,
        min_size=96, max_size=128)
    model.eval()
    inputs = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        detections = model(inputs)
    target = DetectionBox.from_detection(detections, 0)
    boxes, labels = detections[0]["boxes"][:1], detections[0]["labels"][:1]
    for method in ("gradcam", "xgradcam"):
        explanation = axiomcam.explain(model, inputs, method=method, targets=target)
        assert explanation.target_layer == "backbone.body.layer4"
        expected = float(detections[0]["scores"][0]) + 1.0  # its own box: IoU 1
        assert float(explanation.scores[0]) == pytest.approx(expected, rel=1e-5)
        assert explanation.raw.flatten().std() > 0
        # the hand reference: hook + autograd of score + IoU (torchvision's box_iou)
        weights, raw = hand_cam(model, inputs, model.backbone.body.layer4,
                                lambda out: _hand_detection_score(out, boxes, labels), method)
        assert explanation.raw.shape == raw.shape == (1, 3, 4)
        assert_relative(explanation.channel_weights, weights, 1e-4)
        assert_relative(explanation.raw, raw, 1e-4)
        assert explanation.maps.shape == (1, 96, 128)
    with pytest.raises(ValueError, match=r"there is no detection \d+"):
        DetectionBox.from_detection(detections, len(detections[0]["boxes"]) + 5)
