"""A target layer the network calls several times: pytorch-grad-cam explains the first call.

Some networks use one activation module at several places: axiomcam's packaged
EfficientNet-Lite0 (``efficientnet_lite_pytorch``) has one ``ReLU6`` module, ``_swish``,
called after the stem convolution and again after the head convolution.  Its default layer
is that module, and axiomcam explains its *last* call (the head's output, the
one closest to the scores; ``axiomcam.methods.capture.LayerCapture``).  torchcam keeps the
last call too (its hooks overwrite what they keep).  pytorch-grad-cam 1.5.7 appends every
call's activation and prepends every call's gradient, then uses element 0 of both: the
*first* call's activation and gradient, the stem's output at 112 x 112 -- another layer.
None of the 19 torchvision classifiers in the zoo calls its default layer twice; this shows
on axiomcam's own packaged model.

    python -m benchmarks.zoo_repro.shared_module          # a small model, then EfficientNet-Lite0
"""

from __future__ import annotations

import torch
from torch import nn

from .. import zoo_reference as reference
from .common import axiomcam_map, grad_cam_map, input_size_map, r, torchcam_map


class SharedActivation(nn.Module):
    """conv -> ``act`` -> strided conv -> ``act`` (the same ReLU6 module: the target
    layer) -> global average pooling -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.act = nn.ReLU6()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.head(self.act(self.stem(x)))).mean((2, 3)))


def evidence(model: nn.Module | None = None, layer: str = "act",
             image: torch.Tensor | None = None) -> dict[str, object]:
    """The numbers :func:`main` prints (default: :class:`SharedActivation`, seed 0)."""
    if model is None:
        torch.manual_seed(0)
        model, image = SharedActivation().eval(), torch.rand(3, 16, 16)
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    module = model.get_submodule(layer)
    with torch.no_grad():
        target = int(model(image[None]).argmax())
    with pytorch_grad_cam.GradCAM(model=model, target_layers=[module]) as cam:
        cam(input_tensor=image[None], targets=[ClassifierOutputTarget(target)])
        kept = cam.activations_and_grads
        shapes = (tuple(kept.activations[0].shape[1:]), tuple(kept.gradients[0].shape[1:]))
    model.zero_grad(set_to_none=True)
    size = tuple(image.shape[1:])
    first, last = (reference.capture(model, module, image, target, "conv", call)
                   for call in (0, -1))
    at_first, at_last = (input_size_map(reference.gradient_map("gradcam", seen.A, seen.G),
                                        size) for seen in (first, last))
    grad_cam = grad_cam_map(model, image, "GradCAM", module, target)
    return {
        "calls of the layer": last.calls,
        "first call's output (C, h, w)": tuple(first.A.shape),
        "last call's output (C, h, w)": tuple(last.A.shape),
        "pytorch-grad-cam keeps (activation, gradient)": shapes,
        "r(axiomcam, definition at the last call)": r(
            axiomcam_map(model, image, "gradcam", layer, target), at_last),
        "r(torchcam, definition at the last call)": r(
            torchcam_map(model, image, "GradCAM", layer, target), at_last),
        "r(pytorch-grad-cam, definition at the last call)": r(grad_cam, at_last),
        "r(pytorch-grad-cam, definition at the first call)": r(grad_cam, at_first),
    }


def lite0_evidence() -> dict[str, object]:
    """:func:`evidence` on axiomcam's packaged EfficientNet-Lite0 and the cat photograph."""
    import axiomcam
    from axiomcam.images import sample_image

    loaded = axiomcam.models.load("efficientnet_lite0")
    image = loaded.prepare(sample_image("chelsea"))[0]
    return evidence(loaded.model.eval(), "_swish", image)


def main() -> None:
    for title, numbers in (("small model, one ReLU6 module called twice (seed 0)", evidence()),
                           ("EfficientNet-Lite0 (axiomcam's packaged weights), _swish",
                            lite0_evidence())):
        print(f"{title}: Grad-CAM")
        for key, value in numbers.items():
            print(f"  {key:52} {value: .4f}" if key.startswith("r(") else f"  {key:52} {value}")


if __name__ == "__main__":
    main()
