"""A class against its most similar classes: :class:`ClassContrast`, the target of
Finer-CAM (Zhang et al., "Finer-CAM: Spotting the Difference Reveals Finer Details for
Visual Explanation", CVPR 2025), usable with every method.

The score ``y = z_c - alpha * sum_d w_d z_d`` compares the target class ``c`` with its
``m`` most similar classes ``d`` (the logits nearest ``z_c``, the target left out), each
weighted by its softmax probability, normalised to sum to 1 (``w_d = p_d / sum_e p_e``).
Equivalently ``y = sum_d w_d (z_c - alpha z_d)``: the paper's logit difference ``y^c -
alpha y^d`` averaged over the references. The references and their weights are chosen
once, on the explained image's own logits, and held constant: ``y`` is a fixed linear
combination of logits, so its gradient is ``dz_c/dA - alpha sum_d w_d dz_d/dA``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch

from .classes import ClassScore, class_score_matrix
from .common import pick, row_images
from .selection import LabelsAbove

__all__ = ["ClassContrast", "ContrastScore"]


@dataclass(frozen=True)
class ClassContrast:
    """Explain a class *against* its ``comparisons`` most similar classes (Finer-CAM's
    target): ``y = z_c - alpha * sum_d w_d z_d`` (see the module docstring).

    Given as ``targets=`` to :func:`axiomcam.explain` (any method), it is resolved in the
    explanation's own forward pass: ``classes`` as a class target (``None``: each image's
    top class; an int; one class per image; ``(B, k)`` classes or
    :class:`~axiomcam.targets.TopClasses`), then for each image and class the ``comparisons``
    classes whose logits are nearest ``z_c`` (fewer when the model has fewer other
    classes) with their normalised softmax weights. ``alpha = 0`` is the plain logit
    ``z_c``; ``alpha = 1`` (the default, as pytorch-grad-cam's) the full difference.
    The explanation's ``targets`` are the classes ``c`` compared.

    Raises:
        ValueError: ``comparisons`` not a positive int, ``alpha`` not a finite number;
            when resolved, a model with one class.
        TypeError: ``classes`` a callable, a ``ClassScore`` or ``LabelsAbove``.

    Examples:
        >>> import torch, axiomcam
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                       nn.Flatten(), nn.Linear(4, 6))
        >>> exp = axiomcam.explain(model, torch.rand(2, 3, 16, 16), method="gradcam",
        ...                        target_layer="1", targets=ClassContrast(comparisons=2))
        >>> exp.maps.shape
        torch.Size([2, 16, 16])
    """

    classes: object = None
    comparisons: int = 3
    alpha: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.comparisons, bool) or not isinstance(self.comparisons, int) \
                or self.comparisons < 1:
            raise ValueError(f"comparisons must be a positive int (the number of similar "
                             f"classes compared with), got {self.comparisons!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, numbers.Real) \
                or not torch.isfinite(torch.tensor(float(self.alpha))):
            raise ValueError(f"alpha must be a finite number (the comparison strength), "
                             f"got {self.alpha!r}")
        if isinstance(self.classes, LabelsAbove | ClassScore | ClassContrast) \
                or (callable(self.classes) and not torch.is_tensor(self.classes)):
            raise TypeError(
                f"ClassContrast compares classes with their similar classes: classes must be "
                f"None, an int, one class per image, (B, k) classes or TopClasses, not "
                f"{self.classes!r}")

    def bind(self, classes: torch.Tensor, logits: torch.Tensor) -> ContrastScore:
        """The score for resolved ``classes`` ``(B, k)`` of images whose clean logits are
        ``logits`` ``(B, C)``: the references and weights chosen on ``logits``, for each of
        the ``k`` classes of each image."""
        count = min(self.comparisons, logits.shape[1] - 1)
        if count < 1:
            raise ValueError("ClassContrast needs a model with at least two classes")
        logits = logits.detach()
        columns = classes[..., None]  # (B, k, 1)
        distance = (logits[:, None, :] - logits[:, None, :].expand(
            -1, classes.shape[1], -1).gather(2, columns)).abs()
        distance.scatter_(2, columns, float("inf"))  # a class is not its own reference
        references = distance.sort(dim=2, stable=True).indices[..., :count]  # (B, k, m)
        weights = torch.softmax(logits, dim=1)[:, None, :].expand_as(distance).gather(
            2, references)
        weights = weights / weights.sum(2, keepdim=True)
        return ContrastScore(classes, references, weights, float(self.alpha))


class ContrastScore:
    """``y_{i,j} = z[c_{i,j}] - alpha * sum_d w_{i,j,d} z[r_{i,j,d}]`` for fixed classes
    ``c`` ``(B, k)``, references ``r`` ``(B, k, m)`` and weights ``w`` ``(B, k, m)`` (what
    :meth:`ClassContrast.bind` chooses); called as ``score(output, image_indices=None)``,
    it gives ``(N,)`` scores for one class per image, ``(N, k)`` for ``k``.

    Examples:
        >>> score = ContrastScore(torch.tensor([[0]]), torch.tensor([[[1, 2]]]),
        ...                       torch.tensor([[[0.75, 0.25]]]), alpha=1.0)
        >>> score(torch.tensor([[4.0, 2.0, 0.0]]))  # 4 - (0.75 * 2 + 0.25 * 0)
        tensor([2.5000])
    """

    def __init__(self, classes: torch.Tensor, references: torch.Tensor,
                 weights: torch.Tensor, alpha: float) -> None:
        self.classes = classes
        self.references = references
        self.weights = weights
        self.alpha = alpha

    @property
    def columns(self) -> int:
        """``k``, the classes per image."""
        return self.classes.shape[1]

    def __call__(self, output: object,
                 image_indices: torch.Tensor | None = None) -> torch.Tensor:
        logits = class_score_matrix(output, "ClassContrast")
        rows = row_images(image_indices, logits.shape[0], self.classes.shape[0],
                          "ClassContrast").to(self.classes.device)
        references = pick(self.references, rows)  # (N, k, m)
        compared = logits.gather(1, references.flatten(1)).view(references.shape)
        values = (logits.gather(1, pick(self.classes, rows))
                  - self.alpha * (pick(self.weights, rows) * compared).sum(2))
        return values[:, 0] if self.columns == 1 else values
