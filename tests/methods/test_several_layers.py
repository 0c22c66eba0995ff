"""Several target layers at once (``target_layer=[...]``): each layer's explanation equals
the one that layer alone gives, the fused map is the documented ``minmax(mean_l M_l)``, one
forward pass and one backward pass per target serve every layer, hooks are removed even
when a call raises, bad lists are clear errors, and the axioms stay per layer."""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision
from few_samples import few_samples
from torch import nn

import axiomcam
from axiomcam.methods import METHOD_NAMES, AxiomCamWarning, GradCAM, create
from axiomcam.metrics.axioms import AxiomProbe, axiom_errors, probe_layer
from axiomcam.targets import ClassContrast

FIELDS = ("maps", "raw", "channel_weights", "scores", "targets", "guided", "logits")


class SmallCNN(nn.Module):
    """conv -> in-place ReLU -> conv (stride 2) -> ReLU, a residual 1x1 conv block, then
    mean -> linear; float64. The in-place ReLU follows a target layer, and the residual
    sum reads a target layer's output twice."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(inplace=True),
                                      nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 8, 1), nn.ReLU())
        self.fc = nn.Linear(8, 4)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.features(images)
        return self.fc((features + self.block(features)).mean((2, 3)))


LAYERS = ["features.0", "features.3", "block"]


def small_cnn() -> SmallCNN:
    torch.manual_seed(0)
    model = SmallCNN().double().eval()
    with torch.no_grad():
        model.fc.weight.mul_(6.0)
    return model


def images(count: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(count, 3, 12, 10, generator=generator, dtype=torch.float64)


def assert_same(actual: axiomcam.Explanation, expected: axiomcam.Explanation,
                what: str) -> None:
    for field in FIELDS:
        mine, theirs = getattr(actual, field), getattr(expected, field)
        assert (mine is None) == (theirs is None), f"{what}: {field}"
        if mine is not None:
            torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-12,
                                       msg=lambda message, f=field: f"{what} {f}: {message}")
    assert actual.method == expected.method and actual.target_layer == expected.target_layer


def by_hand_fused(maps: list[torch.Tensor]) -> torch.Tensor:
    """The documented fusion, written out: the mean of the layers' maps, then each map
    min-max scaled over its own positions."""
    mean = sum(maps) / len(maps)
    flat = mean.flatten(-2)
    low, high = flat.min(-1).values, flat.max(-1).values
    return (mean - low[..., None, None]) / (high - low)[..., None, None]


@pytest.mark.parametrize("method", [name for name in METHOD_NAMES
                                    if name not in ("cam", "guided_cam", "guided_backprop",
                                                    "occlusion", "fullgrad")])
def test_each_layer_equals_its_single_layer_explanation_and_the_fused_map_their_mean(method):
    model, x = small_cnn(), images()
    classes = torch.tensor([1, 3])
    seeded = {"seed": 0} if "randomcam" in method else {}  # the same draws in both runs
    seeded.update(few_samples(method))
    # SS-CAM's default noise (std 2 on [0, 1] masks) leaves this small random network no
    # positive weight at one layer (a constant map, which would test nothing): less noise
    if method.removeprefix("guided_") == "sscam":
        seeded["std"] = 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AxiomCamWarning)
        several = axiomcam.explain(model, x, method, LAYERS, targets=classes, **seeded)
        alone = {layer: axiomcam.explain(model, x, method, layer, targets=classes, **seeded)
                 for layer in LAYERS}
    assert several.target_layer == tuple(LAYERS) and list(several.layers) == LAYERS
    assert several.raw is None and several.channel_weights is None
    for layer in LAYERS:
        assert_same(several.layers[layer], alone[layer], f"{method} at {layer}")
        if not seeded:  # random weights may leave a map all negative: zeros after ReLU
            assert several.layers[layer].maps.flatten(1).std(1).min() > 0.05  # not constant
    torch.testing.assert_close(several.scores, alone["block"].scores, rtol=0, atol=0)
    if method.startswith("guided_"):
        # the guided product of the fused CAM map, from the one guided-backprop gradient
        cam = axiomcam.explain(model, x, method.removeprefix("guided_"), LAYERS,
                               targets=classes, **seeded)
        # Finer-CAM's guided backprop explains its own score, the class contrast
        score = ClassContrast(classes) if method == "guided_finercam" else classes
        backprop = axiomcam.explain(model, x, "guided_backprop", targets=score)
        torch.testing.assert_close(several.guided, backprop.guided * cam.maps[:, None],
                                   rtol=1e-10, atol=1e-12)
    else:
        expected = by_hand_fused([alone[layer].maps for layer in LAYERS])
        torch.testing.assert_close(several.maps, expected, rtol=1e-10, atol=1e-12)
        assert several.maps.shape == (2, 12, 10)


def test_resnet_layers_that_share_a_tensor_or_run_twice_equal_their_single_calls():
    """layer4.1.relu runs twice per forward (its last call is layer4's output) and
    layer4 returns that very tensor: hooked together with layer2 and layer3."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=5).double().eval()
    x = torch.rand(2, 3, 48, 40, dtype=torch.float64)
    layers = ["layer2", "layer3", "layer4.1.relu", "layer4"]
    for method in ("gradcam", "xgradcam", "layercam", "gradcam++"):
        several = axiomcam.explain(model, x, method, layers, targets=[0, 0])
        for layer in layers:
            assert_same(several.layers[layer],
                        axiomcam.explain(model, x, method, layer, targets=[0, 0]),
                        f"{method} at {layer}")
            assert several.layers[layer].maps.flatten(1).std(1).min() > 0.05
        torch.testing.assert_close(several.layers["layer4"].raw,
                                   several.layers["layer4.1.relu"].raw)


def test_transformer_token_and_channels_last_layers_equal_their_single_calls():
    """ViT blocks: the class token set aside at the later layer stays in the graph, so the
    gradient at the earlier layer still flows through it."""
    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=3, num_heads=2, hidden_dim=16, mlp_dim=32,
        num_classes=5).double().eval()
    nn.init.normal_(vit.heads.head.weight, std=0.5)
    swin = torchvision.models.SwinTransformer(
        patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 2], window_size=[2, 2],
        num_classes=5).double().eval()
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    # (model, layers, classes whose maps are not constant at these layers)
    cases = [(vit, ["encoder.layers.encoder_layer_0.ln_1", "encoder.layers.encoder_layer_2.ln_1"],
              [3, 3]),
             (swin, ["features.1.1.norm1", "features.3.1.norm1"], [2, 1])]
    for model, layers, classes in cases:
        for method in ("gradcam", "xgradcam", "ablationcam"):
            several = axiomcam.explain(model, x, method, layers, targets=classes)
            for layer in layers:
                assert_same(several.layers[layer],
                            axiomcam.explain(model, x, method, layer, targets=classes),
                            f"{type(model).__name__} {method} at {layer}")
                assert several.layers[layer].maps.flatten(1).std(1).min() > 0.05


def test_1d_signals_at_several_layers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 6, 5, padding=2), nn.ReLU(),
                          nn.Conv1d(6, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool1d(1),
                          nn.Flatten(), nn.Linear(8, 3)).double().eval()
    x = torch.randn(2, 2, 41, dtype=torch.float64)
    several = axiomcam.explain(model, x, "xgradcam", ["1", "3"], targets=[0, 2])
    alone = [axiomcam.explain(model, x, "xgradcam", layer, targets=[0, 2]) for layer in "13"]
    assert several.maps.shape == (2, 41)
    assert several.layers["3"].raw.shape == (2, 20)
    for layer, single in zip("13", alone, strict=True):
        assert_same(several.layers[layer], single, f"1D at {layer}")
    mean = (alone[0].maps + alone[1].maps) / 2
    low, high = mean.min(1, keepdim=True).values, mean.max(1, keepdim=True).values
    torch.testing.assert_close(several.maps, (mean - low) / (high - low))


def test_one_forward_pass_and_one_backward_pass_per_target_for_every_layer(monkeypatch):
    model, x = small_cnn(), images()
    forwards = []
    handle = model.register_forward_hook(lambda *args: forwards.append(1))
    backwards = []
    grad = torch.autograd.grad

    def counting_grad(*args, **kwargs):
        backwards.append(len(args[1]) if isinstance(args[1], list | tuple) else 1)
        return grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counting_grad)
    try:
        exp = axiomcam.explain(model, x, "gradcam", LAYERS,
                               targets=torch.tensor([[1, 3], [3, 1]]))
    finally:
        handle.remove()
    assert len(forwards) == 1
    assert backwards == [3, 3]  # one pass per target column, each reaching the 3 layers
    assert exp.maps.shape == (2, 2, 12, 10)
    assert exp.layers["block"].raw.shape == (2, 2, 6, 5)
    # one target picked from several: every layer's explanation picks it too
    first = exp.target(1)
    torch.testing.assert_close(first.layers["features.3"].maps,
                               exp.layers["features.3"].maps[:, 1])
    torch.testing.assert_close(first.maps, exp.maps[:, 1])
    assert first.layers["features.3"].targets.tolist() == [3, 1]


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


class FailsAfterTheLayers(SmallCNN):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.block(self.features(images))
        raise RuntimeError("boom after the target layers")


def test_hooks_are_removed_when_a_call_raises():
    model, x = small_cnn(), images()
    failing = FailsAfterTheLayers().double()
    for method in ("gradcam", "ablationcam", "scorecam", "guided_xgradcam", "eigencam"):
        with pytest.raises(RuntimeError, match="boom"):
            axiomcam.explain(failing, x, method, LAYERS)
        assert _hook_count(failing) == 0
        assert torch.is_grad_enabled()

    def raising_target(output):
        raise KeyError("the target fails")

    with pytest.raises(KeyError, match="the target fails"):
        axiomcam.explain(model, x, "gradcam", LAYERS, targets=raising_target)
    unused = nn.Conv2d(3, 3, 1)
    model.unused = unused
    with pytest.raises(ValueError, match="'unused' was not called"):
        axiomcam.explain(model, x, "xgradcam", ["features.3", "unused"])
    # CAM at a layer that does not feed GAP + linear: the error names that layer
    with pytest.raises(ValueError, match=r"at 'features\.3' the model's output is not linear"):
        axiomcam.explain(model, x, "cam", ["features.3", "block"])
    assert _hook_count(model) == 0


@pytest.mark.parametrize(("layers", "error", "match"), [
    ([], ValueError, "target_layer is an empty list"),
    (("block", "block"), ValueError, "target_layer lists layer 'block' twice"),
    (["features.3", "blok"], ValueError, "'blok' does not exist.*Near matches: block"),
    (["block", None], ValueError, "target_layer lists None"),
    (["block", 3], TypeError, "must be a layer name"),
])
def test_bad_layer_lists_are_clear_errors(layers, error, match):
    model = small_cnn()
    with pytest.raises(error, match=match):
        axiomcam.explain(model, images(), "gradcam", layers)
    with pytest.raises(error, match=match):
        GradCAM(model, layers)
    assert _hook_count(model) == 0


def test_a_module_listed_twice_and_guided_backprop_with_layers_are_refused():
    model = small_cnn()
    with pytest.raises(ValueError, match="lists layer 'block' twice"):
        create("xgradcam", model, ["block", model.block])
    with pytest.raises(ValueError, match="takes no target_layer"):
        create("guided_backprop", model, ["block", "features.3"])


def test_modules_a_list_of_one_and_smoothing():
    model, x = small_cnn(), images()
    by_module = axiomcam.explain(model, x, "gradcam", [model.features[3], model.block])
    assert by_module.target_layer == ("features.3", "block")
    one = axiomcam.explain(model, x, "gradcam", ["block"], targets=[1, 3])
    assert one.layers is None and one.target_layer == "block"  # a list of one is that layer
    assert_same(one, axiomcam.explain(model, x, "gradcam", "block", targets=[1, 3]), "one")
    smoothed = axiomcam.explain(model, x, "xgradcam", LAYERS, targets=[1, 3], smooth=3,
                                seed=7)
    for layer in LAYERS:
        assert_same(smoothed.layers[layer],
                    axiomcam.explain(model, x, "xgradcam", layer, targets=[1, 3], smooth=3,
                                     seed=7), f"smoothed at {layer}")


def test_axioms_are_measured_per_layer_and_refused_on_the_fused_explanation():
    model, x = small_cnn(), images()
    several = axiomcam.explain(model, x, "xgradcam", LAYERS, targets=[1, 3])
    probe = probe_layer(model, x, torch.tensor([1, 3]), "features.3")
    with pytest.raises(ValueError, match=r"at several layers \['features.0', 'features.3', "
                                         r"'block'\]: the axioms are measured per layer"):
        axiom_errors(probe, several)
    with pytest.raises(ValueError, match="the axioms are measured per layer"):
        AxiomProbe(model, x, torch.tensor([1, 3]), "features.3").errors(several)
    with pytest.raises(ValueError, match="works at one layer"):
        probe_layer(model, x, torch.tensor([1, 3]), LAYERS)
    per_layer = axiom_errors(probe, several.layers["features.3"])
    single = axiom_errors(probe, axiomcam.explain(model, x, "xgradcam", "features.3",
                                                  targets=[1, 3]))
    for field in ("conservation_error", "sensitivity_error", "bias_share"):
        torch.testing.assert_close(getattr(per_layer, field), getattr(single, field))
    assert float(per_layer.sensitivity_error.max()) > 0  # a real measurement, not zeros
