"""SS-CAM, IS-CAM and Smooth Grad-CAM++ (issue 22, from torchcam 0.5).

Each method is compared with a slow loop written from its formula (one masked or noisy
copy at a time, the noise drawn from the same seeded generator), and with torchcam 0.5
on the same network, inputs and noise: where the definitions agree, to float32 rounding;
where torchcam departs from the paper (docs/peers.md "torchcam's sampled methods"),
torchcam is matched by a slow loop of *its* definition, so the difference is exactly the
one documented.

The network: a convolution + ReLU (the target layer, ``"1"``, at the input's 16 x 16
resolution, so no upsampling separates torchcam's masks from ours), a second convolution
+ ReLU (so the gradient at the layer depends on the input), global pooling and a linear
head.  16 x 16 = 256 positions, a multiple of 16: torch's CPU normal sampler then gives
the same numbers whether the noise is drawn at once or in chunks of channels.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import axiomcam
from axiomcam.methods import ISCAM, SSCAM, GradCAMPlusPlus, ScoreCAM, SmoothGradCAMPlusPlus
from axiomcam.targets import ClassScore

SIZE = 16
CLASSES = 5
# float32 throughout (torchcam draws its noise in float32): maps and weights are sums of
# ~10-100 float32 terms of size ~1, so 1e-5 absolute is a few hundred ulps of margin
ATOL = 1e-5


def small_net() -> nn.Sequential:
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, CLASSES))
    with torch.no_grad():
        model[-1].weight.mul_(4.0)  # logits spread over a few units: probabilities move
    return model.eval()


def layer_activations(model: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``(B, K, H, W)`` the target layer's output (the first conv + ReLU)."""
    with torch.no_grad():
        return model[:2](x)


def reference_masks(activations: torch.Tensor) -> torch.Tensor:
    """Each channel min-max scaled to [0, 1] (an all-constant channel: zeros)."""
    low = activations.amin(dim=(-2, -1), keepdim=True)
    span = activations.amax(dim=(-2, -1), keepdim=True) - low
    return torch.where(span > 0, (activations - low) / span.clamp_min(1e-30),
                       torch.zeros_like(activations))


def probability(model: nn.Module, image: torch.Tensor, c: int) -> float:
    with torch.no_grad():
        return torch.softmax(model(image[None]), 1)[0, c].item()


def logit(model: nn.Module, image: torch.Tensor, c: int) -> float:
    with torch.no_grad():
        return model(image[None])[0, c].item()


def masked_scores(model, x, classes, score, scale_noise):
    """``s[b, k] = mean_i score(x_b * scale_noise(i, b, M_bk)) - score(0)``, one copy at a
    time; ``scale_noise(i, b, masks (K, H, W)) -> masks`` is called sample by sample,
    image by image (the order in which the methods draw their noise)."""
    masks = reference_masks(layer_activations(model, x))
    batch, channels = masks.shape[:2]
    total = torch.zeros(batch, channels)
    samples = scale_noise.samples
    for i in range(samples):
        for b in range(batch):
            changed = scale_noise(i, b, masks[b])
            for k in range(channels):
                total[b, k] += score(model, x[b] * changed[k], classes[b])
    baseline = torch.tensor([score(model, torch.zeros_like(x[b]), classes[b])
                             for b in range(batch)])
    return total / samples - baseline[:, None]


class NoisyMasks:
    """SS-CAM's perturbation: ``M + std * N(0, 1)``, one ``(K, H, W)`` draw per image."""

    def __init__(self, samples: int, std: float, seed: int) -> None:
        self.samples, self.std = samples, std
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, i: int, b: int, masks: torch.Tensor) -> torch.Tensor:
        return masks + self.std * torch.randn(masks.shape, generator=self.generator)


class ScaledMasks:
    """IS-CAM's path: mask ``i`` scaled by ``coefficients[i]``."""

    def __init__(self, coefficients: list[float]) -> None:
        self.samples, self.coefficients = len(coefficients), coefficients

    def __call__(self, i: int, b: int, masks: torch.Tensor) -> torch.Tensor:
        return masks * self.coefficients[i]


def expected_map(weights: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    """``minmax(ReLU(sum_k w_k A^k))`` per image, as torchcam normalises (no upsampling)."""
    cam = torch.relu((weights[:, :, None, None] * activations).sum(1))
    low = cam.flatten(1).amin(1)[:, None, None]
    return (cam - low) / ((cam - low).flatten(1).amax(1)[:, None, None] + 1e-8)


@pytest.fixture
def case():
    torch.manual_seed(0)
    model = small_net()
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        classes = model(x).argmax(1).tolist()
    return model, x, classes


# ---------------------------------------------------------------- definitions (slow loops)

def test_sscam_is_its_formula_with_the_same_noise(case):
    model, x, classes = case
    exp = SSCAM(model, "1", num_samples=3, std=0.7, seed=11, batch_size=4)(x)
    expected = masked_scores(model, x, classes, probability, NoisyMasks(3, 0.7, seed=11))
    assert exp.targets.tolist() == classes
    torch.testing.assert_close(exp.channel_weights, expected, atol=ATOL, rtol=0)
    assert expected.abs().max() > 1e-3  # the weights are not trivially zero
    raw = (expected[:, :, None, None] * layer_activations(model, x)).sum(1)
    torch.testing.assert_close(exp.raw, raw, atol=ATOL, rtol=0)


def test_sscam_noise_is_seeded_and_independent_of_batch_size(case):
    model, x, _ = case
    one = SSCAM(model, "1", num_samples=2, std=1.0, seed=5, batch_size=1)(x).channel_weights
    many = SSCAM(model, "1", num_samples=2, std=1.0, seed=5)(x).channel_weights
    other_seed = SSCAM(model, "1", num_samples=2, std=1.0, seed=6)(x).channel_weights
    torch.testing.assert_close(one, many, atol=1e-6, rtol=0)
    assert (one - other_seed).abs().max() > 1e-4
    # std = 0: every sample is Score-CAM's masked image
    still = SSCAM(model, "1", num_samples=2, std=0.0, seed=5)(x).channel_weights
    torch.testing.assert_close(still, ScoreCAM(model, "1")(x).channel_weights,
                               atol=1e-6, rtol=0)


def test_iscam_integrates_the_path_from_black_to_the_masked_image(case):
    model, x, classes = case
    exp = ISCAM(model, "1", num_samples=4, batch_size=3)(x)
    expected = masked_scores(model, x, classes, probability,
                             ScaledMasks([0.25, 0.5, 0.75, 1.0]))
    torch.testing.assert_close(exp.channel_weights, expected, atol=ATOL, rtol=0)
    assert expected.abs().max() > 1e-3
    # one step is Score-CAM itself
    torch.testing.assert_close(ISCAM(model, "1", num_samples=1)(x).channel_weights,
                               ScoreCAM(model, "1")(x).channel_weights, atol=1e-7, rtol=0)


def noisy_layer_gradients(model, x, classes, samples, std, seed):
    """``G_i = dy^c/dA`` at the target layer for each noisy copy, one copy at a time, and
    the activations of each copy."""
    generator = torch.Generator().manual_seed(seed)
    gradients, activations = [], []
    for _ in range(samples):
        noisy = x + std * torch.randn(x.shape, generator=generator)
        per_image_g, per_image_a = [], []
        for b in range(x.shape[0]):
            a = model[:2](noisy[b:b + 1]).detach().requires_grad_(True)
            (g,) = torch.autograd.grad(model[2:](a)[0, classes[b]], a)
            per_image_g.append(g[0])
            per_image_a.append(a.detach()[0])
        gradients.append(torch.stack(per_image_g))
        activations.append(torch.stack(per_image_a))
    return gradients, activations


def plus_plus(first, second, third, activations):
    """Grad-CAM++'s weights from the (averaged) derivatives, position by position."""
    total = activations.sum(dim=(-2, -1), keepdim=True)
    denominator = 2 * second + total * third
    alpha = torch.where(denominator != 0, second / torch.where(denominator != 0, denominator,
                                                                 1.0), 0.0)
    return (alpha * torch.relu(first)).sum(dim=(-2, -1))


def test_smooth_gradcampp_averages_the_gradients_not_the_maps(case):
    model, x, classes = case
    exp = SmoothGradCAMPlusPlus(model, "1", num_samples=5, std=0.4, seed=3)(x)
    gradients, _ = noisy_layer_gradients(model, x, classes, 5, 0.4, seed=3)
    stacked = torch.stack(gradients)
    clean = layer_activations(model, x)
    weights = plus_plus(stacked.mean(0), stacked.pow(2).mean(0), stacked.pow(3).mean(0), clean)
    torch.testing.assert_close(exp.channel_weights, weights, atol=1e-6, rtol=1e-4)
    assert weights.abs().max() > 1e-4
    # averaging maps instead (Grad-CAM++ of each copy) is a different thing here
    mean_of_weights = torch.stack([plus_plus(g, g.pow(2), g.pow(3), clean)
                                   for g in gradients]).mean(0)
    assert (mean_of_weights - weights).abs().max() > 1e-3 * weights.abs().max()
    # std = 0: Grad-CAM++
    plain = SmoothGradCAMPlusPlus(model, "1", num_samples=2, std=0.0)(x).channel_weights
    torch.testing.assert_close(plain, GradCAMPlusPlus(model, "1")(x).channel_weights,
                               atol=1e-7, rtol=1e-5)


def test_registered_and_reachable_by_name(case):
    model, x, _ = case
    named = (("sscam", SSCAM), ("iscam", ISCAM), ("Smooth Grad-CAM++", SmoothGradCAMPlusPlus))
    for name, cls in named:
        explainer = axiomcam.methods.create(name, model, "1", num_samples=1)
        assert type(explainer) is cls
        exp = axiomcam.explain(model, x, method=name, target_layer="1", num_samples=1, seed=0)
        assert exp.maps.shape == (2, SIZE, SIZE) and exp.method == explainer.name


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "4"])
def test_bad_num_samples_is_named(case, bad):
    model = case[0]
    for cls in (SSCAM, ISCAM, SmoothGradCAMPlusPlus):
        with pytest.raises(ValueError, match=rf"num_samples must be a positive int, got {bad!r}"):
            cls(model, "1", num_samples=bad)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), "1", None])
def test_bad_std_is_named(case, bad):
    model = case[0]
    for cls in (SSCAM, SmoothGradCAMPlusPlus):
        with pytest.raises(ValueError, match="std must be a number >= 0"):
            cls(model, "1", std=bad)


def test_hooks_removed_when_the_model_raises(case):
    model, x, _ = case

    def broken(module, inputs, output):
        if output.shape[0] > 2:  # only the batched masked / noisy passes fail
            raise RuntimeError("boom")

    handle = model[3].register_forward_hook(broken)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            SSCAM(model, "1", num_samples=1, batch_size=8)(x)
    finally:
        handle.remove()
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


# ---------------------------------------------------------------- agreement with torchcam

torchcam_methods = pytest.importorskip("torchcam.methods")


def torchcam_maps(extractor_class, model, x, classes, seed, layer="1", **options):
    with extractor_class(model, layer, input_shape=(3, SIZE, SIZE), **options) as extractor:
        scores = model(x)
        torch.manual_seed(seed)  # torchcam draws its noise from the global generator
        (cams,) = extractor(classes, scores)
    return cams.detach()


def softmaxed_logit_weights(cls, model, x, classes, **options):
    """Our weights with the logit as the score (``ClassScore``), softmaxed over channels:
    torchcam's weights, since a softmax ignores the baseline each image's scores share."""
    weights = [cls(model, "1", **options)(x[b:b + 1], ClassScore(c)).channel_weights
               for b, c in enumerate(classes)]
    return torch.softmax(torch.cat(weights), dim=1)


def test_sscam_agrees_with_torchcam_on_the_same_noise(case):
    model, x, classes = case
    theirs = torchcam_maps(torchcam_methods.SSCAM, model, x, classes, seed=21,
                           num_samples=3, std=0.5, batch_size=5)
    # torchcam draws (B, K, H, W) per sample, we draw per sample, image and channel: the
    # same order when the whole batch is explained at once, with each image's logit
    wanted = torch.tensor(classes)

    def class_logit(output: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return output[torch.arange(len(rows)), wanted[rows]]

    ours = SSCAM(model, "1", num_samples=3, std=0.5, seed=21)(x, class_logit)
    weights = torch.softmax(ours.channel_weights, dim=1)
    torch.testing.assert_close(theirs, expected_map(weights, layer_activations(model, x)),
                               atol=ATOL, rtol=0)


def test_iscam_agrees_with_torchcam_on_one_step_and_differs_by_its_cumulative_path(case):
    model, x, classes = case
    one_step = torchcam_maps(torchcam_methods.ISCAM, model, x, classes, seed=0,
                             num_samples=1, batch_size=4)
    weights = softmaxed_logit_weights(ISCAM, model, x, classes, num_samples=1)
    activations = layer_activations(model, x)
    torch.testing.assert_close(one_step, expected_map(weights, activations), atol=ATOL, rtol=0)
    # N = 3: torchcam scales mask i by sum_{j<=i} j/3 = 1/3, 1, 2 (ours: 1/3, 2/3, 1)
    theirs = torchcam_maps(torchcam_methods.ISCAM, model, x, classes, seed=0,
                           num_samples=3, batch_size=4)
    cumulative = masked_scores(model, x, classes, logit, ScaledMasks([1 / 3, 1.0, 2.0]))
    torch.testing.assert_close(
        theirs, expected_map(torch.softmax(cumulative, 1), activations), atol=ATOL, rtol=0)
    # the paths differ by more than the tolerance above, so that check tells them apart
    ours = softmaxed_logit_weights(ISCAM, model, x, classes, num_samples=3)
    assert (expected_map(ours, activations) - theirs).abs().max() > 10 * ATOL


def test_smooth_gradcampp_agrees_with_torchcam_without_noise_and_differs_as_documented(case):
    model, x, classes = case
    with torch.no_grad():  # gradients at the layers of ~0.1-1, so torchcam's 1e-8 (below)
        model[-1].weight.mul_(100.0)  # changes alpha by < 1e-6 relatively
        classes = model(x).argmax(1).tolist()
    # where the definitions agree: at the last ReLU (then global pooling and a linear
    # head) the gradient is the same at every position and for every copy, so torchcam's
    # sum_ab D3 A, its last copy's ReLU(G) and the mean's agree with the paper's; without
    # noise the last copy's activations are the clean ones. torchcam refuses std=0; noise
    # of 1e-12 vanishes in float32 inputs of size ~0.5. Its 1e-8 in the denominator
    # changes alpha by ~1e-8 / (2 G^2) relatively.
    still = torchcam_maps(torchcam_methods.SmoothGradCAMpp, model, x, classes, seed=0,
                          layer="3", num_samples=2, std=1e-12)
    ours = SmoothGradCAMPlusPlus(model, "3", num_samples=2, std=0.0)(x).channel_weights
    with torch.no_grad():
        last_layer = model[:4](x)
    torch.testing.assert_close(still, expected_map(ours, last_layer), atol=ATOL, rtol=0)
    # with noise, at the first ReLU: torchcam averages G^2 and G^3 over the copies as the
    # paper does, but (1) its alpha's denominator sums D3 * A over positions instead of
    # multiplying D3 at the position by sum A, (2) it weights ReLU of the *last* copy's
    # gradient (not the mean D1) and (3) it sums the last copy's activations into the map
    # (not the clean image's)
    theirs = torchcam_maps(torchcam_methods.SmoothGradCAMpp, model, x, classes, seed=9,
                           num_samples=4, std=0.3)
    gradients, noisy_activations = noisy_layer_gradients(model, x, classes, 4, 0.3, seed=9)
    stacked = torch.stack(gradients)
    activations = layer_activations(model, x)
    second, third = stacked.pow(2).mean(0), stacked.pow(3).mean(0)
    alpha = second / (2 * second + (third * activations).sum(dim=(-2, -1), keepdim=True)
                      + 1e-8)
    torchcam_weights = (alpha * torch.relu(gradients[-1])).sum(dim=(-2, -1))
    torch.testing.assert_close(theirs, expected_map(torchcam_weights, noisy_activations[-1]),
                               atol=ATOL, rtol=0)
    ours = SmoothGradCAMPlusPlus(model, "1", num_samples=4, std=0.3, seed=9)(x)
    assert (expected_map(ours.channel_weights, activations) - theirs).abs().max() > 1e-2
