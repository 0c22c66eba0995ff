"""Target helpers: hand-computed values on tiny tensors, the per-image data picked with
``image_indices``, clear errors, and explanations of random-weight torchvision
segmentation and detection models checked against a reference computed here by hand
(forward hook + ``torch.autograd.grad`` + the formulas of methods.md)."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.ops import box_iou as torchvision_box_iou

import axiomcam
from axiomcam.methods import AxiomCamWarning
from axiomcam.target_functions import (
    IGNORE_TOKEN,
    ClassScore,
    DetectionBox,
    EmbeddingSimilarity,
    SegmentationRegion,
    TokenLogProbability,
    box_iou,
    predicted_mask,
)

# ----------------------------------------------------------------------------- helpers


def calibrate_batchnorm(module: nn.Module, inputs: torch.Tensor,
                        random_affine: bool = True) -> None:
    """Give a random-weight network's BatchNorms the statistics of a noise batch (and
    random affine parameters): with running mean 0 / variance 1 the activations of a deep
    random network fade, every box or pixel gets the same score and gradients are ~1e-11."""
    generator = torch.Generator().manual_seed(123)
    norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative: one batch sets the statistics
    module.train()
    with torch.no_grad():
        module(inputs)
        for norm in norms if random_affine else ():
            norm.weight.copy_(0.5 + torch.rand(norm.num_features, generator=generator))
            norm.bias.copy_(0.2 * torch.randn(norm.num_features, generator=generator))
    module.eval()


def hand_cam(model: nn.Module, inputs: torch.Tensor, layer: nn.Module, score_of,
             method: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(channel weights (B, K), raw (B, h, w)) by hand: keep the layer's output with a
    forward hook, differentiate ``score_of(output).sum()`` with respect to it."""
    kept = {}

    def keep(module, args, output):
        kept["A"] = output

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            output = model(inputs)
            (gradients,) = torch.autograd.grad(score_of(output).sum(), kept["A"])
    finally:
        handle.remove()
    activations = kept["A"].detach()
    if method == "gradcam":
        weights = gradients.mean(dim=(2, 3))
    else:  # xgradcam: sum_ij (A_ij / sum_ab A_ab) G_ij, 0 where sum_ab A_ab = 0
        totals = activations.sum(dim=(2, 3), keepdim=True)
        shares = torch.where(totals == 0, torch.zeros_like(activations),
                             activations / torch.where(totals == 0, 1.0, totals))
        weights = (shares * gradients).sum(dim=(2, 3))
    raw = (weights[:, :, None, None] * activations).sum(dim=1)
    return weights, raw


def hand_maps(raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    maps = F.interpolate(torch.relu(raw)[:, None], size=size, mode="bilinear",
                         align_corners=False)[:, 0]
    low = maps.amin(dim=(1, 2), keepdim=True)
    return (maps - low) / (maps.amax(dim=(1, 2), keepdim=True) - low)


def assert_relative(actual: torch.Tensor, expected: torch.Tensor, tolerance: float) -> None:
    scale = expected.abs().max()
    assert scale > 0
    error = (actual - expected).abs().max() / scale
    assert error < tolerance, f"relative error {error:.2e}"


class TinyNet(nn.Module):
    """conv -> ReLU -> conv -> ReLU -> global average pool -> linear, 3 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(4, 5, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def tiny() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return TinyNet().eval(), torch.rand(2, 3, 8, 8)


# ----------------------------------------------------------------------------- ClassScore


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
                                         r"\(N, num_classes\); this output has shape "
                                         r"\(2, 3, 4, 4\)"):
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


# ----------------------------------------------------------------------------- segmentation


def _segmentation_scores() -> torch.Tensor:
    # (2 images, 3 classes, 2x2); image 0 predicts [[0, 1], [2, 2]], image 1 all class 1
    scores = torch.tensor([
        [[[5.0, 0.0], [0.0, 0.0]], [[1.0, 4.0], [0.0, 1.0]], [[0.0, 2.0], [3.0, 6.0]]],
        [[[0.0, 0.0], [0.0, 0.0]], [[1.0, 2.0], [3.0, 4.0]], [[-1.0, 1.0], [2.0, 3.0]]],
    ])
    return scores


def test_segmentation_region_hand_values():
    scores = _segmentation_scores()
    shared = torch.tensor([[1, 0], [0, 1]])  # 0/1 ints: the diagonal
    assert SegmentationRegion(1, shared)(scores).tolist() == [2.0, 5.0]
    per_image = torch.tensor([[[True, True], [False, False]], [[False, False], [True, False]]])
    assert SegmentationRegion(2, per_image)({"out": scores, "aux": None}).tolist() == [2.0, 2.0]
    # no mask: the predicted pixels of the class in the output being scored
    assert SegmentationRegion(2)(scores).tolist() == [9.0, 0.0]  # image 1 predicts no 2
    assert SegmentationRegion(1)(scores).tolist() == [4.0, 10.0]
    assert SegmentationRegion([0, 1])(scores).tolist() == [5.0, 10.0]
    assert predicted_mask(scores, 2).tolist() == [[[False, False], [True, True]],
                                                  [[False, False], [False, False]]]


def test_segmentation_empty_region_is_zero_with_a_graph():
    scores = _segmentation_scores().requires_grad_(True)
    value = SegmentationRegion(0)(scores)  # image 1 predicts no class 0
    assert value.tolist() == [5.0, 0.0]
    value.sum().backward()
    assert scores.grad[1].abs().sum() == 0
    assert scores.grad[0, 0, 0, 0] == 1 and scores.grad[0].sum() == 1


def test_segmentation_uses_the_mask_and_class_of_the_image_each_row_copies():
    scores = _segmentation_scores()
    masks = torch.tensor([[[1, 0], [0, 0]], [[0, 0], [0, 1]]])
    target = SegmentationRegion([0, 2], masks)
    copies = scores[[0, 0, 1]]  # say these are copies of image 1: mask 1 and class 2 apply
    # image 0's data (class 0 at (0, 0)) would give [5, 5, 0]
    assert target(copies, torch.tensor([1, 1, 1])).tolist() == [6.0, 6.0, 3.0]
    assert target(scores[[1, 0]], torch.tensor([0, 1])).tolist() == [0.0, 6.0]


def test_segmentation_bad_input():
    scores = _segmentation_scores()
    with pytest.raises(ValueError, match=r"SegmentationRegion needs a model output of shape "
                                         r"\(N, num_classes, H, W\); this output has shape "
                                         r"\(2, 5\)"):
        SegmentationRegion(1)(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"the mask is \(3, 3\) but the output's maps are "
                                         r"\(2, 2\)"):
        SegmentationRegion(1, torch.ones(3, 3, dtype=torch.bool))(scores)
    with pytest.raises(ValueError, match=r"class 3 is out of range: the output has 3 classes"):
        SegmentationRegion(3)(scores)
    with pytest.raises(ValueError, match=r"mask must be bool or 0/1, got the value 0\.5"):
        SegmentationRegion(1, torch.tensor([[0.5, 1.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"mask must be \(H, W\) or \(B, H, W\), got shape "
                                         r"\(4,\)"):
        SegmentationRegion(1, torch.ones(4))
    with pytest.raises(ValueError, match="holds data for 3 images but the output has 2 rows"):
        SegmentationRegion(1, torch.ones(3, 2, 2))(scores)
    with pytest.raises(ValueError, match="2 classes but 3 masks"):
        SegmentationRegion([1, 2], torch.ones(3, 2, 2))
    with pytest.raises(ValueError, match="predicted_mask needs a model output of shape"):
        predicted_mask(torch.zeros(2, 3), 1)


@pytest.fixture(scope="module")
def segmentation() -> tuple[nn.Module, torch.Tensor]:
    """LR-ASPP MobileNetV3 (the fastest torchvision segmentation model: ~0.02 s per
    64x64 image), random weights, 4 classes."""
    torch.manual_seed(0)
    model = torchvision.models.segmentation.lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=4)
    calibrate_batchnorm(model, torch.randn(8, 3, 64, 64))
    return model, torch.rand(2, 3, 64, 64)


@pytest.mark.parametrize("method", ["gradcam", "xgradcam"])
def test_one_pixel_region_equals_the_pixel_class_score(segmentation, method):
    model, inputs = segmentation
    c, i, j = 2, 20, 37
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[i, j] = True
    region = axiomcam.explain(model, inputs, method=method, target_layer="backbone.12",
                              targets=SegmentationRegion(c, mask))
    pixel = axiomcam.explain(model, inputs, method=method, target_layer="backbone.12",
                             targets=lambda out: out["out"][:, c, i, j])
    assert region.maps.shape == (2, 64, 64)
    assert (region.maps.amax(dim=(1, 2)) == 1).all()
    assert (region.maps.std(dim=(1, 2)) > 0.05).all()  # not trivial
    torch.testing.assert_close(region.scores, pixel.scores, rtol=0, atol=0)
    torch.testing.assert_close(region.channel_weights, pixel.channel_weights, rtol=1e-6,
                               atol=1e-9)
    torch.testing.assert_close(region.raw, pixel.raw, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(region.maps, pixel.maps, rtol=1e-5, atol=1e-6)


def test_segmentation_region_matches_hand_reference_and_predicted_mask(segmentation):
    model, inputs = segmentation
    with torch.no_grad():
        clean = model(inputs)
    mask = predicted_mask(clean, 1)
    assert mask.shape == (2, 64, 64) and mask.any()
    for method in ("gradcam", "xgradcam"):
        fixed = axiomcam.explain(model, inputs, method=method, target_layer="backbone.12",
                                 targets=SegmentationRegion(1, mask))
        predicted = axiomcam.explain(model, inputs, method=method, target_layer="backbone.12",
                                     targets=SegmentationRegion(1))
        # gradient methods score the clean output: its predicted region is the fixed mask
        torch.testing.assert_close(fixed.raw, predicted.raw)
        weights, raw = hand_cam(
            model, inputs, model.backbone["12"],
            lambda out: (out["out"][:, 1] * mask).sum(dim=(1, 2)), method)
        assert_relative(fixed.channel_weights, weights, 1e-5)
        assert_relative(fixed.raw, raw, 1e-5)


@pytest.mark.parametrize("builder", ["fcn_resnet50", "deeplabv3_resnet50"])
def test_fcn_and_deeplabv3_regions_equal_the_hand_reference(builder):
    """The segmentation models the issue names (random weights, 64 x 64): the default layer
    is the dilated ResNet's last stage, the maps at it equal the hand reference, and a
    one-pixel region is that pixel's class score."""
    torch.manual_seed(0)
    model = getattr(torchvision.models.segmentation, builder)(
        weights=None, weights_backbone=None, num_classes=4, aux_loss=False)
    calibrate_batchnorm(model, torch.randn(4, 3, 64, 64))
    inputs = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        clean = model(inputs)
    assert clean["out"].shape == (2, 4, 64, 64)  # upsampled to the input
    mask = predicted_mask(clean, 1)
    assert mask.any(dim=(1, 2)).all()
    pixel = torch.zeros(64, 64, dtype=torch.bool)
    pixel[40, 9] = True
    for method in ("gradcam", "xgradcam"):
        exp = axiomcam.explain(model, inputs, method=method, targets=SegmentationRegion(1, mask))
        assert exp.target_layer == "backbone.layer4"
        assert exp.raw.shape == (2, 8, 8) and exp.maps.shape == (2, 64, 64)
        assert (exp.maps.std(dim=(1, 2)) > 0.05).all()
        weights, raw = hand_cam(model, inputs, model.backbone["layer4"],
                                lambda out: (out["out"][:, 1] * mask).sum(dim=(1, 2)), method)
        assert_relative(exp.channel_weights, weights, 1e-5)
        assert_relative(exp.raw, raw, 1e-5)
        one = axiomcam.explain(model, inputs, method=method, targets=SegmentationRegion(2, pixel))
        score = axiomcam.explain(model, inputs, method=method,
                                 targets=lambda out: out["out"][:, 2, 40, 9])
        torch.testing.assert_close(one.scores, score.scores, rtol=0, atol=0)
        torch.testing.assert_close(one.raw, score.raw, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("method", ["scorecam", "ablationcam"])
def test_perturbation_methods_use_each_images_own_mask_and_class(segmentation, method):
    """Score-CAM / Ablation-CAM score batches of copies of one image: with per-image
    classes and masks, image 1 of a batch must get what image 1 alone gets."""
    model, inputs = segmentation
    # float64: Score-CAM's weights are differences of close region scores
    model, inputs = copy.deepcopy(model).double(), inputs.double()
    with torch.no_grad():
        clean = model(inputs)
    classes = [1, 3]
    masks = predicted_mask(clean, classes)
    masks[:, :32] = False  # a region, not a whole class: image 0's differs from image 1's
    batch = axiomcam.explain(model, inputs, method=method, target_layer="backbone.4",
                             targets=SegmentationRegion(classes, masks), progress=False)
    assert (batch.maps.std(dim=(1, 2)) > 0.05).all()
    for image in range(2):
        alone = axiomcam.explain(model, inputs[image:image + 1], method=method,
                                 target_layer="backbone.4", progress=False,
                                 targets=SegmentationRegion(classes[image], masks[image]))
        torch.testing.assert_close(batch.channel_weights[image], alone.channel_weights[0],
                                   rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(batch.maps[image], alone.maps[0], rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------- detection


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


@pytest.fixture(scope="module")
def detector() -> tuple[nn.Module, torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Faster R-CNN MobileNetV3-320 FPN, random weights, 5 classes, every box kept."""
    torch.manual_seed(0)
    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=5, box_score_thresh=0.0)
    # statistics only: random affine parameters saturate the box scores at 1.0
    calibrate_batchnorm(model.backbone.body, torch.randn(4, 3, 240, 320), random_affine=False)
    model.eval()
    inputs = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        detections = model(inputs)
    return model, inputs, detections


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


# ----------------------------------------------------------------------------- embeddings


def test_embedding_similarity_hand_values_and_zero_embedding():
    embeddings = torch.tensor([[3.0, 4.0], [0.0, 0.0], [-2.0, 0.0]], requires_grad=True)
    values = EmbeddingSimilarity(torch.tensor([1.0, 0.0]))(embeddings)
    assert values.tolist() == pytest.approx([0.6, 0.0, -1.0])
    values.sum().backward()
    assert torch.isfinite(embeddings.grad).all()
    assert embeddings.grad[1].tolist() == [0.0, 0.0]  # no direction, no gradient
    # d cos / d e at e = (3, 4), r = (1, 0): (r - cos * e/|e|) / |e| = ((1, 0) - 0.6 (0.6, 0.8)) / 5
    assert embeddings.grad[0].tolist() == pytest.approx([0.64 / 5, -0.48 / 5])
    per_image = EmbeddingSimilarity(torch.tensor([[0.0, 2.0], [1.0, 1.0]]))
    assert per_image({"logits": torch.tensor([[3.0, 4.0], [1.0, 0.0]])}).tolist() == \
        pytest.approx([0.8, 1 / math.sqrt(2)])


def test_embedding_similarity_uses_the_reference_of_the_image_each_row_copies():
    target = EmbeddingSimilarity(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    copies = torch.tensor([[3.0, 4.0], [0.0, 5.0], [2.0, 0.0]])
    assert target(copies, torch.tensor([1, 1, 1])).tolist() == pytest.approx([0.6, 0.0, 1.0])


def test_embedding_similarity_bad_input():
    with pytest.raises(ValueError, match=r"the output embeddings have dimension 3 \(shape "
                                         r"\(2, 3\)\) but the reference has 2"):
        EmbeddingSimilarity(torch.tensor([1.0, 0.0]))(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"EmbeddingSimilarity needs a model output of shape "
                                         r"\(N, D\); this output has shape \(2, 3, 4\)"):
        EmbeddingSimilarity(torch.ones(4))(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="reference 1 is all zero"):
        EmbeddingSimilarity(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(TypeError, match=r"must be a float tensor, got dtype torch\.int64"):
        EmbeddingSimilarity(torch.tensor([1, 0]))
    with pytest.raises(ValueError, match=r"got shape \(1, 2, 3\)"):
        EmbeddingSimilarity(torch.ones(1, 2, 3))


# ----------------------------------------------------------------------------- tokens


def test_token_log_probability_hand_values_and_ignored_positions():
    logits = torch.tensor([[[0.0, 1.0, 2.0], [3.0, 0.0, 0.0]],
                           [[1.0, 1.0, 1.0], [0.0, 0.0, 5.0]]])

    def log_p(row: list[float], token: int) -> float:
        return row[token] - math.log(sum(math.exp(v) for v in row))

    expected = [log_p([0, 1, 2], 2) + log_p([3, 0, 0], 0),
                log_p([1, 1, 1], 2) + log_p([0, 0, 5], 0)]
    assert TokenLogProbability([2, 0])(logits).tolist() == pytest.approx(expected)
    per_image = TokenLogProbability(torch.tensor([[1, -100], [-100, 2]]))
    assert per_image(logits).tolist() == pytest.approx([log_p([0, 1, 2], 1),
                                                        log_p([0, 0, 5], 2)])
    assert TokenLogProbability([-100, -100])(logits).tolist() == [0.0, 0.0]
    # an ignored position with a -inf logit must not make NaN
    masked = logits.clone()
    masked[:, 1, 1] = -math.inf
    assert torch.isfinite(TokenLogProbability([2, -100])(masked)).all()


def test_token_log_probability_uses_the_tokens_of_the_image_each_row_copies():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25]], [[0.1, 0.2, 0.7]]]))
    target = TokenLogProbability(torch.tensor([[0], [2]]))
    values = target(logits, torch.tensor([1, 1]))
    assert values.tolist() == pytest.approx([math.log(0.25), math.log(0.7)])


def test_token_log_probability_bad_input():
    with pytest.raises(ValueError, match=r"3 tokens but the output has 2 positions \(shape "
                                         r"\(1, 2, 5\)\)"):
        TokenLogProbability([1, 2, 3])(torch.zeros(1, 2, 5))
    with pytest.raises(ValueError, match="token id 5 is out of range: the vocabulary has 5"):
        TokenLogProbability([1, 5])(torch.zeros(1, 2, 5))
    with pytest.raises(ValueError, match=r"needs a model output of shape \(N, T, vocabulary\) "
                                         r"logits; this output has shape \(1, 5\)"):
        TokenLogProbability([1])(torch.zeros(1, 5))
    with pytest.raises(ValueError, match="token id -3 is negative"):
        TokenLogProbability([1, -3])
    with pytest.raises(TypeError, match=r"integer token ids, got dtype torch\.float32"):
        TokenLogProbability(torch.tensor([1.0]))


class Embedder(nn.Module):
    """TinyNet's features -> average pool -> linear: a (B, 6) embedding."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.features = TinyNet().features
        self.project = nn.Linear(5, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.features(x).mean(dim=(2, 3)))


class Captioner(nn.Module):
    """A captioning-style model: image features and the previous tokens (teacher forcing,
    a second input) give ``(B, T, V)`` logits, returned as ``ModelOutput``-like ``.logits``."""

    def __init__(self, vocabulary: int = 7) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.features = TinyNet().features
        self.words = nn.Embedding(vocabulary, 5)
        self.head = nn.Linear(5, vocabulary)

    def forward(self, x: torch.Tensor, previous: torch.Tensor) -> dict[str, torch.Tensor]:
        image = self.features(x).mean(dim=(2, 3))
        return {"logits": self.head(torch.tanh(image[:, None] * 3 + self.words(previous)))}


@pytest.mark.parametrize("method", ["gradcam", "xgradcam"])
def test_embedding_and_token_targets_equal_the_hand_reference(method):
    torch.manual_seed(0)
    images = torch.rand(2, 3, 8, 8)
    embedder = Embedder().eval()
    references = torch.randn(2, 6)
    target = EmbeddingSimilarity(references)
    exp = axiomcam.explain(embedder, images, method=method, target_layer="features.2",
                           targets=target)
    with torch.no_grad():
        expected = F.cosine_similarity(embedder(images), references, dim=1)
    torch.testing.assert_close(exp.scores, expected)
    weights, raw = hand_cam(embedder, images, embedder.features[2],
                            lambda out: F.cosine_similarity(out, references, dim=1), method)
    assert_relative(exp.channel_weights, weights, 1e-5)
    assert_relative(exp.raw, raw, 1e-5)
    assert exp.maps.shape == (2, 8, 8) and (exp.maps.std(dim=(1, 2)) > 0.05).all()

    captioner = Captioner().eval()
    previous = torch.tensor([[0, 3, 5], [0, 1, 1]])
    caption = torch.tensor([[3, 5, IGNORE_TOKEN], [1, 1, 6]])
    exp = axiomcam.explain(captioner, images, method=method, target_layer="features.2",
                           targets=TokenLogProbability(caption), extra_inputs=(previous,))

    def log_probability(out: dict[str, torch.Tensor]) -> torch.Tensor:
        # by hand: sum_t log softmax(z_t)[w_t], the ignored position left out
        logp = F.log_softmax(out["logits"], dim=-1)
        return logp[0, 0, 3] + logp[0, 1, 5], logp[1, 0, 1] + logp[1, 1, 1] + logp[1, 2, 6]

    with torch.no_grad():
        expected = torch.stack(log_probability(captioner(images, previous)))
    torch.testing.assert_close(exp.scores, expected)
    weights, raw = hand_cam(lambda x: captioner(x, previous), images, captioner.features[2],
                            lambda out: torch.stack(log_probability(out)), method)
    assert_relative(exp.channel_weights, weights, 1e-5)
    assert_relative(exp.raw, raw, 1e-5)
    assert exp.maps.shape == (2, 8, 8) and (exp.maps.std(dim=(1, 2)) > 0.05).all()


@pytest.mark.parametrize("method", ["scorecam", "ablationcam"])
def test_perturbation_methods_use_each_images_reference_and_caption(method):
    """Score-CAM and Ablation-CAM score copies of one image: image 1 of a batch gets what
    image 1 alone gets, with its own reference embedding, caption and previous tokens."""
    torch.manual_seed(0)
    images = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    embedder, captioner = Embedder().double().eval(), Captioner().double().eval()
    references = torch.randn(2, 6, dtype=torch.float64)
    previous = torch.tensor([[0, 3, 5], [0, 1, 1]])
    caption = torch.tensor([[3, 5, 2], [1, 1, 6]])
    cases = [(embedder, lambda rows: EmbeddingSimilarity(references[rows]), lambda rows: ()),
             (captioner, lambda rows: TokenLogProbability(caption[rows]),
              lambda rows: (previous[rows],))]
    for model, target, extra in cases:
        both = axiomcam.explain(model, images, method=method, target_layer="features.2",
                                targets=target([0, 1]), extra_inputs=extra([0, 1]))
        assert (both.raw.flatten(1).std(1) > 0).all()
        for image in range(2):
            alone = axiomcam.explain(model, images[image:image + 1], method=method,
                                     target_layer="features.2", targets=target([image]),
                                     extra_inputs=extra([image]))
            torch.testing.assert_close(both.channel_weights[image], alone.channel_weights[0],
                                       rtol=1e-9, atol=1e-12)
            torch.testing.assert_close(both.raw[image], alone.raw[0], rtol=1e-9, atol=1e-12)


def test_reprs_name_their_data():
    assert repr(ClassScore(3)) == "ClassScore(classes=3, softmax=False)"
    assert repr(ClassScore([1, 2], softmax=True)) == "ClassScore(classes=[1, 2], softmax=True)"
    assert repr(SegmentationRegion(1)) == "SegmentationRegion(class_index=1, mask=predicted)"
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[0, :3] = True
    assert repr(SegmentationRegion(1, mask)) == \
        "SegmentationRegion(class_index=1, mask=(4, 4) mask of 3 pixels)"
    assert repr(DetectionBox([0.0, 1.0, 2.0, 3.0], 4)) == \
        "DetectionBox(box=[0.0, 1.0, 2.0, 3.0], label=4, iou_threshold=0.5)"
    assert repr(EmbeddingSimilarity(torch.ones(2, 512))) == \
        "EmbeddingSimilarity(reference=(2, 512) tensor)"
    assert repr(TokenLogProbability([5, -100, -100])) == \
        "TokenLogProbability(tokens=[5, -100, -100], 2 ignored)"


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
