"""Choosing the target layer: by name, by module, or automatically."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import axiomcam
from axiomcam.layers import candidate_layers, find_default_layer, layer_layout, resolve_layer


@pytest.mark.parametrize(
    ("architecture", "expected"),
    [
        ("resnet18", "layer4"),  # the whole last stage, not layer4.1.relu
        ("resnet50", "layer4"),
        ("mobilenet_v2", "features.18"),  # not `features`, which holds every stage
        ("convnext_tiny", "features.7"),
        ("squeezenet1_1", "classifier.2"),  # the in-place ReLU after the last conv
    ],
)
def test_default_layer_is_the_last_spatial_stage(architecture, expected):
    model = getattr(torchvision.models, architecture)(num_classes=10).eval()
    assert find_default_layer(model, torch.rand(2, 3, 96, 96)) == expected


def test_default_layer_needs_a_spatial_layer():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    with pytest.raises(ValueError, match="no layer with a"):
        find_default_layer(model, torch.rand(1, 3, 2, 2))


def test_candidate_layers_lists_spatial_outputs_in_call_order():
    model = torchvision.models.resnet18(num_classes=10).eval()
    layers = candidate_layers(model, torch.rand(1, 3, 64, 64))
    names = [name for name, _ in layers]
    assert names.index("layer3") < names.index("layer4")
    assert "avgpool" not in names and "fc" not in names  # 1x1 and 2-D outputs
    assert dict(layers)["layer4"] == (1, 512, 2, 2)


def test_resolve_layer_by_name_and_module_with_near_matches():
    model = torchvision.models.resnet18(num_classes=10)
    assert resolve_layer(model, "layer4.1.conv2") == ("layer4.1.conv2", model.layer4[1].conv2)
    assert resolve_layer(model, model.layer2)[0] == "layer2"
    with pytest.raises(ValueError, match=r"Near matches: .*layer4\.1\.conv2"):
        resolve_layer(model, "layer4.1.conv3")
    with pytest.raises(ValueError, match="does not exist"):
        resolve_layer(model, "")


def small_swin() -> nn.Module:
    return torchvision.models.SwinTransformer(
        patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 2], window_size=[2, 2],
        num_classes=5).eval()


def small_convnext() -> nn.Module:
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    return ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, None, 1)], layer_scale=0.5,
                    num_classes=5).eval()


@pytest.mark.parametrize(
    ("build", "layer", "kind", "grid"),
    [
        (small_swin, "features.1", "channels_last", (8, 12)),  # a stage's (B, h, w, C)
        (small_swin, "features.2", "channels_last", (4, 6)),  # patch merging
        (small_swin, "features.3.1.norm1", "channels_last", (4, 6)),  # a LayerNorm
        (small_convnext, "features.1.0.block.4", "channels_last", (8, 12)),  # GELU in a block
        (small_convnext, "features.2.0", "channels_first", (8, 12)),  # LayerNorm2d
        (small_convnext, "features.3", "channels_first", (4, 6)),  # a stage's (B, C, h, w)
    ],
)
def test_channels_first_or_last_is_read_from_the_image_grid(build, layer, kind, grid):
    """A 4-D output is laid on the grid its axes make of the image: Swin's stages and the
    layers inside a ConvNeXt block are (B, h, w, C) although no LayerNorm says so, and
    ConvNeXt's LayerNorm2d is (B, C, h, w) although it is a LayerNorm (both were read the
    other way round, without a word: issue 23's zoo test).  The map equals the one the
    right ``reshape`` gives."""
    torch.manual_seed(0)
    model, inputs = build(), torch.rand(2, 3, 32, 48)
    found = axiomcam.explain(model, inputs, "gradcam", target_layer=layer, targets=1)
    forced = axiomcam.explain(model, inputs, "gradcam", target_layer=layer, targets=1,
                              reshape=kind)
    assert found.raw.shape == (2, *grid)
    torch.testing.assert_close(found.raw, forced.raw, rtol=0, atol=0)
    torch.testing.assert_close(found.channel_weights, forced.channel_weights, rtol=0, atol=0)
    wrong = "channels_first" if kind == "channels_last" else "channels_last"
    misread = axiomcam.explain(model, inputs, "gradcam", target_layer=layer, targets=1,
                               reshape=wrong)
    assert misread.raw.shape != found.raw.shape


def test_an_output_that_reads_as_an_image_grid_both_ways_keeps_the_module_rule():
    """(B, 7, 7, 7) is a 7 x 7 grid either way: a LayerNorm's is channels-last, any other
    layer's channels-first, as before; a grid of neither reading keeps the rule too."""
    square = torch.zeros(1, 7, 7, 7)
    assert layer_layout(nn.LayerNorm(7), square, (224, 224)).kind == "channels_last"
    assert layer_layout(nn.Identity(), square, (224, 224)).kind == "channels_first"
    pooled = torch.zeros(1, 512, 7, 7)  # VGG's adaptive pooling of a 32 x 96 image
    assert layer_layout(nn.AdaptiveAvgPool2d(7), pooled, (32, 96)).kind == "channels_first"
