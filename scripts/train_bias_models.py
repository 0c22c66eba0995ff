"""The data-set bias audit, for real (docs/applications.md, section 6).

Two new linear heads on the frozen pretrained MobileNetV2's pooled ``features.18``, for the
five composite objects' classes (cat, espresso, moped, tripod, space shuttle):

- the **biased** model, trained on images where each class appears only on its own
  background (:class:`axiomcam.data.biased.BackgroundBiasSet`, ``pairing="biased"``);
- the **control**, trained on the same kind of images with backgrounds drawn independently
  of the class (``pairing="balanced"``).

Then, on held-out images: top-1 accuracy on the biased pairing, on swapped backgrounds (each
class on another class's background; the same objects at the same places) and on balanced
backgrounds, with 95% bootstrap intervals; and ``axiomcam.workflows.audit`` (Grad-CAM at
``features.18``, default threshold) of both models on the held-out biased-pairing images.

Features are computed once per image (the backbone is frozen); the heads train in seconds
(full-batch Adam, fixed seed). Nothing is downloaded: the weights are packaged, the images
made from scikit-image's bundled photographs. About two CPU minutes on one thread.

    PYTHONPATH=src python scripts/train_bias_models.py --out bias-audit
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

from axiomcam import models
from axiomcam.data import OBJECTS
from axiomcam.data.biased import BackgroundBiasSet
from axiomcam.evaluation.inputs import evaluation_inputs
from axiomcam.evaluation.summary import bootstrap_interval
from axiomcam.models import PretrainedModel
from axiomcam.workflows import audit

LAYER = "features.18"
NAMES = [obj.class_name for obj in OBJECTS]


class HeadOnFeatures(nn.Module):
    """MobileNetV2's frozen ``features`` (shared), average pooling, a new linear head."""

    def __init__(self, features: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.features, self.classifier = features, head

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(inputs).mean(dim=(2, 3)))


def pooled_features(backbone: PretrainedModel, dataset: BackgroundBiasSet,
                    batch: int = 25) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, 1280)`` pooled features and ``(N,)`` labels (0..4) of every image."""
    samples = list(dataset)
    features = []
    with torch.no_grad():
        for start in range(0, len(samples), batch):
            chunk = samples[start:start + batch]
            inputs, _ = evaluation_inputs(backbone, [s.image for s in chunk],
                                          [s.boxes for s in chunk])
            features.append(backbone.model.features(inputs).mean(dim=(2, 3)))
    return torch.cat(features), torch.tensor([s.label for s in samples])


def train_head(features: torch.Tensor, labels: torch.Tensor, seed: int) -> nn.Linear:
    """Multinomial logistic regression, full batch, Adam, weight decay 1e-3, 300 steps."""
    torch.manual_seed(seed)
    head = nn.Linear(features.shape[1], len(NAMES))
    optimiser = torch.optim.Adam(head.parameters(), lr=0.01, weight_decay=1e-3)
    for _ in range(300):
        optimiser.zero_grad()
        nn.functional.cross_entropy(head(features), labels).backward()
        optimiser.step()
    return head.eval()


def accuracy(head: nn.Linear, features: torch.Tensor, labels: torch.Tensor) -> dict:
    """Top-1 accuracy with its 95% percentile-bootstrap interval."""
    with torch.no_grad():
        right = (head(features).argmax(dim=1) == labels).double().tolist()
    low, high = bootstrap_interval(right, seed=0)
    return {"mean": sum(right) / len(right), "low": low, "high": high, "images": len(right)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bias-audit"))
    parser.add_argument("--train", type=int, default=150, help="training images per model")
    parser.add_argument("--test", type=int, default=100, help="held-out images per pairing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    backbone = models.load("mobilenet_v2")
    backbone.model.requires_grad_(False)
    sets = {"biased train": BackgroundBiasSet(args.train, NAMES, pairing="biased", seed=1),
            "balanced train": BackgroundBiasSet(args.train, NAMES, pairing="balanced", seed=2),
            "biased": BackgroundBiasSet(args.test, NAMES, pairing="biased", seed=3),
            "swapped": BackgroundBiasSet(args.test, NAMES, pairing="swapped", seed=3),
            "balanced": BackgroundBiasSet(args.test, NAMES, pairing="balanced", seed=4)}
    cached = {name: pooled_features(backbone, dataset) for name, dataset in sets.items()}
    heads = {"biased": train_head(*cached["biased train"], seed=0),
             "control": train_head(*cached["balanced train"], seed=0)}
    results: dict = {"train_images": args.train, "test_images": args.test, "layer": LAYER}
    for model_name, head in heads.items():
        results[model_name] = {"accuracy": {
            test: accuracy(head, *cached[test]) for test in ("biased", "swapped", "balanced")}}
        pretrained = PretrainedModel(
            f"mobilenet_v2 features + {model_name} head", HeadOnFeatures(
                backbone.model.features, head).eval(), backbone.preprocess, backbone.display,
            list(NAMES), LAYER, input_size=backbone.input_size, mean=backbone.mean,
            std=backbone.std)
        run = audit(pretrained, sets["biased"], args.out / model_name, progress=False)
        results[model_name]["audit"] = json.loads(
            (args.out / model_name / "results.json").read_text())["classes"]
        results[model_name]["flagged"] = [c.name for c in run.classes if c.flagged]
    results["seconds"] = time.perf_counter() - started
    (args.out / "summary.json").write_text(json.dumps(results, indent=1))
    print_tables(results)


def print_tables(results: dict) -> None:
    """The accuracies and the audits as Markdown tables."""
    def cell(value: dict) -> str:
        return f"{value['mean']:.2f} [{value['low']:.2f}, {value['high']:.2f}]"

    print("| model | biased backgrounds | swapped backgrounds | balanced backgrounds |")
    print("|---|---|---|---|")
    for model_name in ("biased", "control"):
        accuracies = results[model_name]["accuracy"]
        print(f"| {model_name} | " + " | ".join(cell(accuracies[test]) for test in
                                                 ("biased", "swapped", "balanced")) + " |")
    print("\n| class | model | accuracy | background share | area share | flagged |")
    print("|---|---|---|---|---|---|")
    for index, name in enumerate(NAMES):
        for model_name in ("biased", "control"):
            row = results[model_name]["audit"][index]
            print(f"| {name} | {model_name} | {row['accuracy']:.2f} | "
                  f"{cell(row['background_share'])} | {row['area_share']:.2f} | "
                  f"{'yes' if row['flagged'] else 'no'} |")
    print(f"\n{results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
