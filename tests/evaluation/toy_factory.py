"""A tiny classifier for runs in other processes (``--model toy_factory:build`` with this
folder on PYTHONPATH), with switches to make it slow or to kill its process.

Environment:
    TOY_DELAY: seconds to sleep in each forward pass (time to kill a run mid-batch).
    TOY_DIE_RANK, TOY_DIE_AFTER: the process of that torchrun rank exits (status 3, no
        clean-up, as a crashed machine would) at its TOY_DIE_AFTER-th forward pass.
"""

from __future__ import annotations

import os
import time

import torch
from torch import nn


class SlowToy(nn.Module):
    """Conv(3->4, 3x3) + ReLU + global average pooling + Linear(4 -> 3): classes red,
    green, blue; layer ``features.1`` is the ReLU."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(4, 3)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator))
        self.calls = 0

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        delay = float(os.environ.get("TOY_DELAY", "0"))
        if delay:
            time.sleep(delay)
        if (os.environ.get("TOY_DIE_RANK") == os.environ.get("RANK", "0")
                and self.calls >= int(os.environ.get("TOY_DIE_AFTER", "0"))):
            os._exit(3)
        return self.head(self.features(inputs).mean(dim=(2, 3)))


def build() -> nn.Module:
    return SlowToy().eval()
