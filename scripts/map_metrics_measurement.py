"""The measurement of docs/evaluation.md, "Complexity, random logit, localisation against
masks": the Quantus-style metric groups ``complexity``, ``random_logit`` and
``mask_localization`` for the cheap CAM methods on the composite benchmark, pretrained
MobileNetV2 at its default layer (issue 22).

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/map_metrics_measurement.py \
        [--images 48] [--out results/map_metrics]

One ``axiomcam.evaluation.evaluate`` run in OUT (each image explained for its label),
then a Markdown table: mean and 95% bootstrap interval over the images per method and
metric, and, as a yardstick, what a uniform map and the label's box drawn as a map would
score on the same masks. Run again on the same OUT, it only summarises.
"""

from __future__ import annotations

import argparse
import time

import torch

from axiomcam import models
from axiomcam.data import open_dataset
from axiomcam.evaluation import evaluate
from axiomcam.metrics import (
    attribution_localisation,
    boxes_to_masks,
    complexity,
    effective_complexity,
    mask_auc,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    sparseness,
    top_k_intersection,
)

METHODS = ["gradcam", "gradcam++", "xgradcam", "layercam", "ablationcam"]
GROUPS = "complexity,random_logit,mask_localization"
COLUMNS = ["sparseness", "complexity", "effective_complexity", "random_logit_ssim",
           "relevance_mass_accuracy", "relevance_rank_accuracy", "top_k_intersection",
           "attribution_localisation", "mask_auc"]


def table(summaries: list, methods: list[str]) -> str:
    """A Markdown table: one row per method, ``mean [low, high]`` per metric."""
    by_key = {(s.method, s.metric): s for s in summaries}
    count = max(s.n for s in summaries if s.metric == "mask_auc")
    lines = [f"| method (n = {count}) | " + " | ".join(COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for method in methods:
        cells = [f"{by_key[(method, m)].mean:.3g} [{by_key[(method, m)].low:.3g}, "
                 f"{by_key[(method, m)].high:.3g}]" for m in COLUMNS]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def yardsticks(class_names: list[str], images: int, size: int) -> str:
    """The scores of a uniform map and of the label's boxes as a 0/1 map, on the same
    silhouettes (at the input size, as the runs see them)."""
    rows = {"uniform map": [], "label's box as map": []}
    for sample in open_dataset(f"composite:{images}", class_names):
        of_label = sample.box_labels == sample.label
        truth = sample.masks[of_label].any(dim=0)[None, None].float()
        truth = torch.nn.functional.interpolate(truth, size=(size, size))[0] > 0.5
        scale = size / sample.image.width
        box = boxes_to_masks([sample.boxes[of_label] * scale], size, size).float()
        for name, maps in (("uniform map", torch.ones(1, size, size)),
                           ("label's box as map", box)):
            rows[name].append(
                [float(f(maps)) for f in (sparseness, complexity, effective_complexity)]
                + [float(f(maps, truth)) for f in (
                    relevance_mass_accuracy, relevance_rank_accuracy,
                    lambda m, t: top_k_intersection(m, t, k=1000), attribution_localisation,
                    mask_auc)])
    lines = []
    for name, values in rows.items():
        means = torch.tensor(values).mean(dim=0).tolist()
        cells = [f"{v:.3g}" for v in means[:3]] + ["—"] + [f"{v:.3g}" for v in means[3:]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--out", default="results/map_metrics")
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    pretrained = models.load("mobilenet_v2")
    start = time.perf_counter()
    run = evaluate(pretrained, f"composite:{arguments.images}", METHODS, out_dir=arguments.out,
                   metrics=GROUPS, batch_size=16, progress=False, gallery_images=0)
    seconds = time.perf_counter() - start
    print(f"MobileNetV2 at {run.target_layer}, composite:{arguments.images}, "
          f"{seconds:.0f} s (stage seconds: "
          + ", ".join(f"{k} {v:.1f}" for k, v in run.seconds.items()) + ")\n")
    print(table(run.summaries, METHODS))
    print(yardsticks(pretrained.class_names, arguments.images, pretrained.input_size))


if __name__ == "__main__":
    main()
