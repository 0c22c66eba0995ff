"""The quick start (``axiomcam demo``): explain a pretrained classifier on two real
photographs, and measure each map against XGrad-CAM's axioms.

:func:`run_demo` classifies scikit-image's *chelsea* (a cat) and *coffee* (an espresso)
photographs, explains each image's top class with each method (one batched call per
method; Grad-CAM and XGrad-CAM by default) at an inner layer where they differ
(:data:`DEMO_LAYERS`: MobileNetV2's ``features.17.conv.1``), measures the conservation
error (CE) and sensitivity error (SE) of each map with channel weights (one
:class:`~axiomcam.metrics.AxiomProbe` for both images, shared by the methods), and writes

- ``OUT/<image>_<method>.png``: the map overlaid on the image as the network saw it;
- ``OUT/quickstart.png``: a grid, one row per image: original | one column per method
  (:func:`figure_columns`), each map with its CE and SE under it, as
  ``axiomcam compare --axioms`` draws them;
- ``OUT/counterfactual.png`` (:func:`run_counterfactual`): one application, on a composite
  image of two real objects: Grad-CAM of the first object's class and its counterfactual
  map (the evidence *against* that class), each with its share of mass in either box.

At MobileNetV2's default layer (``features.18``, followed only by global average pooling
and the classifier) Grad-CAM and XGrad-CAM give the same map, both equal to CAM, and the
demo says so (``--layer features.18``); at ``features.17.conv.1`` two 1x1 convolutions
with BatchNorm and a ReLU6 come before the pooling, and the maps and their errors differ
(on these photographs XGrad-CAM's sensitivity error is the smaller one).

Examples:
    >>> parse_methods("gradcam, Grad-CAM++")
    ['gradcam', 'gradcam++']
    >>> [column.method for column in figure_columns(["gradcam", "xgradcam"])]
    ['gradcam', 'xgradcam']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data import CompositeBenchmark
from ..evaluation.inputs import evaluation_inputs
from ..figures import axiom_caption, method_title, save_grid
from ..images import overlay, sample_image
from ..methods import METHOD_NAMES, create, method_info, normalise_method_name
from ..metrics import AxiomErrors, AxiomProbe, class_discrimination
from ..models import PretrainedModel

__all__ = ["DEFAULT_METHODS", "DEMO_LAYERS", "IMAGE_NAMES", "DemoColumn", "figure_columns",
           "parse_methods", "run_counterfactual", "run_demo"]

#: the sample photographs the demo explains
IMAGE_NAMES = ("chelsea", "coffee")
#: the methods it compares unless told otherwise
DEFAULT_METHODS = ("gradcam", "xgradcam")
#: the layer the demo explains per built-in model unless told otherwise: an inner layer
#: (the one docs/evaluation.md measures) where Grad-CAM and XGrad-CAM differ; another
#: model's default layer otherwise
DEMO_LAYERS = {"mobilenet_v2": "features.17.conv.1", "efficientnet_lite0": "_blocks.15._swish"}


@dataclass(frozen=True)
class DemoColumn:
    """One column of the quick start's figure: a method's map of each image.

    Attributes:
        method: the method's name.
        title: the column's title (``None``: the method's title).
        options: options of the method (passed to :func:`axiomcam.methods.create`).
        name: the overlays' file names are ``<image>_<name>.png`` (``None``: the method).
        axioms: caption the map with its axiom errors (when it has channel weights);
            ``False`` for a map the axioms do not describe (a counterfactual map's
            negated weights explain no score).
    """

    method: str
    title: str | None = None
    options: dict[str, object] = field(default_factory=dict)
    name: str | None = None
    axioms: bool = True


def figure_columns(methods: Sequence[str]) -> list[DemoColumn]:
    """The figure's columns after the photograph: one per method, in order. An
    application's map (e.g. a counterfactual Grad-CAM) is one more :class:`DemoColumn`
    appended here.
    """
    return [DemoColumn(method) for method in methods]


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
    """Explain the sample images with each method, measure the axioms of the maps with
    channel weights, and write the PNG files into ``out``, telling ``echo`` the top
    classes, each map's CE and SE and each file written.

    Returns:
        the paths written: one overlay per image and method, then ``quickstart.png``.

    Raises:
        ValueError: an unknown layer (near matches listed).
        OSError: ``out`` cannot be created or written.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from axiomcam.models import load
        >>> out = Path(tempfile.mkdtemp())
        >>> written = run_demo(load("mobilenet_v2"), out, ["gradcam"])  # doctest: +SKIP
    """
    out.mkdir(parents=True, exist_ok=True)
    layer = layer or DEMO_LAYERS.get(pretrained.name, pretrained.default_layer)
    images = [sample_image(name) for name in IMAGE_NAMES]
    displayed = [pretrained.display(image) for image in images]
    inputs = pretrained.prepare(images)

    with torch.no_grad():
        logits = pretrained.model(inputs)
    top = pretrained.top_classes(logits, k=3)
    for name, classes in zip(IMAGE_NAMES, top, strict=True):
        listed = ", ".join(f"{label} {probability:.3f}" for _, label, probability in classes)
        echo(f"{name}: {listed}")

    # every map explains each image's top class; the layer is probed once for all maps
    probe = AxiomProbe(pretrained.model, inputs, logits.argmax(dim=1), layer)
    written: list[Path] = []
    maps_by_method: dict[str, torch.Tensor] = {}
    grid = [([picture], [f"{name}\n{classes[0][1]} ({classes[0][2]:.2f})"], [""])
            for picture, name, classes in zip(displayed, IMAGE_NAMES, top, strict=True)]
    for column in figure_columns(methods):
        maps, errors = _explain_column(probe, pretrained, column, layer)
        for index, name in enumerate(IMAGE_NAMES):
            target = int(logits[index].argmax())
            probability = float(logits[index].softmax(dim=0)[target])
            picture = overlay(displayed[index], maps[index])
            path = out / f"{name}_{column.name or column.method}.png"
            picture.save(path)
            written.append(path)
            caption = _caption(errors, index)
            grid[index][0].append(picture)
            grid[index][1].append(f"{column.title or method_title(column.method)}\n"
                                  f"{pretrained.class_names[target]} ({probability:.2f})")
            grid[index][2].append(caption)
            echo(f"  {name} {column.method}: layer {layer}"
                 f"{f' ({caption})' if caption else ''} -> {path}")
        _note_equal_maps(maps_by_method, column.method, maps, layer, echo)
        maps_by_method[column.method] = maps

    grid_path = out / "quickstart.png"
    pictures, titles, captions = (list(part) for part in zip(*grid, strict=True))
    save_grid(grid_path, pictures, titles, captions)
    written.append(grid_path)
    echo(f"wrote {grid_path}")
    return written


def _explain_column(probe: AxiomProbe, pretrained: PretrainedModel, column: DemoColumn,
                    layer: str) -> tuple[torch.Tensor, AxiomErrors | None]:
    """One column's maps of both images and their axiom errors (``None``: no channel
    weights, or a method that explains the input itself and takes no layer: guided
    backprop, occlusion)."""
    if not method_info(column.method).takes_layer:
        with create(column.method, pretrained.model, None, **column.options) as explainer:
            return explainer(probe.inputs, probe.targets).maps, None
    with create(column.method, pretrained.model, layer, **column.options) as explainer:
        explanation, errors = probe.explain(explainer)
    return explanation.maps, errors if column.axioms else None


def _caption(errors: AxiomErrors | None, image: int) -> str:
    """The axiom errors under a map (empty for a map without channel weights)."""
    if errors is None:
        return ""
    return axiom_caption(float(errors.conservation_error[image]),
                         float(errors.sensitivity_error[image]))


def _note_equal_maps(earlier_maps: dict[str, torch.Tensor], method: str, maps: torch.Tensor,
                     layer: str | None, echo: Callable[[str], object]) -> None:
    """Say so when ``method``'s maps equal an earlier method's (both reduce to CAM)."""
    for earlier, other in earlier_maps.items():
        if torch.allclose(other, maps, atol=1e-4):
            echo(f"  note: {earlier} and {method} give the same maps at layer {layer}, as "
                 "they must when only global average pooling and a linear layer follow it "
                 "(both reduce to CAM); an earlier --layer tells them apart")


def run_counterfactual(pretrained: PretrainedModel, out: Path, layer: str | None = None,
                       echo: Callable[[str], object] = print) -> Path:
    """Draw ``OUT/counterfactual.png``: Grad-CAM and counterfactual Grad-CAM of one class on
    a composite image holding two objects of different classes.

    The image is the first of ``CompositeBenchmark(1, ..., two_object_fraction=1.0)`` (seed
    0: real objects cut from scikit-image's photographs, pasted on a real texture), seen as
    ``evaluate`` sees it (whole image resized). The explained class is the first object's.
    The counterfactual map negates the gradient (``w_k = mean_ij(-dy^c/dA^k_ij)``): the
    regions whose removal should make the network *more* confident in the class. Each map's
    caption gives its share of mass in the explained object's box and in the other one's
    (:func:`axiomcam.metrics.class_discrimination`), also told to ``echo``.

    Returns:
        the figure's path.
    """
    layer = layer or DEMO_LAYERS.get(pretrained.name, pretrained.default_layer)
    sample = CompositeBenchmark(1, pretrained.class_names, two_object_fraction=1.0)[0]
    inputs, (boxes,) = evaluation_inputs(pretrained, [sample.image], [sample.boxes])
    target = int(sample.box_labels[0])
    own, other = boxes[sample.box_labels == target], boxes[sample.box_labels != target]
    names = [pretrained.class_names[int(label)] for label in sample.box_labels]
    shown = pretrained.display(sample.image)
    pictures, titles, captions = [shown], [f"composite image\n{' and '.join(names)}"], [""]
    for counterfactual in (False, True):
        with create("gradcam", pretrained.model, layer,
                    counterfactual=counterfactual) as explainer:
            maps = explainer(inputs, torch.tensor([target])).maps
        shares = class_discrimination(maps, [own], [other])
        caption = (f"mass in {names[0]} box {float(shares.right[0]):.2f}\n"
                   f"in {names[1]} box {float(shares.wrong[0]):.2f}")
        kind = "counterfactual " if counterfactual else ""
        pictures.append(overlay(shown, maps[0]))
        titles.append(f"Grad-CAM {kind}of\n{names[0]}")
        captions.append(caption)
        one_line = caption.replace("\n", ", ")
        echo(f"  composite Grad-CAM {kind}of {names[0]}: layer {layer} ({one_line})")
    path = out / "counterfactual.png"
    save_grid(path, [pictures], [titles], [captions])
    echo(f"wrote {path}")
    return path
