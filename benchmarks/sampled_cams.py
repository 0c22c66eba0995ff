"""SS-CAM, IS-CAM and Smooth Grad-CAM++: axiomcam and torchcam 0.5 side by side (issue 22)
on the real pretrained MobileNetV2 (``axiomcam.models.load("mobilenet_v2")``, packaged
weights) and composite images, at ``--layer`` (``features.18``: 1280 channels, 7 x 7;
``features.17``: 320): seconds per image
and the Pearson correlation of the two maps (each upsampled to the input).

The definitions differ (docs/peers.md, "torchcam's sampled methods"): torchcam softmaxes
logit differences over channels, scales IS-CAM's masks by a cumulative coefficient, and
builds Smooth Grad-CAM++ from the last noisy copy. The noise is the same: torchcam draws
from the global generator seeded with ``--seed``, axiomcam from a generator with that seed.

Run (a few minutes on one thread):
    PYTHONPATH=src python -m benchmarks.sampled_cams --images 1 --layer features.17
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
import torch.nn.functional as F

import axiomcam
from axiomcam.data import CompositeBenchmark
from axiomcam.evaluation import evaluation_inputs
from axiomcam.methods import ISCAM, SSCAM, SmoothGradCAMPlusPlus

#: (name, axiomcam class, torchcam class name, options): few samples, to keep it short
METHODS = (
    ("sscam", SSCAM, "SSCAM", {"num_samples": 2, "std": 2.0}),
    ("iscam", ISCAM, "ISCAM", {"num_samples": 3}),
    ("smoothgradcam++", SmoothGradCAMPlusPlus, "SmoothGradCAMpp", {"num_samples": 4, "std": 0.3}),
)


def correlation(first: torch.Tensor, second: torch.Tensor) -> float:
    """Pearson's r of two maps (NaN when one is constant)."""
    a, b = first.flatten().double(), second.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def run_torchcam(name: str, model: torch.nn.Module, image: torch.Tensor, target: int,
                 seed: int, options: dict) -> torch.Tensor:
    import torchcam.methods

    extractor_class = getattr(torchcam.methods, name)
    layer = options.pop("layer")
    extra = {"batch_size": 16} if name != "SmoothGradCAMpp" else {}
    with extractor_class(model, layer, input_shape=tuple(image.shape[1:]), **options,
                         **extra) as extractor:
        scores = model(image[None])
        torch.manual_seed(seed)
        (cam,) = extractor(target, scores)
    return F.interpolate(cam[None].detach(), size=image.shape[1:], mode="bilinear",
                         align_corners=False)[0, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layer", default="features.18",
                        help="target layer (features.17: 320 channels, a quicker run)")
    options = parser.parse_args()
    torch.set_num_threads(1)
    pretrained = axiomcam.models.load("mobilenet_v2")
    model = pretrained.model.eval()
    benchmark = CompositeBenchmark(options.images, pretrained.class_names, seed=options.seed)
    samples = [benchmark[i] for i in range(options.images)]
    inputs, _ = evaluation_inputs(pretrained, [s.image for s in samples],
                                  [s.boxes for s in samples])
    with torch.no_grad():
        targets = model(inputs).argmax(1).tolist()
    print(f"MobileNetV2 {options.layer}, {options.images} composite images, seed {options.seed}")
    print(f"{'method':18} {'options':28} {'axiomcam s/img':>15} {'torchcam s/img':>15} "
          f"{'r per image':>20}")
    for name, cls, peer, method_options in METHODS:
        ours_seconds = peer_seconds = 0.0
        rs = []
        for image, target in zip(inputs, targets, strict=True):
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ours = cls(model, options.layer, seed=options.seed, batch_size=16,
                           **method_options)(image[None], target).maps[0]
            ours_seconds += time.perf_counter() - start
            start = time.perf_counter()
            theirs = run_torchcam(peer, model, image, target, options.seed,
                                  {**method_options, "layer": options.layer})
            peer_seconds += time.perf_counter() - start
            rs.append(correlation(ours, theirs))
        described = ", ".join(f"{k}={v}" for k, v in method_options.items())
        print(f"{name:18} {described:28} {ours_seconds / len(inputs):15.1f} "
              f"{peer_seconds / len(inputs):15.1f} {' / '.join(f'{r:.3f}' for r in rs):>20}")


if __name__ == "__main__":
    main()
