"""The adversarial-robustness measurement of docs/applications.md ("Adversarial robustness
of explanations"): the pretrained MobileNetV2, composite images, the original class's
Grad-CAM and XGrad-CAM maps clean vs attacked, for an untargeted and a targeted PGD attack.

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python scripts/robustness_measurement.py \
        --images 100 --layer features.18 --out robustness-measurement

Prints one markdown table per attack (means with 95% bootstrap intervals over the flipped
images) and writes each run's results.json, robustness.png and report.html under --out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from axiomcam import models
from axiomcam.workflows.robustness import AttackSettings, robustness
from axiomcam.workflows.robustness_report import MEASURES, robustness_json, write_robustness

ATTACKS = {
    "untargeted": AttackSettings("pgd", 1 / 255, targeted=False, steps=5),
    "targeted": AttackSettings("pgd", 2 / 255, targeted=True, steps=10),
}


def _cell(entry: dict | None) -> str:
    if entry is None:
        return "-"
    return f"{entry['mean']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--layer", default="features.18")
    parser.add_argument("--methods", default="gradcam,xgradcam")
    parser.add_argument("--attacks", default="untargeted,targeted")
    parser.add_argument("--out", default="robustness-measurement")
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    pretrained = models.load("mobilenet_v2")
    methods = arguments.methods.split(",")
    for name in arguments.attacks.split(","):
        run = robustness(pretrained, f"composite:{arguments.images}", ATTACKS[name],
                         methods=methods, layer=arguments.layer, batch_size=20, seed=0,
                         announce=print)
        write_robustness(run, Path(arguments.out) / f"{arguments.layer}-{name}")
        summary = robustness_json(run)
        print(f"\n{run.settings.describe()} at {run.layer}: {run.images} images, "
              f"{summary['attacked']} attacked (correct clean), {summary['flipped']} flipped; "
              f"flip rate {_cell(summary['flip_rate'])}"
              + (f", target reached {_cell(summary['target_reached'])}"
                 if run.settings.targeted else "")
              + f"; original class's probability {_cell(summary['original_probability']['clean'])}"
              f" -> {_cell(summary['original_probability']['attacked'])}; {run.seconds:.0f} s\n")
        print("| measure | " + " | ".join(methods) + " |\n|---|" + "---|" * len(methods))
        for key, description in MEASURES.items():
            print(f"| {description} | " + " | ".join(
                _cell(summary["methods_summary"][m][key]) for m in methods) + " |", flush=True)


if __name__ == "__main__":
    main()
