"""The app offers FullGrad (from the method registry): no layer, its map the library's."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn

import axiomcam
from axiomcam.app.explorer import METHODS, Explorer
from axiomcam.models import PretrainedModel


def test_fullgrad_is_offered_and_its_map_is_the_library_map() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                          nn.Conv2d(6, 8, 3, padding=1, stride=2), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)).eval()
    pretrained = PretrainedModel("tiny", model, None, None, ["cat", "dog", "fox"], "3", 32,
                                 mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    explorer = Explorer(pretrained, deletion_steps=4)
    assert "fullgrad" in METHODS
    pixels = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    opened = explorer.open_image(Image.fromarray(pixels))
    gradcam, fullgrad = explorer.explain(opened, "dog", "1", ["gradcam", "fullgrad"])
    assert fullgrad.error is None and gradcam.error is None
    expected = axiomcam.explain(model, opened.inputs, "fullgrad", targets=[1])
    assert torch.allclose(fullgrad.cam_map, expected.maps[0], atol=1e-6)
    assert expected.maps[0].std() > 0
