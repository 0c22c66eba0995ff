"""Agreement with the peers on the same model, inputs and random draws: Quantus 0.6
(FaithfulnessCorrelation, MonotonicityCorrelation, IROF) and pytorch-grad-cam 1.5.7
(CamMultImageConfidenceChange, ROADCombined).

Quantus treats every channel of every pixel as a feature; with one input channel its
features are our pixels, so the models here take one channel. Quantus draws with
``numpy.random``: each test seeds numpy, replays the same draws in the same order and
hands them to axiomcam (``subsets=``, ``fill_values=``). Quantus and pytorch-grad-cam
run the model in float32 (they cast scores to float32), hence the tolerances.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from axiomcam.metrics import (
    confidence_change,
    faithfulness_correlation,
    irof,
    monotonicity_correlation,
    road,
    superpixels,
)

quantus = pytest.importorskip("quantus")

#: float32 scores of probabilities near 0.3: differences of ~1e-7 relative, and a
#: correlation over ~20 points amplifies them at most ~100 times
TOLERANCE = 1e-5


def one_channel_case(seed: int, size: int = 8):
    """A conv net on one-channel images, two images, maps, targets."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                          nn.Flatten(), nn.Linear(16, 3)).eval()
    return model, torch.randn(2, 1, size, size), torch.rand(2, size, size), np.array([0, 2])


def run_quantus(metric, model, inputs, maps, targets):
    """Quantus' scores on probabilities (``softmax=True``), one per image."""
    return np.array(metric(model=model, x_batch=inputs.numpy(), y_batch=targets,
                           a_batch=maps[:, None].numpy(), softmax=True, device="cpu",
                           channel_first=True))


def test_faithfulness_correlation_agrees_with_quantus():
    model, inputs, maps, targets = one_channel_case(0)
    runs, size, batch = 20, 10, 2
    np.random.seed(5)
    draws = []
    for _ in range(runs):
        draws.append(np.stack([np.random.choice(64, size, replace=False)
                               for _ in range(batch)]))
        np.random.uniform(size=batch)  # Quantus' baseline table draws its "uniform" entry
    subsets = torch.from_numpy(np.stack(draws, axis=1))
    np.random.seed(5)
    metric = quantus.FaithfulnessCorrelation(
        nr_runs=runs, subset_size=size, perturb_baseline="black", normalise=False, abs=False,
        return_aggregate=False, disable_warnings=True)
    expected = run_quantus(metric, model, inputs, maps, targets)
    black = inputs.flatten(1).min(1).values.view(batch, 1, 1, 1)  # Quantus' "black"
    ours = faithfulness_correlation(model, inputs, maps, torch.from_numpy(targets),
                                    subsets=subsets, baseline=black)
    assert np.allclose(ours.numpy(), expected, atol=TOLERANCE)


def test_monotonicity_correlation_agrees_with_quantus():
    model, inputs, maps, targets = one_channel_case(1)
    steps, samples, batch = 8, 3, 2
    np.random.seed(7)
    fills = np.zeros((batch, steps, samples))
    for step in range(steps):
        for sample in range(samples):  # one uniform value per image and perturbation
            fills[:, step, sample] = np.random.uniform(0.0, 1.0, size=batch)
    np.random.seed(7)
    metric = quantus.MonotonicityCorrelation(
        nr_samples=samples, features_in_step=64 // steps, normalise=False, abs=False,
        return_aggregate=False, disable_warnings=True)
    expected = run_quantus(metric, model, inputs, maps, targets)
    ours = monotonicity_correlation(model, inputs, maps, torch.from_numpy(targets),
                                    steps=steps, fill_values=torch.from_numpy(fills))
    assert np.allclose(ours.numpy(), expected, atol=TOLERANCE)


@pytest.fixture
def quantus_trapz(monkeypatch):
    """Quantus 0.6 integrates with ``np.trapz``, which numpy 2 removed: give it back."""
    monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)


def to_quantus_irof(result) -> np.ndarray:
    """Quantus' IROF from ours: ``n - trapz(f_1 .. f_n, dx=1) = n AOC + (1 + f_1) / 2``
    (our area is over ``f_0 = 1 .. f_n`` on ``[0, 1]``)."""
    return np.array([(len(curve) - 1) * float(aoc) + (1 + float(curve[1])) / 2
                     for aoc, curve in zip(result.aoc, result.curves, strict=True)])


def test_irof_agrees_with_quantus_for_a_fixed_baseline(quantus_trapz):
    model, _, _, targets = one_channel_case(2)
    inputs, maps = torch.rand(2, 1, 16, 16), torch.rand(2, 16, 16)
    metric = quantus.IROF(perturb_baseline=0.5, normalise=False, abs=False,
                          return_aggregate=False, disable_warnings=True)
    expected = run_quantus(metric, model, inputs, maps, targets)
    # the same SLIC superpixels (Quantus' call, defaults), so the same removals
    ours = irof(model, inputs, maps, torch.from_numpy(targets), baseline=0.5)
    assert len(ours.curves[0]) > 10  # several superpixels: a real curve
    assert np.allclose(to_quantus_irof(ours), expected, atol=TOLERANCE)


def test_quantus_irof_mean_baseline_is_the_mean_of_the_already_removed_image(quantus_trapz):
    """The documented difference (docs/peers.md): Quantus' ``"mean"`` is recomputed from
    the image as already perturbed at every step, so it drifts; ours (and the paper's) is
    the original image's mean. A slow loop with the drifting mean reproduces Quantus."""
    model, _, _, targets = one_channel_case(3)
    inputs, maps = torch.rand(1, 1, 16, 16), torch.rand(1, 16, 16)
    metric = quantus.IROF(normalise=False, abs=False, return_aggregate=False,
                          disable_warnings=True)
    expected = run_quantus(metric, model, inputs, maps, targets[:1])
    segments = superpixels(inputs)[0]
    count = int(segments.max()) + 1
    means = [float(maps[0][segments == s].mean()) for s in range(count)]
    image, curve = inputs[0].clone(), []
    with torch.no_grad():
        original = float(torch.softmax(model(inputs), 1)[0, 0])
        for segment in sorted(range(count), key=lambda s: -means[s]):
            image[:, segments == segment] = image.mean()  # the drifting mean
            curve.append(float(torch.softmax(model(image[None]), 1)[0, 0]) / original)
    drifting = count - np.trapezoid(curve)
    assert drifting == pytest.approx(float(expected[0]), abs=TOLERANCE)
    ours = irof(model, inputs, maps, torch.from_numpy(targets[:1]), segments=segments[None])
    assert abs(float(to_quantus_irof(ours)[0]) - drifting) > 10 * TOLERANCE  # they differ


# ---------------------------------------------------------------------------------------
# pytorch-grad-cam
# ---------------------------------------------------------------------------------------


def three_channel_case(seed: int, size: int):
    """A conv net on RGB images, three images, maps, targets."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                          nn.Flatten(), nn.Linear(16, 3)).eval()
    return model, torch.randn(3, 3, size, size), torch.rand(3, size, size), [0, 2, 1]


def test_confidence_change_agrees_with_pytorch_grad_cam():
    pgc = pytest.importorskip("pytorch_grad_cam.metrics.cam_mult_image")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    model, inputs, maps, targets = three_channel_case(4, 8)
    expected = pgc.CamMultImageConfidenceChange()(
        inputs, maps.numpy(), [ClassifierOutputSoftmaxTarget(t) for t in targets], model)
    ours = confidence_change(model, inputs, maps, torch.tensor(targets)).change
    assert np.allclose(ours.numpy(), expected, atol=TOLERANCE)


def test_road_combined_agrees_with_pytorch_grad_cam(monkeypatch):
    """pytorch-grad-cam's percentile ``p`` keeps the pixels below the map's ``p``-th
    percentile (``np.percentile``, interpolated) and imputes the rest, so it removes
    ``100 - p`` %, counted its own way: our percentages are the shares it removes. Its
    imputer's noise (0.01, torch's global generator) cannot be passed through
    ROADCombined: both sides run without it, the deterministic imputations compared."""
    pgc_road = pytest.importorskip("pytorch_grad_cam.metrics.road")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    monkeypatch.setattr(pgc_road.NoisyLinearImputer.__init__, "__defaults__",
                        (0.0, pgc_road.neighbors_weights))
    model, inputs, maps, targets = three_channel_case(5, 10)
    percentiles = [10, 30, 50, 70, 90]
    expected = pgc_road.ROADCombined(percentiles)(
        inputs, maps.numpy(), [ClassifierOutputSoftmaxTarget(t) for t in targets], model)
    for image in range(3):
        flat = maps[image].flatten().numpy()
        removed = [int((flat >= np.percentile(flat, p)).sum()) for p in percentiles]
        shares = [100 * count / flat.size for count in removed]
        ours = road(model, inputs[image:image + 1], maps[image:image + 1], targets[image],
                    percentages=shares, noise_std=0.0)
        assert float(ours.combined[0]) == pytest.approx(float(expected[image]),
                                                        abs=TOLERANCE)
