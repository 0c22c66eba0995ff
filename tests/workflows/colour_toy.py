"""A classifier of colour whose every number a test can compute by hand, and scenes for it
(``--model colour_toy:build`` with this folder on the path).

The network: a 1x1 convolution with fixed weights gives two channels per pixel,
``red = relu(R - G - B)`` and ``green = relu(G - R - B)`` (layer ``features.1``, at the
input's resolution), averaged over the image and scaled by :data:`SCALE`: the logits of
classes ``red`` and ``green``. Grey pixels (``R = G = B``) activate neither. So the class
with more coloured mass wins, and the map of a class (Grad-CAM, XGrad-CAM: the gradient
is the same constant at every pixel) is its channel, up to scale: every pixel's share of
the map is known from the pixels alone.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn

from axiomcam.data import Dataset, Sample
from axiomcam.models import PretrainedModel

CLASSES = ("red", "green")
SIZE = 32
SCALE = 8.0
LAYER = "features.1"


class ColourToy(nn.Module):
    """relu(1x1 conv) -> mean over pixels -> SCALE * identity: classes red, green."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 2, 1, bias=False), nn.ReLU())
        self.head = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.features[0].weight.copy_(torch.tensor(
                [[1.0, -1.0, -1.0], [-1.0, 1.0, -1.0]])[:, :, None, None])
            self.head.weight.copy_(SCALE * torch.eye(2))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(inputs).mean(dim=(2, 3)))


def build() -> nn.Module:
    return ColourToy().eval()


def pretrained() -> PretrainedModel:
    """The toy with pixels in [0, 1] as its input (mean 0, std 1), SIZE x SIZE."""
    return PretrainedModel("colour toy", build(), None, None, list(CLASSES), LAYER,
                           input_size=SIZE, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def activations(image: Image.Image) -> np.ndarray:
    """``(2, H, W)``: the red and green channels, computed from the pixels (float64)."""
    pixels = np.asarray(image, dtype=np.float64) / 255.0
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return np.stack([np.maximum(red - green - blue, 0), np.maximum(green - red - blue, 0)])


def probabilities(image: Image.Image) -> np.ndarray:
    """``(2,)`` the softmax of the toy's logits, from the pixels."""
    logits = SCALE * activations(image).mean(axis=(1, 2))
    exponentials = np.exp(logits - logits.max())
    return exponentials / exponentials.sum()


def scene(seed: int, red: list[tuple[int, int, int, int]],
          green: list[tuple[int, int, int, int]]) -> Image.Image:
    """A grey noise background with red and green rectangles ``(x0, y0, x1, y1)``, each
    pixel of a random intensity (so that shares are not simple counts)."""
    generator = np.random.default_rng(seed)
    grey = generator.uniform(0.2, 0.6, size=(SIZE, SIZE))
    pixels = np.repeat(grey[..., None], 3, axis=2)
    for rectangles, channel in ((red, 0), (green, 1)):
        for x0, y0, x1, y1 in rectangles:
            pixels[y0:y1, x0:x1] = 0.0
            pixels[y0:y1, x0:x1, channel] = generator.uniform(0.5, 0.9, size=(y1 - y0, x1 - x0))
    return Image.fromarray(np.round(pixels * 255).astype(np.uint8))


def sample(image_id: str, image: Image.Image, label: int | None,
           boxes: list[tuple[int, int, int, int]], box_labels: list[int]) -> Sample:
    return Sample(image_id, image, label, torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                  torch.tensor(box_labels, dtype=torch.long))


class Samples(Dataset):
    """A data set of the given samples."""

    def __init__(self, samples: list[Sample], description: str = "colour scenes") -> None:
        super().__init__(list(CLASSES), description)
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self):
        return iter(self.samples)
