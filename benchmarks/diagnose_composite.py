"""The failures of the real pretrained MobileNetV2 on the composite benchmark, diagnosed
(``axiomcam diagnose``; docs/applications.md, "Diagnosing failures"): how many, the top
confusion pairs, where the predicted class's evidence lies (verdict fractions and mean
shares with 95% bootstrap intervals), split by one- and two-object images, and how many
failures name a sibling class the benchmark accepts (``CompositeObject.related``).

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.diagnose_composite \\
        [--count 200] [--method xgradcam] [--layer features.18] [--tolerance 15] \\
        [--out results/diagnose]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import torch

from axiomcam import models
from axiomcam.data import CompositeBenchmark
from axiomcam.data.composite import OBJECTS
from axiomcam.evaluation.summary import bootstrap_interval
from axiomcam.metrics import EVIDENCE_REGIONS
from axiomcam.workflows import Misclassification, diagnose


def _interval(values: Sequence[float], seed: int) -> str:
    if not values:
        return "-"
    low, high = bootstrap_interval(values, seed=seed)
    return f"{np.mean(values):.3f} [{low:.3f}, {high:.3f}]"


def _evidence_table(failures: Sequence[Misclassification], seed: int) -> list[str]:
    """Verdict fractions and mean shares (predicted class, true class, area) by region."""
    located = [f for f in failures if f.evidence is not None]
    lines = [f"  {len(located)} failures with boxes",
             "  region        | verdict (peak) fraction | predicted map share  | "
             "true map share       | area share"]
    for region in EVIDENCE_REGIONS:
        verdicts = [float(f.evidence.verdict == region) for f in located]
        shares = [[f.evidence.shares()[region] for f in located],
                  [f.true_evidence.shares()[region] for f in located],
                  [f.area.shares()[region] for f in located]]
        lines.append(f"  {region:13} | {int(sum(verdicts)):3d} = {_interval(verdicts, seed):19}"
                     f" | " + " | ".join(_interval(values, seed) for values in shares))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", default="xgradcam")
    parser.add_argument("--layer", default=None)
    parser.add_argument("--tolerance", type=float, default=15.0)
    parser.add_argument("--out", default="results/diagnose")
    options = parser.parse_args()
    torch.set_num_threads(1)
    pretrained = models.load("mobilenet_v2")
    benchmark = CompositeBenchmark(options.count, pretrained.class_names, seed=options.seed)
    run = diagnose(pretrained, benchmark, options.out, method=options.method,
                   layer=options.layer, tolerance=options.tolerance, seed=options.seed,
                   progress=True, announce=print)
    failures = run.failures
    print(f"\n{run.images} images, {len(failures)} misclassified "
          f"(top-1 accuracy {run.correct / run.labelled:.3f}), {run.method} at {run.layer}, "
          f"{run.seconds:.0f} s")
    related = {benchmark.object_classes[o.key]: {pretrained.class_names.index(n)
                                                 for n in o.related} for o in OBJECTS}
    siblings = sum(f.predicted.index in related.get(f.true.index, ()) for f in failures)
    print(f"{siblings} failures name a sibling class the benchmark accepts "
          f"(e.g. tabby for Egyptian cat); {sum(f.named_another_object for f in failures)} "
          "name the image's other object")
    print("top confusion pairs:")
    for pair in run.pairs[:10]:
        print(f"  {pair.true.name} -> {pair.predicted.name}: {pair.count} "
              f"(mean p {pair.true.probability:.2f} -> {pair.predicted.probability:.2f})")
    print(f"{len(run.pairs)} pairs in all")
    two = {benchmark.image_id(i) for i in range(options.count)
           if len(benchmark.layout(i).objects) == 2}
    for title, group in (("all failures", failures),
                         ("one-object images", [f for f in failures if f.image_id not in two]),
                         ("two-object images", [f for f in failures if f.image_id in two])):
        print(f"\n{title}:")
        print("\n".join(_evidence_table(group, options.seed)))
        sibling = [f for f in group if f.predicted.index in related.get(f.true.index, ())]
        print(f"  of which {len(sibling)} name a sibling class")


if __name__ == "__main__":
    main()
