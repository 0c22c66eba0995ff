"""Eigen-Grad-CAM, KPCA-CAM, FEM, Random-CAM and ``eigen_smooth``: axiomcam against
pytorch-grad-cam 1.5.7 on the real pretrained MobileNetV2, side by side (``docs/peers.md``).

Composite images (``CompositeBenchmark``, seed 0, whole image resized to 224), each image's
top class, at ``features.18`` (7 x 7, 1280 channels). Per method: the median time of one
batch over ``--repeats`` runs in each library, and per image the Pearson correlation of
pytorch-grad-cam's map with axiomcam's (``r``) and with axiomcam's *opposite-sign* map
``minmax(ReLU(-raw))`` (``r_flipped``); an image whose ``r_flipped`` is the larger one is
one where pytorch-grad-cam kept the component's other sign (``flipped``). ``max |diff|``
is the largest pixel difference to the better of the two (maps in [0, 1]; the libraries
also differ in where they min-max scale: pytorch-grad-cam before its OpenCV resize,
axiomcam after upsampling). Random-CAM has random weights in both; it is timed only.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.decomposition_peers --images 16
"""

from __future__ import annotations

import argparse
import functools
import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch

from axiomcam.data import CompositeBenchmark
from axiomcam.evaluation import evaluation_inputs
from axiomcam.methods import create
from axiomcam.methods.maps import minmax_scale_quiet, upsample
from axiomcam.models import load

LAYER = "features.18"
#: axiomcam name and options -> pytorch-grad-cam class and options
CASES: dict[str, tuple[str, dict[str, object], str, dict[str, object]]] = {
    "eigengradcam": ("eigengradcam", {}, "EigenGradCAM", {}),
    "kpcacam (sigmoid)": ("kpcacam", {}, "KPCA_CAM", {}),
    "kpcacam (rbf)": ("kpcacam", {"kernel": "rbf"}, "KPCA_CAM", {"kernel": "rbf"}),
    "fem": ("fem", {}, "FEM", {}),
    "gradcam eigen_smooth": ("gradcam", {"eigen_smooth": True}, "GradCAM",
                             {"eigen_smooth": True}),
    "xgradcam eigen_smooth": ("xgradcam", {"eigen_smooth": True}, "XGradCAM",
                              {"eigen_smooth": True}),
    "randomcam": ("randomcam", {"seed": 0}, "RandomCAM", {}),
}


def timed(call: Callable[[], object], repeats: int) -> tuple[object, float]:
    """The result of ``call`` and its median time in seconds over ``repeats`` runs."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - started)
    return result, float(np.median(seconds))


def peer_call(class_name: str, options: dict[str, object], model: torch.nn.Module,
              inputs: torch.Tensor, classes: list[int]) -> Callable[[], np.ndarray]:
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    options = dict(options)
    eigen_smooth = bool(options.pop("eigen_smooth", False))

    def call() -> np.ndarray:
        with getattr(pytorch_grad_cam, class_name)(
                model=model, target_layers=[model.get_submodule(LAYER)], **options) as cam:
            maps = cam(input_tensor=inputs, targets=[ClassifierOutputTarget(c) for c in classes],
                       eigen_smooth=eigen_smooth)
        model.zero_grad(set_to_none=True)
        return maps

    return call


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / denominator if denominator > 0 else float("nan")


def compare_maps(raw: torch.Tensor, theirs: np.ndarray, size: tuple[int, int]
                 ) -> list[tuple[float, float, float]]:
    """Per image: ``(r, r_flipped, max |diff| to the better sign)``."""
    rows = []
    ours, flipped = (minmax_scale_quiet(upsample(torch.relu(sign * raw[:, None]), size))[:, 0]
                     .numpy() for sign in (1, -1))
    for image, peer in enumerate(theirs):
        r, r_flipped = pearson(peer, ours[image]), pearson(peer, flipped[image])
        best = flipped[image] if r_flipped > r else ours[image]
        rows.append((r, r_flipped, float(np.abs(peer - best).max())))
    return rows


def run(images: int, batch_size: int, repeats: int) -> dict[str, dict[str, float]]:
    """Measure every case on the first ``images`` composite images."""
    torch.set_num_threads(1)
    pretrained = load("mobilenet_v2")
    model = pretrained.model.eval()
    benchmark = CompositeBenchmark(images, pretrained.class_names, seed=0)
    results: dict[str, dict[str, list[float]]] = {
        case: {"ours": [], "peer": [], "r": [], "flipped": [], "diff": []} for case in CASES}
    for start in range(0, images, batch_size):
        samples = [benchmark[i] for i in range(start, min(start + batch_size, images))]
        inputs, _ = evaluation_inputs(pretrained, [s.image for s in samples],
                                      [s.boxes for s in samples])
        with torch.no_grad():
            classes = model(inputs).argmax(1).tolist()
        for case, (name, options, peer_class, peer_options) in CASES.items():
            explainer = create(name, model, LAYER, **options)
            explanation, ours_time = timed(functools.partial(explainer, inputs, classes),
                                           repeats)
            theirs, peer_time = timed(
                peer_call(peer_class, peer_options, model, inputs, classes), repeats)
            results[case]["ours"].append(ours_time)
            results[case]["peer"].append(peer_time)
            if name == "randomcam":
                continue
            for r, r_flipped, diff in compare_maps(explanation.raw, theirs,
                                                   tuple(inputs.shape[2:])):
                results[case]["r"].append(r)
                results[case]["flipped"].append(float(r_flipped > r))
                results[case]["diff"].append(diff)
    return {case: summarise(values) for case, values in results.items()}


def summarise(values: dict[str, list[float]]) -> dict[str, float]:
    summary = {"ours_s": float(np.sum(values["ours"])), "peer_s": float(np.sum(values["peer"]))}
    if values["r"]:
        summary.update(median_r=float(np.median(values["r"])),
                       flipped=float(np.sum(values["flipped"])), images=len(values["r"]),
                       max_diff=float(np.max(values["diff"])))
    return summary


def table(summary: dict[str, dict[str, float]]) -> str:
    lines = ["| method | axiomcam s | pytorch-grad-cam s | median r | pgc sign flipped | "
             "max abs diff (better sign) |", "|---|---|---|---|---|---|"]
    for case, row in summary.items():
        if "median_r" in row:
            lines.append(f"| {case} | {row['ours_s']:.2f} | {row['peer_s']:.2f} | "
                         f"{row['median_r']:.3f} | {row['flipped']:.0f} / {row['images']} | "
                         f"{row['max_diff']:.1e} |")
        else:
            lines.append(f"| {case} | {row['ours_s']:.2f} | {row['peer_s']:.2f} | "
                         "- | - | - |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = run(args.images, args.batch_size, args.repeats)
    print(f"{args.images} composite images, MobileNetV2 {LAYER}, times summed over batches "
          f"of {args.batch_size} (median of {args.repeats})")
    print(table(summary))
    return summary


if __name__ == "__main__":
    main()
