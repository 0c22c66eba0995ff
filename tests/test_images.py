"""Image loading, sample images, overlays and guided-gradient pictures."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from axiomcam.images import (
    SAMPLE_IMAGES,
    array_from_bytes,
    array_image,
    array_values,
    guided_to_image,
    image_from_bytes,
    load_array,
    load_image,
    overlay,
    sample_image,
    to_channels,
    to_rgb,
)


def _gradient_rgb(width: int = 16, height: int = 12) -> np.ndarray:
    """A deterministic colourful 8-bit image: R grows left to right, G top to bottom."""
    x = np.linspace(0, 255, width).round().astype(np.uint8)
    y = np.linspace(0, 255, height).round().astype(np.uint8)
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[..., 0] = x[None, :]
    pixels[..., 1] = y[:, None]
    pixels[..., 2] = 77
    return pixels


# ---------------------------------------------------------------------------- load_image


@pytest.mark.parametrize("suffix", ["png", "bmp", "tiff"])
def test_lossless_formats_round_trip_exactly(tmp_path, suffix):
    pixels = _gradient_rgb()
    path = tmp_path / f"picture.{suffix}"
    Image.fromarray(pixels).save(path)
    image = load_image(path)
    assert image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image), pixels)


def test_lossless_webp_round_trips_exactly(tmp_path):
    pixels = _gradient_rgb()
    path = tmp_path / "picture.webp"
    Image.fromarray(pixels).save(path, lossless=True)
    np.testing.assert_array_equal(np.asarray(load_image(path)), pixels)


def test_jpeg_is_close_to_the_original(tmp_path):
    pixels = _gradient_rgb(64, 48)
    path = tmp_path / "picture.jpg"
    Image.fromarray(pixels).save(path, quality=95)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (64, 48)
    error = np.abs(np.asarray(image).astype(int) - pixels.astype(int))
    assert error.mean() < 3


def test_grayscale_becomes_equal_rgb_channels(tmp_path):
    grey = np.arange(12 * 16, dtype=np.uint8).reshape(12, 16)
    path = tmp_path / "grey.png"
    Image.fromarray(grey).save(path)
    rgb = np.asarray(load_image(path))
    assert rgb.shape == (12, 16, 3)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], grey)


def test_one_bit_image_becomes_black_and_white(tmp_path):
    path = tmp_path / "bits.png"
    bits = Image.new("1", (4, 2), 0)
    bits.putpixel((1, 0), 1)
    bits.save(path)
    rgb = np.asarray(load_image(path))
    assert rgb[0, 1].tolist() == [255, 255, 255]
    assert rgb[0, 0].tolist() == [0, 0, 0]


def test_rgba_drops_alpha_and_keeps_colours(tmp_path):
    pixels = _gradient_rgb()
    alpha = np.zeros(pixels.shape[:2], np.uint8)
    alpha[:, ::2] = 255  # half transparent, half opaque: the colours must not depend on it
    path = tmp_path / "alpha.png"
    Image.fromarray(np.dstack([pixels, alpha])).save(path)
    image = load_image(path)
    assert image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image), pixels)


def test_palette_with_transparency_keeps_palette_colours(tmp_path):
    palette_image = Image.new("P", (3, 1))
    palette_image.putpalette([10, 20, 30, 200, 100, 50] + [0, 0, 0] * 254)
    palette_image.putpixel((1, 0), 1)
    path = tmp_path / "palette.png"
    palette_image.save(path, transparency=1)
    rgb = np.asarray(load_image(path))
    assert rgb[0].tolist() == [[10, 20, 30], [200, 100, 50], [10, 20, 30]]


def test_16_bit_grayscale_is_stretched_by_its_own_range(tmp_path):
    # a 12-bit-style ramp 1000..4095: clipping would saturate it, scaling by 65535 would
    # leave it almost black; its own range must map to exactly 0..255
    ramp = np.linspace(1000, 4095, 256).round().astype(np.uint16).reshape(1, 256)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    rgb = np.asarray(load_image(path))
    assert rgb.dtype == np.uint8
    assert rgb.min() == 0 and rgb.max() == 255
    expected = np.round((ramp.astype(float) - 1000) / (4095 - 1000) * 255).astype(np.uint8)
    np.testing.assert_array_equal(rgb[..., 0], expected)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])
    assert np.all(np.diff(rgb[0, :, 0].astype(int)) >= 0)  # order preserved


def test_float_tiff_is_stretched_by_its_own_range(tmp_path):
    values = np.array([[-2.0, 0.0], [1.0, 6.0]], dtype=np.float32)
    path = tmp_path / "float.tiff"
    Image.fromarray(values).save(path)
    rgb = np.asarray(load_image(path))
    assert rgb[..., 1].tolist() == [[0, 64], [96, 255]]


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path, quality=100)  # pure red
    red, green, blue = load_image(path).getpixel((4, 4))
    assert red > 240 and green < 15 and blue < 15


def test_exif_orientation_is_applied(tmp_path):
    # stored 40 wide x 20 tall, left half white; orientation 6 = "rotate 90 degrees clockwise"
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = 255
    stored = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif.tobytes(), quality=95)
    image = load_image(path)
    assert image.size == (20, 40)  # width and height swapped
    upright = np.asarray(image).mean(axis=2)
    # clockwise: the stored left (white) half ends up on top
    assert upright[:15].mean() > 200 and upright[25:].mean() < 50


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "no-such-image.png"
    with pytest.raises(FileNotFoundError, match=r"no-such-image\.png"):
        load_image(missing)


def test_directory_is_rejected(tmp_path):
    with pytest.raises(IsADirectoryError, match=str(tmp_path.name)):
        load_image(tmp_path)


def test_text_file_named_png_is_a_value_error(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    with pytest.raises(ValueError, match=r"notes\.png.*not an image") as caught:
        load_image(path)
    assert "cannot identify image file" in str(caught.value)  # PIL's reason is kept


def test_truncated_jpeg_is_a_value_error(tmp_path):
    complete = tmp_path / "complete.jpg"
    Image.fromarray(_gradient_rgb(128, 96)).save(complete, quality=90)
    data = complete.read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"truncated\.jpg.*(corrupt|truncated)"):
        load_image(truncated)


def test_load_image_accepts_str_paths(tmp_path):
    path = tmp_path / "plain.png"
    Image.new("RGB", (3, 2), (1, 2, 3)).save(path)
    assert load_image(str(path)).getpixel((2, 1)) == (1, 2, 3)


def test_to_rgb_rejects_unknown_modes_and_non_images():
    with pytest.raises(TypeError, match="ndarray"):
        to_rgb(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="'La'"):
        to_rgb(Image.new("La", (2, 2)))


# -------------------------------------------------------------------------- sample_image


@pytest.mark.parametrize("name", list(SAMPLE_IMAGES))
def test_sample_images_are_rgb(name):
    image = sample_image(name)
    assert image.mode == "RGB"
    assert min(image.size) >= 256
    pixels = np.asarray(image)
    if name == "camera":  # grayscale source: three equal channels
        np.testing.assert_array_equal(pixels[..., 0], pixels[..., 2])
    else:
        assert not np.array_equal(pixels[..., 0], pixels[..., 2])


def test_sample_image_sizes():
    assert sample_image("chelsea").size == (451, 300)
    assert sample_image("coffee").size == (600, 400)
    assert sample_image("camera").size == (512, 512)


def test_unknown_sample_image_lists_the_names():
    with pytest.raises(ValueError, match=r"'dog'.*chelsea, coffee"):
        sample_image("dog")


# ------------------------------------------------------------------------------- overlay


@pytest.fixture
def picture() -> Image.Image:
    return Image.fromarray(_gradient_rgb(16, 12))


def test_overlay_alpha_zero_returns_the_image(picture):
    result = overlay(picture, np.random.default_rng(0).random((3, 4)), alpha=0.0)
    assert result.size == picture.size and result.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(result), np.asarray(picture))


def test_overlay_alpha_one_returns_the_colormap(picture):
    cam_map = np.linspace(0, 1, 12 * 16).reshape(12, 16)  # already at image size
    result = overlay(picture, torch.from_numpy(cam_map).float(), alpha=1.0, colormap="viridis")
    expected = np.round(matplotlib.colormaps["viridis"](cam_map)[..., :3] * 255)
    np.testing.assert_allclose(np.asarray(result), expected, atol=1)


def test_overlay_blends_half_and_half(picture):
    result = overlay(picture, np.zeros((12, 16)), alpha=0.5, colormap="gray")
    # gray(0) is black: the result is the image at half brightness
    expected = np.round(np.asarray(picture) / 2)
    np.testing.assert_allclose(np.asarray(result), expected, atol=1)


def test_overlay_resizes_the_map_bilinearly(picture):
    # a 1x2 map: left 0, right 1; upsampled, it ramps from black to white left to right
    result = np.asarray(overlay(picture, np.array([[0.0, 1.0]]), alpha=1.0, colormap="gray"))
    assert result.shape == (12, 16, 3)
    row = result[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert np.all(np.diff(row) >= 0)
    np.testing.assert_array_equal(result[0], result[-1])  # constant along columns


@pytest.mark.parametrize(
    ("cam_map", "message"),
    [
        (np.zeros((1, 3, 4)), "2-D"),
        (np.full((3, 4), np.nan), "NaN"),
        (np.full((3, 4), 2.0), r"\[0, 1\]"),
        (np.full((3, 4), -0.5), r"\[0, 1\]"),
        (np.zeros((0, 4)), "empty"),
    ],
)
def test_overlay_rejects_bad_maps(picture, cam_map, message):
    with pytest.raises(ValueError, match=message):
        overlay(picture, cam_map)


def test_overlay_rejects_bad_arguments(picture):
    with pytest.raises(ValueError, match="alpha"):
        overlay(picture, np.zeros((3, 4)), alpha=1.5)
    with pytest.raises(ValueError, match="no-such-map"):
        overlay(picture, np.zeros((3, 4)), colormap="no-such-map")
    with pytest.raises(TypeError, match="list"):
        overlay(picture, [[0.0, 1.0]])
    with pytest.raises(TypeError, match="ndarray"):
        overlay(np.zeros((4, 4, 3)), np.zeros((4, 4)))


# ----------------------------------------------------------------------- guided_to_image


def test_guided_to_image_shape_and_deprocessing():
    gradient = torch.randn(3, 20, 30, generator=torch.Generator().manual_seed(0))
    picture = guided_to_image(gradient)
    assert picture.mode == "RGB" and picture.size == (30, 20)
    expected = (gradient - gradient.mean()) / (gradient.std(unbiased=False) + 1e-5) * 0.1 + 0.5
    expected = (expected.clamp(0, 1) * 255).round().permute(1, 2, 0).numpy()
    np.testing.assert_allclose(np.asarray(picture), expected, atol=1)


def test_guided_to_image_zero_gradient_is_mid_grey():
    pixels = np.asarray(guided_to_image(np.zeros((3, 4, 5))))
    assert np.all(pixels == 128)


@pytest.mark.parametrize("shape", [(1, 3, 8, 8), (8, 8), (0, 8, 8)])
def test_guided_to_image_rejects_wrong_shapes(shape):
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        guided_to_image(torch.zeros(shape))


def test_guided_to_image_of_other_channel_counts_is_the_grey_of_their_mean():
    gradient = torch.randn(5, 6, 7, generator=torch.Generator().manual_seed(1))
    picture = np.asarray(guided_to_image(gradient))
    mean = gradient.mean(dim=0, keepdim=True).expand(3, -1, -1)
    np.testing.assert_array_equal(picture, np.asarray(guided_to_image(mean)))
    assert np.all(picture[..., 0] == picture[..., 2]) and picture.std() > 5


# ----------------------------------------------------------------------- channels, arrays


def test_to_channels_gives_rgb_or_pil_grey_and_refuses_other_counts():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8))
    assert to_channels(image, 3) is image
    grey = np.asarray(to_channels(image, 1), dtype=np.float64)
    rgb = np.asarray(image, dtype=np.float64)
    luma = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114  # ITU-R 601-2
    np.testing.assert_allclose(grey, luma, atol=0.51)
    flat = Image.new("L", (2, 2), 77)  # a grey file keeps its values
    assert to_channels(flat, 1).getpixel((0, 0)) == 77
    with pytest.raises(ValueError, match=r"1 \(grey\) or 3 \(RGB\) channels, not the 4 the "
                                         r"model takes: give a \.npy array \(4, H, W\)"):
        to_channels(image, 4)


@pytest.mark.parametrize(("array", "channels", "values"), [
    (np.arange(24, dtype=np.float32).reshape(2, 3, 4), 2, None),  # (C, H, W)
    (np.arange(24, dtype=np.float32).reshape(3, 4, 2), 2, "hwc"),  # (H, W, C)
    (np.arange(12, dtype=np.uint8).reshape(3, 4), 1, "grey255"),  # (H, W), uint8 / 255
])
def test_arrays_become_pictures_carrying_their_values(array, channels, values):
    picture = array_image(array, channels)
    expected = torch.from_numpy(array.astype(np.float32))
    if values == "hwc":
        expected = expected.permute(2, 0, 1)
    elif values == "grey255":
        expected = expected[None] / 255
    carried = array_values(picture)
    torch.testing.assert_close(carried, expected)
    assert picture.mode == "RGB" and picture.size == (4, 3)
    # the picture: the channels' mean stretched to 0..255, the same in R, G and B
    mean = carried.mean(dim=0).numpy()
    stretched = np.round((mean - mean.min()) / (mean.max() - mean.min()) * 255)
    np.testing.assert_array_equal(np.asarray(picture)[..., 1], stretched)
    assert array_values(picture.resize((8, 6))) is carried  # PIL keeps .info
    assert array_values(Image.new("RGB", (2, 2))) is None


def test_a_three_channel_array_is_shown_in_colour(tmp_path):
    array = np.zeros((3, 2, 2), dtype=np.float32)
    array[0, 0, 0] = 1.0  # one red pixel
    np.save(tmp_path / "rgb.npy", array)
    picture = load_array(tmp_path / "rgb.npy", 3)
    assert picture.getpixel((0, 0)) == (255, 0, 0) and picture.getpixel((1, 1)) == (0, 0, 0)


def test_array_files_that_cannot_be_read_are_named(tmp_path):
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match=r"'.*bad\.npy' is not a NumPy \.npy array"):
        load_array(tmp_path / "bad.npy", 3)
    np.savez(tmp_path / "two.npz", a=np.zeros(2), b=np.zeros(2))
    with pytest.raises(ValueError, match=r"is an \.npz archive"):
        load_array(tmp_path / "two.npz", 3)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"is not a NumPy \.npy array"):  # no pickles
        load_array(tmp_path / "objects.npy", 3)
    with pytest.raises(FileNotFoundError, match="no array file"):
        load_array(tmp_path / "missing.npy", 3)
    with pytest.raises(ValueError, match=r"'up\.npy': an empty array"):
        buffer = io.BytesIO()
        np.save(buffer, np.zeros((3, 0, 4), dtype=np.float32))
        array_from_bytes(buffer.getvalue(), 3, "up.npy")


def test_a_replaced_image_open_that_imports_a_missing_plugin_is_still_not_an_image(
        tmp_path, monkeypatch):
    # ultralytics replaces PIL.Image.open on import: on a file PIL cannot identify, its
    # replacement imports pi_heif, which may be missing (found by the suite when a YOLO test
    # ran first in the same process)
    from PIL import UnidentifiedImageError

    original_open = Image.open

    def replaced_open(source, *args, **kwargs):
        try:
            return original_open(source, *args, **kwargs)
        except UnidentifiedImageError:
            raise ModuleNotFoundError("No module named 'pi_heif'") from None

    monkeypatch.setattr(Image, "open", replaced_open)
    text_file = tmp_path / "notes.png"
    text_file.write_text("just text")
    with pytest.raises(ValueError, match=r"notes.png' is not an image PIL can read"):
        load_image(text_file)
    with pytest.raises(ValueError, match=r"'up.png' is not an image PIL can read"):
        image_from_bytes(b"just text", "up.png")
    photo = tmp_path / "photo.png"
    Image.fromarray(_gradient_rgb()).save(photo)
    assert load_image(photo).mode == "RGB"  # real images still open
