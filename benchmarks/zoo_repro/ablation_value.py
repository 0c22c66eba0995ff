"""pytorch-grad-cam's Ablation-CAM on a layer with signed values: ``min - 1e7``, cumulative.

Ablation-CAM's definition sets channel ``k`` to 0 and measures the drop of the score.
pytorch-grad-cam 1.5.7's ``AblationLayer`` does so only when the minimum of its batch of
copies is exactly 0 (a ReLU layer).  Otherwise it writes ``torch.min(output) - 1e7``, and it
re-reads that minimum after each copy it has ablated: in a batch of copies, copy ``i`` gets
``min(A) - (i + 1) * 1e7`` (the ``-1e7`` of the previous copies is the new minimum).  So on
every layer that can be negative (BatchNorm, Hardswish, SiLU, GELU, LayerNorm outputs: the
default layers of MobileNetV3, EfficientNet, ConvNeXt, MaxViT, ViT, Swin) each channel is
pushed to a different, huge negative value, and its weight measures how the network reacts
to that, not to the channel's absence.

The demonstration: a small network whose target layer is a BatchNorm (signed outputs).

    python -m benchmarks.zoo_repro.ablation_value
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .. import zoo_reference as reference
from .common import axiomcam_map, grad_cam_map, input_size_map, r

CHANNELS = 8


class SignedLayer(nn.Module):
    """conv -> BatchNorm (the target layer ``norm``) -> global average pooling -> linear
    -> ReLU -> linear (MobileNetV3's head after its last convolution)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, CHANNELS, 3, padding=1)
        self.norm = nn.BatchNorm2d(CHANNELS)
        self.head = nn.Sequential(nn.Linear(CHANNELS, 16), nn.ReLU(), nn.Linear(16, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.conv(x)).mean((2, 3)))


def values_written(activation: torch.Tensor) -> list[float]:
    """What pytorch-grad-cam's own ``AblationLayer`` writes into channel ``i`` of copy ``i``
    (one batch of copies of one image's activation ``(1, K, h, w)``)."""
    from pytorch_grad_cam.ablation_layer import AblationLayer

    layer = AblationLayer()
    layer.indices = np.arange(activation.shape[1])
    layer.set_next_batch(input_batch_index=0, activations=activation,
                         num_channels_to_ablate=activation.shape[1])
    copies = layer(None)
    return [float(copies[i, i].mean()) for i in range(activation.shape[1])]


def scores_with(model: nn.Module, image: torch.Tensor, seen: reference.Capture,
                values: list[float], target: int) -> torch.Tensor:
    """The target score with channel ``k`` of the layer set to ``values[k]``, every ``k``."""
    copies = seen.output.repeat(len(values), 1, 1, 1)
    for channel, value in enumerate(values):
        copies[channel, channel] = value
    with torch.no_grad():
        return model.head(copies.mean((2, 3)))[:, target].double()


def evidence() -> dict[str, object]:
    """The numbers :func:`main` prints."""
    torch.manual_seed(0)
    model, image = SignedLayer().eval(), torch.randn(3, 10, 10)
    with torch.no_grad():
        target = int(model(image[None]).argmax())
    seen = reference.capture(model, model.norm, image, target, "conv")
    written = values_written(seen.output)
    size = tuple(image.shape[1:])

    def ablation_map(values: list[float]) -> torch.Tensor:
        weights = (seen.score - scores_with(model, image, seen, values, target)) / seen.score
        return input_size_map((weights[:, None, None] * seen.A).sum(0), size)

    definition = ablation_map([0.0] * CHANNELS)
    grad_cam = grad_cam_map(model, image, "AblationCAM", model.norm, target)
    return {
        "min of the layer's output": float(seen.A.min()),
        "values pytorch-grad-cam writes into copies 0..3": written[:4],
        "r(axiomcam, definition)": r(axiomcam_map(model, image, "ablationcam", "norm", target),
                                     definition),
        "r(pytorch-grad-cam, definition)": r(grad_cam, definition),
        "r(pytorch-grad-cam, channels set to the values it writes)":
            r(grad_cam, ablation_map(written)),
    }


def main() -> None:
    print("Ablation-CAM at a BatchNorm layer (signed outputs), seed 0")
    for key, value in evidence().items():
        if isinstance(value, list):
            print(f"  {key:58} " + ", ".join(f"{v:.8g}" for v in value))
        else:
            print(f"  {key:58} {value: .4f}")


if __name__ == "__main__":
    main()
