""":class:`~axiomcam.targets.SegmentationRegion` and
:func:`~axiomcam.targets.predicted_mask`: hand values on tiny tensors, clear errors, and
explanations of random-weight torchvision segmentation models checked against a reference
computed by hand."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from hand_reference import assert_relative, build_segmentation, calibrate_batchnorm, hand_cam
from torch import nn

import axiomcam
from axiomcam.targets import SegmentationRegion, predicted_mask


@pytest.fixture(scope="module")
def segmentation() -> tuple[nn.Module, torch.Tensor]:
    """LR-ASPP MobileNetV3, random weights, 4 classes
    (:func:`hand_reference.build_segmentation`)."""
    return build_segmentation()


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
