"""What the ready-made targets share: checking their arguments, finding the tensor they
score in the model's output, and picking each output row's per-image data.

Row ``i`` of an output is a (possibly perturbed) copy of image ``image_indices[i]``
(:func:`row_images`); a target that holds one value per image picks row ``i``'s with
:func:`pick`.

Class scores: a single-logit (binary) output ``z``, ``(N,)`` or ``(N, 1)``, is read as two
classes, ``0`` the negative with score ``-z`` and ``1`` the positive with score ``z``
(:func:`binary_scores`); each class's score is a logit, its softmax probability or its
sigmoid probability (:func:`score_kind`, :func:`class_scores`).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch

from ..outputs import describe_output, select_output

__all__ = [
    "NEGATIVE",
    "POSITIVE",
    "SCORE_KINDS",
    "TensorTarget",
    "binary_scores",
    "check_class_range",
    "class_indices",
    "class_scores",
    "describe_tensor",
    "index_rows",
    "is_single_logit",
    "pick",
    "row_classes",
    "row_images",
    "score_kind",
    "tensor_output",
]

#: the classes of a single-logit (binary) model: ``0`` the negative (score ``-z``, sigmoid
#: probability ``1 - sigmoid(z)``), ``1`` the positive (``z``, ``sigmoid(z)``), as the labels
#: such a model is trained on with ``BCEWithLogitsLoss``
NEGATIVE, POSITIVE = 0, 1
#: what a class target explains: the logit ``z_c``, the softmax probability ``p_c``, or the
#: sigmoid probability ``sigmoid(z_c)`` of a multi-label or binary (sigmoid) head
SCORE_KINDS = ("logit", "softmax", "sigmoid")


def describe_tensor(value: torch.Tensor) -> str:
    """A tensor for a ``repr``: its values when it has at most 8, else its shape.

    Examples:
        >>> describe_tensor(torch.tensor([1, 2])), describe_tensor(torch.zeros(3, 4))
        ('[1, 2]', '(3, 4) tensor')
    """
    if value.numel() <= 8:
        return repr(value.tolist())
    return f"{tuple(value.shape)} tensor"


def row_images(image_indices: object, rows: int, per_image: int | None,
               owner: str) -> torch.Tensor:
    """Which image each of ``rows`` output rows belongs to, checked against the number of
    images the target has data for (``per_image``; ``None``: one value for every image).

    ``image_indices=None`` means row ``i`` is image ``i``.  ``owner`` names the target in
    the error messages.

    Raises:
        ValueError: indices that are not ``(rows,)`` integers, an image the target has no
            data for, or (without indices) a number of rows other than ``per_image``.

    Examples:
        >>> row_images(None, 3, None, "T"), row_images([1, 1], 2, 2, "T")
        (tensor([0, 1, 2]), tensor([1, 1]))
    """
    if image_indices is None:
        if per_image is not None and rows != per_image:
            raise ValueError(
                f"{owner} holds data for {per_image} images but the output has {rows} rows: "
                "pass image_indices (which image each row is a copy of)"
            )
        return torch.arange(rows)
    if not torch.is_tensor(image_indices):
        image_indices = torch.as_tensor(image_indices)
    if image_indices.dim() != 1 or image_indices.shape[0] != rows or (
            image_indices.is_floating_point() or image_indices.dtype == torch.bool):
        raise ValueError(
            f"image_indices must be ({rows},) integers, one per output row; got "
            f"{image_indices.dtype} of shape {tuple(image_indices.shape)}"
        )
    if per_image is not None and rows and (
            int(image_indices.min()) < 0 or int(image_indices.max()) >= per_image):
        bad = image_indices[(image_indices < 0) | (image_indices >= per_image)][0]
        raise ValueError(
            f"{owner} holds data for {per_image} images (0..{per_image - 1}); it was asked "
            f"about image {int(bad)}"
        )
    return image_indices.long()


def class_indices(classes: object, what: str, *, several: bool = False) -> torch.Tensor:
    """Class (or other) indices, checked: an int -> a 0-D long tensor; a sequence or 1-D
    tensor -> ``(B,)`` long; with ``several``, also ``k`` per image (a ``(B, k)`` tensor or
    equal-length rows, ``[[1, 4], [2, 3]]``) -> ``(B, k)`` long.  ``what`` names the
    argument in the error messages.

    Raises:
        TypeError: a bool, floats, or a value that is not an int or a sequence of ints.
        ValueError: an empty value, a 2-D one (without ``several``), rows of different
            lengths, a negative index.

    Examples:
        >>> class_indices(3, "classes"), class_indices([1, 2], "classes")
        (tensor(3), tensor([1, 2]))
        >>> class_indices([[1, 4], [2, 3]], "classes", several=True).shape
        torch.Size([2, 2])
    """
    if isinstance(classes, bool):
        raise TypeError(f"{what} must be an int or one int per image, not a bool: {classes!r}")
    rows = index_rows(classes, what) if several else None
    if rows is not None:
        tensor = rows
    elif isinstance(classes, numbers.Integral):
        tensor = torch.tensor(int(classes))
    elif torch.is_tensor(classes):
        tensor = classes.detach().cpu()
    elif isinstance(classes, Sequence) and not isinstance(classes, str) and all(
            isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in classes):
        tensor = torch.tensor([int(c) for c in classes], dtype=torch.long)
    else:
        offered = ", or k per image" if several else ""
        raise TypeError(f"{what} must be an int or one int per image (a sequence or 1-D "
                        f"tensor){offered}, not {type(classes).__name__}: {classes!r}")
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"{what} must be integer indices, got dtype {tensor.dtype}")
    if tensor.dim() > (2 if several else 1) or tensor.numel() == 0:
        shapes = "an int, a (B,) sequence or (B, k) rows" if several else \
            "an int or a (B,) sequence"
        raise ValueError(f"{what} must be {shapes}, got shape {tuple(tensor.shape)}")
    if (tensor < 0).any():
        raise ValueError(f"{what} must be >= 0, got {int(tensor[tensor < 0][0])}")
    return tensor.long()


def index_rows(value: object, what: str) -> torch.Tensor | None:
    """A sequence of equal-length sequences of ints (``[[1, 4], [2, 3]]``, one row of class
    indices per image) as a ``(B, k)`` long tensor; ``None`` for anything else.

    Raises:
        TypeError: rows holding something else than ints (bools, floats, strings).
        ValueError: rows of different lengths (the number of labels per image must be the
            same; :class:`~axiomcam.targets.LabelsAbove` takes a threshold instead).

    Examples:
        >>> index_rows([[1, 4], [2, 3]], "targets")
        tensor([[1, 4],
                [2, 3]])
        >>> index_rows([1, 2], "targets") is None
        True
    """
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or not value or \
            not all(isinstance(row, Sequence) and not isinstance(row, str | bytes)
                    for row in value):
        return None
    for row in value:
        bad = [c for c in row if isinstance(c, bool) or not isinstance(c, numbers.Integral)]
        if bad:
            raise TypeError(f"{what} must hold integer class indices, got {bad[0]!r} in "
                            f"{list(row)!r}")
    lengths = sorted({len(row) for row in value})
    if len(lengths) > 1:
        raise ValueError(
            f"{what} has rows of {', '.join(map(str, lengths))} classes: give the same number "
            "of classes for every image (or LabelsAbove(threshold) for each image's labels "
            "above a threshold)")
    return torch.tensor([[int(c) for c in row] for row in value], dtype=torch.long)


def score_kind(softmax: bool, sigmoid: bool, owner: str) -> str:
    """``"logit"``, ``"softmax"`` or ``"sigmoid"`` from a target's two flags.

    Raises:
        ValueError: both flags (a class's score is one or the other probability).

    Examples:
        >>> score_kind(False, True, "ClassScore")
        'sigmoid'
    """
    if softmax and sigmoid:
        raise ValueError(
            f"{owner}: softmax=True and sigmoid=True together: a softmax head's classes "
            "share one probability distribution (softmax=True), a multi-label or binary "
            "head gives each class its own (sigmoid=True); choose the one your model has")
    return "softmax" if softmax else "sigmoid" if sigmoid else "logit"


def is_single_logit(scores: torch.Tensor) -> bool:
    """Whether ``scores`` are one logit per row, ``(N,)`` or ``(N, 1)``: a binary model."""
    return scores.dim() == 1 or (scores.dim() == 2 and scores.shape[1] == 1)


def binary_scores(scores: torch.Tensor) -> torch.Tensor:
    """A single-logit output ``z`` (``(N,)`` or ``(N, 1)``) as the scores of its two
    classes, ``(N, 2)``: ``[-z, z]`` (:data:`NEGATIVE`, :data:`POSITIVE`).  Their sigmoids
    are the two probabilities, ``1 - sigmoid(z)`` and ``sigmoid(z)``.

    Examples:
        >>> binary_scores(torch.tensor([[2.0], [-1.0]]))
        tensor([[-2.,  2.],
                [ 1., -1.]])
    """
    logit = scores.reshape(-1, 1)
    return torch.cat([-logit, logit], dim=1)


def class_scores(logits: torch.Tensor, classes: torch.Tensor, kind: str) -> torch.Tensor:
    """``(N, k)`` scores of ``classes`` ``(N, k)`` in ``(N, C)`` ``logits``: the logits
    themselves, their softmax probabilities (over all ``C`` classes) or their sigmoid
    probabilities, as ``kind`` says (:data:`SCORE_KINDS`).

    Examples:
        >>> logits = torch.tensor([[0.0, 2.0, 1.0]])
        >>> [round(class_scores(logits, torch.tensor([[1]]), kind).item(), 4)
        ...  for kind in SCORE_KINDS]
        [2.0, 0.6652, 0.8808]
    """
    if kind == "softmax":
        return torch.softmax(logits, dim=1).gather(1, classes)
    chosen = logits.gather(1, classes)
    return torch.sigmoid(chosen) if kind == "sigmoid" else chosen


def check_class_range(classes: torch.Tensor, num_classes: int, owner: str) -> None:
    """Raise a ``ValueError`` naming ``owner`` and the first class ``>= num_classes``."""
    too_large = classes >= num_classes
    if too_large.any():
        raise ValueError(
            f"{owner}: class {int(classes[too_large].flatten()[0])} is out of range: the "
            f"output has {num_classes} classes (0..{num_classes - 1})"
        )


def pick(values: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Per-row values: a 0-D (one-for-all) tensor is expanded, a per-image one indexed.

    Examples:
        >>> pick(torch.tensor(7), torch.tensor([0, 1])), pick(torch.tensor([4, 5]),
        ...                                                   torch.tensor([1, 1]))
        (tensor([7, 7]), tensor([5, 5]))
    """
    return values.expand(rows.shape[0]) if values.dim() == 0 else values[rows]


def row_classes(classes: torch.Tensor, rows: torch.Tensor, num_classes: int, owner: str,
                device: torch.device) -> torch.Tensor:
    """Each output row's class, on ``device``: ``classes`` (one for all, or one per image)
    picked with ``rows`` (:func:`pick`), checked to be below ``num_classes``
    (:func:`check_class_range`)."""
    picked = pick(classes, rows.cpu()).to(device)
    check_class_range(picked, num_classes, owner)
    return picked


def tensor_output(output: object, owner: str, dims: int, expected: str) -> torch.Tensor:
    """The tensor in ``output`` (itself, or found in a dict / tuple / ``ModelOutput`` by
    :func:`~axiomcam.outputs.select_output`), checked to have ``dims`` dimensions.

    Raises:
        ValueError: no tensor, or one of another rank; the message names ``owner``, the
            ``expected`` shape and the shape found.
    """
    tensor = select_output(output)
    if not torch.is_tensor(tensor) or tensor.dim() != dims:
        found = (f"shape {tuple(tensor.shape)}" if torch.is_tensor(tensor)
                 else describe_output(output))
        raise ValueError(f"{owner} needs a model output of shape {expected}; this output "
                         f"has {found}")
    return tensor


class TensorTarget:
    """Base of the targets that score one tensor of the model's output.

    ``target(output, image_indices=None) -> (N,)`` finds the tensor
    (:func:`tensor_output`, the error naming the class), checks its rank
    (:attr:`output_rank`, described as :attr:`output_shape`) and returns
    :meth:`score` of it.
    """

    #: the number of dimensions of the scored tensor
    output_rank: int
    #: its shape as error messages describe it, e.g. ``"(N, D)"``
    output_shape: str

    def __call__(self, output: object,
                 image_indices: torch.Tensor | None = None) -> torch.Tensor:
        tensor = tensor_output(output, type(self).__name__, self.output_rank,
                               self.output_shape)
        return self.score(tensor, image_indices)

    def score(self, tensor: torch.Tensor, image_indices: torch.Tensor | None) -> torch.Tensor:
        """``(N,)`` values for the ``N`` rows of ``tensor``; row ``i`` is a copy of image
        ``image_indices[i]`` (``None``: of image ``i``)."""
        raise NotImplementedError
