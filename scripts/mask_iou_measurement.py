"""The measurement of docs/applications.md, "Maps as segmentation seeds and boxes": mask IoU
and box IoU of each CAM method on the composite benchmark, pretrained MobileNetV2 at
features.18 and features.17.conv.1 (issue 21, item 3).

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/mask_iou_measurement.py \
        [--images 200] [--out results/masks]

Each layer is one ``axiomcam.evaluation.evaluate`` run (metric groups ``mask_iou`` and
``localization``, each image explained for its label) in ``OUT/<layer>``; the script then
prints one Markdown table per layer: mean and 95% bootstrap interval over the images, and
the mask IoU a map would reach if it covered exactly the object's box (how much of the
boxes is object: the ceiling of a box-shaped map), and Grad-CAM's ``mask_iou_best`` per
object class. Run again on the same OUT, it only summarises (the runs are complete).
Expensive methods (Ablation-CAM, Score-CAM) are left out to keep it to minutes; CAM only
at features.18, the last convolutional stage, where it is defined.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from axiomcam import models
from axiomcam.data import open_dataset
from axiomcam.evaluation import evaluate
from axiomcam.evaluation.store import ResultStore
from axiomcam.evaluation.summary import bootstrap_interval
from axiomcam.metrics import mask_iou

METHODS = ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam"]
LAYERS = {"features.18": ["cam", *METHODS], "features.17.conv.1": METHODS}
COLUMNS = ["mask_iou", "mask_iou_otsu", "mask_iou_best", "localization_iou",
           "localization_error"]


def table(summaries: list, methods: list[str]) -> str:
    """A Markdown table: one row per method, ``mean [low, high]`` per metric."""
    by_key = {(s.method, s.metric): s for s in summaries}
    count = max(s.n for s in summaries if s.metric == "mask_iou")
    lines = [f"| method (n = {count}) | " + " | ".join(COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for method in methods:
        cells = []
        for metric in COLUMNS:
            s = by_key[(method, metric)]
            cells.append(f"{s.mean:.3g} [{s.low:.3g}, {s.high:.3g}]")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def box_ceiling(class_names: list[str], images: int) -> str:
    """The mean IoU of each image's label box (as a mask) with the label's silhouette."""
    values = []
    for sample in open_dataset(f"composite:{images}", class_names):
        of_label = sample.box_labels == sample.label
        truth = sample.masks[of_label].any(dim=0)
        box = torch.zeros_like(truth)
        for x0, y0, x1, y1 in sample.boxes[of_label].int().tolist():
            box[y0:y1, x0:x1] = True
        values.append(float(mask_iou(box[None], truth[None])[0]))
    low, high = bootstrap_interval(values, seed=0)
    return f"{sum(values) / len(values):.3g} [{low:.3g}, {high:.3g}] (n = {len(values)})"


def per_class(out_dir: Path, class_names: list[str], method: str = "gradcam",
              metric: str = "mask_iou_best") -> str:
    """``class: mean (n)`` of one method's metric per label, from a run's database."""
    with ResultStore.open(out_dir) as store:
        labels = {row.image_id: row.label for row in store.images()}
        by_class: dict[str, list[float]] = {}
        for row in store.results(method, metric):
            by_class.setdefault(class_names[labels[row.image_id]], []).append(row.value)
    return ", ".join(f"{name} {sum(v) / len(v):.3g} (n = {len(v)})"
                     for name, v in sorted(by_class.items()))


def main() -> None:
    """Run both layers and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("results/masks"))
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    pretrained = models.load("mobilenet_v2")
    print(f"box as mask: {box_ceiling(pretrained.class_names, arguments.images)}")
    for layer, methods in LAYERS.items():
        start = time.perf_counter()
        run = evaluate(pretrained, f"composite:{arguments.images}", methods, target_layer=layer,
                       out_dir=arguments.out / layer, metrics="localization,mask_iou",
                       batch_size=16, gallery_images=0, progress=False)
        print(f"\n### {layer} ({time.perf_counter() - start:.0f} s)\n")
        print(table(run.summaries, methods))
        print(f"\nGrad-CAM mask_iou_best per class: "
              f"{per_class(arguments.out / layer, pretrained.class_names)}")


if __name__ == "__main__":
    main()
