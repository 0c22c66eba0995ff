"""Every method agrees with a slow, plain reference written from its definition.

The references (``reference.py``) work one image and one channel at a time on a private deep
copy of the model; the library's ``raw``, ``channel_weights``, ``maps``, ``scores``,
``targets`` and ``guided`` must match them to 1e-4 of the reference's largest value, on
ResNet-18, VGG-11 and MobileNetV2 (random weights; BatchNorm statistics set from noise
images, random BatchNorm scales and shifts: see ``conftest.calibrate``), in float64 (VGG's
Score-CAM in float32, see ``SCORECAM_CASES``), at layers that feed global average pooling
and at layers that do not.

Set ``AXIOMCAM_FULL_REFERENCE=1`` to run Ablation-CAM and Score-CAM at every layer, on two
images, in float64 (about half an hour on two cores).
"""

from __future__ import annotations

import os
import warnings

import pytest
import reference as ref
import torch
import torch.nn.functional as F
from few_samples import few_samples
from torch import nn

import axiomcam
from axiomcam.methods import (
    CAM,
    METHOD_NAMES,
    AblationCAM,
    EigenCAM,
    GradCAM,
    GradCAMPlusPlus,
    GuidedBackprop,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
    method_info,  # the reusable objects
)

FULL = os.environ.get("AXIOMCAM_FULL_REFERENCE", "") not in ("", "0")
IMAGES = 3  # = conftest.IMAGES
F64, F32 = torch.float64, torch.float32

GRADIENT_METHODS = ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam"]
LAYER_METHODS = [*GRADIENT_METHODS, "eigencam"]  # computed from one forward (+ backward)

# (architecture, layer): GAP-fed and not; in-place hazards; a module called twice
LAYERS = [
    ("resnet18", "layer4"),          # -> GAP -> fc
    ("resnet18", "layer3"),
    ("resnet18", "layer2"),
    ("resnet18", "layer4.1.relu"),   # called twice per forward: the last call is layer4's output
    ("resnet18", "layer4.1.bn2"),    # then modified in place by `out += identity`
    ("vgg11", "features.18"),        # last conv, then modified in place by ReLU(inplace=True)
    ("vgg11", "features.19"),        # that in-place ReLU
    ("mobilenet_v2", "features.18"),  # -> GAP -> Dropout -> Linear
    ("mobilenet_v2", "features.17.conv.1"),
    ("mobilenet_v2", "features.13"),  # a residual sum (no ReLU): signed activations
]
GAP_LAYERS = [("resnet18", "layer4"), ("resnet18", "layer4.1.relu"),
              ("mobilenet_v2", "features.18")]
NON_GAP_LAYERS = [case for case in LAYERS if case not in GAP_LAYERS]
# The perturbation references are slow: K whole-model forward passes per image (K = 512 at
# ResNet's layer4 and VGG's features.18), and float64 convolutions are ~8x slower than
# float32 on CPU.  By default: one layer per architecture and one or two images, as
# (arch, layer, images, dtype); every layer and two images with AXIOMCAM_FULL_REFERENCE=1.
# Ablation-CAM needs float64: y - y_(k) cancels (float32 left ~5e-4 relative errors).
ABLATION_CASES = [(arch, layer, 2, F64) for arch, layer in LAYERS] if FULL else [
    ("resnet18", "layer2", 1, F64), ("vgg11", "features.18", 1, F64),
    ("mobilenet_v2", "features.13", 2, F64)]
# Score-CAM mostly needs float64 too: s_k = p(x * M_k) - p(0) is small for some classes
# (float32 left 3e-5 at ResNet's layer4, 1.4e-4 at MobileNetV2's features.16).  VGG-11 is
# the exception, run in float32 (its 512 float64 passes take 20 s per image, float32 ~3x
# less): there float32 agrees to 3e-6, 30x inside the tolerance.
SCORECAM_CASES = [(arch, layer, 2, F64) for arch, layer in LAYERS] if FULL else [
    ("resnet18", "layer2", 1, F64), ("vgg11", "features.18", 1, F32),
    ("mobilenet_v2", "features.13", 2, F64)]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a 2-core machine shared with other processes, two threads
    made float64 convolutions 10-50x slower (spinning threads waiting for each other)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def ids(case: tuple) -> str:
    return "-".join(str(part).replace("torch.", "") for part in case)


def check_against(exp, expected: dict, what: str, rtol: float = 1e-4) -> None:
    """Compare every field of a library explanation with the reference's."""
    for field, key in (("raw", "raw"), ("channel_weights", "weights"), ("maps", "maps"),
                       ("guided", "guided")):
        value = getattr(exp, field)
        if expected[key] is None:
            assert value is None, f"{what}: {field} should be None, got {tuple(value.shape)}"
        else:
            ref.assert_rel_close(value, expected[key], rtol, f"{what} {field}")
    score_rtol = 1e-10 if expected["scores"].dtype == torch.float64 else 1e-5
    ref.assert_rel_close(exp.scores, expected["scores"], score_rtol, f"{what} scores")
    assert exp.targets is not None, f"{what}: targets is None"
    assert exp.targets.dtype == torch.long, f"{what}: targets dtype {exp.targets.dtype}"
    assert torch.equal(exp.targets.cpu(), expected["targets"]), (
        f"{what}: targets {exp.targets.tolist()} != {expected['targets'].tolist()}")
    maps = exp.maps
    assert maps.is_floating_point() and float(maps.min()) >= 0 and float(maps.max()) <= 1


# =========================================================================== 1. reference


@pytest.mark.parametrize("method", LAYER_METHODS)
@pytest.mark.parametrize("case", LAYERS, ids=ids)
def test_gradient_and_eigen_methods_match_reference(benches, case, method):
    arch, layer = case
    bench = benches(arch)
    exp = bench.library(method, layer, IMAGES)
    assert exp.method == method
    assert exp.target_layer == layer
    check_against(exp, bench.expected(method, layer, IMAGES), f"{method} {arch} {layer}")


@pytest.mark.parametrize("case", GAP_LAYERS, ids=ids)
def test_cam_matches_reference_on_gap_heads(benches, case):
    arch, layer = case
    bench = benches(arch)
    exp = bench.library("cam", layer, IMAGES)
    check_against(exp, bench.expected("cam", layer, IMAGES), f"cam {arch} {layer}")


@pytest.mark.parametrize("case", NON_GAP_LAYERS, ids=ids)
def test_cam_refuses_layers_that_do_not_feed_gap_and_linear(benches, case):
    arch, layer = case
    bench = benches(arch)
    with pytest.raises(ValueError):
        axiomcam.explain(bench.model, bench.x[:1], method="cam", target_layer=layer)


def three_targets(bench, n: int) -> torch.Tensor:
    """``(n, 3)`` classes: each image's top class and two others.  The perturbation methods
    get every class's score from the same forward passes, so three cost as much as one, and
    some of the three maps are not all-negative (which would make ``maps`` all zeros)."""
    rows = []
    for b in range(n):
        top = bench.top_class(b)
        others = [c for c in range(10) if c != top]
        rows.append([top, others[(3 * b + 1) % 9], others[(5 * b + 6) % 9]])
    return torch.tensor(rows)


@pytest.mark.parametrize("weights", ["score", "activation"])
@pytest.mark.parametrize("case", ABLATION_CASES, ids=ids)
def test_ablationcam_matches_reference(benches, case, weights):
    arch, layer, n, dtype = case
    bench = benches(arch, dtype)
    targets = three_targets(bench, n)
    exp = bench.library("ablationcam", layer, n, targets=targets, weights=weights)
    # the sensitivity-exact form reports its variant name, as methods.create accepts it
    assert exp.method == ("ablationcam" if weights == "score" else "ablationcam:activation")
    check_against(exp, bench.expected("ablationcam", layer, n, targets=targets, form=weights),
                  f"ablationcam({weights}) {arch} {layer}")


@pytest.mark.parametrize("case", SCORECAM_CASES, ids=ids)
def test_scorecam_matches_reference(benches, case):
    arch, layer, n, dtype = case
    bench = benches(arch, dtype)
    targets = three_targets(bench, n)
    exp = bench.library("scorecam", layer, n, targets=targets)
    assert exp.method == "scorecam"
    check_against(exp, bench.expected("scorecam", layer, n, targets=targets),
                  f"scorecam {arch} {layer}")


def test_ablationcam_at_a_module_called_twice_ablates_its_last_call(benches):
    """``layer4.1.relu`` runs twice per forward; its last call is ``layer4``'s output, so
    ablating it must equal ablating ``layer4`` (ablating its first call would not)."""
    bench = benches("resnet18")
    twice = bench.library("ablationcam", "layer4.1.relu", IMAGES)
    _assert_same_explanation(twice, [bench.library("ablationcam", "layer4", IMAGES)],
                             "ablationcam layer4.1.relu vs layer4", 1e-10)


def test_scorecam_batch_size_does_not_change_the_result(benches):
    """Chunks of 7 copies (not a divisor of K) give the same weights as the default."""
    bench = benches("mobilenet_v2")
    layer = "features.13"
    targets = three_targets(bench, 1)
    chunked = axiomcam.explain(bench.model, bench.x[:1], method="scorecam", target_layer=layer,
                               targets=targets, batch_size=7)
    check_against(chunked, bench.expected("scorecam", layer, 1, targets=targets),
                  "scorecam batch_size=7")


def test_ablationcam_batch_size_does_not_change_the_result(benches):
    bench = benches("resnet18")
    chunked = axiomcam.explain(bench.model, bench.x[:1], method="ablationcam",
                               target_layer="layer4", batch_size=100)
    _assert_same_explanation(chunked, [bench.library("ablationcam", "layer4", 1)],
                             "ablationcam batch_size=100 vs 64", 1e-10)


# =========================================================================== 2. GAP heads


@pytest.mark.parametrize("case", GAP_LAYERS, ids=ids)
def test_cam_gradcam_xgradcam_are_equal_on_gap_heads(benches, case):
    arch, layer = case
    bench = benches(arch)
    cam, gradcam, xgradcam = (bench.library(m, layer, IMAGES)
                              for m in ("cam", "gradcam", "xgradcam"))
    for other, name in ((gradcam, "gradcam"), (xgradcam, "xgradcam")):
        ref.assert_rel_close(other.raw, cam.raw, 1e-5, f"{name} raw vs cam {arch} {layer}")
        ref.assert_rel_close(other.maps, cam.maps, 1e-5, f"{name} maps vs cam {arch} {layer}")
    ref.assert_rel_close(gradcam.channel_weights, cam.channel_weights, 1e-5,
                         f"gradcam weights vs cam {arch} {layer}")
    # XGrad-CAM's weight is 0 for an all-zero channel (which adds nothing to the map)
    activation_sums = torch.stack([
        bench.passes(layer, b, bench.top_class(b))["A"].sum((1, 2)) for b in range(IMAGES)])
    alive = activation_sums != 0
    assert alive.sum() > 10
    ref.assert_rel_close(xgradcam.channel_weights[alive], cam.channel_weights[alive], 1e-5,
                         f"xgradcam weights vs cam {arch} {layer}")
    assert (xgradcam.channel_weights[~alive] == 0).all()


@pytest.mark.parametrize("case", GAP_LAYERS, ids=ids)
def test_ablationcam_activation_weights_equal_cam_on_gap_heads(benches, case):
    """With GAP + linear after the layer, zeroing channel k lowers y^c by exactly
    W[c, k] * mean(A^k), so the activation-normalised weights are CAM's W[c, k] / (h w)."""
    arch, layer = case
    bench = benches(arch)
    n = 2
    cam = bench.library("cam", layer, n)
    ablation = bench.library("ablationcam", layer, n, weights="activation")
    activation_sums = torch.stack([
        bench.passes(layer, b, bench.top_class(b))["A"].sum((1, 2)) for b in range(n)])
    alive = activation_sums != 0
    ref.assert_rel_close(ablation.channel_weights[alive], cam.channel_weights[alive], 1e-5,
                         f"ablation(activation) vs cam {arch} {layer}")
    ref.assert_rel_close(ablation.raw, cam.raw, 1e-5, f"ablation raw vs cam {arch} {layer}")


def test_reference_self_consistency_on_gap_head(benches):
    """The references agree with each other where theory says they must (so a wrong
    reference cannot pass by matching a wrong library)."""
    bench = benches("resnet18")
    layer = "layer4"
    cam = bench.expected("cam", layer, IMAGES)
    for method in ("gradcam", "xgradcam", "hirescam"):
        other = bench.expected(method, layer, IMAGES)
        ref.assert_rel_close(other["raw"], cam["raw"], 1e-9, f"reference {method} vs cam")
        ref.assert_rel_close(other["maps"], cam["maps"], 1e-9, f"reference {method} vs cam")
    # layer4.1.relu is called twice: its last call is layer4's output
    last_call = bench.expected("gradcam", "layer4.1.relu", IMAGES)
    ref.assert_rel_close(last_call["raw"], cam["raw"], 1e-12, "reference last call")


def test_reference_score_cam_and_eigen_cam_pieces():
    """Score-CAM masks and Eigen-CAM's component, checked by hand on tiny inputs."""
    channel = torch.tensor([[0.0, 2.0], [4.0, 6.0]], dtype=torch.float64)
    mask = ref.score_cam_mask(channel, (4, 4))
    assert mask.min() == 0 and mask.max() == 1
    assert torch.equal(mask[0, 0], torch.tensor(0.0, dtype=torch.float64))
    assert torch.equal(ref.score_cam_mask(torch.full((2, 2), 3.0), (4, 4)), torch.zeros(4, 4))
    # a rank-one activation: the component is the spatial pattern, positively correlated
    pattern = torch.tensor([[1.0, 2.0], [3.0, 7.0]], dtype=torch.float64)
    A = torch.stack([pattern * s for s in (1.0, 0.5, 2.0)])
    raw = ref.eigencam_raw(A)
    centred = pattern - pattern.mean()
    assert torch.allclose(raw / raw.norm(), centred / centred.norm(), atol=1e-12)


# =========================================================================== 3. conservation


class SmallReLUNet(nn.Module):
    """conv-relu-conv-relu(target)-conv-relu-maxpool-conv-relu-GAP-linear."""

    def __init__(self, bias_after_target: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 12, 3, padding=1)
        self.relu2 = nn.ReLU(inplace=True)  # the target layer
        self.conv3 = nn.Conv2d(12, 16, 3, padding=1, bias=bias_after_target)
        self.relu3 = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2)
        self.conv4 = nn.Conv2d(16, 16, 3, padding=1, bias=bias_after_target)
        self.relu4 = nn.ReLU()
        self.fc = nn.Linear(16, 5, bias=bias_after_target)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        x = self.pool(self.relu3(self.conv3(x)))
        x = self.relu4(self.conv4(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))

    def biases_after_target(self) -> list[nn.Parameter]:
        return [self.conv3.bias, self.conv4.bias, self.fc.bias]


def small_net(bias: bool) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(5)
    model = SmallReLUNet(bias).double().eval()
    if bias:
        with torch.no_grad():
            for b in model.biases_after_target():
                b.normal_(0.0, 0.3)
    return model, torch.randn(4, 3, 16, 20, dtype=torch.float64)


def bias_contribution(model: SmallReLUNet, x: torch.Tensor, c: int) -> torch.Tensor:
    """sum over the biases after the target of (dy^c / db) . b, by autograd."""
    biases = model.biases_after_target()
    y = model(x[None])[0, c]
    grads = torch.autograd.grad(y, biases)
    return sum((g * b).sum() for g, b in zip(grads, biases, strict=True)).detach()


def test_reference_ablation_and_gradients_equal_cam_on_a_gap_head():
    """Self-check of the references on a GAP + linear head (with biases): zeroing channel k
    lowers y^c by exactly W[c, k] mean(A^k), and G = W[c] / (h w) everywhere, so reference
    Ablation-CAM (activation form), Grad-CAM, XGrad-CAM and HiResCAM all equal CAM."""
    model, x = small_net(bias=True)
    reference = ref.Reference(ref.private_copy(model), "relu4")
    weight = model.fc.weight.detach()
    for b in range(2):
        with torch.no_grad():
            c = int(model(x[b:b + 1]).argmax())
        passes = reference.gradient(x[b], c)
        ablated = reference.ablated_logits(x[b], passes["A"].shape[0], passes["calls"])
        cam_raw, cam_weights = ref.explain_one("cam", passes, linear_weight=weight, c=c)
        raw, weights = ref.explain_one("ablationcam", passes, ablated=ablated, c=c,
                                       form="activation")
        alive = passes["A"].sum((1, 2)) != 0
        assert alive.sum() >= 4
        ref.assert_rel_close(weights[alive], cam_weights[alive], 1e-9, "reference ablation w")
        ref.assert_rel_close(raw, cam_raw, 1e-9, "reference ablation raw")
        for method in ("gradcam", "xgradcam", "hirescam"):
            raw, _ = ref.explain_one(method, passes)
            ref.assert_rel_close(raw, cam_raw, 1e-9, f"reference {method} raw")


@pytest.mark.parametrize("method", ["xgradcam", "hirescam"])
def test_raw_sums_to_the_score_without_biases(method):
    model, x = small_net(bias=False)
    exp = axiomcam.explain(model, x, method=method, target_layer="relu2")
    with torch.no_grad():
        logits = model(x)
    y = logits.gather(1, logits.argmax(1, keepdim=True))[:, 0]
    ref.assert_rel_close(exp.scores, y, 1e-12, "scores")
    total = exp.raw.sum((1, 2))
    assert ((total - y).abs() / y.abs()).max() < 1e-5, (total, y)
    # the reference conserves too
    reference = ref.Reference(ref.private_copy(model), "relu2")
    for b in range(x.shape[0]):
        passes = reference.gradient(x[b], int(logits[b].argmax()))
        raw, _ = ref.explain_one(method, passes)
        assert abs(float(raw.sum() - passes["y"])) < 1e-10 * abs(float(passes["y"]))


@pytest.mark.parametrize("method", ["xgradcam", "hirescam"])
def test_raw_misses_the_score_by_exactly_the_bias_terms(method):
    model, x = small_net(bias=True)
    exp = axiomcam.explain(model, x, method=method, target_layer="relu2")
    for b in range(x.shape[0]):
        c = int(exp.targets[b])
        y = exp.scores[b]
        expected = bias_contribution(model, x[b], c)
        assert abs(float(expected)) > 1e-2 * abs(float(y)), "biases too small to test"
        residual = y - exp.raw[b].sum()
        assert abs(float(residual - expected)) <= 1e-4 * max(abs(float(y)),
                                                              abs(float(expected))), (
            f"image {b}: y - sum(raw) = {float(residual):.6g}, bias terms "
            f"{float(expected):.6g}")


def test_all_negative_map_becomes_zeros_with_a_warning():
    model, x = small_net(bias=False)
    with torch.no_grad():
        model.fc.weight[0] = -model.fc.weight[0].abs()  # A >= 0 at relu4: raw <= 0
    with pytest.warns(UserWarning):
        exp = axiomcam.explain(model, x[:2], method="gradcam", target_layer="relu4",
                               targets=torch.tensor([0, 0]))
    assert (exp.raw <= 0).all()
    assert torch.equal(exp.maps, torch.zeros_like(exp.maps))


# =========================================================================== 4. batches


def _assert_same_explanation(batched, singles: list, what: str, rtol: float = 1e-6) -> None:
    for field in ("maps", "raw", "channel_weights", "scores", "targets", "guided"):
        value = getattr(batched, field)
        parts = [getattr(single, field) for single in singles]
        if value is None:
            assert all(p is None for p in parts), f"{what}: {field}"
            continue
        ref.assert_rel_close(value, torch.cat(parts), rtol, f"{what} {field}")


# Score-CAM and IS-CAM (K masked passes per image, N times for IS-CAM) only with FULL;
# never SS-CAM, which draws its noise for the whole batch, so a batch is not its images one
# at a time (test_sampled_cams.py checks it against its definition at any batch_size)
ALL_BUT_SLOW = [m for m in METHOD_NAMES if "sscam" not in m
                and (not any(slow in m for slow in ("scorecam", "iscam")) or FULL)]


# Random-CAM draws its weights per batch (test_decomposition.py checks their statistics)
@pytest.mark.parametrize("method", [m for m in ALL_BUT_SLOW if "randomcam" not in m])
def test_a_batch_equals_its_images_one_at_a_time(benches, method):
    bench = benches("resnet18")
    layer = None if not method_info(method).takes_layer else "layer4"
    n = 2 if "scorecam" in method else IMAGES
    options = few_samples(method)
    batched = bench.library(method, layer, n, **options)
    kwargs = {**options} if layer is None else {"target_layer": layer, **options}
    singles = [axiomcam.explain(bench.model, bench.x[b:b + 1], method=method, **kwargs)
               for b in range(n)]
    _assert_same_explanation(batched, singles, f"{method} batch vs singles")


SEVERAL_TARGETS = [
    ("gradcam", "resnet18", "layer3"), ("xgradcam", "resnet18", "layer3"),
    ("hirescam", "resnet18", "layer3"), ("gradcam++", "mobilenet_v2", "features.17.conv.1"),
    ("layercam", "vgg11", "features.18"),
    ("cam", "resnet18", "layer4"), ("eigencam", "resnet18", "layer4"),
    ("ablationcam", "resnet18", "layer4"), ("ablationcam-activation", "resnet18", "layer4"),
]


def test_scorecam_batch_equals_its_images_one_at_a_time(benches):
    """Score-CAM's batch against single images where it is cheap (K = 96): the batch is
    the one test_scorecam_matches_reference checks against the reference."""
    arch, layer, n, dtype = SCORECAM_CASES[-1]
    assert (arch, n) == ("mobilenet_v2", 2) or FULL
    bench = benches(arch, dtype)
    targets = three_targets(bench, n)
    batched = bench.library("scorecam", layer, n, targets=targets)
    singles = [axiomcam.explain(bench.model, bench.x[b:b + 1], method="scorecam",
                                target_layer=layer, targets=targets[b:b + 1])
               for b in range(n)]
    _assert_same_explanation(batched, singles, f"scorecam {arch} {layer} batch vs singles")


@pytest.mark.parametrize("case", SEVERAL_TARGETS, ids=ids)
def test_several_targets_per_image_equal_separate_calls(benches, case):
    method, arch, layer = case
    bench = benches(arch)
    options = {"weights": "activation"} if method.endswith("activation") else {}
    name = method.split("-")[0]
    n = 2 if name == "ablationcam" else IMAGES
    targets = three_targets(bench, n)
    exp = axiomcam.explain(bench.model, bench.x[:n], method=name, target_layer=layer,
                           targets=targets, **options)
    K = bench.passes(layer, 0, bench.top_class(0))["A"].shape[0]
    assert exp.maps.shape == (n, 3, *bench.size)
    assert exp.scores.shape == (n, 3)
    if exp.channel_weights is not None:
        assert exp.channel_weights.shape == (n, 3, K)
    separate = [axiomcam.explain(bench.model, bench.x[:n], method=name, target_layer=layer,
                                 targets=targets[:, j].clone(), **options) for j in range(3)]
    for field in ("maps", "raw", "channel_weights", "scores", "targets"):
        value = getattr(exp, field)
        parts = [getattr(s, field) for s in separate]
        if value is None:
            assert all(p is None for p in parts)
            continue
        ref.assert_rel_close(value, torch.stack(parts, dim=1), 1e-6, f"{method} (B,k) {field}")
    if name != "ablationcam":  # its (B, k) reference: test_ablationcam_matches_reference
        expected = bench.expected(name, layer, n, targets=targets)
        check_against(exp, expected, f"{method} (B,k) vs reference {arch} {layer}")


def test_reusable_objects_equal_explain(benches):
    bench = benches("resnet18")
    x = bench.x
    classes = {CAM: "cam", GradCAM: "gradcam", GradCAMPlusPlus: "gradcam++",
               XGradCAM: "xgradcam", HiResCAM: "hirescam", LayerCAM: "layercam",
               EigenCAM: "eigencam"}
    for cls, name in classes.items():
        with cls(bench.model, "layer4") as cam:
            first = cam(x)
            second = cam(x)
        once = bench.library(name, "layer4", IMAGES)
        _assert_same_explanation(first, [once], f"{name} object vs explain", 1e-12)
        _assert_same_explanation(second, [once], f"{name} object reused", 1e-12)
    with AblationCAM(bench.model, "layer4", weights="activation") as cam:
        _assert_same_explanation(cam(x), [bench.library("ablationcam", "layer4", IMAGES,
                                                        weights="activation")],
                                 "AblationCAM object", 1e-12)
    assert ScoreCAM.name == "scorecam"
    with GuidedBackprop(bench.model) as guided:
        _assert_same_explanation(guided(x), [bench.library("guided_backprop", None, IMAGES)],
                                 "GuidedBackprop object", 1e-12)


# =========================================================================== 5. guided


@pytest.mark.parametrize("arch", ["resnet18", "vgg11", "mobilenet_v2"])
def test_guided_backprop_matches_reference(benches, arch):
    bench = benches(arch)
    exp = bench.library("guided_backprop", None, IMAGES)
    assert exp.method == "guided_backprop"
    assert exp.raw is None and exp.channel_weights is None and exp.target_layer is None
    assert exp.guided.shape == bench.x.shape
    expected = bench.expected("guided_backprop", None, IMAGES)
    check_against(exp, expected, f"guided_backprop {arch}")
    # guided backprop is not the plain gradient on these ReLU networks
    leaf = bench.x[:1].clone().requires_grad_(True)
    bench.model(leaf)[0, bench.top_class(0)].backward()
    assert not torch.allclose(leaf.grad[0], expected["guided"][0], rtol=1e-3, atol=0)


@pytest.mark.parametrize("arch", ["resnet18", "vgg11", "mobilenet_v2"])
def test_guided_backprop_batch_equals_per_image_calls(benches, arch):
    bench = benches(arch)
    batched = bench.library("guided_backprop", None, IMAGES)
    singles = [axiomcam.explain(bench.model, bench.x[b:b + 1], method="guided_backprop")
               for b in range(IMAGES)]
    _assert_same_explanation(batched, singles, f"guided_backprop {arch} batch vs singles")


@pytest.mark.parametrize("case", [("gradcam", "resnet18", "layer4"),
                                  ("gradcam", "vgg11", "features.18"),
                                  ("gradcam", "mobilenet_v2", "features.17.conv.1"),
                                  ("ablationcam", "resnet18", "layer4")], ids=ids)
def test_guided_cam_is_guided_backprop_times_the_cam(benches, case):
    method, arch, layer = case
    bench = benches(arch)
    guided = bench.library(f"guided_{method}", layer, IMAGES)
    backprop = bench.library("guided_backprop", None, IMAGES)
    cam = bench.library(method, layer, IMAGES)
    assert guided.method == f"guided_{method}" and guided.target_layer == layer
    ref.assert_rel_close(guided.guided, backprop.guided * cam.maps[:, None], 1e-10,
                         f"guided_{method} {arch}")
    expected_maps = torch.stack([ref.guided_map(g) for g in guided.guided])
    ref.assert_rel_close(guided.maps, expected_maps, 1e-10, f"guided_{method} maps {arch}")
    ref.assert_rel_close(guided.raw, cam.raw, 1e-12, f"guided_{method} raw {arch}")
    ref.assert_rel_close(guided.channel_weights, cam.channel_weights, 1e-12,
                         f"guided_{method} weights {arch}")
    ref.assert_rel_close(guided.scores, cam.scores, 1e-12, f"guided_{method} scores {arch}")


@pytest.mark.parametrize("case", [*[(f"guided_{m}", "layer4") for m in LAYER_METHODS],
                                  ("guided_cam", "layer4"), ("guided_gradcam", "layer3")],
                         ids=ids)
def test_guided_cams_match_reference(benches, case):
    method, layer = case
    bench = benches("resnet18")
    n = IMAGES
    exp = bench.library(method, layer, n)
    assert exp.method == method and exp.target_layer == layer
    check_against(exp, bench.expected(method, layer, n), f"{method} resnet18 {layer}")


# =========================================================================== smoothing


@pytest.mark.parametrize("method", ["gradcam", "xgradcam", "ablationcam", "guided_gradcam",
                                    "guided_backprop"])
def test_smoothing_with_zero_noise_changes_nothing(benches, method):
    bench = benches("resnet18")
    layer = None if not method_info(method).takes_layer else "layer4"
    n = 2
    plain = bench.library(method, layer, n)
    smoothed = bench.library(method, layer, n, smooth=2, smooth_sigma=0.0, seed=0)
    _assert_same_explanation(smoothed, [plain], f"{method} smooth sigma=0", 1e-10)


@pytest.mark.parametrize("method", ["gradcam", "xgradcam", "hirescam", "guided_gradcam"])
def test_smoothing_averages_raw_and_keeps_clean_targets(benches, method):
    bench = benches("resnet18")
    n = IMAGES
    plain = bench.library(method, "layer4", n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        smoothed = bench.library(method, "layer4", n, smooth=4, smooth_sigma=0.5, seed=3)
        again = axiomcam.explain(bench.model, bench.x[:n], method=method, target_layer="layer4",
                                 smooth=4, smooth_sigma=0.5, seed=3)
    # the classes explained are those of the clean images, whatever the noise does
    assert torch.equal(smoothed.targets, plain.targets)
    assert smoothed.maps.min() >= 0 and smoothed.maps.max() <= 1
    assert smoothed.maps.shape == plain.maps.shape
    assert not torch.allclose(smoothed.raw, plain.raw, rtol=1e-3, atol=0)
    assert not torch.allclose(smoothed.scores, plain.scores, rtol=1e-6, atol=0)
    # the same seed gives the same result
    _assert_same_explanation(again, [smoothed], f"{method} same seed", 1e-12)
    # maps are computed from the mean raw (for guided: from the mean guided product)
    for b in range(n):
        if method.startswith("guided_"):
            expected = ref.guided_map(smoothed.guided[b])
        else:
            expected = ref.map_from_raw(smoothed.raw[b], bench.size)
        ref.assert_rel_close(smoothed.maps[b], expected, 1e-10, f"{method} smoothed map {b}")
