"""Classes chosen in the explanation's own forward pass: each image's ``k`` highest-scoring
classes (:class:`TopClasses`) or its labels above a sigmoid threshold (:class:`LabelsAbove`,
for multi-label heads; :func:`labels_above`).

A multi-label model gives every label its own probability ``sigmoid(z_c)``; an image has
as many labels as pass the threshold, so the count varies from image to image.  The
explanation keeps one ``(B, n, H, W)`` block of maps: ``n`` is the largest count in the
batch (at least 1), each image's labels come first (highest first) and the rest of its
``n`` places hold its next-highest labels, marked ``False`` in ``Explanation.selected``.
Those padding maps are real explanations of real labels, only not above the threshold.

Both explain each class's logit; :class:`~axiomcam.targets.ClassScore` takes either as its
classes to explain a probability instead (``ClassScore(LabelsAbove(0.5), sigmoid=True)``).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

__all__ = ["LabelsAbove", "TopClasses", "labels_above"]


@dataclass(frozen=True)
class TopClasses:
    """Each image's ``k`` highest-scoring classes, read from the forward pass the
    explanation itself runs, so finding them costs no extra pass.

    The explanation is the one a ``(B, k)`` tensor of those classes would give: every
    per-target field has a ``k`` axis, highest score first, and ``Explanation.logits``
    holds the scores they were ranked by.  ``ClassScore(TopClasses(k), sigmoid=True)`` (or
    ``softmax=True``) explains the same classes' probabilities.

    Examples:
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


@dataclass(frozen=True)
class LabelsAbove:
    """Each image's labels whose sigmoid probability is at least ``threshold``,
    ``sigmoid(z_c) >= threshold``, read from the forward pass the explanation itself runs.

    The explanation has a ``k`` axis, as for a ``(B, k)`` tensor of classes, with ``k = n``
    the largest number of labels an image of the batch has (at least 1; at most
    ``max_labels``).  Image ``i``'s labels fill its first places, highest logit first; its
    other places hold its next-highest labels, so that every map explains a real label, and
    ``Explanation.selected`` ``(B, n)`` says which places are above the threshold.  Maps
    are ``(B, n, H, W)``; ``exp.maps[exp.selected]`` is ``(number of labels above the
    threshold in the batch, H, W)``, in image order.

    The labels are explained for their logit ``z_c`` (Grad-CAM's choice); Score-CAM's
    confidences are their sigmoid probabilities.  ``ClassScore(LabelsAbove(t),
    sigmoid=True)`` explains ``sigmoid(z_c)`` in every method.  On a single-logit (binary)
    model the two classes are the negative ``-z`` and the positive ``z``: a threshold of 0.5
    selects the predicted one.

    Args:
        threshold: in ``(0, 1)``, a sigmoid probability.
        max_labels: at most this many places per image (``None``: as many as the image with
            the most labels needs); an image with more labels keeps its highest.

    Raises:
        ValueError: a threshold outside ``(0, 1)`` or not a number, ``max_labels`` not a
            positive int.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> import axiomcam
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                       nn.Flatten(), nn.Linear(4, 6))
        >>> with torch.no_grad():  # labels 0, 2 and 5 far above 0.5, the others far below
        ...     _ = model[-1].bias.copy_(torch.tensor([5.0, -5.0, 4.0, -5.0, -5.0, 3.0]))
        >>> exp = axiomcam.explain(model, torch.rand(2, 3, 16, 16), "gradcam", "1",
        ...                        targets=LabelsAbove(0.5))
        >>> exp.maps.shape, exp.targets.tolist(), exp.selected.all().item()
        (torch.Size([2, 3, 16, 16]), [[0, 2, 5], [0, 2, 5]], True)
    """

    threshold: float = 0.5
    max_labels: int | None = None

    def __post_init__(self) -> None:
        threshold = self.threshold
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or \
                not math.isfinite(threshold) or not 0 < threshold < 1:
            raise ValueError(f"LabelsAbove: threshold must be a sigmoid probability in (0, 1) "
                             f"(0.5: the labels the model predicts), got {threshold!r}")
        max_labels = self.max_labels
        if max_labels is not None and (isinstance(max_labels, bool) or not isinstance(
                max_labels, numbers.Integral) or max_labels < 1):
            raise ValueError(f"LabelsAbove: max_labels must be a positive int or None, got "
                             f"{max_labels!r}")


def labels_above(logits: torch.Tensor, spec: LabelsAbove
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(classes, selected)``, both ``(B, n)``: each image's ``n`` highest-logit classes
    and whether each one's sigmoid probability is at least ``spec.threshold`` (see
    :class:`LabelsAbove` for ``n``).  The selected places come first in every row: the
    sigmoid never decreases as the logit grows.

    Examples:
        >>> logits = torch.tensor([[2.0, -1.0, 0.5], [-3.0, -2.0, -1.0]])
        >>> classes, selected = labels_above(logits, LabelsAbove(0.5))
        >>> classes.tolist(), selected.tolist()
        ([[0, 2], [2, 1]], [[True, True], [False, False]])
    """
    above = torch.sigmoid(logits) >= spec.threshold
    count = max(1, int(above.sum(dim=1).max()))
    if spec.max_labels is not None:
        count = min(count, spec.max_labels)
    classes = logits.topk(count, dim=1).indices
    return classes, above.gather(1, classes)
