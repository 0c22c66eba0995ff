"""What a map explains: the target specs (``None``, a class, one class per image, ``(B, k)``
classes, :class:`TopClasses`, a callable) and their resolution against a batch and the
model's output (:func:`resolve_targets` -> :class:`ResolvedTargets`)."""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..outputs import OutputSelector, describe_output, select_output

__all__ = ["ResolvedTargets", "TargetSpec", "TopClasses", "resolve_targets"]


@dataclass(frozen=True)
class TopClasses:
    """Each image's ``k`` highest-scoring classes, read from the forward pass the
    explanation itself runs, so finding them costs no extra pass.

    The explanation is the one a ``(B, k)`` tensor of those classes would give: every
    per-target field has a ``k`` axis, highest score first, and ``Explanation.logits``
    holds the scores they were ranked by.

    Example:
        >>> import torch, torchvision, axiomcam
        >>> model = torchvision.models.resnet18(num_classes=10)
        >>> exp = axiomcam.explain(model, torch.rand(2, 3, 64, 64), targets=TopClasses(3))
        >>> exp.maps.shape, exp.targets.shape, exp.logits.shape
        (torch.Size([2, 3, 64, 64]), torch.Size([2, 3]), torch.Size([2, 10]))
        >>> bool((exp.targets == exp.logits.topk(3).indices).all())
        True
    """

    k: int

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, numbers.Integral) or self.k < 1:
            raise ValueError(f"TopClasses needs a positive int k, got {self.k!r}")


#: ``None`` (each image's top class), an int, one class per image, a ``(B, k)`` tensor of
#: classes, :class:`TopClasses`, or a callable ``output -> (B,)`` scores.
TargetSpec = (int | Sequence[int] | torch.Tensor | TopClasses | Callable[..., torch.Tensor]
              | None)


@dataclass(frozen=True)
class ResolvedTargets:
    """Targets checked against a batch and the model's output.

    ``classes`` is ``(B, k)`` (``k = 1`` unless several classes per image were asked for)
    or ``None`` for a callable.  ``several`` says whether the caller asked for ``(B, k)``
    and so gets a ``k`` axis back.  ``logits`` is the detached ``(B, num_classes)`` class
    scores the classes were checked against (``None`` for a callable).
    """

    classes: torch.Tensor | None
    function: Callable[..., torch.Tensor] | None
    several: bool
    passes_image_indices: bool = False
    #: where the class scores are in the model's output (:func:`select_output`); given
    #: explicitly, also what a callable receives
    select: OutputSelector = None
    logits: torch.Tensor | None = None

    @property
    def count(self) -> int:
        """``k``, the number of targets per image (1 for a callable)."""
        return 1 if self.classes is None else self.classes.shape[1]

    def scores(self, output: object, image_indices: torch.Tensor) -> torch.Tensor:
        """``(N, k)`` target scores (``k = 1`` for a callable) for output rows that belong
        to ``image_indices``.

        Row ``i`` of ``output`` is a (possibly perturbed) copy of image
        ``image_indices[i]``: the perturbation methods run many copies of one image.
        """
        if self.function is None:
            logits = _check_logits(output, self.select)
            return logits.gather(1, self.classes.to(logits.device)[image_indices])
        if self.select is not None:
            output = select_output(output, self.select)
        if self.passes_image_indices:
            values = self.function(output, image_indices)
        else:
            values = self.function(output)
        return _check_function_scores(values, image_indices.shape[0])

    def probabilities(self, output: object, image_indices: torch.Tensor) -> torch.Tensor:
        """Softmax probability of each target class, ``(N, k)``; a callable's own value."""
        if self.function is not None:
            return self.scores(output, image_indices)
        probabilities = torch.softmax(_check_logits(output, self.select), dim=1)
        return probabilities.gather(1, self.classes.to(probabilities.device)[image_indices])


def _check_logits(output: object, select: OutputSelector = None) -> torch.Tensor:
    logits = select_output(output, select)
    if not torch.is_tensor(logits) or logits.dim() != 2:
        found = describe_output(logits)
        if logits is not output:
            found += f" (taken from its {describe_output(output)})"
        raise ValueError(
            f"class targets need (B, num_classes) scores; the model returned {found}. Pass "
            "output=KEY to say where the scores are, or a target callable (e.g. from "
            "axiomcam.targets) that turns the output into (B,) scores."
        )
    return logits


def _check_function_scores(values: object, rows: int) -> torch.Tensor:
    if not torch.is_tensor(values):
        raise TypeError(
            f"a target callable must return a tensor of shape ({rows},), got "
            f"{type(values).__name__}"
        )
    if values.shape != (rows,):
        raise ValueError(
            f"a target callable must return one score per image, shape ({rows},); it "
            f"returned {tuple(values.shape)}"
        )
    return values[:, None]


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
    if isinstance(targets, Sequence) and not isinstance(targets, str):
        if not all(isinstance(t, numbers.Integral) and not isinstance(t, bool)
                   for t in targets):
            raise TypeError(f"targets must be integer class indices, got {targets!r}")
        return torch.tensor(list(targets), dtype=torch.long)
    if hasattr(targets, "__array__"):
        return torch.as_tensor(targets)
    raise TypeError(
        "targets must be None, an int, a sequence of ints, a tensor of class indices "
        f"or a callable, not {type(targets).__name__}: {targets!r}"
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
        targets: ``None`` for each image's top class; an int for the same class in every
            image; a sequence or 1-D tensor with one class per image; a ``(B, k)`` integer
            tensor for ``k`` classes per image; :class:`TopClasses` for each image's ``k``
            highest-scoring classes; or a callable ``output -> (B,)`` (or
            ``(output, image_indices) -> (B,)``, for callables that need to know which
            image each output row belongs to).
        output: the model's output for the batch.
        batch_size: ``B``.
        select: where the class scores are in ``output`` (see
            :func:`axiomcam.outputs.select_output`; ``None``: found automatically).

    Raises:
        ValueError: a length that is not ``B``, a class outside ``[0, num_classes)``,
            ``TopClasses(k)`` with ``k`` above the number of classes.
        TypeError: floats, booleans or other types that are not class indices.
    """
    if callable(targets) and not torch.is_tensor(targets):
        return ResolvedTargets(None, targets, several=False,
                               passes_image_indices=_accepts_two_arguments(targets),
                               select=select)
    logits = _check_logits(output, select).detach()
    num_classes = logits.shape[1]
    if targets is None:
        classes = logits.argmax(dim=1, keepdim=True)
        return ResolvedTargets(classes, None, several=False, select=select, logits=logits)
    if isinstance(targets, TopClasses):
        if targets.k > num_classes:
            raise ValueError(f"TopClasses({targets.k}) asks for more classes than the model's "
                             f"{num_classes}")
        classes = logits.topk(targets.k, dim=1).indices
        return ResolvedTargets(classes, None, several=True, select=select, logits=logits)
    classes, several = _requested_classes(targets, batch_size)
    bad = (classes < 0) | (classes >= num_classes)
    if bad.any():
        raise ValueError(
            f"target class {int(classes[bad][0])} is out of range: the model has "
            f"{num_classes} classes (0..{num_classes - 1})"
        )
    return ResolvedTargets(classes.to(logits.device), None, several=several, select=select,
                           logits=logits)

