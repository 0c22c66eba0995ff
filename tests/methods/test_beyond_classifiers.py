"""Models beyond CNN classifiers: vision transformers (torchvision ViT and Swin, timm ViT),
3D networks, outputs that are not a tensor, models with several inputs, and the default
layer of detection and segmentation models. Each map is checked against a reference
computed here by hand (a forward hook that keeps the layer's output, autograd, the
formula)."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

import axiomcam
from axiomcam.layers import LayerLayout, find_default_layer, infer_token_grid, layer_layout
from axiomcam.metrics.axioms import probe_layer
from axiomcam.outputs import select_output


@pytest.fixture(autouse=True)
def _seeded():
    """Every test builds its random networks and inputs from the same seed, whatever ran
    before it in the process (a seed set once at import made the models depend on the
    order and the distribution of the tests)."""
    torch.manual_seed(0)


def hand_maps(model, layer, inputs, classes, to_grid):
    """Grad-CAM and XGrad-CAM raw maps ``(B, h, w)`` from a hook and autograd."""
    kept = {}

    def keep(module, args, output):
        output.retain_grad()
        kept["output"] = output

    handle = layer.register_forward_hook(keep)
    try:
        output = model(inputs)
        logits = select_output(output)
        logits.gather(1, classes[:, None]).sum().backward()
    finally:
        handle.remove()
    activations = to_grid(kept["output"].detach()).flatten(2)  # (B, K, S)
    gradients = to_grid(kept["output"].grad).flatten(2)
    gradcam = gradients.mean(-1)
    sums = activations.sum(-1)
    xgradcam = torch.where(sums == 0, torch.zeros_like(sums),
                           (activations * gradients).sum(-1) / sums)
    spatial = to_grid(kept["output"]).shape[2:]
    return {name: torch.einsum("bk,bks->bs", weights, activations).view(-1, *spatial)
            for name, weights in (("gradcam", gradcam), ("xgradcam", xgradcam))}


def check_against_hand(model, layer_name, inputs, to_grid, **options):
    model.eval()
    layer = dict(model.named_modules())[layer_name]
    with torch.no_grad():
        classes = select_output(model(inputs)).argmax(1)
    expected = hand_maps(model, layer, inputs, classes, to_grid)
    for method, raw in expected.items():
        explanation = axiomcam.explain(model, inputs, method, target_layer=layer_name,
                                       targets=classes, **options)
        assert explanation.raw.shape == raw.shape
        torch.testing.assert_close(explanation.raw, raw, rtol=1e-4, atol=1e-6)
        assert raw.flatten(1).std(1).min() > 0  # not a constant map
        assert explanation.maps.shape == (inputs.shape[0], *inputs.shape[2:])
    return expected


def vit_tokens_to_grid(grid):
    def to_grid(tokens):  # drop the class token, patches row by row
        return tokens[:, 1:].transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)
    return to_grid


def tiny_torchvision_vit():
    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32,
        num_classes=5)
    # torchvision initialises the head to zero: every gradient would be zero
    nn.init.normal_(model.heads.head.weight, std=0.5)
    return model.eval()


# ---------------------------------------------------------------- token layouts
def test_a_known_token_pattern_lands_on_the_right_grid_cells():
    grid_h, grid_w, channels = 3, 4, 2
    tokens = torch.zeros(1, 1 + grid_h * grid_w, channels)
    tokens[0, 0] = -1.0  # the class token
    for row in range(grid_h):
        for column in range(grid_w):
            tokens[0, 1 + row * grid_w + column] = torch.tensor([row, column])
    layout = layer_layout(nn.Identity(), tokens, (30, 40))
    assert (layout.kind, layout.grid, layout.extra_tokens) == ("tokens", (3, 4), 1)
    grid, rest = layout.to_grid(tokens)
    assert grid.shape == (1, channels, grid_h, grid_w)
    rows, columns = torch.meshgrid(torch.arange(3.0), torch.arange(4.0), indexing="ij")
    assert torch.equal(grid[0, 0], rows) and torch.equal(grid[0, 1], columns)
    assert torch.equal(rest, tokens[:, :1])
    assert torch.equal(layout.from_grid(grid, rest), tokens)  # round trip
    # a batch of replaced grids gets the one image's class token back in front
    copies = layout.from_grid(torch.zeros(5, channels, grid_h, grid_w), rest)
    assert copies.shape == (5, 13, channels)
    assert torch.equal(copies[:, 0], tokens[0, :1].expand(5, 2))


def test_channels_last_layouts_permute_and_back():
    output = torch.arange(24.0).view(1, 2, 3, 4)  # (B, h, w, C)
    layout = layer_layout(nn.LayerNorm(4), output, (8, 12))
    grid, rest = layout.to_grid(output)
    assert layout.kind == "channels_last" and rest is None
    assert grid.shape == (1, 4, 2, 3) and grid[0, 1, 1, 2] == output[0, 1, 2, 1]
    assert torch.equal(layout.from_grid(grid, None), output)
    # a convolution's 4-D output is channels-first
    assert layer_layout(nn.Conv2d(1, 1, 1), output, (8, 12)).kind == "channels_first"


def test_token_grids_are_inferred_or_refused_with_the_counts():
    assert infer_token_grid(197, (224, 224)) == ((14, 14), 1)
    assert infer_token_grid(198, (224, 224)) == ((14, 14), 2)  # class + distillation tokens
    assert infer_token_grid(64, (128, 128)) == ((8, 8), 0)     # no class token
    assert infer_token_grid(1 + 6 * 8, (96, 128)) == ((6, 8), 1)
    tokens = torch.zeros(1, 197, 8)
    with pytest.raises(ValueError, match=r"outputs 197 tokens but grid \(15, 15\) needs 225"):
        layer_layout(nn.Identity(), tokens, (224, 224), grid=(15, 15), name="blocks.11")
    with pytest.raises(ValueError, match="cannot lay 2 tokens on a grid"):
        layer_layout(nn.Identity(), torch.zeros(1, 2, 8), (32, 96))
    with pytest.raises(ValueError, match="reshape='tokens' needs a"):
        layer_layout(nn.Identity(), torch.zeros(1, 8, 4, 4), (32, 32), reshape="tokens")
    with pytest.raises(ValueError, match="unknown reshape 'grid'"):
        axiomcam.explain(tiny_torchvision_vit(), torch.rand(1, 3, 32, 32), reshape="grid")
    assert repr(LayerLayout("tokens", grid=(2, 2), extra_tokens=1)) == \
        "LayerLayout('tokens', grid=(2, 2), extra_tokens=1)"


def test_a_given_grid_that_does_not_fit_is_a_clear_error_when_explaining():
    model = tiny_torchvision_vit()
    with pytest.raises(ValueError, match=r"outputs 17 tokens but grid \(5, 5\) needs 25"):
        axiomcam.explain(model, torch.rand(1, 3, 32, 32), "gradcam", grid=(5, 5))


# ---------------------------------------------------------------- vision transformers
def test_torchvision_vit_default_layer_and_maps_equal_the_hand_reference():
    model = tiny_torchvision_vit()
    inputs = torch.rand(2, 3, 32, 32)
    layer = "encoder.layers.encoder_layer_1.ln_1"  # the last block's first norm
    assert find_default_layer(model, inputs) == layer
    check_against_hand(model, layer, inputs, vit_tokens_to_grid((4, 4)))
    assert axiomcam.explain(model, inputs).target_layer == layer


def test_vit_ablation_keeps_the_class_token_and_equals_a_slow_loop():
    model = tiny_torchvision_vit()
    inputs = torch.rand(1, 3, 32, 32)
    layer_name = "encoder.layers.encoder_layer_1.ln_1"
    layer = dict(model.named_modules())[layer_name]
    probe = probe_layer(model, inputs, 2, layer_name)
    channels = probe.activations.shape[1]
    slow = []
    for channel in range(channels):
        def ablate(module, args, output, channel=channel):
            output = output.clone()
            output[:, 1:, channel] = 0  # the patch tokens' channel; the class token stays
            return output
        handle = layer.register_forward_hook(ablate)
        with torch.no_grad():
            slow.append(model(inputs)[0, 2])
        handle.remove()
    torch.testing.assert_close(probe.ablated_scores.flatten(), torch.stack(slow),
                               rtol=1e-5, atol=1e-6)


def test_swin_channels_last_norm_maps_equal_the_hand_reference():
    model = torchvision.models.SwinTransformer(
        patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 2], window_size=[2, 2],
        num_classes=5).eval()
    inputs = torch.rand(2, 3, 32, 32)
    check_against_hand(model, "features.3.1.norm1", inputs, lambda out: out.movedim(-1, 1))
    assert find_default_layer(model, inputs) == "features.3.1.norm1"  # the last block's


def test_timm_vit_default_layer_and_maps_equal_the_hand_reference():
    timm = pytest.importorskip("timm")  # the dev extra installs it
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2, num_classes=5).eval()
    inputs = torch.rand(2, 3, 32, 32)
    assert find_default_layer(model, inputs) == "blocks.1.norm1"
    check_against_hand(model, "blocks.1.norm1", inputs, vit_tokens_to_grid((4, 4)))


def test_a_given_grid_is_used_and_a_wide_input_gets_a_wide_grid():
    model = tiny_torchvision_vit()
    inputs = torch.rand(1, 3, 32, 32)
    inferred = axiomcam.explain(model, inputs, "gradcam", targets=[1])
    given = axiomcam.explain(model, inputs, "gradcam", targets=[1], grid=(4, 4))
    torch.testing.assert_close(given.raw, inferred.raw)
    # any grid that fits the 16 patch tokens is the user's to choose: row by row
    rows = axiomcam.explain(model, inputs, "gradcam", targets=[1], grid=(2, 8))
    assert rows.raw.shape == (1, 2, 8)
    torch.testing.assert_close(rows.raw.flatten(1), inferred.raw.flatten(1))
    # a timm ViT on 32 x 64 inputs: 1 + 4 * 8 tokens, laid on a (4, 8) grid
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)  # weights and inputs whose maps are not all zero after the ReLU
    wide = timm.models.vision_transformer.VisionTransformer(
        img_size=(32, 64), patch_size=8, embed_dim=16, depth=2, num_heads=2,
        num_classes=5).eval()
    expected = check_against_hand(wide, "blocks.1.norm1", torch.rand(2, 3, 32, 64),
                                  vit_tokens_to_grid((4, 8)))
    assert expected["gradcam"].shape == (2, 4, 8)


def test_full_size_vit_b_16_and_swin_t_default_to_the_last_blocks_norm():
    """The real architectures (random weights): the last block's first norm, laid on the
    14 x 14 token grid (ViT-B/16, class token set aside) or Swin-T's 7 x 7 (B, h, w, C)."""
    inputs = torch.rand(1, 3, 224, 224)
    for builder, layer, kind, extra in (
            (torchvision.models.vit_b_16, "encoder.layers.encoder_layer_11.ln_1", "tokens", 1),
            (torchvision.models.swin_t, "features.7.1.norm1", "channels_last", 0)):
        model = builder(weights=None).eval()
        assert find_default_layer(model, inputs) == layer
        kept = {}
        module = dict(model.named_modules())[layer]
        handle = module.register_forward_hook(
            lambda m, args, output, kept=kept: kept.update(A=output))
        with torch.no_grad():
            model(inputs)
        handle.remove()
        layout = layer_layout(module, kept["A"], (224, 224))
        assert layout.kind == kind
        grid, _ = layout.to_grid(kept["A"])
        expected_grid = (14, 14) if kind == "tokens" else (7, 7)
        assert tuple(grid.shape[2:]) == expected_grid
        if kind == "tokens":
            assert layout.extra_tokens == extra


# ---------------------------------------------------------------- 3D networks
def test_r3d_maps_over_time_and_space_equal_the_hand_reference():
    model = torchvision.models.video.r3d_18(num_classes=5).eval()
    clip = torch.rand(1, 3, 4, 32, 32)  # (B, C, T, H, W)
    expected = check_against_hand(model, "layer3", clip, lambda out: out)
    assert expected["gradcam"].shape == (1, 1, 4, 4)  # (B, t, h, w) at layer3
    maps = axiomcam.explain(model, clip, "xgradcam", target_layer="layer3").maps
    assert maps.shape == (1, 4, 32, 32)
    for method in ("layercam", "gradcam++", "ablationcam", "hirescam", "scorecam",
                   "eigencam", "guided_xgradcam"):
        assert axiomcam.explain(model, clip, method, target_layer="layer3").maps.shape == \
            (1, 4, 32, 32)
    # layer4 feeds global average pooling and the linear layer: CAM = Grad-CAM = XGrad-CAM
    maps = [axiomcam.explain(model, clip, method, target_layer="layer4").maps
            for method in ("cam", "gradcam", "xgradcam")]
    torch.testing.assert_close(maps[0], maps[1], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(maps[0], maps[2], rtol=1e-4, atol=1e-5)


def hand_gradient_maps_3d(model, layer, inputs, classes):
    """The raw maps ``(B, t, h, w)`` of the gradient methods by hand (methods.md), every
    sum and mean over all of ``(t, h, w)``: a hook keeps ``A``, autograd gives ``G``."""
    kept = {}
    handle = layer.register_forward_hook(lambda module, args, output: kept.update(A=output))
    try:
        output = model(inputs)
    finally:
        handle.remove()
    (gradients,) = torch.autograd.grad(output.gather(1, classes[:, None]).sum(), kept["A"])
    activations = kept["A"].detach()
    axes = (2, 3, 4)
    sums = activations.sum(axes)
    denominator = 2 * gradients ** 2 + sums[..., None, None, None] * gradients ** 3
    alpha = torch.where(denominator != 0,
                        gradients ** 2 / torch.where(denominator != 0, denominator, 1.0), 0.0)
    weights = {
        "gradcam": gradients.mean(axes),
        "xgradcam": torch.where(sums == 0, 0.0, (activations * gradients).sum(axes)
                                / torch.where(sums == 0, 1.0, sums)),
        "gradcam++": (alpha * torch.relu(gradients)).sum(axes),
    }
    raw = {name: torch.einsum("bk,bkthw->bthw", w, activations) for name, w in weights.items()}
    raw["hirescam"] = (gradients * activations).sum(1)
    raw["layercam"] = (torch.relu(gradients) * activations).sum(1)
    return raw


def hand_final_maps_3d(raw, size):
    """``ReLU``, trilinear upsampling to the clip, one min-max over the whole clip."""
    maps = nn.functional.interpolate(torch.relu(raw)[:, None], size=size, mode="trilinear",
                                     align_corners=False)[:, 0]
    low = maps.flatten(1).amin(1)[:, None, None, None]
    high = maps.flatten(1).amax(1)[:, None, None, None]
    return (maps - low) / (high - low)


def test_r3d_gradient_methods_vary_over_time_and_equal_the_hand_reference():
    """8 frames: layer3 keeps 2 time steps, so the time axis of the map is not trivial."""
    model = torchvision.models.video.r3d_18(num_classes=5).eval()
    torch.manual_seed(1)
    clip = torch.rand(1, 3, 8, 32, 32)
    with torch.no_grad():
        classes = model(clip).argmax(1)
    expected = hand_gradient_maps_3d(model, model.layer3, clip, classes)
    for method, raw in expected.items():
        explanation = axiomcam.explain(model, clip, method, target_layer="layer3",
                                       targets=classes)
        assert raw.shape == (1, 2, 4, 4)  # (B, t, h, w)
        assert (raw[:, 0] - raw[:, 1]).abs().max() > 1e-3 * raw.abs().max(), method
        torch.testing.assert_close(explanation.raw, raw, rtol=1e-4, atol=1e-7)
        assert explanation.maps.shape == (1, 8, 32, 32)
        torch.testing.assert_close(explanation.maps, hand_final_maps_3d(raw, (8, 32, 32)),
                                   rtol=1e-4, atol=1e-5)
        assert explanation.maps.std() > 0.05, method


class Tiny3D(nn.Module):
    """conv3d -> ReLU -> conv3d (stride 2) -> ReLU -> 1x1x1 conv3d -> ReLU -> mean -> linear."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(7)
        self.features = nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.ReLU(),
                                      nn.Conv3d(4, 5, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.Conv3d(5, 6, 1), nn.ReLU())
        self.fc = nn.Linear(6, 3)
        nn.init.normal_(self.fc.weight, std=20.0)  # scores far apart: Score-CAM's s_k

    def forward(self, clips):
        return self.fc(self.head(self.features(clips)).mean((2, 3, 4)))


class GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, gradient):
        (x,) = ctx.saved_tensors
        return gradient.clamp_min(0) * (x > 0)


def test_perturbation_activation_and_guided_methods_in_3d_equal_slow_references():
    """Ablation-CAM (both weight forms), Score-CAM (trilinear masks), Eigen-CAM and guided
    XGrad-CAM on a 3D network, each against a loop or formula written here."""
    model = Tiny3D().double().eval()
    torch.manual_seed(2)
    clip = torch.rand(2, 3, 6, 12, 12, dtype=torch.float64)
    classes = torch.tensor([1, 1])  # a class whose maps are not all zero here
    layer = model.features[3]
    kept = {}
    handle = layer.register_forward_hook(lambda module, args, output: kept.update(A=output))
    with torch.no_grad():
        logits = model(clip)
    handle.remove()
    activations, channels = kept["A"], kept["A"].shape[1]
    assert activations.shape == (2, 5, 3, 6, 6)
    score = logits.gather(1, classes[:, None])[:, 0]
    drops = torch.zeros(2, channels, dtype=torch.float64)
    increases = torch.zeros(2, channels, dtype=torch.float64)
    with torch.no_grad():
        baseline = torch.softmax(model(torch.zeros_like(clip)), 1)[range(2), classes]
        for channel in range(channels):
            def ablate(module, args, output, channel=channel):
                output = output.clone()
                output[:, channel] = 0
                return output
            handle = layer.register_forward_hook(ablate)
            drops[:, channel] = score - model(clip)[range(2), classes]
            handle.remove()
            for image in range(2):
                mask = nn.functional.interpolate(
                    activations[image:image + 1, channel:channel + 1], size=(6, 12, 12),
                    mode="trilinear", align_corners=False)
                mask = (mask - mask.min()) / (mask.max() - mask.min())
                probability = torch.softmax(model(clip[image:image + 1] * mask), 1)
                increases[image, channel] = probability[0, classes[image]] - baseline[image]
    sums = activations.sum((2, 3, 4))
    weights = {"ablationcam": drops / score[:, None],
               "ablationcam:activation": torch.where(sums == 0, 0.0, drops / sums),
               "scorecam": increases}
    for method, expected in weights.items():
        explanation = axiomcam.explain(model, clip, method, "features.3", targets=classes)
        torch.testing.assert_close(explanation.channel_weights, expected)
        raw = torch.einsum("bk,bkthw->bthw", expected, activations)
        torch.testing.assert_close(explanation.raw, raw)
        assert explanation.maps.shape == (2, 6, 12, 12)
        assert (explanation.maps.flatten(1).std(1) > 0.05).all(), method

    # Eigen-CAM: the first principal component of the (t h w) x K positions
    positions = activations.flatten(2).transpose(1, 2)
    centred = positions - positions.mean(1, keepdim=True)
    _, _, right = torch.linalg.svd(centred, full_matrices=False)
    projection = (centred @ right[:, 0, :, None])[..., 0]
    mean = activations.mean(1).flatten(1)
    sign = torch.sign(((projection - projection.mean(1, keepdim=True))
                       * (mean - mean.mean(1, keepdim=True))).sum(1))
    eigen = axiomcam.explain(model, clip, "eigencam", "features.3", targets=classes)
    torch.testing.assert_close(eigen.raw, (projection * sign[:, None]).view(2, 3, 6, 6))

    # guided XGrad-CAM: guided backprop (ReLUs pass back only positive gradient at positive
    # input) times the XGrad-CAM map upsampled to the clip
    guided_model = Tiny3D().double().eval()
    for block in (guided_model.features, guided_model.head):
        for index, module in enumerate(block):
            if isinstance(module, nn.ReLU):
                block[index] = type("Guided", (nn.Module,), {
                    "forward": lambda self, x: GuidedReLU.apply(x)})()
    leaf = clip.clone().requires_grad_(True)
    (backprop,) = torch.autograd.grad(guided_model(leaf)[range(2), classes].sum(), leaf)
    assert backprop.abs().max() > 0
    xgradcam = axiomcam.explain(model, clip, "xgradcam", "features.3", targets=classes)
    guided = axiomcam.explain(model, clip, "guided_xgradcam", "features.3", targets=classes)
    assert guided.guided.shape == (2, 3, 6, 12, 12)
    torch.testing.assert_close(guided.guided, backprop * xgradcam.maps[:, None])
    assert guided.maps.shape == (2, 6, 12, 12)


# ---------------------------------------------------------------- outputs and inputs
class Net(nn.Module):
    """A small CNN whose forward returns its logits wrapped by ``wrap``."""

    def __init__(self, wrap=lambda logits: logits):
        super().__init__()
        torch.manual_seed(3)
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(6, 4)
        self.wrap = wrap

    def forward(self, images):
        return self.wrap(self.head(self.features(images).mean((2, 3))))


@dataclasses.dataclass
class Output:
    hidden: torch.Tensor
    logits: torch.Tensor


class ModelOutputLike(OrderedDict):
    """Like Hugging Face's ModelOutput: a dict whose entries are also attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as error:
            raise AttributeError(name) from error


@pytest.mark.parametrize("wrap", [
    lambda logits: {"logits": logits, "hidden": logits * 2},
    lambda logits: (logits, "auxiliary"),
    lambda logits: Output(hidden=logits * 0, logits=logits),
    lambda logits: ModelOutputLike(loss=None, logits=logits),
], ids=["dict", "tuple", "dataclass", "model-output"])
@pytest.mark.parametrize("method", ["gradcam", "xgradcam", "scorecam", "ablationcam"])
def test_class_targets_find_the_logits_in_any_output(wrap, method):
    torch.manual_seed(0)
    inputs = torch.rand(2, 3, 8, 8)
    # classes whose maps are not all zero for every method (Score-CAM's are for some)
    plain = axiomcam.explain(Net(), inputs, method, "features.1", targets=[0, 2])
    wrapped = axiomcam.explain(Net(wrap), inputs, method, "features.1", targets=[0, 2])
    assert (plain.maps.flatten(1).std(1) > 0.05).all()
    torch.testing.assert_close(wrapped.raw, plain.raw)
    torch.testing.assert_close(wrapped.scores, plain.scores)


def test_output_names_what_to_explain_and_says_what_is_there():
    inputs = torch.rand(2, 3, 8, 8)
    net = Net(lambda logits: {"scores": logits, "extra": logits.flip(1)})
    plain = axiomcam.explain(Net(), inputs, "gradcam", "features.1", targets=[0, 2])
    flipped = axiomcam.explain(net, inputs, "gradcam", "features.1", targets=[3, 1],
                               output="extra")
    torch.testing.assert_close(flipped.raw, plain.raw)
    chosen = axiomcam.explain(net, inputs, "gradcam", "features.1",
                              output=lambda out: out["scores"])
    torch.testing.assert_close(chosen.raw, axiomcam.explain(Net(), inputs, "gradcam",
                                                            "features.1").raw)
    with pytest.raises(ValueError, match=r"class targets need \(B, num_classes\) scores; the "
                                         r"model returned dict with keys \['scores', 'extra'\]"):
        axiomcam.explain(net, inputs, "gradcam", "features.1")
    with pytest.raises(ValueError, match="the model's output has no 'logits': it is a dict"):
        axiomcam.explain(net, inputs, "gradcam", "features.1", output="logits")
    with pytest.raises(TypeError, match="output must be None, a key"):
        axiomcam.explain(net, inputs, "gradcam", "features.1", output=2.5)


class ImageAndWords(nn.Module):
    """A VQA-style model: image features gated by a bag of word ids, fused after the
    convolution (so the words act on the layers after the target layer)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(5)
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.words = nn.EmbeddingBag(10, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, images, word_ids):
        gate = torch.sigmoid(self.words(word_ids))[:, :, None, None]
        return self.head((self.features(images) * gate).mean((2, 3)))


@pytest.mark.parametrize("method", ["gradcam", "xgradcam", "scorecam", "ablationcam"])
def test_only_the_image_of_a_two_input_model_is_explained_each_with_its_words(method):
    model = ImageAndWords().eval()
    images = torch.rand(3, 3, 8, 8)
    words = torch.tensor([[1, 2], [3, 4], [5, 9]])
    classes = [2, 0, 2]  # every method's maps are non-trivial for these
    together = axiomcam.explain(model, images, method, "features.1", targets=classes,
                                extra_inputs=(words,))
    assert (together.maps.flatten(1).std(1) > 0.05).all()
    for index in range(3):  # each image alone with its own words: the same map
        alone = axiomcam.explain(model, images[index:index + 1], method, "features.1",
                                 targets=[classes[index]],
                                 extra_inputs=(words[index:index + 1],))
        torch.testing.assert_close(together.raw[index], alone.raw[0], rtol=1e-5, atol=1e-6)
    if method in ("gradcam", "xgradcam"):
        class Bound(nn.Module):  # the hand reference: the words bound into the model
            def __init__(self, row):
                super().__init__()
                self.inner, self.row = model, row

            def forward(self, images):
                return self.inner(images, words[self.row:self.row + 1])

        bound = Bound(1)
        hand = hand_maps(bound, model.features[1], images[1:2], torch.tensor([classes[1]]),
                         lambda out: out)[method]
        torch.testing.assert_close(together.raw[1:2], hand, rtol=1e-4, atol=1e-6)
    # the same words for every image: one row is enough
    shared = axiomcam.explain(model, images, method, "features.1", targets=classes,
                              extra_inputs=(words[:1],))
    assert (shared.maps.flatten(1).std(1) > 0.05).all()
    alone = axiomcam.explain(model, images[2:], method, "features.1", targets=[classes[2]],
                             extra_inputs=(words[:1],))
    torch.testing.assert_close(shared.raw[2], alone.raw[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["guided_ablationcam", "guided_scorecam", "guided_gradcam"])
def test_a_guided_method_pairs_one_shared_extra_row_with_every_image(method):
    """The CAM inside a guided method pairs the extra inputs as any explainer does: one
    row of words for a batch of three is the same as that row repeated, and as each image
    explained alone (issue 19: the perturbation passes indexed the 1-row tensor with the
    image's row and went out of range)."""
    model = ImageAndWords().eval()
    images = torch.rand(3, 3, 8, 8)
    words = torch.tensor([[1, 2]])
    classes = [2, 0, 2]
    shared = axiomcam.explain(model, images, method, "features.1", targets=classes,
                              extra_inputs=(words,))
    repeated = axiomcam.explain(model, images, method, "features.1", targets=classes,
                                extra_inputs=(words.expand(3, -1),))
    torch.testing.assert_close(shared.guided, repeated.guided)
    torch.testing.assert_close(shared.raw, repeated.raw)
    for index in range(3):
        alone = axiomcam.explain(model, images[index:index + 1], method, "features.1",
                                 targets=[classes[index]], extra_inputs=(words,))
        torch.testing.assert_close(shared.raw[index], alone.raw[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(shared.guided[index], alone.guided[0], rtol=1e-5,
                                   atol=1e-6)


def test_extra_inputs_of_another_length_are_refused():
    with pytest.raises(ValueError, match=r"extra_inputs\[0\] has 2 rows for a batch of 3"):
        axiomcam.explain(ImageAndWords(), torch.rand(3, 3, 8, 8), "gradcam", "features.1",
                         extra_inputs=(torch.zeros(2, 2, dtype=torch.long),))
    with pytest.raises(TypeError, match="extra_inputs must be a tuple or list"):
        axiomcam.explain(ImageAndWords(), torch.rand(3, 3, 8, 8), "gradcam", "features.1",
                         extra_inputs=torch.zeros(3, 2, dtype=torch.long))


# ---------------------------------------------------------------- default layers
def test_detection_and_segmentation_default_to_the_backbones_last_layer():
    detector = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=3).eval()
    # not the box head's per-proposal features, not the proposal network (detached)
    assert find_default_layer(detector, torch.rand(1, 3, 64, 96)) == "backbone.body.16"
    segmenter = torchvision.models.segmentation.lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=3).eval()
    assert find_default_layer(segmenter, torch.rand(1, 3, 64, 64)) == "backbone.16"


def test_token_layers_are_candidates_and_the_command_line_explains_a_vit(tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from axiomcam.cli import main
    from axiomcam.layers import candidate_layers

    model = tiny_torchvision_vit()
    names = [name for name, _ in candidate_layers(model, torch.rand(1, 3, 32, 32))]
    assert "encoder.layers.encoder_layer_1.ln_1" in names and "conv_proj" in names
    assert "heads.head" not in names  # (B, classes): no grid
    weights = tmp_path / "vit.pth"
    torch.save(model.state_dict(), weights)
    # a picture with structure (a solid colour makes every patch token alike: a flat map)
    pixels = torch.Generator().manual_seed(0)
    noise = (torch.rand(32, 40, 3, generator=pixels) * 255).to(torch.uint8).numpy()
    Image.fromarray(noise).save(tmp_path / "noise.png")
    # torchvision's vit builder with --weights: the tiny configuration is not a builder, so
    # explain through a factory module written here
    (tmp_path / "tinyvit.py").write_text(
        "import torch, torchvision\n"
        "def build():\n"
        "    model = torchvision.models.VisionTransformer(image_size=32, patch_size=8, "
        "num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=5)\n"
        f"    model.load_state_dict(torch.load({str(weights)!r}))\n"
        "    return model\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(tmp_path))
        result = CliRunner().invoke(main, [
            "explain", str(tmp_path / "noise.png"), "--model", "tinyvit:build", "--size", "32",
            "--method", "xgradcam", "--layer", "encoder.layers.encoder_layer_1.ln_1",
            "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    overlays = list((tmp_path / "out").glob("*.png"))
    assert len(overlays) == 1 and Image.open(overlays[0]).size == (40, 32)
    raws = list((tmp_path / "out").rglob("*.npy"))
    assert len(raws) == 1
    raw = np.load(raws[0])
    assert raw.shape == (4, 4) and raw.std() > 0  # the (4, 4) token grid, not flat
