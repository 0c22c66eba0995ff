"""The fixed epsilons in the peers' Grad-CAM++ and XGrad-CAM denominators.

pytorch-grad-cam 1.5.7 computes XGrad-CAM's weights as ``sum A G / (sum A + 1e-7)`` and
Grad-CAM++'s ``alpha`` as ``G^2 / (2 G^2 + sum A G^3 + 1e-6)``; torchcam 0.5.0's XGrad-CAM
divides by ``sum A + 1e-8``.  The constants are absolute: they are negligible when the
channel sums and the gradients are of order 1, and they decide the map when ``sum A`` is
near 1e-7 or ``G^2`` near 1e-6.  Random-weight networks reach those scales at their last
layer (``docs/peers.md`` lists them: MobileNetV3-small's activations ~1e-8, EfficientNet-B0's
~1e-14, DenseNet-121's gradients ~1e-5).

The demonstration changes nothing but units: a small network whose target layer multiplies
its input by ``s`` and whose next layer divides by ``s``.  Every ``s`` is the same function
(same scores), and both definitions give the same map for every ``s``
(``A -> s A``, ``G -> G / s``: XGrad-CAM's ``sum A G / sum A`` and Grad-CAM++'s ``alpha``
are unchanged, the weights scale by ``1 / s`` and the map ``sum_k w_k A^k`` not at all).
The peers' maps drift, then turn into other maps, as ``s`` moves away from 1.

    python -m benchmarks.zoo_repro.epsilon
"""

from __future__ import annotations

import torch
from torch import nn

from .. import zoo_reference as reference
from .common import axiomcam_map, grad_cam_map, input_size_map, r, torchcam_map

#: the units tried, from where both peers agree with the definition (``s = 1e-3``: channel
#: sums ~1e-3, gradients ~0.1): larger ``s`` shrinks the gradients, smaller the channel sums
SCALES = (1e-3, 1e-1, 1.0, 1e2, 1e-5, 1e-7, 1e-9)


class Scale(nn.Module):
    """Multiplies by a constant (the target layer)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


class Rescaled(nn.Module):
    """conv -> ReLU -> x s (the target layer ``layer``) -> 1x1 conv with its weight / s ->
    ReLU -> global average pooling -> linear.  The same function for every ``s``."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU())
        self.layer = Scale(scale)
        self.mix = nn.Conv2d(16, 16, 1)
        self.fc = nn.Linear(16, 5)
        with torch.no_grad():
            self.mix.weight /= scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.mix(self.layer(self.body(x)))).mean((2, 3)))


def evidence(scales: tuple[float, ...] = SCALES) -> list[dict[str, float]]:
    """Per scale: the median |A|, |G| and smallest channel sum at the layer, the top score,
    and the correlation of each library's map with the definition's map at the first scale."""
    torch.manual_seed(1)
    image = torch.rand(3, 20, 20)
    size = tuple(image.shape[1:])
    definitions: dict[str, torch.Tensor] = {}
    rows = []
    for scale in scales:
        model = Rescaled(scale).eval()
        with torch.no_grad():
            logits = model(image[None])[0]
        target = int(logits.argmax())
        seen = reference.capture(model, model.layer, image, target, "conv")
        row = {"s": scale, "mean |A|": float(seen.A.abs().mean()),
               "median |G|": float(seen.G.abs().median()),
               "min sum A": float(seen.A.sum((1, 2)).min()), "score": float(logits[target])}
        for method, grad_cam_class, torchcam_class in (("xgradcam", "XGradCAM", "XGradCAM"),
                                                       ("gradcam++", "GradCAMPlusPlus", None)):
            here = input_size_map(reference.gradient_map(method, seen.A, seen.G), size)
            definition = definitions.setdefault(method, here)
            row[f"{method}: definition"] = r(here, definition)
            row[f"{method}: axiomcam"] = r(
                axiomcam_map(model, image, method, "layer", target), definition)
            row[f"{method}: pytorch-grad-cam"] = r(
                grad_cam_map(model, image, grad_cam_class, model.layer, target), definition)
            if torchcam_class:
                row[f"{method}: torchcam"] = r(
                    torchcam_map(model, image, torchcam_class, "layer", target), definition)
        rows.append(row)
    return rows


def trained_evidence() -> dict[str, list[float]]:
    """The same comparison on a trained network: axiomcam's packaged MobileNetV2 (ImageNet
    weights) at its default layer ``features.18``, on the cat and the espresso."""
    import axiomcam
    from axiomcam.images import sample_image

    loaded = axiomcam.models.load("mobilenet_v2")
    model, layer = loaded.model.eval(), "features.18"
    found: dict[str, list[float]] = {"median |G|": [], "min sum A": []}
    for name in ("chelsea", "coffee"):
        image = loaded.prepare(sample_image(name))[0]
        with torch.no_grad():
            target = int(model(image[None]).argmax())
        seen = reference.capture(model, model.get_submodule(layer), image, target, "conv")
        found["median |G|"].append(float(seen.G.abs().median()))
        found["min sum A"].append(float(seen.A.sum((1, 2)).min()))
        size = tuple(image.shape[1:])
        for method, grad_cam_class in (("gradcam++", "GradCAMPlusPlus"),
                                       ("xgradcam", "XGradCAM")):
            definition = input_size_map(reference.gradient_map(method, seen.A, seen.G), size)
            peer = grad_cam_map(model, image, grad_cam_class, model.get_submodule(layer),
                                target)
            found.setdefault(f"{method}: pytorch-grad-cam", []).append(r(peer, definition))
    return found


def main() -> None:
    rows = evidence()
    print(f"the same function in other units s; r with the definition's map at s = "
          f"{SCALES[0]:g}")
    keys = list(rows[0])
    print(" | ".join(key.replace(": ", " ") for key in keys))
    for row in rows:
        print(" | ".join(f"{row[key]:.0e}" if key == "s" else
                         f"{row[key]:.3f}" if key.startswith(("xgradcam", "gradcam++"))
                         else f"{row[key]:.2g}" for key in keys))
    print("trained MobileNetV2 (axiomcam's packaged weights), features.18, chelsea / coffee:")
    for key, values in trained_evidence().items():
        print(f"  {key:28} " + " / ".join(f"{v:.3g}" if "|" in key or "sum" in key
                                          else f"{v:.4f}" for v in values))


if __name__ == "__main__":
    main()
