"""What the command line and the app decide before explaining: the network's input for an
image file, its classes and their probabilities, which classes to explain and at which
layer, and the explainer of a method at that layer.

Preprocessing: the *whole* image is resized to the model's ``input_size`` squared (no
centre crop, as in :func:`axiomcam.evaluation.evaluation_inputs`), so the map covers every
pixel of the file and is drawn over the original image by bilinear upsampling.

Heads: a softmax head's probabilities are ``softmax(z)`` over its classes; a sigmoid head
(multi-label, or a single-logit binary model) gives each class ``sigmoid(z_c)``
(:func:`choose_head`).  A single-logit model's two classes are ``negative`` (``-z``) and
``positive`` (``z``) (:func:`target_class_names`).

Examples:
    >>> from axiomcam.workflows.classify import parse_targets
    >>> parse_targets("top3", ["cat", "dog", "car", "bus"])
    TargetChoice(top=3, classes=(), threshold=None, head=None, score='logit')
    >>> parse_targets("1,Car", ["cat", "dog", "car", "bus"]).classes
    (1, 2)
    >>> parse_targets("above0.5", ["cat", "dog", "car", "bus"]).threshold
    0.5
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from ..evaluation import evaluation_inputs
from ..layers import candidate_layers, resolve_layer
from ..methods import Explainer, Occlusion, create, method_info
from ..methods.occlusion import scaled_window
from ..models import PretrainedModel
from ..outputs import output_probabilities
from ..targets import ClassScore, LabelsAbove, TargetSpec, TopClasses

__all__ = [
    "HEADS", "SCORES", "TargetChoice", "blank_input", "check_layer", "choose_head",
    "create_explainer", "network_inputs", "parse_targets", "probabilities_and_logits",
    "probabilities_from_logits", "target_class_names", "top_classes",
]

#: how a model's class scores become probabilities: ``softmax`` over the classes, or each
#: class's own ``sigmoid`` (multi-label and single-logit binary models)
HEADS = ("softmax", "sigmoid")
#: what a map explains: the ``logit`` ``z_c``, or the head's ``probability``; ``softmax`` and
#: ``sigmoid`` name the probability and its head at once
SCORES = ("logit", "probability", "softmax", "sigmoid")


@dataclass(frozen=True)
class TargetChoice:
    """What each image is explained for: its ``top`` most probable classes, the given
    ``classes`` (the same for every image), or its labels whose sigmoid probability is at
    least ``threshold``; with the model's ``head`` (``"softmax"``, ``"sigmoid"``,
    ``"output"`` for scores that are probabilities already, or ``None``: as the model's
    :attr:`~axiomcam.models.PretrainedModel.probability` says) and the ``score`` explained
    (``"logit"`` or ``"probability"``, the head's)."""

    top: int | None = None
    classes: tuple[int, ...] = ()
    threshold: float | None = None
    head: str | None = None
    score: str = "logit"

    @property
    def count(self) -> int | None:
        """How many maps each image gets (``None`` for a threshold: as many as its labels)."""
        if self.threshold is not None:
            return None
        return self.top if self.top is not None else len(self.classes)

    @property
    def explained(self) -> str:
        """What each map's score is: ``"logit"`` (the model's score as it is), or the
        head's probability, ``"softmax"`` or ``"sigmoid"``."""
        return (self.head or "probability") if self.score == "probability" else "logit"

    def describe(self) -> str:
        """The targets as ``--target`` spells them (``top3``, ``above0.5``), or ``""`` for
        classes."""
        if self.threshold is not None:
            return f"above{self.threshold:g}"
        return f"top{self.top}" if self.top is not None else ""

    def spec(self, batch: int, device: torch.device) -> TargetSpec:
        """The targets for an explainer: it finds the top classes or the labels above the
        threshold in its own forward pass, so the images are not classified in a pass of
        their own first.  A sigmoid head's classes are given as a
        :class:`~axiomcam.targets.ClassScore`, so that no method (Score-CAM included)
        measures a softmax the model does not have."""
        if self.threshold is not None:
            chosen: TargetSpec = LabelsAbove(self.threshold)
        elif self.top is not None:
            chosen = TopClasses(self.top)
        else:
            chosen = torch.tensor(self.classes, device=device).expand(batch, -1)
        if self.score == "probability" and self.head in HEADS:
            return ClassScore(chosen, softmax=self.head == "softmax",
                              sigmoid=self.head == "sigmoid")
        return ClassScore(chosen) if self.head == "sigmoid" else chosen


def target_class_names(class_names: Sequence[str]) -> list[str]:
    """The names of the classes a map can explain: the model's own, or for a single-logit
    (binary) model its two classes, ``negative`` (``-z``, class 0) and ``positive`` (``z``,
    class 1), with the name given to its one output (``not cat``, ``cat``).

    Examples:
        >>> target_class_names(["class 0"]), target_class_names(["cat"])
        (['negative', 'positive'], ['not cat', 'cat'])
    """
    if len(class_names) != 1:
        return list(class_names)
    if class_names[0] == "class 0":  # the default name: nothing to say
        return ["negative", "positive"]
    return [f"not {class_names[0]}", class_names[0]]


def choose_head(choice: TargetChoice, head: str | None, score: str, single_logit: bool,
                rule: str = "softmax") -> TargetChoice:
    """``choice`` with the model's head and the score to explain, checked.

    Args:
        choice: from :func:`parse_targets`.
        head: ``"softmax"``, ``"sigmoid"`` or ``None`` (decided: ``sigmoid`` for a
            single-logit model, a threshold, ``score="sigmoid"`` or a model whose ``rule``
            is the sigmoid, else ``softmax``).
        score: one of :data:`SCORES`.
        single_logit: the model has one output (a binary sigmoid head).
        rule: how the model's loader says its probabilities follow from its output
            (:attr:`~axiomcam.models.PretrainedModel.probability`): ``"softmax"``,
            ``"sigmoid"`` (logits before an ONNX graph's final Sigmoid) or ``"output"`` (the
            output already is probabilities: its head and score cannot be chosen).

    Raises:
        ValueError: an unknown head or score, a head that contradicts the score, the
            threshold or the model (softmax on a single logit: always 1).

    Examples:
        >>> choose_head(TargetChoice(top=1), None, "sigmoid", False).head
        'sigmoid'
        >>> choose_head(TargetChoice(top=1), "softmax", "sigmoid", False)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: --score sigmoid explains a sigmoid head's probability, but --head softmax...
    """
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}: one of {', '.join(SCORES)}")
    if head is not None and head not in HEADS:
        raise ValueError(f"unknown head {head!r}: one of {', '.join(HEADS)}")
    implied = score if score in HEADS else None
    conflict = _head_conflict(choice, head, score, single_logit, rule)
    if conflict:
        raise ValueError(conflict)
    if rule == "output":
        return dataclasses.replace(choice, head="output", score="logit")
    sigmoid = single_logit or choice.threshold is not None or "sigmoid" in (implied, rule)
    head = head or implied or ("sigmoid" if sigmoid else "softmax")
    return dataclasses.replace(choice, head=head,
                               score="logit" if score == "logit" else "probability")


def _head_conflict(choice: TargetChoice, head: str | None, score: str, single_logit: bool,
                   rule: str) -> str | None:
    """Why ``--head`` and ``--score`` do not fit each other, the targets or the model."""
    implied = score if score in HEADS else None
    if implied is not None and head is not None and head != implied:
        return (f"--score {score} explains a {score} head's probability, but --head {head} "
                "was given")
    if rule == "output" and (head or score != "logit" or choice.threshold is not None
                             or single_logit):
        return ("the model's output already is its probabilities (an ONNX graph explained "
                "with its final Softmax or Sigmoid, --onnx-score probability): its head and "
                "score are not chosen, and thresholds and binary classes need logits; use "
                "--onnx-score logits")
    softmax = "softmax" in (head, implied)
    if single_logit and softmax:
        return ("the model has one output, a binary head: its probabilities are sigmoid(z) "
                "and 1 - sigmoid(z) (the softmax of one logit is always 1); use --head "
                "sigmoid, or leave it out")
    if rule == "sigmoid" and softmax:
        return ("the model's probabilities are the sigmoid of its logits (its ONNX graph ends "
                "in a Sigmoid): use --head sigmoid, or leave it out")
    if choice.threshold is not None and softmax:
        return (f"--target {choice.describe()} picks the labels whose sigmoid probability "
                "passes the threshold: it needs a sigmoid head, not softmax")
    return None


def parse_targets(text: str, class_names: Sequence[str], *,
                  offer_top: bool = True) -> TargetChoice:
    """Read a target spec: ``top1`` / ``top3`` (each image's most probable classes),
    ``above0.5`` (each image's labels whose sigmoid probability is at least 0.5: a
    multi-label head), or a comma-separated list of class indices and names
    (case-insensitive, exact names; a single-logit model's classes are ``negative`` and
    ``positive``, :func:`target_class_names`).

    Args:
        text: the spec.
        class_names: the model's classes, by index (one name: a binary model).
        offer_top: whether the error messages suggest ``topN`` (``False`` where only
            classes are taken, as in the app).

    Raises:
        ValueError: an empty spec, ``top0`` or more than the number of classes, a threshold
            outside ``(0, 1)``, an index out of range, an unknown name (near matches
            listed), a name shared by several classes (ImageNet has two ``crane`` classes:
            their indices are listed), or ``topN`` / ``aboveT`` mixed with classes.

    Examples:
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
    names = target_class_names(class_names)
    num_classes = len(names)
    chosen = _chosen_in_the_pass(parts, text, num_classes)
    if chosen is not None:
        return chosen
    indices_by_name: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        indices_by_name.setdefault(name.lower(), []).append(index)
    if len(class_names) == 1:  # a binary model's sides, whatever its output is named
        indices_by_name.setdefault("negative", [0])
        indices_by_name.setdefault("positive", [1])
    classes = [_class_index(part, indices_by_name, num_classes, offer_top) for part in parts]
    return TargetChoice(classes=tuple(dict.fromkeys(classes)))


def _chosen_in_the_pass(parts: list[str], text: str, num_classes: int
                        ) -> TargetChoice | None:
    """``topN`` or ``aboveT`` (alone), checked; ``None`` for a list of classes."""
    top = re.fullmatch(r"top(\d+)", parts[0], flags=re.IGNORECASE)
    above = re.fullmatch(r"above(.+)", parts[0], flags=re.IGNORECASE)
    if not (top or above):
        return None
    if len(parts) > 1:
        raise ValueError(f"target {text!r}: {'topN' if top else 'aboveT'} cannot be combined "
                         "with other targets")
    if top:
        count = int(top.group(1))
        if not 1 <= count <= num_classes:
            raise ValueError(f"target {text!r}: N in topN must be between 1 and {num_classes}")
        return TargetChoice(top=count)
    try:
        threshold = float(above.group(1))
    except ValueError:
        threshold = math.nan
    if not 0 < threshold < 1:
        raise ValueError(f"target {text!r}: T in aboveT must be a sigmoid probability between "
                         "0 and 1 (exclusive), e.g. above0.5")
    return TargetChoice(threshold=threshold)


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
                     layer: str | Sequence[str] | None, **options: object) -> Explainer:
    """The explainer of ``method`` at ``layer`` (or at each of several layers), with
    ``options`` (``progress``, ...). Guided Backpropagation and occlusion explain the input
    itself: they take no layer, and ``layer`` is ignored; occlusion's window is scaled to
    the model's input as in ``evaluate`` (:func:`~axiomcam.methods.occlusion.scaled_window`:
    32 px at 224, stride 16)."""
    info = method_info(method)
    if info.takes_layer:
        return create(method, pretrained.model, layer, **options)
    if info.name == Occlusion.name:
        side = pretrained.input_size
        window, stride = scaled_window((side, side))
        options = {"window": window, "stride": stride, **options}
    return create(method, pretrained.model, **options)


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


def probabilities_from_logits(logits: object, pretrained: PretrainedModel | None = None,
                              *, head: str | None = None) -> torch.Tensor:
    """Class probabilities of ``(B, num_classes)`` class scores, which must be finite:
    their softmax, or as ``pretrained`` reads its output
    (:meth:`~axiomcam.models.PretrainedModel.probabilities`: the sigmoid of logits before
    an ONNX graph's final Sigmoid, the output itself when it is the graph's probabilities),
    or as ``head`` says instead: ``"softmax"``, ``"sigmoid"`` (a multi-label head; a binary
    model's ``Explanation.logits`` ``[-z, z]`` give ``1 - sigmoid(z)`` and ``sigmoid(z)``)
    or ``"output"`` (the scores already are probabilities).

    Raises:
        ValueError: the model returned something else than a 2-D tensor, or NaN / inf; an
            unknown head; ``"output"`` scores outside ``[0, 1]``.

    Examples:
        >>> probabilities_from_logits(torch.tensor([[0.0, 0.0]])).tolist()
        [[0.5, 0.5]]
        >>> probabilities_from_logits(torch.tensor([[0.0, 0.0]]), head="sigmoid").tolist()
        [[0.5, 0.5]]
    """
    if head is not None and head not in (*HEADS, "output"):
        raise ValueError(f"unknown head {head!r}: one of {', '.join(HEADS)}, output")
    if not torch.is_tensor(logits) or logits.dim() != 2:
        shape = tuple(logits.shape) if torch.is_tensor(logits) else type(logits).__name__
        raise ValueError(f"the model returned {shape}, not (B, num_classes) class scores")
    if not torch.isfinite(logits).all():
        raise ValueError("the model's output contains NaN or inf")
    if head is None:
        return logits.float().softmax(dim=1) if pretrained is None \
            else pretrained.probabilities(logits)
    return output_probabilities(logits.detach().float(), head)


def top_classes(pretrained: PretrainedModel, probabilities: torch.Tensor, k: int = 5
                ) -> list[dict[str, object]]:
    """The ``k`` most probable classes of one image's ``(num_classes,)`` probabilities:
    ``{"index", "name", "probability"}`` each, most probable first (a binary model's
    two classes, from ``Explanation.logits``, named by :func:`target_class_names`)."""
    names = target_class_names(pretrained.class_names)
    if len(names) != probabilities.shape[0]:  # a binary model's one raw output
        names = list(pretrained.class_names)
    values, indices = probabilities.topk(min(k, probabilities.shape[0]))
    return [{"index": int(i), "name": names[int(i)], "probability": float(p)}
            for p, i in zip(values.tolist(), indices.tolist(), strict=True)]
