"""Faithfulness correlation, monotonicity correlation and IROF against slow reference loops
and hand-computed values (:class:`pixel_sum_model.PixelSumModel`: ``p_1 = sigmoid(sum of
the weighted pixels)``), plus pytorch-grad-cam's confidence change and ROAD combined
as read from our results."""

from __future__ import annotations

import itertools

import pytest
import scipy.stats
import torch
from pixel_sum_model import (  # float64_default: an autouse fixture, float64 here
    PixelSumModel,
    float64_default,  # noqa: F401
    probability,
    sigmoid,
)

from axiomcam.metrics import (
    confidence_change,
    faithfulness_correlation,
    irof,
    monotonicity_correlation,
    pearson_correlation,
    road,
    superpixels,
)


def small_case(seed: int, size: int = 5):
    """A PixelSumModel of random weights, two random images and maps, targets 1 and 0."""
    torch.manual_seed(seed)
    model = PixelSumModel(torch.randn(size, size), scale=0.7)
    return model, torch.randn(2, 2, size, size), torch.rand(2, size, size), torch.tensor([1, 0])


# ---------------------------------------------------------------------------------------
# faithfulness correlation
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [64, 3])
def test_faithfulness_correlation_equals_a_slow_loop(batch_size):
    model, inputs, maps, targets = small_case(0)
    subsets = torch.stack([torch.stack([torch.randperm(25)[:6] for _ in range(9)])
                           for _ in range(2)])
    result = faithfulness_correlation(model, inputs, maps, targets, subsets=subsets,
                                      baseline=-0.5, batch_size=batch_size)
    for image in range(2):
        target = int(targets[image])
        original = probability(model, inputs[image], target)
        sums, drops = [], []
        for subset in subsets[image].tolist():
            perturbed = inputs[image].clone()
            for pixel in subset:
                perturbed[:, pixel // 5, pixel % 5] = -0.5
            drops.append(original - probability(model, perturbed, target))
            sums.append(sum(float(maps[image].flatten()[pixel]) for pixel in subset))
        expected = scipy.stats.pearsonr(sums, drops)[0]
        assert float(result[image]) == pytest.approx(expected, abs=1e-10)


def test_faithfulness_correlation_draws_from_its_seed():
    model, inputs, maps, targets = small_case(1)
    first = faithfulness_correlation(model, inputs, maps, targets, subset_size=5, runs=12,
                                     seed=3)
    again = faithfulness_correlation(model, inputs, maps, targets, subset_size=5, runs=12,
                                     seed=3)
    other = faithfulness_correlation(model, inputs, maps, targets, subset_size=5, runs=12,
                                     seed=4)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert ((first >= -1) & (first <= 1)).all()


def test_a_map_of_the_true_contributions_correlates_strongly():
    """Scale 1e-3: p_1 is nearly linear in the pixels, so the drop is ~ p(1-p) times the
    sum of w_i x_i over the subset; a map of w_i x_i (shifted into [0, 1]) correlates ~1."""
    torch.manual_seed(2)
    weight = torch.randn(6, 6)
    model = PixelSumModel(weight, scale=1e-3)
    inputs = torch.randn(1, 1, 6, 6)
    contribution = weight * inputs[0, 0]
    truth = (contribution - contribution.min()) / (contribution.max() - contribution.min())
    score = faithfulness_correlation(model, inputs, truth[None], 1, subset_size=8, runs=30)
    noise = faithfulness_correlation(model, inputs, torch.rand(1, 6, 6), 1, subset_size=8,
                                     runs=30)
    assert float(score) > 0.999 and float(noise) < 0.9


def test_pearson_correlation_by_hand_and_constant_rows():
    first = torch.tensor([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0], [1.0, 0.0, 2.0]])
    second = torch.tensor([[3.0, 5.0, 7.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    assert pearson_correlation(first, second).tolist() == pytest.approx([1.0, 0.0, 0.0])


def test_faithfulness_correlation_rejects_bad_arguments():
    model, inputs, maps, targets = small_case(3)
    with pytest.raises(ValueError, match="subset_size 26 exceeds the 25 pixels"):
        faithfulness_correlation(model, inputs, maps, targets, subset_size=26)
    with pytest.raises(ValueError, match="runs must be an int >= 2, got 1"):
        faithfulness_correlation(model, inputs, maps, targets, subset_size=3, runs=1)
    with pytest.raises(ValueError, match="outside"):
        faithfulness_correlation(model, inputs, maps, targets,
                                 subsets=torch.full((2, 3, 2), 25))
    with pytest.raises(TypeError, match="integer pixel indices"):
        faithfulness_correlation(model, inputs, maps, targets, subsets=torch.zeros(2, 3, 2))


# ---------------------------------------------------------------------------------------
# monotonicity correlation
# ---------------------------------------------------------------------------------------


def test_monotonicity_correlation_equals_a_slow_loop():
    model, inputs, maps, targets = small_case(4)
    steps, samples = 6, 3  # 25 pixels: groups of 4, 4, 4, 5, 4, 4 (n_s = round(25 s / 6))
    fills = torch.rand(2, steps, samples)
    result = monotonicity_correlation(model, inputs, maps, targets, steps=steps,
                                      fill_values=fills, batch_size=5)
    bounds = [int(25 * s / steps + 0.5) for s in range(steps + 1)]
    for image in range(2):
        target = int(targets[image])
        flat = maps[image].flatten().tolist()
        ascending = sorted(range(25), key=lambda i: (flat[i], i))
        original = probability(model, inputs[image], target)
        relevance, variances = [], []
        for step in range(steps):
            group = ascending[bounds[step]:bounds[step + 1]]
            relevance.append(sum(flat[i] for i in group))
            changes = []
            for sample in range(samples):
                perturbed = inputs[image].clone()
                for pixel in group:
                    perturbed[:, pixel // 5, pixel % 5] = fills[image, step, sample]
                changes.append((probability(model, perturbed, target) - original) ** 2)
            variances.append(sum(changes) / samples)
        expected = scipy.stats.spearmanr(relevance, variances)[0]
        assert float(result[image]) == pytest.approx(expected, abs=1e-12)


def test_monotonicity_is_one_when_relevance_orders_the_effect():
    """One pixel per step, fill 0: the squared change grows with |w_i x_i|, and the map
    |w_i x_i| / max ranks the steps the same way."""
    torch.manual_seed(5)
    weight = torch.randn(3, 3)
    model = PixelSumModel(weight, scale=0.1)
    inputs = torch.randn(1, 1, 3, 3)
    effect = (weight * inputs[0, 0]).abs()
    maps = (effect / effect.max())[None]
    result = monotonicity_correlation(model, inputs, maps, 1, steps=9,
                                      fill_values=torch.zeros(1, 9, 1))
    # sigmoid is monotone but the squared change is not symmetric in the sign of the
    # removed logit: check by hand that the ranking holds, then that rho is 1
    logit = 0.1 * float((weight * inputs[0, 0]).sum())
    changes = [(sigmoid(logit - 0.1 * float(w)) - sigmoid(logit)) ** 2
               for w in (weight * inputs[0, 0]).flatten()]
    assert scipy.stats.spearmanr(effect.flatten(), changes)[0] == pytest.approx(
        float(result[0]))
    assert float(result[0]) > 0.9


def test_monotonicity_draws_and_rejects():
    model, inputs, maps, targets = small_case(6)
    first = monotonicity_correlation(model, inputs, maps, targets, steps=5, samples=2, seed=1)
    again = monotonicity_correlation(model, inputs, maps, targets, steps=5, samples=2, seed=1)
    assert torch.equal(first, again)
    with pytest.raises(ValueError, match="steps 26 exceeds the 25 pixels"):
        monotonicity_correlation(model, inputs, maps, targets, steps=26)
    with pytest.raises(ValueError, match="low <= high"):
        monotonicity_correlation(model, inputs, maps, targets, steps=5,
                                 uniform_range=(1.0, 0.0))
    with pytest.raises(ValueError, match=r"uniform_range must be \(low, high\), got 0.5"):
        monotonicity_correlation(model, inputs, maps, targets, steps=5, uniform_range=0.5)
    with pytest.raises(ValueError, match="fill_values must be a"):
        monotonicity_correlation(model, inputs, maps, targets, steps=5,
                                 fill_values=torch.zeros(2, 4, 1))


# ---------------------------------------------------------------------------------------
# IROF
# ---------------------------------------------------------------------------------------


def test_irof_by_hand_on_quadrants():
    """Four 2x2 superpixels of weights 1, 2, 3, 4 on a ones image: removing them (to 0) in
    the map's order lowers the logit 10 -> 10 - w_k ... -> 0."""
    weight = torch.tensor([[1.0, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]) / 4
    model = PixelSumModel(weight)
    segments = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])[None]
    maps = torch.tensor([[0.9, 0.9, 0.1, 0.1], [0.9, 0.9, 0.1, 0.1],
                         [0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2]])[None]
    result = irof(model, torch.ones(1, 1, 4, 4), maps, 1, segments=segments, baseline=0.0)
    logits = [10.0, 9.0, 6.0, 2.0, 0.0]  # order: segment 0 (w 1), 2 (3), 3 (4), 1 (2)
    curve = [sigmoid(z) / sigmoid(10) for z in logits]
    assert result.curves[0].tolist() == pytest.approx(curve)
    trapezoid = sum((a + b) / 2 for a, b in itertools.pairwise(curve)) / 4
    assert float(result.aoc[0]) == pytest.approx(1 - trapezoid)


def test_irof_mean_baseline_is_each_channels_original_mean():
    model, inputs, maps, targets = small_case(7, size=4)
    segments = (torch.arange(16).view(4, 4) // 5).expand(2, 4, 4)
    result = irof(model, inputs, maps, targets, segments=segments, batch_size=2)
    for image in range(2):
        target = int(targets[image])
        flat = maps[image].flatten()
        means = [float(flat[segments[image].flatten() == s].mean()) for s in range(4)]
        order = sorted(range(4), key=lambda s: (-means[s], s))
        colour = inputs[image].mean(dim=(1, 2))
        perturbed, curve = inputs[image].clone(), [1.0]
        original = probability(model, inputs[image], target)
        for segment in order:
            perturbed[:, segments[image] == segment] = colour[:, None]
            curve.append(probability(model, perturbed, target) / original)
        assert result.curves[image].tolist() == pytest.approx(curve)


def test_superpixels_are_consecutive_labels_of_slic():
    torch.manual_seed(8)
    image = torch.zeros(1, 3, 20, 20)
    image[0, :, :, 10:] = 1.0  # two flat halves: SLIC never joins them
    labels = superpixels(image, n_segments=4)
    assert labels.shape == (1, 20, 20)
    assert sorted(labels.unique().tolist()) == list(range(int(labels.max()) + 1))
    left, right = set(labels[0, :, :10].unique().tolist()), set(labels[0, :, 10:].unique().tolist())
    assert not left & right


def test_irof_rejects_bad_segments_and_baseline():
    model, inputs, maps, targets = small_case(9, size=4)
    with pytest.raises(ValueError, match="segments must be"):
        irof(model, inputs, maps, targets, segments=torch.zeros(2, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="baseline must be 'mean'"):
        irof(model, inputs, maps, targets, baseline="median")


# ---------------------------------------------------------------------------------------
# pytorch-grad-cam's confidence change and ROAD combined, read from our results
# ---------------------------------------------------------------------------------------


def test_confidence_change_difference_by_hand():
    model = PixelSumModel(torch.ones(2, 2))
    result = confidence_change(model, torch.ones(1, 1, 2, 2), torch.full((1, 2, 2), 0.5), 1)
    assert result.change.tolist() == pytest.approx([sigmoid(2) - sigmoid(4)])


def test_road_combined_is_half_lerf_minus_morf():
    model, inputs, maps, targets = small_case(10)
    result = road(model, inputs, maps, targets, percentages=(20, 60), noise_std=0.0)
    expected = [(float(result.lerf[i].mean()) - float(result.morf[i].mean())) / 2
                for i in range(2)]
    assert result.combined.tolist() == pytest.approx(expected)
    # with p_c(x) subtracted from both, as pytorch-grad-cam does, it cancels
    lerf_change = result.lerf - result.original[:, None]
    morf_change = result.morf - result.original[:, None]
    assert torch.allclose(result.combined, (lerf_change.mean(1) - morf_change.mean(1)) / 2)
