"""What the command line and the app decide before explaining: the network's input for an
image file, its classes and their probabilities, which classes to explain and at which
layer, and the explainer of a method at that layer.

Preprocessing: the *whole* image is resized to the model's ``input_size`` squared (no
centre crop, as in :func:`axiomcam.evaluation.evaluation_inputs`), so the map covers every
pixel of the file and is drawn over the original image by bilinear upsampling.

Example:
    >>> from axiomcam.workflows.classify import parse_targets
    >>> parse_targets("top3", ["cat", "dog", "car", "bus"])
    TargetChoice(top=3, classes=())
    >>> parse_targets("1,Car", ["cat", "dog", "car", "bus"])
    TargetChoice(top=None, classes=(1, 2))
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from ..evaluation import evaluation_inputs
from ..layers import candidate_layers, resolve_layer
from ..methods import Explainer, GuidedBackprop, create
from ..models import PretrainedModel
from ..targets import TargetSpec, TopClasses

__all__ = [
    "TargetChoice", "blank_input", "check_layer", "create_explainer", "network_inputs",
    "parse_targets",
    "probabilities_and_logits", "probabilities_from_logits", "top_classes",
]


@dataclass(frozen=True)
class TargetChoice:
    """What each image is explained for: its ``top`` most probable classes, or the given
    ``classes`` (the same for every image)."""

    top: int | None = None
    classes: tuple[int, ...] = ()

    @property
    def count(self) -> int:
        """How many maps each image gets."""
        return self.top if self.top is not None else len(self.classes)

    def spec(self, batch: int, device: torch.device) -> TargetSpec:
        """The targets for an explainer: it finds the top classes in its own forward pass,
        so the images are not classified in a pass of their own first."""
        if self.top is not None:
            return TopClasses(self.top)
        return torch.tensor(self.classes, device=device).expand(batch, -1)


def parse_targets(text: str, class_names: Sequence[str], *,
                  offer_top: bool = True) -> TargetChoice:
    """Read a target spec: ``top1`` / ``top3`` (each image's most probable classes), or a
    comma-separated list of class indices and names (case-insensitive, exact names).

    Args:
        text: the spec.
        class_names: the model's classes, by index.
        offer_top: whether the error messages suggest ``topN`` (``False`` where only
            classes are taken, as in the app).

    Raises:
        ValueError: an empty spec, ``top0`` or more than the number of classes, an index out
            of range, an unknown name (near matches listed), a name shared by several classes
            (ImageNet has two ``crane`` classes: their indices are listed), or ``topN`` mixed
            with classes.

    Example:
        >>> parse_targets("Top2", ["a", "b", "c"]).top
        2
        >>> parse_targets("crane", ["crane", "bird", "crane"])
        Traceback (most recent call last):
        ...
        ValueError: class name 'crane' is shared by classes 0, 2: give the index instead
        >>> parse_targets(" ", ["a", "b"], offer_top=False)
        Traceback (most recent call last):
        ...
        ValueError: no target in ' ': give a class index or a name
    """
    parts = [part.strip() for part in str(text).split(",") if part.strip()]
    if not parts:
        offered = "top1, top3, a class index or a name" if offer_top else \
            "a class index or a name"
        raise ValueError(f"no target in {text!r}: give {offered}")
    num_classes = len(class_names)
    top = re.fullmatch(r"top(\d+)", parts[0], flags=re.IGNORECASE)
    if top:
        if len(parts) > 1:
            raise ValueError(f"target {text!r}: topN cannot be combined with other targets")
        count = int(top.group(1))
        if not 1 <= count <= num_classes:
            raise ValueError(f"target {text!r}: N in topN must be between 1 and {num_classes}")
        return TargetChoice(top=count)
    indices_by_name: dict[str, list[int]] = {}
    for index, name in enumerate(class_names):
        indices_by_name.setdefault(name.lower(), []).append(index)
    classes = [_class_index(part, indices_by_name, num_classes, offer_top) for part in parts]
    return TargetChoice(classes=tuple(dict.fromkeys(classes)))


def _class_index(part: str, indices_by_name: dict[str, list[int]], num_classes: int,
                 offer_top: bool) -> int:
    """One class of a target spec, given by index or by (lower-cased) name."""
    if re.fullmatch(r"[+-]?\d+", part):
        index = int(part)
        if not 0 <= index < num_classes:
            raise ValueError(f"target class {index} is out of range: the model has "
                             f"{num_classes} classes (0..{num_classes - 1})")
        return index
    matches = indices_by_name.get(part.lower())
    if matches is None:
        near = difflib.get_close_matches(part.lower(), list(indices_by_name), n=3, cutoff=0.6)
        contains = [name for name in indices_by_name if part.lower() in name][:3]
        suggestions = list(dict.fromkeys(near + contains))
        hint = f"; did you mean {', '.join(map(repr, suggestions))}?" if suggestions else ""
        offered = "top1, top3 or a class index" if offer_top else "a class index"
        raise ValueError(f"unknown class name {part!r}{hint} (or give {offered})")
    if len(matches) > 1:
        raise ValueError(f"class name {part!r} is shared by classes "
                         f"{', '.join(map(str, matches))}: give the index instead")
    return matches[0]


def check_layer(pretrained: PretrainedModel, layer: str | None) -> str:
    """The layer to explain: ``layer`` checked against the model, or the model's default.

    One forward pass on a blank input finds the layers with a spatial output.

    Raises:
        ValueError: the name does not exist (near matches listed), or the layer's output
            has no spatial dimensions (the usable layers near it are listed).
    """
    if layer is None:
        return pretrained.default_layer
    name, _ = resolve_layer(pretrained.model, layer)
    blank = blank_input(pretrained)
    usable = [candidate for candidate, _ in candidate_layers(pretrained.model, blank)]
    if name not in usable:
        near = difflib.get_close_matches(name, usable, n=3, cutoff=0.5)
        hint = f"; layers near it that can: {', '.join(near)}" if near else ""
        raise ValueError(f"layer {name!r} has no (B, C, h, w) output with h*w > 1 (nor "
                         f"transformer tokens on a grid), so a CAM cannot explain it{hint}")
    return name


def create_explainer(pretrained: PretrainedModel, method: str,
                     layer: str | Sequence[str] | None) -> Explainer:
    """The explainer of ``method`` at ``layer`` (or at each of several layers; Guided
    Backpropagation explains the input itself: it takes no layer, and ``layer`` is
    ignored)."""
    if method == GuidedBackprop.name:
        return create(method, pretrained.model)
    return create(method, pretrained.model, layer)


def blank_input(pretrained: PretrainedModel) -> torch.Tensor:
    """``(1, C, S, S)`` zeros on the model's device: one input of the model's channels and
    size, for the forward pass that lists its layers."""
    side = pretrained.input_size
    return torch.zeros(1, pretrained.channels, side, side, device=pretrained.device)


def network_inputs(pretrained: PretrainedModel, images: Sequence[Image.Image]
                   ) -> torch.Tensor:
    """``(B, C, S, S)``: the whole images resized to the input size and normalised, on the
    model's device (:func:`axiomcam.evaluation.evaluation_inputs` with no boxes): RGB, grey
    for a 1-channel model, or the values of array pictures."""
    inputs, _ = evaluation_inputs(pretrained, images, [torch.zeros(0, 4)] * len(images))
    return inputs


def probabilities_and_logits(model: torch.nn.Module, inputs: torch.Tensor,
                             pretrained: PretrainedModel | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass without gradients: ``(probabilities, logits)``, both
    ``(B, num_classes)`` (see :func:`probabilities_from_logits`)."""
    with torch.no_grad():
        logits = model(inputs)
    return probabilities_from_logits(logits, pretrained), logits


def probabilities_from_logits(logits: object, pretrained: PretrainedModel | None = None
                              ) -> torch.Tensor:
    """Class probabilities of ``(B, num_classes)`` class scores, which must be finite:
    their softmax, or as ``pretrained`` reads its output
    (:meth:`~axiomcam.models.PretrainedModel.probabilities`: the sigmoid of logits before
    an ONNX graph's final Sigmoid, the output itself when it is the graph's probabilities).

    Raises:
        ValueError: the model returned something else than a 2-D tensor, or NaN / inf.

    Example:
        >>> probabilities_from_logits(torch.tensor([[0.0, 0.0]])).tolist()
        [[0.5, 0.5]]
    """
    if not torch.is_tensor(logits) or logits.dim() != 2:
        shape = tuple(logits.shape) if torch.is_tensor(logits) else type(logits).__name__
        raise ValueError(f"the model returned {shape}, not (B, num_classes) class scores")
    if not torch.isfinite(logits).all():
        raise ValueError("the model's output contains NaN or inf")
    if pretrained is not None:
        return pretrained.probabilities(logits)
    return logits.float().softmax(dim=1)


def top_classes(pretrained: PretrainedModel, probabilities: torch.Tensor, k: int = 5
                ) -> list[dict[str, object]]:
    """The ``k`` most probable classes of one image's ``(num_classes,)`` probabilities:
    ``{"index", "name", "probability"}`` each, most probable first."""
    values, indices = probabilities.topk(min(k, probabilities.shape[0]))
    return [{"index": int(i), "name": pretrained.class_names[int(i)], "probability": float(p)}
            for p, i in zip(values.tolist(), indices.tolist(), strict=True)]
