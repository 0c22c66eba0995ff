"""Explain vision transformers: torchvision's ViT-B/16 and Swin-T.

Both models have random weights.  A CAM needs a ``(B, C, h, w)`` grid; axiomcam builds it
from a transformer layer's output by itself:

- ViT-B/16: the blocks output ``(B, 1 + 14*14, 768)`` tokens; the class token is set aside
  and the 196 patch tokens are laid on their 14 x 14 grid (``reshape="tokens"``, the grid
  inferred from the token count and the input's aspect ratio).  The default layer is the
  first LayerNorm of the last block, ``encoder.layers.encoder_layer_11.ln_1``: after the
  final norm only the class token reaches the classifier, so the patch tokens would get no
  gradient.
- Swin-T: its LayerNorms output channels-last ``(B, 7, 7, 768)`` maps, permuted to
  ``(B, 768, 7, 7)`` (``reshape="channels_last"``).  The default layer is again the last
  block's first norm, ``features.7.1.norm1`` (at the final ``permute``, the ``(B, 768, 7,
  7)`` map before global average pooling and the linear head, Grad-CAM and XGrad-CAM give
  the same map, as at a CNN's last layer).

Each model explains its top class for the bundled ``chelsea`` photo (224 x 224) with
Grad-CAM, XGrad-CAM and Layer-CAM; the script writes one grid of overlays, a row per model.
Ablation-CAM runs too (``--methods gradcam ablationcam``) but zeroes each of the 768
channels in turn: about a minute per image for ViT-B/16 on a CPU, so it is not in the
default list (and on this random Swin-T its ``raw`` map is negative everywhere, so its map
is all zero, with a warning).

Run (about 10 s on a CPU; nothing is downloaded)::

    python examples/vision_transformer.py      # -> examples/output/vision_transformer.png
    python examples/vision_transformer.py out/ --image coffee --methods gradcam layercam
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torchvision
import torchvision.transforms.functional as TF
from PIL import Image
from torch import nn

import axiomcam
from axiomcam.figures import method_title, save_grid
from axiomcam.images import SAMPLE_IMAGES, overlay, sample_image
from axiomcam.layers import find_default_layer
from axiomcam.models import IMAGENET_MEAN, IMAGENET_STD

METHODS = ("gradcam", "xgradcam", "layercam")
INPUT_SIZE = 224  # ViT-B/16's position embeddings are for 224 x 224 inputs


def prepare(image: Image.Image) -> tuple[Image.Image, torch.Tensor]:
    """The photo's centre square at 224 x 224, and its ``(1, 3, 224, 224)`` normalised
    tensor."""
    shown = TF.center_crop(TF.resize(image, INPUT_SIZE), INPUT_SIZE)
    return shown, TF.normalize(TF.to_tensor(shown), IMAGENET_MEAN, IMAGENET_STD)[None]


def random_vit() -> nn.Module:
    """ViT-B/16 with random weights and a random classification head."""
    model = torchvision.models.vit_b_16()
    # torchvision initialises the head of a new ViT to zero (a fine-tuning convention): every
    # logit is 0 whatever the image, so every gradient and every gradient map is zero too.
    # Small normal weights, as in the rest of the network, give class scores that depend on
    # the image.
    with torch.no_grad():
        nn.init.normal_(model.heads.head.weight, std=0.02)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", default=Path(__file__).parent / "output",
                        type=Path, help="where the PNG goes (default: examples/output/)")
    parser.add_argument("--image", default="chelsea", choices=sorted(SAMPLE_IMAGES),
                        help="which bundled photo to explain")
    parser.add_argument("--methods", nargs="+", default=list(METHODS),
                        help=f"methods to run (default: {' '.join(METHODS)})")
    arguments = parser.parse_args()
    arguments.out_dir.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(0)
    image, inputs = prepare(sample_image(arguments.image))
    vit, swin = random_vit(), torchvision.models.swin_t().eval()
    # what target_layer=None picks (the last block's first norm); looked up once here rather
    # than by each explain call, which would run the model once more every time to find it
    models = {
        "ViT-B/16": (vit, find_default_layer(vit, inputs)),
        "Swin-T": (swin, find_default_layer(swin, inputs)),
    }

    pictures, titles = [], []
    for model_name, (model, layer) in models.items():
        row, row_titles = [image], [f"{model_name}\n{arguments.image}"]
        for method in arguments.methods:
            exp = axiomcam.explain(model, inputs, method=method, target_layer=layer)
            row.append(overlay(image, exp.maps[0]))
            row_titles.append(f"{method_title(method)}\n{exp.target_layer}")
            print(f"{model_name} {method_title(method)} at {exp.target_layer!r}: class "
                  f"{int(exp.targets[0])}, logit {float(exp.scores[0]):.3f}, map on a "
                  f"{exp.raw.shape[1]} x {exp.raw.shape[2]} grid")
        pictures.append(row)
        titles.append(row_titles)

    out_path = arguments.out_dir / "vision_transformer.png"
    save_grid(out_path, pictures, titles)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
