"""Counterfactual explanations (``counterfactual=True``, Selvaraju et al. 2017): each
gradient method's own formula applied to the negated gradient ``-dy^c/dA``.

Checked three ways: on a constructed network whose evidence against the class is known
(the counterfactual map must lie on it, the plain map must not); against the slow
reference of ``reference.py`` fed with a gradient negated by hand, for every method that
has the form (and the guided forms, whose guided-backprop pass negates too); and the
refusals, the axioms (measured against ``-y^c``) and what ``Explanation`` records.
"""

from __future__ import annotations

import warnings

import pytest
import reference as ref
import torch
from torch import nn

import axiomcam
from axiomcam.methods import (
    COUNTERFACTUAL_METHODS,
    METHOD_NAMES,
    GradCAM,
    Guided,
    GuidedBackprop,
    create,
    method_info,
)
from axiomcam.metrics.axioms import axiom_errors, probe_layer

GRADIENT_METHODS = ("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam")
# issue 22's gradient methods; their counterfactual forms are checked in test_gradfamily.py
NEWER_GRADIENT_METHODS = ("gradcamelementwise", "shapleycam", "finercam")
WITHOUT_FORM = ("cam", "ablationcam", "ablationcam:activation", "scorecam", "eigencam",
                "guided_backprop", "guided_cam", "guided_scorecam")


# ------------------------------------------------------------- known evidence against


def evidence_model() -> nn.Module:
    """Two input channels copied to the layer (1x1 identity convolution, ReLU), global
    average pooling, and a bias-free linear head: class 0 = channel 0 - channel 1, so
    whatever lights channel 1 is evidence *against* class 0, and channel 0 evidence for."""
    model = nn.Sequential(nn.Conv2d(2, 2, 1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2).view(2, 2, 1, 1))
        model[4].weight.copy_(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
    return model.eval()


def boxes_image(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A ``(2, 24, 24)`` image: channel 0 lit (random strengths) in a box ``for_box``, channel
    1 in a disjoint box ``against_box``; the boxes' masks."""
    image = torch.zeros(2, 24, 24)
    for_box = torch.zeros(24, 24, dtype=torch.bool)
    against_box = torch.zeros(24, 24, dtype=torch.bool)
    top, left = (int(v) for v in torch.randint(0, 6, (2,), generator=generator))
    for_box[top:top + 8, left:left + 8] = True
    top, left = (int(v) for v in torch.randint(13, 17, (2,), generator=generator))
    against_box[top:top + 7, left:left + 7] = True
    image[0][for_box] = 0.5 + torch.rand(int(for_box.sum()), generator=generator)
    image[1][against_box] = 0.5 + torch.rand(int(against_box.sum()), generator=generator)
    return image, for_box, against_box


@pytest.mark.parametrize("method", [*GRADIENT_METHODS, *(f"guided_{m}" for m in GRADIENT_METHODS)])
def test_the_counterfactual_map_lies_on_the_evidence_against_the_class(method):
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    model = evidence_model()
    images, fors, againsts = zip(*(boxes_image(generator) for _ in range(3)), strict=True)
    inputs = torch.stack(images)
    plain = axiomcam.explain(model, inputs, method, "1", targets=0)
    against = axiomcam.explain(model, inputs, method, "1", targets=0, counterfactual=True)
    assert against.counterfactual and not plain.counterfactual
    for i in range(len(images)):
        total = float(against.maps[i].sum())
        assert total > 0, "the counterfactual map is empty"
        # all of the counterfactual map's mass on the evidence against, none on the evidence for
        assert float(against.maps[i][againsts[i]].sum()) / total == pytest.approx(1.0, abs=1e-6)
        assert float(against.maps[i][fors[i]].sum()) == 0.0
        # and the plain map the other way round
        plain_total = float(plain.maps[i].sum())
        assert float(plain.maps[i][fors[i]].sum()) / plain_total == pytest.approx(1.0, abs=1e-6)
        assert float(plain.maps[i][againsts[i]].sum()) == 0.0
    # the score explained is still y^c, not its negation
    torch.testing.assert_close(against.scores, plain.scores)


# ------------------------------------------------------------- the slow reference


def small_network() -> nn.Module:
    """A float64 network with BatchNorm, an inner layer ``"4"`` whose gradient varies in
    sign over positions and channels, and a head with biases."""
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 12, 3, padding=1, stride=2), nn.ReLU(),
        nn.Conv2d(12, 10, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(10, 5))
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.2, 0.2)
        model[1].running_var.uniform_(0.5, 1.5)
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-0.3, 0.3)
    return model.double().eval()


def reference_against(model: nn.Module, layer: str, x: torch.Tensor, c: int,
                      method: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The reference ``(raw, weights)`` of the method with ``G`` negated by hand."""
    passes = ref.Reference(ref.private_copy(model), layer).gradient(x, c)
    passes["G"] = -passes["G"]
    return ref.explain_one(method, passes)


def guided_gradient_against(model: nn.Module, x: torch.Tensor, c: int) -> torch.Tensor:
    """Guided backprop of ``-y^c``: the negated gradient through guided ReLUs."""
    with ref.guided_relus(ref.private_copy(model)) as guided_model:
        leaf = x[None].detach().clone().requires_grad_(True)
        (gradient,) = torch.autograd.grad(-guided_model(leaf)[0, c], leaf)
    return gradient[0]


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_every_counterfactual_form_equals_the_reference_with_the_gradient_negated(method):
    torch.manual_seed(3)
    model = small_network()
    inputs = torch.rand(3, 3, 20, 28, dtype=torch.float64)
    classes = [1, 4, 0]
    exp = axiomcam.explain(model, inputs, method, "4", targets=classes, counterfactual=True)
    plain = axiomcam.explain(model, inputs, method, "4", targets=classes)
    for i, c in enumerate(classes):
        raw, weights = reference_against(model, "4", inputs[i], c, method)
        ref.assert_rel_close(exp.raw[i], raw, what=f"{method} raw, image {i}")
        if weights is not None:
            ref.assert_rel_close(exp.channel_weights[i], weights, what=f"{method} weights")
        else:
            assert exp.channel_weights is None
        ref.assert_rel_close(exp.maps[i], ref.map_from_raw(raw, (20, 28)),
                             what=f"{method} map, image {i}")
    # linear in G: the raw map is exactly negated; Layer-CAM and Grad-CAM++ keep ReLU(G)
    # inside, so theirs is not
    if method in ("gradcam", "xgradcam", "hirescam"):
        torch.testing.assert_close(exp.raw, -plain.raw, rtol=0, atol=1e-12)
    else:
        assert not torch.allclose(exp.raw, -plain.raw, atol=1e-6)


@pytest.mark.parametrize("method", ["gradcam", "layercam"])
def test_the_guided_counterfactual_is_guided_backprop_of_minus_y_times_the_map(method):
    torch.manual_seed(4)
    model = small_network()
    inputs = torch.rand(2, 3, 20, 28, dtype=torch.float64)
    exp = axiomcam.explain(model, inputs, f"guided_{method}", "4", targets=[2, 3],
                           counterfactual=True)
    for i, c in enumerate([2, 3]):
        raw, _ = reference_against(model, "4", inputs[i], c, method)
        expected = guided_gradient_against(model, inputs[i], c) * ref.map_from_raw(raw, (20, 28))
        ref.assert_rel_close(exp.guided[i], expected, what=f"guided {method}, image {i}")
        ref.assert_rel_close(exp.maps[i], ref.guided_map(expected), what="guided map")


def test_several_targets_and_layers_negate_every_gradient():
    torch.manual_seed(5)
    model = small_network()
    inputs = torch.rand(2, 3, 20, 28, dtype=torch.float64)
    targets = torch.tensor([[0, 3], [4, 1]])
    exp = axiomcam.explain(model, inputs, "xgradcam", ["2", "4"], targets=targets,
                           counterfactual=True)
    assert exp.counterfactual
    for layer in ("2", "4"):
        part = exp.layers[layer]
        assert part.counterfactual
        for i in range(2):
            for j in range(2):
                raw, weights = reference_against(model, layer, inputs[i], int(targets[i, j]),
                                                 "xgradcam")
                ref.assert_rel_close(part.raw[i, j], raw, what=f"layer {layer} ({i}, {j})")
                ref.assert_rel_close(part.channel_weights[i, j], weights, what="weights")
    picked = exp.target(1)
    assert picked.counterfactual and picked.layers["4"].counterfactual


# ------------------------------------------------------------- refusals and records


@pytest.mark.parametrize("method", WITHOUT_FORM)
def test_a_method_without_a_counterfactual_form_refuses_it_naming_the_ones_with(method):
    torch.manual_seed(0)
    model = evidence_model()
    layer = None if method == "guided_backprop" else "1"
    with pytest.raises(ValueError, match="has no counterfactual form") as error:
        create(method, model, layer, counterfactual=True)
    message = str(error.value)
    base = method if method == "guided_backprop" else \
        method.removeprefix("guided_").split(":")[0]
    assert f"({base})" in message
    assert ("gradcam, xgradcam, gradcam++, hirescam, layercam, gradcamelementwise, shapleycam, "
            "finercam and their guided forms") in message
    assert not method_info(method).counterfactual


def test_the_registry_lists_exactly_the_gradient_methods_and_their_guided_forms():
    gradient = (*GRADIENT_METHODS, *NEWER_GRADIENT_METHODS)
    expected = {*gradient, *(f"guided_{m}" for m in gradient)}
    assert set(COUNTERFACTUAL_METHODS) == expected
    assert all(method_info(name).counterfactual == (name in expected) for name in METHOD_NAMES)


def test_bad_counterfactual_values_are_refused():
    torch.manual_seed(0)
    model = evidence_model()
    with pytest.raises(TypeError, match="counterfactual must be True or False, not 'yes'"):
        GradCAM(model, "1", counterfactual="yes")
    with pytest.raises(ValueError, match="set it on the CAM"):
        Guided(GradCAM(model, "1"), counterfactual=True)
    with pytest.raises(ValueError, match=r"Guided Backprop \(guided_backprop\) has no"):
        GuidedBackprop(model, counterfactual=True)
    # the guided form follows its CAM when not told
    assert Guided(GradCAM(model, "1", counterfactual=True)).counterfactual


def test_the_explanation_records_it():
    torch.manual_seed(0)
    model = evidence_model()
    inputs = boxes_image(torch.Generator().manual_seed(2))[0][None]
    exp = axiomcam.explain(model, inputs, "gradcam", "1", targets=0, counterfactual=True,
                           smooth=2, seed=0)
    assert exp.counterfactual and "counterfactual=True" in repr(exp)
    assert "counterfactual" not in repr(axiomcam.explain(model, inputs, "gradcam", "1"))


# ------------------------------------------------------------- the axioms


def bias_free_network() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 6, 1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(6, 4, bias=False)).eval()


def test_the_axioms_measure_a_counterfactual_map_against_minus_y():
    torch.manual_seed(6)
    model = bias_free_network()
    inputs = torch.rand(3, 3, 12, 12)
    probe = probe_layer(model, inputs, torch.tensor([0, 1, 2]), "3")
    for method in ("xgradcam", "gradcam"):
        with warnings.catch_warnings():  # an image with no evidence against its class
            warnings.simplefilter("ignore", axiomcam.AxiomCamWarning)
            exp = axiomcam.explain(model, inputs, method, "3", targets=probe.targets,
                                   counterfactual=True)
        errors = axiom_errors(probe, exp)
        # XGrad-CAM conserves -y exactly on a bias-free GAP + linear head (Euler)
        torch.testing.assert_close(errors.score, -probe.scores)
        torch.testing.assert_close(errors.map_sum, -probe.scores, rtol=1e-4, atol=1e-5)
        assert float(errors.conservation_error.max()) < 1e-4
        assert float(errors.sensitivity_error.max()) < 1e-4
    # at an inner layer Grad-CAM++'s counterfactual map is its own: its errors are the
    # definitions' applied to -y and -dS_k
    probe = probe_layer(model, inputs, torch.tensor([0, 1, 2]), "1")
    exp = axiomcam.explain(model, inputs, "gradcam++", "1", targets=probe.targets,
                           counterfactual=True)
    errors = axiom_errors(probe, exp)
    expected = (-probe.scores - exp.raw.flatten(1).sum(1)).abs() / probe.scores.abs()
    torch.testing.assert_close(errors.conservation_error, expected)
    contributions = exp.channel_weights * probe.activations.flatten(2).sum(-1)
    drops = -probe.score_drops
    expected = (drops - contributions).abs().sum(1) / drops.abs().sum(1)
    torch.testing.assert_close(errors.sensitivity_error, expected)
