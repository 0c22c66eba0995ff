""":class:`~axiomcam.targets.YoloBox` and :func:`~axiomcam.targets.yolo_detections` on
Ultralytics YOLO detectors built from their yaml files (random weights, nothing downloaded):
hand values, the detections of ultralytics' own non-maximum suppression, maps equal to a
reference computed by hand, the default layer and why, the ``YOLO(...)`` wrapper, clear
errors."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hand_reference import assert_relative, calibrate_batchnorm, hand_cam, hand_maps
from torch import nn
from torchvision.ops import box_iou as torchvision_box_iou

import axiomcam
from axiomcam.layers import find_default_layer
from axiomcam.targets import YoloBox, yolo_detections

SIZE = 128  # 16x16 + 8x8 + 4x4 = 336 anchors at strides 8, 16, 32


def ultralytics_module(name: str):
    """``name`` (a module of ultralytics, the yolo extra, in dev), imported offline.

    Importing ultralytics sets numpy's and torch's print options for the whole process
    (floats as ``{:11.5g}``, lines of 320 characters); they are put back, so that the
    doctests that run later in the same process print as usual."""
    os.environ.setdefault("YOLO_OFFLINE", "1")  # no DNS check when ultralytics is imported
    numpy_options = np.get_printoptions()
    module = pytest.importorskip(name)
    np.set_printoptions(**numpy_options)
    torch.set_printoptions(profile="default")
    return module


def build_yolo(config: str = "yolov8n.yaml", classes: int = 5) -> nn.Module:
    """A YOLO ``DetectionModel`` from ultralytics' yaml (random weights, offline), its
    BatchNorms given the statistics of a noise batch: with running mean 0 / variance 1
    the activations of the random network fade to 1e-10 before the head."""
    tasks = ultralytics_module("ultralytics.nn.tasks")
    model = tasks.DetectionModel(config, nc=classes, verbose=False)
    calibrate_batchnorm(model, torch.rand(4, 3, SIZE, SIZE), random_affine=False)
    return model.eval()


@pytest.fixture(scope="module")
def yolo() -> tuple[nn.Module, torch.Tensor, tuple]:
    """YOLOv8n with 5 classes, two 128x128 images, their output."""
    torch.manual_seed(0)
    model = build_yolo()
    inputs = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        output = model(inputs)
    return model, inputs, output


def _predictions() -> torch.Tensor:
    """Two images, 2 classes, 3 anchors, boxes as centre x, centre y, width, height."""
    predictions = torch.zeros(2, 6, 3)
    predictions[0, :, 0] = torch.tensor([5.0, 5.0, 4.0, 4.0, 0.2, 0.7])  # (3, 3)-(7, 7)
    predictions[0, :, 2] = torch.tensor([6.0, 5.0, 4.0, 4.0, 0.6, 0.1])  # (4, 3)-(8, 7)
    predictions[1, :, 1] = torch.tensor([10.0, 10.0, 2.0, 4.0, 0.9, 0.3])  # (9, 8)-(11, 12)
    return predictions


def test_yolo_box_hand_values_and_gradient():
    predictions = _predictions().requires_grad_(True)
    # anchor 0, class 1: 0.7 + IoU((3, 3, 7, 7), (3, 2, 7, 9)) = 0.7 + 16/28
    target = YoloBox(0, 1, box=[3.0, 2.0, 7.0, 9.0])
    value = target(predictions[:1])
    assert value.tolist() == pytest.approx([0.7 + 16 / 28])
    value.sum().backward()
    gradient = predictions.grad[0]
    assert gradient[5, 0] == 1.0 and gradient[4].abs().sum() == 0  # class 1 only
    assert gradient[:, 1:].abs().sum() == 0  # anchor 0 only
    # d IoU / d h at h = 4: the predicted box lies inside the reference, intersection 4h =
    # its own area, union 28 whatever h: 4/28; the centre and width move it sideways
    assert gradient[3, 0].item() == pytest.approx(4 / 28)
    assert gradient[1, 0].item() == 0.0
    # one anchor, label and box per image; without a box, the probability alone
    per_image = YoloBox([2, 1], [0, 0], box=torch.tensor([[4.0, 3.0, 8.0, 7.0],
                                                           [9.0, 8.0, 11.0, 10.0]]))
    assert per_image(_predictions()).tolist() == pytest.approx([0.6 + 1.0, 0.9 + 0.5])
    assert YoloBox([2, 1], 0)(_predictions()).tolist() == pytest.approx([0.6, 0.9])
    # rows that are copies of image 1 read image 1's anchor, label and box
    copies = _predictions()[[1, 1]]
    assert per_image(copies, torch.tensor([1, 1])).tolist() == pytest.approx([1.4, 1.4])
    assert "anchor=[2, 1], label=[0, 0]" in repr(per_image)


def test_yolo_detections_hand_values_and_from_detection():
    predictions = _predictions()
    found = yolo_detections(predictions, conf_threshold=0.25)
    # image 0: anchor 0 (class 1, 0.7) and anchor 2 (class 0, 0.6) are different classes,
    # so both stay although they overlap (IoU 12/20); anchor 1 has nothing above 0.25
    assert found[0]["anchors"].tolist() == [0, 2]
    assert found[0]["labels"].tolist() == [1, 0]
    assert found[0]["scores"].tolist() == pytest.approx([0.7, 0.6])
    assert found[0]["boxes"].tolist() == [[3.0, 3.0, 7.0, 7.0], [4.0, 3.0, 8.0, 7.0]]
    assert found[1]["anchors"].tolist() == [1]
    assert [len(f["anchors"]) for f in yolo_detections(predictions, conf_threshold=0.65)] \
        == [1, 1]
    target = YoloBox.from_detection(predictions, [1, 0])  # the raw output: NMS inside
    assert target.anchors.tolist() == [2, 1] and target.labels.tolist() == [0, 0]
    assert target(predictions).tolist() == pytest.approx([1.6, 1.9])  # IoU 1
    alone = YoloBox.from_detection(found, 0, overlap=False)
    assert alone.boxes is None and alone(predictions).tolist() == pytest.approx([0.7, 0.9])


def test_yolo_detections_are_ultralytics_non_maximum_suppression(yolo):
    nms = ultralytics_module("ultralytics.utils.nms")
    _, _, output = yolo
    for conf, iou in ((0.25, 0.7), (0.05, 0.45)):
        found = yolo_detections(output, conf_threshold=conf, iou_threshold=iou)
        kept, anchors = nms.non_max_suppression(output[0], conf_thres=conf, iou_thres=iou,
                                                return_idxs=True)
        for ours, theirs, their_anchors in zip(found, kept, anchors, strict=True):
            assert len(ours["anchors"]) > 3
            assert ours["anchors"].tolist() == their_anchors.tolist()
            torch.testing.assert_close(ours["boxes"], theirs[:, :4])
            torch.testing.assert_close(ours["scores"], theirs[:, 4])
            assert ours["labels"].tolist() == theirs[:, 5].long().tolist()


def _hand_yolo_score(output, anchors, labels, boxes) -> torch.Tensor:
    """p + IoU written out: the anchor's column, its box from centre and size,
    torchvision's IoU."""
    values = []
    for image, (anchor, label, box) in enumerate(zip(anchors, labels, boxes, strict=True)):
        column = output[0][image, :, anchor]
        x, y, width, height = column[:4]
        predicted = torch.stack([x - width / 2, y - height / 2, x + width / 2, y + height / 2])
        values.append(column[4 + label] + torchvision_box_iou(predicted[None], box[None])[0, 0])
    return torch.stack(values)


def _moderate_detections(output) -> list[int]:
    """Each image's detection with the probability closest to 0.5 (a saturated sigmoid
    has no gradient to show)."""
    found = yolo_detections(output, conf_threshold=0.05)
    return [int((f["scores"] - 0.5).abs().argmin()) for f in found]


@pytest.mark.parametrize("method", ["gradcam", "xgradcam"])
def test_yolo_box_maps_equal_the_hand_reference(yolo, method):
    model, inputs, output = yolo
    found = yolo_detections(output, conf_threshold=0.05)
    positions = _moderate_detections(output)
    anchors = [int(f["anchors"][p]) for f, p in zip(found, positions, strict=True)]
    labels = [int(f["labels"][p]) for f, p in zip(found, positions, strict=True)]
    # image 1's box shifted: IoU < 1, so the overlap's gradient is not degenerate
    boxes = torch.stack([found[0]["boxes"][positions[0]],
                         found[1]["boxes"][positions[1]] + torch.tensor([3.0, 2.0, 3.0, 2.0])])
    target = YoloBox(anchors, labels, box=boxes)
    exp = axiomcam.explain(model, inputs, method=method, targets=target)
    assert exp.target_layer == "model.15"
    expected = _hand_yolo_score(output, anchors, labels, boxes)
    assert expected[1] < output[0][1, 4 + labels[1], anchors[1]] + 0.99  # IoU below 1
    torch.testing.assert_close(exp.scores, expected, rtol=1e-5, atol=1e-6)
    weights, raw = hand_cam(model, inputs, model.model[15],
                            lambda out: _hand_yolo_score(out, anchors, labels, boxes), method)
    assert exp.raw.shape == raw.shape == (2, 16, 16) and exp.maps.shape == (2, SIZE, SIZE)
    for image in range(2):
        assert_relative(exp.channel_weights[image], weights[image], 1e-4)
        assert_relative(exp.raw[image], raw[image], 1e-4)
    torch.testing.assert_close(exp.maps, hand_maps(raw, (SIZE, SIZE)), rtol=1e-4, atol=1e-4)
    assert (exp.maps.std(dim=(1, 2)) > 0.05).all()


def test_yolo_eigencam_and_score_cam(yolo):
    """Eigen-CAM (no target) is the first principal component of the layer's positions
    (numpy's SVD here); Score-CAM scores each image's masked copies with that image's
    detection (``image_indices``): the batch gives each image's own map."""
    model, inputs, output = yolo
    target = YoloBox.from_detection(output, _moderate_detections(output), conf_threshold=0.05)
    # Eigen-CAM ignores the target, but explain checks one against the output
    eigen = axiomcam.explain(model, inputs, "eigencam", targets=target)
    kept = {}
    handle = model.model[15].register_forward_hook(lambda m, a, out: kept.update(A=out))
    with torch.no_grad():
        model(inputs)
    handle.remove()
    for image in range(2):
        positions = kept["A"][image].flatten(1).T.double().numpy()
        centred = positions - positions.mean(0)
        projection = centred @ np.linalg.svd(centred, full_matrices=False)[2][0]
        mean = kept["A"][image].mean(0).flatten().double().numpy()
        if np.corrcoef(projection, mean)[0, 1] < 0:
            projection = -projection
        assert_relative(eigen.raw[image].double().flatten(), torch.from_numpy(projection), 1e-4)
    both = axiomcam.explain(model, inputs, "scorecam", targets=target)
    for image in range(2):
        alone = YoloBox(int(target.anchors[image]), int(target.labels[image]),
                        box=target.boxes[image])
        single = axiomcam.explain(model, inputs[image:image + 1], "scorecam", targets=alone)
        assert_relative(both.raw[image], single.raw[0], 1e-4)
    assert both.raw.flatten(1).std(1).min() > 0


def test_every_level_of_the_head_depends_on_the_default_layer(yolo):
    """``model.15`` feeds the anchors of all three strides; ``model.21``, the head's last
    input (a usual choice), only the stride-32 ones: a small object's detection, at
    stride 8, has no gradient there."""
    model, inputs, _ = yolo
    assert find_default_layer(model, inputs) == "model.15"
    kept = {}
    handles = [model.model[index].register_forward_hook(
        lambda m, a, out, index=index: kept.update({index: out})) for index in (15, 21)]
    try:
        output = model(inputs[:1])
    finally:
        for handle in handles:
            handle.remove()
    for anchor, stride in ((40, 8), (300, 16), (330, 32)):  # 0..255, 256..319, 320..335
        score = output[0][0, 4, anchor]
        at_15, at_21 = torch.autograd.grad(score, [kept[15], kept[21]], retain_graph=True,
                                           allow_unused=True, materialize_grads=True)
        assert at_15.abs().sum() > 0, stride
        assert (at_21.abs().sum() > 0) == (stride == 32), stride


@pytest.mark.parametrize(("config", "layer"), [("yolo11n.yaml", "model.16"),
                                               ("yolov5nu.yaml", "model.17")])
def test_default_layer_of_other_yolo_versions(config, layer):
    torch.manual_seed(0)
    model = build_yolo(config, classes=3)
    inputs = torch.rand(1, 3, 64, 64)
    assert find_default_layer(model, inputs) == layer
    with torch.no_grad():
        output = model(inputs)
    target = YoloBox.from_detection(output, 0, conf_threshold=0.0)
    exp = axiomcam.explain(model, inputs, "gradcam", targets=target)
    assert exp.target_layer == layer and exp.raw.shape == (1, 8, 8)
    assert float(exp.scores[0]) == pytest.approx(float(output[0][0, 4 + int(target.labels[0]),
                                                                 int(target.anchors[0])]) + 1.0)


def test_the_ultralytics_wrapper_is_explained_through_its_network():
    """``YOLO(...)``'s own forward is ``predict`` (NMS, Results): axiomcam takes
    ``.model``, the same maps as the network itself."""
    ultralytics = ultralytics_module("ultralytics")
    torch.manual_seed(0)
    wrapper = ultralytics.YOLO("yolov8n.yaml")
    calibrate_batchnorm(wrapper.model, torch.rand(4, 3, 64, 64), random_affine=False)
    inputs = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        output = wrapper.model.eval()(inputs)
    target = YoloBox.from_detection(output, _moderate_detections(output), conf_threshold=0.05)
    through_wrapper = axiomcam.explain(wrapper, inputs, "gradcam", targets=target)
    direct = axiomcam.explain(wrapper.model, inputs, "gradcam", targets=target)
    assert through_wrapper.target_layer == "model.15"
    torch.testing.assert_close(through_wrapper.raw, direct.raw)
    assert direct.raw.flatten().std() > 0


def test_yolo_bad_input(yolo):
    model, inputs, output = yolo
    with pytest.raises(ValueError, match=r"anchor 400 is out of range: the output has 336 "
                                         r"anchors \(0..335\)"):
        YoloBox(400, 0)(output)
    with pytest.raises(ValueError, match=r"YoloBox: class 7 is out of range: the output has 5 "
                                         r"classes \(0..4\)"):
        YoloBox(0, 7)(output)
    count = len(yolo_detections(output, conf_threshold=0.05)[1]["anchors"])
    with pytest.raises(ValueError, match=rf"image 1 has {count} detections \(index "
                                         rf"0..{count - 1}\); there is no detection {count}"):
        YoloBox.from_detection(output, [0, count], conf_threshold=0.05)
    with pytest.raises(ValueError, match="image 0 has no detections; there is no detection 0"):
        YoloBox.from_detection(_predictions(), 0, conf_threshold=0.95)
    with pytest.raises(TypeError, match=r"YoloBox needs the raw output of an Ultralytics YOLO "
                                        r".* this output is a tensor \(2, 5\)"):
        YoloBox(0, 0)(torch.zeros(2, 5))
    with pytest.raises(TypeError, match="element 0 is a dict with keys"):
        YoloBox.from_detection([{"boxes": torch.zeros(1, 4), "labels": torch.zeros(1),
                                 "scores": torch.ones(1)}], 0)
    with pytest.raises(ValueError, match="YoloBox got 2 anchors, 3 labels"):
        YoloBox([1, 2], [0, 1, 2])
    with pytest.raises(ValueError, match=r"box \[3.0, 0.0, 1.0, 1.0\] is not x0 <= x1"):
        YoloBox(0, 0, box=[3.0, 0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"conf_threshold must be in \[0, 1\), got 1.5"):
        yolo_detections(output, conf_threshold=1.5)
    with pytest.raises(ValueError, match=r"data for 2 images \(0..1\); it was asked about "
                                         r"image 2"):
        axiomcam.explain(model, torch.cat([inputs, inputs[:1]]), "gradcam",
                         targets=YoloBox([0, 1], 0))


def test_end_to_end_and_oriented_box_heads_are_refused_with_what_to_do():
    torch.manual_seed(0)
    model = build_yolo("yolo26n.yaml", classes=3)
    inputs = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        per_anchor = model(inputs)
    model.model[-1].end2end = True  # the one-to-one head's top-k rows instead
    with torch.no_grad():
        end_to_end = model(inputs)
    assert end_to_end[0].shape[-1] == 6
    with pytest.raises(ValueError, match=r"end-to-end head.*model.model\[-1\].end2end = False"):
        YoloBox(0, 0)(end_to_end)
    assert YoloBox(0, 0)(per_anchor).shape == (1,)
    obb = (torch.zeros(1, 8, 84), {"boxes": torch.zeros(1, 64, 84),
                                   "scores": torch.zeros(1, 3, 84), "angle": torch.zeros(1, 1, 84)})
    with pytest.raises(ValueError, match=r"oriented boxes \(OBB\)"):
        yolo_detections(obb)
