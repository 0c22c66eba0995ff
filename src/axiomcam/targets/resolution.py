"""What a map explains: the target specs (``None``, a class, one class per image, ``(B, k)``
classes, :class:`TopClasses`, :class:`~axiomcam.targets.LabelsAbove`,
:class:`~axiomcam.targets.ClassScore`, a callable) and their resolution against a batch and
the model's output (:func:`resolve_targets` -> :class:`ResolvedTargets`).

A single-logit (binary) output ``z``, ``(B,)`` or ``(B, 1)``, has two classes: ``0`` the
negative, scored ``-z``, and ``1`` the positive, scored ``z``
(:func:`~axiomcam.targets.common.binary_scores`); ``None`` explains each image's predicted
side (the positive where ``z >= 0``, i.e. ``sigmoid(z) >= 0.5``)."""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..outputs import OutputSelector, describe_output, select_output
from .classes import ClassScore
from .common import binary_scores, class_scores, index_rows, is_single_logit
from .contrast import ClassContrast
from .selection import LabelsAbove, TopClasses, labels_above

__all__ = ["ResolvedTargets", "TargetSpec", "TopClasses", "resolve_targets"]


#: ``None`` (each image's top class), an int, one class per image, a ``(B, k)`` tensor (or
#: equal-length rows) of classes, :class:`TopClasses`, :class:`LabelsAbove`,
#: :class:`ClassScore`, or a callable ``output -> (B,)`` scores.
TargetSpec = (int | Sequence[int] | Sequence[Sequence[int]] | torch.Tensor | TopClasses
              | LabelsAbove | ClassScore | ClassContrast | Callable[..., torch.Tensor] | None)


@dataclass(frozen=True)
class ResolvedTargets:
    """Targets checked against a batch and the model's output.

    ``classes`` is ``(B, k)`` (``k = 1`` unless several classes per image were asked for)
    or ``None`` for a callable.  ``several`` says whether the caller asked for ``(B, k)``
    and so gets a ``k`` axis back.  ``logits`` is the detached ``(B, num_classes)`` class
    scores the classes were checked against (``None`` for a callable); for a single-logit
    (binary) model, the two classes' ``(B, 2)`` scores ``[-z, z]``.
    """

    classes: torch.Tensor | None
    function: Callable[..., torch.Tensor] | None
    several: bool
    passes_image_indices: bool = False
    #: where the class scores are in the model's output (:func:`select_output`); given
    #: explicitly, also what a callable receives
    select: OutputSelector = None
    logits: torch.Tensor | None = None
    #: what :meth:`scores` gives for classes: ``"logit"``, ``"softmax"`` or ``"sigmoid"``
    score: str = "logit"
    #: what :meth:`probabilities` gives (Score-CAM's confidence): ``"softmax"``,
    #: ``"sigmoid"`` (binary outputs, :class:`LabelsAbove`) or ``"score"`` (the score
    #: itself: a :class:`ClassScore` says exactly what every method explains)
    probability: str = "softmax"
    #: ``(B, k)`` bool for :class:`LabelsAbove`: which classes pass the threshold
    selected: torch.Tensor | None = None
    #: ``k`` scores per image a callable gives (``(N, k)``; 1: ``(N,)``), as
    #: :class:`ClassContrast`'s for ``k`` classes
    columns: int = 1
    #: ``(B, k)`` the classes a callable compares (:class:`ClassContrast`'s), which the
    #: explanation reports as its targets; ``classes`` stays ``None``, as for any callable
    compared: torch.Tensor | None = None

    @property
    def explained(self) -> torch.Tensor | None:
        """The classes an explanation reports: :attr:`classes`, or :attr:`compared`."""
        return self.classes if self.classes is not None else self.compared

    @property
    def count(self) -> int:
        """``k``, the number of targets per image (a callable's :attr:`columns`)."""
        return self.columns if self.classes is None else self.classes.shape[1]

    def scores(self, output: object, image_indices: torch.Tensor) -> torch.Tensor:
        """``(N, k)`` target scores (``k = 1`` for a callable) for output rows that belong
        to ``image_indices``.

        Row ``i`` of ``output`` is a (possibly perturbed) copy of image
        ``image_indices[i]``: the perturbation methods run many copies of one image.
        """
        if self.function is None:
            return self._class_scores(output, image_indices, self.score)
        if self.select is not None:
            output = select_output(output, self.select)
        if self.passes_image_indices:
            values = self.function(output, image_indices)
        else:
            values = self.function(output)
        if self.columns > 1:
            return _check_function_scores(values, image_indices.shape[0], self.columns)
        return _check_function_scores(values, image_indices.shape[0])[:, None]

    def probabilities(self, output: object, image_indices: torch.Tensor) -> torch.Tensor:
        """Probability of each target class, ``(N, k)``, as :attr:`probability` says (the
        softmax, the sigmoid, or the explained score itself); a callable's own value."""
        if self.function is not None or self.probability == "score":
            return self.scores(output, image_indices)
        return self._class_scores(output, image_indices, self.probability)

    def _class_scores(self, output: object, image_indices: torch.Tensor,
                      kind: str) -> torch.Tensor:
        logits = _check_logits(output, self.select)
        classes = self.classes.to(logits.device)[image_indices]
        return class_scores(logits, classes, kind)


def _raw_logits(output: object, select: OutputSelector = None) -> torch.Tensor:
    """The ``(B, num_classes)`` (or single-logit ``(B,)``) scores in ``output``, checked."""
    logits = select_output(output, select)
    if not torch.is_tensor(logits) or logits.dim() not in (1, 2):
        found = describe_output(logits)
        if logits is not output:
            found += f" (taken from its {describe_output(output)})"
        raise ValueError(
            f"class targets need (B, num_classes) scores; the model returned {found}. Pass "
            "output=KEY to say where the scores are, or a target callable (e.g. from "
            "axiomcam.targets) that turns the output into (B,) scores."
        )
    return logits


def _check_logits(output: object, select: OutputSelector = None) -> torch.Tensor:
    """``(B, num_classes)`` class scores; a single-logit output as its two classes'
    ``[-z, z]``."""
    logits = _raw_logits(output, select)
    return binary_scores(logits) if is_single_logit(logits) else logits


def _check_function_scores(values: object, rows: int, *columns: int) -> torch.Tensor:
    """A callable's scores, checked to be ``(rows, *columns)``."""
    shape = (rows, *columns)
    if not torch.is_tensor(values):
        raise TypeError(
            f"a target callable must return a tensor of shape {shape}, got "
            f"{type(values).__name__}"
        )
    if values.shape != shape:
        raise ValueError(
            f"a target callable must return one score per image, shape "
            f"{shape}; it returned {tuple(values.shape)}"
        )
    return values


def _accepts_two_arguments(function: Callable[..., object]) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in positional)


def _index_tensor(targets: object) -> torch.Tensor:
    """Class indices given as a tensor, a sequence of ints or an array, as a CPU tensor."""
    if torch.is_tensor(targets):
        return targets.detach().cpu()
    rows = index_rows(targets, "targets")
    if rows is not None:
        return rows
    if isinstance(targets, Sequence) and not isinstance(targets, str):
        if not all(isinstance(t, numbers.Integral) and not isinstance(t, bool)
                   for t in targets):
            raise TypeError(f"targets must be integer class indices, got {targets!r}")
        return torch.tensor(list(targets), dtype=torch.long)
    if hasattr(targets, "__array__"):
        return torch.as_tensor(targets)
    raise TypeError(
        "targets must be None, an int, a sequence of ints (or of equal-length rows of ints), "
        f"a tensor of class indices or a callable, not {type(targets).__name__}: {targets!r}"
    )


def _requested_classes(targets: object, batch_size: int) -> tuple[torch.Tensor, bool]:
    """``(B, k)`` long classes from an int, a sequence, an array or a tensor of class
    indices, and whether the caller asked for a ``k`` axis (a ``(B, k)`` tensor)."""
    if isinstance(targets, bool):
        raise TypeError(f"targets must be class indices, not a bool: {targets!r}")
    if isinstance(targets, numbers.Integral):
        return torch.full((batch_size, 1), int(targets), dtype=torch.long), False
    tensor = _index_tensor(targets)
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"targets must be integer class indices, got dtype {tensor.dtype}")
    if tensor.dim() == 0:
        tensor = tensor.expand(batch_size)
    if tensor.dim() > 2:
        raise ValueError(
            f"targets must be (B,) or (B, k) class indices, got shape {tuple(tensor.shape)}"
        )
    if tensor.shape[0] != batch_size:
        raise ValueError(
            f"got {tensor.shape[0]} targets for a batch of {batch_size} images: give one "
            "class per image, one int for all, or a (B, k) tensor"
        )
    classes = tensor.long().reshape(batch_size, -1)
    if classes.shape[1] == 0:
        raise ValueError("targets of shape (B, 0): ask for at least one class per image")
    return classes, tensor.dim() == 2


def resolve_targets(targets: TargetSpec, output: object, batch_size: int, *,
                    select: OutputSelector = None) -> ResolvedTargets:
    """Check ``targets`` against the batch size and the model's output.

    Args:
        targets: ``None`` for each image's top class (a binary model: its predicted
            side); an int for the same class in every image; a sequence or 1-D tensor with
            one class per image; a ``(B, k)`` integer tensor (or equal-length rows,
            ``[[1, 4], [2, 3]]``) for ``k`` classes per image; :class:`TopClasses` for each
            image's ``k`` highest-scoring classes; :class:`LabelsAbove` for each image's
            labels above a sigmoid threshold; :class:`ClassScore` for any of the class
            forms with the softmax or sigmoid probability explained; :class:`ClassContrast`
            for a class against its most similar classes (Finer-CAM); or a callable
            ``output -> (B,)`` (or ``(output, image_indices) -> (B,)``, for callables that
            need to know which image each output row belongs to).
        output: the model's output for the batch.
        batch_size: ``B``.
        select: where the class scores are in ``output`` (see
            :func:`axiomcam.outputs.select_output`; ``None``: found automatically).

    Raises:
        ValueError: a length that is not ``B``, a class outside ``[0, num_classes)`` (0 and
            1 for a binary model), ``TopClasses(k)`` with ``k`` above the number of classes,
            a softmax probability asked of a single-logit model.
        TypeError: floats, booleans or other types that are not class indices.
    """
    if isinstance(targets, ClassContrast):
        classes = resolve_targets(targets.classes, output, batch_size, select=select)
        score = targets.bind(classes.classes, classes.logits)
        return ResolvedTargets(None, score, several=classes.several, passes_image_indices=True,
                               select=select, logits=classes.logits, columns=score.columns,
                               compared=classes.classes)
    if callable(targets) and not torch.is_tensor(targets) \
            and not isinstance(targets, ClassScore):
        return ResolvedTargets(None, targets, several=False,
                               passes_image_indices=_accepts_two_arguments(targets),
                               select=select)
    raw = _raw_logits(output, select)
    if raw.shape[0] != batch_size:
        raise ValueError(f"the model returned class scores of shape {tuple(raw.shape)} for a "
                         f"batch of {batch_size} images: class targets need one row per image")
    binary = is_single_logit(raw)
    logits = _check_logits(output, select).detach()
    score, probability = _score_of(targets, binary)
    classes, several, selected = _classes_of(targets, logits, batch_size, binary)
    num_classes = logits.shape[1]
    bad = (classes < 0) | (classes >= num_classes)
    if bad.any():
        described = ("has a single logit z: class 0 is the negative (-z), 1 the positive (z)"
                     if binary else f"has {num_classes} classes (0..{num_classes - 1})")
        raise ValueError(f"target class {int(classes[bad][0])} is out of range: the model "
                         f"{described}")
    return ResolvedTargets(classes.to(logits.device), None, several=several, select=select,
                           logits=logits, score=score, probability=probability,
                           selected=selected)


def _score_of(targets: TargetSpec, binary: bool) -> tuple[str, str]:
    """What the scores of ``targets`` are and what their probabilities are
    (:attr:`ResolvedTargets.score`, :attr:`ResolvedTargets.probability`)."""
    if isinstance(targets, ClassScore):
        if binary and targets.softmax:
            raise ValueError(
                "ClassScore: softmax=True on a single-logit (binary) output: the softmax of "
                "one logit is always 1. A binary model's probabilities are sigmoid(z) (class "
                "1, the positive) and 1 - sigmoid(z) (class 0, the negative): use sigmoid=True")
        return targets.kind, "score"
    if isinstance(targets, LabelsAbove) or binary:
        return "logit", "sigmoid"
    return "logit", "softmax"


def _classes_of(targets: TargetSpec, logits: torch.Tensor, batch_size: int, binary: bool
                ) -> tuple[torch.Tensor, bool, torch.Tensor | None]:
    """``(classes (B, k), several, selected)`` of a class spec against ``(B, C)`` logits."""
    if isinstance(targets, ClassScore):
        targets = targets.classes
    if targets is None:
        if binary:  # the predicted side: sigmoid(z) >= 0.5
            return (logits[:, 1:] >= 0).long(), False, None
        return logits.argmax(dim=1, keepdim=True), False, None
    if isinstance(targets, TopClasses):
        if targets.k > logits.shape[1]:
            raise ValueError(f"TopClasses({targets.k}) asks for more classes than the model's "
                             f"{logits.shape[1]}")
        return logits.topk(targets.k, dim=1).indices, True, None
    if isinstance(targets, LabelsAbove):
        classes, selected = labels_above(logits, targets)
        return classes, True, selected
    classes, several = _requested_classes(targets, batch_size)
    return classes, several, None
