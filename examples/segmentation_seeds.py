"""Maps as segmentation seeds and boxes, on the built-in composite benchmark.

The pretrained MobileNetV2 (packaged weights, nothing is downloaded) explains three
composite images (the first of three different classes) for their labels with Grad-CAM at
``features.18``; each map is cut at 50% of its maximum (``axiomcam.metrics.map_to_mask``),
its regions' boxes are taken (``mask_to_boxes``), and the mask is compared with the
object's true silhouette, which the benchmark's samples carry (``mask_iou``). The script
prints each image's mask IoU and boxes, and writes one figure: per image, the image with
its true silhouette (the rest darkened), the map, and the map's mask with its boxes.

Run (a few seconds on a CPU)::

    python examples/segmentation_seeds.py            # -> examples/output/segmentation_seeds.png
    python examples/segmentation_seeds.py out/ --threshold otsu
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

import axiomcam
from axiomcam import models
from axiomcam.data import CompositeBenchmark, Sample
from axiomcam.evaluation import evaluation_inputs, evaluation_masks
from axiomcam.figures import save_grid
from axiomcam.images import overlay
from axiomcam.metrics import map_to_mask, mask_iou, mask_to_boxes

LAYER = "features.18"


def shaded(photo: Image.Image, mask: torch.Tensor) -> Image.Image:
    """The photo as it is on the mask, darkened to a third elsewhere."""
    pixels = np.asarray(photo).astype(np.float32)
    pixels[~mask.cpu().numpy()] /= 3
    return Image.fromarray(np.round(pixels).astype(np.uint8))


def main() -> None:
    """Explain, cut, box and compare three composite images; write the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default=Path(__file__).parent / "output",
                        type=Path)
    parser.add_argument("--threshold", default="fraction", choices=["fraction", "otsu"])
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    pretrained = models.load("mobilenet_v2")
    first_of_class: dict[int, Sample] = {}
    for sample in CompositeBenchmark(30, pretrained.class_names, seed=0):
        first_of_class.setdefault(sample.label, sample)
    samples = list(first_of_class.values())[:3]
    inputs, _ = evaluation_inputs(pretrained, [s.image for s in samples],
                                  [s.boxes for s in samples])
    labels = torch.tensor([sample.label for sample in samples])
    explanation = axiomcam.explain(pretrained.model, inputs, "gradcam", LAYER, targets=labels)
    maps = explanation.maps                                    # (3, 224, 224), one per image
    masks = map_to_mask(maps, arguments.threshold)
    # the union of the label's silhouettes, at the input size (the composite's is the same)
    truth = torch.stack([evaluation_masks(s.masks[s.box_labels == s.label],
                                          pretrained.input_size).any(dim=0) for s in samples])
    ious = mask_iou(masks, truth)
    pictures, titles = [], []
    for sample, saliency, mask, boxes, iou, true_mask in zip(
            samples, maps, masks, mask_to_boxes(masks), ious, truth, strict=True):
        photo = sample.image.resize((pretrained.input_size,) * 2)
        name = pretrained.class_names[sample.label]
        cut = shaded(photo, mask)
        draw = ImageDraw.Draw(cut)
        for x0, y0, x1, y1 in boxes.tolist():
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=(255, 255, 255), width=2)
        pictures.append([shaded(photo, true_mask), overlay(photo, saliency), cut])
        titles.append([f"{sample.id}: {name}", f"Grad-CAM at {LAYER}",
                       f"{arguments.threshold} mask, IoU {float(iou):.2f}"])
        print(f"{sample.id} ({name}): mask IoU {float(iou):.3f}, "
              f"{len(boxes)} region(s), boxes {boxes.int().tolist()}")
    arguments.out_dir.mkdir(parents=True, exist_ok=True)
    path = arguments.out_dir / "segmentation_seeds.png"
    save_grid(path, pictures, titles)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
