"""Faithfulness metrics against hand-computed values and slow reference loops.

Most tests use :class:`PixelSumModel`: class 0 has logit 0 and class 1 has logit
``scale * sum_cij weight_ij x_cij + bias``, so ``p_1 = sigmoid(logit)`` can be written down
by hand for any perturbed image.
"""

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
from torchvision.transforms.functional import gaussian_blur

from axiomcam.metrics import confidence_change, deletion_insertion, road, top_removal_drop
from axiomcam.metrics.common import saliency_rank

# ---------------------------------------------------------------------------------------
# confidence change
# ---------------------------------------------------------------------------------------


def test_confidence_change_by_hand():
    model = PixelSumModel(torch.ones(2, 2))
    inputs = torch.stack([torch.ones(1, 2, 2), -torch.ones(1, 2, 2),
                          torch.tensor([[[1.0, 2.0], [0.0, 0.0]]])])
    maps = torch.stack([torch.full((2, 2), 0.5), torch.full((2, 2), 0.5),
                        torch.tensor([[1.0, 0.0], [0.0, 0.0]])])
    result = confidence_change(model, inputs, maps, torch.tensor([1, 1, 0]))
    # image 0: logit 4 -> 2 (Y > O); image 1: -4 -> -2 (O > Y); image 2, class 0: 3 -> 1
    y = [sigmoid(4), sigmoid(-4), 1 - sigmoid(3)]
    o = [sigmoid(2), sigmoid(-2), 1 - sigmoid(1)]
    assert torch.allclose(result.original, torch.tensor(y))
    assert torch.allclose(result.masked, torch.tensor(o))
    expected_drop = [100 * (y[0] - o[0]) / y[0], 0.0, 0.0]
    assert torch.allclose(result.drop, torch.tensor(expected_drop))
    assert result.increase.tolist() == [False, True, True]
    assert result.drop.shape == result.increase.shape == (3,)


def test_confidence_change_zero_probability_is_zero_drop():
    # logit 0 for class 1 and 1e6 for class 0: p_1 underflows to exactly 0
    model = PixelSumModel(torch.ones(2, 2), scale=-1e6)
    result = confidence_change(model, torch.ones(1, 1, 2, 2), torch.ones(1, 2, 2), 1)
    assert float(result.original[0]) == 0
    assert result.drop.tolist() == [0.0] and not torch.isnan(result.drop).any()


# ---------------------------------------------------------------------------------------
# deletion / insertion
# ---------------------------------------------------------------------------------------


def reference_curves(model, image, saliency, target, steps, baseline, start):
    """Slow per-step loop: sort pixels by hand, change them one image at a time."""
    height, width = saliency.shape
    pixels = height * width
    flat = saliency.flatten().tolist()
    order = sorted(range(pixels), key=lambda i: (-flat[i], i))
    deletion, insertion = [], []
    for step in range(steps + 1):
        count = math.floor(step * pixels / steps + 0.5)
        deleted, inserted = image.clone(), start.clone()
        for pixel in order[:count]:
            row, col = divmod(pixel, width)
            deleted[:, row, col] = baseline
            inserted[:, row, col] = image[:, row, col]
        deletion.append(probability(model, deleted, target))
        insertion.append(probability(model, inserted, target))
    return torch.tensor(deletion), torch.tensor(insertion)


@pytest.mark.parametrize(("steps", "batch_size"), [(5, 64), (16, 4), (3, 1)])
def test_deletion_insertion_equal_reference_loop(steps, batch_size):
    torch.manual_seed(0)
    model = PixelSumModel(torch.randn(4, 4), scale=0.7, bias=0.2)
    inputs = torch.randn(3, 2, 4, 4)
    maps = torch.rand(3, 4, 4)
    maps[1] = torch.tensor([0.5, 0.5, 1.0, 0.0] * 4).view(4, 4)  # ties: row-major order
    targets = torch.tensor([1, 0, 1])
    result = deletion_insertion(model, inputs, maps, targets, steps=steps, baseline=-0.3,
                                blur_sigma=1.0, blur_kernel_size=3, batch_size=batch_size)
    start = gaussian_blur(inputs, [3, 3], [1.0, 1.0])
    counts = [math.floor(s * 16 / steps + 0.5) for s in range(steps + 1)]
    assert torch.allclose(result.fractions, torch.tensor(counts) / 16.0)
    assert result.deletion.shape == result.insertion.shape == (3, steps + 1)
    for image in range(3):
        deletion, insertion = reference_curves(model, inputs[image], maps[image],
                                               int(targets[image]), steps, -0.3, start[image])
        assert torch.allclose(result.deletion[image], deletion)
        assert torch.allclose(result.insertion[image], insertion)


def test_deletion_alone_equals_the_full_call_and_reports_each_batch():
    torch.manual_seed(2)
    model = PixelSumModel(torch.randn(4, 4), scale=0.7, bias=0.2)
    inputs, maps, targets = torch.randn(2, 2, 4, 4), torch.rand(2, 4, 4), torch.tensor([0, 1])
    full = deletion_insertion(model, inputs, maps, targets, steps=4, blur_kernel_size=3)
    reports = []
    alone = deletion_insertion(model, inputs, maps, targets, steps=4, blur_kernel_size=3,
                               insertion=False, batch_size=3,
                               progress=lambda *report: reports.append(report))
    assert torch.equal(alone.deletion, full.deletion)
    assert torch.equal(alone.deletion_auc, full.deletion_auc)
    assert alone.insertion is None and alone.insertion_auc is None
    # 2 images x 5 steps in batches of 3: 4 batches, told at the start and after each
    assert reports == [(done, 4, "deletion") for done in range(5)]


def test_deletion_fractions_with_rounding():
    model = PixelSumModel(torch.ones(4, 4))
    result = deletion_insertion(model, torch.rand(1, 1, 4, 4), torch.rand(1, 4, 4), 1,
                                steps=5, blur_kernel_size=3)
    # 16 pixels in 5 steps: 3.2, 6.4, 9.6, 12.8 -> 3, 6, 10, 13
    assert result.fractions.tolist() == [0, 3 / 16, 6 / 16, 10 / 16, 13 / 16, 1]


def test_deletion_insertion_auc_by_hand():
    model = PixelSumModel(torch.ones(2, 2), scale=0.5)
    image = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    saliency = torch.tensor([[0.1, 0.2], [0.9, 0.8]])  # order: 3, 4, 2, 1
    result = deletion_insertion(model, image[None], saliency[None], 1, steps=2,
                                blur_kernel_size=3)
    # deletion to 0: sums 10, 3, 0
    deletion = [sigmoid(5.0), sigmoid(1.5), sigmoid(0.0)]
    assert torch.allclose(result.deletion[0], torch.tensor(deletion))
    expected_auc = 0.5 * (deletion[0] + deletion[1]) / 2 + 0.5 * (deletion[1] + deletion[2]) / 2
    assert math.isclose(float(result.deletion_auc[0]), expected_auc, rel_tol=1e-12)
    # insertion over the blur: the blur keeps the sum of a 2x2 image only approximately,
    # so read the blurred sums and reveal pixels 3 and 4 by hand
    start = gaussian_blur(image[None], [3, 3], [5.0, 5.0])[0, 0]
    half = float(start[0].sum()) + 3.0 + 4.0
    insertion = [sigmoid(0.5 * float(start.sum())), sigmoid(0.5 * half), sigmoid(5.0)]
    assert torch.allclose(result.insertion[0], torch.tensor(insertion))
    expected_auc = 0.25 * (insertion[0] + 2 * insertion[1] + insertion[2])
    assert math.isclose(float(result.insertion_auc[0]), expected_auc, rel_tol=1e-12)


def test_deletion_endpoints_and_baseline_colour():
    torch.manual_seed(1)
    model = PixelSumModel(torch.randn(5, 5), scale=0.5)
    inputs = torch.randn(2, 3, 5, 5)
    colour = torch.tensor([0.5, -1.0, 2.0])
    result = deletion_insertion(model, inputs, torch.rand(2, 5, 5), 1, steps=4,
                                baseline=colour)
    for image in range(2):
        full_baseline = colour[:, None, None].expand(3, 5, 5)
        assert math.isclose(float(result.deletion[image, 0]),
                            probability(model, inputs[image], 1))
        assert math.isclose(float(result.deletion[image, -1]),
                            probability(model, full_baseline, 1))
        assert math.isclose(float(result.insertion[image, -1]),
                            probability(model, inputs[image], 1))


def test_good_map_beats_its_reverse():
    weight = torch.zeros(6, 6)
    weight[:3, :3] = 1.0  # only the top-left 3x3 matters
    model = PixelSumModel(weight, scale=0.5, bias=-2.0)
    torch.manual_seed(2)
    inputs = 1 + torch.rand(2, 1, 6, 6)
    good = torch.zeros(2, 6, 6)
    good[:, :3, :3] = 1.0
    good = good + 0.01 * torch.rand(2, 6, 6)
    good = good / good.amax((1, 2), keepdim=True)
    reverse = 1 - good
    first = deletion_insertion(model, inputs, good, 1, steps=9)
    second = deletion_insertion(model, inputs, reverse, 1, steps=9)
    assert (first.deletion_auc < second.deletion_auc).all()
    assert (first.insertion_auc > second.insertion_auc).all()


def test_saliency_rank_breaks_ties_by_index():
    # 4096 equal values: an unstable sort would scramble them
    maps = torch.zeros(2, 64, 64)
    maps[1, 10:20, 5:9] = 0.5
    rank = saliency_rank(maps)
    assert torch.equal(rank[0], torch.arange(64 * 64))
    block = (torch.arange(10, 20)[:, None] * 64 + torch.arange(5, 9)).flatten()
    assert torch.equal(rank[1, block], torch.arange(40))
    rest = torch.ones(64 * 64, dtype=torch.bool)
    rest[block] = False
    assert torch.equal(rank[1, rest], torch.arange(40, 64 * 64))


# ---------------------------------------------------------------------------------------
# top-p removal
# ---------------------------------------------------------------------------------------


def test_top_removal_drop_by_hand():
    model = PixelSumModel(torch.ones(2, 2), scale=0.5, channel_weight=torch.tensor([1.0, 2.0]))
    image = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 4.0]]])
    saliency = torch.tensor([[0.0, 0.1], [0.7, 0.7]])  # pixels (1,0), (1,1) first
    drop = top_removal_drop(model, image[None], saliency[None], 1, percent=50)
    # channel means 2.5 and 1: 10 + 2 * 4 -> (1 + 2 + 2.5 + 2.5) + 2 * (0 + 0 + 1 + 1) = 12
    # (one mean over both channels, 1.75, would give 6.5 + 2 * 3.5 = 13.5)
    before, after = sigmoid(0.5 * 18), sigmoid(0.5 * 12)
    assert math.isclose(float(drop[0]), (before - after) / before)
    # all pixels -> the mean: the pixel sum and so the score do not change
    assert abs(float(top_removal_drop(model, image[None], saliency[None], 1,
                                      percent=100)[0])) < 1e-12


def test_top_removal_drop_negative_when_confidence_rises():
    model = PixelSumModel(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    image = torch.tensor([[[-4.0, 0.0], [0.0, 0.0]]])  # mean -1 replaces -4 at (0,0)
    drop = top_removal_drop(model, image[None], torch.tensor([[[1.0, 0.0], [0.0, 0.0]]]),
                            1, percent=25)
    assert math.isclose(float(drop[0]), (sigmoid(-4) - sigmoid(-1)) / sigmoid(-4))


# ---------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------

ALL_METRICS = [confidence_change, deletion_insertion, road, top_removal_drop]


@pytest.mark.parametrize("metric", ALL_METRICS)
def test_bad_maps_and_targets(metric):
    model = PixelSumModel(torch.ones(5, 5))
    inputs = torch.rand(2, 1, 5, 5)
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(5, 5\)"):
        metric(model, inputs, torch.rand(2, 4, 4), 1)
    nan_maps = torch.rand(2, 5, 5)
    nan_maps[1, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        metric(model, inputs, nan_maps, 1)
    with pytest.raises(ValueError, match="3 targets for a batch of 2"):
        metric(model, inputs, torch.rand(2, 5, 5), torch.tensor([1, 0, 1]))
    with pytest.raises(ValueError, match="target class 2"):
        metric(model, inputs, torch.rand(2, 5, 5), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="batch_size"):
        metric(model, inputs, torch.rand(2, 5, 5), 1, batch_size=0)


def test_bad_parameters():
    model = PixelSumModel(torch.ones(4, 4))
    inputs, maps = torch.rand(1, 1, 4, 4), torch.rand(1, 4, 4)
    for steps in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match=f"steps.*{steps!r}"):
            deletion_insertion(model, inputs, maps, 1, steps=steps)
    with pytest.raises(ValueError, match="baseline"):
        deletion_insertion(model, inputs, maps, 1, baseline=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="blur_kernel_size"):
        deletion_insertion(model, inputs, maps, 1, blur_kernel_size=4)
    for percentages in ((0,), (100,), (), (50, 120), 50, (float("nan"),)):
        with pytest.raises(ValueError, match="percentage"):
            road(model, inputs, maps, 1, percentages=percentages)
    with pytest.raises(ValueError, match="noise_std"):
        road(model, inputs, maps, 1, noise_std=-0.1)
    for percent in (0, 100.5, -3):
        with pytest.raises(ValueError, match=f"percent.*{percent!r}"):
            top_removal_drop(model, inputs, maps, 1, percent=percent)
