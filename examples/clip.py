"""Explain which image regions match a text in CLIP (open_clip).

``open_clip.create_model(name, pretrained=None)`` builds CLIP ViT-B/32 and RN50 with random
weights (the BatchNorms of RN50's tower get the statistics of the photo): nothing is
downloaded, and the texts are tokenised by open_clip's own tokenizer,
whose vocabulary ships in its wheel.  ``axiomcam.targets.TextSimilarity.from_texts(model,
texts)`` embeds the texts with the model's text tower; the target is the cosine similarity
of the image embedding with a text's, ``y^c = e . t / (|e| |t|)`` (CLIP's image-text logit
before its temperature).  Each image tower is explained for each text with Grad-CAM at its
default layer: the last block's first norm of the ViT (its tokens laid on their 7 x 7 grid,
the class token set aside), ``layer4`` of the ModifiedResNet.  One row per model, one
picture per text.

The weights are random: the similarities are near 0 and the maps show the mechanics, not
what a trained CLIP sees.  With trained weights (``pretrained=`` a checkpoint file you have)
the calls to axiomcam stay the same.

Run (a few seconds on a CPU; nothing is downloaded)::

    python examples/clip.py                      # -> examples/output/clip.png
    python examples/clip.py out/ --texts "a cat" "whiskers"
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch import nn

import axiomcam
from axiomcam.figures import save_grid
from axiomcam.images import overlay, sample_image
from axiomcam.targets import TextSimilarity

MODELS = ("ViT-B-32", "RN50")
TEXTS = ("a photo of a cat", "a cup of coffee")
INPUT_SIZE = 224
# OpenAI CLIP's normalisation (open_clip.OPENAI_DATASET_MEAN / _STD)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def prepare(image: Image.Image) -> tuple[Image.Image, torch.Tensor]:
    """The photo's centre square at 224 x 224, and its ``(1, 3, 224, 224)`` tensor
    normalised as CLIP expects."""
    shown = TF.center_crop(TF.resize(image, INPUT_SIZE), INPUT_SIZE)
    return shown, TF.normalize(TF.to_tensor(shown), CLIP_MEAN, CLIP_STD)[None]


def calibrate_batchnorm(model: nn.Module, views: torch.Tensor) -> None:
    """Give the BatchNorms (of the ModifiedResNet tower) the statistics of ``views``, one
    train-mode pass, then eval mode: with mean 0 / variance 1 a random ResNet's activations
    fade layer after layer."""
    norms = [module for module in model.modules() if isinstance(module, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average: one pass sets the statistics
    with torch.no_grad():
        model.train()(views)
    model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", default=Path(__file__).parent / "output",
                        type=Path, help="where the PNG goes (default: examples/output/)")
    parser.add_argument("--texts", nargs="+", default=list(TEXTS),
                        help="the texts to match (default: %(default)s)")
    arguments = parser.parse_args()
    arguments.out_dir.mkdir(parents=True, exist_ok=True)

    import open_clip  # the clip extra: pip install 'axiomcam[clip]'

    torch.manual_seed(0)
    image, inputs = prepare(sample_image("chelsea"))
    pictures, titles = [], []
    for name in MODELS:
        model = open_clip.create_model(name, pretrained=None)  # random weights
        calibrate_batchnorm(model.visual, torch.cat([inputs, inputs.flip(-1)]))
        row, row_titles = [image], [f"CLIP {name}\n(random weights)"]
        for text in arguments.texts:
            target = TextSimilarity.from_texts(model, text)  # one text for the image
            # the image tower: (B, 3, H, W) -> (B, D) image embeddings
            exp = axiomcam.explain(model.visual, inputs, method="gradcam", targets=target)
            row.append(overlay(image, exp.maps[0]))
            row_titles.append(f"Grad-CAM\n{text!r}")
            print(f"CLIP {name}, {text!r}: cosine {float(exp.scores[0]):+.4f}, Grad-CAM at "
                  f"{exp.target_layer!r} on a {exp.raw.shape[1]} x {exp.raw.shape[2]} grid")
        pictures.append(row)
        titles.append(row_titles)

    out_path = arguments.out_dir / "clip.png"
    save_grid(out_path, pictures, titles)
    print(f"wrote {out_path}")
    print("random weights: the maps show the mechanics, not what a trained CLIP sees")


if __name__ == "__main__":
    main()
