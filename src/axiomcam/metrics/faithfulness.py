"""Faithfulness: does the model's confidence follow what the map calls important?

- :func:`confidence_change`: Average Drop % and Increase in Confidence % (Grad-CAM++);
- :func:`deletion_insertion`: the deletion and insertion curves and their areas (RISE);
- :func:`top_removal_drop`: the relative drop in confidence when the most salient ``p%``
  of the pixels are replaced by the image's mean colour.

Every perturbation happens in the model's input space (the normalised images ``inputs``),
where ``0`` is the data set's mean colour. Pixels are ranked by decreasing saliency; ties
are broken by the pixel's row-major index (a stable sort), so every ranking is
deterministic. A pixel is always changed in all its channels at once. All functions
return per-image values; the data-set averages are left to the caller. ROAD, which
removes pixels by imputation, is in :mod:`axiomcam.metrics.removal` (named after what ROAD
does, so that the function ``axiomcam.metrics.road`` does not hide the module).

Examples:
    >>> import torch
    >>> from torch import nn
    >>> from axiomcam.metrics import confidence_change, deletion_insertion, top_removal_drop
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ...                       nn.Linear(4, 2))
    >>> inputs, maps = torch.rand(2, 3, 8, 8), torch.rand(2, 8, 8)
    >>> change = confidence_change(model, inputs, maps, torch.tensor([0, 1]))
    >>> change.drop.shape, change.increase.dtype
    (torch.Size([2]), torch.bool)
    >>> bool(((change.drop > 0) != change.increase).all())  # O < Y or O > Y
    True
    >>> curves = deletion_insertion(model, inputs, maps, 0, steps=4)
    >>> curves.fractions.tolist(), curves.deletion.shape, curves.insertion_auc.shape
    ([0.0, 0.25, 0.5, 0.75, 1.0], torch.Size([2, 5]), torch.Size([2]))
    >>> top_removal_drop(model, torch.rand(3, 3, 8, 8), torch.rand(3, 8, 8), 0).shape
    torch.Size([3])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from ..methods.maps import safe_divide
from ..support import Progress
from .common import (
    check_faithfulness_inputs,
    check_number,
    chunked_probabilities,
    class_probabilities,
    pixel_count,
    saliency_rank,
)

__all__ = [
    "ConfidenceChange",
    "DeletionInsertion",
    "baseline_images",
    "blurred",
    "confidence_change",
    "deletion_insertion",
    "top_removal_drop",
]

# ---------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------


def _round_half_up(numerator: int, denominator: int) -> int:
    """``round(numerator / denominator)`` with halves rounded up, in exact integer math."""
    return (2 * numerator + denominator) // (2 * denominator)


def _relative_drop(original: torch.Tensor, perturbed: torch.Tensor) -> torch.Tensor:
    """``(original - perturbed) / original``, 0 where ``original == 0``."""
    return safe_divide(original - perturbed, original)  # probabilities: never negative


# ---------------------------------------------------------------------------------------
# Average Drop / Increase in Confidence
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfidenceChange:
    """Per-image result of :func:`confidence_change`.

    Attributes:
        original: ``(B,)`` ``Y = p_c(x)``.
        masked: ``(B,)`` ``O = p_c(x * M)``.
        drop: ``(B,)`` ``100 * max(0, Y - O) / Y`` (0 where ``Y == 0``); its mean over a
            data set is the Average Drop %.
        increase: ``(B,)`` bool, ``O > Y``; ``100 * mean`` is the Increase in Confidence %.
    """

    original: torch.Tensor
    masked: torch.Tensor
    drop: torch.Tensor
    increase: torch.Tensor

    @property
    def change(self) -> torch.Tensor:
        """``(B,)`` ``O - Y = p_c(x * M) - p_c(x)``: pytorch-grad-cam's
        ``CamMultImageConfidenceChange`` (with a softmax target for a softmax head; higher
        is better)."""
        return self.masked - self.original


def confidence_change(model: nn.Module, inputs: torch.Tensor, maps: torch.Tensor,
                      targets: object, *, batch_size: int = 64,
                      progress: Progress = None, probability: str = "softmax"
                      ) -> ConfidenceChange:
    """Average Drop and Increase in Confidence (Chattopadhyay et al., Grad-CAM++, WACV
    2018, section 5).

    ``Y = p_c(x)`` and ``O = p_c(x * M)`` are the probabilities of the target class ``c``
    (by the model's head, ``probability``: its softmax by default), ``M`` the map (in
    ``[0, 1]``, at the input's resolution) broadcast over the channels. Per image
    ``drop = 100 * max(0, Y - O) / Y`` (defined as 0 when ``Y == 0``) and
    ``increase = [O > Y]``; over a data set, Average Drop % is ``mean(drop)`` (lower is
    better) and Increase in Confidence % is ``100 * mean(increase)`` (higher is better).

    ``x * M`` is taken in the model's input space: for normalised inputs, ``0`` is the
    data set's mean colour, so masked-out pixels become the mean colour, not black.

    Args:
        model: a classifier returning ``(B, num_classes)`` logits.
        inputs: ``(B, C, H, W)`` images, normalised as the model expects.
        maps: ``(B, H, W)`` maps in ``[0, 1]`` at the input's resolution.
        targets: ``(B,)`` class indices (or one int for all images).
        batch_size: images per forward pass.
        progress: show a progress bar (``None``: only for many batches), or a callable
            ``(done, total, description)`` told after every batch.
        probability: how ``p_c`` is read from the model's output
            (:data:`~axiomcam.outputs.PROBABILITY_RULES`): ``"softmax"`` over the classes
            (default), ``"sigmoid"`` of the class's own logit (multi-label or binary
            heads), or ``"output"`` (the model returns probabilities).

    Returns:
        A :class:`ConfidenceChange` of ``(B,)`` tensors.

    Raises:
        TypeError / ValueError: on a bad model, inputs, maps (wrong size, NaN, outside
            ``[0, 1]``), targets (wrong length, out of range) or batch_size.

    Example: in the module docstring (:mod:`axiomcam.metrics.faithfulness`).
    """
    inputs, maps, targets = check_faithfulness_inputs(model, inputs, maps, targets, batch_size,
                                                      probability)
    original = class_probabilities(model, inputs, targets, batch_size, progress,
                                   description="original", probability=probability)

    def masked_images(items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return inputs[items] * maps[items, None], targets[items]

    masked = chunked_probabilities(model, inputs.shape[0], masked_images, batch_size,
                                   progress, "masked", inputs.device, probability)
    drop = 100 * _relative_drop(original, masked).clamp(min=0)
    return ConfidenceChange(original=original, masked=masked, drop=drop,
                            increase=masked > original)


# ---------------------------------------------------------------------------------------
# Deletion / insertion
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeletionInsertion:
    """Per-image result of :func:`deletion_insertion`.

    Attributes:
        fractions: ``(steps + 1,)`` share of the pixels deleted / inserted at each step,
            from 0 to 1.
        deletion: ``(B, steps + 1)`` ``p_c`` as the most salient pixels are set to the
            baseline (step 0: the image itself).
        insertion: ``(B, steps + 1)`` ``p_c`` as the most salient pixels are revealed over a
            blurred copy (step 0: the blurred image; last step: the image); ``None`` when
            not asked for.
        deletion_auc: ``(B,)`` trapezoid area under ``deletion`` over ``fractions`` (lower
            is better).
        insertion_auc: ``(B,)`` the same for ``insertion`` (higher is better), or ``None``.
    """

    fractions: torch.Tensor
    deletion: torch.Tensor
    insertion: torch.Tensor | None
    deletion_auc: torch.Tensor
    insertion_auc: torch.Tensor | None


def baseline_images(baseline: float | torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """The baseline as a (broadcast, not copied) ``(B, C, H, W)`` tensor."""
    if torch.is_tensor(baseline):
        value = baseline.detach().to(device=inputs.device, dtype=inputs.dtype)
        if not torch.isfinite(value).all():
            raise ValueError("baseline contains NaN or inf")
        if value.dim() == 1 and value.numel() == inputs.shape[1] and inputs.shape[1] > 1:
            value = value[:, None, None]  # one value per channel
        try:
            return value.broadcast_to(inputs.shape)
        except RuntimeError:
            raise ValueError(
                f"baseline of shape {tuple(value.shape)} does not broadcast to the inputs "
                f"{tuple(inputs.shape)}: give a number, a (C,) colour, (C, H, W) or "
                "(B, C, H, W)"
            ) from None
    value = check_number(baseline, "baseline")
    return torch.full((1, 1, 1, 1), value, dtype=inputs.dtype,
                      device=inputs.device).expand(inputs.shape)


def blurred(inputs: torch.Tensor, sigma: float = 5.0, kernel_size: int = 11) -> torch.Tensor:
    """The insertion start images: a Gaussian blur of ``inputs`` ``(B, C, H, W)``.

    A ``kernel_size x kernel_size`` Gaussian kernel of standard deviation ``sigma`` pixels
    (RISE's choice: 11 and 5), applied per channel with reflected borders
    (:func:`torchvision.transforms.functional.gaussian_blur`). Reflection needs the
    half-width below the image size, so the kernel shrinks to ``2 * min(H, W) - 1`` on
    images smaller than it. Blurring commutes with per-channel normalisation, so blurring
    normalised inputs equals normalising the blurred photo.

    Raises:
        ValueError: ``sigma`` not a positive number or ``kernel_size`` not a positive odd int.

    Examples:
        >>> import torch
        >>> from axiomcam.metrics.faithfulness import blurred
        >>> image = torch.zeros(1, 1, 5, 5); image[0, 0, 2, 2] = 1
        >>> out = blurred(image, sigma=1.0, kernel_size=3)
        >>> round(float(out.sum()), 4), bool(out[0, 0, 2, 2] < 1)
        (1.0, True)
    """
    sigma = check_number(sigma, "blur_sigma")
    if sigma <= 0:
        raise ValueError(f"blur_sigma must be positive, got {sigma!r}")
    if (isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1
            or kernel_size % 2 == 0):
        raise ValueError(f"blur_kernel_size must be a positive odd int, got {kernel_size!r}")
    size = min(kernel_size, 2 * min(inputs.shape[-2:]) - 1)
    return gaussian_blur(inputs, [size, size], [sigma, sigma])


def deletion_insertion(model: nn.Module, inputs: torch.Tensor, maps: torch.Tensor,
                       targets: object, *, steps: int = 50,
                       baseline: float | torch.Tensor = 0.0, blur_sigma: float = 5.0,
                       blur_kernel_size: int = 11, batch_size: int = 64,
                       progress: Progress = None, insertion: bool = True,
                       probability: str = "softmax") -> DeletionInsertion:
    """Deletion and insertion curves and their areas (Petsiuk et al., RISE, BMVC 2018).

    Pixels are ordered by decreasing saliency (ties: row-major index first). At step
    ``s = 0 .. steps`` the first ``n_s = round(s * H * W / steps)`` pixels (halves rounded
    up; all channels of a pixel together) are

    - *deleted*: set to ``baseline`` in the image (step 0: the image, last step: all
      baseline);
    - *inserted*: copied from the image into a blurred copy of it (:func:`blurred`; step 0:
      the blurred image, last step: the image).

    The curves are ``p_c`` (the target class's probability by the model's head,
    ``probability``: its softmax by default) at every step, over
    ``fractions = n_s / (H * W)``; the AUCs are their trapezoid areas over ``[0, 1]``. A
    faithful map has a low deletion AUC and a high insertion AUC.

    The ``B * (steps + 1)`` perturbed images of each curve are built and run
    ``batch_size`` at a time (never all at once).

    Args:
        model: a classifier returning ``(B, num_classes)`` logits.
        inputs: ``(B, C, H, W)`` images, normalised as the model expects.
        maps: ``(B, H, W)`` maps in ``[0, 1]`` at the input's resolution.
        targets: ``(B,)`` class indices (or one int for all images).
        steps: number of steps (``>= 1``); the curves have ``steps + 1`` points.
        baseline: the deleted pixels' value in the model's input space: a number (default
            ``0``, which for normalised inputs is the data set's mean colour), a ``(C,)``
            colour (e.g. ``-mean / std`` for black), or a tensor broadcastable to the
            inputs.
        blur_sigma: the insertion blur's standard deviation (RISE: 5).
        blur_kernel_size: the insertion blur's kernel size (RISE: 11).
        batch_size: images per forward pass.
        progress: show a progress bar (``None``: only for many batches), or a callable
            ``(done, total, description)`` told after every batch.
        insertion: also the insertion curve (``False``: deletion alone, half the passes;
            ``insertion`` and ``insertion_auc`` are then ``None``).
        probability: how ``p_c`` is read from the model's output
            (:data:`~axiomcam.outputs.PROBABILITY_RULES`): ``"softmax"`` over the classes
            (default), ``"sigmoid"`` of the class's own logit (multi-label or binary
            heads), or ``"output"`` (the model returns probabilities).

    Returns:
        A :class:`DeletionInsertion`.

    Raises:
        TypeError / ValueError: on bad model, inputs, maps, targets, ``steps``, baseline,
            blur parameters or batch_size.

    Example: in the module docstring (:mod:`axiomcam.metrics.faithfulness`).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    inputs, maps, targets = check_faithfulness_inputs(model, inputs, maps, targets, batch_size,
                                                      probability)
    base = baseline_images(baseline, inputs)
    # the insertion's starting point (checks the blur parameters even when not inserting)
    start = blurred(inputs, blur_sigma, blur_kernel_size)
    batch, _, height, width = inputs.shape
    pixels = height * width
    counts = torch.tensor([_round_half_up(s * pixels, steps) for s in range(steps + 1)],
                          device=inputs.device)
    rank = saliency_rank(maps)
    points = steps + 1

    def changed(items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images, step = items // points, items % points
        mask = rank[images] < counts[step, None]
        return images, mask.view(-1, 1, height, width)

    def deleted(items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images, mask = changed(items)
        return torch.where(mask, base[images], inputs[images]), targets[images]

    def inserted(items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images, mask = changed(items)
        return torch.where(mask, inputs[images], start[images]), targets[images]

    total = batch * points
    deletion = chunked_probabilities(model, total, deleted, batch_size, progress,
                                     "deletion", inputs.device, probability).view(batch, points)
    revealed = (chunked_probabilities(model, total, inserted, batch_size, progress,
                                      "insertion", inputs.device, probability
                                      ).view(batch, points)
                if insertion else None)
    fractions = counts.to(inputs.dtype) / pixels
    return DeletionInsertion(
        fractions=fractions, deletion=deletion, insertion=revealed,
        deletion_auc=torch.trapezoid(deletion, fractions, dim=1),
        insertion_auc=(torch.trapezoid(revealed, fractions, dim=1)
                       if revealed is not None else None),
    )


# ---------------------------------------------------------------------------------------
# top-p removal
# ---------------------------------------------------------------------------------------


def top_removal_drop(model: nn.Module, inputs: torch.Tensor, maps: torch.Tensor,
                     targets: object, *, percent: float = 20.0, batch_size: int = 64,
                     progress: Progress = None, probability: str = "softmax") -> torch.Tensor:
    """Relative confidence drop when the most salient ``percent`` % of the pixels are
    replaced by the image's mean colour.

    ``x'`` is ``x`` with its ``k = round(percent / 100 * H * W)`` most salient pixels
    (halves up; ties by row-major index) set, per channel, to the mean of that channel over
    the whole original image (in the model's input space); ``P = p_c(x)``, ``P' = p_c(x')``
    (probabilities by the model's head, ``probability``)
    and the result is ``(P - P') / P`` (0 where ``P == 0``). A higher drop means a more
    faithful map; the drop is negative when removing the pixels raises the confidence.

    Args:
        model: a classifier returning ``(B, num_classes)`` logits.
        inputs: ``(B, C, H, W)`` images, normalised as the model expects.
        maps: ``(B, H, W)`` maps in ``[0, 1]`` at the input's resolution.
        targets: ``(B,)`` class indices (or one int for all images).
        percent: share of the pixels to replace, in ``(0, 100]``.
        batch_size: images per forward pass.
        progress: show a progress bar (``None``: only for many batches), or a callable
            ``(done, total, description)`` told after every batch.
        probability: how ``p_c`` is read from the model's output
            (:data:`~axiomcam.outputs.PROBABILITY_RULES`): ``"softmax"`` over the classes
            (default), ``"sigmoid"`` of the class's own logit (multi-label or binary
            heads), or ``"output"`` (the model returns probabilities).

    Returns:
        ``(B,)`` relative drops.

    Raises:
        TypeError / ValueError: on bad model, inputs, maps, targets, percent or batch_size.

    Example: in the module docstring (:mod:`axiomcam.metrics.faithfulness`).
    """
    percent = check_number(percent, "percent")
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent!r}")
    inputs, maps, targets = check_faithfulness_inputs(model, inputs, maps, targets, batch_size,
                                                      probability)
    batch, _, height, width = inputs.shape
    count = pixel_count(percent, height * width)
    rank = saliency_rank(maps)

    def replaced(items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = inputs[items]
        mean_colour = images.mean(dim=(2, 3), keepdim=True)
        mask = (rank[items] < count).view(-1, 1, height, width)
        return torch.where(mask, mean_colour, images), targets[items]

    original = class_probabilities(model, inputs, targets, batch_size, progress,
                                   description="original", probability=probability)
    perturbed = chunked_probabilities(model, batch, replaced, batch_size, progress,
                                      "top removal", inputs.device, probability)
    return _relative_drop(original, perturbed)
