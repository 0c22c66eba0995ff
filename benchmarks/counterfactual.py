"""Counterfactual explanations on two-object composite images (issue 21, item 1): where
does the counterfactual map of one object's class put its mass, on that object or on the
other one? The Grad-CAM paper (Selvaraju et al., 2017, "Counterfactual explanations")
shows the counterfactual map of "cat" on a cat-and-dog image lighting up the dog.

The real pretrained MobileNetV2 (``axiomcam.models.load("mobilenet_v2")``), composite
images that all hold two objects of different classes (``CompositeBenchmark`` with
``two_object_fraction=1``, seed 0, 224 x 224, whole image resized: no crop). Each image's
two objects' classes are explained in turn, with the plain and the counterfactual map
(``counterfactual=True``), at each layer. Per map: the share of its mass in the explained
object's box, in the other object's box, and outside both
(:func:`axiomcam.metrics.class_discrimination`); whether the other box holds more than the
own one; the other box's share of the image's area (a uniform map's share, for scale) and
the enrichment, the share in the other box over its area share (1: no denser there than a
uniform map); and the paper's other claim, that removing the regions a counterfactual map
shows makes the network more confident: the relative drop of the class's probability when
the map's top 10% pixels are replaced by the image's mean colour
(:func:`axiomcam.metrics.top_removal_drop`; negative: it rose) and how often it rose. An
all-zero map (no evidence against the class anywhere) has no shares and is
counted apart. An image's value is the mean over its maps with mass; the intervals are
percentile-bootstrap 95% intervals over images (``evaluation.summary.bootstrap_interval``,
2000 resamples, seed 0).

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.counterfactual --images 100
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import torch

import axiomcam
from axiomcam.data import CompositeBenchmark
from axiomcam.evaluation import evaluation_inputs
from axiomcam.evaluation.summary import bootstrap_interval
from axiomcam.metrics import class_discrimination, top_removal_drop

LAYERS = ("features.18", "features.17.conv.1")
#: what each map is measured by, in the order the table shows
MEASURES = ("own", "other", "background", "other_wins", "other_area", "enrichment",
            "removal_drop", "removal_raises")
#: the share of the pixels replaced by the image's mean colour in the removal check
REMOVED_PERCENT = 10.0


def two_object_batches(benchmark: CompositeBenchmark, count: int, batch_size: int,
                       pretrained: object) -> Iterator[tuple[torch.Tensor, torch.Tensor,
                                                             list[torch.Tensor]]]:
    """``(inputs, classes (B, 2), boxes)`` of the benchmark's first ``count`` images, each
    with its two objects' classes and their two boxes (in input pixels)."""
    for start in range(0, count, batch_size):
        samples = [benchmark[i] for i in range(start, min(start + batch_size, count))]
        if any(len(sample.box_labels) != 2 for sample in samples):
            raise ValueError("every image must hold two objects (two_object_fraction=1)")
        inputs, boxes = evaluation_inputs(pretrained, [s.image for s in samples],
                                          [s.boxes for s in samples])
        classes = torch.stack([sample.box_labels for sample in samples])
        yield inputs, classes, boxes


def map_measures(maps: torch.Tensor, boxes: Sequence[torch.Tensor]) -> dict[str, np.ndarray]:
    """``(B, 2)`` per map (NaN for an all-zero map): the shares of its mass in its own
    object's box, in the other's, outside both, whether the other box wins, and the other
    box's share of the image's area (what a uniform map would put in it), and the ratio of
    the two (above 1: the map is denser on the other object than on average)."""
    shares: dict[str, list[torch.Tensor]] = {name: [] for name in MEASURES[:6]}
    for column in (0, 1):
        own = [image_boxes[column:column + 1] for image_boxes in boxes]
        other = [image_boxes[1 - column:2 - column] for image_boxes in boxes]
        found = class_discrimination(maps[:, column], own, other)
        empty = maps[:, column].flatten(1).sum(1) == 0
        nan = torch.full_like(found.right, math.nan)
        shares["own"].append(torch.where(empty, nan, found.right))
        shares["other"].append(torch.where(empty, nan, found.wrong))
        shares["background"].append(torch.where(empty, nan, 1 - found.right - found.wrong))
        shares["other_wins"].append(torch.where(empty, nan, (found.wrong > found.right).double()))
        area = class_discrimination(torch.ones_like(maps[:, column]), own, other).wrong
        shares["other_area"].append(torch.where(empty, nan, area))
        shares["enrichment"].append(torch.where(empty, nan, found.wrong / area))
    return {name: torch.stack(values, 1).double().cpu().numpy()
            for name, values in shares.items()}


def removal_measures(model: torch.nn.Module, inputs: torch.Tensor, maps: torch.Tensor,
                     classes: torch.Tensor) -> dict[str, np.ndarray]:
    """``(B, 2)`` per map (NaN for an all-zero map): the relative drop of the class's
    probability when the map's top :data:`REMOVED_PERCENT` % pixels are replaced by the
    image's mean colour (:func:`axiomcam.metrics.top_removal_drop`; negative: the
    probability rose), and whether it rose."""
    drops = []
    for column in (0, 1):
        drop = top_removal_drop(model, inputs, maps[:, column], classes[:, column],
                                percent=REMOVED_PERCENT)
        empty = maps[:, column].flatten(1).sum(1) == 0
        drops.append(torch.where(empty, torch.full_like(drop, math.nan), drop))
    drop = torch.stack(drops, 1).double().cpu()
    raises = torch.where(drop.isnan(), drop, (drop < 0).double())
    return {"removal_drop": drop.numpy(), "removal_raises": raises.numpy()}


def measure(pretrained: object, benchmark: CompositeBenchmark, count: int, batch_size: int,
            method: str, layers: Sequence[str]) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """``{(layer, "plain" | "counterfactual"): {measure: (images, 2) values}}``."""
    parts: dict[tuple[str, str], list[dict[str, np.ndarray]]] = {}
    for inputs, classes, boxes in two_object_batches(benchmark, count, batch_size, pretrained):
        for kind in ("plain", "counterfactual"):
            with warnings.catch_warnings():  # all-zero maps are counted, not warned about
                warnings.simplefilter("ignore", axiomcam.AxiomCamWarning)
                exp = axiomcam.explain(pretrained.model, inputs, method, list(layers),
                                       targets=classes.to(inputs.device),
                                       counterfactual=kind == "counterfactual")
            for layer in layers:
                part = exp.layers[layer] if len(layers) > 1 else exp
                found = map_measures(part.maps, boxes)
                found.update(removal_measures(pretrained.model, inputs, part.maps,
                                              classes.to(inputs.device)))
                parts.setdefault((layer, kind), []).append(found)
    return {key: {name: np.concatenate([batch[name] for batch in batches])
                  for name in MEASURES}
            for key, batches in parts.items()}


def summary_row(values: dict[str, np.ndarray], seed: int) -> dict[str, object]:
    """Means over images (each image: the mean over its maps with mass) with bootstrap
    intervals, and how many maps were all zero."""
    row: dict[str, object] = {"empty_maps": int(np.isnan(values["own"]).sum()),
                              "maps": int(values["own"].size)}
    with warnings.catch_warnings():  # an image whose two maps are both empty: NaN, dropped
        warnings.simplefilter("ignore", RuntimeWarning)
        per_image = {name: np.nanmean(values[name], axis=1) for name in MEASURES}
    kept = ~np.isnan(per_image["own"])
    row["images"] = int(kept.sum())
    for name in MEASURES:
        data = per_image[name][kept]
        low, high = bootstrap_interval(data, seed=seed)
        row[name] = {"mean": float(data.mean()), "low": low, "high": high}
    return row


def table(rows: dict[tuple[str, str], dict[str, object]]) -> str:
    """The results as a Markdown table."""
    def cell(value: dict[str, float]) -> str:
        return f"{value['mean']:.3f} [{value['low']:.3f}, {value['high']:.3f}]"

    lines = ["| layer | map | images | share in own box | share in other box | "
             "share outside both | other box > own box | other box's area | "
             "other box's enrichment | drop after removing its top 10% | probability rose | "
             "all-zero maps |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (layer, kind), row in rows.items():
        lines.append(f"| {layer} | {kind} | {row['images']} | "
                     + " | ".join(cell(row[name]) for name in MEASURES)
                     + f" | {row['empty_maps']} / {row['maps']} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    """Run the measurement and print the table (and write ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100,
                        help="two-object composite images (default 100)")
    parser.add_argument("--method", default="gradcam")
    parser.add_argument("--layers", default=",".join(LAYERS))
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="the benchmark's and bootstrap's")
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--json", default=None, help="also write the numbers here")
    options = parser.parse_args(argv)
    if options.images < 1:
        parser.error(f"--images must be at least 1, not {options.images}")
    torch.set_num_threads(1)
    started = time.perf_counter()
    pretrained = axiomcam.models.load(options.model)
    benchmark = CompositeBenchmark(options.images, pretrained.class_names, seed=options.seed,
                                   two_object_fraction=1.0)
    values = measure(pretrained, benchmark, options.images, options.batch_size,
                     options.method, options.layers.split(","))
    rows = {key: summary_row(value, options.seed) for key, value in values.items()}
    print(f"{options.method} on {benchmark.description}, two objects per image, "
          f"{options.model}, {time.perf_counter() - started:.0f} s")
    print(table(rows))
    result = {"method": options.method, "model": options.model,
              "data": benchmark.description,
              "rows": [{"layer": layer, "map": kind, **row} for (layer, kind), row in rows.items()]}
    if options.json:
        with open(options.json, "w", encoding="utf-8") as file:
            json.dump(result, file, indent=2)
    return result


if __name__ == "__main__":
    main()
