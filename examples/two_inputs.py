"""Explain a model with two inputs, an image and a question, explaining only the image.

A small visual-question-answering network is defined here (random weights): a CNN reads
the image into ``(B, 64, 28, 28)`` features, an embedding bag reads the question's token ids
into a ``(B, 64)`` vector (the sum of its words' embeddings), and the question gates the
image features channel by channel (``features * sigmoid(question)``) before a last
convolution, global average pooling and a yes / no answer.  The model is called as
``model(images, tokens)``; axiomcam explains the images only, with
``extra_inputs=(tokens,)``: the tokens tensor has one row per image, so row ``i`` goes with
image ``i``, also in the perturbed copies that Score-CAM runs.

The batch holds the bundled ``chelsea`` photo twice, once with "is there a cat ?" and once
with "is there a cup ?"; each row is explained for the answer "yes" with Grad-CAM,
XGrad-CAM and Score-CAM at ``image`` (the image branch's output, before the question joins
it).  The activations there are the same for both rows; the maps differ because the
question changes what the rest of the network does with them.  The script writes one grid
of overlays, a row per question, and checks the pairing: the last image explained alone with
its own question gets the map of its row.

Run (a few seconds on a CPU; nothing is downloaded)::

    python examples/two_inputs.py                 # -> examples/output/two_inputs.png
    python examples/two_inputs.py out/ --questions "is there a cat ?" "is there a dog ?"
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from torch import nn

import axiomcam
from axiomcam.figures import method_title, save_grid
from axiomcam.images import overlay, sample_image
from axiomcam.models import IMAGENET_MEAN, IMAGENET_STD

METHODS = ("gradcam", "xgradcam", "scorecam")
LAYER = "image"
QUESTIONS = ("is there a cat ?", "is there a cup ?")
VOCABULARY = ("<pad>", "is", "there", "a", "an", "any", "?", "cat", "dog", "cup", "coffee",
              "rocket", "person", "camera", "motorcycle", "eye", "nose", "table")
ANSWERS = ("yes", "no")
INPUT_SIZE = 224


class QuestionAnswering(nn.Module):
    """Image + question -> answer logits ``(B, len(ANSWERS))``.

    ``forward(images (B, 3, H, W), tokens (B, L) ids)``: the sigmoid of the question's
    summed token embeddings gates the image features channel by channel after the
    convolutional stage.
    """

    def __init__(self, vocabulary_size: int, answers: int, channels: int = 64) -> None:
        super().__init__()
        self.image = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, channels, 3, stride=2, padding=1), nn.ReLU(),
        )
        # a sum, not a mean: the word that differs between two questions keeps its full
        # weight; padding tokens (id 0) are left out
        self.question = nn.EmbeddingBag(vocabulary_size, channels, mode="sum",
                                        padding_idx=0)
        self.fused = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())
        self.answer = nn.Linear(channels, answers)
        # He initialisation without biases: PyTorch's default initialisation shrinks the
        # activations layer after layer, and the untrained answer would be the bias alone
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        features = self.image(images)
        gate = torch.sigmoid(self.question(tokens))
        fused = self.fused(features * gate[:, :, None, None])
        return self.answer(fused.mean(dim=(2, 3)))


def tokenize(questions: list[str]) -> torch.Tensor:
    """``(len(questions), longest)`` token ids, padded with 0.

    Raises:
        ValueError: a word that is not in :data:`VOCABULARY`.
    """
    rows = []
    for question in questions:
        words = question.lower().split()
        unknown = [word for word in words if word not in VOCABULARY]
        if unknown:
            raise ValueError(f"unknown words {unknown} in {question!r}; the vocabulary is "
                             f"{', '.join(VOCABULARY[1:])}")
        rows.append([VOCABULARY.index(word) for word in words])
    longest = max(len(row) for row in rows)
    return torch.tensor([row + [0] * (longest - len(row)) for row in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", default=Path(__file__).parent / "output",
                        type=Path, help="where the PNG goes (default: examples/output/)")
    parser.add_argument("--questions", nargs="+", default=list(QUESTIONS),
                        help="questions about the photo, one explained row each")
    arguments = parser.parse_args()
    arguments.out_dir.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(0)
    model = QuestionAnswering(len(VOCABULARY), len(ANSWERS)).eval()
    tokens = tokenize(arguments.questions)
    image = TF.center_crop(TF.resize(sample_image("chelsea"), INPUT_SIZE), INPUT_SIZE)
    single = TF.normalize(TF.to_tensor(image), IMAGENET_MEAN, IMAGENET_STD)
    images = single[None].expand(len(arguments.questions), -1, -1, -1).contiguous()
    with torch.no_grad():
        probabilities = torch.softmax(model(images, tokens), dim=1)
    yes = ANSWERS.index("yes")

    pictures, titles = [], []
    for question, p in zip(arguments.questions, probabilities, strict=True):
        pictures.append([image])
        titles.append([f"{question!r}\np(yes) = {float(p[yes]):.3f}"])
    for method in METHODS:
        exp = axiomcam.explain(model, images, method=method, target_layer=LAYER,
                               targets=yes, extra_inputs=(tokens,), progress=False)
        for row in range(len(arguments.questions)):
            pictures[row].append(overlay(image, exp.maps[row]))
            titles[row].append(f"{method_title(method)}, answer 'yes'")
        # the last image explained alone, with its own question: the same map as its row
        alone = axiomcam.explain(model, images[-1:], method=method, target_layer=LAYER,
                                 targets=yes, extra_inputs=(tokens[-1:],), progress=False)
        print(f"{method_title(method)} at {exp.target_layer!r}: 'yes' logits "
              f"{[round(float(s), 4) for s in exp.scores]}; mean |map difference| between "
              f"the first and last question "
              f"{float((exp.maps[0] - exp.maps[-1]).abs().mean()):.3f}; last row vs that "
              f"image alone {float((exp.maps[-1] - alone.maps[0]).abs().max()):.1e}")

    out_path = arguments.out_dir / "two_inputs.png"
    save_grid(out_path, pictures, titles)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
