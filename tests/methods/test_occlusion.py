"""Occlusion (Zeiler & Fergus 2014) against a slow loop that hides one window at a time,
in float64: the drop map, its scaling, the baselines, batching, progress and the cost."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import axiomcam
from axiomcam.methods import Occlusion, create, method_info, occlusion_positions
from axiomcam.methods.occlusion import occlusion_baseline, window_starts


def small_net(dims: int = 2) -> nn.Module:
    conv, pool = (nn.Conv2d, nn.AdaptiveAvgPool2d) if dims == 2 else \
        (nn.Conv1d, nn.AdaptiveAvgPool1d)
    return nn.Sequential(conv(3, 6, 3, padding=1), nn.ReLU(), conv(6, 5, 3, stride=2),
                         nn.ReLU(), pool(1), nn.Flatten(), nn.Linear(5, 4)).double().eval()


def slow_occlusion(model: nn.Module, x: torch.Tensor, target: int, window: tuple[int, ...],
                   stride: tuple[int, ...], baseline: torch.Tensor) -> torch.Tensor:
    """The occlusion map of one image ``x`` ``(C, *spatial)``: every window hidden alone,
    its drop added to the pixels it covers, then divided by their count."""
    spatial = x.shape[1:]
    # the starts every stride, plus one window flush with the far edge
    starts = [sorted({*range(0, n - min(w, n) + 1, s), n - min(w, n)})
              for n, w, s in zip(spatial, window, stride, strict=True)]
    total, count = torch.zeros(spatial, dtype=x.dtype), torch.zeros(spatial, dtype=x.dtype)
    with torch.no_grad():
        clean = float(model(x[None])[0, target])
        grid = torch.cartesian_prod(*[torch.tensor(s) for s in starts]).reshape(-1, len(spatial))
        for corner in grid.tolist():
            region = (slice(None), *(slice(c, c + min(w, n))
                                     for c, w, n in zip(corner, window, spatial, strict=True)))
            copy = x.clone()
            copy[region] = baseline[region]
            drop = clean - float(model(copy[None])[0, target])
            total[region[1:]] += drop
            count[region[1:]] += 1
    assert (count > 0).all()
    return total / count


def test_occlusion_equals_the_slow_loop_with_a_stride_that_does_not_tile():
    torch.manual_seed(0)
    model, x = small_net(), torch.rand(2, 3, 11, 9, dtype=torch.float64)
    targets = torch.tensor([1, 3])
    exp = axiomcam.explain(model, x, "occlusion", window=(4, 3), stride=(3, 2),
                           targets=targets, batch_size=5)
    expected = torch.stack([slow_occlusion(model, x[b], int(targets[b]), (4, 3), (3, 2),
                                           torch.zeros_like(x[b])) for b in range(2)])
    torch.testing.assert_close(exp.raw, expected, rtol=1e-10, atol=1e-12)
    assert exp.raw.abs().amax() > 1e-3  # not a trivially zero map
    positive = expected.clamp_min(0).flatten(1)
    low, high = positive.amin(1), positive.amax(1)
    torch.testing.assert_close(exp.maps.flatten(1), (positive - low[:, None])
                               / (high - low)[:, None], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(exp.scores, model(x).detach()[[0, 1], targets])
    assert exp.method == "occlusion" and exp.target_layer is None
    assert exp.channel_weights is None


@pytest.mark.parametrize("baseline", ["mean", "blur", 0.25])
def test_every_baseline_equals_the_slow_loop_with_that_baseline(baseline):
    torch.manual_seed(1)
    model, x = small_net(), torch.rand(1, 3, 10, 12, dtype=torch.float64)
    exp = axiomcam.explain(model, x, "occlusion", window=4, stride=2, baseline=baseline,
                           targets=2)
    filled = occlusion_baseline(x, baseline, (4, 4))[0]
    if baseline == "mean":
        torch.testing.assert_close(filled, x[0].mean((1, 2), keepdim=True).expand_as(x[0]))
    elif baseline == "blur":  # scipy's Gaussian filter, edges replicated, sigma = window/2
        ndimage = pytest.importorskip("scipy.ndimage")
        blurred = ndimage.gaussian_filter(x[0].numpy(), sigma=(0, 2, 2), mode="nearest",
                                          truncate=3.0)
        torch.testing.assert_close(filled, torch.from_numpy(blurred), rtol=1e-10, atol=1e-12)
    expected = slow_occlusion(model, x[0], 2, (4, 4), (2, 2), filled)
    torch.testing.assert_close(exp.raw[0], expected, rtol=1e-10, atol=1e-12)


def test_several_targets_and_a_1d_signal_equal_the_slow_loop():
    torch.manual_seed(2)
    model, x = small_net(dims=1), torch.rand(2, 3, 17, dtype=torch.float64)
    classes = torch.tensor([[0, 3], [2, 1]])
    exp = axiomcam.explain(model, x, "occlusion", window=5, targets=classes)
    assert exp.maps.shape == exp.raw.shape == (2, 2, 17)
    for b in range(2):
        for k in range(2):
            expected = slow_occlusion(model, x[b], int(classes[b, k]), (5,), (2,),
                                      torch.zeros_like(x[b]))
            torch.testing.assert_close(exp.raw[b, k], expected, rtol=1e-10, atol=1e-12)


def test_the_cost_is_the_passes_made_and_progress_counts_the_batches():
    torch.manual_seed(3)
    model, x = small_net(), torch.rand(3, 3, 12, 12, dtype=torch.float64)
    rows, reports = [], []
    handle = model.register_forward_hook(lambda m, i, o: rows.append(o.shape[0]))
    try:
        occlusion = Occlusion(model, window=4, stride=4, batch_size=4,
                              progress=lambda done, total, what: reports.append((done, total)))
        exp = occlusion(x)
    finally:
        handle.remove()
    positions = occlusion_positions((12, 12), 4, 4)
    assert positions == 9 == len(window_starts(12, 4, 4)) ** 2
    assert occlusion.passes(x) == 27 == sum(rows) - 3  # the clean batch, then the copies
    assert max(rows[1:]) == 4 and len(rows) == 1 + 3 * 3  # 9 copies per image: 4 + 4 + 1
    assert reports[-1] == (9, 9)
    assert not model._forward_hooks and not model._forward_pre_hooks
    again = Occlusion(model, window=4, stride=4)(x)  # another batch size, the same map
    torch.testing.assert_close(exp.raw, again.raw, rtol=1e-12, atol=1e-12)
    assert occlusion_positions((224, 224)) == 13 * 13


def test_the_registry_and_create_know_it_has_no_layer():
    info = method_info("Occlusion")
    assert (info.name, info.takes_layer, info.cam, info.has_channel_weights) == (
        "occlusion", False, False, False)
    assert info.cost == "occlusion" and "occlusion" in axiomcam.METHOD_NAMES
    with pytest.raises(ValueError, match=r"occlusion explains the input: it takes no "
                                         r"target_layer \(got '0'\)"):
        create("occlusion", small_net(), "0")


@pytest.mark.parametrize(("options", "error", "message"), [
    ({"window": 0}, ValueError, r"window must be a positive int .* got 0"),
    ({"window": (4, 0)}, ValueError, r"window must be .* got \(4, 0\)"),
    ({"stride": "2"}, ValueError, r"stride must be .* got '2'"),
    ({"baseline": "grey"}, ValueError, r"baseline must be one of zeros, mean, blur.*'grey'"),
])
def test_bad_options_are_refused_when_built(options, error, message):
    with pytest.raises(error, match=message):
        Occlusion(small_net(), **options)


@pytest.mark.parametrize(("options", "error", "message"), [
    ({"window": (4, 4, 4)}, ValueError, r"window must be .* 2 positive ints .*\(4, 4, 4\)"),
    ({"baseline": torch.zeros(2, 2)}, ValueError, r"broadcast to the input's shape"),
    ({"baseline": float("nan")}, ValueError, r"baseline must be finite"),
    ({"baseline": [0.0]}, TypeError, r"not list"),
])
def test_options_that_do_not_fit_the_input_are_refused_when_called(options, error, message):
    model = small_net()
    with pytest.raises(error, match=message):
        Occlusion(model, **options)(torch.rand(1, 3, 8, 8, dtype=torch.float64))
    assert not model._forward_hooks
