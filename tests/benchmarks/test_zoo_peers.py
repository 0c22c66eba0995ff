"""The comparison with the peers (``benchmarks/zoo_peers.py``, ``docs/peers.md``): its
float64 reference checked against closed forms, and each reproduction of a disagreement
checked to show what the page says it shows.  The reproductions need the peers (the
``bench`` extra) and are skipped without them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: benchmarks/

from benchmarks import zoo_reference as reference


class GapHead(nn.Module):
    """conv -> ReLU (``relu``) -> global average pooling -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.conv(x)).mean((2, 3)))


def test_reference_on_a_gap_head_meets_the_closed_forms() -> None:
    """G is W[c, k] / (h w) at every position: Grad-CAM, XGrad-CAM and CAM are one map, and
    Ablation-CAM's drop is W[c, k] mean(A^k) (the head is linear in the pooled channels)."""
    torch.manual_seed(0)
    model, image = GapHead().eval(), torch.rand(3, 8, 10)
    target = 2
    seen = reference.capture(model, model.relu, image, target, "conv")
    weight = model.fc.weight.detach()[target].double()
    expected_gradient = (weight / 80)[:, None, None].expand_as(seen.A)
    assert torch.allclose(seen.G, expected_gradient, rtol=1e-5, atol=1e-12)
    cam = reference.cam_map(seen.A, model.fc, target)
    for method in ("gradcam", "xgradcam"):
        assert torch.allclose(reference.gradient_map(method, seen.A, seen.G) * 80, cam,
                              rtol=1e-5, atol=1e-9)
    ablation = reference.ablation_map(model, model.relu, image, target, "conv", seen)
    drop = weight * seen.A.mean((1, 2))
    assert torch.allclose(ablation, ((drop / seen.score)[:, None, None] * seen.A).sum(0),
                          rtol=1e-4, atol=1e-8)


def test_reference_keeps_the_layer_output_before_an_in_place_relu() -> None:
    torch.manual_seed(0)
    conv, norm, fc = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4).eval(), nn.Linear(4, 2)

    class InPlace(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.norm, self.fc = conv, norm, fc

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.relu_(self.norm(self.conv(x))).mean((2, 3)))

    model, image = InPlace().eval(), torch.randn(3, 9, 9)
    seen = reference.capture(model, model.norm, image, 1, "conv")
    with torch.no_grad():
        signed = norm(conv(image[None]))[0].double()
    assert signed.min() < 0 and torch.equal(seen.A, signed)
    assert torch.allclose(seen.G, (fc.weight[1].double() / 49)[:, None, None] * (signed > 0))


def test_token_and_channels_last_layouts_round_trip() -> None:
    torch.manual_seed(0)
    tokens = torch.randn(2, 1 + 3 * 3, 5)  # a class token and 3 x 3 patches of 5 channels
    grid = reference.to_grid(tokens, "tokens")
    assert grid.shape == (2, 5, 3, 3)
    assert torch.equal(grid[1, :, 1, 2], tokens[1, 1 + 1 * 3 + 2])  # row 1, column 2
    assert torch.equal(reference.from_grid(grid[:1], tokens[:1], "tokens"), tokens[:1])
    channels_last = torch.randn(2, 3, 4, 5)
    grid = reference.to_grid(channels_last, "channels_last")
    assert torch.equal(grid[0, :, 2, 1], channels_last[0, 2, 1])
    assert torch.equal(reference.from_grid(grid, channels_last, "channels_last"),
                       channels_last)


def test_eigen_map_has_the_sign_of_the_mean_activation() -> None:
    torch.manual_seed(0)
    A = torch.rand(6, 5, 5, dtype=torch.float64)
    for activations in (A, A.flip(0)):
        projection = reference.eigen_map(activations)
        mean = activations.mean(0)
        assert ((projection - projection.mean()) * (mean - mean.mean())).sum() > 0
    assert torch.allclose(reference.eigen_map(A), reference.eigen_map(A.flip(0)))


@pytest.fixture
def peers() -> None:
    pytest.importorskip("pytorch_grad_cam")
    pytest.importorskip("torchcam")


@pytest.mark.usefixtures("peers")
def test_inplace_relu_reproduction() -> None:
    from benchmarks.zoo_repro import inplace_relu

    found = inplace_relu.evidence()
    assert found["min of the layer's output"] < -0.5
    assert found["min of pytorch-grad-cam's kept activation"] == 0
    assert found["min of torchcam's kept activation"] == 0
    assert found["pytorch-grad-cam's G - dy/dA (max abs)"] < 1e-7
    assert found["torchcam's G * (A > 0) - dy/dA (max abs)"] < 1e-7
    assert found["share of torchcam's G nonzero where A < 0"] > 0.9
    assert found["r(axiomcam, definition)"] > 0.9999
    assert found["r(pytorch-grad-cam, definition)"] < 0.5
    assert found["r(torchcam, definition)"] < 0.5
    assert found["r(pytorch-grad-cam, formula on ReLU(A) and dy/dA)"] > 0.9999
    assert found["r(torchcam, formula on ReLU(A) and dy/dReLU(A))"] > 0.9999


@pytest.mark.usefixtures("peers")
def test_epsilon_reproduction() -> None:
    from benchmarks.zoo_repro import epsilon

    rows = {row["s"]: row for row in epsilon.evidence((1e-3, 1e2, 1e-9))}
    for row in rows.values():  # the definitions and axiomcam do not see the units
        for key in ("xgradcam: definition", "xgradcam: axiomcam", "gradcam++: definition",
                    "gradcam++: axiomcam"):
            assert row[key] > 0.9999, (row["s"], key, row[key])
        assert abs(row["score"] - rows[1e-3]["score"]) < 1e-5
    assert rows[1e-3]["xgradcam: pytorch-grad-cam"] > 0.9999
    assert rows[1e-3]["gradcam++: pytorch-grad-cam"] > 0.9999
    assert rows[1e2]["gradcam++: pytorch-grad-cam"] < 0.95  # G^2 ~ 1e-12 << 1e-6
    assert rows[1e-9]["xgradcam: pytorch-grad-cam"] < 0.5  # sum A ~ 1e-9 << 1e-7
    assert rows[1e-9]["xgradcam: torchcam"] < 0.5  # and << 1e-8


@pytest.mark.usefixtures("peers")
def test_eigencam_sign_reproduction() -> None:
    from benchmarks.zoo_repro import eigencam_sign

    found = eigencam_sign.evidence()
    assert found["max |score difference| between the two orders"] < 1e-5
    assert found["pytorch-grad-cam: r(map, map of the reversed order)"] < 0
    assert found["axiomcam: r(map, map of the reversed order)"] > 0.9999
    assert found["axiomcam: r(map, mean activation)"] > 0


@pytest.mark.usefixtures("peers")
def test_ablation_value_reproduction() -> None:
    from benchmarks.zoo_repro import ablation_value

    found = ablation_value.evidence()
    low = found["min of the layer's output"]
    assert low < 0
    written = found["values pytorch-grad-cam writes into copies 0..3"]
    assert written == pytest.approx([low - (i + 1) * 1e7 for i in range(4)], abs=4)
    assert found["r(axiomcam, definition)"] > 0.9999
    assert found["r(pytorch-grad-cam, definition)"] < 0.5
    assert found["r(pytorch-grad-cam, channels set to the values it writes)"] > 0.9999


@pytest.mark.usefixtures("peers")
def test_shared_module_reproduction() -> None:
    from benchmarks.zoo_repro import shared_module

    found = shared_module.evidence()
    assert found["calls of the layer"] == 2
    first = found["first call's output (C, h, w)"]
    assert found["pytorch-grad-cam keeps (activation, gradient)"] == (first, first)
    assert found["last call's output (C, h, w)"] != first
    assert found["r(axiomcam, definition at the last call)"] > 0.9999
    assert found["r(torchcam, definition at the last call)"] > 0.9999
    assert found["r(pytorch-grad-cam, definition at the first call)"] > 0.9999
    assert found["r(pytorch-grad-cam, definition at the last call)"] < 0.5
