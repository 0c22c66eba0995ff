""":class:`~axiomcam.targets.TextSimilarity` and :func:`~axiomcam.targets.encode_texts` on
small open_clip CLIP models (random weights, nothing downloaded; a ViT and a ModifiedResNet
image tower): the texts embedded with open_clip's own tokenizer, the default layers, the map
equal to Grad-CAM of the image-text cosine computed by hand, one text per image, clear
errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hand_reference import assert_relative, hand_cam, hand_maps
from torch import nn

import axiomcam
from axiomcam.layers import find_default_layer
from axiomcam.targets import TextSimilarity, encode_texts

open_clip = pytest.importorskip("open_clip")  # the clip extra (in dev)
TEXTS = ["a photo of a cat", "a cup of coffee"]


def tiny_clip(tower: str) -> tuple[nn.Module, int]:
    """A CLIP with a 2-block ViT (patches of 8 on 32 x 32 images: a 4 x 4 grid) or a
    ModifiedResNet (128 x 128 images: a 4 x 4 grid at ``layer4``) image tower and a 1-block
    text transformer; OpenAI CLIP's vocabulary. Returns the model and its image size."""
    model_config = open_clip.model
    if tower == "vit":
        vision = model_config.CLIPVisionCfg(layers=2, width=32, head_width=16, patch_size=8,
                                            image_size=32)
    else:
        vision = model_config.CLIPVisionCfg(layers=(1, 1, 1, 1), width=8, head_width=8,
                                            image_size=128)
    text = model_config.CLIPTextCfg(context_length=16, width=32, heads=2, layers=1)
    model = open_clip.CLIP(embed_dim=16, vision_cfg=vision, text_cfg=text).eval()
    return model, vision.image_size


def test_encode_texts_uses_open_clips_tokenizer_offline():
    torch.manual_seed(0)
    model, _ = tiny_clip("vit")
    # the tokenizer open_clip names for ViT-B-32 (OpenAI's vocabulary), at this model's
    # context length
    tokens = open_clip.get_tokenizer("ViT-B-32", context_length=16)(TEXTS)
    with torch.no_grad():
        expected = model.encode_text(tokens)
    torch.testing.assert_close(encode_texts(model, TEXTS), expected)
    torch.testing.assert_close(encode_texts(model, tokens), expected)  # ids as they are
    torch.testing.assert_close(encode_texts(model, TEXTS[1]), expected[1:])
    assert not encode_texts(model, TEXTS).requires_grad
    # one text (a string or a list of one) for every image; a list: text i for image i
    assert TextSimilarity.from_texts(model, TEXTS[0]).reference.shape == (16,)
    assert TextSimilarity.from_texts(model, TEXTS[:1]).reference.shape == (16,)
    assert TextSimilarity.from_texts(model, TEXTS).reference.shape == (2, 16)


def _hand_cosine(image_embeddings: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
    return (image_embeddings * texts).sum(1) / (image_embeddings.norm(dim=1)
                                                  * texts.norm(dim=1))


@pytest.mark.parametrize(("tower", "layer", "grid"), [
    ("vit", "transformer.resblocks.1.ln_1", (4, 4)),
    ("resnet", "layer4", (4, 4)),
])
def test_maps_equal_gradcam_of_the_cosine_computed_by_hand(tower, layer, grid):
    torch.manual_seed(0)
    model, size = tiny_clip(tower)
    images = torch.rand(2, 3, size, size)
    assert find_default_layer(model.visual, images) == layer
    assert find_default_layer(model, images) == f"visual.{layer}"
    with torch.no_grad():
        texts = model.encode_text(open_clip.tokenize(TEXTS, context_length=16))
    target = TextSimilarity.from_texts(model, TEXTS)  # text i for image i
    module = dict(model.visual.named_modules())[layer]

    def to_grid(output: torch.Tensor) -> torch.Tensor:  # ViT tokens: class token first
        if output.dim() == 4:
            return output
        return output[:, 1:].transpose(1, 2).reshape(output.shape[0], -1, *grid)

    kept = {}
    handle = module.register_forward_hook(lambda m, a, out: kept.update(A=out))
    try:
        cosine = _hand_cosine(model.visual(images), texts)
        (gradients,) = torch.autograd.grad(cosine.sum(), kept["A"])
    finally:
        handle.remove()
    activations, gradients = to_grid(kept["A"].detach()), to_grid(gradients)
    raw = (gradients.mean(dim=(2, 3), keepdim=True) * activations).sum(1)
    for explained in (model.visual, model):  # the image tower, or the whole CLIP
        exp = axiomcam.explain(explained, images, "gradcam", targets=target)
        assert exp.target_layer.endswith(layer) and exp.raw.shape == (2, *grid)
        torch.testing.assert_close(exp.scores, cosine.detach(), rtol=1e-5, atol=1e-6)
        for image in range(2):
            assert_relative(exp.raw[image], raw[image], 1e-4)
        torch.testing.assert_close(exp.maps, hand_maps(raw, (size, size)), rtol=1e-4,
                                   atol=1e-4)
    assert raw.flatten(1).std(1).min() > 0


def test_one_text_per_image_also_in_the_perturbed_copies():
    """Score-CAM scores each image's masked copies against that image's text
    (``image_indices``): the batch gives each image the map it gets alone.  XGrad-CAM of
    the ModifiedResNet tower agrees with the hand reference (torch's cosine), text ``i``
    for image ``i``."""
    torch.manual_seed(2)
    model, size = tiny_clip("vit")
    images = torch.rand(2, 3, size, size)
    target = TextSimilarity.from_texts(model, TEXTS)
    both = axiomcam.explain(model.visual, images, "scorecam", targets=target)
    for image in range(2):
        alone = TextSimilarity(target.reference[image])
        single = axiomcam.explain(model.visual, images[image:image + 1], "scorecam",
                                  targets=alone)
        assert_relative(both.raw[image], single.raw[0], 1e-4)
    assert both.raw.flatten(1).std(1).min() > 0
    model, size = tiny_clip("resnet")
    images = torch.rand(2, 3, size, size)
    target = TextSimilarity.from_texts(model, TEXTS)
    weights, raw = hand_cam(model.visual, images, model.visual.layer4,
                            lambda out: F.cosine_similarity(out, target.reference, dim=1),
                            "xgradcam")
    exp = axiomcam.explain(model.visual, images, "xgradcam", targets=target)
    for image in range(2):
        assert_relative(exp.channel_weights[image], weights[image], 1e-4)
        assert_relative(exp.raw[image], raw[image], 1e-4)


def test_output_dict_form_and_refusals():
    torch.manual_seed(0)
    model, size = tiny_clip("vit")
    images = torch.rand(3, 3, size, size)
    target = TextSimilarity.from_texts(model, TEXTS[0])
    model.output_dict = True  # {"image_features": ..., "text_features": None, ...}
    as_dict = axiomcam.explain(model, images, "gradcam", targets=target)
    model.output_dict = False
    as_tuple = axiomcam.explain(model, images, "gradcam", targets=target)
    torch.testing.assert_close(as_dict.raw, as_tuple.raw)
    with pytest.raises(ValueError, match=r"TextSimilarity holds data for 2 images \(0..1\); "
                                         r"it was asked about image 2"):
        axiomcam.explain(model, images, "gradcam", targets=TextSimilarity.from_texts(
            model, TEXTS))
    with pytest.raises(ValueError, match=r"TextSimilarity: the output embeddings have "
                                         r"dimension 16 .* but the reference has 5"):
        axiomcam.explain(model.visual, images, "gradcam", targets=TextSimilarity(torch.ones(5)))
    with pytest.raises(TypeError, match=r"needs a CLIP model with encode_text .* not "
                                        r"VisionTransformer"):
        encode_texts(model.visual, TEXTS)
    with pytest.raises(TypeError, match="texts must be a string, a non-empty list"):
        encode_texts(model, [])
    with pytest.raises(TypeError, match="texts must be a string"):
        encode_texts(model, [1, 2])
    with pytest.raises(ValueError, match=r"token ids must be a \(T, L\) integer tensor"):
        encode_texts(model, torch.rand(2, 16))
    model.vocab_size = 32000  # a SigLIP-like text tower
    with pytest.raises(ValueError, match="has 32000 tokens, not the 49408 of open_clip's "
                                         "default tokenizer"):
        encode_texts(model, TEXTS)
