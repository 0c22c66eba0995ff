"""Relevance mass / rank accuracy, top-k intersection, attribution localisation and the
ROC AUC against a mask: hand computations, slow references (every pair of pixels, every
order of the tied pixels), agreement with Quantus 0.6, and its documented differences."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from quantus_maps import quantus_scores

from axiomcam.metrics import (
    attribution_localisation,
    boxes_to_masks,
    energy_pointing_game,
    mask_auc,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    top_k_intersection,
)


def maps_and_masks(seed: int, batch: int = 4, size: int = 10) -> tuple[torch.Tensor,
                                                                         torch.Tensor]:
    """Continuous maps (no ties, maximum 1) and blob masks of varied sizes."""
    torch.manual_seed(seed)
    maps = torch.rand(batch, size, size)
    maps = maps / maps.flatten(1).amax(dim=1)[:, None, None]
    masks = torch.zeros(batch, size, size, dtype=torch.bool)
    for image in range(batch):
        x0, y0 = torch.randint(0, size // 2, (2,)).tolist()
        masks[image, y0:y0 + 3 + image, x0:x0 + 4] = True
    return maps, masks


def slow_auc(values: list[float], inside: list[bool]) -> float:
    """Every (in, out) pair of pixels: 1 if the pixel in the mask scores higher, 1/2 if
    equal."""
    ins = [v for v, m in zip(values, inside, strict=True) if m]
    outs = [v for v, m in zip(values, inside, strict=True) if not m]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in ins for b in outs)
    return wins / (len(ins) * len(outs))


def slow_top_share(values: list[float], inside: list[bool], k: int) -> float:
    """The share of the k first pixels in the mask, averaged over every order of the
    pixels that sorts the values descending (all the orders of the ties)."""
    shares = []
    for order in itertools.permutations(range(len(values))):
        ranked = [values[i] for i in order]
        if all(a >= b for a, b in itertools.pairwise(ranked)):
            shares.append(sum(inside[i] for i in order[:k]) / k)
    return sum(shares) / len(shares)


def test_hand_computed_values_on_a_two_by_two_map():
    maps = torch.tensor([[[1.0, 0.5], [0.25, 0.0]]])
    masks = torch.tensor([[[False, True], [True, False]]])
    assert relevance_mass_accuracy(maps, masks).item() == pytest.approx(0.75 / 1.75)
    assert relevance_rank_accuracy(maps, masks).item() == pytest.approx(0.5)  # top 2: 1, .5
    assert top_k_intersection(maps, masks, k=3).item() == pytest.approx(2 / 3)
    assert attribution_localisation(maps, masks).item() == pytest.approx(0.75 / 1.75 * 2)
    assert attribution_localisation(maps, masks, weighted=False).item() == pytest.approx(
        0.75 / 1.75)
    # pairs (in, out): (.5, 1) (.5, 0) (.25, 1) (.25, 0) -> 0 + 1 + 0 + 1
    assert mask_auc(maps, masks).item() == pytest.approx(0.5)


def test_ties_count_by_their_chance_of_being_ranked_in():
    maps = torch.tensor([[[0.9, 0.4, 0.4, 0.4, 0.0, 0.4]]])
    masks = torch.tensor([[[False, True, False, False, True, True]]])
    values, inside = maps.flatten().tolist(), masks.flatten().tolist()
    # K = 3: 0.9 is in, two places for four tied 0.4s of which two are in the mask
    assert relevance_rank_accuracy(maps, masks).item() == pytest.approx(
        slow_top_share(values, inside, 3))
    assert relevance_rank_accuracy(maps, masks).item() == pytest.approx((0 + 2 * 2 / 4) / 3)
    for k in range(1, 7):
        assert top_k_intersection(maps, masks, k=k).item() == pytest.approx(
            slow_top_share(values, inside, k))
    assert mask_auc(maps, masks).item() == pytest.approx(slow_auc(values, inside))
    constant = torch.full((1, 1, 6), 0.5)
    assert relevance_rank_accuracy(constant, masks).item() == pytest.approx(0.5)
    assert mask_auc(constant, masks).item() == pytest.approx(0.5)


def test_against_slow_references_on_random_maps_with_ties():
    torch.manual_seed(4)
    maps = (torch.rand(3, 1, 8) * 4).round() / 4          # values 0, .25, ... 1: many ties
    maps[:, 0, 0] = 1.0
    masks = torch.rand(3, 1, 8) < 0.4
    masks[:, 0, 1], masks[:, 0, 2] = True, False
    for image in range(3):
        values, inside = maps[image].flatten().tolist(), masks[image].flatten().tolist()
        assert mask_auc(maps, masks)[image].item() == pytest.approx(slow_auc(values, inside))
        assert relevance_rank_accuracy(maps, masks)[image].item() == pytest.approx(
            slow_top_share(values, inside, sum(inside)))
        assert relevance_mass_accuracy(maps, masks)[image].item() == pytest.approx(
            sum(v for v, m in zip(values, inside, strict=True) if m) / sum(values))


def test_the_box_mask_gives_the_energy_pointing_game():
    maps, _ = maps_and_masks(5)
    boxes = [torch.tensor([[1.0, 2.0, 6.0, 5.0], [4.0, 4.0, 9.0, 10.0]])] * 4
    masks = boxes_to_masks(boxes, 10, 10)
    assert masks[0].sum().item() == 15 + 30 - 1 * 2           # the two boxes overlap 2 px
    assert torch.allclose(relevance_mass_accuracy(maps, masks),
                          energy_pointing_game(maps, boxes))


def maps_and_box_masks(seed: int, batch: int = 4, size: int = 10) -> tuple[torch.Tensor,
                                                                             torch.Tensor]:
    """The maps of :func:`maps_and_masks` and the masks of one or two random boxes per
    image (the ``box_localization`` group's truth), fractional corners included."""
    maps, _ = maps_and_masks(seed, batch, size)
    boxes = []
    for image in range(batch):
        corners = torch.rand(1 + image % 2, 2, 2) * size   # (boxes, corner, x y)
        low, high = corners.amin(dim=1), corners.amax(dim=1) + 1.5
        boxes.append(torch.cat([low, high.clamp(max=size)], dim=1))
    return maps, boxes_to_masks(boxes, size, size)


@pytest.mark.parametrize("truth", [maps_and_masks, maps_and_box_masks],
                         ids=["blob masks", "box masks"])
def test_agreement_with_quantus_on_maps_without_ties(truth):
    quantus = pytest.importorskip("quantus")  # the quantus extra (in dev)
    maps, masks = truth(6)
    assert masks.flatten(1).any(dim=1).all()  # every mask holds a pixel centre
    # float32 maps: Quantus sums them in float32, we in float32 on the same values
    tolerance = {"rtol": 1e-5, "atol": 1e-6}
    pairs = [
        (relevance_mass_accuracy(maps, masks), quantus.RelevanceMassAccuracy, {}),
        (relevance_rank_accuracy(maps, masks), quantus.RelevanceRankAccuracy, {}),
        (top_k_intersection(maps, masks, k=20), quantus.TopKIntersection, {"k": 20}),
        (mask_auc(maps, masks), quantus.AUC, {}),
        (attribution_localisation(maps, masks, weighted=False),
         quantus.AttributionLocalisation, {}),
    ]
    for ours, kind, options in pairs:
        metric = kind(disable_warnings=True, **options)
        theirs = torch.from_numpy(quantus_scores(metric, maps, masks))
        assert torch.allclose(ours.double(), theirs, **tolerance), type(metric).__name__


def test_quantus_weighted_attribution_localisation_is_not_the_papers():
    quantus = pytest.importorskip("quantus")  # the quantus extra (in dev)
    # Kohlbrenner et al.: mu_w = mu * S_tot / S_in. Quantus 0.6 multiplies mu by
    # S_in / x_batch[2:].size, the mask's pixels over the pixels of the batch's images
    # from the third on (a slice of the batch, not of the image): a documented difference
    maps, masks = maps_and_masks(7)
    batch, height, width = maps.shape
    mu = relevance_mass_accuracy(maps, masks).double()
    inside = masks.flatten(1).sum(dim=1).double()
    ours = attribution_localisation(maps, masks).double()
    assert torch.allclose(ours, mu * height * width / inside, rtol=1e-6)
    x_batch = np.zeros((batch, 1, height, width), dtype=np.float32)
    theirs = torch.from_numpy(quantus_scores(
        quantus.AttributionLocalisation(weighted=True, disable_warnings=True), maps, masks,
        x_batch=x_batch))
    assert torch.allclose(theirs, mu * inside / ((batch - 2) * height * width), rtol=1e-5)


def test_quantus_breaks_ties_by_its_sort_order_where_we_average():
    quantus = pytest.importorskip("quantus")  # the quantus extra (in dev)
    # one peak and 15 tied pixels: Quantus ranks the ties in numpy's argsort order (it
    # refuses constant maps); ours counts each tied pixel by its chance, 7 places for 15
    maps = torch.full((1, 4, 4), 0.5)
    maps[0, 0, 0] = 1.0
    masks = torch.zeros(1, 4, 4, dtype=torch.bool)
    masks[0, 2:, :] = True                                  # the last 8 pixels: K = 8
    ours = relevance_rank_accuracy(maps, masks).item()
    assert ours == pytest.approx(7 * 8 / 15 / 8)
    theirs = quantus_scores(quantus.RelevanceRankAccuracy(disable_warnings=True), maps,
                            masks).item()
    order = np.argsort(-maps.flatten().double().numpy())    # what Quantus ranks by
    assert theirs == pytest.approx(masks.flatten().numpy()[order[:8]].mean())
    assert theirs != pytest.approx(ours)


def test_bad_masks_are_refused():
    maps = torch.zeros(2, 3, 3)
    empty = torch.zeros(2, 3, 3, dtype=torch.bool)
    empty[0, 0, 0] = True
    with pytest.raises(ValueError, match=r"the masks of images \[1\] are empty"):
        relevance_mass_accuracy(maps, empty)
    with pytest.raises(ValueError, match=r"masks must have the maps' shape \(2, 3, 3\)"):
        mask_auc(maps, torch.ones(2, 3, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        relevance_rank_accuracy(maps, torch.ones(2, 3, 3))
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 9\].*got 10"):
        top_k_intersection(maps, torch.ones(2, 3, 3, dtype=torch.bool), k=10)


def test_a_full_mask_is_chance_for_the_auc_and_everything_for_the_rest():
    maps, _ = maps_and_masks(8, batch=2)
    full = torch.ones(2, 10, 10, dtype=torch.bool)
    assert mask_auc(maps, full).tolist() == [0.5, 0.5]
    assert torch.allclose(relevance_rank_accuracy(maps, full), torch.ones(2))
    assert torch.allclose(attribution_localisation(maps, full), torch.ones(2))
