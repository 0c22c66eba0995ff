"""Explain one detection of an Ultralytics YOLO detector.

``YOLO("yolov8n.yaml")`` builds YOLOv8n from its architecture file: random weights, nothing
downloaded (``YOLO_OFFLINE=1`` also stops ultralytics' DNS check when it is imported).  Its
BatchNorms first get the statistics of a few views of the bundled ``chelsea`` photo
(train-mode forward passes): with mean 0 / variance 1 a random network's activations fade
to nothing before the head.  The network's raw output, ``(1, 4 + 80, anchors)`` (a box and
80 class probabilities per anchor), goes through ``axiomcam.targets.yolo_detections``
(ultralytics' non-maximum suppression, with the anchor of each detection), and detection
``--index`` is explained with ``YoloBox.from_detection``: ``y^c = p_{a,l} + IoU(b_a, b)``,
the class probability at the detection's anchor plus the overlap of that anchor's box with
the detection's.  Eigen-CAM, Grad-CAM and XGrad-CAM run at the default layer, ``model.15``:
the neck's stride-8 output, the last layer that all three detection scales depend on.  The
``YOLO`` object itself is passed to ``axiomcam.explain``, which explains its network
(``.model``).  One overlay per method, the box drawn on it.

The weights are random: every probability stays near the prior of ultralytics' bias
initialisation (about 0.002), so the detections are kept with ``conf_threshold=0`` and the
maps show the mechanics, not what a trained YOLO sees.  With trained weights
(``YOLO("yolov8n.pt")``, a file you have) keep the default threshold, 0.25.

Run (a few seconds on a CPU; nothing is downloaded)::

    python examples/yolo.py              # -> examples/output/yolo_*.png
    python examples/yolo.py out/ --index 3
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageDraw
from torch import nn

import axiomcam
from axiomcam.figures import method_title
from axiomcam.images import overlay, sample_image
from axiomcam.targets import YoloBox, yolo_detections

METHODS = ("eigencam", "gradcam", "xgradcam")
# width x height: YOLO takes sizes that are multiples of its largest stride, 32
INPUT_SIZE = (384, 256)


def prepare(image: Image.Image) -> tuple[Image.Image, torch.Tensor]:
    """The photo at the input size, and its ``(1, 3, H, W)`` tensor in [0, 1] (YOLO's
    preprocessing: RGB divided by 255, no mean or std)."""
    shown = image.resize(INPUT_SIZE, Image.Resampling.BILINEAR)
    return shown, TF.to_tensor(shown)[None]


def calibrate_batchnorm(network: nn.Module, views: torch.Tensor) -> None:
    """Give the BatchNorms the mean and variance of their inputs on ``views`` (one
    train-mode forward pass of the whole batch), then switch to eval mode."""
    for norm in (module for module in network.modules() if isinstance(module, nn.BatchNorm2d)):
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average: one pass sets the statistics
    network.train()
    with torch.no_grad():
        network(views)
    network.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", default=Path(__file__).parent / "output",
                        type=Path, help="where the PNGs go (default: examples/output/)")
    parser.add_argument("--index", type=int, default=1,
                        help="which detection to explain (0: the most probable)")
    arguments = parser.parse_args()
    arguments.out_dir.mkdir(parents=True, exist_ok=True)

    os.environ.setdefault("YOLO_OFFLINE", "1")  # before ultralytics is imported
    from ultralytics import YOLO  # the yolo extra: pip install 'axiomcam[yolo]'

    torch.manual_seed(0)
    yolo = YOLO("yolov8n.yaml")  # architecture only: random weights
    image, inputs = prepare(sample_image("chelsea"))
    calibrate_batchnorm(yolo.model, torch.cat([inputs, inputs.flip(-1), inputs.flip(-2),
                                               inputs.roll(96, -1)]))
    with torch.no_grad():
        output = yolo.model(inputs)  # (predictions (1, 84, anchors), raw maps)
    found = yolo_detections(output, conf_threshold=0.0)[0]
    print(f"YOLOv8n (random weights), input {tuple(inputs.shape)}: predictions "
          f"{tuple(output[0].shape)}, {len(found['scores'])} detections after NMS, top "
          f"probabilities {[round(float(s), 4) for s in found['scores'][:3]]}")
    # a ValueError that says how many detections there are if --index is too large
    target = YoloBox.from_detection([found], arguments.index)
    box = found["boxes"][arguments.index]
    print(f"explaining detection {arguments.index}: class {int(target.labels[0])}, anchor "
          f"{int(target.anchors[0])}, probability {float(found['scores'][arguments.index]):.4f}"
          f", box {[round(float(v), 1) for v in box]}")

    for method in METHODS:
        exp = axiomcam.explain(yolo, inputs, method=method, targets=target)
        picture = overlay(image, exp.maps[0])
        ImageDraw.Draw(picture).rectangle(tuple(float(v) for v in box),
                                          outline=(255, 255, 255), width=3)
        out_path = arguments.out_dir / f"yolo_{method}.png"
        picture.save(out_path)
        # the detection's own box: IoU 1, so the score is its probability + 1
        print(f"{method_title(method)} at {exp.target_layer!r} (layer grid "
              f"{tuple(exp.raw.shape[1:])}), probability + IoU {float(exp.scores[0]):.4f} "
              f"-> {out_path}")
    print("random weights: the maps show the mechanics, not what a trained YOLO sees")


if __name__ == "__main__":
    main()
