"""Explain ONNX models: the target layer named by its ONNX node name, and a model as
TensorFlow/Keras exports it (channels-last input, preprocessing and a Softmax in the graph).

By default a random-weight torchvision ResNet-18 is exported to ONNX in a temporary folder
(torch's TorchScript-based exporter at opset 17, which onnx2torch converts), loaded back with
``axiomcam.models.from_onnx``, and the bundled ``chelsea`` photo is explained with Grad-CAM
and XGrad-CAM at the ONNX node ``/layer3/layer3.1/relu_1/Relu`` (the output of the torch
model's ``layer3``, 14 x 14: at ``layer4``, right before global pooling and the linear layer,
the two methods give the same map).  The script checks that the converted model gives the
torch model's outputs and maps, prints the layers a CAM can use, and writes one PNG overlay
per method.

Then a Keras-like model: a small random CNN whose graph takes ``(N, H, W, C)`` inputs in
0..255, rescales them by 1/255, transposes them to channels-first and ends in a Softmax, as
tf2onnx writes a Keras classifier.  ``from_onnx`` reads all of that from the graph: it feeds
the layout the model wants, leaves the Softmax out (the logits before it are explained) and
picks the ``raw255`` preprocessing; the script prints what it decided, checks the maps
against the same network in PyTorch, and writes ``onnx_keras_METHOD.png``.

Run (needs ``pip install "axiomcam[onnx]"``; a few seconds on a CPU)::

    python examples/onnx_model.py                       # -> examples/output/onnx_*.png
    python examples/onnx_model.py out/ --onnx my.onnx --layer "/features/features.18/Conv"

With ``--onnx`` a file of your own is explained instead (its default layer unless
``--layer`` names an ONNX node); the torch comparison is skipped then.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import torch
import torchvision
from torch import nn

import axiomcam
from axiomcam.images import overlay, sample_image
from axiomcam.layers import candidate_layers
from axiomcam.models import from_onnx

METHODS = ("gradcam", "xgradcam")
# the ONNX node torch.onnx.export names for the output of resnet18's layer3 (a BasicBlock
# calls its ReLU twice; the second call is "relu_1")
RESNET_NODE, RESNET_LAYER = "/layer3/layer3.1/relu_1/Relu", "layer3"


# the Keras-like model's last ReLU, as ONNX node and as PyTorch layer
KERAS_NODE, KERAS_LAYER = "/features/features.6/Relu", "features.6"


class KerasLike(nn.Module):
    """A classifier as a Keras model is written: ``(N, H, W, C)`` inputs in 0..255,
    ``Rescaling(1/255)``, the convolutions (channels first once transposed) and a
    Softmax.  ``logits`` is the same network in PyTorch's layout, without the Softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 5))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x / 255))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * (1 / 255)  # Keras's Rescaling, on the channels-last input
        return self.head(self.features(x.permute(0, 3, 1, 2))).softmax(dim=-1)


def export_keras_like(folder: Path) -> tuple[KerasLike, Path]:
    """A random Keras-like model and its ONNX file, input (1, 64, 64, 3)."""
    torch.manual_seed(0)
    model = KerasLike().eval()
    path = folder / "keras_like.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.rand(1, 64, 64, 3) * 255,), str(path), dynamo=False,
                          opset_version=17, input_names=["input_1"])
    return model, path


def explain_keras_like(path: Path, network: KerasLike, out_dir: Path) -> list[Path]:
    pretrained = from_onnx(path)
    print(f"{path.name}: {pretrained.channels} channels, input {pretrained.input_size} x "
          f"{pretrained.input_size}, score: {pretrained.score}")
    for note in pretrained.notes:
        print(f"  note: {note}")
    image = sample_image("chelsea")
    inputs = pretrained.prepare(image)  # (1, 3, 64, 64), pixels 0..255 (raw255)
    written = []
    for method in METHODS:
        exp = axiomcam.explain(pretrained.model, inputs, method=method, target_layer=KERAS_NODE)
        torch_logits = _LogitsOnly(network)
        reference = axiomcam.explain(torch_logits, inputs, method=method,
                                     target_layer=f"network.{KERAS_LAYER}")
        difference = (exp.maps - reference.maps).abs().max().item()
        print(f"{method}: largest map difference, ONNX node {KERAS_NODE!r} vs torch "
              f"{KERAS_LAYER!r} on the logits: {difference:.2e}")
        out_path = out_dir / f"onnx_keras_{method}.png"
        overlay(pretrained.display(image), exp.maps[0]).save(out_path)
        written.append(out_path)
    return written


class _LogitsOnly(nn.Module):
    """The Keras-like network on (B, C, H, W) inputs, returning its logits."""

    def __init__(self, network: KerasLike) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network.logits(x)


def export_resnet(folder: Path) -> tuple[torch.nn.Module, Path]:
    """A random-weight ResNet-18 (10 classes) and its ONNX file, input 224 x 224."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    path = folder / "resnet18.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch deprecates dynamo=False, which onnx2torch needs
        torch.onnx.export(model, (torch.rand(1, 3, 224, 224),), str(path), dynamo=False,
                          opset_version=17)
    return model, path


def explain_file(path: Path, layer: str | None, out_dir: Path,
                 torch_model: torch.nn.Module | None) -> list[Path]:
    pretrained = from_onnx(path)
    image = sample_image("chelsea")
    inputs = pretrained.prepare(image)
    print(f"{path.name}: input {pretrained.input_size} x {pretrained.input_size}, "
          f"{len(pretrained.class_names)} outputs, default layer {pretrained.default_layer!r}")
    usable = candidate_layers(pretrained.model, inputs)
    print("layers a CAM can explain (last five):")
    for name, shape in usable[-5:]:
        print(f"  {name:45s} {shape}")
    if torch_model is not None:
        with torch.no_grad():
            difference = (pretrained.model(inputs) - torch_model(inputs)).abs().max().item()
        print(f"largest output difference, ONNX vs torch: {difference:.2e}")

    written = []
    for method in METHODS:
        exp = axiomcam.explain(pretrained.model, inputs, method=method, target_layer=layer)
        if torch_model is not None and layer == RESNET_NODE:
            reference = axiomcam.explain(torch_model, inputs, method=method,
                                         target_layer=RESNET_LAYER)
            difference = (exp.maps - reference.maps).abs().max().item()
            print(f"{method}: largest map difference, ONNX node {layer!r} vs torch "
                  f"{RESNET_LAYER!r}: {difference:.2e}")
        target = int(exp.targets[0])
        picture = overlay(pretrained.display(image), exp.maps[0])
        out_path = out_dir / f"onnx_{method}.png"
        picture.save(out_path)
        written.append(out_path)
        print(f"{method} at {exp.target_layer!r} for {pretrained.class_names[target]!r} "
              f"-> {out_path}")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", default=Path(__file__).parent / "output",
                        type=Path, help="where the PNGs go (default: examples/output/)")
    parser.add_argument("--onnx", type=Path, default=None,
                        help="an ONNX file to explain instead of the exported ResNet-18")
    parser.add_argument("--layer", default=None,
                        help=f"the ONNX node to explain (default: {RESNET_NODE} for the "
                             "ResNet-18, the model's default layer for --onnx)")
    arguments = parser.parse_args()
    arguments.out_dir.mkdir(parents=True, exist_ok=True)
    if arguments.onnx is not None:
        explain_file(arguments.onnx, arguments.layer, arguments.out_dir, torch_model=None)
        return
    with tempfile.TemporaryDirectory() as folder:
        torch_model, path = export_resnet(Path(folder))
        explain_file(path, arguments.layer or RESNET_NODE, arguments.out_dir, torch_model)
        network, keras_path = export_keras_like(Path(folder))
        explain_keras_like(keras_path, network, arguments.out_dir)


if __name__ == "__main__":
    main()
