"""ROAD against hand-computed values and dense reference solves: the noisy linear
imputation (a linear ramp, the border, the noise, errors), its nested-dissection order, and
the MoRF / LeRF removals (:class:`pixel_sum_model.PixelSumModel`)."""

from __future__ import annotations

import math

import pytest
import torch
from pixel_sum_model import (  # float64_default: an autouse fixture, float64 here
    PixelSumModel,
    float64_default,  # noqa: F401
    probability,
    sigmoid,
)

from axiomcam.metrics import noisy_linear_imputation, road
from axiomcam.metrics.removal import dissection_rank

# ---------------------------------------------------------------------------------------
# ROAD: imputation
# ---------------------------------------------------------------------------------------


def test_imputation_reproduces_a_linear_ramp():
    rows, cols = torch.meshgrid(torch.arange(7.0), torch.arange(9.0), indexing="ij")
    ramp = torch.stack([2 * rows + 3 * cols + 1, -cols + 0.5 * rows])
    removed = torch.zeros(7, 9, dtype=torch.bool)
    removed[2:5, 2:6] = True  # an interior block
    removed[1, 7] = removed[5, 1] = True  # isolated interior pixels
    out = noisy_linear_imputation(ramp, removed, noise_std=0.0)
    assert torch.allclose(out, ramp, atol=1e-10)


def test_imputation_equals_a_dense_reference_solve():
    """Random mask touching every border: solve the same equations densely, by loops."""
    generator = torch.Generator().manual_seed(3)
    image = torch.randn(2, 6, 7, generator=generator)
    removed = torch.rand(6, 7, generator=generator) < 0.6
    removed[0, 0] = removed[5, 6] = removed[0, 3] = True
    removed[2, 2] = False
    unknown = removed.flatten().nonzero().flatten().tolist()
    where = {pixel: i for i, pixel in enumerate(unknown)}
    matrix = torch.zeros(len(unknown), len(unknown))
    rhs = torch.zeros(len(unknown), 2)
    for i, pixel in enumerate(unknown):
        row, col = divmod(pixel, 7)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                r, c = row + dr, col + dc
                if (dr, dc) == (0, 0) or not (0 <= r < 6 and 0 <= c < 7):
                    continue
                weight = 1 / 12 if dr and dc else 1 / 6
                matrix[i, i] += weight
                if removed[r, c]:
                    matrix[i, where[r * 7 + c]] -= weight
                else:
                    rhs[i] += weight * image[:, r, c]
    expected = image.clone().view(2, -1)
    expected[:, unknown] = torch.linalg.solve(matrix, rhs).T
    out = noisy_linear_imputation(image, removed, noise_std=0.0)
    assert torch.allclose(out, expected.view_as(image), atol=1e-12)


def test_imputation_border_by_hand():
    image = torch.tensor([[[9.0, 9.0, 1.0], [2.0, 4.0, 8.0], [0.0, 0.0, 0.0]]])
    corner = torch.zeros(3, 3, dtype=torch.bool)
    corner[0, 0] = True
    out = noisy_linear_imputation(image, corner, noise_std=0.0)
    # neighbours (0,1)=9 and (1,0)=2 weigh 1/6, (1,1)=4 weighs 1/12; total 5/12
    assert math.isclose(float(out[0, 0, 0]), (9 / 6 + 2 / 6 + 4 / 12) / (5 / 12))
    # corner and its right neighbour together: two equations, solved by hand
    both = corner.clone()
    both[0, 1] = True
    out = noisy_linear_imputation(image, both, noise_std=0.0)
    # (5/12) a - b/6 = 2/6 + 4/12 ;  (2/3) b - a/6 = 1/6 + 2/12 + 4/6 + 8/12
    rhs0, rhs1 = 2 / 6 + 4 / 12, 1 / 6 + 2 / 12 + 4 / 6 + 8 / 12
    det = (5 / 12) * (2 / 3) - (1 / 6) ** 2
    a = (rhs0 * (2 / 3) + rhs1 / 6) / det
    b = ((5 / 12) * rhs1 + rhs0 / 6) / det
    assert torch.allclose(out[0, 0, :2], torch.tensor([a, b]))
    assert torch.equal(out[0, 1:], image[0, 1:]) and out[0, 0, 2] == 1.0


def test_imputation_noise_only_on_removed_and_seeded():
    image = torch.randn(3, 20, 20, generator=torch.Generator().manual_seed(4))
    removed = torch.rand(20, 20, generator=torch.Generator().manual_seed(5)) < 0.5
    clean = noisy_linear_imputation(image, removed, noise_std=0.0)
    first = noisy_linear_imputation(image, removed, noise_std=0.5,
                                    generator=torch.Generator().manual_seed(7))
    again = noisy_linear_imputation(image, removed, noise_std=0.5,
                                    generator=torch.Generator().manual_seed(7))
    other = noisy_linear_imputation(image, removed, noise_std=0.5,
                                    generator=torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert torch.equal(first[:, ~removed], image[:, ~removed])
    noise = (first - clean)[:, removed]
    assert 0.4 < float(noise.std()) < 0.6 and abs(float(noise.mean())) < 0.1


def test_imputation_nothing_removed_and_errors():
    image = torch.rand(1, 3, 3)
    assert torch.equal(noisy_linear_imputation(image, torch.zeros(3, 3, dtype=torch.bool)),
                       image)
    with pytest.raises(ValueError, match="every pixel"):
        noisy_linear_imputation(image, torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(3, 3\)"):
        noisy_linear_imputation(image, torch.zeros(3, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        noisy_linear_imputation(image, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="-1"):
        noisy_linear_imputation(image, torch.zeros(3, 3, dtype=torch.bool), noise_std=-1)


@pytest.mark.parametrize(("height", "width"), [(1, 9), (7, 3), (13, 29), (224, 224)])
def test_dissection_order_is_a_permutation(height, width):
    rank = dissection_rank(height, width)
    assert sorted(rank.tolist()) == list(range(height * width))


# ---------------------------------------------------------------------------------------
# ROAD: the evaluation
# ---------------------------------------------------------------------------------------


def test_road_removes_the_right_pixels():
    weight = torch.zeros(4, 4)
    weight[:2, :2] = 1.0  # the model only sees the top-left 2x2
    model = PixelSumModel(weight, scale=0.3)
    image = torch.zeros(1, 4, 4)
    image[0, :2, :2] = 5.0
    saliency = torch.zeros(4, 4)
    saliency[:2, :2] = 1.0  # ties inside and outside: row-major order decides
    result = road(model, image[None], saliency[None], 1, percentages=(25, 50),
                  noise_std=0.0)
    assert result.percentages == (25.0, 50.0)
    original = sigmoid(0.3 * 20)
    assert math.isclose(float(result.original[0]), original)
    # MoRF 25% = the 4 top-left pixels, imputed from their zero neighbours
    morf = torch.zeros(4, 4, dtype=torch.bool)
    morf[:2, :2] = True
    expected = probability(model, noisy_linear_imputation(image, morf, noise_std=0.0), 1)
    assert math.isclose(float(result.morf[0, 0]), expected)
    assert float(result.morf[0, 0]) < original - 0.1
    # LeRF removes only pixels the model ignores: the score stays
    assert torch.allclose(result.lerf[0], torch.tensor([original, original]))
    # MoRF 50% = the top-left block and then pixels 2, 3, 6, 7 (ties: row-major order)
    morf50 = morf.clone()
    morf50.view(-1)[[2, 3, 6, 7]] = True
    expected = probability(model, noisy_linear_imputation(image, morf50, noise_std=0.0), 1)
    assert math.isclose(float(result.morf[0, 1]), expected)


def test_road_lerf_matches_bottom_of_ranking():
    torch.manual_seed(6)
    model = PixelSumModel(torch.randn(5, 5), scale=0.4)
    inputs = torch.randn(2, 2, 5, 5)
    maps = torch.rand(2, 5, 5)
    result = road(model, inputs, maps, torch.tensor([1, 0]), percentages=(30, 90),
                  noise_std=0.0)
    for image in range(2):
        order = torch.argsort(maps[image].flatten(), descending=True, stable=True)
        for which, percent in enumerate((30, 90)):
            count = math.floor(percent / 100 * 25 + 0.5)
            for removed_pixels, curve in ((order[:count], result.morf),
                                          (order[25 - count:], result.lerf)):
                removed = torch.zeros(25, dtype=torch.bool)
                removed[removed_pixels] = True
                imputed = noisy_linear_imputation(inputs[image], removed.view(5, 5),
                                                  noise_std=0.0)
                expected = probability(model, imputed, 1 if image == 0 else 0)
                assert math.isclose(float(curve[image, which]), expected, rel_tol=1e-9)


def test_road_seeded_and_independent_of_batch_size():
    torch.manual_seed(7)
    model = PixelSumModel(torch.randn(6, 6), scale=0.5)
    inputs = torch.randn(3, 1, 6, 6)
    maps = torch.rand(3, 6, 6)
    first = road(model, inputs, maps, 1, noise_std=0.2, seed=3)
    again = road(model, inputs, maps, 1, noise_std=0.2, seed=3, batch_size=1)
    other = road(model, inputs, maps, 1, noise_std=0.2, seed=4)
    assert torch.equal(first.morf, again.morf) and torch.equal(first.lerf, again.lerf)
    assert not torch.equal(first.morf, other.morf)
    assert first.morf.shape == first.lerf.shape == (3, 5)
