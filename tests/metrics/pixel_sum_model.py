"""The model of the faithfulness and ROAD tests: class 0 has logit 0 and class 1 has logit
``scale * sum_cij weight_ij x_cij + bias``, so ``p_1 = sigmoid(logit)`` can be written down
by hand for any perturbed image."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn


class PixelSumModel(nn.Module):
    """Logit 0 for class 0, ``scale * sum_cij channel_weight_c weight_ij x_cij + bias`` for
    class 1 (``channel_weight`` defaults to 1 for every channel)."""

    def __init__(self, weight: torch.Tensor, scale: float = 1.0, bias: float = 0.0,
                 channel_weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.to(torch.float64))
        self.scale, self.bias = scale, bias
        self.channel_weight = channel_weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channel_weight is not None:
            x = x * self.channel_weight.view(1, -1, 1, 1)
        logit = self.scale * (x.sum(1) * self.weight).sum((1, 2)) + self.bias
        return torch.stack([torch.zeros_like(logit), logit], dim=1)


def sigmoid(z: float) -> float:
    """The logistic function, ``1 / (1 + exp(-z))``."""
    return 1 / (1 + math.exp(-z))


def probability(model: nn.Module, image: torch.Tensor, target: int) -> float:
    """``p_target`` of one ``(C, H, W)`` image."""
    with torch.no_grad():
        return float(torch.softmax(model(image[None]), dim=1)[0, target])


@pytest.fixture(autouse=True, scope="module")
def float64_default():
    """Hand-computed values need float64: imported by a test module, it sets the default
    dtype for that module's tests and restores it after them."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
