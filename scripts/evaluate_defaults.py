"""Measure ``evaluate``'s defaults on the real MobileNetV2 (docs/applications.md,
"`evaluate` defaults that finish in minutes"): the estimate printed before the first batch
against the seconds each method and stage really took, and the wall time of the run.

Run (one thread, as the docs' numbers were measured):

    OMP_NUM_THREADS=1 python scripts/evaluate_defaults.py --data composite:8 \\
        --out /tmp/evaluate-defaults

It calls :func:`axiomcam.evaluation.evaluate` with no methods and no metric groups (the
defaults, as ``axiomcam evaluate --data composite:8`` does), overwriting ``--out``, then
prints a table: per method and stage, the estimate and the measured seconds.
"""

from __future__ import annotations

import argparse
import time

import torch

from axiomcam.evaluation import evaluate
from axiomcam.evaluation.estimate import format_seconds
from axiomcam.models import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="composite:8")
    parser.add_argument("--layer", default=None)
    parser.add_argument("--out", default="/tmp/evaluate-defaults")
    parser.add_argument("--all", action="store_true", help="include the expensive ones")
    parser.add_argument("--methods", default=None, help="methods (default: evaluate's)")
    parser.add_argument("--metrics", default=None, help="metric groups (default: evaluate's)")
    parser.add_argument("--sanity-steps", type=int, default=None)
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    run = evaluate(load("mobilenet_v2"), arguments.data, arguments.methods,
                   metrics=arguments.metrics, sanity_steps=arguments.sanity_steps,
                   out_dir=arguments.out, target_layer=arguments.layer, overwrite=True,
                   progress=False,
                   include_expensive=arguments.all, on_estimate=print)
    wall = time.perf_counter() - start
    estimate = run.estimate
    print(f"\n{'method':<12} {'stage':<15} {'estimate':>10} {'measured':>10}")
    for method, stages in estimate.seconds.items():
        for stage, seconds in stages.items():
            measured = run.seconds_by_method.get(method, {}).get(stage, 0.0)
            print(f"{method:<12} {stage:<15} {format_seconds(seconds):>10} "
                  f"{format_seconds(measured):>10}")
    measured = sum(sum(stages.values()) for stages in run.seconds_by_method.values())
    end = sum(run.seconds[stage] for stage in ("gallery", "summary", "report"))
    print(f"\nmethods and groups: estimated {format_seconds(estimate.total)}, measured "
          f"{format_seconds(measured)}; the probe {format_seconds(run.seconds['estimate'])}, "
          f"the first forward passes {format_seconds(run.seconds['forward'])}, the gallery, "
          f"summaries and report {format_seconds(end)}; "
          f"evaluate() in all {format_seconds(wall)} (model loaded before)")
    print(f"left out: {', '.join(run.left_out) or 'nothing'}")


if __name__ == "__main__":
    main()
