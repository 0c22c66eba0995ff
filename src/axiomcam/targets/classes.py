"""The score of classes, as a target callable: :class:`ClassScore` (the logit, the softmax
probability or the sigmoid probability; one class per image or several, or the classes a
:class:`~axiomcam.targets.TopClasses` or :class:`~axiomcam.targets.LabelsAbove` chooses;
binary models' positive and negative classes)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..outputs import select_output
from .common import (
    TensorTarget,
    binary_scores,
    check_class_range,
    class_indices,
    class_scores,
    describe_tensor,
    is_single_logit,
    row_images,
    score_kind,
    tensor_output,
)
from .selection import LabelsAbove, TopClasses

__all__ = ["ClassScore", "class_score_matrix"]


def class_score_matrix(output: object, owner: str, kind: str = "logit") -> torch.Tensor:
    """The ``(N, C)`` class scores in a model's output (found by
    :func:`~axiomcam.outputs.select_output`); a single-logit (binary) output ``(N,)`` or
    ``(N, 1)`` becomes its two classes' ``(N, 2)`` scores ``[-z, z]``
    (:func:`~axiomcam.targets.common.binary_scores`).

    Raises:
        ValueError: an output that is not ``(N,)`` or ``(N, C)``; ``kind="softmax"`` on a
            single-logit output (the softmax of one logit is always 1).

    Examples:
        >>> class_score_matrix(torch.tensor([0.5, -1.0]), "T")
        tensor([[-0.5000,  0.5000],
                [ 1.0000, -1.0000]])
    """
    tensor = select_output(output)
    if torch.is_tensor(tensor) and tensor.dim() == 1:
        scores = tensor
    else:
        scores = tensor_output(output, owner, 2, "(N, num_classes), or (N,) for one logit")
    if not is_single_logit(scores):
        return scores
    if kind == "softmax":
        raise ValueError(
            f"{owner}: softmax=True on a single-logit (binary) output: the softmax of one "
            "logit is always 1. A binary model's probabilities are sigmoid(z) (class 1, the "
            "positive) and 1 - sigmoid(z) (class 0, the negative): use sigmoid=True")
    return binary_scores(scores)


class ClassScore(TensorTarget):
    """The score of a class: its logit ``y^c = z_c``, its softmax probability
    ``y^c = p_c = exp(z_c) / sum_j exp(z_j)`` with ``softmax=True``, or its sigmoid
    probability ``y^c = sigmoid(z_c) = 1 / (1 + exp(-z_c))`` with ``sigmoid=True`` (a
    multi-label or binary head, whose classes each have their own probability).

    Grad-CAM (Selvaraju et al., ICCV 2017) explains the pre-softmax logit, the default
    here and the same as ``targets=c``; the softmax probability also depends on every other
    class's logit, so its map shows what speaks for ``c`` *against* the other classes.  The
    sigmoid probability depends on ``z_c`` alone: its gradient is the logit's scaled by
    ``sigmoid'(z_c) = sigmoid(z_c) (1 - sigmoid(z_c))``, so Grad-CAM's map has the same shape
    and a smaller scale, which vanishes for a label the model is already sure of.

    A single-logit (binary) model, output ``z`` of shape ``(N,)`` or ``(N, 1)``, has two
    classes: ``1`` (:data:`~axiomcam.targets.POSITIVE`) scored ``z`` (probability
    ``sigmoid(z)``) and ``0`` (:data:`~axiomcam.targets.NEGATIVE`) scored ``-z`` (probability
    ``1 - sigmoid(z) = sigmoid(-z)``).  Grad-CAM's channel weights of the negative class are
    the positive's negated, so its raw map is the positive's negated too: the ReLU then keeps
    what speaks *against* the positive.

    Args:
        classes: an int (the same class in every image), one class per image (a sequence
            or 1-D integer tensor of length ``B``, indexed with ``image_indices``), ``k``
            classes per image (a ``(B, k)`` tensor or equal-length rows ``[[1, 4], [2,
            3]]``: several labels of a multi-label model in one pass), or a
            :class:`~axiomcam.targets.TopClasses` or
            :class:`~axiomcam.targets.LabelsAbove`, which choose the classes in the
            explanation's forward pass (such a ``ClassScore`` is given to
            :func:`axiomcam.explain`, not called).
        softmax: explain the softmax probability instead of the logit.
        sigmoid: explain the sigmoid probability instead of the logit.

    Call: ``target(output, image_indices=None) -> (N,)`` (``(N, k)`` for ``k`` classes per
    image), ``output`` a ``(N, C)`` tensor (or ``(N,)`` / ``(N, 1)`` for a binary model), or
    a dict / tuple / ``ModelOutput`` holding one (found by
    :func:`~axiomcam.outputs.select_output`).  Given as ``targets=`` to
    :func:`axiomcam.explain` it is resolved like class indices: the explanation keeps the
    classes (``targets``) and the model's scores (``logits``), and ``k`` classes per image
    give maps ``(B, k, H, W)``; every method, Score-CAM too, explains the score asked for.

    Raises:
        TypeError: classes that are not integers.
        ValueError: a negative class, rows of different lengths, ``softmax`` and
            ``sigmoid`` together; when called, a class ``>= C`` (``>= 2`` for a binary
            model), ``softmax`` on a binary model, an output that is not ``(N, C)`` or
            ``(N,)``, an image without a class, classes still to be chosen (``TopClasses``,
            ``LabelsAbove``).

    Examples:
        >>> import torch
        >>> logits = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
        >>> ClassScore(1, softmax=True)(logits)
        tensor([0.5000, 0.5000])
        >>> ClassScore([[0, 1], [1, 0]], sigmoid=True)(logits)
        tensor([[0.5000, 0.5000],
                [0.7311, 0.7311]])
        >>> binary = torch.tensor([2.0, -1.0])  # one logit per image
        >>> ClassScore(1)(binary), ClassScore(0)(binary)  # positive z, negative -z
        (tensor([ 2., -1.]), tensor([-2.,  1.]))
        >>> ClassScore(2)(logits)
        Traceback (most recent call last):
        ...
        ValueError: ClassScore: class 2 is out of range: the output has 2 classes (0..1)
    """

    output_rank = 2
    output_shape = "(N, num_classes)"

    def __init__(self, classes: int | Sequence[int] | Sequence[Sequence[int]] | torch.Tensor
                 | TopClasses | LabelsAbove, *, softmax: bool = False,
                 sigmoid: bool = False) -> None:
        #: class indices (``()``, ``(B,)`` or ``(B, k)``), or the selector choosing them
        self.classes: torch.Tensor | TopClasses | LabelsAbove = (
            classes if isinstance(classes, TopClasses | LabelsAbove)
            else class_indices(classes, "classes", several=True))
        #: what is explained: ``"logit"``, ``"softmax"`` or ``"sigmoid"``
        self.kind = score_kind(softmax, sigmoid, "ClassScore")

    @property
    def softmax(self) -> bool:
        """Whether the softmax probability is explained."""
        return self.kind == "softmax"

    @property
    def sigmoid(self) -> bool:
        """Whether the sigmoid probability is explained."""
        return self.kind == "sigmoid"

    def __call__(self, output: object,
                 image_indices: torch.Tensor | None = None) -> torch.Tensor:
        return self.score(class_score_matrix(output, "ClassScore", self.kind), image_indices)

    def score(self, logits: torch.Tensor,
              image_indices: torch.Tensor | None) -> torch.Tensor:
        """The score of each row's class(es), ``(N,)`` (``(N, k)`` for ``k`` per image),
        from ``(N, C)`` class scores."""
        if not torch.is_tensor(self.classes):
            raise ValueError(
                f"{self!r} chooses its classes in the explanation's own forward pass: give "
                "it as targets= to axiomcam.explain (called directly, a ClassScore needs "
                "class indices)")
        per_image = None if self.classes.dim() == 0 else self.classes.shape[0]
        rows = row_images(image_indices, logits.shape[0], per_image, "ClassScore")
        if self.classes.dim() == 0:
            classes = self.classes.expand(rows.shape[0])
        else:
            classes = self.classes[rows.cpu()]
        classes = classes.to(logits.device).reshape(rows.shape[0], -1)
        check_class_range(classes, logits.shape[1], "ClassScore")
        values = class_scores(logits, classes, self.kind)
        return values if self.classes.dim() == 2 else values[:, 0]

    def __repr__(self) -> str:
        if not torch.is_tensor(self.classes):
            classes: object = self.classes
        elif self.classes.dim() == 0:
            classes = int(self.classes)
        else:
            classes = describe_tensor(self.classes)
        return (f"ClassScore(classes={classes}, softmax={self.softmax}, "
                f"sigmoid={self.sigmoid})")
