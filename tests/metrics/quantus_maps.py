"""Quantus 0.6's map metrics called on our maps and masks: the peer of the complexity,
random-logit and mask localisation tests (``a_batch`` given, numpy, one channel)."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn


def quantus_scores(metric: object, maps: torch.Tensor, masks: torch.Tensor | None = None,
                   *, model: nn.Module | None = None, targets: torch.Tensor | None = None,
                   **call: object) -> np.ndarray:
    """``metric`` (a Quantus metric instance) on ``maps`` ``(B, H, W)`` (and ``masks``), as
    float64 numpy; copies go to Quantus, which edits its inputs in place."""
    batch, height, width = maps.shape
    a_batch = maps.detach().double().cpu().numpy()[:, None].copy()
    s_batch = None if masks is None else masks.cpu().numpy()[:, None].astype(np.float64)
    x_batch = call.pop("x_batch", np.zeros((batch, 1, height, width), dtype=np.float32))
    y_batch = np.zeros(batch, dtype=int) if targets is None else targets.cpu().numpy()
    model = model if model is not None else nn.Sequential(nn.Flatten(),
                                                          nn.Linear(height * width, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Quantus warns about its parameters on every call
        scores = metric(model=model, x_batch=x_batch, y_batch=y_batch, a_batch=a_batch,
                        s_batch=s_batch, **call)
    return np.asarray(scores, dtype=np.float64)
