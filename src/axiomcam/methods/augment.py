"""Test-time augmentation of any method (``aug_smooth=True``): the batch explained under
pytorch-grad-cam's augmentations in one batch of copies, each copy's maps brought back by
the inverse transform, and averaged.

Examples:
    >>> import torch
    >>> from axiomcam.methods.augment import AUGMENTATIONS, augment_batch, deaugment
    >>> x = torch.arange(4.0).view(1, 1, 1, 4)
    >>> copies = augment_batch(x)
    >>> len(AUGMENTATIONS), copies.shape
    (6, torch.Size([6, 1, 1, 4]))
    >>> copies[4].flatten().tolist()  # flipped, factor 1.0
    [3.0, 2.0, 1.0, 0.0]
    >>> torch.allclose(deaugment(copies / copies.new_tensor(
    ...     [f for _, f in AUGMENTATIONS]).view(-1, 1, 1, 1), 1), x.expand(6, 1, 1, 1, 4))
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from ..explanation import Explanation
from ..targets import ResolvedTargets
from .maps import minmax_scale

__all__ = ["AUGMENTATIONS", "augment_batch", "average_augmented", "deaugment",
           "tile_extra_inputs", "tile_targets"]

#: ``(horizontal flip, intensity factor)`` of each augmented copy: pytorch-grad-cam's
#: default ``ttach`` transforms (``HorizontalFlip()`` then ``Multiply([0.9, 1, 1.1])``,
#: pixel values multiplied: no spatial rescaling), in the same order
AUGMENTATIONS: tuple[tuple[bool, float], ...] = tuple(
    (flip, factor) for flip in (False, True) for factor in (0.9, 1.0, 1.1))


def augment_batch(inputs: torch.Tensor) -> torch.Tensor:
    """The ``(A * B, C, *spatial)`` copies of ``inputs`` ``(B, C, *spatial)``, copy ``a``
    of image ``b`` at row ``a * B + b``: flipped along the last (horizontal) axis when
    ``AUGMENTATIONS[a]`` says so, times its factor."""
    flipped = inputs.flip(-1)
    return torch.cat([(flipped if flip else inputs) * factor for flip, factor in AUGMENTATIONS])


def deaugment(fields: torch.Tensor, batch: int) -> torch.Tensor:
    """``(A * B, ...)`` per-copy results whose last axis is horizontal -> ``(A, B, ...)``,
    each flipped copy flipped back (the factors change no position)."""
    per_copy = fields.view(len(AUGMENTATIONS), batch, *fields.shape[1:])
    flips = torch.tensor([flip for flip, _ in AUGMENTATIONS], device=fields.device)
    return torch.where(flips.view(-1, *[1] * (per_copy.dim() - 1)), per_copy.flip(-1), per_copy)


def tile_targets(targets: ResolvedTargets, batch: int) -> ResolvedTargets:
    """``targets`` of a batch of ``batch`` images for its ``A * B`` augmented copies: every
    copy explains its image's targets (a callable that takes image indices gets the
    image's, not the copy's)."""
    count = len(AUGMENTATIONS)

    def tiled(tensor: torch.Tensor | None) -> torch.Tensor | None:
        return None if tensor is None else tensor.repeat(count, *[1] * (tensor.dim() - 1))

    function = targets.function
    if function is not None and targets.passes_image_indices:
        function = _per_image(function, batch)
    return dataclasses.replace(targets, classes=tiled(targets.classes), function=function,
                               logits=tiled(targets.logits), selected=tiled(targets.selected))


def _per_image(function: Callable[..., torch.Tensor], batch: int) -> Callable[..., torch.Tensor]:
    def on_image_indices(output: object, rows: torch.Tensor) -> torch.Tensor:
        return function(output, rows % batch)
    return on_image_indices


def tile_extra_inputs(extra_inputs: tuple[object, ...], batch: int) -> tuple[object, ...]:
    """The model's extra inputs for the ``A * B`` copies: a tensor paired row by row with
    the ``batch`` images (first axis ``batch > 1``) repeated once per augmentation."""
    count = len(AUGMENTATIONS)
    return tuple(
        extra.repeat(count, *[1] * (extra.dim() - 1))
        if torch.is_tensor(extra) and extra.dim() and extra.shape[0] == batch > 1 else extra
        for extra in extra_inputs)


def average_augmented(explanation: Explanation, targets: ResolvedTargets) -> Explanation:
    """The explanation of ``B`` images from ``explanation``, that of their ``A * B``
    augmented copies (:func:`augment_batch`) for ``targets`` resolved on the images.

    ``maps`` is ``minmax(mean_a T_a^-1(M_a))``, ``M_a`` copy ``a``'s map and ``T_a^-1`` its
    inverse transform; ``guided`` and ``raw`` (at the layer's resolution) are likewise the
    mean of the copies' brought back, ``channel_weights`` and ``scores`` their mean;
    ``targets``, ``logits`` and ``selected`` are the images'. Each layer's explanation (at
    several layers) is averaged the same way.
    """
    batch = explanation.maps.shape[0] // len(AUGMENTATIONS)

    def mean(field: torch.Tensor | None, spatial: bool = True) -> torch.Tensor | None:
        if field is None:
            return None
        if spatial:
            return deaugment(field, batch).mean(0)
        return field.view(len(AUGMENTATIONS), batch, *field.shape[1:]).mean(0)

    layers = None if explanation.layers is None else {
        name: average_augmented(part, targets) for name, part in explanation.layers.items()}
    maps = minmax_scale(deaugment(explanation.maps, batch).mean(0), "augmentation-smoothed map")
    return dataclasses.replace(
        explanation, maps=maps, raw=mean(explanation.raw), guided=mean(explanation.guided),
        channel_weights=mean(explanation.channel_weights, spatial=False),
        scores=mean(explanation.scores, spatial=False),
        targets=None if targets.classes is None else targets.classes.detach(),
        logits=targets.logits, selected=targets.selected, layers=layers)
