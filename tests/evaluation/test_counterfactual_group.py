"""The counterfactual group in a tiny evaluate run: a colour classifier whose class logit
is rewarded by its own colour and penalised by the others, so the counterfactual map of a
colour (the evidence against it) is exactly where the other colours are."""

from __future__ import annotations

import re

import pytest
import torch
from test_runner import BLUE, GREEN, Listed, painted, values
from torch import nn

from axiomcam.data import Sample
from axiomcam.evaluation.runner import evaluate
from axiomcam.evaluation.store import ResultStore
from axiomcam.methods import COUNTERFACTUAL_METHODS
from axiomcam.models import PretrainedModel


def rival_colours() -> PretrainedModel:
    """``z_c = 10 mean(channel c) - 5 sum of the other channels' means``: a 1x1 identity
    convolution, ReLU, global average pooling, a linear layer without bias."""
    convolution = nn.Conv2d(3, 3, 1, bias=False)
    linear = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        convolution.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        linear.weight.copy_(15 * torch.eye(3) - 5 * torch.ones(3, 3))
    model = nn.Sequential(convolution, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          linear).eval()
    return PretrainedModel("rivals", model, None, None, ["red", "green", "blue"], "1",
                           input_size=32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def two_squares() -> Sample:
    """A green square (the label) and a blue one on black."""
    image = painted((0, 0, 0), [(GREEN, 0, 0, 16, 16), (BLUE, 16, 16, 32, 32)])
    boxes = torch.tensor([[0.0, 0.0, 16.0, 16.0], [16.0, 16.0, 32.0, 32.0]])
    return Sample("two", image, 1, boxes, torch.tensor([1, 2]))


def test_the_counterfactual_map_of_green_lies_on_the_blue_square(tmp_path):
    torch.manual_seed(0)
    single = Sample("single", painted((0, 0, 0), [(GREEN, 0, 0, 16, 16)]), 1,
                    torch.tensor([[0.0, 0.0, 16.0, 16.0]]), torch.tensor([1]))
    run = evaluate(rival_colours(), Listed([two_squares(), single]), "gradcam,cam",
                   out_dir=tmp_path, metrics="counterfactual", progress=False,
                   gallery_images=0)
    with ResultStore.open(run.out_dir) as store:
        got = values(store)
    # Grad-CAM's counterfactual weights are -mean(G): -10/hw for green, +5/hw for red and
    # blue, so the map is ReLU(5 (A_red + A_blue) - 10 A_green) / hw: the blue square only
    assert got[("two", "gradcam", "counterfactual_own")] == pytest.approx(0.0, abs=1e-9)
    assert got[("two", "gradcam", "counterfactual_other")] == pytest.approx(1.0)
    assert got[("two", "gradcam", "counterfactual_other_share")] == pytest.approx(1.0)
    # the map's top 10% pixels are blue; filled with the image's mean colour (a quarter
    # green, a quarter blue) they take evidence against green away and add some for it:
    # green's probability rises, a negative drop
    assert got[("two", "gradcam", "counterfactual_removal_drop")] < 0
    # CAM has no counterfactual form, and a one-object image has no other box: no rows
    assert not [key for key in got if key[1] == "cam" or key[0] == "single"]


def test_the_removal_drop_is_the_probability_change_by_hand(tmp_path):
    run = evaluate(rival_colours(), Listed([two_squares()]), "gradcam", out_dir=tmp_path,
                   metrics="counterfactual", progress=False, gallery_images=0)
    with ResultStore.open(run.out_dir) as store:
        got = values(store)
    # by hand: at 32 x 32 (no resize) the blue square is the 16 x 16 lower right; the top
    # 10% (102 of 1024 pixels) are 102 of its pixels, all of equal value (which ones does
    # not change the means), and become the image's mean colour (0, 1/4, 1/4)
    image = torch.zeros(3, 32, 32)
    image[1, :16, :16] = 1.0
    image[2, 16:, 16:] = 1.0
    removed = image.clone()
    rows, columns = torch.nonzero(image[2] > 0, as_tuple=True)
    for row, column in list(zip(rows.tolist(), columns.tolist(), strict=True))[:102]:
        removed[:, row, column] = image.mean(dim=(1, 2))
    weights = 15 * torch.eye(3) - 5 * torch.ones(3, 3)
    before = torch.softmax(weights @ image.mean(dim=(1, 2)), 0)[1]
    after = torch.softmax(weights @ removed.mean(dim=(1, 2)), 0)[1]
    assert got[("two", "gradcam", "counterfactual_removal_drop")] == \
        pytest.approx(float(100 * (before - after) / before), rel=1e-4)


def test_asked_for_with_no_counterfactual_method_it_is_refused_before_anything_is_written(
        tmp_path):
    listed = ", ".join(name for name in COUNTERFACTUAL_METHODS if "_" not in name)
    with pytest.raises(ValueError, match=re.escape(
            f"the counterfactual maps need a method with a counterfactual form ({listed}), "
            "and cam, scorecam have none: add a method")):
        evaluate(rival_colours(), Listed([two_squares()]), "cam,scorecam",
                 out_dir=tmp_path / "run", metrics="counterfactual", progress=False)
    assert not (tmp_path / "run").exists()
