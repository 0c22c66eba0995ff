"""Sanity checks: Spearman's rank correlation against scipy (with ties), and the cascading
randomization test against a slow step-by-step reference on tiny networks."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from scipy import stats
from torch import nn

import axiomcam
from axiomcam.metrics.sanity import (
    SanityCheck,
    cascading_randomization,
    default_randomization_layers,
    spearman_correlation,
)

# ------------------------------------------------------------------- spearman_correlation


def _scipy_rows(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    return torch.tensor([stats.spearmanr(a.numpy(), b.numpy()).statistic
                         for a, b in zip(first.double(), second.double(), strict=True)])


def test_spearman_matches_scipy_with_many_ties():
    generator = torch.Generator().manual_seed(0)
    # few distinct values: long runs of ties, and ReLU-like zeros
    first = torch.randint(0, 5, (8, 60), generator=generator).float()
    second = torch.relu(torch.randint(-4, 4, (8, 60), generator=generator).float())
    second[0] = first[0] * 2 + 1                          # a monotone relation: rho = 1
    second[1] = -first[1]                                  # reversed: rho = -1
    result = spearman_correlation(first, second)
    assert result.shape == (8,)
    assert result.dtype == torch.float32
    assert torch.allclose(result.double(), _scipy_rows(first, second), atol=1e-6)
    assert result[0] == pytest.approx(1.0) and result[1] == pytest.approx(-1.0)


def test_spearman_matches_scipy_without_ties_and_with_ties_at_both_ends():
    generator = torch.Generator().manual_seed(1)
    first = torch.rand(5, 33, generator=generator, dtype=torch.float64)
    second = torch.rand(5, 33, generator=generator, dtype=torch.float64)
    first[2, :4] = first[2].min()                          # tied at the bottom
    first[3, -5:] = 2.0                                     # tied at the top (not the end)
    second[4] = torch.where(second[4] < 0.5, 0.0, 1.0)      # only two values
    result = spearman_correlation(first, second)
    assert result.dtype == torch.float64
    assert torch.allclose(result, _scipy_rows(first, second), atol=1e-12)


def test_spearman_by_hand_with_average_ranks():
    # [0, 0, 5] has ranks [1.5, 1.5, 3]; against [1, 2, 3]: 1.5 / sqrt(1.5 * 2)
    result = spearman_correlation(torch.tensor([[0.0, 0.0, 5.0]]), torch.tensor([[1, 2, 3]]))
    assert result.item() == pytest.approx(1.5 / 3 ** 0.5)


def test_spearman_constant_rows_are_zero_and_maps_are_flattened():
    first = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0]])
    second = torch.tensor([[0.0, 1.0, 2.0, 3.0], [7.0, 7.0, 7.0, 7.0], [0.0, 0.0, 0.0, 0.0]])
    assert spearman_correlation(first, second).tolist() == [0.0, 0.0, 0.0]
    assert spearman_correlation(torch.ones(2, 1), torch.ones(2, 1)).tolist() == [0.0, 0.0]
    maps = torch.rand(3, 4, 5)
    others = torch.rand(3, 4, 5)
    assert torch.equal(spearman_correlation(maps, others),
                       spearman_correlation(maps.flatten(1), others.flatten(1)))


def test_spearman_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        spearman_correlation(torch.rand(2, 5), torch.rand(2, 6))
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        spearman_correlation(torch.rand(5), torch.rand(5))
    with pytest.raises(ValueError, match="NaN"):
        spearman_correlation(torch.tensor([[1.0, float("nan")]]), torch.rand(1, 2))
    with pytest.raises(TypeError, match="Tensor"):
        spearman_correlation([[1.0, 2.0]], torch.rand(1, 2))


# --------------------------------------------------------------- cascading randomization


class TinyNet(nn.Module):
    """conv + BN + ReLU stem, two convs kept in a ModuleList (run in reverse of their
    list order), a head whose parameters sit in one child, a scale without
    ``reset_parameters`` and a layer that never runs."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU())
        self.blocks = nn.ModuleList([nn.Conv2d(6, 6, 3, padding=1),
                                     nn.Conv2d(6, 6, 3, padding=1)])
        self.scale = ChannelScale(6)
        self.act = nn.ReLU()
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4))
        self.unused = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.act(self.blocks[1](x))
        x = self.act(self.scale(self.blocks[0](x)))
        return self.head(x)


class ChannelScale(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.linspace(0.5, 2.0, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight[:, None, None]


TINY_ORDER = ("head", "scale", "blocks.0", "blocks.1", "stem.1", "stem.0")


@pytest.fixture(scope="module")
def tiny() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(123)
    model = TinyNet()
    with torch.no_grad():             # non-trivial BatchNorm statistics and affine values
        model.stem[1].running_mean.uniform_(-0.2, 0.2)
        model.stem[1].running_var.uniform_(0.5, 1.5)
        model.stem[1].weight.uniform_(0.5, 1.5)
    images = torch.rand(3, 3, 12, 16, generator=torch.Generator().manual_seed(5))
    return model.eval(), images


def test_default_layers_of_a_tiny_net_follow_the_first_run_reversed(tiny):
    model, images = tiny
    # stem has two parameterised children (expanded); head has one (kept whole); blocks
    # run in reverse list order; ReLUs have no parameters; `unused` never runs
    assert default_randomization_layers(model, images) == TINY_ORDER


def test_default_layers_of_mobilenet_v2():
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(num_classes=10)
    layers = default_randomization_layers(model, torch.rand(1, 3, 64, 64))
    assert layers == ("classifier", *(f"features.{i}" for i in range(18, -1, -1)))


def _slow_reference(model: nn.Module, images: torch.Tensor, method: str, layer: str,
                    steps: tuple[str, ...], seed: int) -> torch.Tensor:
    """Step by step, on a copy: reset each module (shuffling parameters of modules without
    reset_parameters), explain the original classes, correlate with scipy."""
    original = axiomcam.explain(model, images, method=method, target_layer=layer)
    randomized = copy.deepcopy(model)
    modules = dict(randomized.named_modules())
    columns = []
    for step, name in enumerate(steps):
        state = torch.get_rng_state()
        torch.manual_seed(seed + step)
        for module in modules[name].modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            else:
                with torch.no_grad():
                    for parameter in module.parameters(recurse=False):
                        shuffled = parameter.flatten()[torch.randperm(parameter.numel())]
                        parameter.copy_(shuffled.view_as(parameter))
        torch.set_rng_state(state)
        after = axiomcam.explain(randomized, images, method=method, target_layer=layer,
                                 targets=original.targets)
        columns.append(_scipy_rows(original.maps.flatten(1), after.maps.flatten(1)))
    return torch.stack(columns, 1).float()


def test_cascading_randomization_matches_a_slow_reference(tiny):
    model, images = tiny
    check = cascading_randomization(model, images, "gradcam", None, target_layer="blocks.0",
                                    seed=11)
    assert isinstance(check, SanityCheck)
    assert check.layers == TINY_ORDER
    assert check.correlations.shape == (3, len(TINY_ORDER))
    expected = _slow_reference(model, images, "gradcam", "blocks.0", TINY_ORDER, seed=11)
    assert torch.allclose(check.correlations, expected, atol=1e-5)
    # randomising the head (gradients) and the scale (after the target) already change maps
    assert (check.correlations[:, :2] < 0.99).all()


def test_cascading_randomization_leaves_the_model_and_the_global_rng_alone(tiny):
    model, images = tiny
    model.train()
    model.head.eval()                                 # mixed flags must survive
    state = {key: value.clone() for key, value in model.state_dict().items()}
    flags = [module.training for module in model.modules()]
    rng = torch.get_rng_state()
    try:
        cascading_randomization(model, images, "xgradcam", 1, target_layer=model.blocks[0],
                                seed=1)
    finally:
        after_flags = [module.training for module in model.modules()]
        model.eval()
    assert torch.equal(torch.get_rng_state(), rng)
    assert after_flags == flags
    assert state.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_cascading_randomization_is_reproducible_for_a_seed(tiny):
    model, images = tiny
    first = cascading_randomization(model, images, "gradcam", None, seed=3, max_steps=3)
    second = cascading_randomization(model, images, "gradcam", None, seed=3, max_steps=3)
    other = cascading_randomization(model, images, "gradcam", None, seed=5, max_steps=3)
    assert first.layers == second.layers == TINY_ORDER[:3]
    assert torch.equal(first.correlations, second.correlations)
    assert not torch.equal(first.correlations, other.correlations)


def test_a_class_agnostic_method_ignores_layers_after_the_target(tiny):
    model, images = tiny
    # Eigen-CAM reads only the target layer's activations: randomising the head cannot
    # change its maps (correlation 1), randomising the layer itself does
    check = cascading_randomization(model, images, "eigencam", None, target_layer="blocks.0",
                                    layers=["head", "blocks.0"])
    assert check.layers == ("head", "blocks.0")
    assert torch.allclose(check.correlations[:, 0], torch.ones(3))
    assert (check.correlations[:, 1] < 0.99).all()


def test_cascading_randomization_of_mobilenet_v2_starts_at_the_classifier():
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(num_classes=10).eval()
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    check = cascading_randomization(model, images, "gradcam", None, max_steps=2, seed=1)
    assert check.layers == ("classifier", "features.18")
    assert check.correlations.shape == (2, 2)
    assert torch.isfinite(check.correlations).all()
    # Grad-CAM at features.18 is sum_k W[c, k] A^k: a random classifier changes it
    assert (check.correlations[:, 0] < 0.99).all()


def test_cascading_randomization_bad_input(tiny):
    model, images = tiny
    with pytest.raises(ValueError, match=r"'nope', 'blocks\.7'"):
        cascading_randomization(model, images, "gradcam", None, layers=["head", "nope",
                                                                        "blocks.7"])
    with pytest.raises(ValueError, match="empty"):
        cascading_randomization(model, images, "gradcam", None, layers=[])
    with pytest.raises(ValueError, match="more than once"):
        cascading_randomization(model, images, "gradcam", None, layers=["head", "head"])
    with pytest.raises(ValueError, match="no parameters"):
        cascading_randomization(model, images, "gradcam", None, layers=["act"])
    with pytest.raises(ValueError, match="max_steps"):
        cascading_randomization(model, images, "gradcam", None, max_steps=0)
    with pytest.raises(ValueError, match="one map per image"):
        cascading_randomization(model, images, "gradcam", torch.tensor([[0, 1]] * 3),
                                max_steps=1)
    with pytest.raises(TypeError, match="sequence"):
        cascading_randomization(model, images, "gradcam", None, layers="head")
