"""FullGrad and ``aug_smooth`` against pytorch-grad-cam 1.5.7, side by side (issue 22).

The real pretrained MobileNetV2 (``axiomcam.models.load("mobilenet_v2")``), composite images
(``CompositeBenchmark``, seed 0, 224 x 224, whole image resized), each image's top class
explained. Per method: the seconds per batch of each library (best of ``--repeats``, one
torch thread), and how far their maps are apart (per image, the largest absolute difference
and Pearson's r of the flattened maps; the mean over images):

- ``fullgrad``: axiomcam's FullGrad and pytorch-grad-cam's ``FullGrad``. They differ by
  design (docs/peers.md, "FullGrad"): pytorch-grad-cam min-max scales every channel of every
  term on its own, the paper each term as a whole. The third row rebuilds pytorch-grad-cam's
  per-channel form from axiomcam's own full gradients (``FullGrad.decompose``) and shows
  that this is the whole difference.
- ``gradcam + aug_smooth``: both libraries' test-time augmentation (flip x values times
  0.9, 1, 1.1) at ``features.18``; pytorch-grad-cam's mean is min-max scaled as ours is
  before comparing (its own output is the unscaled mean), and both explain the class
  chosen on the clean image.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.fullgrad_peers --images 8
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import axiomcam
from axiomcam.data import CompositeBenchmark
from axiomcam.evaluation import evaluation_inputs
from axiomcam.methods import FullGrad


def _best_seconds(call: Callable[[], object], repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - started)
    return best, result


def _minmax(maps: torch.Tensor) -> torch.Tensor:
    low = maps.amin((1, 2), keepdim=True)
    return (maps - low) / (maps.amax((1, 2), keepdim=True) - low).clamp_min(1e-12)


def _distance(first: torch.Tensor, second: torch.Tensor) -> tuple[float, float]:
    """Mean over images of the largest absolute difference and of Pearson's r."""
    diffs = (first - second).abs().flatten(1).amax(1)
    a, b = first.flatten(1), second.flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    r = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)
    return float(diffs.mean()), float(r.mean())


def per_channel_fullgrad(method: FullGrad, inputs: torch.Tensor,
                         classes: torch.Tensor) -> torch.Tensor:
    """pytorch-grad-cam's FullGrad rebuilt from axiomcam's full gradients: every channel of
    every spatial term min-max scaled on its own (``+1e-7``), upsampled, summed, scaled."""
    parts = method.decompose(inputs, classes[:, None])
    terms = [parts.input_gradient * inputs[:, None],
             *(term for term in parts.bias_gradients if term.dim() == inputs.dim() + 1)]
    total = torch.zeros(inputs.shape[0], *inputs.shape[2:])
    for term in terms:
        magnitude = term[:, 0].abs()
        low = magnitude.amin((2, 3), keepdim=True)
        scaled = (magnitude - low) / (magnitude.amax((2, 3), keepdim=True) - low + 1e-7)
        total += F.interpolate(scaled, size=inputs.shape[2:], mode="bilinear",
                               align_corners=False).sum(1)
    return _minmax(total)


def measure(images: int, repeats: int) -> list[dict[str, object]]:
    """One row per comparison (see the module's docstring)."""
    from pytorch_grad_cam import FullGrad as PeerFullGrad
    from pytorch_grad_cam import GradCAM as PeerGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    pretrained = axiomcam.models.load("mobilenet_v2")
    model = pretrained.model.eval()
    benchmark = CompositeBenchmark(images, pretrained.class_names, seed=0)
    samples = [benchmark[i] for i in range(images)]
    inputs, _ = evaluation_inputs(pretrained, [s.image for s in samples],
                                  [torch.zeros(0, 4)] * images)
    with torch.no_grad():
        classes = model(inputs).argmax(1)
    peer_targets = [ClassifierOutputTarget(int(c)) for c in classes]

    def peer(method_class: type, layers: list, aug_smooth: bool = False) -> torch.Tensor:
        with method_class(model=model, target_layers=layers) as cam, \
                contextlib.redirect_stdout(io.StringIO()):
            maps = cam(input_tensor=inputs, targets=peer_targets, aug_smooth=aug_smooth)
        model.zero_grad(set_to_none=True)
        return torch.from_numpy(maps).float()

    rows = []
    ours_s, ours = _best_seconds(lambda: FullGrad(model)(inputs, classes).maps, repeats)
    theirs_s, theirs = _best_seconds(lambda: peer(PeerFullGrad, []), repeats)
    rows.append({"method": "fullgrad", "axiomcam s": ours_s, "pytorch-grad-cam s": theirs_s,
                 "max |diff|, r": _distance(ours, theirs)})
    rebuilt = per_channel_fullgrad(FullGrad(model), inputs, classes)
    rows.append({"method": "fullgrad, per-channel rebuilt", "axiomcam s": None,
                 "pytorch-grad-cam s": None, "max |diff|, r": _distance(rebuilt, theirs)})
    layer = model.get_submodule("features.18")
    ours_s, ours = _best_seconds(lambda: axiomcam.explain(
        model, inputs, "gradcam", "features.18", classes, aug_smooth=True).maps, repeats)
    theirs_s, theirs = _best_seconds(lambda: peer(PeerGradCAM, [layer], True), repeats)
    rows.append({"method": "gradcam + aug_smooth", "axiomcam s": ours_s,
                 "pytorch-grad-cam s": theirs_s,
                 "max |diff|, r": _distance(ours, _minmax(theirs))})
    return rows


def main() -> None:
    """Print the table (module docstring: what it measures and how to run it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"MobileNetV2, {args.images} composite images, one batch, best of {args.repeats}")
    print("| method | axiomcam s | pytorch-grad-cam s | mean max abs diff | mean r |")
    print("|---|---|---|---|---|")
    for row in measure(args.images, args.repeats):
        def seconds(value: object) -> str:
            return "-" if value is None else f"{value:.2f}"
        diff, r = row["max |diff|, r"]
        print(f"| {row['method']} | {seconds(row['axiomcam s'])} | "
              f"{seconds(row['pytorch-grad-cam s'])} | {diff:.4f} | {r:.4f} |")


if __name__ == "__main__":
    main()
