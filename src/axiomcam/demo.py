"""Quick start: explain a pretrained MobileNetV2 on two real photographs.

Run ``python -m axiomcam.demo --out results``. It classifies scikit-image's *chelsea* (a
cat) and *coffee* (an espresso) photographs, explains each image's top class with
Grad-CAM and XGrad-CAM (one batched call per method), and writes

- ``OUT/<image>_<method>.png``: the map overlaid on the image as the network saw it;
- ``OUT/quickstart.png``: a grid, one row per image: original | Grad-CAM | XGrad-CAM.

At MobileNetV2's default layer (``features.18``, followed only by global average pooling
and the classifier) Grad-CAM and XGrad-CAM give the same map, both equal to CAM; the demo
says so. ``--layer features.16`` shows two different maps.

Example:
    >>> from axiomcam.demo import main
    >>> import tempfile
    >>> main(["--out", tempfile.mkdtemp()])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

import axiomcam
from axiomcam import models
from axiomcam.figures import method_title, save_grid
from axiomcam.images import overlay, sample_image
from axiomcam.models import MissingWeightsError, PretrainedModel

IMAGE_NAMES = ("chelsea", "coffee")
DEFAULT_METHODS = ("gradcam", "xgradcam")
def parse_methods(text: str) -> list[str]:
    """Split ``"gradcam,xgradcam"`` into method names, checked against axiomcam's.

    Raises:
        argparse.ArgumentTypeError: an empty list or an unknown method (known ones listed).

    Example:
        >>> parse_methods("gradcam, xgradcam")
        ['gradcam', 'xgradcam']
    """
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"no method named in {text!r}")
    unknown = [name for name in names if name not in axiomcam.METHOD_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown method(s) {', '.join(map(repr, unknown))}; known: "
            f"{', '.join(axiomcam.METHOD_NAMES)}"
        )
    return list(dict.fromkeys(names))  # drop repeats, keep order


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m axiomcam.demo``.

    Example:
        >>> build_parser().parse_args(["--out", "results"]).methods
        ['gradcam', 'xgradcam']
    """
    parser = argparse.ArgumentParser(
        prog="python -m axiomcam.demo",
        description="Explain a pretrained ImageNet classifier on two sample photographs and "
        "write the class activation maps as PNG files.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        help="folder for the PNG files (created if missing; default: results)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument(
        "--methods",
        type=parse_methods,
        default=list(DEFAULT_METHODS),
        help="comma-separated methods (default: gradcam,xgradcam)",
    )
    parser.add_argument(
        "--layer",
        default=None,
        help="target layer (default: the model's default, e.g. features.18)",
    )
    parser.add_argument(
        "--model",
        default="mobilenet_v2",
        choices=models.available(),
        help="pretrained model (default: mobilenet_v2)",
    )
    return parser


def run(
    pretrained: PretrainedModel, out: Path, methods: Sequence[str], layer: str | None = None
) -> list[Path]:
    """Explain the sample images with each method and write the PNG files into ``out``.

    Returns:
        the paths written: one overlay per image and method, then ``quickstart.png``.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from axiomcam import models
        >>> out = Path(tempfile.mkdtemp())
        >>> written = run(models.load("mobilenet_v2"), out, ["gradcam"])  # doctest: +SKIP
    """
    out.mkdir(parents=True, exist_ok=True)
    layer = layer or pretrained.default_layer
    images = [sample_image(name) for name in IMAGE_NAMES]
    displayed = [pretrained.display(image) for image in images]
    inputs = pretrained.prepare(images)

    with torch.no_grad():
        logits = pretrained.model(inputs)
    top = pretrained.top_classes(logits, k=3)
    for name, classes in zip(IMAGE_NAMES, top, strict=True):
        listed = ", ".join(f"{label} {probability:.3f}" for _, label, probability in classes)
        print(f"{name}: {listed}")

    written: list[Path] = []
    maps_by_method: dict[str, torch.Tensor] = {}
    grid_pictures = [[picture] for picture in displayed]
    grid_titles = [
        [f"{name}\n{classes[0][1]} ({classes[0][2]:.2f})"]
        for name, classes in zip(IMAGE_NAMES, top, strict=True)
    ]
    for method in methods:
        # one call per method explains the whole batch, each image for its top class
        # guided backprop explains the input itself: it takes no layer
        method_layer = None if method == "guided_backprop" else layer
        explanation = axiomcam.explain(
            pretrained.model, inputs, method=method, target_layer=method_layer
        )
        for index, name in enumerate(IMAGE_NAMES):
            target = int(explanation.targets[index])
            probability = float(logits[index].softmax(dim=0)[target])
            picture = overlay(displayed[index], explanation.maps[index])
            path = out / f"{name}_{method}.png"
            picture.save(path)
            written.append(path)
            grid_pictures[index].append(picture)
            grid_titles[index].append(
                f"{method_title(method)}\n{pretrained.class_names[target]} ({probability:.2f})"
            )
            print(f"  {name} {method}: layer {explanation.target_layer} -> {path}")
        for earlier, earlier_maps in maps_by_method.items():
            if torch.allclose(earlier_maps, explanation.maps, atol=1e-4):
                print(
                    f"  note: {earlier} and {method} give the same maps at layer "
                    f"{explanation.target_layer}, as they must when only global average "
                    "pooling and a linear layer follow it (both reduce to CAM); an earlier "
                    "--layer tells them apart"
                )
        maps_by_method[method] = explanation.maps

    grid_path = out / "quickstart.png"
    save_grid(grid_path, grid_pictures, grid_titles)
    written.append(grid_path)
    print(f"wrote {grid_path}")
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the process exit code (0 on success, 1 on a clear error)."""
    args = build_parser().parse_args(argv)
    try:
        device = torch.device(args.device)
    except RuntimeError as error:
        print(f"error: invalid --device {args.device!r}: {error}", file=sys.stderr)
        return 1
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            f"error: --device {args.device!r} asked for CUDA but no GPU is available",
            file=sys.stderr,
        )
        return 1
    try:
        pretrained = models.load(args.model, device=device)
    except MissingWeightsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        run(pretrained, args.out, args.methods, args.layer)
    except ValueError as error:  # e.g. a --layer that does not exist (near matches listed)
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # e.g. an --out that cannot be created or written
        print(f"error: cannot write to {str(args.out)!r}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
