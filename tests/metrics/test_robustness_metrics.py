"""Max-sensitivity, average sensitivity and the local Lipschitz estimate
(:mod:`axiomcam.metrics.robustness`): equal to a slow loop over images and noisy copies,
and to Quantus 0.6's MaxSensitivity / AvgSensitivity / LocalLipschitzEstimate on the same
network, inputs, Grad-CAM maps and noise (Quantus draws from numpy's global generator:
it is seeded and the same draws are handed to axiomcam)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import axiomcam
from axiomcam.metrics.robustness import (
    avg_sensitivity,
    local_lipschitz_estimate,
    max_sensitivity,
    robustness_ratios,
    uniform_noise,
)


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()


def _explain(net: nn.Module):
    def explain(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return axiomcam.explain(net, inputs, "gradcam", "2", targets=targets).maps
    return explain


def _slow(explain, inputs, targets, noise, lipschitz):
    """Image by image, copy by copy, in float64."""
    result = torch.zeros(noise.shape[0], inputs.shape[0], dtype=torch.float64)
    for b in range(inputs.shape[0]):
        clean = explain(inputs[b:b + 1], targets[b:b + 1])[0].double()
        for s in range(noise.shape[0]):
            noisy = explain(inputs[b:b + 1] + noise[s, b:b + 1], targets[b:b + 1])[0].double()
            difference = torch.sqrt(((noisy - clean) ** 2).sum())
            result[s, b] = difference / (torch.sqrt((noise[s, b].double() ** 2).sum()) + 1e-10) \
                if lipschitz else difference / torch.sqrt((clean ** 2).sum())
    return result


@pytest.mark.parametrize("lipschitz", [False, True])
def test_ratios_match_a_slow_loop(lipschitz):
    torch.manual_seed(0)
    net, inputs = _net(), torch.rand(3, 3, 8, 8)
    targets = torch.tensor([0, 2, 1])
    noise = uniform_noise(inputs, 5, 0.3, torch.Generator().manual_seed(1))
    fast = robustness_ratios(_explain(net), inputs, targets, noise, lipschitz=lipschitz, copies=2)
    slow = _slow(_explain(net), inputs, targets, noise, lipschitz)
    assert fast.shape == (5, 3)
    assert float(slow.std()) > 0.01   # the noise moves the maps: a real test
    # float32 maps vs a float64 sum: relative 1e-4
    assert torch.allclose(fast.double(), slow, rtol=1e-4, atol=1e-6)
    explain = _explain(net)
    if lipschitz:
        assert torch.allclose(local_lipschitz_estimate(explain, inputs, targets, noise=noise),
                              fast.amax(0))
    else:
        assert torch.allclose(max_sensitivity(explain, inputs, targets, noise=noise), fast.amax(0))
        assert torch.allclose(avg_sensitivity(explain, inputs, targets, noise=noise), fast.mean(0))


def _quantus_noise(shape, samples, kind, seed, scale):
    """The draws Quantus makes, in its order: one (B, C*H*W) array per copy."""
    np.random.seed(seed)
    draw = (lambda: np.random.uniform(-scale, scale, size=(shape[0], int(np.prod(shape[1:]))))) \
        if kind == "uniform" else \
        (lambda: np.random.normal(0.0, scale, size=(shape[0], int(np.prod(shape[1:])))))
    return torch.tensor(np.stack([draw() for _ in range(samples)]).reshape(samples, *shape),
                        dtype=torch.float32)


@pytest.mark.parametrize(("name", "kind", "scale"), [
    ("MaxSensitivity", "uniform", 0.2), ("AvgSensitivity", "uniform", 0.2),
    ("LocalLipschitzEstimate", "gaussian", 0.1)])
def test_agrees_with_quantus(name, kind, scale):
    quantus = pytest.importorskip("quantus")
    torch.manual_seed(0)
    net, inputs = _net(), torch.rand(2, 3, 8, 8)
    targets = torch.tensor([1, 2])
    explain = _explain(net)
    samples = 4

    def quantus_explain(model, inputs, targets, **kwargs):
        maps = explain(torch.as_tensor(inputs, dtype=torch.float32), torch.as_tensor(targets))
        return maps[:, None].numpy()

    noise_kwargs = {"lower_bound": scale} if kind == "uniform" else {"perturb_std": scale}
    metric = getattr(quantus, name)(nr_samples=samples, normalise=False, abs=False,
                                    disable_warnings=True, **noise_kwargs)
    clean = explain(inputs, targets)[:, None].numpy()
    np.random.seed(7)
    theirs = metric(model=net, x_batch=inputs.numpy(), y_batch=targets.numpy(), a_batch=clean,
                    explain_func=quantus_explain, device="cpu", channel_first=True,
                    batch_size=2)
    noise = _quantus_noise(tuple(inputs.shape), samples, kind, 7, scale)
    ours = {"MaxSensitivity": max_sensitivity, "AvgSensitivity": avg_sensitivity,
            "LocalLipschitzEstimate": local_lipschitz_estimate}[name](
        explain, inputs, targets, noise=noise)
    # float32 maps and inputs in both; Quantus perturbs in float64 then explains in float32
    assert np.allclose(ours.numpy(), np.asarray(theirs, dtype=np.float64), rtol=1e-3, atol=1e-5)


def test_bad_noise_is_refused():
    torch.manual_seed(0)
    inputs = torch.rand(2, 3)
    with pytest.raises(ValueError, match="noise must be a"):
        robustness_ratios(lambda x, t: x, inputs, torch.tensor([0, 0]), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="NaN"):
        robustness_ratios(lambda x, t: x, inputs, torch.tensor([0, 0]),
                          torch.full((1, 2, 3), float("nan")))
    with pytest.raises(ValueError, match="samples"):
        max_sensitivity(lambda x, t: x, inputs, torch.tensor([0, 0]), samples=0)


def test_yeh_form_and_an_all_zero_map_are_defined():
    torch.manual_seed(0)
    net, inputs = _net(), torch.rand(2, 3, 8, 8)
    targets = torch.tensor([0, 1])
    explain = _explain(net)
    noise = uniform_noise(inputs, 3, 0.3, torch.Generator().manual_seed(2))
    norms = explain(inputs, targets).flatten(1).norm(dim=1)
    relative = max_sensitivity(explain, inputs, targets, noise=noise)
    absolute = max_sensitivity(explain, inputs, targets, noise=noise, relative=False)
    assert torch.allclose(absolute, relative * norms, rtol=1e-5)

    def zero_when_clean(x, t):   # all zero on the clean inputs, x - 0.5 elsewhere
        return torch.where(torch.isin(x, inputs).all(dim=(1, 2, 3))[:, None, None],
                           torch.zeros_like(x[:, 0]), x[:, 0] - 0.5)
    # an all-zero clean map: the sensitivity is the numerator alone, never NaN or inf
    zero = max_sensitivity(zero_when_clean, inputs, targets, noise=noise)
    expected = torch.stack([(inputs + n)[:, 0].sub(0.5).flatten(1).norm(dim=1)
                            for n in noise]).amax(0)
    assert torch.allclose(zero, expected)
