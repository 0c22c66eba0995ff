"""Explain what is not a class score: an embedding's similarity to a reference, and the
log-probability of a caption; from models whose output is a dict.

Two small random-weight models (a torchvision ResNet-18 trunk each), three rows of maps:

1. ``{"logits": ..., "embedding": ...}``, a model returning a dict: a class explained with
   ``targets=c`` and ``output="logits"`` (where the class scores are in the output).
2. The same model's embedding: ``EmbeddingSimilarity(reference)``, the cosine similarity
   to the embedding of a crop of the photo (the cat's left eye), with
   ``output="embedding"``: which parts of the whole photo look like that crop to the model.
3. A captioning model ``(image, caption tokens) -> {"logits": (B, T, vocabulary)}``
   (teacher forcing: token ``t`` is predicted from the image and the tokens before it):
   ``TokenLogProbability(caption)`` explains the caption's log-probability, with the
   caption's input tokens passed as ``extra_inputs``; only the image is explained.

Each row shows Grad-CAM and XGrad-CAM at the trunk's ``layer3`` (at ``layer4``, right before
global average pooling, the two give the same map).

Run (a few seconds on a CPU; nothing is downloaded)::

    python examples/embeddings_and_captions.py   # -> examples/output/embeddings_and_captions.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torchvision
import torchvision.transforms.functional as TF
from torch import nn

import axiomcam
from axiomcam.figures import method_title, save_grid
from axiomcam.images import overlay, sample_image
from axiomcam.models import IMAGENET_MEAN, IMAGENET_STD
from axiomcam.targets import EmbeddingSimilarity, TokenLogProbability

METHODS = ("gradcam", "xgradcam")
INPUT_SIZE = 224
LAYER = "trunk.layer3"  # at layer4, before pooling, Grad-CAM and XGrad-CAM coincide
VOCABULARY = ("<start>", "<end>", "a", "cat", "with", "green", "eyes", "cup", "of", "coffee")
CAPTION = ("a", "cat", "with", "green", "eyes")
EYE_BOX = (40, 70, 120, 150)  # left, top, right, bottom of the cat's left eye at 224 x 224


def resnet_trunk() -> nn.Module:
    """ResNet-18 without its classifier: ``(B, 3, H, W) -> (B, 512)``."""
    trunk = torchvision.models.resnet18()
    trunk.fc = nn.Identity()
    return trunk


class EmbeddingClassifier(nn.Module):
    """``images -> {"logits": (B, 10), "embedding": (B, 512)}``."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = resnet_trunk()
        self.classifier = nn.Linear(512, 10)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        embedding = self.trunk(images)
        return {"logits": self.classifier(embedding), "embedding": embedding}


class Captioner(nn.Module):
    """``(images, tokens (B, T)) -> {"logits": (B, T, vocabulary)}``: a GRU whose state
    starts from the image's embedding reads the tokens and predicts the next one at each
    step."""

    def __init__(self, vocabulary: int, width: int = 128) -> None:
        super().__init__()
        self.trunk = resnet_trunk()
        self.start = nn.Linear(512, width)
        self.words = nn.Embedding(vocabulary, width)
        self.decoder = nn.GRU(width, width, batch_first=True)
        self.next_word = nn.Linear(width, vocabulary)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        state = torch.tanh(self.start(self.trunk(images)))[None]
        hidden, _ = self.decoder(self.words(tokens), state)
        return {"logits": self.next_word(hidden)}


def token_ids(words: tuple[str, ...]) -> torch.Tensor:
    return torch.tensor([[VOCABULARY.index(word) for word in words]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", default=Path(__file__).parent / "output",
                        type=Path, help="where the PNG goes (default: examples/output/)")
    arguments = parser.parse_args()
    arguments.out_dir.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(0)
    photo = TF.center_crop(TF.resize(sample_image("chelsea"), INPUT_SIZE), INPUT_SIZE)

    def tensor(picture):
        return TF.normalize(TF.to_tensor(picture), IMAGENET_MEAN, IMAGENET_STD)[None]

    image = tensor(photo)
    eye = tensor(photo.crop(EYE_BOX).resize((INPUT_SIZE, INPUT_SIZE)))
    embedder = EmbeddingClassifier().eval()
    captioner = Captioner(len(VOCABULARY)).eval()
    with torch.no_grad():
        predicted = int(embedder(image)["logits"].argmax())
        reference = embedder(eye)["embedding"][0]
    # teacher forcing: the decoder reads <start> a cat with green and must predict
    # a cat with green eyes
    inputs = token_ids(("<start>", *CAPTION[:-1]))
    caption = token_ids(CAPTION)

    rows = [
        (f"class {predicted}\n(dict output, output='logits')", embedder,
         dict(targets=predicted, output="logits")),
        ("similarity to the eye crop\n(output='embedding')", embedder,
         dict(targets=EmbeddingSimilarity(reference), output="embedding")),
        (f"log p('{' '.join(CAPTION)}')\n(extra_inputs = its tokens)", captioner,
         dict(targets=TokenLogProbability(caption), extra_inputs=(inputs,))),
    ]
    pictures, titles = [], []
    for title, model, options in rows:
        row, row_titles = [photo], [title]
        for method in METHODS:
            exp = axiomcam.explain(model, image, method=method, target_layer=LAYER, **options)
            row.append(overlay(photo, exp.maps[0]))
            row_titles.append(f"{method_title(method)}, {exp.target_layer}")
            print(f"{title.splitlines()[0]}: {method_title(method)} score "
                  f"{float(exp.scores[0]):.4f}, map on a {exp.raw.shape[1]} x "
                  f"{exp.raw.shape[2]} grid")
        pictures.append(row)
        titles.append(row_titles)
    out_path = arguments.out_dir / "embeddings_and_captions.png"
    save_grid(out_path, pictures, titles)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
