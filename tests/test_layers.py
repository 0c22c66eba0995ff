"""Choosing the target layer: by name, by module, or automatically."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from axiomcam.layers import candidate_layers, find_default_layer, resolve_layer


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
