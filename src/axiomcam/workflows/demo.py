"""The quick start (``axiomcam demo``): explain a pretrained classifier on two real
photographs.

:func:`run_demo` classifies scikit-image's *chelsea* (a cat) and *coffee* (an espresso)
photographs, explains each image's top class with each method (one batched call per
method; Grad-CAM and XGrad-CAM by default), and writes

- ``OUT/<image>_<method>.png``: the map overlaid on the image as the network saw it;
- ``OUT/quickstart.png``: a grid, one row per image: original | one column per method.

At MobileNetV2's default layer (``features.18``, followed only by global average pooling
and the classifier) Grad-CAM and XGrad-CAM give the same map, both equal to CAM; the demo
says so. ``--layer features.16`` shows two different maps.

Example:
    >>> parse_methods("gradcam, Grad-CAM++")
    ['gradcam', 'gradcam++']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..figures import method_title, save_grid
from ..images import overlay, sample_image
from ..methods import METHOD_NAMES, create, method_info, normalise_method_name
from ..models import PretrainedModel

__all__ = ["DEFAULT_METHODS", "IMAGE_NAMES", "parse_methods", "run_demo"]

#: the sample photographs the demo explains
IMAGE_NAMES = ("chelsea", "coffee")
#: the methods it compares unless told otherwise
DEFAULT_METHODS = ("gradcam", "xgradcam")


def parse_methods(text: str) -> list[str]:
    """Split ``"gradcam,xgradcam"`` into method names, each normalised by the method
    registry (:func:`axiomcam.methods.normalise_method_name`), without repeats.

    Raises:
        ValueError: an empty list or an unknown method (the known ones are listed).
    """
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ValueError(f"no method named in {text!r}")
    known, unknown = [], []
    for name in names:
        try:
            known.append(normalise_method_name(name))
        except ValueError:
            unknown.append(name.lower())
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(map(repr, unknown))}; known: "
                         f"{', '.join(METHOD_NAMES)}")
    return list(dict.fromkeys(known))  # drop repeats, keep order


def run_demo(pretrained: PretrainedModel, out: Path, methods: Sequence[str],
             layer: str | None = None, echo: Callable[[str], object] = print) -> list[Path]:
    """Explain the sample images with each method and write the PNG files into ``out``,
    telling ``echo`` the top classes and each file written.

    Returns:
        the paths written: one overlay per image and method, then ``quickstart.png``.

    Raises:
        ValueError: an unknown layer (near matches listed).
        OSError: ``out`` cannot be created or written.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from axiomcam.models import load
        >>> out = Path(tempfile.mkdtemp())
        >>> written = run_demo(load("mobilenet_v2"), out, ["gradcam"])  # doctest: +SKIP
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
        echo(f"{name}: {listed}")

    written: list[Path] = []
    maps_by_method: dict[str, torch.Tensor] = {}
    grid_pictures = [[picture] for picture in displayed]
    grid_titles = [[f"{name}\n{classes[0][1]} ({classes[0][2]:.2f})"]
                   for name, classes in zip(IMAGE_NAMES, top, strict=True)]
    for method in methods:
        # one call per method explains the whole batch, each image for its top class;
        # guided backprop and occlusion explain the input itself: they take no layer
        method_layer = layer if method_info(method).takes_layer else None
        with create(method, pretrained.model, method_layer) as explainer:
            explanation = explainer(inputs, None)
        for index, name in enumerate(IMAGE_NAMES):
            target = int(explanation.targets[index])
            probability = float(logits[index].softmax(dim=0)[target])
            picture = overlay(displayed[index], explanation.maps[index])
            path = out / f"{name}_{method}.png"
            picture.save(path)
            written.append(path)
            grid_pictures[index].append(picture)
            grid_titles[index].append(
                f"{method_title(method)}\n{pretrained.class_names[target]} ({probability:.2f})")
            echo(f"  {name} {method}: layer {explanation.target_layer} -> {path}")
        _note_equal_maps(maps_by_method, method, explanation.maps,
                         explanation.target_layer, echo)
        maps_by_method[method] = explanation.maps

    grid_path = out / "quickstart.png"
    save_grid(grid_path, grid_pictures, grid_titles)
    written.append(grid_path)
    echo(f"wrote {grid_path}")
    return written


def _note_equal_maps(earlier_maps: dict[str, torch.Tensor], method: str, maps: torch.Tensor,
                     layer: str | None, echo: Callable[[str], object]) -> None:
    """Say so when ``method``'s maps equal an earlier method's (both reduce to CAM)."""
    for earlier, other in earlier_maps.items():
        if torch.allclose(other, maps, atol=1e-4):
            echo(f"  note: {earlier} and {method} give the same maps at layer {layer}, as "
                 "they must when only global average pooling and a linear layer follow it "
                 "(both reduce to CAM); an earlier --layer tells them apart")
