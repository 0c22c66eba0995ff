"""Explain one box of an object detector.

A random-weight torchvision Faster R-CNN (MobileNetV3-Large 320 FPN, 5 classes, every
box kept: ``box_score_thresh=0.0``) detects objects in the bundled ``chelsea`` photo.
BatchNorm running statistics of mean 0 / variance 1 make a random backbone's activations
fade until every box gets the same score, so the backbone's BatchNorms first get the
statistics of a few views of the photo (train-mode forward passes).  Detection 0 (the
highest score) is then explained with ``axiomcam.targets.DetectionBox.from_detection``:
``y^c = s_d + IoU(b_d, b)``, the score of the detection of that label that best overlaps its
box plus the overlap (the box-regression agreement), with Grad-CAM and XGrad-CAM at
``backbone.body.16``, the backbone's last stage (stride 32).  A detector's automatic layer
would be its RoI pooling, whose rows are proposals, not images, so the layer is named.
The script writes one overlay per method with the explained box drawn on it.

Run (a few seconds on a CPU; nothing is downloaded)::

    python examples/detection.py              # -> examples/output/detection_*.png
    python examples/detection.py out/ --index 3 --layer backbone.body.13
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torchvision
import torchvision.transforms.functional as TF
from PIL import Image, ImageDraw
from torch import nn

import axiomcam
from axiomcam.figures import method_title
from axiomcam.images import overlay, sample_image
from axiomcam.targets import DetectionBox

METHODS = ("gradcam", "xgradcam")
LAYER = "backbone.body.16"
NUM_CLASSES = 5  # the background (label 0) and 4 object classes
# height x width of the input: the detector resizes images to a shorter side of 320, so a
# 320-pixel-high photo goes in as it is and the boxes are in its pixels
INPUT_SIZE = (320, 480)


def prepare(image: Image.Image) -> tuple[Image.Image, torch.Tensor]:
    """The photo at the input size, and its ``(1, 3, H, W)`` tensor in [0, 1] (the detector
    normalises its inputs itself)."""
    shown = image.resize(INPUT_SIZE[::-1], Image.Resampling.BILINEAR)
    return shown, TF.to_tensor(shown)[None]


def calibrate_backbone(model: nn.Module, views: torch.Tensor) -> None:
    """Give the backbone's BatchNorms the mean and variance of their inputs on ``views``
    (``(n, 3, H, W)`` in [0, 1]; one train-mode forward pass per view through the
    detector's own resizing and normalisation), then switch the model to eval mode.

    Only the statistics: random BatchNorm scales and shifts as well would push the top box
    scores to nearly 1 (0.9995), where the score's gradient vanishes."""
    body = model.backbone.body
    norms = [module for module in body.modules() if isinstance(module, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the passes, not a moving one
    body.train()
    with torch.no_grad():
        for view in views:
            images, _ = model.transform([view])
            body(images.tensors)
    model.eval()


def draw_box(picture: Image.Image, box: torch.Tensor, label: str) -> Image.Image:
    """``picture`` with ``box`` (``x0, y0, x1, y1`` in its pixels) and its label drawn."""
    picture = picture.copy()
    draw = ImageDraw.Draw(picture)
    x0, y0, x1, y1 = (float(v) for v in box)
    draw.rectangle((x0, y0, x1, y1), outline=(255, 255, 255), width=3)
    draw.text((x0 + 4, max(y0 - 12, 0)), label, fill=(255, 255, 255))
    return picture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", default=Path(__file__).parent / "output",
                        type=Path, help="where the PNGs go (default: examples/output/)")
    parser.add_argument("--index", type=int, default=0,
                        help="which detection to explain (0: the highest score)")
    parser.add_argument("--layer", default=LAYER,
                        help=f"the backbone layer to explain (default: {LAYER})")
    arguments = parser.parse_args()
    arguments.out_dir.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(0)
    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=NUM_CLASSES, box_score_thresh=0.0)
    image, inputs = prepare(sample_image("chelsea"))
    views = torch.cat([inputs, inputs.flip(-1), inputs.flip(-2), inputs.roll(96, -1)])
    calibrate_backbone(model, views)

    with torch.no_grad():
        detections = model(inputs)  # [{"boxes": (n, 4), "labels": (n,), "scores": (n,)}]
    found = detections[0]
    print(f"Faster R-CNN MobileNetV3-320 FPN (random weights), input {tuple(inputs.shape)}: "
          f"{len(found['scores'])} detections, top scores "
          f"{[round(float(s), 3) for s in found['scores'][:3]]}")
    # raises a ValueError that says how many detections there are if --index is too large
    target = DetectionBox.from_detection(detections, arguments.index)
    box, label = found["boxes"][arguments.index], int(found["labels"][arguments.index])
    print(f"explaining detection {arguments.index}: label {label}, score "
          f"{float(found['scores'][arguments.index]):.3f}, box "
          f"{[round(float(v), 1) for v in box]}")

    written = []
    for method in METHODS:
        exp = axiomcam.explain(model, inputs, method=method, target_layer=arguments.layer,
                               targets=target)
        picture = draw_box(overlay(image, exp.maps[0]), box, f"label {label}")
        out_path = arguments.out_dir / f"detection_{method}.png"
        picture.save(out_path)
        written.append(out_path)
        # the clean forward pass inside explain finds the same box again: IoU 1
        print(f"{method_title(method)} at {exp.target_layer!r} (layer grid "
              f"{tuple(exp.raw.shape[1:])}), target score + IoU {float(exp.scores[0]):.3f} "
              f"-> {out_path}")
    print(f"wrote {len(written)} files to {arguments.out_dir}")


if __name__ == "__main__":
    main()
