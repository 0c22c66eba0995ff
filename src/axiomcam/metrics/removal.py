"""ROAD, RemOve And Debias (Rong et al., "A Consistent and Efficient Evaluation Strategy
for Attribution Methods", ICML 2022): the class probability after the most (MoRF) or least
(LeRF) relevant pixels are removed and filled in by :func:`noisy_linear_imputation`.

The imputation solves one sparse linear system per image and removal, factorised in a
nested-dissection order (:func:`dissection_rank`). Pixels are ranked as in every
faithfulness metric (:func:`~axiomcam.metrics.common.saliency_rank`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sparse
import scipy.sparse.linalg as sparse_linalg
import torch
from torch import nn

from ..support import Progress
from . import common

__all__ = [
    "RoadResult",
    "check_percentages",
    "dissection_rank",
    "noisy_linear_imputation",
    "road",
]

# (row offset, column offset, weight): direct neighbours 1/6, diagonal ones 1/12
_NEIGHBOURS = (
    (-1, -1, 1 / 12), (-1, 0, 1 / 6), (-1, 1, 1 / 12),
    (0, -1, 1 / 6), (0, 1, 1 / 6),
    (1, -1, 1 / 12), (1, 0, 1 / 6), (1, 1, 1 / 12),
)
_LEAF_SIDE = 6  # nested dissection stops at blocks of at most 6 x 6 pixels


@functools.lru_cache(maxsize=16)
def dissection_rank(height: int, width: int) -> np.ndarray:
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


def _checked_noise_std(noise_std: object) -> float:
    """``noise_std`` checked to be a finite number ``>= 0``."""
    noise_std = common.check_number(noise_std, "noise_std")
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std!r}")
    return noise_std


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

    Examples:
        >>> import torch
        >>> from axiomcam.metrics import noisy_linear_imputation
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
    noise_std = _checked_noise_std(noise_std)
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
    unknown = unknown[np.argsort(dissection_rank(height, width)[unknown], kind="stable")]
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

    @property
    def combined(self) -> torch.Tensor:
        """``(B,)`` ``(mean_p LeRF_p - mean_p MoRF_p) / 2``: pytorch-grad-cam's
        ``ROADCombined`` (the mean of LeRF's and minus MoRF's confidence change, in which
        ``p_c(x)`` cancels); higher is better."""
        return (self.lerf.mean(dim=1) - self.morf.mean(dim=1)) / 2


def check_percentages(percentages: object, name: str = "percentages") -> tuple[float, ...]:
    """ROAD's percentages checked: a non-empty sequence of finite numbers in ``(0, 100)``
    (``name`` is what the error calls them: ``"--road-percentages"`` on the command line).

    Examples:
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
    checked = tuple(common.check_number(p, f"each of {name}") for p in percentages)
    if not checked or any(not 0 < p < 100 for p in checked):
        raise ValueError(message)
    return checked


def road(model: nn.Module, inputs: torch.Tensor, maps: torch.Tensor, targets: object, *,
         percentages: Sequence[float] = (10, 30, 50, 70, 90), noise_std: float = 0.01,
         seed: int = 0, batch_size: int = 64, progress: Progress = None,
         probability: str = "softmax") -> RoadResult:
    """ROAD, RemOve And Debias (Rong et al., ICML 2022).

    For every percentage ``p``, the ``k = round(p / 100 * H * W)`` pixels (halves up, at
    most ``H * W - 1`` so that one pixel is kept) with the highest saliency (MoRF, most
    relevant first) or the lowest (LeRF, least relevant first) are removed and filled in by
    :func:`noisy_linear_imputation`; the result is ``p_c`` of the imputed image (the
    class's probability by the model's head, ``probability``: its softmax by default). Ranking:
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
        probability: how ``p_c`` is read from the model's output
            (:data:`~axiomcam.outputs.PROBABILITY_RULES`): ``"softmax"`` over the classes
            (default), ``"sigmoid"`` of the class's own logit (multi-label or binary
            heads), or ``"output"`` (the model returns probabilities).

    Returns:
        A :class:`RoadResult`.

    Raises:
        TypeError / ValueError: on bad model, inputs, maps, targets, percentages,
            noise_std, seed or batch_size.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from axiomcam.metrics import road
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))  # a linear classifier
        >>> result = road(model, torch.rand(2, 3, 8, 8), torch.rand(2, 8, 8), 1,
        ...               percentages=(25, 75))
        >>> result.percentages, result.morf.shape, result.lerf.shape
        ((25.0, 75.0), torch.Size([2, 2]), torch.Size([2, 2]))
    """
    percentages = check_percentages(percentages)
    noise_std = _checked_noise_std(noise_std)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    inputs, maps, targets = common.check_faithfulness_inputs(model, inputs, maps, targets,
                                                             batch_size, probability)
    batch, channels, height, width = inputs.shape
    pixels = height * width
    counts = [min(common.pixel_count(p, pixels), pixels - 1) for p in percentages]
    rank = common.saliency_rank(maps)
    generator = torch.Generator().manual_seed(seed)
    per_image = 2 * len(percentages)  # item order: image, then MoRF / LeRF, then percentage
    original = common.class_probabilities(model, inputs, targets, batch_size, progress,
                                          description="original", probability=probability)

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

    scores = common.chunked_probabilities(model, batch * per_image, imputed, batch_size,
                                          progress, "road", inputs.device, probability)
    scores = scores.view(batch, 2, len(percentages))
    return RoadResult(percentages=percentages, original=original, morf=scores[:, 0],
                      lerf=scores[:, 1])
