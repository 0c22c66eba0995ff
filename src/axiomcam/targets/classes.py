"""The score of one class, as a target callable: :class:`ClassScore`."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .common import TensorTarget, class_indices, describe_tensor, row_classes, row_images

__all__ = ["ClassScore"]


class ClassScore(TensorTarget):
    """The score of one class: its logit ``y^c = z_c``, or its softmax probability
    ``y^c = p_c = exp(z_c) / sum_j exp(z_j)`` with ``softmax=True``.

    Grad-CAM (Selvaraju et al., ICCV 2017) explains the pre-softmax logit, the default
    here and the same as ``targets=c``; the probability also depends on every other class's
    logit, so its map shows what speaks for ``c`` *against* the other classes.

    Args:
        classes: an int (the same class in every image) or one class per image (a
            sequence or 1-D integer tensor of length ``B``, indexed with
            ``image_indices``).
        softmax: explain the probability instead of the logit.

    Call: ``target(output, image_indices=None) -> (N,)``, ``output`` a ``(N, C)`` tensor
    or a dict / tuple / ``ModelOutput`` holding one (found by
    :func:`~axiomcam.outputs.select_output`).

    Raises:
        TypeError: classes that are not integers.
        ValueError: a negative class; when called, a class ``>= C``, an output that is not
            ``(N, C)``, an image without a class.

    Example:
        >>> import torch
        >>> logits = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
        >>> ClassScore(1, softmax=True)(logits)
        tensor([0.5000, 0.5000])
        >>> ClassScore(2)(logits)
        Traceback (most recent call last):
        ...
        ValueError: ClassScore: class 2 is out of range: the output has 2 classes (0..1)
    """

    output_rank = 2
    output_shape = "(N, num_classes)"

    def __init__(self, classes: int | Sequence[int] | torch.Tensor, *,
                 softmax: bool = False) -> None:
        self.classes = class_indices(classes, "classes")
        self.softmax = bool(softmax)

    def score(self, logits: torch.Tensor,
              image_indices: torch.Tensor | None) -> torch.Tensor:
        """The logit (or probability) of each row's class, ``(N,)``."""
        per_image = None if self.classes.dim() == 0 else self.classes.shape[0]
        rows = row_images(image_indices, logits.shape[0], per_image, "ClassScore")
        classes = row_classes(self.classes, rows, logits.shape[1], "ClassScore", logits.device)
        scores = torch.softmax(logits, dim=1) if self.softmax else logits
        return scores.gather(1, classes[:, None])[:, 0]

    def __repr__(self) -> str:
        classes = (int(self.classes) if self.classes.dim() == 0
                   else describe_tensor(self.classes))
        return f"ClassScore(classes={classes}, softmax={self.softmax})"

