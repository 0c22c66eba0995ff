"""Explain one class region of a semantic segmentation model.

A random-weight torchvision segmentation model (4 classes) segments the bundled
``chelsea`` photo: LR-ASPP MobileNetV3 (the default, the quickest) or FCN ResNet-50
(``--model fcn``; DeepLabV3 is explained the same way, see
``tests/targets/test_segmentation.py``). Random weights with BatchNorm running statistics of
mean 0 / variance 1 make the activations of a deep network fade until every pixel gets the
same scores, so the BatchNorm statistics are first set by forward passes in train mode on
a few views of the photo (the photo itself, mirrored, flipped, shifted), and the
BatchNorms get random scales and shifts (with scales 1 and shifts 0 this random network
labels a speckle of small blobs; with random ones, larger regions). The class the model
predicts at the most pixels is then explained over the pixels predicted as that class,
``y^c = sum_{(u, v) in M} S[c, u, v]`` (``axiomcam.targets.SegmentationRegion`` with the
fixed mask ``predicted_mask(output, c)``), with Grad-CAM and XGrad-CAM at the backbone
layer ``backbone.12`` (stride 16; for FCN its dilated ResNet's last stage,
``backbone.layer4``, stride 8). The script writes the region (the photo darkened outside
it) and one overlay per method.

Run (a few seconds on a CPU; nothing is downloaded)::

    python examples/segmentation.py              # -> examples/output/segmentation_*.png
    python examples/segmentation.py out/ --layer backbone.16
    python examples/segmentation.py out/ --model fcn     # FCN ResNet-50 (about 20 s)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torchvision
import torchvision.transforms.functional as TF
from PIL import Image
from torch import nn

import axiomcam
from axiomcam.figures import method_title
from axiomcam.images import overlay, sample_image
from axiomcam.models import IMAGENET_MEAN, IMAGENET_STD
from axiomcam.targets import SegmentationRegion, predicted_mask

METHODS = ("gradcam", "xgradcam")
#: --model: (torchvision builder, title, default layer)
MODELS = {
    "lraspp": ("lraspp_mobilenet_v3_large", "LR-ASPP MobileNetV3", "backbone.12"),
    "fcn": ("fcn_resnet50", "FCN ResNet-50", "backbone.layer4"),
}
LAYER = MODELS["lraspp"][2]
NUM_CLASSES = 4
# height x width of the model input: the photo's 2 : 3 aspect ratio, small enough to be quick
INPUT_SIZE = (224, 336)


def prepare(image: Image.Image) -> tuple[Image.Image, torch.Tensor]:
    """The photo at the input size, and its ``(1, 3, H, W)`` normalised tensor."""
    shown = image.resize(INPUT_SIZE[::-1], Image.Resampling.BILINEAR)
    tensor = TF.normalize(TF.to_tensor(shown), IMAGENET_MEAN, IMAGENET_STD)
    return shown, tensor[None]


def calibrate_batchnorm(model: nn.Module, views: torch.Tensor, seed: int = 0) -> None:
    """Give every BatchNorm the mean and variance of its inputs on ``views`` (one train-mode
    forward pass per view, averaged) and a random scale in [0.5, 1.5) and shift
    (N(0, 0.2^2)), then switch the model to eval mode."""
    norms = [module for module in model.modules() if isinstance(module, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the passes, not a moving one
    model.train()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for view in views:
            model(view[None])
        for norm in norms:
            norm.weight.copy_(0.5 + torch.rand(norm.num_features, generator=generator))
            norm.bias.copy_(0.2 * torch.randn(norm.num_features, generator=generator))
    model.eval()


def region_picture(image: Image.Image, mask: torch.Tensor) -> Image.Image:
    """The photo, darkened to a third outside the region ``mask`` ``(H, W)``."""
    pixels = np.asarray(image, dtype=np.float64)
    kept = mask.cpu().numpy()[..., None]
    return Image.fromarray(np.round(np.where(kept, pixels, pixels / 3)).astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", default=Path(__file__).parent / "output",
                        type=Path, help="where the PNGs go (default: examples/output/)")
    parser.add_argument("--model", choices=sorted(MODELS), default="lraspp",
                        help="the segmentation model (default: lraspp)")
    parser.add_argument("--layer", default=None,
                        help=f"the backbone layer to explain (default: {LAYER} for lraspp, "
                             "backbone.layer4 for fcn)")
    arguments = parser.parse_args()
    arguments.out_dir.mkdir(parents=True, exist_ok=True)

    builder, title, default_layer = MODELS[arguments.model]
    layer = arguments.layer or default_layer
    torch.manual_seed(0)
    options = {} if arguments.model == "lraspp" else {"aux_loss": False}  # no "aux" head
    model = getattr(torchvision.models.segmentation, builder)(
        weights=None, weights_backbone=None, num_classes=NUM_CLASSES, **options)
    image, inputs = prepare(sample_image("chelsea"))
    # a few views of the photo (as it is, mirrored, upside down, shifted): statistics of
    # its pixels, not of one arrangement of them only
    views = torch.cat([inputs, inputs.flip(-1), inputs.flip(-2), inputs.roll(64, -1)])
    calibrate_batchnorm(model, views)

    with torch.no_grad():
        output = model(inputs)  # {"out": (1, NUM_CLASSES, H, W), at the input's resolution}
    labels = output["out"].argmax(dim=1)[0]
    shares = [f"{float((labels == c).float().mean()):.0%}" for c in range(NUM_CLASSES)]
    print(f"{title} (random weights), input {tuple(inputs.shape)}; share of the "
          f"pixels predicted as each class: {', '.join(shares)}")
    class_index = int(torch.bincount(labels.flatten(), minlength=NUM_CLASSES).argmax())
    # a fixed mask: every method explains the same region (Score-CAM and Ablation-CAM
    # would otherwise score the region their perturbed copies predict)
    mask = predicted_mask(output, class_index)
    target = SegmentationRegion(class_index, mask=mask)
    print(f"explaining class {class_index} (predicted at the most pixels) over its "
          f"{int(mask.sum())} pixels")

    written = []
    region_path = arguments.out_dir / "segmentation_region.png"
    region_picture(image, mask[0]).save(region_path)
    written.append(region_path)
    print(f"region of class {class_index} -> {region_path}")
    for method in METHODS:
        exp = axiomcam.explain(model, inputs, method=method, target_layer=layer,
                               targets=target)
        out_path = arguments.out_dir / f"segmentation_{method}.png"
        overlay(image, exp.maps[0]).save(out_path)
        written.append(out_path)
        inside = float(exp.maps[0][mask[0]].mean())
        outside = float(exp.maps[0][~mask[0]].mean()) if (~mask[0]).any() else float("nan")
        print(f"{method_title(method)} at {exp.target_layer!r} (layer grid "
              f"{tuple(exp.raw.shape[1:])}), region score {float(exp.scores[0]):.4g}; mean map "
              f"value inside / outside the region {inside:.2f} / {outside:.2f} -> {out_path}")
    print(f"wrote {len(written)} files to {arguments.out_dir}")


if __name__ == "__main__":
    main()
