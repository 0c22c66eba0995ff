"""Sparseness, complexity and effective complexity: hand computations on tiny maps, an
independent slow formula for each, and agreement with Quantus 0.6 on the same maps."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from quantus_maps import quantus_scores

from axiomcam.metrics import complexity, effective_complexity, sparseness


def random_maps(seed: int, batch: int = 5, size: int = 9) -> torch.Tensor:
    """Maps in [0, 1] with their maximum at 1 (as Explanation.maps), some zeros."""
    torch.manual_seed(seed)
    maps = torch.rand(batch, size, size) ** 3
    maps[maps < 0.05] = 0.0
    return maps / maps.flatten(1).amax(dim=1)[:, None, None]


def pairwise_gini(values: list[float]) -> float:
    """The Gini index by its pairwise form, sum_ij |a_i - a_j| / (2 n sum a): independent
    of the sorted form the package uses."""
    total = sum(abs(a - b) for a, b in itertools.product(values, values))
    return total / (2 * len(values) * sum(values))


def test_hand_computed_values_of_three_small_maps():
    maps = torch.tensor([[[1.0, 0.0], [0.0, 0.0]],     # one pixel holds everything
                         [[0.5, 0.5], [0.5, 0.5]],     # uniform
                         [[1.0, 0.5], [0.5, 0.0]]])    # mass 2: shares 1/2, 1/4, 1/4, 0
    assert torch.allclose(sparseness(maps), torch.tensor([1 - 1 / 4, 0.0, 3 / 8]))
    # sorted 0, .5, .5, 1: (-3*0 - 1*.5 + 1*.5 + 3*1) / (4 * 2) = 3/8
    assert torch.allclose(complexity(maps), torch.tensor(
        [0.0, math.log(4), -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))]))
    assert effective_complexity(maps).tolist() == [1, 4, 3]


def test_all_zero_maps_count_as_uniform_and_scale_does_not_matter():
    maps = torch.zeros(2, 3, 4)
    assert sparseness(maps).tolist() == [0.0, 0.0]
    assert torch.allclose(complexity(maps), torch.full((2,), math.log(12)))
    assert effective_complexity(maps).tolist() == [0, 0]
    some = random_maps(1, batch=2)
    assert torch.allclose(sparseness(some * 0.3), sparseness(some), atol=1e-6)
    assert torch.allclose(complexity(some * 0.3), complexity(some), atol=1e-6)


def test_against_slow_formulas_on_random_maps():
    maps = random_maps(2)
    for image, map_ in enumerate(maps):
        values = map_.flatten().double().tolist()
        assert sparseness(maps)[image].item() == pytest.approx(pairwise_gini(values), abs=1e-6)
        total = sum(values)
        entropy = -sum(v / total * math.log(v / total) for v in values if v > 0)
        assert complexity(maps)[image].item() == pytest.approx(entropy, abs=1e-5)
        assert effective_complexity(maps, threshold=0.2)[image].item() == sum(
            v > 0.2 for v in values)


def test_agreement_with_quantus_on_the_same_maps():
    quantus = pytest.importorskip("quantus")  # the quantus extra (in dev)
    maps = random_maps(3)
    # Quantus adds 1e-7 to every value before its Gini index, which scales it by
    # sum / (sum + n 1e-7): a relative change below 1e-6 for these maps (sum > 5)
    assert torch.allclose(sparseness(maps).double(), torch.from_numpy(
        quantus_scores(quantus.Sparseness(disable_warnings=True), maps)), rtol=1e-5, atol=0)
    # Quantus computes the entropy in float32 (our maps' dtype), with log(p + 1e-12)
    assert torch.allclose(complexity(maps).double(), torch.from_numpy(
        quantus_scores(quantus.Complexity(disable_warnings=True), maps)), rtol=1e-5, atol=0)
    for threshold in (1e-5, 0.1, 0.5):
        ours = effective_complexity(maps, threshold=threshold)
        theirs = quantus_scores(quantus.EffectiveComplexity(eps=threshold,
                                                             disable_warnings=True), maps)
        assert ours.tolist() == theirs.astype(int).tolist()  # counts: exactly equal


@pytest.mark.parametrize("function", [sparseness, complexity, effective_complexity])
def test_bad_maps_are_refused(function):
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        function(torch.full((1, 2, 2), 2.0))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        function([[0.0]])


def test_bad_threshold_is_refused():
    with pytest.raises(ValueError, match=r"threshold must be a number in \[0, 1\), got 1"):
        effective_complexity(torch.zeros(1, 2, 2), threshold=1)
