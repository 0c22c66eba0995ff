"""FullGrad: the paper's completeness identity, the map against a slow reference that takes
each layer's gradient by splitting the network there, and agreement with
pytorch-grad-cam's FullGrad (exact where the definitions agree, the documented
per-channel normalisation where they do not)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import axiomcam
from axiomcam.methods import FullGrad, create, method_info
from axiomcam.methods.fullgrad import bias_layers, layer_bias


def _calibrated(model: nn.Sequential, inputs: torch.Tensor) -> nn.Sequential:
    """Give every batch norm the running statistics of ``inputs`` (plus random affine
    parameters), so that eval mode normalises for real and folded biases are not 0."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        activation = inputs
        for layer in model:
            if isinstance(layer, nn.BatchNorm2d):
                dims = (0, 2, 3)
                layer.running_mean.copy_(activation.mean(dims) + 0.3)
                layer.running_var.copy_(activation.var(dims) * 1.5)
                if layer.affine:
                    layer.weight.copy_(torch.rand(layer.num_features, generator=generator) + 0.5)
                    layer.bias.copy_(torch.rand(layer.num_features, generator=generator) - 0.3)
            activation = layer.eval()(activation)
    return model.eval()


def _relu_net(channels: int = 4, in_channels: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1), nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(channels, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels, affine=False), nn.ReLU(),
        nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(channels * 4, 3))


def test_completeness_sum_of_full_gradients_is_the_output() -> None:
    """Srinivas & Fleuret's completeness: for a piecewise-linear network (ReLU, max-pool,
    convolutions, batch norms in eval mode, linear layers) ``y^c = sum(dy/dx * x) +
    sum_l sum(dy/dz_l * b_l)``, for every target; dropping any layer's term breaks it."""
    torch.manual_seed(0)
    inputs = torch.randn(3, 3, 8, 10, dtype=torch.float64)
    model = _calibrated(_relu_net().double(), inputs)
    targets = torch.tensor([[0, 2], [1, 0], [2, 1]])
    parts = FullGrad(model).decompose(inputs, targets)
    assert parts.layers == ["0", "1", "5", "7", "11"]  # conv, BN, BN (no affine), conv, fc
    terms = [(parts.input_gradient * inputs[:, None]).flatten(2).sum(-1),
             *(term.flatten(2).sum(-1) for term in parts.bias_gradients)]
    expected = model(inputs).gather(1, targets)
    assert torch.allclose(sum(terms), expected, atol=1e-10)
    for term in terms[1:]:  # each bias term matters here: leaving it out is visibly wrong
        assert (sum(terms) - term - expected).abs().max() > 1e-3


def _split_gradient(model: nn.Sequential, inputs: torch.Tensor, index: int,
                    target: int) -> torch.Tensor:
    """``dy^target / dz`` for ``z`` the output of ``model[index]``, by running the network in
    two halves with ``z`` a leaf (no hooks)."""
    with torch.no_grad():
        middle = model[:index + 1](inputs)
    middle.requires_grad_(True)
    (gradient,) = torch.autograd.grad(model[index + 1:](middle.clone())[:, target].sum(),
                                  middle)
    return gradient


def _psi(term: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The paper's post-processing of one image's term ``(K, h, w)``, written out."""
    magnitude = term.abs()
    scaled = (magnitude - magnitude.min()) / (magnitude.max() - magnitude.min())
    return F.interpolate(scaled[None], size=size, mode="bilinear",
                         align_corners=False)[0].sum(0)


def test_map_matches_a_slow_layer_by_layer_reference() -> None:
    torch.manual_seed(1)
    inputs = torch.randn(2, 3, 8, 12, dtype=torch.float64)
    model = _calibrated(_relu_net().double(), inputs)
    explanation = FullGrad(model)(inputs, targets=[2, 0])
    for image, target in enumerate([2, 0]):
        x = inputs[image:image + 1].clone().requires_grad_(True)
        (input_gradient,) = torch.autograd.grad(model(x)[0, target], x)
        expected = _psi((input_gradient * inputs[image:image + 1])[0], (8, 12))
        for index, layer in enumerate(model):
            bias = layer_bias(layer)
            if bias is None or index == len(model) - 1:  # the linear layer: no map term
                continue
            gradient = _split_gradient(model, inputs[image:image + 1], index, target)
            expected = expected + _psi((gradient * bias.view(-1, 1, 1))[0], (8, 12))
        assert torch.allclose(explanation.raw[image], expected, atol=1e-10)
        normalised = (expected - expected.min()) / (expected.max() - expected.min())
        assert torch.allclose(explanation.maps[image], normalised, atol=1e-10)


def test_registered_without_a_layer_and_hooks_removed() -> None:
    torch.manual_seed(2)
    model = _relu_net().eval()
    info = method_info("FullGrad")
    assert (info.takes_layer, info.cam, info.has_channel_weights, info.cost) == (
        False, False, False, "input gradient")
    with pytest.raises(ValueError, match="takes no target_layer"):
        create("fullgrad", model, "0")
    explanation = axiomcam.explain(model, torch.randn(2, 3, 8, 8), method="fullgrad")
    assert explanation.method == "fullgrad" and explanation.target_layer is None
    assert explanation.maps.shape == (2, 8, 8)
    assert explanation.maps.amax((1, 2)).tolist() == [1.0, 1.0]
    assert all(not module._forward_hooks for module in model.modules())
    assert all(p.grad is None for p in model.parameters())

    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.conv(x)
            raise RuntimeError("boom")

    broken = Broken()
    with pytest.raises(RuntimeError, match="boom"):
        FullGrad(broken)(torch.randn(1, 3, 8, 8), targets=0)
    assert not broken.conv._forward_hooks
    assert [name for name, _ in bias_layers(broken)] == ["conv"]


def _pgc_fullgrad(model: nn.Module, inputs: torch.Tensor, classes: list[int]) -> torch.Tensor:
    from pytorch_grad_cam import FullGrad as PeerFullGrad
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with PeerFullGrad(model, target_layers=[]) as peer:
        maps = peer(inputs, targets=[ClassifierOutputTarget(c) for c in classes])
    return torch.from_numpy(maps).double()


def _peer_net(channels: int, in_channels: int) -> nn.Sequential:
    # no in-place ReLU: pytorch-grad-cam's gradient hooks would see the ReLU's output
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
        nn.MaxPool2d(2), nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(channels * 16, 3))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_agrees_with_pytorch_grad_cam_where_the_definitions_agree(
        capsys: pytest.CaptureFixture[str]) -> None:
    """One channel everywhere: normalising per channel (pytorch-grad-cam) is normalising
    per image over all channels (the paper), so the maps agree. Tolerance 1e-4:
    pytorch-grad-cam computes in float32 and adds 1e-7 to every min-max denominator; its
    cv2 bilinear resize is torch's ``align_corners=False`` at a factor of 2."""
    pytest.importorskip("pytorch_grad_cam")
    torch.manual_seed(3)
    inputs = torch.randn(3, 1, 8, 8)
    model = _calibrated(_peer_net(1, 1), inputs)
    classes = [0, 2, 1]
    ours = FullGrad(model)(inputs, targets=classes).maps.double()
    theirs = _pgc_fullgrad(model, inputs, classes)
    assert (theirs - ours).abs().max() < 1e-4


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_differs_from_pytorch_grad_cam_by_its_per_channel_normalisation() -> None:
    """Several channels: pytorch-grad-cam min-max scales every channel of every term on its
    own before summing them (the paper and its official code scale each term as a whole).
    Rebuilt from our own full gradients with per-channel scaling, its maps come back to
    1e-4; ours differ from them visibly."""
    pytest.importorskip("pytorch_grad_cam")
    torch.manual_seed(4)
    inputs = torch.randn(2, 3, 8, 8)
    model = _calibrated(_peer_net(4, 3), inputs)
    classes = [1, 2]
    method = FullGrad(model)
    parts = method.decompose(inputs, torch.tensor(classes))
    terms = [parts.input_gradient * inputs[:, None],
             *(term for term in parts.bias_gradients if term.dim() == 5)]
    per_channel = 0
    for term in terms:
        magnitude = term.abs()[:, 0].double()  # (B, K, h, w)
        low = magnitude.amin((2, 3), keepdim=True)
        scaled = (magnitude - low) / (magnitude.amax((2, 3), keepdim=True) - low + 1e-7)
        per_channel = per_channel + F.interpolate(scaled, size=(8, 8), mode="bilinear",
                                                  align_corners=False).sum(1)
    low = per_channel.amin((1, 2), keepdim=True)
    rebuilt = (per_channel - low) / (per_channel.amax((1, 2), keepdim=True) - low)
    theirs = _pgc_fullgrad(model, inputs, classes)
    assert (theirs - rebuilt).abs().max() < 1e-4
    ours = method(inputs, targets=classes).maps.double()
    assert (theirs - ours).abs().max() > 0.05
