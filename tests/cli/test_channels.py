"""Models of any number of channels on the command line: grey (1 channel) from image files,
multispectral (5 channels) from ``.npy`` arrays, ``--mean``/``--std`` per channel, the
preprocessing presets, and an error for each disagreement between the model's channels,
the mean/std and the input.

Each map written is recomputed here with :func:`axiomcam.explain` on the same network and
the preprocessing written out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from click.testing import CliRunner
from PIL import Image
from torch import nn

import axiomcam
from axiomcam.cli import main
from axiomcam.cli.options import PRESET_HELP
from axiomcam.models.pretrained import PREPROCESS_PRESETS

SIZE = 16


def network(channels: int) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 6, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(6, 8, 3, padding=1, stride=2), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)).eval()


def saved(tmp_path, channels: int):
    model = network(channels)
    path = tmp_path / f"net{channels}.pt"
    torch.save(model, path)
    return model, path


def invoke(*arguments: str):
    return CliRunner().invoke(main, [str(argument) for argument in arguments])


def one_error(result) -> str:
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("axiomcam: error: ")
    return line


def recorded_raw(out, results, image: int) -> torch.Tensor:
    (entry,) = results["images"][image]["maps"]
    return torch.from_numpy(np.load(out / entry["raw"]))


def assert_same_raw(raw: torch.Tensor, model: nn.Module, x: torch.Tensor) -> None:
    expected = axiomcam.explain(model, x, method="xgradcam", target_layer="3").raw[0]
    scale = expected.abs().max()
    assert scale > 0
    torch.testing.assert_close(raw / scale, expected / scale, atol=1e-5, rtol=0)


def test_a_grey_model_gets_image_files_converted_to_grey(tmp_path):
    model, path = saved(tmp_path, 1)
    pixels = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    photo = Image.fromarray(pixels)
    photo.save(tmp_path / "colour.png")
    out = tmp_path / "maps"
    result = invoke("explain", tmp_path / "colour.png", "--model", path, "--size", SIZE,
                    "--out", out)
    assert result.exit_code == 0, result.stderr
    assert "converted to grey" in result.stderr and "preprocessing 'unit'" in result.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["preprocessing"] | {"resize": None} == {
        "resize": None, "crop": None, "channels": 1, "mean": [0.0], "std": [1.0]}
    # by hand: PIL's grey (ITU-R 601-2 luma), the whole image resized, pixels in [0, 1]
    grey = TF.resize(photo.convert("L"), [SIZE, SIZE], antialias=True)
    x = TF.to_tensor(grey)[None]
    assert_same_raw(recorded_raw(out, results, 0), model, x)
    overlay = Image.open(out / results["images"][0]["maps"][0]["overlay"])
    assert overlay.size == photo.size  # drawn over the colour file

    # one number per channel, here one: the mean and std apply to the grey values
    normalised = invoke("explain", tmp_path / "colour.png", "--model", path, "--size", SIZE,
                        "--mean", "0.5", "--std", "0.25", "--out", tmp_path / "normalised")
    assert normalised.exit_code == 0, normalised.stderr
    results = json.loads((tmp_path / "normalised" / "results.json").read_text())
    assert_same_raw(recorded_raw(tmp_path / "normalised", results, 0), model, (x - 0.5) / 0.25)


def test_a_five_channel_model_reads_npy_arrays_in_either_layout(tmp_path):
    model, path = saved(tmp_path, 5)
    rng = np.random.default_rng(1)
    folder = tmp_path / "bands"
    folder.mkdir()
    first = rng.random((5, 20, 30), dtype=np.float32)  # (C, H, W), float: as it is
    second = rng.integers(0, 256, (12, 18, 5), dtype=np.uint8)  # (H, W, C), uint8: / 255
    np.save(folder / "a.npy", first)
    np.save(folder / "b.npy", second)
    Image.new("RGB", (8, 8)).save(folder / "c.png")
    out = tmp_path / "maps"
    result = invoke("explain", folder, "--model", path, "--size", SIZE, "--mean",
                    "0.1,0.2,0.3,0.4,0.5", "--std", "0.5", "--out", out)
    assert result.exit_code == 1  # the PNG fails, alone
    assert f"axiomcam: failed: {folder / 'c.png'}: an image file has 1 (grey) or 3 (RGB) " \
           "channels, but the model takes 5: give a .npy array (5, H, W) or (H, W, 5)" \
           in result.stderr
    results = json.loads((out / "results.json").read_text())
    assert [image["path"] for image in results["images"]] == [str(folder / "a.npy"),
                                                             str(folder / "b.npy")]
    assert results["preprocessing"]["mean"] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert results["preprocessing"]["std"] == [0.5] * 5
    mean = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5])[:, None, None]
    for index, values in enumerate((torch.from_numpy(first),
                                    torch.from_numpy(second).permute(2, 0, 1).float() / 255)):
        resized = TF.resize(values, [SIZE, SIZE], antialias=True)
        assert_same_raw(recorded_raw(out, results, index), model, ((resized - mean) / 0.5)[None])
    sizes = [image["size"] for image in results["images"]]
    assert sizes == [[30, 20], [18, 12]]  # width, height of the pictures maps are drawn on
    overlay = Image.open(out / results["images"][1]["maps"][0]["overlay"])
    assert overlay.size == (18, 12)

    compared = invoke("compare", folder / "a.npy", "--model", path, "--size", SIZE,
                      "--methods", "gradcam,xgradcam", "--out", tmp_path / "compare.png")
    assert compared.exit_code == 0, compared.stderr
    assert (tmp_path / "compare.png").stat().st_size > 1000


@pytest.mark.parametrize(("array", "reason"), [
    (np.zeros((4, 8, 8), dtype=np.float32),
     "an array of shape (4, 8, 8) is neither (5, H, W) nor (H, W, 5) for the model's 5 "
     "channels"),
    (np.zeros((5, 8, 8), dtype=np.int64), "an array of dtype int64: give uint8 (0..255) or "
                                          "float values"),
    (np.full((5, 8, 8), np.nan, dtype=np.float32), "the array has NaN or infinite values"),
])
def test_arrays_that_do_not_fit_fail_with_their_reason(tmp_path, array, reason):
    _, path = saved(tmp_path, 5)
    np.save(tmp_path / "x.npy", array)
    result = invoke("explain", tmp_path / "x.npy", "--model", path, "--size", SIZE, "--out",
                    tmp_path / "maps")
    assert result.exit_code == 1
    assert f"axiomcam: failed: {tmp_path / 'x.npy'}: '{tmp_path / 'x.npy'}': {reason}" \
           in result.stderr


@pytest.mark.parametrize(("options", "message"), [
    (["--mean", "0.5,0.5,0.5"], "net5.pt takes 5-channel inputs but the mean has 3 values and "
                                "the std 1: give 1 or 5 values each"),
    (["--preprocess", "imagenet"], "net5.pt takes 5-channel inputs but the mean has 3 values "
                                   "and the std 3"),
    (["--preprocess", "tf", "--std", "0.5"], "give a preprocessing preset ('tf') or a mean "
                                             "and std, not both"),
    (["--onnx-score", "probability"], "--onnx-score probability applies to ONNX files"),
    (["--mean", "0.5,,x"], "--mean takes comma-separated numbers, got '0.5,,x'"),
])
def test_options_that_disagree_with_the_model_are_usage_errors(tmp_path, options, message):
    _, path = saved(tmp_path, 5)
    np.save(tmp_path / "x.npy", np.zeros((5, 8, 8), dtype=np.float32))
    result = invoke("explain", tmp_path / "x.npy", "--model", path, "--size", SIZE, *options,
                    "--out", tmp_path / "maps")
    assert result.exit_code == 2
    assert message in one_error(result)
    assert not (tmp_path / "maps").exists()


def test_the_presets_are_in_the_help_and_the_layers_command_takes_any_channels(tmp_path):
    assert list(PRESET_HELP) == list(PREPROCESS_PRESETS)
    help_text = " ".join(invoke("explain", "--help").stdout.split())
    assert "--preprocess [imagenet|unit|raw255|tf]" in help_text
    assert "tf: pixels in [-1, 1]" in help_text
    assert "--onnx-score [logits|probability]" in help_text
    _, path = saved(tmp_path, 5)
    layers = invoke("layers", "--model", path, "--size", SIZE)
    assert layers.exit_code == 0, layers.stderr
    assert "* 3 " in layers.stdout and "8x8x8" in layers.stdout
    assert "it takes 5-channel inputs: give .npy arrays" in layers.stderr
