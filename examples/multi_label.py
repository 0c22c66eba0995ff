"""Explain a multi-label (sigmoid) head: a map per label in one pass, and a binary model's
positive and negative classes.

The bundled MobileNetV2 (ImageNet weights, packaged: nothing is downloaded) gets a new
sigmoid head of five labels, ``cat``, ``dog``, ``coffee``, ``motorcycle`` and ``rocket``:
each label's logit is the mean of its ImageNet classes' logits (a linear layer whose rows
are the means of those classes' rows) minus 3, and its probability is ``sigmoid(z)``, not
a softmax over the labels.  The photo is ``chelsea`` and ``coffee`` side by side, so two
labels are present.  ``axiomcam.LabelsAbove(0.5)`` picks each image's labels with
``sigmoid(z) >= 0.5`` in the explanation's own forward pass and explains them all at once
(maps ``(1, n, H, W)``; ``exp.selected`` marks the labels above the threshold), with
Grad-CAM and XGrad-CAM.

Then the ``cat`` label alone is a binary model with one logit ``z`` per image: class 1
(``axiomcam.targets.POSITIVE``) explains ``z`` ("cat"), class 0 (``NEGATIVE``) explains
``-z`` ("not cat"); their Grad-CAM channel weights are exact opposites, so the negative map
shows what speaks against the cat.

The script writes ``multi_label.png`` (a row per label above 0.5: the photo, Grad-CAM,
XGrad-CAM) and ``binary.png`` (the photo, the positive and the negative map), and prints
for each map the share of it on the photo's left (cat) half.

Run (a few seconds on a CPU)::

    python examples/multi_label.py               # -> examples/output/multi_label.png
    python examples/multi_label.py out/ --threshold 0.9
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch import nn

import axiomcam
from axiomcam.figures import method_title, save_grid
from axiomcam.images import overlay, sample_image
from axiomcam.models import IMAGENET_MEAN, IMAGENET_STD
from axiomcam.targets import NEGATIVE, POSITIVE

METHODS = ("gradcam", "xgradcam")
LAYER = "features.18"
#: label -> its ImageNet classes
LABELS = {
    "cat": range(281, 286),          # tabby, tiger cat, Persian, Siamese, Egyptian cat
    "dog": range(151, 269),          # the dog breeds
    "coffee": (504, 967, 968),       # coffee mug, espresso, cup
    "motorcycle": (665, 670),        # moped, motor scooter
    "rocket": (657, 812),            # missile, space shuttle
}
#: subtracted from every label's mean logit: a label is "present" when its classes score
#: well above the typical ImageNet logit
OFFSET = 3.0
#: each photo's width and height in the picture (a little taller than wide: the grid's
#: pictures are then clearly less than twice as wide as tall)
SIDE, HEIGHT = 224, 256


class SigmoidHead(nn.Module):
    """MobileNetV2's features, global average pooling and a linear layer: ``(B, L)``
    logits, read as independent sigmoid probabilities.  ``squeeze``: one label, returned as
    ``(B,)`` (a binary model)."""

    def __init__(self, trunk: nn.Module, classifier: nn.Linear, labels: dict[str, object],
                 squeeze: bool = False) -> None:
        super().__init__()
        self.features = trunk
        self.head = nn.Linear(classifier.in_features, len(labels))
        self.squeeze = squeeze
        with torch.no_grad():
            for row, classes in enumerate(labels.values()):
                classes = list(classes)
                self.head.weight[row] = classifier.weight[classes].mean(dim=0)
                self.head.bias[row] = classifier.bias[classes].mean() - OFFSET

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.features(x).mean(dim=(2, 3)))
        return logits[:, 0] if self.squeeze else logits


def prepare() -> tuple[Image.Image, torch.Tensor]:
    """The cat and the coffee side by side, ``HEIGHT x 2 SIDE``, and its normalised
    tensor."""
    picture = Image.new("RGB", (2 * SIDE, HEIGHT))
    for position, name in enumerate(("chelsea", "coffee")):
        picture.paste(sample_image(name).resize((SIDE, HEIGHT), Image.Resampling.BILINEAR),
                      (position * SIDE, 0))
    return picture, TF.normalize(TF.to_tensor(picture), IMAGENET_MEAN, IMAGENET_STD)[None]


def left_share(cam_map: torch.Tensor) -> float:
    """The share of a map's mass on the left (cat) half of the picture."""
    return float(cam_map[:, :SIDE].sum() / cam_map.sum().clamp_min(1e-12))


def explain_labels(model: nn.Module, picture: Image.Image, inputs: torch.Tensor,
                   threshold: float) -> tuple[list[list[Image.Image]], list[list[str]]]:
    """Every label above ``threshold`` explained in one pass per method: the grid's rows."""
    names = list(LABELS)
    with torch.no_grad():
        probabilities = torch.sigmoid(model(inputs))[0]
    print("sigmoid probabilities: " + ", ".join(
        f"{name} {float(p):.3f}" for name, p in zip(names, probabilities, strict=True)))
    explanations = {method: axiomcam.explain(model, inputs, method, LAYER,
                                             targets=axiomcam.LabelsAbove(threshold))
                    for method in METHODS}
    first = explanations[METHODS[0]]
    print(f"labels >= {threshold}: maps {tuple(first.maps.shape)}, selected "
          f"{first.selected[0].tolist()}")
    pictures, titles = [], []
    for place, selected in enumerate(first.selected[0].tolist()):
        if not selected:
            continue
        label = int(first.targets[0, place])
        row, row_titles = [picture], [f"{names[label]}: p {float(probabilities[label]):.2f}"]
        for method, exp in explanations.items():
            cam_map = exp.maps[0, place]
            row.append(overlay(picture, cam_map))
            row_titles.append(method_title(method))
            print(f"{names[label]} ({method_title(method)}): share of the map on the cat "
                  f"half {left_share(cam_map):.2f}")
        pictures.append(row)
        titles.append(row_titles)
    return pictures, titles


def explain_binary(model: nn.Module, picture: Image.Image, inputs: torch.Tensor
                   ) -> tuple[list[list[Image.Image]], list[list[str]]]:
    """The binary ``cat`` model's positive and negative Grad-CAM maps: one grid row."""
    with torch.no_grad():
        z = float(model(inputs)[0])
    positive = axiomcam.explain(model, inputs, "gradcam", LAYER, targets=POSITIVE)
    negative = axiomcam.explain(model, inputs, "gradcam", LAYER, targets=NEGATIVE)
    opposite = bool(torch.equal(negative.channel_weights, -positive.channel_weights))
    print(f"binary cat model: z {z:.3f}, sigmoid {torch.sigmoid(torch.tensor(z)):.3f}; "
          f"negative weights = -positive weights: {opposite}")
    row, row_titles = [picture], [f"cat: p {float(torch.sigmoid(torch.tensor(z))):.2f}"]
    for name, exp in (("positive (cat)", positive), ("negative (not cat)", negative)):
        row.append(overlay(picture, exp.maps[0]))
        row_titles.append(f"Grad-CAM, {name}")
        print(f"{name}: share of the map on the cat half {left_share(exp.maps[0]):.2f}")
    return [row], [row_titles]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", default=Path(__file__).parent / "output",
                        type=Path, help="where the PNGs go (default: examples/output/)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="explain the labels with sigmoid(z) >= this (default 0.5)")
    arguments = parser.parse_args()
    arguments.out_dir.mkdir(parents=True, exist_ok=True)

    mobilenet = axiomcam.models.load("mobilenet_v2").model
    trunk, classifier = mobilenet.features, mobilenet.classifier[-1]
    picture, inputs = prepare()

    labels = SigmoidHead(trunk, classifier, LABELS).eval()
    pictures, titles = explain_labels(labels, picture, inputs, arguments.threshold)
    path = arguments.out_dir / "multi_label.png"
    save_grid(path, pictures, titles)
    print(f"{len(pictures)} labels -> {path}")

    binary = SigmoidHead(trunk, classifier, {"cat": LABELS["cat"]}, squeeze=True).eval()
    pictures, titles = explain_binary(binary, picture, inputs)
    path = arguments.out_dir / "binary.png"
    save_grid(path, pictures, titles)
    print(f"positive and negative -> {path}")


if __name__ == "__main__":
    main()
