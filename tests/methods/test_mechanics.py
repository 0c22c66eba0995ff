"""What every call must guarantee: hooks removed, no parameter gradients, eval mode restored,
one forward pass, nothing kept alive, in-place ReLUs, clear errors on bad input."""

from __future__ import annotations

import gc
import warnings

import pytest
import torch
import torchvision
from few_samples import few_samples
from torch import nn

import axiomcam
from axiomcam.methods import METHOD_NAMES, AxiomCamWarning, XGradCAM, method_info

GRADIENT_METHODS = ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam"]
#: the sampled methods with few samples (N x 512 masked passes at layer4 otherwise)


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(2, 3, 64, 64)


def _hook_count(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        + len(getattr(m, "_backward_pre_hooks", {}))
        for m in model.modules()
    )


def _live_tensors() -> int:
    gc.collect()
    count = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecated aliases warn on isinstance
        objects = gc.get_objects()
    for obj in objects:
        try:
            if torch.is_tensor(obj):
                count += 1
        except Exception:  # some objects refuse isinstance checks
            pass
    return count


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_every_method_leaves_no_hook_no_grad_and_restores_modes(method, resnet, images):
    model = resnet
    model.train()
    model.layer1.eval()  # mixed flags must come back exactly as they were
    frozen = model.conv1.weight
    frozen.requires_grad_(False)
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    modes = {name: m.training for name, m in model.named_modules()}
    try:
        layer = None if not method_info(method).takes_layer else "layer4"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AxiomCamWarning)
            exp = axiomcam.explain(model, images, method=method, target_layer=layer,
                                   batch_size=256, **few_samples(method))
        assert exp.method == method
        assert exp.maps.shape == (2, 64, 64)
        assert torch.isfinite(exp.maps).all()
        assert exp.maps.min() >= 0 and exp.maps.max() <= 1
        assert not exp.maps.requires_grad and exp.maps.grad_fn is None
        assert _hook_count(model) == 0
        assert all(p.grad is None for p in model.parameters())
        assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
        assert {n: m.training for n, m in model.named_modules()} == modes
    finally:
        frozen.requires_grad_(True)
        model.eval()


def test_fifty_calls_leave_nothing_behind(resnet, images):
    cam = XGradCAM(resnet, "layer3")
    cam(images)  # warm-up: lazily created module state and caches
    before = _live_tensors()
    for _ in range(50):
        exp = cam(images)
    del exp
    after = _live_tensors()
    assert after - before <= 5, f"{after - before} tensors more after 50 calls"
    assert _hook_count(resnet) == 0
    assert all(p.grad is None for p in resnet.parameters())


def test_hooks_removed_when_the_call_raises(resnet, images):
    with pytest.raises(ValueError, match="out of range"):
        axiomcam.explain(resnet, images, method="gradcam", target_layer="layer4", targets=10)
    assert _hook_count(resnet) == 0

    class Failing(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.relu(self.conv(x))
            raise RuntimeError("boom inside the model")

    failing = Failing()
    for method in ("gradcam", "ablationcam", "guided_gradcam"):
        with pytest.raises(RuntimeError, match="boom"):
            axiomcam.explain(failing, images, method=method, target_layer="conv")
        assert _hook_count(failing) == 0
    assert torch.is_grad_enabled()  # the hook's grad switch does not leak


def test_several_targets_take_one_forward_pass(resnet, images):
    calls = []
    handle = resnet.register_forward_hook(lambda *args: calls.append(1))
    try:
        exp = axiomcam.explain(resnet, images, method="xgradcam", target_layer="layer3",
                               targets=torch.tensor([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]))
    finally:
        handle.remove()
    assert len(calls) == 1
    assert exp.maps.shape == (2, 5, 64, 64)
    assert exp.raw.shape == (2, 5, 4, 4)
    assert exp.channel_weights.shape == (2, 5, 256)
    assert exp.targets.tolist() == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    logits = resnet(images)
    torch.testing.assert_close(exp.scores, logits.gather(1, exp.targets))


@pytest.mark.parametrize("method", ["xgradcam", "guided_gradcam", "guided_backprop"])
def test_one_target_picked_from_several_equals_explaining_it_alone(resnet, images, method):
    layer = None if not method_info(method).takes_layer else "layer3"
    targets = torch.tensor([[0, 1, 2], [5, 6, 7]])
    several = axiomcam.explain(resnet, images, method=method, target_layer=layer,
                               targets=targets)
    for index in (1, -1):
        picked = several.target(index)
        alone = axiomcam.explain(resnet, images, method=method, target_layer=layer,
                                 targets=targets[:, index].clone())
        for field in ("maps", "raw", "channel_weights", "scores", "targets", "guided",
                      "logits"):
            value, expected = getattr(picked, field), getattr(alone, field)
            assert (value is None) == (expected is None), field
            if value is not None:
                torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6,
                                           msg=field)
    with pytest.raises(IndexError, match="target index 3 out of range for 3 targets"):
        several.target(3)
    with pytest.raises(ValueError, match="one target per image"):
        several.target(0).target(0)


def test_default_targets_are_top_classes_and_scores_are_logits(resnet, images):
    exp = axiomcam.explain(resnet, images, method="gradcam")
    logits = resnet(images).detach()
    assert exp.targets.tolist() == logits.argmax(1).tolist()
    torch.testing.assert_close(exp.scores, logits.max(1).values)
    assert exp.target_layer == "layer4"


@pytest.mark.parametrize("method", ["xgradcam", "ablationcam", "scorecam", "guided_backprop",
                                    "guided_gradcam"])
def test_top_classes_equal_the_same_classes_given_and_cost_no_extra_pass(method, resnet,
                                                                          images):
    logits = resnet(images).detach()
    top3 = logits.topk(3, dim=1).indices
    options = {"target_layer": None if not method_info(method).takes_layer else "layer4",
               "batch_size": 512}
    calls = []
    handle = resnet.register_forward_hook(lambda *args: calls.append(1))
    try:
        found = axiomcam.explain(resnet, images, method=method,
                                 targets=axiomcam.TopClasses(3), **options)
        clean_passes = len(calls)
        given = axiomcam.explain(resnet, images, method=method, targets=top3, **options)
    finally:
        handle.remove()
    assert clean_passes == len(calls) - clean_passes  # finding the classes adds no pass
    assert found.targets.tolist() == top3.tolist()
    assert found.maps.shape == (2, 3, 64, 64)
    torch.testing.assert_close(found.maps, given.maps)
    torch.testing.assert_close(found.scores, logits.gather(1, top3))
    torch.testing.assert_close(found.logits, logits)
    torch.testing.assert_close(given.logits, logits)


def test_logits_are_the_clean_inputs_scores_and_absent_for_callable_targets(resnet, images):
    logits = resnet(images).detach()
    smoothed = axiomcam.explain(resnet, images, method="gradcam", smooth=2, seed=0)
    torch.testing.assert_close(smoothed.logits, logits)  # not a noisy copy's
    assert smoothed.targets.tolist() == logits.argmax(1).tolist()
    by_callable = axiomcam.explain(resnet, images, method="gradcam",
                                   targets=lambda output: output[:, 3])
    assert by_callable.logits is None


@pytest.mark.parametrize("k", [0, -1, True, 2.0])
def test_top_classes_needs_a_positive_int(k):
    with pytest.raises(ValueError, match="TopClasses needs a positive int k"):
        axiomcam.TopClasses(k)


def test_top_classes_beyond_the_number_of_classes_is_refused(resnet, images):
    with pytest.raises(ValueError, match=r"TopClasses\(11\) asks for more classes than the "
                                         r"model's 10"):
        axiomcam.explain(resnet, images, method="gradcam", targets=axiomcam.TopClasses(11))


def test_callable_target_equals_class_target(resnet, images):
    by_class = axiomcam.explain(resnet, images, method="xgradcam", target_layer="layer3",
                                targets=3)
    by_callable = axiomcam.explain(resnet, images, method="xgradcam", target_layer="layer3",
                                   targets=lambda output: output[:, 3])
    torch.testing.assert_close(by_callable.raw, by_class.raw)
    torch.testing.assert_close(by_callable.scores, by_class.scores)
    assert by_callable.targets is None
    # perturbation methods hand the callable copies of one image (and say which)
    seen = []

    def score(output: torch.Tensor, image_indices: torch.Tensor) -> torch.Tensor:
        seen.append(image_indices.clone())
        return output[:, 3]

    ablation = axiomcam.explain(resnet, images, method="ablationcam", target_layer="layer4",
                                targets=score, batch_size=512)
    reference = axiomcam.explain(resnet, images, method="ablationcam", target_layer="layer4",
                                 targets=3, batch_size=512)
    torch.testing.assert_close(ablation.raw, reference.raw)
    assert {int(i) for chunk in seen for i in chunk.unique()} == {0, 1}


def test_inplace_relu_after_the_target_layer():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
    ).double()
    x = torch.rand(2, 3, 12, 12, dtype=torch.double)
    target_output = model[2](model[1](model[0](x.clone())))  # pre-ReLU, as a reference
    for method in ["gradcam", "xgradcam", "eigencam", "ablationcam", "scorecam"]:
        exp = axiomcam.explain(model, x, method=method, target_layer="2", targets=1)
        assert exp.raw.shape == (2, 12, 12)
    # the recorded activation is the conv's output, not the ReLU-modified tensor
    exp = axiomcam.explain(model, x, method="hirescam", target_layer="2", targets=1)
    positive = target_output > 0
    expected = (target_output * positive * model[6].weight[1][None, :, None, None]
                / 144).sum(1)
    torch.testing.assert_close(exp.raw, expected.detach())


def test_module_called_twice_uses_its_last_call():
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
            self.act = nn.ReLU()  # called twice
            self.fc = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.act(self.conv1(x))
            x = self.act(self.conv2(x))
            return self.fc(x.mean((2, 3)))

    torch.manual_seed(0)
    model = Shared().double()
    x = torch.rand(1, 3, 8, 8, dtype=torch.double)
    exp = axiomcam.explain(model, x, method="cam", target_layer="act", targets=0)
    last = model.act(model.conv2(model.act(model.conv1(x))))
    expected = (model.fc.weight[0][:, None, None] * last[0]).sum(0) / 64
    torch.testing.assert_close(exp.raw[0], expected.detach())
    ablation = axiomcam.explain(model, x, method="ablationcam", target_layer="act",
                                targets=0, weights="activation")
    torch.testing.assert_close(ablation.raw, exp.raw)  # linear head: both are exact
    # gradient methods: autograd is switched on from the last call once the object has seen
    # how often the layer runs; every call must give the same, exact result
    with XGradCAM(model, "act") as cam:
        for _ in range(3):
            torch.testing.assert_close(cam(x, targets=0).raw, exp.raw)


def test_ablation_falls_back_when_the_model_reshapes_with_the_input_batch():
    class BatchReshape(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 6, 3)
            self.relu = nn.ReLU()
            self.fc = nn.Linear(6 * 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            batch = x.shape[0]
            y = nn.functional.adaptive_avg_pool2d(self.relu(self.conv(x)), 2)
            return self.fc(y.view(batch, -1))

    torch.manual_seed(0)
    model = BatchReshape().double()
    x = torch.rand(2, 3, 10, 10, dtype=torch.double)
    with pytest.warns(AxiomCamWarning, match="re-run per copy"):
        exp = axiomcam.explain(model, x, method="ablationcam", target_layer="relu",
                               weights="activation", batch_size=4)
    # reference: zero one channel at a time and re-run the whole model
    activation = model.relu(model.conv(x))
    scores = model(x).gather(1, exp.targets[:, None]).squeeze(1)
    for channel in range(6):
        handle = model.relu.register_forward_hook(
            lambda m, a, out, c=channel: out.index_fill(1, torch.tensor([c]), 0.0))
        ablated = model(x).gather(1, exp.targets[:, None]).squeeze(1)
        handle.remove()
        mass = activation[:, channel].sum((1, 2))
        expected = torch.where(mass == 0, 0.0, (scores - ablated) / mass)  # 0 for dead channels
        torch.testing.assert_close(exp.channel_weights[:, channel], expected.detach())


def test_all_zero_activations_give_zero_maps_and_a_warning():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(-1.0)  # every activation is ReLU(-1) = 0
    for method in ["cam", "gradcam", "gradcam++", "xgradcam", "hirescam", "layercam",
                   "ablationcam", "scorecam", "eigencam", "guided_gradcam"]:
        with pytest.warns(AxiomCamWarning, match="constant"):
            exp = axiomcam.explain(model, torch.rand(2, 3, 8, 8), method=method,
                                   target_layer="1")
        assert torch.isfinite(exp.maps).all() and (exp.maps == 0).all(), method
        if exp.channel_weights is not None:
            assert torch.isfinite(exp.channel_weights).all(), method


def test_smoothing(resnet, images):
    plain = axiomcam.explain(resnet, images, method="gradcam", target_layer="layer3")
    no_noise = axiomcam.explain(resnet, images, method="gradcam", target_layer="layer3",
                                smooth=3, smooth_sigma=0.0)
    torch.testing.assert_close(no_noise.raw, plain.raw)
    first = axiomcam.explain(resnet, images, method="gradcam", target_layer="layer3",
                             smooth=4, seed=7)
    again = axiomcam.explain(resnet, images, method="gradcam", target_layer="layer3",
                             smooth=4, seed=7)
    other = axiomcam.explain(resnet, images, method="gradcam", target_layer="layer3",
                             smooth=4, seed=8)
    torch.testing.assert_close(first.raw, again.raw)
    assert not torch.allclose(first.raw, other.raw)
    assert not torch.allclose(first.raw, plain.raw)
    assert first.targets.tolist() == plain.targets.tolist()  # chosen on the clean image
    assert first.maps.min() >= 0 and first.maps.max() <= 1
    guided = axiomcam.explain(resnet, images, method="guided_xgradcam", target_layer="layer4",
                              smooth=2, seed=1)
    assert guided.guided.shape == (2, 3, 64, 64)


def test_cam_needs_a_gap_linear_head(resnet, images):
    with pytest.raises(ValueError, match="global average pooling"):
        axiomcam.explain(resnet, images, method="cam", target_layer="layer3")
    with pytest.raises(ValueError, match="callable target"):
        axiomcam.explain(resnet, images, method="cam", target_layer="layer4",
                         targets=lambda out: out[:, 0])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"target_layer": "layer5"}, ValueError, r"'layer5' does not exist.*layer[1-4]"),
        ({"target_layer": "fc"}, ValueError, r"outputs shape \(2, 10\)"),
        ({"target_layer": nn.Conv2d(3, 3, 1)}, ValueError, "not a submodule"),
        ({"target_layer": 3}, TypeError, "target_layer must be"),
        ({"targets": 10}, ValueError, r"class 10 is out of range.*10 classes"),
        ({"targets": -1}, ValueError, "class -1 is out of range"),
        ({"targets": [1, 2, 3]}, ValueError, "3 targets for a batch of 2"),
        ({"targets": torch.tensor([1])}, ValueError, "1 targets for a batch of 2"),
        ({"targets": 1.5}, TypeError, "targets must be"),
        ({"targets": [1.0, 2.0]}, TypeError, "integer class indices"),
        ({"targets": True}, TypeError, "not a bool"),
        ({"targets": lambda out: out}, ValueError, r"returned \(2, 10\)"),
        ({"targets": lambda out: out.argmax(1).float()}, ValueError,
         "does not depend differentiably"),
        ({"targets": lambda out: [0.0, 1.0]}, TypeError, "must return a tensor of shape"),
        ({"method": "gradcan"}, ValueError, "unknown method 'gradcan'.*gradcam"),
        ({"smooth": -1}, ValueError, "smooth must be"),
        ({"batch_size": 0}, ValueError, "batch_size must be"),
        ({"weights": "bogus", "method": "ablationcam"}, ValueError, "weights must be"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, match, resnet, images):
    options = {"method": "gradcam", "target_layer": "layer4", **kwargs}
    with pytest.raises(error, match=match):
        axiomcam.explain(resnet, images, **options)
    assert _hook_count(resnet) == 0


@pytest.mark.parametrize(
    ("inputs", "error", "match"),
    [
        ([[1.0]], TypeError, "must be a torch.Tensor"),
        (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), TypeError, "float tensor"),
        (torch.rand(3, 32, 32), ValueError, r"unsqueeze\(0\)"),
        (torch.rand(2, 1, 32, 32), ValueError, "1 channels but the model's first conv"),
        (torch.rand(0, 3, 32, 32), ValueError, "empty batch"),
        (torch.rand(2, 3, 32, 32, dtype=torch.double), TypeError, "dtype torch.float64"),
        (torch.rand(2, 3, 32, 32).index_fill(0, torch.tensor([1]), float("nan")),
         ValueError, r"NaN or inf \(images \[1\]\)"),
    ],
)
def test_bad_inputs_raise_clear_errors(inputs, error, match, resnet):
    with pytest.raises(error, match=match):
        axiomcam.explain(resnet, inputs, method="gradcam", target_layer="layer4")


def test_bad_models_raise_clear_errors(images):
    with pytest.raises(ValueError, match="no parameters"):
        axiomcam.explain(nn.Sequential(nn.ReLU()), images)
    with pytest.raises(TypeError, match=r"must be a torch\.nn\.Module"):
        axiomcam.explain(lambda x: x, images)
    on_meta = torchvision.models.resnet18(num_classes=10).to("meta")
    with pytest.raises(ValueError, match="inputs are on cpu but the model is on meta"):
        axiomcam.explain(on_meta, images)

    class NaNOutput(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.conv(x).mean((2, 3))) * float("nan")

    with pytest.raises(ValueError, match="scores contain NaN"):
        axiomcam.explain(NaNOutput(), images, method="gradcam", target_layer="conv", targets=0)


def test_target_layer_as_module_and_auto_choice(resnet, images):
    by_module = axiomcam.explain(resnet, images, method="gradcam", target_layer=resnet.layer3)
    assert by_module.target_layer == "layer3"
    mobilenet = torchvision.models.mobilenet_v2(num_classes=10).eval()
    assert axiomcam.explain(mobilenet, images, method="gradcam").target_layer == "features.18"
