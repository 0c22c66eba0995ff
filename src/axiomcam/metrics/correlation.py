"""Faithfulness by correlation and by superpixel removal (the faithfulness metrics of
Quantus): does the score drop where, and as much as, the map says?

- :func:`faithfulness_correlation`: Pearson correlation between the map's sum over random
  pixel subsets and the score drop when those subsets are replaced by a baseline (Bhatt
  et al., 2020);
- :func:`monotonicity_correlation`: Spearman correlation between the relevance of groups
  of pixels and the variance of the score change when they are perturbed (Nguyen &
  Martinez, 2020);
- :func:`irof`: iterative removal of superpixels in decreasing mean relevance, area over
  the normalised score curve (Rieger & Hansen, 2020).

The score is the probability ``p_c`` of the target class by the model's head
(``probability=``: ``"softmax"`` by default, ``"sigmoid"``, ``"output"``), as in every
metric of :mod:`axiomcam.metrics`; perturbations happen in the model's input space
(``0`` is the data set's mean colour for normalised inputs), and a pixel is always
changed in all its channels at once. The random draws come from a CPU
:class:`torch.Generator` seeded by ``seed``, or are given (``subsets=``, ``fill_values=``,
``segments=``) to replay another library's draws. Each function returns per-image values.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> from axiomcam.metrics import faithfulness_correlation, irof, monotonicity_correlation
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ...                       nn.Linear(4, 2))
    >>> inputs, maps = torch.rand(2, 3, 8, 8), torch.rand(2, 8, 8)
    >>> faithfulness_correlation(model, inputs, maps, 0, subset_size=8, runs=5).shape
    torch.Size([2])
    >>> monotonicity_correlation(model, inputs, maps, 0, steps=4, samples=2).shape
    torch.Size([2])
    >>> result = irof(model, inputs, maps, 0, n_segments=4)
    >>> result.aoc.shape, float(result.curves[0][0])
    (torch.Size([2]), 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..methods.maps import safe_divide
from ..support import Progress
from .common import (
    check_faithfulness_inputs,
    check_number,
    chunked_probabilities,
    class_probabilities,
)
from .faithfulness import baseline_images
from .sanity import spearman_correlation

__all__ = [
    "IrofResult",
    "faithfulness_correlation",
    "irof",
    "monotonicity_correlation",
    "pearson_correlation",
    "superpixels",
]


def _check_count(value: object, name: str, low: int = 1) -> int:
    """``value`` checked to be an int ``>= low`` (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return value


def pearson_correlation(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Pearson's correlation of each row of ``first`` ``(B, N)`` with the same row of
    ``second``: ``sum (a - mean a)(b - mean b) / sqrt(sum (a - mean a)^2 sum (b - mean b)^2)``;
    a row whose values are all equal (in either tensor) has no correlation, defined as 0.

    Examples:
        >>> pearson_correlation(torch.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]]),
        ...                     torch.tensor([[2.0, 4.0, 7.0], [1.0, 2.0, 3.0]]))
        tensor([0.9934, 0.0000])
    """
    centred_first = first - first.mean(dim=1, keepdim=True)
    centred_second = second - second.mean(dim=1, keepdim=True)
    covariance = (centred_first * centred_second).sum(dim=1)
    scale = ((centred_first ** 2).sum(dim=1) * (centred_second ** 2).sum(dim=1)).sqrt()
    return safe_divide(covariance, scale).clamp(-1, 1)


def _random_subsets(batch: int, runs: int, pixels: int, size: int,
                    generator: torch.Generator) -> torch.Tensor:
    """``(batch, runs, size)`` pixel indices, each row drawn without replacement."""
    draws = [torch.randperm(pixels, generator=generator)[:size]
             for _ in range(batch * runs)]
    return torch.stack(draws).view(batch, runs, size)


def _check_subsets(subsets: torch.Tensor, batch: int, pixels: int) -> torch.Tensor:
    """Given subsets checked: ``(B, runs, size)`` integer indices in ``[0, H*W)``."""
    if not torch.is_tensor(subsets) or subsets.dim() != 3 or subsets.shape[0] != batch:
        shape = tuple(subsets.shape) if torch.is_tensor(subsets) else type(subsets).__name__
        raise ValueError(f"subsets must be a (B={batch}, runs, size) tensor of pixel "
                         f"indices, got {shape}")
    if subsets.is_floating_point() or subsets.dtype == torch.bool:
        raise TypeError(f"subsets must be integer pixel indices, got dtype {subsets.dtype}")
    if subsets.numel() and (int(subsets.min()) < 0 or int(subsets.max()) >= pixels):
        raise ValueError(f"subsets hold pixel indices outside [0, {pixels})")
    return subsets.long()


def faithfulness_correlation(model: nn.Module, inputs: torch.Tensor, maps: torch.Tensor,
                             targets: object, *, subset_size: int = 224, runs: int = 100,
                             baseline: float | torch.Tensor = 0.0, seed: int = 0,
                             subsets: torch.Tensor | None = None, batch_size: int = 64,
                             progress: Progress = None, probability: str = "softmax"
                             ) -> torch.Tensor:
    """Faithfulness correlation (Bhatt, Weller & Moura, "Evaluating and Aggregating
    Feature-based Model Explanations", IJCAI 2020).

    For ``r = 1 .. runs`` a subset ``S_r`` of ``subset_size`` pixels is drawn uniformly
    without replacement; ``x_r`` is ``x`` with the pixels of ``S_r`` set to ``baseline``.
    The result is the Pearson correlation, over the runs, of ``sum_{i in S_r} M_i`` and
    ``p_c(x) - p_c(x_r)``: ``1`` when the map predicts exactly how much each subset
    matters, ``0`` (also when either series is constant) when it does not.

    Args:
        model: a classifier returning ``(B, num_classes)`` logits.
        inputs: ``(B, C, H, W)`` images, normalised as the model expects.
        maps: ``(B, H, W)`` maps in ``[0, 1]`` at the input's resolution.
        targets: ``(B,)`` class indices (or one int for all images).
        subset_size: pixels per subset, ``1 .. H*W`` (Quantus' default 224).
        runs: subsets per image (``>= 2``; Quantus' default 100).
        baseline: the replaced pixels' value in the model's input space: a number
            (``0``: the data set's mean colour), a ``(C,)`` colour or a tensor
            broadcastable to the inputs (``(B, 1, 1, 1)``: one value per image).
        seed: seeds the subsets' generator.
        subsets: ``(B, runs, subset_size)`` pixel indices (row-major) to use instead of
            drawing them.
        batch_size: images per forward pass.
        progress: a progress bar (``None``: only for many batches) or a callback.
        probability: how ``p_c`` is read from the model's output
            (:data:`~axiomcam.outputs.PROBABILITY_RULES`): ``"softmax"`` over the classes
            (default), ``"sigmoid"`` of the class's own logit (multi-label or binary
            heads), or ``"output"`` (the model returns probabilities).

    Returns:
        ``(B,)`` correlations in ``[-1, 1]``.

    Raises:
        TypeError / ValueError: bad model, inputs, maps, targets, counts, baseline or
            subsets.

    Example: in the module docstring (:mod:`axiomcam.metrics.correlation`).
    """
    inputs, maps, targets = check_faithfulness_inputs(model, inputs, maps, targets, batch_size,
                                                      probability)
    batch, _, height, width = inputs.shape
    pixels = height * width
    if subsets is None:
        _check_count(subset_size, "subset_size")
        if subset_size > pixels:
            raise ValueError(f"subset_size {subset_size} exceeds the {pixels} pixels of an image")
        generator = torch.Generator().manual_seed(_check_count(seed, "seed", 0))
        subsets = _random_subsets(batch, _check_count(runs, "runs", 2), pixels, subset_size,
                                  generator)
    subsets = _check_subsets(subsets, batch, pixels).to(inputs.device)
    runs = subsets.shape[1]
    base = baseline_images(baseline, inputs)

    def replaced(items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = items // runs
        mask = torch.zeros(len(items), pixels, dtype=torch.bool, device=inputs.device)
        mask.scatter_(1, subsets.view(batch * runs, -1)[items], True)
        mask = mask.view(-1, 1, height, width)
        return torch.where(mask, base[images], inputs[images]), targets[images]

    original = class_probabilities(model, inputs, targets, batch_size, progress, "original",
                                   probability=probability)
    perturbed = chunked_probabilities(model, batch * runs, replaced, batch_size, progress,
                                      "faithfulness correlation", inputs.device, probability)
    drops = original[:, None] - perturbed.view(batch, runs)
    sums = maps.flatten(1).gather(1, subsets.flatten(1)).view(batch, runs, -1).sum(-1)
    return pearson_correlation(sums, drops)


def _step_of_pixels(maps: torch.Tensor, steps: int) -> torch.Tensor:
    """``(B, H*W)`` step of every pixel: pixels sorted by increasing relevance (ties:
    row-major index first) and cut into ``steps`` runs of ``round(P / steps)`` pixels."""
    flat = maps.flatten(1)
    pixels = flat.shape[1]
    order = torch.argsort(flat, dim=1, stable=True)
    position = torch.empty_like(order)
    position.scatter_(1, order, torch.arange(pixels, device=flat.device).expand_as(order))
    bounds = torch.tensor([(2 * s * pixels + steps) // (2 * steps) for s in range(1, steps)],
                          device=flat.device)
    return torch.bucketize(position, bounds, right=True)


def monotonicity_correlation(model: nn.Module, inputs: torch.Tensor, maps: torch.Tensor,
                             targets: object, *, steps: int = 32, samples: int = 4,
                             uniform_range: tuple[float, float] = (0.0, 1.0), seed: int = 0,
                             fill_values: torch.Tensor | None = None, batch_size: int = 64,
                             progress: Progress = None, probability: str = "softmax"
                             ) -> torch.Tensor:
    """Monotonicity correlation (Nguyen & Martinez, "On quantitative aspects of model
    interpretability", 2020), on groups of pixels as Quantus' ``features_in_step``.

    The pixels, sorted by increasing relevance (ties: row-major index first), are cut
    into ``steps`` groups ``G_s`` (group ``s`` holds positions ``n_s .. n_{s+1} - 1``,
    ``n_s = round(s P / steps)``). Each group is perturbed ``samples`` times: all its
    pixels (all channels) set to one value ``v ~ U(uniform_range)`` per sample. With
    ``a_s = sum_{i in G_s} M_i`` and ``v_s = mean_samples (p_c(x_s) - p_c(x))^2``, the
    result is Spearman's correlation of ``a`` and ``v`` over the steps (0 when either is
    constant): high when the more relevant groups change the score more. Quantus also
    divides ``v_s`` by ``p_c(x)^2``, one factor per image, which leaves the ranks as they
    are.

    Args:
        model: as in :func:`faithfulness_correlation`.
        inputs: as in :func:`faithfulness_correlation`.
        maps: as in :func:`faithfulness_correlation`.
        targets: as in :func:`faithfulness_correlation`.
        steps: groups of pixels (``2 .. H*W``).
        samples: perturbations per group (``>= 1``).
        uniform_range: ``(low, high)`` of the fill values, in the model's input space
            (Quantus' default ``(0, 1)``).
        seed: seeds the fill values' generator.
        fill_values: ``(B, steps, samples)`` fill values to use instead of drawing them.
        batch_size: as in :func:`faithfulness_correlation`.
        progress: as in :func:`faithfulness_correlation`.
        probability: as in :func:`faithfulness_correlation`.

    Returns:
        ``(B,)`` correlations in ``[-1, 1]``.

    Raises:
        TypeError / ValueError: bad model, inputs, maps, targets, counts, range or fill
            values.

    Example: in the module docstring (:mod:`axiomcam.metrics.correlation`).
    """
    inputs, maps, targets = check_faithfulness_inputs(model, inputs, maps, targets, batch_size,
                                                      probability)
    batch, _, height, width = inputs.shape
    steps = _check_count(steps, "steps", 2)
    if steps > height * width:
        raise ValueError(f"steps {steps} exceeds the {height * width} pixels of an image")
    if fill_values is None:
        if not isinstance(uniform_range, tuple | list) or len(uniform_range) != 2:
            raise ValueError(f"uniform_range must be (low, high), got {uniform_range!r}")
        low, high = (check_number(value, "uniform_range") for value in uniform_range)
        if low > high:
            raise ValueError(f"uniform_range must be (low, high) with low <= high, "
                             f"got {uniform_range!r}")
        generator = torch.Generator().manual_seed(_check_count(seed, "seed", 0))
        shape = (batch, steps, _check_count(samples, "samples"))
        fill_values = low + (high - low) * torch.rand(shape, generator=generator,
                                                      dtype=torch.float64)
    if not torch.is_tensor(fill_values) or fill_values.shape[:2] != (batch, steps) \
            or fill_values.dim() != 3:
        raise ValueError(f"fill_values must be a (B={batch}, steps={steps}, samples) tensor")
    fill_values = fill_values.to(device=inputs.device, dtype=inputs.dtype)
    samples = fill_values.shape[2]
    step_of = _step_of_pixels(maps, steps)
    per_image = steps * samples

    def perturbed(items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images, rest = items // per_image, items % per_image
        mask = (step_of[images] == (rest // samples)[:, None]).view(-1, 1, height, width)
        values = fill_values.view(batch, -1)[images, rest].view(-1, 1, 1, 1)
        return torch.where(mask, values, inputs[images]), targets[images]

    original = class_probabilities(model, inputs, targets, batch_size, progress, "original",
                                   probability=probability)
    scores = chunked_probabilities(model, batch * per_image, perturbed, batch_size, progress,
                                   "monotonicity", inputs.device, probability)
    variances = ((scores.view(batch, steps, samples) - original[:, None, None]) ** 2).mean(2)
    relevance = torch.zeros(batch, steps, dtype=maps.dtype, device=maps.device)
    relevance.scatter_add_(1, step_of, maps.flatten(1))
    return spearman_correlation(relevance, variances)


@dataclass(frozen=True)
class IrofResult:
    """Per-image result of :func:`irof`.

    Attributes:
        aoc: ``(B,)`` area over the normalised curve, ``1 - trapz(curve)`` over ``[0, 1]``.
        curves: per image, ``(n_b + 1,)`` ``p_c`` after removing the ``k`` most relevant
            superpixels divided by ``p_c(x)``, ``k = 0 .. n_b`` (starts at 1).
        segments: ``(B, H, W)`` superpixel labels ``0 .. n_b - 1``.
    """

    aoc: torch.Tensor
    curves: list[torch.Tensor]
    segments: torch.Tensor


def superpixels(inputs: torch.Tensor, n_segments: int = 100) -> torch.Tensor:
    """``(B, H, W)`` SLIC superpixel labels ``0 .. n_b - 1`` of ``inputs`` ``(B, C, H, W)``,
    computed by :func:`skimage.segmentation.slic` with its defaults (compactness 10) on the
    float64 images as given, channels last (what Quantus' IROF does), relabelled so that
    the labels present are consecutive.

    Examples:
        >>> labels = superpixels(torch.rand(1, 3, 16, 16), n_segments=4)
        >>> labels.shape, int(labels.min())
        (torch.Size([1, 16, 16]), 0)
    """
    from skimage.segmentation import slic

    _check_count(n_segments, "n_segments")
    labels = []
    for image in inputs.detach().cpu().to(torch.float64).numpy():
        raw = slic(np.moveaxis(image, 0, -1), n_segments=n_segments, start_label=0)
        labels.append(np.unique(raw, return_inverse=True)[1].reshape(raw.shape))
    return torch.from_numpy(np.stack(labels)).to(inputs.device)


def _segment_rank(maps: torch.Tensor, segments: torch.Tensor, counts: list[int]
                  ) -> torch.Tensor:
    """``(B, H*W)`` position of every pixel's superpixel in decreasing mean relevance
    (ties: lower label first)."""
    flat, labels = maps.flatten(1), segments.flatten(1)
    largest = max(counts)
    sums = torch.zeros(maps.shape[0], largest, dtype=maps.dtype, device=maps.device)
    sizes = torch.zeros_like(sums)
    sums.scatter_add_(1, labels, flat)
    sizes.scatter_add_(1, labels, torch.ones_like(flat))
    means = torch.where(sizes > 0, sums / sizes.clamp(min=1), -torch.inf)
    order = torch.argsort(means, dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(largest, device=maps.device).expand_as(order))
    return rank.gather(1, labels)


def irof(model: nn.Module, inputs: torch.Tensor, maps: torch.Tensor, targets: object, *,
         n_segments: int = 100, segments: torch.Tensor | None = None,
         baseline: float | torch.Tensor | str = "mean", batch_size: int = 64,
         progress: Progress = None, probability: str = "softmax") -> IrofResult:
    """IROF, Iterative Removal Of Features (Rieger & Hansen, "IROF: a low resource
    evaluation metric for explanation methods", ICLR workshop 2020).

    The image is cut into ``n_b`` superpixels (:func:`superpixels`, SLIC), ranked by
    decreasing mean relevance ``mean_{i in S} M_i``. ``f_k = p_c(x_k) / p_c(x)`` where
    ``x_k`` has its ``k`` most relevant superpixels replaced by ``baseline``
    (``k = 0 .. n_b``, ``f_0 = 1``); the result is the area over that curve on a
    ``[0, 1]`` axis, ``AOC = 1 - trapz(f, dx=1 / n_b)``: high when the score falls as soon
    as the relevant superpixels go. (Quantus reports ``n_b - trapz(f_1 .. f_n_b, dx=1)``,
    an unnormalised area whose scale grows with ``n_b``; ``docs/peers.md``.)

    Args:
        model: as in :func:`faithfulness_correlation`.
        inputs: as in :func:`faithfulness_correlation`.
        maps: as in :func:`faithfulness_correlation`.
        targets: as in :func:`faithfulness_correlation`.
        n_segments: SLIC's target number of superpixels.
        segments: ``(B, H, W)`` integer labels ``0 .. n_b - 1`` to use instead of SLIC.
        baseline: ``"mean"``: each channel's mean over the image (Quantus: the mean over
            all channels together, the same for one channel); or a number / tensor as in
            :func:`faithfulness_correlation`.
        batch_size: as in :func:`faithfulness_correlation`.
        progress: as in :func:`faithfulness_correlation`.
        probability: as in :func:`faithfulness_correlation`.

    Returns:
        An :class:`IrofResult`.

    Raises:
        TypeError / ValueError: bad model, inputs, maps, targets, n_segments, segments or
            baseline.

    Example: in the module docstring (:mod:`axiomcam.metrics.correlation`).
    """
    inputs, maps, targets = check_faithfulness_inputs(model, inputs, maps, targets, batch_size,
                                                      probability)
    _, _, height, width = inputs.shape
    if segments is None:
        segments = superpixels(inputs, n_segments)
    if (not torch.is_tensor(segments) or segments.shape != maps.shape
            or segments.is_floating_point() or int(segments.min()) < 0):
        raise ValueError(f"segments must be (B, H, W) = {tuple(maps.shape)} labels >= 0")
    segments = segments.long().to(inputs.device)
    counts = [int(labels.max()) + 1 for labels in segments]
    if isinstance(baseline, str):
        if baseline != "mean":
            raise ValueError(f"baseline must be 'mean', a number or a tensor, got {baseline!r}")
        base = inputs.mean(dim=(2, 3), keepdim=True).expand(inputs.shape)
    else:
        base = baseline_images(baseline, inputs)
    rank = _segment_rank(maps, segments, counts)
    pairs = torch.tensor([(image, k) for image, count in enumerate(counts)
                          for k in range(1, count + 1)], device=inputs.device)

    def removed(items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images, k = pairs[items, 0], pairs[items, 1]
        mask = (rank[images] < k[:, None]).view(-1, 1, height, width)
        return torch.where(mask, base[images], inputs[images]), targets[images]

    original = class_probabilities(model, inputs, targets, batch_size, progress, "original",
                                   probability=probability)
    scores = chunked_probabilities(model, len(pairs), removed, batch_size, progress, "irof",
                                   inputs.device, probability)
    ratios = safe_divide(scores, original[pairs[:, 0]])
    curves = [torch.cat([ratios.new_ones(1), part])
              for part in ratios.split(counts)]
    aoc = torch.stack([1 - torch.trapezoid(curve, dx=1 / (len(curve) - 1))
                       for curve in curves])
    return IrofResult(aoc=aoc, curves=curves, segments=segments)
