"""Hand references for the target tests: a random-weight network's BatchNorms calibrated,
Grad-CAM / XGrad-CAM computed by hand (forward hook + ``torch.autograd.grad`` + the formulas
of methods.md), and the tiny classifier, embedder and captioner the tests explain."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn


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


def build_segmentation() -> tuple[nn.Module, torch.Tensor]:
    """LR-ASPP MobileNetV3 (the fastest torchvision segmentation model: ~0.02 s per
    64x64 image), random weights, 4 classes."""
    torch.manual_seed(0)
    model = torchvision.models.segmentation.lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=4)
    calibrate_batchnorm(model, torch.randn(8, 3, 64, 64))
    return model, torch.rand(2, 3, 64, 64)


def build_detector() -> tuple[nn.Module, torch.Tensor, list[dict[str, torch.Tensor]]]:
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
