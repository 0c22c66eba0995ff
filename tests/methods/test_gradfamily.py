"""Grad-CAM element-wise, Shapley-CAM and Finer-CAM (issue 22): each checked against its
definition computed independently here (autograd on the network cut at the layer,
``torch.autograd.functional.hvp``, a brute-force Shapley value over every coalition, a
Python loop choosing Finer-CAM's similar classes), and against pytorch-grad-cam 1.5.7 on
the same small models and inputs (see docs/peers.md, "Grad-CAM element-wise, Shapley-CAM
and Finer-CAM")."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

import axiomcam
from axiomcam.methods import (
    FinerCAM,
    GradCAM,
    GradCAMElementWise,
    ShapleyCAM,
    capture_layer,
    method_info,
)
from axiomcam.targets import ClassContrast, ContrastScore, LabelsAbove, TopClasses

LAYER = "2"  # the second convolution: signed activations, a SiLU after it (H A != 0)


def smooth_cnn(dtype: torch.dtype = torch.float64, classes: int = 7) -> nn.Sequential:
    """A small network whose layers keep the input's size (no resizing in any library) and
    whose part after the target layer is curved (SiLU), so Shapley-CAM's ``H A`` counts."""
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(6, 5, 3, padding=1), nn.SiLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(5, classes)).to(dtype).eval()


def derivatives(model: nn.Sequential, x: torch.Tensor, classes: torch.Tensor):
    """``A``, ``G = dy/dA`` and ``H A`` at layer "2" for one class per image, by autograd
    on the network cut in two (no hooks) and ``torch.autograd.functional.hvp``."""
    activations = model[:3](x).detach()
    rows = torch.arange(x.shape[0])

    def score(a: torch.Tensor) -> torch.Tensor:
        return model[3:](a)[rows, classes].sum()

    leaf = activations.clone().requires_grad_(True)
    gradients, = torch.autograd.grad(score(leaf), leaf)
    _, product = torch.autograd.functional.hvp(score, activations, activations)
    return activations, gradients, product


def inputs(batch: int = 3, size: int = 10, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, dtype=dtype)


# ------------------------------------------------------------------ Grad-CAM element-wise


def test_elementwise_is_the_channel_sum_of_relu_of_g_times_a_and_its_counterfactual():
    torch.manual_seed(0)
    model, x = smooth_cnn(), inputs()
    classes = torch.tensor([1, 4, 6])
    a, g, _ = derivatives(model, x, classes)
    exp = GradCAMElementWise(model, LAYER)(x, classes)
    torch.testing.assert_close(exp.raw, torch.relu(g * a).sum(1), rtol=1e-10, atol=1e-12)
    assert exp.channel_weights is None
    # not HiResCAM: some positions have terms of both signs, which the ReLU keeps apart
    assert (exp.raw - (g * a).sum(1)).abs().max() > 0.1 * exp.raw.abs().max()
    against = GradCAMElementWise(model, LAYER, counterfactual=True)(x, classes)
    torch.testing.assert_close(against.raw, torch.relu(-g * a).sum(1), rtol=1e-10,
                               atol=1e-12)


# ------------------------------------------------------------------------- Shapley-CAM


def test_the_context_hessian_vector_product_is_autograd_functional_hvp():
    torch.manual_seed(1)
    model, x = smooth_cnn(), inputs()
    classes = torch.tensor([0, 2, 5])
    _, g, product = derivatives(model, x, classes)
    context = capture_layer(model, x, classes, LAYER, second_order=True)
    torch.testing.assert_close(context.gradients()[:, 0], g.flatten(2), rtol=1e-10,
                               atol=1e-12)
    torch.testing.assert_close(context.hessian_vector_products()[:, 0], product.flatten(2),
                               rtol=1e-10, atol=1e-12)
    assert product.abs().max() > 1e-3 * g.abs().max()  # the SiLU makes it count
    assert all(p.grad is None for p in model.parameters())
    plain = capture_layer(model, x, classes, LAYER)
    with pytest.raises(ValueError, match="second_order=True"):
        plain.hessian_vector_products()


def test_shapleycam_weights_are_the_mean_of_g_minus_half_h_a_for_every_target():
    torch.manual_seed(2)
    model, x = smooth_cnn(), inputs()
    exp = ShapleyCAM(model, LAYER)(x, TopClasses(2))
    assert exp.raw.shape == (3, 2, 10, 10)
    for column in range(2):
        a, g, product = derivatives(model, x, exp.logits.topk(2).indices[:, column])
        weights = (g - 0.5 * product).mean((2, 3))
        torch.testing.assert_close(exp.channel_weights[:, column], weights, rtol=1e-10,
                                   atol=1e-12)
        torch.testing.assert_close(exp.raw[:, column],
                                   (weights[:, :, None, None] * a).sum(1), rtol=1e-10,
                                   atol=1e-12)
    # second order matters here: not Grad-CAM's weights
    grad = GradCAM(model, LAYER)(x, TopClasses(2))
    assert ((grad.channel_weights - exp.channel_weights).abs().max()
            > 0.01 * exp.channel_weights.abs().max())
    against = ShapleyCAM(model, LAYER, counterfactual=True)(x, TopClasses(2))
    torch.testing.assert_close(against.raw, -exp.raw, rtol=1e-10, atol=1e-12)


class QuadraticHead(nn.Module):
    """``y_c = b_c . a + a^T Q_c a / 2``: a head whose second-order expansion is exact."""

    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.linear = nn.Parameter(torch.randn(classes, features, dtype=torch.float64))
        half = torch.randn(classes, features, features, dtype=torch.float64)
        self.quadratic = nn.Parameter(half + half.transpose(1, 2))

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        flat = a.flatten(1)
        return flat @ self.linear.T + 0.5 * torch.einsum("bi,cij,bj->bc", flat,
                                                         self.quadratic, flat)


def brute_force_shapley(head: nn.Module, a: torch.Tensor, target: int) -> torch.Tensor:
    """Every neuron's Shapley value of ``v(S) = y(a with the neurons outside S at 0)``,
    summed over all coalitions."""
    flat = a.flatten()
    n = flat.numel()

    def value(members: tuple[int, ...]) -> float:
        kept = torch.zeros_like(flat)
        kept[list(members)] = flat[list(members)]
        with torch.no_grad():
            return float(head(kept.view(1, *a.shape))[0, target])

    values = torch.zeros(n, dtype=torch.float64)
    for j in range(n):
        others = [i for i in range(n) if i != j]
        for size in range(n):
            share = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for members in itertools.combinations(others, size):
                values[j] += share * (value((*members, j)) - value(members))
    return values.view(a.shape)


def test_shapley_values_of_a_quadratic_head_are_a_times_g_minus_half_h_a():
    """The closed form Shapley-CAM rests on: for a utility exactly quadratic in the layer's
    neurons (baseline 0), neuron j's Shapley value is ``A_j (g - H A / 2)_j``."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 2, 1), QuadraticHead(8, 3)).double().eval()
    x = torch.rand(1, 1, 2, 2, dtype=torch.float64)
    context = capture_layer(model, x, 1, "0", second_order=True)
    a = context.activations
    closed = a * (context.gradients()[:, 0] - 0.5 * context.hessian_vector_products()[:, 0])
    exact = brute_force_shapley(model[1], a.view(2, 2, 2), 1)
    torch.testing.assert_close(closed.view(2, 2, 2), exact, rtol=1e-9, atol=1e-10)
    total = model[1](a.view(1, 2, 2, 2))[0, 1] - model[1](torch.zeros(1, 2, 2, 2,
                                                                        dtype=torch.float64))[0, 1]
    torch.testing.assert_close(exact.sum(), total, rtol=1e-9, atol=1e-10)  # efficiency


# --------------------------------------------------------------------------- Finer-CAM


def contrast_by_hand(logits: torch.Tensor, target: int, comparisons: int,
                     alpha: float) -> tuple[list[int], list[float], float]:
    """One image: the classes nearest ``z_c`` in a Python loop, their normalised softmax
    weights and the contrast score."""
    z = logits.tolist()
    others = sorted((j for j in range(len(z)) if j != target),
                    key=lambda j: abs(z[j] - z[target]))[:comparisons]
    probabilities = torch.softmax(logits, 0)
    total = sum(float(probabilities[j]) for j in others)
    weights = [float(probabilities[j]) / total for j in others]
    score = z[target] - alpha * sum(w * z[j] for w, j in zip(weights, others, strict=True))
    return others, weights, score


def test_the_contrast_score_is_the_hand_computed_one():
    torch.manual_seed(4)
    logits = torch.randn(4, 9, dtype=torch.float64)
    classes = torch.tensor([[0, 3], [8, 2], [5, 5], [1, 7]])
    score = ClassContrast(classes, comparisons=3, alpha=0.7).bind(classes, logits)
    values = score(logits)
    for image, column in itertools.product(range(4), range(2)):
        others, weights, expected = contrast_by_hand(logits[image], int(classes[image, column]),
                                                     3, 0.7)
        assert score.references[image, column].tolist() == others
        torch.testing.assert_close(score.weights[image, column],
                                   torch.tensor(weights, dtype=torch.float64))
        assert values[image, column].item() == pytest.approx(expected, rel=1e-12)
    # two copies of image 2: its references and weights, whatever the row
    copies = score(logits[[2, 2]], torch.tensor([2, 2]))
    torch.testing.assert_close(copies, values[[2, 2]])


def test_finercam_is_gradcam_of_the_fixed_contrast_and_alpha_zero_is_gradcam():
    torch.manual_seed(5)
    model, x = smooth_cnn(), inputs()
    logits = model(x).detach()
    top = logits.argmax(1)
    exp = FinerCAM(model, LAYER, comparisons=2, alpha=1.0)(x)
    coefficients = torch.zeros_like(logits)
    for image in range(3):
        others, weights, _ = contrast_by_hand(logits[image], int(top[image]), 2, 1.0)
        coefficients[image, top[image]] = 1.0
        for j, w in zip(others, weights, strict=True):
            coefficients[image, j] -= w
    activations = model[:3](x).detach().requires_grad_(True)
    g, = torch.autograd.grad((model[3:](activations) * coefficients).sum(), activations)
    torch.testing.assert_close(exp.channel_weights, g.mean((2, 3)), rtol=1e-10, atol=1e-12)
    assert exp.targets.tolist() == top.tolist()  # the classes compared are reported
    torch.testing.assert_close(exp.scores, (logits * coefficients).sum(1), rtol=1e-10,
                               atol=1e-12)
    plain = FinerCAM(model, LAYER, alpha=0.0)(x, [1, 2, 3])
    torch.testing.assert_close(plain.raw, GradCAM(model, LAYER)(x, [1, 2, 3]).raw,
                               rtol=1e-10, atol=1e-12)
    against = FinerCAM(model, LAYER, comparisons=2, counterfactual=True)(x)
    torch.testing.assert_close(against.raw, -exp.raw, rtol=1e-10, atol=1e-12)
    # k classes per image: each column is that class's own Finer-CAM
    several = FinerCAM(model, LAYER)(x, torch.tensor([[1, 2], [3, 4], [5, 6]]))
    single = FinerCAM(model, LAYER)(x, [2, 4, 6])
    torch.testing.assert_close(several.raw[:, 1], single.raw, rtol=1e-10, atol=1e-12)
    assert several.targets.tolist() == [[1, 2], [3, 4], [5, 6]]


def test_the_registry_and_explain_pick_the_methods_up():
    torch.manual_seed(6)
    model, x = smooth_cnn(), inputs(2)
    for name, cls in (("gradcamelementwise", GradCAMElementWise), ("shapleycam", ShapleyCAM),
                      ("finercam", FinerCAM)):
        info = method_info(name)
        assert info.explainer is cls and info.counterfactual and info.needs_gradients
        exp = axiomcam.explain(model, x, method=name, target_layer=LAYER, targets=[0, 1])
        ref = cls(model, LAYER)(x, [0, 1])
        torch.testing.assert_close(exp.maps, ref.maps)
    assert method_info("shapleycam").cost == "hessian"
    assert method_info("gradcam_elementwise").name == "gradcamelementwise"


def test_bad_finer_parameters_are_refused_with_their_value():
    model = smooth_cnn()
    with pytest.raises(ValueError, match=r"comparisons must be a positive int.*0"):
        FinerCAM(model, LAYER, comparisons=0)
    with pytest.raises(ValueError, match=r"alpha must be a finite number.*nan"):
        ClassContrast(alpha=float("nan"))
    with pytest.raises(TypeError, match=r"classes must be None.*LabelsAbove"):
        ClassContrast(LabelsAbove(0.5))
    with pytest.raises(ValueError, match="at least two classes"):
        ClassContrast().bind(torch.tensor([[0]]), torch.zeros(1, 1))


# ------------------------------------------------------------- pytorch-grad-cam 1.5.7

# float32 networks whose layers keep the input's size, so pytorch-grad-cam's resize is the
# identity and both libraries' maps are min-max scaled ReLU maps on the same grid. Its
# scaling divides by ``max + 1e-7``; on maps of maximum 1 after the shift that and float32
# rounding stay below 1e-5, the tolerance used.
PEER_ATOL = 1e-5


def peer_maps(peer_class, model: nn.Module, x: torch.Tensor, **call) -> torch.Tensor:
    cam = peer_class(model=model, target_layers=[model[2]])
    try:
        return torch.from_numpy(cam(input_tensor=x, **call))
    finally:
        getattr(cam, "base_cam", cam).activations_and_grads.release()  # FinerCAM wraps one


def test_elementwise_and_shapleycam_agree_with_pytorch_grad_cam():
    pgc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    torch.manual_seed(7)
    model, x = smooth_cnn(torch.float32), inputs(3, 12, torch.float32)
    classes = [1, 4, 6]
    targets = [ClassifierOutputTarget(c) for c in classes]
    for ours, theirs in ((GradCAMElementWise, pgc.GradCAMElementWise),
                         (ShapleyCAM, pgc.ShapleyCAM)):
        mine = ours(model, LAYER)(x, classes).maps
        peer = peer_maps(theirs, model, x, targets=targets)
        torch.testing.assert_close(mine, peer, rtol=0, atol=PEER_ATOL)
    # the agreement on Shapley-CAM is not Grad-CAM's: H A moves the maps here
    grad = GradCAM(model, LAYER)(x, classes).maps
    assert (grad - ShapleyCAM(model, LAYER)(x, classes).maps).abs().max() > 1e-2


def test_finercam_agrees_with_pytorch_grad_cam_on_one_reference_and_differs_as_documented():
    """One similar class: the same map. Several: pytorch-grad-cam differentiates through
    the softmax weights of its references too (they are not held constant); its map is then
    exactly Grad-CAM of that score, ``sum_d p_d (z_c - alpha z_d) / sum_d p_d`` with ``p``
    live, which differs from ours."""
    pgc = pytest.importorskip("pytorch_grad_cam")
    torch.manual_seed(9)
    model, x = smooth_cnn(torch.float32, classes=9), inputs(3, 12, torch.float32)
    with torch.no_grad():  # logits spread as a trained network's, not all near 0
        model[6].weight.mul_(20)
    one = peer_maps(pgc.FinerCAM, model, x, comparison_categories=[1], alpha=1.0)
    torch.testing.assert_close(FinerCAM(model, LAYER, comparisons=1)(x).maps, one, rtol=0,
                               atol=PEER_ATOL)

    three = peer_maps(pgc.FinerCAM, model, x, comparison_categories=[1, 2, 3], alpha=0.6)
    ours = FinerCAM(model, LAYER, comparisons=3, alpha=0.6)(x)
    bound = ClassContrast(comparisons=3, alpha=0.6).bind(ours.logits.argmax(1, keepdim=True),
                                                         ours.logits)

    def live_weights(output: torch.Tensor) -> torch.Tensor:
        references = bound.references[:, 0]
        live = torch.softmax(output, 1).gather(1, references)
        differences = output.gather(1, bound.classes) - 0.6 * output.gather(1, references)
        return (live * differences).sum(1) / live.sum(1)

    fixed_weights = ContrastScore(bound.classes, bound.references, bound.weights, 0.6)
    torch.testing.assert_close(live_weights(model(x)), fixed_weights(model(x)))  # same value
    peer_score_map = GradCAM(model, LAYER)(x, live_weights).maps
    torch.testing.assert_close(peer_score_map, three, rtol=0, atol=PEER_ATOL)
    assert (ours.maps - three).abs().max() > 1e-2  # ... but a different gradient: 0.057
