"""pytorch-grad-cam's Eigen-CAM keeps the sign the SVD happens to return.

Eigen-CAM projects the layer's positions on their first principal component.  A singular
vector is defined up to its sign, and ``numpy.linalg.svd`` returns either; pytorch-grad-cam
1.5.7's ``EigenCAM`` (``get_2d_projection``) uses ``VT[0]`` as it comes and then applies the
ReLU, so half of the time it shows the *other* half of the projection: where the layer is
least active.  (The package has ``get_2d_projection_with_sign_correction``, from
Seg-Eigen-CAM, but ``EigenCAM`` does not call it.)  axiomcam and the reference choose the
sign for which the map correlates positively with the mean activation over channels.

The demonstration: one small network, and the same network with its channels listed in
the reverse order (the convolution's filters and the classifier's columns permuted
together: the very same function, scores and activations).  The order of the channels
changes what LAPACK returns, and with it pytorch-grad-cam's map.

    python -m benchmarks.zoo_repro.eigencam_sign
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .common import axiomcam_map, grad_cam_map, r

SEED = 0


class Small(nn.Module):
    """conv -> ReLU (the target layer ``relu``) -> global average pooling -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.conv(x)).mean((2, 3)))


def reversed_channels(model: Small) -> Small:
    """The same function with the 8 channels in the reverse order."""
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.conv.weight.copy_(model.conv.weight.flip(0))
        other.conv.bias.copy_(model.conv.bias.flip(0))
        other.fc.weight.copy_(model.fc.weight.flip(1))
    return other


def evidence(seed: int = SEED) -> dict[str, float]:
    """The numbers :func:`main` prints."""
    torch.manual_seed(seed)
    model, image = Small().eval(), torch.rand(3, 12, 12)  # the layer keeps 12 x 12
    other = reversed_channels(model).eval()
    with torch.no_grad():
        scores, other_scores = model(image[None]), other(image[None])
        mean_activation = model.relu(model.conv(image[None]))[0].mean(0)
    target = int(scores.argmax())
    maps = {name: (grad_cam_map(net, image, "EigenCAM", net.relu, target),
                   axiomcam_map(net, image, "eigencam", "relu", target))
            for name, net in (("as built", model), ("reversed", other))}
    return {
        "max |score difference| between the two orders": float((scores - other_scores).abs().max()),
        "pytorch-grad-cam: r(map, map of the reversed order)":
            r(maps["as built"][0], maps["reversed"][0]),
        "pytorch-grad-cam: r(map, mean activation)": r(maps["as built"][0], mean_activation),
        "pytorch-grad-cam: r(map of the reversed order, mean activation)":
            r(maps["reversed"][0], mean_activation),
        "axiomcam: r(map, map of the reversed order)":
            r(maps["as built"][1], maps["reversed"][1]),
        "axiomcam: r(map, mean activation)": r(maps["as built"][1], mean_activation),
    }


def main() -> None:
    print(f"Eigen-CAM of one network and of the same network with its channels reversed "
          f"(seed {SEED})")
    for key, value in evidence().items():
        print(f"  {key:66} {value: .4f}" if "r(" in key else f"  {key:66} {value: .2g}")


if __name__ == "__main__":
    main()
