"""Fixtures shared by the target tests: a tiny classifier, and random-weight torchvision
segmentation and detection models (built once per session: they take seconds)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from hand_reference import TinyNet, calibrate_batchnorm
from torch import nn


@pytest.fixture(scope="session")
def tiny() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return TinyNet().eval(), torch.rand(2, 3, 8, 8)


@pytest.fixture(scope="session")
def segmentation() -> tuple[nn.Module, torch.Tensor]:
    """LR-ASPP MobileNetV3 (the fastest torchvision segmentation model: ~0.02 s per
    64x64 image), random weights, 4 classes."""
    torch.manual_seed(0)
    model = torchvision.models.segmentation.lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=4)
    calibrate_batchnorm(model, torch.randn(8, 3, 64, 64))
    return model, torch.rand(2, 3, 64, 64)


@pytest.fixture(scope="session")
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
