"""The slow, independent reference maps of ``python -m benchmarks.zoo_peers``.

Written from the definitions in ``methods.md``, one image at a time, sharing nothing with
axiomcam or the peers:

- ``A`` and ``G``: a forward hook on the target layer keeps a *copy* of its output as a
  leaf tensor and passes a clone of it on, so an in-place operation after the layer
  (DenseNet-121's ``F.relu(features, inplace=True)`` after ``features.norm5``) cannot change
  the kept activation, and ``G = dy^c/dA`` is taken by ``torch.autograd.grad`` with respect
  to that leaf.  Both are then cast to float64 and every map below is computed in float64.
- Layouts: a convolutional output ``(B, C, h, w)`` is used as it is; a ViT's tokens
  ``(B, 1 + h*w, C)`` lose their class token and are laid on the ``h x w`` grid row by row
  (the standard ``reshape_transform`` of pytorch-grad-cam's tutorial); a Swin block's
  ``(B, h, w, C)`` is permuted to ``(B, C, h, w)``.  The same functions are handed to the
  peers as their ``reshape_transform``.
- Ablation-CAM and Score-CAM need forward passes of perturbed copies: those run the float32
  network (a float64 copy of the network would double the dominant cost); the weights and
  maps are float64.  Ablation-CAM's copies replace the layer's output at the same hook (the
  class token of a ViT kept), so only the network after the layer runs on them.

Every function returns the raw map ``sum_k w_k A^k`` (or the element-wise form) at the
layer's resolution, ``(h, w)``, before the ReLU; :func:`input_map` applies the ReLU and the
bilinear upsampling every library applies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

#: how a target layer's output is laid on the ``(B, C, h, w)`` grid
LAYOUTS = ("conv", "tokens", "channels_last")


def to_grid(output: torch.Tensor, layout: str) -> torch.Tensor:
    """The ``(B, C, h, w)`` grid of a layer's output (see the module docstring)."""
    if layout == "conv":
        return output
    if layout == "channels_last":
        return output.permute(0, 3, 1, 2)
    if layout == "tokens":
        patches = output[:, 1:, :]
        side = math.isqrt(patches.shape[1])
        return patches.reshape(output.shape[0], side, side, output.shape[2]).permute(0, 3, 1, 2)
    raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")


def from_grid(grid: torch.Tensor, like: torch.Tensor, layout: str) -> torch.Tensor:
    """``grid`` ``(m, C, h, w)`` put back in the layer's own form; a ViT's class token is
    taken from ``like`` (the layer's output for the one image)."""
    if layout == "conv":
        return grid
    if layout == "channels_last":
        return grid.permute(0, 2, 3, 1)
    patches = grid.flatten(2).transpose(1, 2)
    return torch.cat([like[:, :1].expand(grid.shape[0], -1, -1), patches], dim=1)


def reshape_transform(layout: str):
    """A peer's ``reshape_transform`` for ``layout`` (``None`` for convolutional outputs)."""
    return None if layout == "conv" else (lambda output: to_grid(output, layout))


@dataclass
class Capture:
    """One image at the target layer (its last call, of ``calls``): ``A`` and ``G``
    ``(K, h, w)`` in float64, the layer's own output (float32, for Ablation-CAM's class
    token), the logits and ``y^c``."""

    A: torch.Tensor
    G: torch.Tensor
    output: torch.Tensor
    logits: torch.Tensor
    score: float
    calls: int = 1


def capture(model: nn.Module, layer: nn.Module, image: torch.Tensor, target: int,
            layout: str, call: int = -1) -> Capture:
    """``A`` and ``G = dy^c/dA`` of one image ``(C, H, W)`` (see the module docstring) at
    the layer's call number ``call`` (``-1``: its last, as axiomcam; ``0``: its first)."""
    kept: list[torch.Tensor] = []
    calls: list[int] = []

    def keep_a_copy(module: nn.Module, args: object, output: torch.Tensor) -> torch.Tensor | None:
        calls.append(len(calls))
        if call >= 0 and calls[-1] != call:
            return None  # not the call asked for: the graph through it stays whole
        leaf = output.detach().clone().requires_grad_(True)
        kept.append(leaf)
        return leaf.clone()  # what flows on may be modified in place; the leaf is not

    handle = layer.register_forward_hook(keep_a_copy)
    try:
        logits = model(image[None])
    finally:
        handle.remove()
    (gradient,) = torch.autograd.grad(logits[0, target], kept[-1])
    return Capture(A=to_grid(kept[-1].detach(), layout)[0].double(),
                   G=to_grid(gradient, layout)[0].double(), output=kept[-1].detach(),
                   logits=logits[0].detach(), score=float(logits[0, target].detach()),
                   calls=len(calls))


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """``numerator / denominator``, 0 where the denominator is 0 (the definitions' rule)."""
    zero = denominator == 0
    return torch.where(zero, 0.0, numerator / torch.where(zero, 1.0, denominator))


def _weighted(weights: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    return (weights[:, None, None] * A).sum(0)


def gradient_map(method: str, A: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """The raw map of a gradient method, from ``methods.md``:

    - Grad-CAM ``w_k = mean_ij G``; XGrad-CAM ``w_k = sum_ij A G / sum_ij A``;
    - Grad-CAM++ ``alpha = G^2 / (2 G^2 + sum_ab A_ab G^3)`` (0 where that is 0),
      ``w_k = sum_ij alpha ReLU(G)``;
    - HiResCAM ``sum_k G A``; Layer-CAM ``sum_k ReLU(G) A`` (element-wise).
    """
    if method == "gradcam":
        return _weighted(G.mean((1, 2)), A)
    if method == "xgradcam":
        return _weighted(_ratio((A * G).sum((1, 2)), A.sum((1, 2))), A)
    if method == "gradcam++":
        alpha = _ratio(G**2, 2 * G**2 + A.sum((1, 2), keepdim=True) * G**3)
        return _weighted((alpha * G.clamp_min(0)).sum((1, 2)), A)
    if method == "hirescam":
        return (G * A).sum(0)
    if method == "layercam":
        return (G.clamp_min(0) * A).sum(0)
    raise ValueError(f"{method!r} is not a gradient method of the reference")


def cam_map(A: torch.Tensor, classifier: nn.Linear, target: int) -> torch.Tensor:
    """CAM: ``sum_k W[c, k] A^k`` with ``W`` the final linear layer's weight."""
    return _weighted(classifier.weight.detach()[target].double(), A)


def eigen_map(A: torch.Tensor) -> torch.Tensor:
    """Eigen-CAM: the positions ``(h w, K)``, centred per channel, projected on their first
    right singular vector; the sign chosen so that the map correlates positively with the
    mean activation over channels."""
    positions = A.flatten(1).T
    centred = positions - positions.mean(0)
    _, _, right = torch.linalg.svd(centred, full_matrices=False)
    projection = centred @ right[0]
    mean_activation = A.flatten(1).mean(0)
    if ((projection - projection.mean()) * (mean_activation - mean_activation.mean())).sum() < 0:
        projection = -projection
    return projection.view(A.shape[1:])


def _chunks(count: int, size: int) -> list[range]:
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


class _Replace:
    """Forward hook: the layer's output is replaced by ``swap``."""

    def __init__(self, swap: torch.Tensor) -> None:
        self.swap = swap

    def __call__(self, module: nn.Module, args: object, output: torch.Tensor) -> torch.Tensor:
        return self.swap


def ablation_map(model: nn.Module, layer: nn.Module, image: torch.Tensor, target: int,
                 layout: str, seen: Capture, chunk: int = 64) -> torch.Tensor:
    """Ablation-CAM: ``w_k = (y^c - y^c_(k)) / y^c`` with ``y^c_(k)`` the score when
    channel ``k`` of the layer's grid is set to 0 (the copies replace the layer's output)."""
    if seen.calls != 1:
        raise ValueError(f"the target layer ran {seen.calls} times; this reference ablates "
                         "a layer that runs once")
    grid = to_grid(seen.output, layout)  # (1, K, h, w), float32
    channels = grid.shape[1]
    ablated = torch.empty(channels, dtype=torch.float64)
    for block in _chunks(channels, chunk):
        copies = grid.repeat(len(block), 1, 1, 1)
        for row, channel in enumerate(block):
            copies[row, channel] = 0.0
        handle = layer.register_forward_hook(_Replace(from_grid(copies, seen.output, layout)))
        try:
            with torch.no_grad():
                logits = model(image[None])
        finally:
            handle.remove()
        if logits.shape[0] != len(block):
            raise ValueError("the layers after the target do not keep the copies' batch")
        ablated[block.start:block.stop] = logits[:, target].double()
    weights = (seen.score - ablated) / seen.score
    return _weighted(weights, seen.A)


def score_map(model: nn.Module, image: torch.Tensor, target: int, seen: Capture,
              chunk: int = 32) -> torch.Tensor:
    """Score-CAM: ``M_k`` = channel ``k`` upsampled (bilinear) and min-max scaled (0 for a
    constant channel); ``s_k = p_c(x M_k) - p_c(0)`` (softmax probabilities)."""
    size = tuple(image.shape[1:])
    with torch.no_grad():
        baseline = float(torch.softmax(model(torch.zeros_like(image)[None]), 1)[0, target])
        channels = seen.A.shape[0]
        scores = torch.full((channels,), baseline, dtype=torch.float64)
        for block in _chunks(channels, chunk):
            masks = F.interpolate(seen.A[block.start:block.stop, None].float(), size=size,
                                  mode="bilinear", align_corners=False)
            low = masks.amin((1, 2, 3), keepdim=True)
            span = masks.amax((1, 2, 3), keepdim=True) - low
            live = span.flatten() > 0
            if not bool(live.any()):
                continue
            masked = image[None] * ((masks - low) / span.clamp_min(1e-30))[live]
            probabilities = torch.softmax(model(masked), 1)[:, target].double()
            indices = torch.tensor(list(block))[live]
            scores[indices] = probabilities
    return _weighted(scores - baseline, seen.A)


def input_map(raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``ReLU(raw)`` upsampled (bilinear) to the input, as every library shows it."""
    return F.interpolate(raw.clamp_min(0)[None, None], size=size, mode="bilinear",
                         align_corners=False)[0, 0]
