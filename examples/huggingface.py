"""Explain Hugging Face ``transformers`` image classifiers: ViT, Swin, ConvNeXt and ResNet.

Each model is built from its config (``ViTForImageClassification(ViTConfig(...))``): random
weights, nothing downloaded.  ``axiomcam.explain`` takes them as they are: the class scores
are the ``logits`` of the ``ModelOutput`` they return, the default layer is found (the last
block's first norm, ``layernorm_before``, in ViT and Swin, whose tokens are laid on their
grid, the class token set aside; the last stage in ConvNeXt and ResNet), and each image's
top class is explained with Grad-CAM and XGrad-CAM.  One row per model in one figure.

Small models keep the example fast: ViT-S/16 (width 384, 6 heads), ResNet-18; Swin-T and
ConvNeXt-T are their configs' defaults.  The weights are random, so the maps
show the mechanics, not what a trained model sees.  With trained weights,
``XxxForImageClassification.from_pretrained(name)`` downloads them once (or reads a local
folder); the calls to axiomcam stay the same.

Run (a few seconds on a CPU; nothing is downloaded)::

    python examples/huggingface.py   # -> examples/output/huggingface.png
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
from axiomcam.layers import find_default_layer
from axiomcam.models import IMAGENET_MEAN, IMAGENET_STD

METHODS = ("gradcam", "xgradcam")
INPUT_SIZE = 224


def prepare(image: Image.Image) -> tuple[Image.Image, torch.Tensor]:
    """The photo's centre square at 224 x 224, and its ``(1, 3, 224, 224)`` normalised
    tensor (what ``AutoImageProcessor`` does for these checkpoints)."""
    shown = TF.center_crop(TF.resize(image, INPUT_SIZE), INPUT_SIZE)
    return shown, TF.normalize(TF.to_tensor(shown), IMAGENET_MEAN, IMAGENET_STD)[None]


def build_models() -> dict[str, nn.Module]:
    """The four families from their configs (random weights, 10 classes), in eval mode."""
    import transformers  # the huggingface extra: pip install 'axiomcam[huggingface]'

    vit = transformers.ViTConfig(hidden_size=384, num_attention_heads=6,
                                 intermediate_size=1536, num_labels=10)
    models = {
        "ViT-S/16": transformers.ViTForImageClassification(vit),
        "Swin-T": transformers.SwinForImageClassification(
            transformers.SwinConfig(num_labels=10)),
        "ConvNeXt-T": transformers.ConvNextForImageClassification(
            transformers.ConvNextConfig(num_labels=10)),
        "ResNet-18": transformers.ResNetForImageClassification(transformers.ResNetConfig(
            layer_type="basic", depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512],
            num_labels=10)),
    }
    return {name: model.eval() for name, model in models.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", default=Path(__file__).parent / "output",
                        type=Path, help="where the PNG goes (default: examples/output/)")
    arguments = parser.parse_args()
    arguments.out_dir.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(0)
    image, inputs = prepare(sample_image("chelsea"))
    pictures, titles = [], []
    for model_name, model in build_models().items():
        # what target_layer=None picks, looked up once rather than by each explain call
        layer = find_default_layer(model, inputs)
        with torch.no_grad():
            output = model(inputs)
        print(f"{model_name}: {type(output).__name__} with logits "
              f"{tuple(output.logits.shape)}; default layer {layer!r}")
        row, row_titles = [image], [f"{model_name}\n{layer.split('.', 1)[1]}"]
        for method in METHODS:
            exp = axiomcam.explain(model, inputs, method=method, target_layer=layer)
            row.append(overlay(image, exp.maps[0]))
            row_titles.append(method_title(method))
            print(f"  {method_title(method)}: class {int(exp.targets[0])}, logit "
                  f"{float(exp.scores[0]):.3f}, map on a {exp.raw.shape[1]} x "
                  f"{exp.raw.shape[2]} grid")
        pictures.append(row)
        titles.append(row_titles)

    out_path = arguments.out_dir / "huggingface.png"
    save_grid(out_path, pictures, titles)
    print(f"wrote {out_path}")
    print("random weights: the maps show the mechanics, not what a trained model sees")


if __name__ == "__main__":
    main()
