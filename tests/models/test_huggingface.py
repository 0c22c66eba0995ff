"""Hugging Face ``transformers`` image classifiers built from small configs (random weights,
nothing downloaded): ViT, DeiT (two leading tokens), Swin, ConvNeXt and ResNet. For each
family: the default layer, the ``ModelOutput``'s logits as class scores (the top class by
default), and Grad-CAM / XGrad-CAM maps equal to a reference computed by hand (a forward
hook, autograd of ``.logits``, the tokens laid on their grid by hand); CAM equals Grad-CAM
where the head is global average pooling and one linear layer (ResNet), and is refused where
it is not (ConvNeXt normalises the pooled features)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import axiomcam
from axiomcam.layers import find_default_layer

transformers = pytest.importorskip("transformers")  # the huggingface extra (in dev)


def vit() -> nn.Module:
    return transformers.ViTForImageClassification(transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, num_labels=5))


def deit() -> nn.Module:
    """DeiT with its distillation token: 2 leading tokens, logits the mean of two heads."""
    return transformers.DeiTForImageClassificationWithTeacher(transformers.DeiTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, num_labels=5))


def swin() -> nn.Module:
    return transformers.SwinForImageClassification(transformers.SwinConfig(
        image_size=32, patch_size=4, embed_dim=16, depths=[2, 2], num_heads=[2, 2],
        window_size=2, num_labels=5))


def convnext() -> nn.Module:
    return transformers.ConvNextForImageClassification(transformers.ConvNextConfig(
        hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1], num_labels=5))


def resnet() -> nn.Module:
    return transformers.ResNetForImageClassification(transformers.ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1],
        layer_type="basic", num_labels=5))


def tokens_to_grid(extra: int, grid: tuple[int, int]):
    """``(B, extra + h*w, C)`` -> ``(B, C, h, w)``: the leading tokens dropped, the patches
    row by row."""
    def to_grid(tokens: torch.Tensor) -> torch.Tensor:
        return tokens[:, extra:].transpose(1, 2).reshape(tokens.shape[0], -1, *grid)
    return to_grid


def as_is(output: torch.Tensor) -> torch.Tensor:
    return output


#: family -> (builder, input size, default layer, its output as a grid, grid size)
FAMILIES = {
    "vit": (vit, 32, "vit.layers.1.layernorm_before", tokens_to_grid(1, (4, 4)), (4, 4)),
    "deit": (deit, 32, "deit.layers.1.layernorm_before", tokens_to_grid(2, (4, 4)), (4, 4)),
    "swin": (swin, 32, "swin.encoder.layers.1.blocks.1.layernorm_before",
             tokens_to_grid(0, (4, 4)), (4, 4)),
    "convnext": (convnext, 64, "convnext.encoder.stages.3", as_is, (2, 2)),
    "resnet": (resnet, 64, "resnet.encoder.stages.3", as_is, (2, 2)),
}


def hand_raw_maps(model: nn.Module, layer: nn.Module, inputs: torch.Tensor,
                  classes: torch.Tensor, to_grid) -> dict[str, torch.Tensor]:
    """Grad-CAM and XGrad-CAM ``(B, h, w)`` from a hook that keeps the layer's output and
    ``torch.autograd.grad`` of the chosen ``.logits``."""
    kept = {}
    handle = layer.register_forward_hook(lambda module, args, output: kept.update(A=output))
    try:
        logits = model(inputs).logits
        (gradients,) = torch.autograd.grad(logits.gather(1, classes[:, None]).sum(), kept["A"])
    finally:
        handle.remove()
    activations = to_grid(kept["A"].detach()).flatten(2)  # (B, K, S)
    gradients = to_grid(gradients).flatten(2)
    sums = activations.sum(-1)
    weights = {"gradcam": gradients.mean(-1),
               "xgradcam": torch.where(sums == 0, torch.zeros_like(sums),
                                       (activations * gradients).sum(-1) / sums)}
    size = to_grid(kept["A"]).shape[2:]
    return {method: torch.einsum("bk,bks->bs", w, activations).view(-1, *size)
            for method, w in weights.items()}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_default_layer_and_maps_equal_the_hand_reference(family):
    torch.manual_seed(0)
    build, size, layer_name, to_grid, grid = FAMILIES[family]
    model = build().eval()
    inputs = torch.rand(2, 3, size, size)
    assert find_default_layer(model, inputs) == layer_name
    with torch.no_grad():
        logits = model(inputs).logits
    expected = hand_raw_maps(model, dict(model.named_modules())[layer_name], inputs,
                             logits.argmax(1), to_grid)
    for method, raw in expected.items():
        exp = axiomcam.explain(model, inputs, method)  # the top class of the ModelOutput
        assert exp.target_layer == layer_name
        assert exp.targets.tolist() == logits.argmax(1).tolist()
        torch.testing.assert_close(exp.scores, logits.max(1).values)
        assert exp.raw.shape == (2, *grid)
        torch.testing.assert_close(exp.raw, raw, rtol=1e-4, atol=1e-6)
        assert raw.flatten(1).std(1).min() > 0  # not a constant map
        assert exp.maps.shape == (2, size, size) and torch.isfinite(exp.maps).all()
        upsampled = F.interpolate(torch.relu(raw)[:, None], size=(size, size),
                                  mode="bilinear", align_corners=False)[:, 0]
        low = upsampled.amin(dim=(1, 2), keepdim=True)
        high = upsampled.amax(dim=(1, 2), keepdim=True)
        torch.testing.assert_close(exp.maps, (upsampled - low) / (high - low),
                                   rtol=1e-4, atol=1e-4)


def test_cam_equals_gradcam_on_resnet_and_is_refused_on_convnext():
    """HF ResNet's head is pooling + flatten + linear: CAM = Grad-CAM (the classifier's
    weights found through the ``ModelOutput``). ConvNeXt normalises the pooled features
    (a LayerNorm) before its linear layer: CAM is refused."""
    torch.manual_seed(0)
    inputs = torch.rand(2, 3, 64, 64)
    model = resnet().eval()
    cam = axiomcam.explain(model, inputs, "cam")
    gradcam = axiomcam.explain(model, inputs, "gradcam")
    torch.testing.assert_close(cam.raw, gradcam.raw, rtol=1e-5, atol=1e-7)
    assert cam.raw.flatten(1).std(1).min() > 0
    with pytest.raises(ValueError, match="is not linear"):
        axiomcam.explain(convnext().eval(), inputs, "cam")


def test_swin_tokens_are_laid_on_a_wide_grid_for_a_wide_input():
    """Swin pads to whole windows and has no class token: a 32 x 64 input gives its last
    stage a 4 x 8 grid, the tokens row by row."""
    torch.manual_seed(0)
    model = swin().eval()
    inputs = torch.rand(1, 3, 32, 64)
    layer = "swin.encoder.layers.1.blocks.1.layernorm_before"
    with torch.no_grad():
        classes = model(inputs).logits.argmax(1)
    raw = hand_raw_maps(model, dict(model.named_modules())[layer], inputs, classes,
                        tokens_to_grid(0, (4, 8)))["gradcam"]
    exp = axiomcam.explain(model, inputs, "gradcam")
    assert exp.target_layer == layer and exp.raw.shape == (1, 4, 8)
    torch.testing.assert_close(exp.raw, raw, rtol=1e-4, atol=1e-6)
    assert exp.maps.shape == (1, 32, 64)
