"""The fast paths give what the plain paths give.

Ablation-CAM and the axioms probe run the network *after* the target layer on ``K``
ablated copies of one image's activation (the copies are swapped in at the layer's forward
hook, so the part before the layer runs once). The plain path runs the whole network on
``K`` copies of the image. Both must give the same channel weights and maps (to 1e-5 of
their scale), on ResNet-18, VGG-11, MobileNetV2, and at layers that a skip connection
crosses: the block's input, computed before the target layer, is added after it (one
image's identity broadcast against the ``K`` copies).

The gradient methods' fast path (no autograd before the layer, a backward that stops at
the layer) is checked against a plain full-autograd reference in ``test_reference.py``.
"""

from __future__ import annotations

import pytest
import torch

from axiomcam.methods import AblationCAM
from axiomcam.metrics.axioms import probe_layer

CASES = [
    ("resnet18", "layer4"),              # -> GAP -> fc
    ("resnet18", "layer4.1.bn2"),        # the block's identity is added after it
    ("resnet18", "layer3.0.conv2"),      # the downsampling shortcut crosses it
    ("vgg11", "features.18"),            # in-place ReLU after it
    ("mobilenet_v2", "features.14.conv.1"),  # inside a block, before its projection
    ("mobilenet_v2", "features.15.conv.1"),  # inside a residual block: the skip crosses it
]


def ablation(model, inputs, layer, suffix_only: bool, **options):
    explainer = AblationCAM(model, layer, **options)
    # decided once per explainer: force it instead of letting the probe decide
    explainer.layer.suffix_batches = suffix_only
    with explainer:
        return explainer(inputs)


def assert_close(fast: torch.Tensor, plain: torch.Tensor, what: str) -> None:
    scale = float(plain.abs().max().clamp_min(1e-12))
    error = float((fast - plain).abs().max()) / scale
    assert error <= 1e-5, f"{what}: max |fast - plain| = {error:.3g} of the largest value"


# the plain path is K whole-network passes per image in float64 (float32 would leave
# ~1e-4 relative noise in y - y_(k)): one image per case keeps this file near a minute
_plain_results: dict = {}


def fast_and_plain(bench, arch: str, layer: str):
    key = (arch, layer)
    if key not in _plain_results:
        inputs = bench.x[:1]
        _plain_results[key] = (ablation(bench.model, inputs, layer, True),
                               ablation(bench.model, inputs, layer, False))
    return _plain_results[key]


@pytest.mark.parametrize(("arch", "layer"), CASES, ids=["-".join(c) for c in CASES])
def test_ablation_on_the_layers_after_the_target_equals_whole_network_runs(
        benches, arch, layer):
    fast, plain = fast_and_plain(benches(arch, torch.float64), arch, layer)
    assert_close(fast.channel_weights, plain.channel_weights, f"{arch} {layer} weights")
    assert_close(fast.raw, plain.raw, f"{arch} {layer} raw")
    assert_close(fast.maps, plain.maps, f"{arch} {layer} maps")
    assert torch.equal(fast.targets, plain.targets)


@pytest.mark.parametrize(("arch", "layer"), CASES[:3], ids=["-".join(c) for c in CASES[:3]])
def test_the_axioms_probe_equals_whole_network_ablation(benches, arch, layer):
    """probe_layer's ablated scores are the plain path's: its score drops ``y - y_(k)``
    equal Ablation-CAM's ``w_k * y`` (weights="score" gives ``w_k = drop_k / y``)."""
    bench = benches(arch, torch.float64)
    _, plain = fast_and_plain(bench, arch, layer)
    probe = probe_layer(bench.model, bench.x[:1], target_layer=layer)
    expected_drops = plain.channel_weights * plain.scores[:, None]
    assert_close(probe.score_drops, expected_drops, f"{arch} {layer} score drops")
    assert torch.allclose(probe.scores, plain.scores, rtol=1e-10)


def test_a_model_that_reshapes_by_the_input_batch_falls_back_and_says_so(benches):
    """``x.view(inputs.size(0), -1)`` after the layer cannot run on K copies of one
    image's activation: the whole network is re-run instead, with a warning, and the
    result is the plain path's."""
    bench = benches("resnet18", torch.float64)
    inner = bench.model

    class ReshapesByInputBatch(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            m = self.inner
            features = m.layer4(m.layer3(m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(
                m.conv1(x))))))))
            return m.fc(m.avgpool(features).view(x.size(0), -1))

    with pytest.warns(UserWarning, match="whole network is re-run per copy"):
        fallback = AblationCAM(ReshapesByInputBatch(), "inner.layer4")(bench.x[:1])
    _, plain = fast_and_plain(bench, "resnet18", "layer4")  # the same function of x
    assert_close(fallback.channel_weights, plain.channel_weights, "fallback weights")
    assert_close(fallback.maps, plain.maps, "fallback maps")
