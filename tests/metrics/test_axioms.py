"""XGrad-CAM's axioms: closed forms on hand-made heads, Euler's theorem, slow references."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import axiomcam
from axiomcam.metrics.axioms import (
    axiom_errors,
    conservation_error,
    measure_axioms,
    probe_layer,
    sensitivity_correlation,
    sensitivity_error,
)

# CAM needs a GAP + linear head: it is checked on one below (GapLinear)
CHANNEL_WEIGHT_METHODS = ["gradcam", "gradcam++", "xgradcam", "ablationcam",
                          "ablationcam:activation", "scorecam"]


class TwoStageNet(nn.Module):
    """``stem`` (conv + ReLU: non-negative, nothing bypasses it) then a ReLU / max-pool /
    linear head; with ``head_bias=False`` the score is positively homogeneous of degree 1
    in the stem's output."""

    def __init__(self, head_bias: bool) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(
            nn.Conv2d(6, 5, 1, bias=head_bias), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(5, 4, 3, padding=1, bias=head_bias), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3, bias=head_bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stem(x))


def _net(head_bias: bool, seed: int = 0) -> TwoStageNet:
    torch.manual_seed(seed)
    net = TwoStageNet(head_bias).double().eval()
    if head_bias:
        with torch.no_grad():  # biases large enough to matter
            for module in net.head:
                if getattr(module, "bias", None) is not None:
                    module.bias.uniform_(-0.5, 0.5)
    return net


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(3, 3, 8, 10, generator=torch.Generator().manual_seed(1)).double()


# --------------------------------------------------------------------- bias-free head


@pytest.fixture(scope="module")
def bias_free_errors(images):
    net = _net(head_bias=False)
    with warnings.catch_warnings():  # a method's map may be all negative for an image
        warnings.simplefilter("ignore", axiomcam.AxiomCamWarning)
        return measure_axioms(net, images, CHANNEL_WEIGHT_METHODS, "stem", targets=[0, 1, 2])


def test_xgradcam_conserves_exactly_on_a_bias_free_relu_head(bias_free_errors):
    errors = bias_free_errors["xgradcam"]
    assert errors.bias_share.max() < 1e-10  # Euler: y = sum G A exactly
    assert errors.conservation_error.max() < 1e-5
    assert (errors.score.abs() > 1e-3).all()  # not a vacuous 0 = 0


def test_activation_form_ablationcam_is_sensitivity_exact(bias_free_errors):
    errors = bias_free_errors["ablationcam:activation"]
    assert errors.sensitivity_error.max() < 1e-5
    assert errors.sensitivity_correlation.min() > 1 - 1e-9


def test_gradcam_does_not_conserve_where_gradients_vary_over_positions(bias_free_errors):
    # the max-pool and 3x3 conv make G vary over positions: Grad-CAM's mean-gradient
    # weights then lose part of the score, XGrad-CAM's do not
    gradcam = bias_free_errors["gradcam"].conservation_error
    xgradcam = bias_free_errors["xgradcam"].conservation_error
    assert (gradcam > 1e-3).all()
    assert (gradcam > 100 * xgradcam).all()


def test_bias_share_is_the_same_for_every_method(bias_free_errors):
    shares = torch.stack([errors.bias_share for errors in bias_free_errors.values()])
    assert torch.equal(shares.amin(0), shares.amax(0))


# ------------------------------------------------------------------------- with biases


def _bias_contribution(net: TwoStageNet, image: torch.Tensor, target: int) -> float:
    """``sum_b (dy/db) b`` over the head's biases, by autograd on the head alone."""
    activation = net.stem(image[None]).detach()
    biases = [m.bias for m in net.head if getattr(m, "bias", None) is not None]
    score = net.head(activation)[0, target]
    gradients = torch.autograd.grad(score, biases)
    return float(sum((g * b.detach()).sum() for g, b in zip(gradients, biases, strict=True)))


def test_with_biases_the_conservation_residual_is_the_bias_contribution(images):
    net = _net(head_bias=True, seed=3)
    targets = [2, 0, 1]
    probe = probe_layer(net, images, targets, "stem")
    errors = axiom_errors(probe, axiomcam.explain(net, images, "xgradcam", "stem", targets))
    for image, target in enumerate(targets):
        bias_part = _bias_contribution(net, images[image], target)
        score = float(probe.scores[image])
        assert abs(bias_part) > 1e-3 * abs(score)  # the biases matter in this network
        # Euler's theorem in (A, biases): y = sum G A + sum (dy/db) b
        assert float(probe.gradient_activation_sum[image]) == pytest.approx(
            score - bias_part, rel=1e-9, abs=1e-12)
        assert float(errors.bias_share[image]) == pytest.approx(
            abs(bias_part) / abs(score), rel=1e-8)
    # XGrad-CAM conserves exactly the part that is not bias: its error *is* the bias share
    torch.testing.assert_close(errors.conservation_error, errors.bias_share, rtol=1e-8,
                               atol=1e-12)


def test_ablated_scores_match_a_slow_per_channel_loop(images):
    net = _net(head_bias=True, seed=4)
    probe = probe_layer(net, images, [1, 1, 0], "stem", batch_size=4)  # 6 channels, 2 chunks
    for image, target in enumerate([1, 1, 0]):
        for channel in range(6):
            def zero_channel(module, args, output, channel=channel):
                output = output.clone()
                output[:, channel] = 0
                return output

            handle = net.stem.register_forward_hook(zero_channel)
            try:
                with torch.no_grad():
                    expected = net(images[image:image + 1])[0, target]
            finally:
                handle.remove()
            assert float(probe.ablated_scores[image, channel]) == pytest.approx(
                float(expected), rel=1e-10, abs=1e-12)


# -------------------------------------------------------- a GAP + linear head, by hand


class GapLinear(nn.Module):
    """The input *is* the layer's output ``A`` (``identity``), then GAP and a linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.identity = nn.Identity()
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 3.0]]))
            self.fc.bias.copy_(torch.tensor([0.5, -1.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.identity(x).mean((2, 3)))


# A: channel 0 = [[1, 2], [3, 4]] (sum 10, mean 2.5), channel 1 = [[0, 1], [1, 0]] (sum 2)
ACTIVATION = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [1.0, 0.0]]]])
# class 0: y = 1 * 2.5 - 2 * 0.5 + 0.5 = 2.0;  G^k = W[0, k] / 4 = (0.25, -0.5)
# dS_0 = 1 * 2.5 = 2.5 and dS_1 = -2 * 0.5 = -1 (GAP + linear: removing a channel removes
# exactly its term)


@pytest.mark.parametrize("method", ["cam", "gradcam", "xgradcam", "ablationcam:activation"])
def test_gap_linear_head_by_hand(method):
    # all four have w = (0.25, -0.5) here: map sum = 0.25 * 10 - 0.5 * 2 = 1.5, the score
    # without its bias 0.5; contributions w_k sum A^k = (2.5, -1) = dS exactly
    errors = measure_axioms(GapLinear(), ACTIVATION, [method], "identity", targets=0)[method]
    assert errors.score.tolist() == pytest.approx([2.0])
    assert errors.map_sum.tolist() == pytest.approx([1.5])
    assert errors.conservation_error.tolist() == pytest.approx([0.25])
    assert errors.bias_share.tolist() == pytest.approx([0.25])
    assert errors.sensitivity_error.tolist() == pytest.approx([0.0], abs=1e-7)
    assert errors.sensitivity_correlation.tolist() == pytest.approx([1.0])


def test_score_form_ablationcam_by_hand():
    # w = dS / y = (1.25, -0.5): map sum 1.25 * 10 - 0.5 * 2 = 11.5, CE = |2 - 11.5| / 2;
    # contributions (12.5, -1): SE = (|2.5 - 12.5| + |-1 + 1|) / (2.5 + 1)
    errors = measure_axioms(GapLinear(), ACTIVATION, ["ablationcam"], "identity",
                            targets=0)["ablationcam"]
    assert errors.map_sum.tolist() == pytest.approx([11.5])
    assert errors.conservation_error.tolist() == pytest.approx([4.75])
    assert errors.sensitivity_error.tolist() == pytest.approx([10 / 3.5])


# ----------------------------------------------------------------- the plain formulas


def test_formulas_by_hand_and_degenerate_cases():
    assert conservation_error(torch.tensor([-4.0]), torch.tensor([-5.0])).tolist() == [0.25]
    assert conservation_error(torch.tensor([0.0]), torch.tensor([-0.5])).tolist() == [0.5]
    drops = torch.tensor([[2.0, -1.0, 1.0], [0.0, 0.0, 0.0]])
    contributions = torch.tensor([[1.0, -1.0, 1.0], [0.5, 0.0, -0.25]])
    assert sensitivity_error(drops, contributions).tolist() == pytest.approx([0.25, 0.75])
    correlation = sensitivity_correlation(drops, contributions)
    assert correlation[1] == 0  # constant dS: defined as 0, not NaN
    # Pearson by hand for row 0: dS - mean = (4/3, -5/3, 1/3); c - mean = (2/3, -4/3, 2/3)
    by_hand = (8 / 9 + 20 / 9 + 2 / 9) / ((42 / 9) ** 0.5 * (24 / 9) ** 0.5)
    assert float(correlation[0]) == pytest.approx(by_hand)


# ----------------------------------------------------------------------------- errors


def test_methods_without_channel_weights_are_refused_before_any_work(images):
    net = _net(head_bias=False)
    with pytest.raises(ValueError, match=r"'layercam' has no channel weights.*xgradcam"):
        measure_axioms(net, images, ["xgradcam", "layercam"], "stem")
    probe = probe_layer(net, images, 0, "stem")
    with pytest.raises(ValueError, match="'hirescam' has no channel weights"):
        axiom_errors(probe, axiomcam.explain(net, images, "hirescam", "stem", 0))
    with pytest.raises(ValueError, match="unknown method 'xgradkam'"):
        measure_axioms(net, images, ["xgradkam"], "stem")


def test_mismatched_probe_and_explanation_are_refused(images):
    net = _net(head_bias=False)
    probe = probe_layer(net, images, 0, "stem")
    with pytest.raises(ValueError, match=r"classes \[1, 1, 1\] but the probe \[0, 0, 0\]"):
        axiom_errors(probe, axiomcam.explain(net, images, "xgradcam", "stem", 1))
    with pytest.raises(ValueError, match=r"layer 'head\.0'"):
        axiom_errors(probe, axiomcam.explain(net, images, "xgradcam", "head.0", 0))
    with pytest.raises(ValueError, match="one target per image"):
        probe_layer(net, images, torch.zeros(3, 2, dtype=torch.long), "stem")
    with pytest.raises(TypeError, match="Explanation"):
        axiom_errors(probe, {"maps": None})


def test_probe_leaves_the_model_untouched(images):
    net = _net(head_bias=True)
    net.train()
    before = {name: value.clone() for name, value in net.state_dict().items()}
    probe_layer(net, images, None, "stem")
    assert net.training and all(m.training for m in net.modules())
    assert all(p.grad is None for p in net.parameters())
    for name, value in net.state_dict().items():
        assert torch.equal(value, before[name]), name
