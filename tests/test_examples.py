"""The runnable examples in ``examples/``: each script runs to the end in a fresh Python
process (``OMP_NUM_THREADS=1``, its pictures written to a temporary folder), writes the PNG
files it promises, and every overlay in them shows a map that is not all zero.

How an overlay is checked: ``axiomcam.images.overlay`` blends ``0.5 * photo + 0.5 *
colour``, so ``2 * overlay - photo`` recovers the coloured map.  It must lie in [0, 255]
(the overlay is of this photo) and vary over the picture: an all-zero map is the single
colour ``jet(0)`` everywhere.  The photo is rebuilt with the example's own helper, or found
in the same figure (the first picture of a grid row, the frame above in the video strip).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import matplotlib
import numpy as np
import pytest
import torch
import torchvision.transforms as transforms
from PIL import Image
from scipy import ndimage

from axiomcam.figures import save_grid
from axiomcam.images import overlay, sample_image, signal_overlay
from axiomcam.methods import CAM_METHODS, METHOD_NAMES

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: the spread (in 8-bit levels) a recovered map colour must exceed: real maps give about 160
#: to 257 here, an all-zero map 1 to 2 (rounding)
MIN_COLOUR_SPREAD = 40.0


# ----------------------------------------------------------------------------- helpers


def run_example(name: str, out_dir: Path, *arguments: str) -> str:
    """Run ``examples/<name>.py out_dir *arguments``; its stdout. Fails on a non-zero exit
    or an axiomcam warning (a constant map, a box without a match, ...)."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), str(out_dir), *arguments],
        capture_output=True, text=True, env=environment, timeout=600, check=False)
    assert result.returncode == 0, f"{name}.py failed:\n{result.stdout}\n{result.stderr}"
    assert "AxiomCamWarning" not in result.stderr, result.stderr
    return result.stdout


def load_example(name: str) -> ModuleType:
    """The example script as a module (its helpers rebuild the photos it overlaid)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def open_png(path: Path) -> np.ndarray:
    assert path.is_file(), f"{path.name} was not written"
    assert path.stat().st_size > 0
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        assert picture.width > 0 and picture.height > 0
        return np.asarray(picture.convert("RGB"))


def map_colours(overlaid: np.ndarray, photo: np.ndarray, blur: float = 2.0) -> np.ndarray:
    """``2 * overlay - photo`` (the coloured map, in 8-bit levels) inside a 4-pixel margin,
    blurred a little: pictures taken from a figure may be resampled half a pixel apart."""
    height = min(overlaid.shape[0], photo.shape[0])
    width = min(overlaid.shape[1], photo.shape[1])
    inner = (slice(4, height - 4), slice(4, width - 4))
    colours = 2.0 * overlaid[inner].astype(np.float64) - photo[inner].astype(np.float64)
    return ndimage.gaussian_filter(colours, sigma=(blur, blur, 0))


def assert_overlay_shows_a_map(overlaid: np.ndarray, photo: np.ndarray, what: str) -> None:
    colours = map_colours(overlaid, photo)
    low, high = np.percentile(colours, [2, 98], axis=(0, 1))
    # the recovered colours are those of a colour map: the overlay is of this photo
    assert low.min() > -30 and high.max() < 285, f"{what}: not an overlay of this photo"
    spread = float((np.percentile(colours, 99, axis=(0, 1))
                    - np.percentile(colours, 1, axis=(0, 1))).max())
    assert spread > MIN_COLOUR_SPREAD, f"{what}: the map is constant (spread {spread:.1f})"


def _runs(flags: np.ndarray, minimum: int) -> list[tuple[int, int]]:
    """``[start, end)`` of the runs of True at least ``minimum`` long."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)
            if b - a >= minimum]


def grid_cells(pixels: np.ndarray) -> list[list[np.ndarray]]:
    """The pictures of a ``save_grid`` figure, row by row: the blocks of non-white pixels
    (titles are the short blocks above the pictures, left out)."""
    ink = (pixels < 245).any(axis=2)
    columns = []
    for left, right in _runs(ink.any(axis=0), 40):
        rows = _runs(ink[:, left:right].any(axis=1), (right - left) // 2)
        columns.append([pixels[top:bottom, left:right] for top, bottom in rows])
    return [list(row) for row in zip(*columns, strict=True)]


# ----------------------------------------------------------------------------- the check


def test_the_overlay_check_tells_a_map_from_an_all_zero_map(tmp_path):
    """The check itself can fail: an all-zero map's overlay, alone or in a grid, fails it;
    a ramp's passes; an overlay of another photo is refused."""
    photo = transforms.CenterCrop(96)(sample_image("chelsea"))
    pixels = np.asarray(photo)
    flat = overlay(photo, torch.zeros(96, 96))
    ramp = overlay(photo, torch.linspace(0, 1, 96).expand(96, 96))
    assert_overlay_shows_a_map(np.asarray(ramp), pixels, "ramp")
    with pytest.raises(AssertionError, match="the map is constant"):
        assert_overlay_shows_a_map(np.asarray(flat), pixels, "zero")
    with pytest.raises(AssertionError, match="not an overlay of this photo"):
        assert_overlay_shows_a_map(np.asarray(ramp), np.asarray(
            transforms.CenterCrop(96)(sample_image("coffee"))), "other photo")
    path = tmp_path / "grid.png"
    save_grid(path, [[photo, ramp, flat]] * 2, [["photo", "ramp", "zero"]] * 2)
    cells = grid_cells(open_png(path))
    assert [len(row) for row in cells] == [3, 3]
    for row in cells:
        assert_overlay_shows_a_map(row[1], row[0], "ramp in a grid")
        with pytest.raises(AssertionError, match="the map is constant"):
            assert_overlay_shows_a_map(row[2], row[0], "zero in a grid")


def signal_plot_areas(pixels: np.ndarray, alpha: float = 0.6, colormap: str = "jet",
                      min_pixels: int = 2000) -> list[np.ndarray]:
    """The map values behind the line plots of ``signal_overlay`` pictures in a figure:
    pixels whose colour is ``(1 - alpha) * white + alpha * colormap(v)`` (within 8 levels),
    grouped into connected areas of at least ``min_pixels`` (one per plot; a 5-pixel
    closing joins the parts the black line cuts apart), each area's ``v`` values."""
    table = (1 - alpha) + alpha * matplotlib.colormaps[colormap](np.linspace(0, 1, 256))[:, :3]
    codes = pixels.reshape(-1, 3).astype(np.int64) @ np.array([65536, 256, 1])
    unique, index = np.unique(codes, return_inverse=True)
    colours = np.stack([unique // 65536, unique // 256 % 256, unique % 256], axis=1)
    distances = ((colours[:, None, :] / 255.0 - table[None]) ** 2).sum(-1)
    matched = (distances.min(1) < (8 / 255) ** 2)[index].reshape(pixels.shape[:2])
    values = (distances.argmin(1) / 255.0)[index].reshape(pixels.shape[:2])
    labels, _ = ndimage.label(ndimage.binary_closing(matched, structure=np.ones((5, 5))))
    sizes = np.bincount(labels.ravel())
    return [values[(labels == label) & matched] for label in np.flatnonzero(sizes >= min_pixels)
            if label != 0]


def test_the_signal_plot_check_tells_a_map_from_a_constant_map(tmp_path):
    """The check itself can fail: a constant map's plot has no spread; a ramp's has."""
    line = torch.sin(torch.linspace(0, 9, 120))
    pictures = [[signal_overlay(line, torch.linspace(0, 1, 120)),
                 signal_overlay(line, torch.zeros(120))]]
    save_grid(tmp_path / "grid.png", pictures, [["ramp", "zero"]], cell_inches=4.0)
    ramp, zero = signal_plot_areas(open_png(tmp_path / "grid.png"))
    assert np.percentile(ramp, 99) - np.percentile(ramp, 1) > 0.8
    assert np.percentile(zero, 99) - np.percentile(zero, 1) < 0.05


# ----------------------------------------------------------------------------- examples


@pytest.mark.parametrize("model", ["lraspp", "fcn"])
def test_segmentation_example(tmp_path, model):
    stdout = run_example("segmentation", tmp_path, "--model", model)
    assert ("FCN ResNet-50" if model == "fcn" else "LR-ASPP MobileNetV3") in stdout
    photo = np.asarray(load_example("segmentation").prepare(sample_image("chelsea"))[0])
    region = open_png(tmp_path / "segmentation_region.png")
    assert region.shape == photo.shape
    # inside the region the photo as it is, outside darkened to a third; both exist
    kept = (region == photo).all(axis=2)
    assert 0.01 < kept.mean() < 0.99
    darkened = np.abs(region.astype(int) - np.round(photo / 3)).max(axis=2) <= 1
    assert (kept | darkened).all()
    for method in ("gradcam", "xgradcam"):
        overlaid = open_png(tmp_path / f"segmentation_{method}.png")
        assert overlaid.shape == photo.shape
        assert_overlay_shows_a_map(overlaid, photo, method)
        assert str(tmp_path / f"segmentation_{method}.png") in stdout


def test_detection_example(tmp_path):
    stdout = run_example("detection", tmp_path)
    photo = np.asarray(load_example("detection").prepare(sample_image("chelsea"))[0])
    for method in ("gradcam", "xgradcam"):
        overlaid = open_png(tmp_path / f"detection_{method}.png")
        assert overlaid.shape == photo.shape
        assert_overlay_shows_a_map(overlaid, photo, method)
        # the box is drawn in white: pure white pixels, which a jet overlay never has
        assert (overlaid == 255).all(axis=2).sum() > 100
    assert "target score + IoU" in stdout


def test_vision_transformer_example(tmp_path):
    stdout = run_example("vision_transformer", tmp_path)
    cells = grid_cells(open_png(tmp_path / "vision_transformer.png"))
    # a row per model: the photo, then Grad-CAM, XGrad-CAM, Layer-CAM
    assert [len(row) for row in cells] == [4, 4]
    for model, row in zip(("ViT-B/16", "Swin-T"), cells, strict=True):
        for position, cell in enumerate(row[1:], start=1):
            assert_overlay_shows_a_map(cell, row[0], f"{model}, picture {position}")
    assert "encoder.layers.encoder_layer_11.ln_1" in stdout  # ViT's default layer
    assert "14 x 14 grid" in stdout and "7 x 7 grid" in stdout


def test_video_3d_example(tmp_path):
    stdout = run_example("video_3d", tmp_path)
    cells = grid_cells(open_png(tmp_path / "video_3d.png"))
    # the frames, then a row per method, one picture per frame
    assert [len(row) for row in cells] == [8, 8, 8]
    for method, row in zip(("Grad-CAM", "XGrad-CAM"), cells[1:], strict=True):
        for frame, (cell, photo) in enumerate(zip(row, cells[0], strict=True)):
            assert_overlay_shows_a_map(cell, photo, f"{method}, frame {frame}")
    assert "maps (1, 8, 112, 112)" in stdout


def test_two_inputs_example(tmp_path):
    stdout = run_example("two_inputs", tmp_path)
    cells = grid_cells(open_png(tmp_path / "two_inputs.png"))
    # a row per question: the photo, then Grad-CAM, XGrad-CAM, Score-CAM
    assert [len(row) for row in cells] == [4, 4]
    for question, row in enumerate(cells):
        for position, cell in enumerate(row[1:], start=1):
            assert_overlay_shows_a_map(cell, row[0], f"question {question}, picture {position}")
    # the last image explained alone gets its row's map: the questions are paired with
    # the images, in Score-CAM's perturbed copies too
    differences = re.findall(r"last row vs that image alone (\S+)", stdout)
    assert len(differences) == 3 and all(float(d) < 1e-5 for d in differences), stdout


def test_onnx_model_example(tmp_path):
    stdout = run_example("onnx_model", tmp_path)
    # what from_onnx's display shows: the shorter side resized to 256, a 224 centre crop
    photo = np.asarray(transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])(
        sample_image("chelsea")))
    for method in ("gradcam", "xgradcam"):
        overlaid = open_png(tmp_path / f"onnx_{method}.png")
        assert overlaid.shape == photo.shape
        assert_overlay_shows_a_map(overlaid, photo, method)
    assert "largest output difference, ONNX vs torch" in stdout
    # the Keras-like model: channels last, 0..255 rescaled in the graph, a final Softmax
    assert "keras_like.onnx: 3 channels, input 64 x 64, score: logits before the graph's " \
           "final Softmax" in stdout
    assert "note: preprocessing 'raw255'" in stdout
    differences = re.findall(r"on the logits: (\S+)", stdout)
    assert len(differences) == 2 and all(float(d) < 1e-4 for d in differences), stdout
    small = np.asarray(transforms.Compose([transforms.Resize(73), transforms.CenterCrop(64)])(
        sample_image("chelsea")))
    for method in ("gradcam", "xgradcam"):
        assert_overlay_shows_a_map(open_png(tmp_path / f"onnx_keras_{method}.png"), small,
                                   f"keras-like {method}")


def test_embeddings_and_captions_example(tmp_path):
    stdout = run_example("embeddings_and_captions", tmp_path)
    cells = grid_cells(open_png(tmp_path / "embeddings_and_captions.png"))
    # a row per target (class from a dict output, embedding similarity, caption
    # log-probability): the photo, then Grad-CAM and XGrad-CAM
    assert [len(row) for row in cells] == [3, 3, 3]
    for target, row in enumerate(cells):
        for position, cell in enumerate(row[1:], start=1):
            assert_overlay_shows_a_map(cell, row[0], f"target {target}, picture {position}")
    similarity = re.findall(r"similarity to the eye crop: \S+ score ([-0-9.]+)", stdout)
    log_probability = re.findall(r"log p\(.a cat with green eyes.\): \S+ score ([-0-9.]+)",
                                 stdout)
    assert len(similarity) == 2 and all(-1 <= float(s) <= 1 for s in similarity)
    assert len(log_probability) == 2 and all(float(s) < 0 for s in log_probability)


def test_multi_label_example(tmp_path):
    stdout = run_example("multi_label", tmp_path)
    # a row per label above 0.5 (the cat and the coffee): the photo, Grad-CAM, XGrad-CAM
    cells = grid_cells(open_png(tmp_path / "multi_label.png"))
    assert [len(row) for row in cells] == [3, 3]
    for label, row in enumerate(cells):
        for position, cell in enumerate(row[1:], start=1):
            assert_overlay_shows_a_map(cell, row[0], f"label {label}, picture {position}")
    assert "labels >= 0.5: maps (1, 2, 256, 448), selected [True, True]" in stdout
    # each label's map lies on its own half of the picture
    shares = {(label, method): float(share) for label, method, share in re.findall(
        r"(\w+) \((Grad-CAM|XGrad-CAM)\): share of the map on the cat half ([0-9.]+)",
        stdout)}
    assert set(shares) == {(label, method) for label in ("cat", "coffee")
                           for method in ("Grad-CAM", "XGrad-CAM")}
    assert all(share > 0.8 for (label, _), share in shares.items() if label == "cat")
    assert all(share < 0.3 for (label, _), share in shares.items() if label == "coffee")
    # the binary cat model: the negative class's weights are the positive's negated
    (row,) = grid_cells(open_png(tmp_path / "binary.png"))
    assert len(row) == 3
    for position, cell in enumerate(row[1:], start=1):
        assert_overlay_shows_a_map(cell, row[0], f"binary, picture {position}")
    assert "negative weights = -positive weights: True" in stdout
    positive = float(re.search(r"positive \(cat\): share of the map on the cat half "
                               r"([0-9.]+)", stdout).group(1))
    negative = float(re.search(r"negative \(not cat\): share of the map on the cat half "
                               r"([0-9.]+)", stdout).group(1))
    assert positive > 0.8 and negative < 0.3


def test_yolo_example(tmp_path):
    pytest.importorskip("ultralytics")  # the yolo extra (in dev)
    stdout = run_example("yolo", tmp_path)
    photo = np.asarray(load_example("yolo").prepare(sample_image("chelsea"))[0])
    for method in ("eigencam", "gradcam", "xgradcam"):
        overlaid = open_png(tmp_path / f"yolo_{method}.png")
        assert overlaid.shape == photo.shape
        assert_overlay_shows_a_map(overlaid, photo, method)
        # the box is drawn in white: pure white pixels, which a jet overlay never has
        assert (overlaid == 255).all(axis=2).sum() > 100
    # the default layer; the detection's own box: its probability + IoU 1
    assert stdout.count("at 'model.15' (layer grid (32, 48))") == 3
    scores = re.findall(r"probability \+ IoU ([0-9.]+)", stdout)
    assert len(scores) == 3 and all(1.0 < float(s) < 2.0 for s in scores)


def test_huggingface_example(tmp_path):
    pytest.importorskip("transformers")  # the huggingface extra (in dev)
    stdout = run_example("huggingface", tmp_path)
    cells = grid_cells(open_png(tmp_path / "huggingface.png"))
    # a row per model (ViT, Swin, ConvNeXt, ResNet): the photo, Grad-CAM, XGrad-CAM
    assert [len(row) for row in cells] == [3, 3, 3, 3]
    for model, row in enumerate(cells):
        for position, cell in enumerate(row[1:], start=1):
            assert_overlay_shows_a_map(cell, row[0], f"model {model}, picture {position}")
    for layer in ("vit.layers.11.layernorm_before",
                  "swin.encoder.layers.3.blocks.1.layernorm_before",
                  "convnext.encoder.stages.3", "resnet.encoder.stages.3"):
        assert f"default layer {layer!r}" in stdout
    assert stdout.count("logits (1, 10)") == 4
    assert "14 x 14 grid" in stdout and "7 x 7 grid" in stdout


def test_clip_example(tmp_path):
    pytest.importorskip("open_clip")  # the clip extra (in dev)
    stdout = run_example("clip", tmp_path)
    cells = grid_cells(open_png(tmp_path / "clip.png"))
    # a row per model (ViT-B-32, RN50): the photo, then one map per text
    assert [len(row) for row in cells] == [3, 3]
    for model, row in enumerate(cells):
        for position, cell in enumerate(row[1:], start=1):
            assert_overlay_shows_a_map(cell, row[0], f"model {model}, text {position}")
    cosines = re.findall(r"cosine ([-+0-9.]+)", stdout)
    assert len(cosines) == 4 and all(-1 <= float(c) <= 1 for c in cosines)
    assert "'transformer.resblocks.11.ln_1' on a 7 x 7 grid" in stdout
    assert "'layer4' on a 7 x 7 grid" in stdout
    assert "random weights" in stdout


def test_the_code_in_docs_ecosystem_runs(tmp_path):
    """The Python blocks of docs/ecosystem.md (YOLO, Hugging Face, CLIP) run as they are, in
    one process, without an axiomcam warning, and explain at the layers the page names."""
    for module in ("ultralytics", "transformers", "open_clip"):
        pytest.importorskip(module)
    text = (EXAMPLES.parent / "docs" / "ecosystem.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 3
    report = "print('explained at', explanation.target_layer, float(explanation.maps.std()))\n"
    script = tmp_path / "snippets.py"
    script.write_text("".join(block + report for block in blocks), encoding="utf-8")
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            env=environment, timeout=600, check=False)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "AxiomCamWarning" not in result.stderr, result.stderr
    explained = re.findall(r"explained at (\S+) ([0-9.]+)", result.stdout)
    assert [layer for layer, _ in explained] == [
        "model.15", "vit.layers.11.layernorm_before", "transformer.resblocks.11.ln_1"]
    assert all(float(spread) > 0.05 for _, spread in explained)  # maps that vary


def test_signal_1d_example(tmp_path):
    stdout = run_example("signal_1d", tmp_path)
    areas = signal_plot_areas(open_png(tmp_path / "signal_1d.png"))
    # a row per CAM method and Ablation-CAM's variant, Guided Backprop, Guided XGrad-CAM
    # and the fused XGrad-CAM; a column per class; one plot each
    assert len(areas) == (len(CAM_METHODS) + 1 + 3) * 3
    # Random-CAM's random weights, and SS-CAM's default noise (std 2 on [0, 1] masks: 0.62
    # of the maps on the event here), may leave a map no positive value: all zeros
    may_be_zero = [list(CAM_METHODS).index(name) for name in ("randomcam", "sscam")]
    for position, values in enumerate(areas):
        if position // 3 in may_be_zero:
            continue
        spread = np.percentile(values, 99) - np.percentile(values, 1)
        assert spread > 0.3, f"plot {position}: the map is constant (spread {spread:.2f})"
    assert re.search(r"test accuracy (1\.00|0\.9\d)", stdout), stdout
    # the event decides the class and its place is known: the maps point at it, not at
    # the click that every class has
    hits = dict(re.findall(r"^(.+?): maps \(60, 256\), map maximum on the event for "
                           r"([0-9.]+) of the signals", stdout, flags=re.MULTILINE))
    assert len(hits) == len(METHOD_NAMES) + 1, stdout  # every method, and the fused one
    for method in ("Grad-CAM", "XGrad-CAM", "Score-CAM", "HiResCAM",
                   "XGrad-CAM fused over features.3 + features.7"):
        assert float(hits[method]) >= 0.9, (method, stdout)


def test_segmentation_seeds_example(tmp_path):
    from axiomcam.data import CompositeBenchmark
    from axiomcam.models import load

    stdout = run_example("segmentation_seeds", tmp_path)
    lines = re.findall(r"^(composite-\d+) \((.+?)\): mask IoU ([0-9.]+), (\d+) region",
                       stdout, flags=re.MULTILINE)
    assert len(lines) == 3 and len({name for _, name, _, _ in lines}) == 3, stdout
    assert all(0 < float(iou) <= 1 and int(regions) >= 1 for _, _, iou, regions in lines)
    benchmark = CompositeBenchmark(30, load("mobilenet_v2").class_names)
    cells = grid_cells(open_png(tmp_path / "segmentation_seeds.png"))
    assert [len(row) for row in cells] == [3, 3, 3]
    for (image_id, name, _, _), row in zip(lines, cells, strict=True):
        photo = benchmark[int(image_id.split("-")[1])].image
        photo = np.asarray(photo.resize(row[1].shape[1::-1], Image.Resampling.BILINEAR))
        assert_overlay_shows_a_map(row[1], photo, f"{image_id} ({name})")
