"""DenseNet-121's in-place ReLU after its target layer, in pytorch-grad-cam and torchcam.

torchvision's DenseNet ends ``features = self.features(x); out = F.relu(features,
inplace=True)``: the ReLU overwrites the output of ``features.norm5`` (axiomcam's default
layer, a BatchNorm with signed values) in place, *after* the forward hooks have run.

- pytorch-grad-cam keeps ``output.cpu().detach()``: on the CPU ``.cpu()`` returns the same
  tensor, so what it keeps is overwritten by the ReLU (on a GPU ``.cpu()`` copies and the
  activation is right).  Its gradient hook was registered before the in-place op, so it
  receives ``dy/dA`` of the *signed* output.  Its maps combine ``ReLU(A)`` with the
  gradient of ``A``: the definition at no layer.
- torchcam keeps ``output.detach()`` (same storage: overwritten on every device) and takes
  ``torch.autograd.grad(loss, output)`` of the tensor *after* the in-place op: the
  gradient of ``ReLU(A)``.  Its maps are the definition at the ReLU's output, a layer the
  user did not ask for (the same maps the user would get by hooking a ReLU module there).
- axiomcam (and the reference) keep a copy and pass a clone on: the layer's own output.

Where this shows: XGrad-CAM (``sum A G / sum A``: ``sum ReLU(A)`` is not ``sum A``),
Eigen-CAM (the SVD of ``ReLU(A)``), less in Grad-CAM (``ReLU(A)`` in the weighted sum).

    python -m benchmarks.zoo_repro.inplace_relu           # a 3-layer model, then DenseNet-121
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from .. import zoo_reference as reference
from .common import axiomcam_map, grad_cam_map, input_size_map, r, torchcam_map


class DenseNetEnding(nn.Module):
    """conv -> BatchNorm (the target layer ``norm``) -> in-place ReLU -> global average
    pooling -> linear: how DenseNet-121 ends."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.norm = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm(self.conv(x)), inplace=True)  # as torchvision's DenseNet
        return self.fc(out.mean((2, 3)))


def what_the_peers_keep(model: nn.Module, layer: str, image: torch.Tensor,
                        target: int) -> dict[str, torch.Tensor]:
    """The activation and gradient pytorch-grad-cam and torchcam keep, from the objects
    themselves after one call."""
    import pytorch_grad_cam
    import torchcam.methods
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    module = model.get_submodule(layer)
    with pytorch_grad_cam.XGradCAM(model=model, target_layers=[module]) as cam:
        cam(input_tensor=image[None], targets=[ClassifierOutputTarget(target)])
        kept = cam.activations_and_grads
        grad_cam_a, grad_cam_g = kept.activations[0][0].double(), kept.gradients[0][0].double()
    model.zero_grad(set_to_none=True)
    with torchcam.methods.XGradCAM(model, target_layer=layer) as cam:
        cam(class_idx=target, scores=model(image[None]))
        torchcam_a, torchcam_g = cam.hook_a[0][0].double(), cam.hook_g[0][0].double()
    return {"grad_cam_A": grad_cam_a, "grad_cam_G": grad_cam_g,
            "torchcam_A": torchcam_a, "torchcam_G": torchcam_g}


def evidence(model: nn.Module | None = None, layer: str = "norm",
             image: torch.Tensor | None = None) -> dict[str, float]:
    """The numbers :func:`main` prints (default: :class:`DenseNetEnding`, seed 0)."""
    if model is None:
        torch.manual_seed(0)
        model, image = DenseNetEnding().eval(), torch.randn(3, 24, 24)
    with torch.no_grad():
        target = int(model(image[None]).argmax())
    seen = reference.capture(model, model.get_submodule(layer), image, target, "conv")
    A, G = seen.A, seen.G
    kept = what_the_peers_keep(model, layer, image, target)
    size = tuple(image.shape[1:])

    def xgradcam(activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
        return input_size_map(reference.gradient_map("xgradcam", activation, gradient), size)

    definition = xgradcam(A, G)
    grad_cam = grad_cam_map(model, image, "XGradCAM", model.get_submodule(layer), target)
    torchcam = torchcam_map(model, image, "XGradCAM", layer, target)
    return {
        "min of the layer's output": float(A.min()),
        "min of pytorch-grad-cam's kept activation": float(kept["grad_cam_A"].min()),
        "min of torchcam's kept activation": float(kept["torchcam_A"].min()),
        "pytorch-grad-cam's G - dy/dA (max abs)": float((kept["grad_cam_G"] - G).abs().max()),
        "torchcam's G * (A > 0) - dy/dA (max abs)":
            float((kept["torchcam_G"] * (A > 0) - G).abs().max()),
        "share of torchcam's G nonzero where A < 0":
            float((kept["torchcam_G"][A < 0] != 0).double().mean()),
        "r(axiomcam, definition)": r(axiomcam_map(model, image, "xgradcam", layer, target),
                                     definition),
        "r(pytorch-grad-cam, definition)": r(grad_cam, definition),
        "r(pytorch-grad-cam, formula on ReLU(A) and dy/dA)": r(grad_cam,
                                                              xgradcam(A.clamp_min(0), G)),
        "r(torchcam, definition)": r(torchcam, definition),
        "r(torchcam, formula on ReLU(A) and dy/dReLU(A))":
            r(torchcam, xgradcam(A.clamp_min(0), kept["torchcam_G"])),
    }


def densenet_evidence() -> dict[str, float]:
    """:func:`evidence` on DenseNet-121 itself (random weights, seed 0, one 224 px image)."""
    torch.manual_seed(0)
    model = torchvision.models.densenet121(weights=None).eval()
    return evidence(model, "features.norm5", torch.randn(3, 224, 224))


def main() -> None:
    for title, numbers in (("3-layer model ending like DenseNet (seed 0)", evidence()),
                           ("DenseNet-121, random weights, features.norm5", densenet_evidence())):
        print(f"{title}: XGrad-CAM")
        for key, value in numbers.items():
            print(f"  {key:52} {value: .4f}" if key.startswith("r(") else
                  f"  {key:52} {value: .4g}")


if __name__ == "__main__":
    main()
