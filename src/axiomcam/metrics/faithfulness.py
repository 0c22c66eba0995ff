"""Faithfulness: does the model's confidence follow what the map calls important?

- :func:`confidence_change`: Average Drop % and Increase in Confidence % (Grad-CAM++);
- :func:`deletion_insertion`: the deletion and insertion curves and their areas (RISE);
- :func:`road`: RemOve And Debias with noisy linear imputation (Rong et al., ICML 2022),
  built on :func:`noisy_linear_imputation`;
- :func:`top_removal_drop`: the relative drop in confidence when the most salient ``p%``
  of the pixels are replaced by the image's mean colour.

Every perturbation happens in the model's input space (the normalised images ``inputs``),
where ``0`` is the data set's mean colour. Pixels are ranked by decreasing saliency; ties
are broken by the pixel's row-major index (a stable sort), so every ranking is
deterministic. A pixel is always changed in all its channels at once. All functions
return per-image values; the data-set averages are left to the caller.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sparse
import scipy.sparse.linalg as sparse_linalg
import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from ..methods.maps import safe_divide
from ..support import Progress, check_inputs, check_model, eval_mode, progress_bar
from ._common import check_class_targets, check_maps, chunks, class_probabilities

# ---------------------------------------------------------------------------------------
# shared checks and helpers
# ---------------------------------------------------------------------------------------


def _check_batch_size(batch_size: object) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


def _check_number(value: object, name: str) -> float:
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _check_all(model: nn.Module, inputs: torch.Tensor, maps: torch.Tensor, targets: object,
               batch_size: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validated ``(inputs, maps, targets)``: maps moved to the inputs' device and dtype,
    targets checked against the model's number of classes (read from one forward pass of
    the first image)."""
    check_model(model)
    check_inputs(model, inputs)
    if inputs.dim() != 4:
        raise ValueError(
            f"the faithfulness metrics need images (B, C, H, W), got shape {tuple(inputs.shape)}"
        )
    maps = check_maps(maps, inputs).to(device=inputs.device, dtype=inputs.dtype)
    _check_batch_size(batch_size)
    targets = check_class_targets(targets, inputs.shape[0])
    with eval_mode(model), torch.no_grad():
        logits = model(inputs[:1])
    if not torch.is_tensor(logits) or logits.dim() != 2:
        shape = tuple(logits.shape) if torch.is_tensor(logits) else type(logits)
        raise ValueError(
            f"the metrics need a model that returns (B, num_classes) logits; got {shape}"
        )
    targets = check_class_targets(targets, inputs.shape[0], logits.shape[1])
    return inputs, maps, targets.to(inputs.device)


def _round_half_up(numerator: int, denominator: int) -> int:
    """``round(numerator / denominator)`` with halves rounded up, in exact integer math."""
    return (2 * numerator + denominator) // (2 * denominator)


def _pixel_count(percent: float, pixels: int) -> int:
    """How many of ``pixels`` make ``percent`` %: ``round(percent / 100 * pixels)``, halves up."""
    return math.floor(percent / 100 * pixels + 0.5)


def _saliency_rank(maps: torch.Tensor) -> torch.Tensor:
    """``(B, H*W)`` rank of every pixel in decreasing saliency (0 = most salient); equal
    values keep their row-major order."""
    flat = maps.flatten(1)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    positions = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    rank.scatter_(1, order, positions)
    return rank


def _chunked_probabilities(model: nn.Module, total: int,
                           build: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                           batch_size: int, progress: Progress, description: str,
                           device: torch.device) -> torch.Tensor:
    """``(total,)`` class probabilities of perturbed images built ``batch_size`` at a time:
    ``build(indices)`` returns the images and the classes of those flat item indices."""
    parts = list(chunks(total, batch_size))
    results = []
    with progress_bar(progress, len(parts), description) as bar:
        for part in parts:
            images, classes = build(torch.arange(part.start, part.stop, device=device))
            results.append(class_probabilities(model, images, classes, batch_size=batch_size,
                                               progress=False))
            bar.update(1)
    return torch.cat(results)


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


def confidence_change(model: nn.Module, inputs: torch.Tensor, maps: torch.Tensor,
                      targets: object, *, batch_size: int = 64,
                      progress: Progress = None) -> ConfidenceChange:
    """Average Drop and Increase in Confidence (Chattopadhyay et al., Grad-CAM++, WACV
    2018, section 5).

    ``Y = p_c(x)`` and ``O = p_c(x * M)`` are softmax probabilities of the target class
    ``c``, ``M`` the map (in ``[0, 1]``, at the input's resolution) broadcast over the
    channels. Per image ``drop = 100 * max(0, Y - O) / Y`` (defined as 0 when ``Y == 0``)
    and ``increase = [O > Y]``; over a data set, Average Drop % is ``mean(drop)`` (lower is
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

    Returns:
        A :class:`ConfidenceChange` of ``(B,)`` tensors.

    Raises:
        TypeError / ValueError: on a bad model, inputs, maps (wrong size, NaN, outside
            ``[0, 1]``), targets (wrong length, out of range) or batch_size.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from axiomcam.metrics.faithfulness import confidence_change
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2))
        >>> result = confidence_change(model, torch.rand(2, 3, 8, 8), torch.rand(2, 8, 8),
        ...                            torch.tensor([0, 1]))
        >>> result.drop.shape, result.increase.dtype
        (torch.Size([2]), torch.bool)
        >>> bool(((result.drop > 0) != result.increase).all())  # O < Y or O > Y
        True
    """
    inputs, maps, targets = _check_all(model, inputs, maps, targets, batch_size)
    original = class_probabilities(model, inputs, targets, batch_size, progress,
                                   description="original")

    def masked_images(items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return inputs[items] * maps[items, None], targets[items]

    masked = _chunked_probabilities(model, inputs.shape[0], masked_images, batch_size,
                                    progress, "masked", inputs.device)
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


def _baseline_images(baseline: float | torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
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
    value = _check_number(baseline, "baseline")
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

    Example:
        >>> import torch
        >>> from axiomcam.metrics.faithfulness import blurred
        >>> image = torch.zeros(1, 1, 5, 5); image[0, 0, 2, 2] = 1
        >>> out = blurred(image, sigma=1.0, kernel_size=3)
        >>> round(float(out.sum()), 4), bool(out[0, 0, 2, 2] < 1)
        (1.0, True)
    """
    sigma = _check_number(sigma, "blur_sigma")
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
                       progress: Progress = None, insertion: bool = True
                       ) -> DeletionInsertion:
    """Deletion and insertion curves and their areas (Petsiuk et al., RISE, BMVC 2018).

    Pixels are ordered by decreasing saliency (ties: row-major index first). At step
    ``s = 0 .. steps`` the first ``n_s = round(s * H * W / steps)`` pixels (halves rounded
    up; all channels of a pixel together) are

    - *deleted*: set to ``baseline`` in the image (step 0: the image, last step: all
      baseline);
    - *inserted*: copied from the image into a blurred copy of it (:func:`blurred`; step 0:
      the blurred image, last step: the image).

    The curves are ``p_c`` (softmax probability of the target class) at every step, over
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
        blur_sigma, blur_kernel_size: the insertion blur (RISE: sigma 5, kernel 11).
        batch_size: images per forward pass.
        progress: show a progress bar (``None``: only for many batches), or a callable
            ``(done, total, description)`` told after every batch.
        insertion: also the insertion curve (``False``: deletion alone, half the passes;
            ``insertion`` and ``insertion_auc`` are then ``None``).

    Returns:
        A :class:`DeletionInsertion`.

    Raises:
        TypeError / ValueError: on bad model, inputs, maps, targets, ``steps``, baseline,
            blur parameters or batch_size.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from axiomcam.metrics.faithfulness import deletion_insertion
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2))
        >>> result = deletion_insertion(model, torch.rand(2, 3, 8, 8), torch.rand(2, 8, 8),
        ...                             0, steps=4)
        >>> result.fractions.tolist(), result.deletion.shape, result.insertion_auc.shape
        ([0.0, 0.25, 0.5, 0.75, 1.0], torch.Size([2, 5]), torch.Size([2]))
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    inputs, maps, targets = _check_all(model, inputs, maps, targets, batch_size)
    base = _baseline_images(baseline, inputs)
    # the insertion's starting point (checks the blur parameters even when not inserting)
    start = blurred(inputs, blur_sigma, blur_kernel_size)
    batch, _, height, width = inputs.shape
    pixels = height * width
    counts = torch.tensor([_round_half_up(s * pixels, steps) for s in range(steps + 1)],
                          device=inputs.device)
    rank = _saliency_rank(maps)
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
    deletion = _chunked_probabilities(model, total, deleted, batch_size, progress,
                                      "deletion", inputs.device).view(batch, points)
    revealed = (_chunked_probabilities(model, total, inserted, batch_size, progress,
                                       "insertion", inputs.device).view(batch, points)
                if insertion else None)
    fractions = counts.to(inputs.dtype) / pixels
    return DeletionInsertion(
        fractions=fractions, deletion=deletion, insertion=revealed,
        deletion_auc=torch.trapezoid(deletion, fractions, dim=1),
        insertion_auc=(torch.trapezoid(revealed, fractions, dim=1)
                       if revealed is not None else None),
    )


# ---------------------------------------------------------------------------------------
# ROAD: noisy linear imputation
# ---------------------------------------------------------------------------------------

# (row offset, column offset, weight): direct neighbours 1/6, diagonal ones 1/12
_NEIGHBOURS = (
    (-1, -1, 1 / 12), (-1, 0, 1 / 6), (-1, 1, 1 / 12),
    (0, -1, 1 / 6), (0, 1, 1 / 6),
    (1, -1, 1 / 12), (1, 0, 1 / 6), (1, 1, 1 / 12),
)
_LEAF_SIDE = 6  # nested dissection stops at blocks of at most 6 x 6 pixels


@functools.lru_cache(maxsize=16)
def _dissection_rank(height: int, width: int) -> np.ndarray:
    """Position of every pixel (row-major index) in a nested-dissection elimination order
    of the ``height x width`` grid.

    A full row or column separates the 8-connected grid, so each rectangle is split by
    its middle line across the longer side into two halves that are ordered first
    (recursively) and the line last. Eliminating in this order keeps the sparse LU factors
    small (``O(n log n)`` fill); for large removals it factorises 2-4 times faster than
    SuperLU's default COLAMD ordering of the same matrix.
    """
    pieces: list[np.ndarray] = []
    stack = [(0, height, 0, width)]  # each line is listed before its halves' pieces
    while stack:
        top, bottom, left, right = stack.pop()
        rows, cols = bottom - top, right - left
        if rows <= 0 or cols <= 0:
            continue
        if rows * cols <= _LEAF_SIDE * _LEAF_SIDE:
            block = np.arange(top, bottom)[:, None] * width + np.arange(left, right)
            pieces.append(block.ravel())
        elif cols >= rows:
            middle = (left + right) // 2
            pieces.append(np.arange(top, bottom) * width + middle)
            stack.append((top, bottom, middle + 1, right))
            stack.append((top, bottom, left, middle))
        else:
            middle = (top + bottom) // 2
            pieces.append(middle * width + np.arange(left, right))
            stack.append((middle + 1, bottom, left, right))
            stack.append((top, middle, left, right))
    # reversed, every separator line comes after the pieces of both its halves
    order = np.concatenate(pieces[::-1])
    rank = np.empty(height * width, dtype=np.int64)
    rank[order] = np.arange(height * width)
    rank.setflags(write=False)
    return rank


def noisy_linear_imputation(image: torch.Tensor, removed: torch.Tensor, *,
                            noise_std: float = 0.01,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """ROAD's noisy linear imputation (Rong et al., "A Consistent and Efficient Evaluation
    Strategy for Attribution Methods", ICML 2022).

    Every removed pixel ``i`` gets, per channel, the weighted mean of its (up to 8)
    neighbours, ``x_i = sum_j w_ij x_j / sum_j w_ij`` with ``w = 1/6`` for the 4 direct
    and ``1/12`` for the 4 diagonal neighbours; at the image border the weights are
    renormalised over the neighbours that exist. The equations of all removed pixels are
    solved jointly, one sparse linear system ``(D - W_rr) x_r = W_rk x_k`` (known
    neighbours on the right-hand side), factorised once (SuperLU in a nested-dissection
    order, float64) and solved for the ``C`` channels as one ``(n, C)`` right-hand side.
    The matrix is a weighted graph Laplacian with the known pixels as Dirichlet boundary,
    so the solution is unique whenever one pixel is kept. Then Gaussian noise of standard
    deviation ``noise_std`` is added to the imputed pixels only. ``noise_std`` is in the
    units of ``image``: for normalised inputs (as :func:`road` uses them), 0.01 normalised
    units, ROAD's default, is about 0.002 on a [0, 1] intensity scale for ImageNet's
    ``std``.

    Args:
        image: ``(C, H, W)`` float image.
        removed: ``(H, W)`` bool mask of the pixels to impute.
        noise_std: standard deviation of the added noise (``0`` for none).
        generator: random generator of the noise (a CPU :class:`torch.Generator`);
            ``None`` uses torch's global generator.

    Returns:
        ``(C, H, W)`` copy of ``image`` whose removed pixels are imputed; the others are
        unchanged.

    Raises:
        TypeError / ValueError: on a non-float or non-finite image, a mask of another size
            or dtype, every pixel removed, or a negative / non-finite ``noise_std``.

    Example:
        >>> import torch
        >>> from axiomcam.metrics.faithfulness import noisy_linear_imputation
        >>> ramp = torch.arange(5.0).repeat(1, 5, 1)  # each row 0 1 2 3 4
        >>> removed = torch.zeros(5, 5, dtype=torch.bool); removed[1:4, 1:4] = True
        >>> noisy_linear_imputation(ramp, removed, noise_std=0.0)[0, 2].tolist()
        [0.0, 1.0, 2.0, 3.0, 4.0]
    """
    if not torch.is_tensor(image) or not image.is_floating_point() or image.dim() != 3:
        raise TypeError(
            "image must be a float tensor (C, H, W), got "
            + (f"{image.dtype} {tuple(image.shape)}" if torch.is_tensor(image)
               else type(image).__name__)
        )
    if not torch.isfinite(image).all():
        raise ValueError("image contains NaN or inf")
    if not torch.is_tensor(removed) or removed.dtype != torch.bool:
        raise TypeError(
            f"removed must be a bool tensor (H, W), got "
            f"{removed.dtype if torch.is_tensor(removed) else type(removed).__name__}"
        )
    if tuple(removed.shape) != tuple(image.shape[1:]):
        raise ValueError(
            f"removed is {tuple(removed.shape)} but the image is {tuple(image.shape[1:])}"
        )
    noise_std = _check_number(noise_std, "noise_std")
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std!r}")
    channels, height, width = image.shape
    values = image.detach().cpu().to(torch.float64).numpy().reshape(channels, -1)
    removed_flat = removed.detach().cpu().numpy().reshape(-1)
    if removed_flat.all():
        raise ValueError("every pixel is removed: nothing to impute from (keep at least one)")
    imputed = _impute(values, removed_flat, height, width, noise_std, generator)
    return torch.from_numpy(imputed).view(image.shape).to(device=image.device,
                                                          dtype=image.dtype)


def _impute(values: np.ndarray, removed: np.ndarray, height: int, width: int,
            noise_std: float, generator: torch.Generator | None) -> np.ndarray:
    """:func:`noisy_linear_imputation` on checked NumPy data: ``values`` ``(C, H*W)``
    float64, ``removed`` ``(H*W,)`` bool with at least one pixel kept; returns a new
    ``(C, H*W)`` array."""
    result = values.copy()
    unknown = np.flatnonzero(removed)
    if unknown.size == 0:
        return result
    # unknowns numbered in nested-dissection order, so SuperLU needs no reordering
    unknown = unknown[np.argsort(_dissection_rank(height, width)[unknown], kind="stable")]
    count = unknown.size
    variable = np.full(height * width, -1, dtype=np.int64)
    variable[unknown] = np.arange(count)
    rows, cols = np.divmod(unknown, width)
    diagonal = np.zeros(count)
    right_hand_side = np.zeros((count, values.shape[0]))
    entry_rows, entry_cols, entry_values = [], [], []
    for row_step, col_step, weight in _NEIGHBOURS:
        neighbour_row, neighbour_col = rows + row_step, cols + col_step
        inside = np.flatnonzero((neighbour_row >= 0) & (neighbour_row < height)
                                & (neighbour_col >= 0) & (neighbour_col < width))
        diagonal[inside] += weight  # the sum of the existing neighbours' weights
        neighbour = neighbour_row[inside] * width + neighbour_col[inside]
        neighbour_variable = variable[neighbour]
        also_unknown = neighbour_variable >= 0
        entry_rows.append(inside[also_unknown])
        entry_cols.append(neighbour_variable[also_unknown])
        entry_values.append(np.full(int(also_unknown.sum()), -weight))
        known = ~also_unknown
        # each unknown appears at most once per offset, so plain fancy-index += is safe
        right_hand_side[inside[known]] += weight * values[:, neighbour[known]].T
    entry_rows.append(np.arange(count))
    entry_cols.append(np.arange(count))
    entry_values.append(diagonal)
    matrix = sparse.csc_matrix(
        (np.concatenate(entry_values), (np.concatenate(entry_rows), np.concatenate(entry_cols))),
        shape=(count, count),
    )
    solution = sparse_linalg.splu(matrix, permc_spec="NATURAL").solve(right_hand_side).T
    if noise_std > 0:
        noise = torch.randn(solution.shape, generator=generator, dtype=torch.float64)
        solution = solution + noise_std * noise.numpy()
    result[:, unknown] = solution
    return result


@dataclass(frozen=True)
class RoadResult:
    """Per-image result of :func:`road`.

    Attributes:
        percentages: the removed shares in percent, e.g. ``(10, 30, 50, 70, 90)``.
        original: ``(B,)`` ``p_c(x)``.
        morf: ``(B, P)`` ``p_c`` after imputing the *most* relevant ``p%`` (lower = more
            faithful).
        lerf: ``(B, P)`` ``p_c`` after imputing the *least* relevant ``p%`` (higher = more
            faithful).
    """

    percentages: tuple[float, ...]
    original: torch.Tensor
    morf: torch.Tensor
    lerf: torch.Tensor


def check_percentages(percentages: object, name: str = "percentages") -> tuple[float, ...]:
    """ROAD's percentages checked: a non-empty sequence of finite numbers in ``(0, 100)``
    (``name`` is what the error calls them: ``"--road-percentages"`` on the command line).

    Example:
        >>> check_percentages([10, 50.5])
        (10.0, 50.5)
        >>> check_percentages([100])
        Traceback (most recent call last):
        ...
        ValueError: percentages must be numbers in (0, 100) (a non-empty sequence), got [100]
    """
    if torch.is_tensor(percentages) or isinstance(percentages, np.ndarray):
        percentages = percentages.tolist()
    message = f"{name} must be numbers in (0, 100) (a non-empty sequence), got {percentages!r}"
    if isinstance(percentages, str) or not isinstance(percentages, Sequence):
        raise ValueError(message)
    checked = tuple(_check_number(p, f"each of {name}") for p in percentages)
    if not checked or any(not 0 < p < 100 for p in checked):
        raise ValueError(message)
    return checked


def road(model: nn.Module, inputs: torch.Tensor, maps: torch.Tensor, targets: object, *,
         percentages: Sequence[float] = (10, 30, 50, 70, 90), noise_std: float = 0.01,
         seed: int = 0, batch_size: int = 64, progress: Progress = None) -> RoadResult:
    """ROAD, RemOve And Debias (Rong et al., ICML 2022).

    For every percentage ``p``, the ``k = round(p / 100 * H * W)`` pixels (halves up, at
    most ``H * W - 1`` so that one pixel is kept) with the highest saliency (MoRF, most
    relevant first) or the lowest (LeRF, least relevant first) are removed and filled in by
    :func:`noisy_linear_imputation`; the result is ``p_c`` of the imputed image. Ranking:
    decreasing saliency, ties by row-major index; LeRF removes the last ``k`` of the same
    ranking. A faithful map makes MoRF fall fast and LeRF stay high.

    The imputation works in the model's (normalised) input space and ``noise_std`` is in
    its units (ROAD's default 0.01). The noise is drawn from one generator seeded with
    ``seed``, image by image, MoRF before LeRF, in the order of ``percentages``, so the
    result is reproducible for a seed and independent of ``batch_size``.

    Args:
        model: a classifier returning ``(B, num_classes)`` logits.
        inputs: ``(B, C, H, W)`` images, normalised as the model expects.
        maps: ``(B, H, W)`` maps in ``[0, 1]`` at the input's resolution.
        targets: ``(B,)`` class indices (or one int for all images).
        percentages: removed shares in percent, each in ``(0, 100)``.
        noise_std: standard deviation of the imputation noise (``0`` for none).
        seed: seed of the noise.
        batch_size: images per forward pass (also how many imputations are held at once).
        progress: show a progress bar (``None``: only for many batches), or a callable
            ``(done, total, description)`` told after every batch.

    Returns:
        A :class:`RoadResult`.

    Raises:
        TypeError / ValueError: on bad model, inputs, maps, targets, percentages,
            noise_std, seed or batch_size.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from axiomcam.metrics.faithfulness import road
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2))
        >>> result = road(model, torch.rand(2, 3, 8, 8), torch.rand(2, 8, 8), 1,
        ...               percentages=(25, 75))
        >>> result.percentages, result.morf.shape, result.lerf.shape
        ((25.0, 75.0), torch.Size([2, 2]), torch.Size([2, 2]))
    """
    percentages = check_percentages(percentages)
    noise_std = _check_number(noise_std, "noise_std")
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    inputs, maps, targets = _check_all(model, inputs, maps, targets, batch_size)
    batch, channels, height, width = inputs.shape
    pixels = height * width
    counts = [min(_pixel_count(p, pixels), pixels - 1) for p in percentages]
    rank = _saliency_rank(maps)
    generator = torch.Generator().manual_seed(seed)
    per_image = 2 * len(percentages)  # item order: image, then MoRF / LeRF, then percentage
    original = class_probabilities(model, inputs, targets, batch_size, progress,
                                   description="original")

    rank_numpy = rank.cpu().numpy()

    @functools.lru_cache(maxsize=1)  # items of one image come in a row: convert it once
    def image_values(image: int) -> np.ndarray:
        return inputs[image].detach().cpu().to(torch.float64).numpy().reshape(channels, -1)

    def imputed(items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = []
        for item in items.tolist():
            image, rest = divmod(item, per_image)
            least_first, which = divmod(rest, len(percentages))
            count = counts[which]
            removed = (rank_numpy[image] >= pixels - count if least_first
                       else rank_numpy[image] < count)
            images.append(_impute(image_values(image), removed, height, width, noise_std,
                                  generator))
        stacked = torch.from_numpy(np.stack(images)).view(-1, channels, height, width)
        return stacked.to(device=inputs.device, dtype=inputs.dtype), targets[items // per_image]

    scores = _chunked_probabilities(model, batch * per_image, imputed, batch_size, progress,
                                    "road", inputs.device).view(batch, 2, len(percentages))
    return RoadResult(percentages=percentages, original=original, morf=scores[:, 0],
                      lerf=scores[:, 1])


# ---------------------------------------------------------------------------------------
# top-p removal
# ---------------------------------------------------------------------------------------


def top_removal_drop(model: nn.Module, inputs: torch.Tensor, maps: torch.Tensor,
                     targets: object, *, percent: float = 20.0, batch_size: int = 64,
                     progress: Progress = None) -> torch.Tensor:
    """Relative confidence drop when the most salient ``percent`` % of the pixels are
    replaced by the image's mean colour.

    ``x'`` is ``x`` with its ``k = round(percent / 100 * H * W)`` most salient pixels
    (halves up; ties by row-major index) set, per channel, to the mean of that channel over
    the whole original image (in the model's input space); ``P = p_c(x)``, ``P' = p_c(x')``
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

    Returns:
        ``(B,)`` relative drops.

    Raises:
        TypeError / ValueError: on bad model, inputs, maps, targets, percent or batch_size.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from axiomcam.metrics.faithfulness import top_removal_drop
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2))
        >>> top_removal_drop(model, torch.rand(3, 3, 8, 8), torch.rand(3, 8, 8), 0).shape
        torch.Size([3])
    """
    percent = _check_number(percent, "percent")
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent!r}")
    inputs, maps, targets = _check_all(model, inputs, maps, targets, batch_size)
    batch, _, height, width = inputs.shape
    count = _pixel_count(percent, height * width)
    rank = _saliency_rank(maps)

    def replaced(items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = inputs[items]
        mean_colour = images.mean(dim=(2, 3), keepdim=True)
        mask = (rank[items] < count).view(-1, 1, height, width)
        return torch.where(mask, mean_colour, images), targets[items]

    original = class_probabilities(model, inputs, targets, batch_size, progress,
                                   description="original")
    perturbed = _chunked_probabilities(model, batch, replaced, batch_size, progress,
                                       "top removal", inputs.device)
    return _relative_drop(original, perturbed)
