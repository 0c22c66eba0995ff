"""The data-set bias audit, for real (docs/applications.md, section 6).

Two new linear heads on the frozen pretrained MobileNetV2's pooled ``features.18``, for the
five composite objects' classes (cat, espresso, moped, tripod, space shuttle):

- the **biased** model, trained on images where each class appears only on its own
  background (:class:`axiomcam.data.biased.BackgroundBiasSet`, ``pairing="biased"``);
- the **control**, trained on the same kind of images with backgrounds drawn independently
  of the class (``pairing="balanced"``).

Each pair is trained at each ``--mismatch`` (default 0 and 0.5): the chance that a training
image shows one of the five objects drawn at random instead of its class's (its background
and label kept): at 0 the object and the biased background both name the class; at 0.5 the
object names it in 60% of the images and the biased background in all of them, the spurious
cue being the more reliable one (in the Grad-CAM paper's biased doctor/nurse data gender
was such a cue). The control
is trained at the same mismatch, so that the only difference is the backgrounds' pairing.

Then, on held-out clean images (no mismatch): top-1 accuracy on the biased pairing, on
swapped backgrounds (each class on another class's background; the same objects at the
same places) and on balanced backgrounds, with 95% bootstrap intervals; and
``axiomcam.workflows.audit`` (Grad-CAM at ``--layers``, default ``features.13`` (14 x 14)
and ``features.18`` (7 x 7, the model's default), the contrast score, the default
threshold) of both models on the held-out biased-pairing images.

Features are computed once per image (the backbone is frozen); the heads train in seconds
(full-batch Adam, fixed seed). Nothing is downloaded: the weights are packaged, the images
made from scikit-image's bundled photographs. About a CPU minute on one thread (a few
minutes of wall time on a busy machine).

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


def build(backbone: PretrainedModel, head: nn.Linear, name: str) -> PretrainedModel:
    """The backbone with a new head, as the audit loads a model."""
    return PretrainedModel(name, HeadOnFeatures(backbone.model.features, head).eval(),
                           backbone.preprocess, backbone.display, list(NAMES), LAYER,
                           input_size=backbone.input_size, mean=backbone.mean,
                           std=backbone.std)


def experiment(backbone: PretrainedModel, tests: dict, mismatch: float, args) -> dict:
    """Train the biased and the control head at one mismatch; their accuracies and audits."""
    train = {pairing: pooled_features(backbone, BackgroundBiasSet(
        args.train, NAMES, pairing=pairing, seed=seed, mismatch=mismatch))
        for pairing, seed in (("biased", 1), ("balanced", 2))}
    results: dict = {}
    for model_name, pairing in (("biased", "biased"), ("control", "balanced")):
        head = train_head(*train[pairing], seed=0)
        results[model_name] = {"accuracy": {
            test: accuracy(head, *tests[test][1]) for test in ("biased", "swapped", "balanced")}}
        model = build(backbone, head, f"mobilenet_v2 features + {model_name} head")
        for layer in args.layers:
            out = args.out / f"mismatch-{mismatch:g}" / layer / model_name
            audit(model, tests["biased"][0], out, layer=layer, progress=False)
            results[model_name][layer] = json.loads((out / "results.json").read_text())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bias-audit"))
    parser.add_argument("--train", type=int, default=150, help="training images per model")
    parser.add_argument("--test", type=int, default=100, help="held-out images per pairing")
    parser.add_argument("--mismatch", type=float, nargs="+", default=[0.0, 0.5],
                        help="training images' chance of showing a random object")
    parser.add_argument("--layers", nargs="+", default=["features.13", LAYER],
                        help="the layers the audit explains")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    backbone = models.load("mobilenet_v2")
    backbone.model.requires_grad_(False)
    tests = {pairing: BackgroundBiasSet(args.test, NAMES, pairing=pairing, seed=seed)
             for pairing, seed in (("biased", 3), ("swapped", 3), ("balanced", 4))}
    tests = {name: (dataset, pooled_features(backbone, dataset))
             for name, dataset in tests.items()}
    results: dict = {"train_images": args.train, "test_images": args.test,
                     "layers": args.layers}
    for mismatch in args.mismatch:
        results[f"mismatch {mismatch:g}"] = experiment(backbone, tests, mismatch, args)
        print(f"\n### mismatch {mismatch:g}\n")
        print_tables(results[f"mismatch {mismatch:g}"], args.layers)
    results["seconds"] = time.perf_counter() - started
    (args.out / "summary.json").write_text(json.dumps(results, indent=1))
    print(f"\n{results['seconds']:.0f} s")


def print_tables(results: dict, layers: list[str]) -> None:
    """The accuracies and the audits as Markdown tables."""
    def cell(value: dict) -> str:
        return f"{value['mean']:.2f} [{value['low']:.2f}, {value['high']:.2f}]"

    print("| model | biased backgrounds | swapped backgrounds | balanced backgrounds |")
    print("|---|---|---|---|")
    for model_name in ("biased", "control"):
        accuracies = results[model_name]["accuracy"]
        print(f"| {model_name} | " + " | ".join(cell(accuracies[test]) for test in
                                                 ("biased", "swapped", "balanced")) + " |")
    for layer in layers:
        print(f"\naudit at {layer}:\n")
        print("| class | model | accuracy | background share | area share | flagged |")
        print("|---|---|---|---|---|---|")
        for index, name in enumerate(NAMES):
            for model_name in ("biased", "control"):
                row = results[model_name][layer]["classes"][index]
                print(f"| {name} | {model_name} | {row['accuracy']:.2f} | "
                      f"{cell(row['background_share'])} | {row['area_share']:.2f} | "
                      f"{'yes' if row['flagged'] else 'no'} |")

if __name__ == "__main__":
    main()
