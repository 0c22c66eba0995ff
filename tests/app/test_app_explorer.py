"""What the browser app computes (axiomcam.app.explorer), without a browser: every number
it shows equals the public API's on the same input, and every bad input is a clear error.

A tiny random conv net with a GAP + linear head stands in for a classifier."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch import nn

import axiomcam
from axiomcam.app import explorer as explorer_module
from axiomcam.app.explorer import MAX_SIDE, Explorer
from axiomcam.evaluation import evaluation_inputs
from axiomcam.images import overlay
from axiomcam.metrics import axioms as axioms_module
from axiomcam.metrics.axioms import measure_axioms
from axiomcam.metrics.faithfulness import deletion_insertion
from axiomcam.models import PretrainedModel

CLASSES = ["cat", "dog", "car", "tiger cat", "crane", "crane"]
SIZE = 32


@pytest.fixture(scope="module")
def explorer() -> Explorer:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(6, 8, 3, padding=1, stride=2), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, len(CLASSES)))
    pretrained = PretrainedModel("tiny", model.eval(), None, None, CLASSES, "3", SIZE,
                                 mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    return Explorer(pretrained, deletion_steps=8)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    pixels = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_opening_classifies_the_whole_image_as_evaluate_does(explorer, photo):
    opened = explorer.open_upload(png_bytes(photo), "photo.png")
    inputs, _ = evaluation_inputs(explorer.pretrained, [photo], [torch.zeros(0, 4)])
    assert torch.equal(opened.inputs, inputs)
    probabilities = explorer.pretrained.model(inputs)[0].softmax(0)
    order = probabilities.argsort(descending=True)[:5].tolist()
    assert [row["index"] for row in opened.top_classes] == order
    assert [row["name"] for row in opened.top_classes] == [CLASSES[i] for i in order]
    assert [row["probability"] for row in opened.top_classes] == pytest.approx(
        probabilities[order].tolist(), abs=1e-6)
    assert opened.notice is None and opened.image.size == photo.size


def test_every_number_shown_equals_the_public_api(explorer, photo):
    opened = explorer.open_image(photo, "photo")
    methods = ["gradcam", "xgradcam", "ablationcam:activation", "layercam"]
    results = explorer.explain(opened, "dog", None, methods)
    assert [result.method for result in results] == methods
    classes = torch.tensor([1])
    reference = measure_axioms(explorer.pretrained.model, opened.inputs, methods[:3], "3",
                               classes)
    for result in results:
        assert result.error is None
        expected = axiomcam.explain(explorer.pretrained.model, opened.inputs, result.method,
                                    "3", classes)
        assert torch.allclose(result.cam_map, expected.maps[0], atol=1e-6)
        assert result.heatmap.size == photo.size
        assert np.array_equal(np.asarray(result.heatmap),
                              np.asarray(overlay(photo, expected.maps[0], alpha=1.0)))
        curves = deletion_insertion(explorer.pretrained.model, opened.inputs, expected.maps,
                                    classes, steps=8)
        assert result.deletion_auc == pytest.approx(float(curves.deletion_auc[0]), abs=1e-6)
        if result.method == "layercam":  # no channel weights: no axioms, and it says so
            assert result.conservation_error is None and result.sensitivity_error is None
            assert "no channel weights" in result.axioms_note
            continue
        errors = reference[result.method]
        assert result.conservation_error == pytest.approx(
            float(errors.conservation_error[0]), rel=1e-5, abs=1e-7)
        assert result.sensitivity_error == pytest.approx(
            float(errors.sensitivity_error[0]), rel=1e-5, abs=1e-7)
        assert result.bias_share == pytest.approx(float(errors.bias_share[0]), abs=1e-7)
    # on a GAP + linear head at the last conv layer Grad-CAM and XGrad-CAM are one map,
    # and the activation form of Ablation-CAM meets the sensitivity axiom
    assert torch.allclose(results[0].cam_map, results[1].cam_map, atol=1e-6)
    assert results[2].sensitivity_error < 1e-4


def test_equal_maps_share_one_deletion_curve(explorer, photo, monkeypatch):
    opened = explorer.open_image(photo)
    calls = []
    real = explorer_module.deletion_insertion

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(explorer_module, "deletion_insertion", counting)
    # at the last conv layer of a GAP + linear head these three maps are one map
    results = explorer.explain(opened, 2, "3", ["cam", "gradcam", "xgradcam", "layercam"])
    assert len(calls) == 2 and all(call["insertion"] is False for call in calls)
    assert results[0].deletion_auc == results[1].deletion_auc == results[2].deletion_auc
    assert not torch.equal(results[3].cam_map, results[0].cam_map)


def test_a_method_that_cannot_explain_the_layer_fails_alone(explorer, photo):
    opened = explorer.open_image(photo)
    # CAM needs the layer to be followed by pooling and one linear layer: not layer "1"
    results = explorer.explain(opened, 0, "1", ["cam", "gradcam"])
    assert results[0].method == "cam" and results[0].heatmap is None
    assert "CAM" in results[0].error or "linear" in results[0].error
    assert results[1].error is None and results[1].heatmap is not None


def test_counterfactual_maps_are_the_public_apis_and_methods_without_the_form_fail_alone(
        explorer, photo):
    opened = explorer.open_image(photo)
    methods = ["gradcam", "layercam", "scorecam"]
    results = explorer.explain(opened, "car", "1", methods, counterfactual=True)
    assert [result.title for result in results] == [
        "Grad-CAM (counterfactual)", "Layer-CAM (counterfactual)", "Score-CAM (counterfactual)"]
    classes = torch.tensor([2])
    for result in results[:2]:
        expected = axiomcam.explain(explorer.pretrained.model, opened.inputs, result.method,
                                    "1", classes, counterfactual=True)
        plain = axiomcam.explain(explorer.pretrained.model, opened.inputs, result.method,
                                 "1", classes)
        assert result.error is None
        assert torch.allclose(result.cam_map, expected.maps[0], atol=1e-6)
        assert not torch.allclose(result.cam_map, plain.maps[0], atol=1e-3)
    # Grad-CAM's axioms are measured against -y: a map linear in G keeps its errors
    (errors,) = measure_axioms(explorer.pretrained.model, opened.inputs, ["gradcam"], "1",
                               classes).values()
    assert results[0].conservation_error == pytest.approx(float(errors.conservation_error[0]),
                                                          rel=1e-5, abs=1e-6)
    assert results[2].heatmap is None and "has no counterfactual form" in results[2].error


def test_progress_rises_to_one_and_results_arrive_one_by_one(explorer, photo, monkeypatch):
    opened = explorer.open_image(photo)
    reports, arrived = [], []
    results = explorer.explain(opened, "car", "3", ["scorecam", "xgradcam"],
                               progress=lambda fraction, text: reports.append((fraction, text)),
                               on_result=arrived.append)
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and fractions[0] < 0.5
    # Score-CAM's batches are reported as they run (here one batch: its start and end),
    # its share of the bar its K = 8 whole-network passes against a curve's 9
    score_cam = sorted({fraction for fraction, text in reports if text == "Score-CAM"})
    total = 1.5 + (8 / 9 + 1) + (0.1 + 1)  # probe, Score-CAM and its curve, XGrad-CAM's
    assert score_cam == pytest.approx([1.5 / total, (1.5 + 8 / 9) / total])
    assert arrived == results


def test_the_layer_is_probed_once_per_image_layer_and_class(explorer, photo, monkeypatch):
    opened = explorer.open_image(photo)
    calls = []
    real = axioms_module.probe_layer

    def counting(*args, **kwargs):
        calls.append(args[3])
        return real(*args, **kwargs)

    monkeypatch.setattr(axioms_module, "probe_layer", counting)
    explorer.explain(opened, 2, "3", ["gradcam"])
    explorer.explain(opened, 2, "3", ["xgradcam", "gradcam++"])
    assert calls == ["3"]
    explorer.explain(opened, 3, "3", ["gradcam"])  # another class: another probe
    explorer.explain(opened, 3, "3", ["layercam"])  # no channel weights: no probe
    assert calls == ["3", "3"]


def test_a_huge_image_is_downscaled_with_a_notice(explorer):
    huge = Image.new("RGB", (MAX_SIDE * 2 + 10, 900), (120, 30, 200))
    opened = explorer.open_upload(png_bytes(huge), "panorama.png")
    assert max(opened.image.size) == MAX_SIDE
    assert opened.image.size == (MAX_SIDE, round(900 * MAX_SIDE / (MAX_SIDE * 2 + 10)))
    assert f"{MAX_SIDE * 2 + 10}\N{MULTIPLICATION SIGN}900" in opened.notice
    assert "downscaled" in opened.notice


@pytest.mark.parametrize(("data", "message"), [
    (b"", "'notes.txt' is empty"),
    (b"just some words", "'notes.txt' is not an image PIL can read"),
    (png_bytes(Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3),
                                                                 dtype=np.uint8)))[:5000],
     "'notes.txt' is corrupt or truncated"),
])
def test_uploads_that_are_not_images_are_refused_by_name(explorer, data, message):
    with pytest.raises(ValueError, match=message):
        explorer.open_upload(data, "notes.txt")


def test_a_decompression_bomb_is_refused_by_name(explorer, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # PIL refuses twice this
    with pytest.raises(ValueError, match=r"'bomb\.png' has too many pixels to open safely"):
        explorer.open_upload(png_bytes(Image.new("RGB", (30, 30))), "bomb.png")


def test_a_too_large_upload_is_refused_before_decoding(explorer, monkeypatch):
    monkeypatch.setattr(explorer_module, "MAX_UPLOAD_BYTES", 100)
    with pytest.raises(ValueError, match=r"'big\.png' is 0 MB; the app takes images up to 0 MB"):
        explorer.open_upload(b"x" * 101, "big.png")


@pytest.mark.parametrize(("text", "message"), [
    ("tiger", r"unknown class name 'tiger'; did you mean 'tiger cat'\?"),
    ("crane", "shared by classes 4, 5: give the index instead"),
    ("6", "target class 6 is out of range: the model has 6 classes"),
    ("top3", "type one class"),
    ("cat,dog", "explain one class at a time, not 2"),
    ("", "no target"),
])
def test_classes_that_do_not_exist_are_clear_errors(explorer, photo, text, message):
    with pytest.raises(ValueError, match=message):
        explorer.resolve_class(text)
    with pytest.raises(ValueError, match=message):
        explorer.explain(explorer.open_image(photo), text, None, ["gradcam"])


@pytest.mark.parametrize("text", ["", " , ", "zebra"])
def test_class_messages_offer_only_what_the_app_takes(explorer, text):
    # the app explains one class: a message offering top1 would offer what it refuses
    with pytest.raises(ValueError) as caught:
        explorer.resolve_class(text)
    message = str(caught.value)
    assert "top1" not in message and "top3" not in message, message
    assert "a class index" in message


def test_names_and_indices_both_resolve(explorer):
    assert explorer.resolve_class("Tiger Cat") == 3
    assert explorer.resolve_class(" 5 ") == 5


def test_bad_layers_and_methods_are_clear_errors(explorer, photo):
    opened = explorer.open_image(photo)
    with pytest.raises(ValueError, match="'9' does not exist"):
        explorer.explain(opened, 0, "9", ["gradcam"])
    with pytest.raises(ValueError, match=r"no .* output with h\*w > 1"):
        explorer.explain(opened, 0, "4", ["gradcam"])  # the pooled (B, 8, 1, 1) output
    with pytest.raises(ValueError, match="unknown method 'guided_gradcam'; the app offers"):
        explorer.explain(opened, 0, None, ["guided_gradcam"])
    with pytest.raises(ValueError, match="pick at least one method"):
        explorer.explain(opened, 0, None, [])


def test_the_download_overlay_is_the_map_over_the_image_at_the_chosen_opacity(explorer,
                                                                             photo):
    opened = explorer.open_image(photo)
    (result,) = explorer.explain(opened, 1, "3", ["xgradcam"])
    picture = explorer.overlay_picture(opened, result, 0.3)
    assert np.array_equal(np.asarray(picture),
                          np.asarray(overlay(photo, result.cam_map, alpha=0.3)))
    for alpha in (-0.1, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match="opacity must be a number in \\[0, 1\\]"):
            explorer.overlay_picture(opened, result, alpha)


def test_the_layer_list_marks_the_default(explorer):
    names = [name for name, _ in explorer.layers]
    assert names == ["0", "1", "2", "3"] and explorer.default_layer == "3"


def test_the_model_serves_one_computation_at_a_time(explorer, photo):
    """An explanation's hooks would catch another thread's forward pass: opening an image
    while an explanation runs waits for it to finish."""
    opened = explorer.open_image(photo)
    order, started = [], threading.Event()

    def report(fraction: float, text: str) -> None:
        started.set()
        if text == "done":  # the last report, still inside the explanation
            order.append("explained")
        else:
            time.sleep(0.01)  # long enough for the other thread to try

    def explain() -> None:
        explorer.explain(opened, 1, "3", ["scorecam", "gradcam"], progress=report)

    worker = threading.Thread(target=explain)
    worker.start()
    assert started.wait(30)
    second = explorer.open_image(photo, "again")
    order.append("opened")
    worker.join(60)
    assert order == ["explained", "opened"]
    assert torch.equal(second.probabilities, opened.probabilities)


# ----------------------------------------------------------------------------- channels


def explorer_of(channels: int) -> Explorer:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(channels, 6, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(6, 8, 3, padding=1, stride=2), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, len(CLASSES)))
    pretrained = PretrainedModel("bands", model.eval(), None, None, CLASSES, "3", SIZE,
                                 mean=(0.5,) * channels, std=(0.25,) * channels,
                                 channels=channels)
    return Explorer(pretrained, deletion_steps=4)


def test_a_grey_model_explains_an_uploaded_photo(photo):
    explorer = explorer_of(1)
    opened = explorer.open_upload(png_bytes(photo), "photo.png")
    # by hand: PIL's grey, the whole image resized (antialiased, as evaluation_inputs does)
    expected = (TF.to_tensor(TF.resize(photo.convert("L"), [SIZE, SIZE], antialias=True))
                - 0.5) / 0.25
    torch.testing.assert_close(opened.inputs[0], expected)
    (result,) = explorer.explain(opened, 0, None, ["xgradcam"])
    reference = axiomcam.explain(explorer.pretrained.model, opened.inputs, method="xgradcam",
                                 target_layer="3", targets=[0])
    torch.testing.assert_close(result.cam_map, reference.maps[0], atol=1e-6, rtol=0)
    assert result.cam_map.std() > 0.05
    assert result.heatmap.size == photo.size


def test_a_five_channel_model_takes_npy_uploads_and_refuses_images(photo):
    explorer = explorer_of(5)
    values = np.random.default_rng(2).random((20, 24, 5), dtype=np.float32)  # (H, W, C)
    buffer = io.BytesIO()
    np.save(buffer, values)
    opened = explorer.open_upload(buffer.getvalue(), "scene.npy")
    assert opened.image.size == (24, 20)
    expected = (TF.resize(torch.from_numpy(values).permute(2, 0, 1), [SIZE, SIZE],
                          antialias=True) - 0.5) / 0.25
    torch.testing.assert_close(opened.inputs[0], expected)
    (result,) = explorer.explain(opened, 1, None, ["gradcam"])
    assert result.error is None and result.cam_map.shape == (SIZE, SIZE)
    message = r"'photo\.png' is an image \(1 or 3 channels\) but the model takes 5-channel " \
              r"inputs: upload a \.npy array \(5, H, W\) or \(H, W, 5\)"
    with pytest.raises(ValueError, match=message):
        explorer.open_upload(png_bytes(photo), "photo.png")
    with pytest.raises(ValueError, match="'chelsea' is an image"):
        explorer.open_sample("chelsea")
    with pytest.raises(ValueError, match=r"'x\.npy': an array of shape \(3, 4\) is neither"):
        buffer = io.BytesIO()
        np.save(buffer, np.zeros((3, 4), dtype=np.float32))
        explorer.open_upload(buffer.getvalue(), "x.npy")


def test_occlusion_is_offered_without_a_layer_and_its_window_fits_the_input(explorer, photo):
    opened = explorer.open_image(photo)
    reports = []
    results = explorer.explain(opened, "dog", "1", ["gradcam", "occlusion"],
                               progress=lambda fraction, text: reports.append((fraction, text)))
    occlusion = results[1]
    assert occlusion.error is None and "no channel weights" in occlusion.axioms_note
    # SIZE 32: a 5-pixel window every 2 pixels, as evaluate's occlusion_correlation
    classes = torch.tensor([1])
    expected = axiomcam.explain(explorer.pretrained.model, opened.inputs, "occlusion",
                                targets=classes, window=5, stride=2)
    assert torch.allclose(occlusion.cam_map, expected.maps[0], atol=1e-6)
    assert expected.raw.std() > 0
    curves = deletion_insertion(explorer.pretrained.model, opened.inputs, expected.maps,
                                classes, steps=8)
    assert occlusion.deletion_auc == pytest.approx(float(curves.deletion_auc[0]), abs=1e-6)
    # its share of the bar: 15 x 15 window positions against a deletion curve's 9 passes
    shares = sorted({fraction for fraction, text in reports if text.startswith("Occlusion (")})
    total = 1.5 + (0.1 + 1) + (225 / 9 + 1)  # probe, Grad-CAM, occlusion, with curves
    assert shares[0] == pytest.approx((1.5 + 1.1) / total)
    assert shares[-1] == pytest.approx((1.5 + 1.1 + 225 / 9) / total)
