"""Explain an ONNX model, naming the target layer by its ONNX node name.

By default a random-weight torchvision ResNet-18 is exported to ONNX in a temporary folder
(torch's TorchScript-based exporter at opset 17, which onnx2torch converts), loaded back with
``axiomcam.models.from_onnx``, and the bundled ``chelsea`` photo is explained with Grad-CAM
and XGrad-CAM at the ONNX node ``/layer3/layer3.1/relu_1/Relu`` (the output of the torch
model's ``layer3``, 14 x 14: at ``layer4``, right before global pooling and the linear layer,
the two methods give the same map).  The script checks that the converted model gives the
torch model's outputs and maps, prints the layers a CAM can use, and writes one PNG overlay
per method.

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

import axiomcam
from axiomcam.layers import candidate_layers
from axiomcam.models import from_onnx
from axiomcam.images import overlay, sample_image

METHODS = ("gradcam", "xgradcam")
# the ONNX node torch.onnx.export names for the output of resnet18's layer3 (a BasicBlock
# calls its ReLU twice; the second call is "relu_1")
RESNET_NODE, RESNET_LAYER = "/layer3/layer3.1/relu_1/Relu", "layer3"


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


if __name__ == "__main__":
    main()
