"""The perturbation metrics read ``p_c`` by the model's head (``probability=``).

A multi-label head on pooled colours: ``z = W mean_hw(x) + b``, so every perturbed image's
logits, and so ``sigmoid(z_c)`` and ``softmax(z)_c``, can be written down by hand.  Each
metric's value with ``probability="sigmoid"`` must equal that hand computation (or a slow
loop over it) and differ from the softmax value; ``"output"`` on the same network ending
in a ``Sigmoid`` gives the sigmoid values; every forward pass of every metric reads the
rule it was given; bad rules and single logits are refused or read as issue 20 defined.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import axiomcam.metrics.common as common
from axiomcam.metrics import (
    confidence_change,
    deletion_insertion,
    faithfulness_correlation,
    irof,
    monotonicity_correlation,
    road,
    top_removal_drop,
)
from axiomcam.metrics.common import class_probabilities, head_probabilities, pixel_count
from axiomcam.metrics.removal import noisy_linear_imputation

SIDE = 6


def pooled_colours(classes: int = 3) -> nn.Sequential:
    """``z = W mean_hw(x) + b`` in float64, positive weights (masking lowers every logit)
    and biases that keep the probabilities away from 0 and 1."""
    model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, classes))
    with torch.no_grad():
        model[2].weight.copy_(1 + 2 * torch.rand(classes, 3))
        model[2].bias.copy_(-2 + torch.rand(classes))
    return model.double().eval()


def logits_by_hand(model: nn.Sequential, images: torch.Tensor) -> torch.Tensor:
    weight, bias = model[2].weight.detach(), model[2].bias.detach()
    colours = images.sum(dim=(2, 3)) / (images.shape[2] * images.shape[3])
    return colours @ weight.T + bias


def sigmoid_by_hand(model, images, targets) -> torch.Tensor:
    logit = logits_by_hand(model, images).gather(1, targets[:, None]).squeeze(1)
    return 1 / (1 + torch.exp(-logit))


def softmax_by_hand(model, images, targets) -> torch.Tensor:
    exponentials = torch.exp(logits_by_hand(model, images))
    return (exponentials / exponentials.sum(1, keepdim=True)).gather(
        1, targets[:, None]).squeeze(1)


def case(batch: int = 2):
    """A model, images, maps without ties and targets, all float64."""
    model = pooled_colours()
    inputs = torch.rand(batch, 3, SIDE, SIDE, dtype=torch.float64)
    maps = torch.rand(batch, SIDE, SIDE, dtype=torch.float64)
    return model, inputs, maps, torch.tensor([0, 2])[:batch]


def test_average_drop_reads_the_sigmoid_of_the_target_logit():
    torch.manual_seed(0)
    model, inputs, maps, targets = case()
    result = confidence_change(model, inputs, maps, targets, probability="sigmoid")
    original = sigmoid_by_hand(model, inputs, targets)
    masked = sigmoid_by_hand(model, inputs * maps[:, None], targets)
    torch.testing.assert_close(result.original, original)
    torch.testing.assert_close(result.masked, masked)
    torch.testing.assert_close(result.drop, 100 * (original - masked).clamp(min=0) / original)
    assert (result.drop > 1).all()  # masking lowers every logit: a real drop
    softmax = confidence_change(model, inputs, maps, targets)  # the default, unchanged
    soft_original = softmax_by_hand(model, inputs, targets)
    soft_masked = softmax_by_hand(model, inputs * maps[:, None], targets)
    torch.testing.assert_close(softmax.drop, 100 * (soft_original - soft_masked).clamp(min=0)
                               / soft_original)
    assert ((softmax.drop - result.drop).abs() > 1).all()  # the rule matters here


def test_a_deletion_curve_point_is_the_sigmoid_of_the_deleted_image():
    torch.manual_seed(1)
    model, inputs, maps, targets = case()
    steps = 4
    result = deletion_insertion(model, inputs, maps, targets, steps=steps, insertion=False,
                                probability="sigmoid")
    softmax = deletion_insertion(model, inputs, maps, targets, steps=steps, insertion=False)
    for image in range(2):
        order = maps[image].flatten().argsort(descending=True)  # no ties: random maps
        for step in range(steps + 1):
            deleted = inputs[image].clone().view(3, -1)
            deleted[:, order[:round(step * SIDE * SIDE / steps)]] = 0.0
            expected = sigmoid_by_hand(model, deleted.view(1, 3, SIDE, SIDE),
                                       targets[image:image + 1])
            assert float(result.deletion[image, step]) == pytest.approx(float(expected),
                                                                        rel=1e-12)
    torch.testing.assert_close(result.deletion_auc, torch.trapezoid(
        result.deletion, result.fractions, dim=1))
    # the curves cross (the softmax curve hardly moves: every logit falls together), the
    # start and the areas differ
    assert ((result.deletion[:, 0] - softmax.deletion[:, 0]).abs() > 0.1).all()
    assert ((result.deletion_auc - softmax.deletion_auc).abs() > 0.05).all()


def test_a_road_value_is_the_sigmoid_of_the_imputed_image():
    torch.manual_seed(2)
    model, inputs, maps, targets = case()
    result = road(model, inputs, maps, targets, percentages=(50,), noise_std=0.0,
                  probability="sigmoid")
    softmax = road(model, inputs, maps, targets, percentages=(50,), noise_std=0.0)
    count = pixel_count(50, SIDE * SIDE)
    for image in range(2):
        order = maps[image].flatten().argsort(descending=True)
        removed = torch.zeros(SIDE * SIDE, dtype=torch.bool)
        removed[order[:count]] = True  # MoRF: the most relevant half
        imputed = noisy_linear_imputation(inputs[image], removed.view(SIDE, SIDE),
                                          noise_std=0.0)
        expected = sigmoid_by_hand(model, imputed[None], targets[image:image + 1])
        assert float(result.morf[image, 0]) == pytest.approx(float(expected), rel=1e-10)
    assert ((result.morf - softmax.morf).abs() > 0.01).all()


def test_faithfulness_correlation_of_a_tiny_case_by_hand():
    torch.manual_seed(3)
    model, inputs, maps, targets = case(batch=1)
    runs, size = 5, 4
    subsets = torch.stack([torch.randperm(SIDE * SIDE)[:size] for _ in range(runs)])[None]
    result = faithfulness_correlation(model, inputs, maps, targets, subsets=subsets,
                                      probability="sigmoid")
    softmax = faithfulness_correlation(model, inputs, maps, targets, subsets=subsets)
    drops, sums = [], []
    for subset in subsets[0]:
        replaced = inputs[0].clone().view(3, -1)
        replaced[:, subset] = 0.0
        drops.append(sigmoid_by_hand(model, inputs, targets)[0]
                     - sigmoid_by_hand(model, replaced.view(1, 3, SIDE, SIDE), targets)[0])
        sums.append(maps[0].flatten()[subset].sum())
    expected = torch.corrcoef(torch.stack([torch.stack(sums), torch.stack(drops)]))[0, 1]
    assert float(result[0]) == pytest.approx(float(expected), abs=1e-10)
    assert abs(float(result[0]) - float(softmax[0])) > 1e-3


def both_curves(result) -> torch.Tensor:
    return torch.cat([result.deletion, result.insertion], dim=1)


def run_metric(name: str, model: nn.Module, inputs, maps, targets,
               probability: str) -> torch.Tensor:
    """The per-image numbers of one metric, small settings."""
    segments = (torch.arange(SIDE * SIDE) // 9).view(SIDE, SIDE).expand(len(inputs), -1, -1)
    calls = {
        "confidence_change": lambda: confidence_change(
            model, inputs, maps, targets, probability=probability).drop,
        "deletion_insertion": lambda: both_curves(deletion_insertion(
            model, inputs, maps, targets, steps=3, blur_kernel_size=3,
            probability=probability)),
        "top_removal_drop": lambda: top_removal_drop(
            model, inputs, maps, targets, percent=30, probability=probability),
        "road": lambda: road(model, inputs, maps, targets, percentages=(30, 70),
                             noise_std=0.0, probability=probability).morf,
        "faithfulness_correlation": lambda: faithfulness_correlation(
            model, inputs, maps, targets, subset_size=5, runs=4, probability=probability),
        "monotonicity_correlation": lambda: monotonicity_correlation(
            model, inputs, maps, targets, steps=4, samples=2, probability=probability),
        "irof": lambda: irof(model, inputs, maps, targets, segments=segments,
                             probability=probability).aoc,
    }
    return calls[name]()


METRICS = ["confidence_change", "deletion_insertion", "top_removal_drop", "road",
           "faithfulness_correlation", "monotonicity_correlation", "irof"]


@pytest.mark.parametrize("name", METRICS)
def test_every_forward_pass_of_every_metric_reads_the_rule_given(name, monkeypatch):
    torch.manual_seed(4)
    model, inputs, maps, targets = case()
    rules = []

    def spying(outputs, probability="softmax"):
        rules.append((probability, outputs.shape[0]))
        return head_probabilities(outputs, probability)

    monkeypatch.setattr(common, "head_probabilities", spying)
    run_metric(name, model, inputs, maps, targets, "sigmoid")
    # the target check reads one image; then the original and every perturbed image
    assert len(rules) >= 2 and sum(images for _, images in rules) > 2 * len(inputs)
    assert {rule for rule, _ in rules} == {"sigmoid"}


@pytest.mark.parametrize("name", METRICS)
def test_output_rule_on_a_network_ending_in_its_probabilities(name):
    """``"output"`` takes a Sigmoid (Softmax) tail's outputs as they are: the same numbers
    as ``"sigmoid"`` (``"softmax"``) on the network without its tail."""
    torch.manual_seed(5)
    model, inputs, maps, targets = case()
    for rule, tail in (("sigmoid", nn.Sigmoid()), ("softmax", nn.Softmax(dim=1))):
        with_tail = nn.Sequential(model, tail).eval()
        torch.testing.assert_close(run_metric(name, with_tail, inputs, maps, targets, "output"),
                                   run_metric(name, model, inputs, maps, targets, rule))
    with pytest.raises(ValueError, match=r"probability rule 'output'.*not probabilities"):
        run_metric(name, nn.Sequential(model, nn.Linear(3, 3).double()).eval(),
                   10 * inputs, maps, targets, "output")


@pytest.mark.parametrize("name", METRICS)
def test_an_unknown_rule_is_refused_naming_it_and_the_choices(name):
    torch.manual_seed(6)
    model, inputs, maps, targets = case()
    with pytest.raises(ValueError, match=r"unknown probability rule 'logit': one of "
                                         r"'softmax', 'sigmoid', 'output'"):
        run_metric(name, model, inputs, maps, targets, "logit")


def test_class_probabilities_of_each_rule_and_of_a_single_logit():
    torch.manual_seed(7)
    model, inputs, _, targets = case()
    logits = logits_by_hand(model, inputs).gather(1, targets[:, None]).squeeze(1)
    torch.testing.assert_close(class_probabilities(model, inputs, targets,
                                                   probability="sigmoid"),
                               torch.sigmoid(logits))
    torch.testing.assert_close(class_probabilities(model, inputs, targets),
                               softmax_by_hand(model, inputs, targets))
    with pytest.raises(ValueError, match="unknown probability rule 'Sigmoid'"):
        class_probabilities(model, inputs, targets, probability="Sigmoid")
    # one logit z per image: classes 0 (1 - sigmoid(z)) and 1 (sigmoid(z)), as explained
    binary = pooled_colours(classes=1)
    z = logits_by_hand(binary, inputs)[:, 0]
    for target, expected in ((1, torch.sigmoid(z)), (0, 1 - torch.sigmoid(z))):
        chosen = torch.full((2,), target)
        torch.testing.assert_close(class_probabilities(binary, inputs, chosen,
                                                       probability="sigmoid"), expected)
        torch.testing.assert_close(class_probabilities(  # its own Sigmoid: the same
            nn.Sequential(binary, nn.Sigmoid()), inputs, chosen, probability="output"), expected)
    maps = torch.rand(2, SIDE, SIDE, dtype=torch.float64)
    drop = confidence_change(binary, inputs, maps, 1, probability="sigmoid")
    torch.testing.assert_close(drop.original, torch.sigmoid(z))
    with pytest.raises(ValueError, match=r"one logit per image.*probability='sigmoid'"):
        confidence_change(binary, inputs, maps, 1)
    with pytest.raises(ValueError, match="out of range: the model has 2 classes"):
        confidence_change(binary, inputs, maps, 2, probability="sigmoid")
