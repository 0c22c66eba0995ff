"""Images in and out: loading any image file as 8-bit RGB (or grey, for a 1-channel
network), NumPy arrays for networks of other channel counts, sample images, map overlays.

**Arrays.** Image files give 1 (grey) or 3 (RGB) channels. For a network of another channel
count (multispectral, depth + colour, ...), :func:`load_array` reads a ``.npy`` array of
shape ``(C, H, W)`` or ``(H, W, C)`` (``(H, W)`` for ``C = 1``). Its values play the role of
an image's pixels in [0, 1]: ``float`` arrays are taken as they are, ``uint8`` arrays divided
by 255; the model's mean and std are applied to them afterwards, as to any image (with
``--preprocess unit``, mean 0 and std 1, the network gets the values unchanged). The result
is a grey picture to draw maps on (the channels' mean, stretched to 0..255), carrying the
values for the network (:func:`array_values`).

Example:
    >>> import numpy as np
    >>> from axiomcam.images import overlay, sample_image
    >>> image = sample_image("chelsea")
    >>> cam_map = np.linspace(0, 1, 7 * 7).reshape(7, 7)
    >>> overlay(image, cam_map, alpha=0.4).size == image.size
    True
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ARRAY_SUFFIX", "SAMPLE_IMAGES", "array_from_bytes", "array_image", "array_values",
           "guided_to_image", "image_from_bytes", "load_array", "load_image", "overlay",
           "sample_image", "to_channels", "to_rgb"]

#: the file suffix of the NumPy arrays :func:`load_array` reads
ARRAY_SUFFIX = ".npy"
# where a picture made by array_image keeps the array's values (PIL's info dict holds data
# associated with an image; copy(), resize(), crop() and convert() keep it)
_ARRAY_VALUES = "axiomcam.array_values"

# modes whose pixels are one 8-bit value or 8-bit channels that PIL converts to RGB exactly
_DIRECT_TO_RGB = {"1", "L", "P", "CMYK", "YCbCr", "HSV"}
# modes with an alpha channel: the alpha is dropped, the colour values are kept as they are
_WITH_ALPHA = {"RGBA", "RGBa", "LA", "PA", "RGBX"}
# one channel of more than 8 bits (or float): stretched to 0..255 by the image's own range
_HIGH_DEPTH = {"I", "F", "I;16", "I;16L", "I;16B", "I;16N"}


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert a PIL image of any common mode to 8-bit RGB.

    - ``RGB`` is returned as it is.
    - ``1``, ``L``, ``P``, ``CMYK``, ``YCbCr``, ``HSV``: PIL's own conversion (grey levels
      become equal R, G and B).
    - ``RGBA``, ``LA``, ``PA``, ``P`` with a transparent colour: the alpha channel is
      *dropped*, not composited: each pixel keeps its colour whatever its opacity (a
      network sees the colours; compositing on black or white would invent them).
    - ``I;16``, ``I`` (32-bit integer) and ``F`` (float): linearly stretched from the
      image's own minimum..maximum to 0..255 (a 12-bit scan using 0..4095 fills 0..255;
      clipping to 255 would turn it white). A constant image becomes black.

    Raises:
        TypeError: ``image`` is not a PIL image.
        ValueError: a mode with no defined conversion (the mode is named), or a float
            image with NaN or infinite values.

    Example:
        >>> from PIL import Image
        >>> to_rgb(Image.new("LA", (2, 1), (7, 0))).getpixel((0, 0))
        (7, 7, 7)
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"image must be a PIL image, not {type(image).__name__}")
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P" and "transparency" in image.info:
        # going through RGBA is PIL's supported route for palette transparency
        return image.convert("RGBA").convert("RGB")
    if mode in _DIRECT_TO_RGB:
        return image.convert("RGB")
    if mode in _WITH_ALPHA:
        return image.convert("RGBA").convert("RGB")
    if mode in _HIGH_DEPTH:
        return _stretch_to_rgb(image)
    raise ValueError(
        f"cannot convert a PIL image of mode {mode!r} to RGB; supported modes: RGB, "
        f"{', '.join(sorted(_DIRECT_TO_RGB | _WITH_ALPHA | _HIGH_DEPTH))}"
    )


def to_channels(image: Image.Image, channels: int) -> Image.Image:
    """An image as a network of ``channels`` channels takes it: RGB (:func:`to_rgb`) for
    3; grey for 1, PIL's mode ``"L"`` of the RGB image (ITU-R 601-2 luma,
    ``L = 0.299 R + 0.587 G + 0.114 B``; a grey file keeps its values).

    Raises:
        ValueError: any other channel count: an image file has no such channels (give a
            ``.npy`` array, :func:`load_array`).

    Example:
        >>> from PIL import Image
        >>> to_channels(Image.new("RGB", (2, 2), (255, 0, 0)), 1).getpixel((0, 0))
        76
    """
    if channels == 3:
        return to_rgb(image)
    if channels == 1:
        return to_rgb(image).convert("L")
    raise ValueError(
        f"an image file has 1 (grey) or 3 (RGB) channels, not the {channels} the model "
        f"takes: give a {ARRAY_SUFFIX} array ({channels}, H, W) or (H, W, {channels})"
    )


def _stretch_to_rgb(image: Image.Image) -> Image.Image:
    values = np.asarray(image, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"a mode {image.mode!r} image has NaN or infinite values")
    low, high = float(values.min()), float(values.max())
    # a constant image has no range to stretch: it becomes black
    scaled = (values - low) / (high - low) * 255.0 if high > low else np.zeros_like(values)
    grey = np.round(scaled).astype(np.uint8)
    return Image.fromarray(np.stack([grey] * 3, axis=-1))


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Read an image file as an 8-bit RGB PIL image, fully decoded.

    Any format PIL reads (PNG, JPEG, BMP, TIFF, WebP, GIF, ...). The EXIF orientation is
    applied (a portrait photo stored sideways comes out upright), then the image is
    converted as :func:`to_rgb` says (alpha dropped, 16-bit and float stretched by their own
    range, grey and CMYK to RGB).

    Raises:
        FileNotFoundError: nothing exists at ``path``.
        IsADirectoryError: ``path`` is a directory.
        ValueError: the file is not an image PIL can read, or is corrupt or truncated (the
            message names the path and PIL's reason).

    Example:
        >>> import tempfile, os
        >>> from PIL import Image
        >>> from axiomcam.images import load_image
        >>> path = os.path.join(tempfile.mkdtemp(), "grey.png")
        >>> Image.new("L", (4, 3), 128).save(path)
        >>> image = load_image(path)
        >>> image.mode, image.size, image.getpixel((0, 0))
        ('RGB', (4, 3), (128, 128, 128))
    """
    file_path = Path(path)
    if not file_path.exists():
        raise FileNotFoundError(f"no image file at {str(file_path)!r}")
    if file_path.is_dir():
        raise IsADirectoryError(f"{str(file_path)!r} is a directory, not an image file")
    return _decode(file_path, repr(str(file_path)))


def image_from_bytes(data: bytes, name: str = "the upload") -> Image.Image:
    """Decode an image file's bytes (an upload) as :func:`load_image` decodes a file.

    Raises:
        ValueError: empty bytes, not an image PIL can read, corrupt or truncated; the
            message names ``name``.

    Example:
        >>> import io
        >>> from PIL import Image
        >>> from axiomcam.images import image_from_bytes
        >>> buffer = io.BytesIO()
        >>> Image.new("RGBA", (5, 2)).save(buffer, format="PNG")
        >>> image_from_bytes(buffer.getvalue()).mode
        'RGB'
        >>> image_from_bytes(b"%PDF-1.4", "report.pdf")
        Traceback (most recent call last):
        ...
        ValueError: 'report.pdf' is not an image PIL can read (cannot identify image file)
    """
    if not data:
        raise ValueError(f"{name!r} is empty (0 bytes)")
    return _decode(io.BytesIO(data), repr(name))


def _decode(source: Path | io.BytesIO, label: str) -> Image.Image:
    try:
        with Image.open(source) as opened:
            # load() decodes every pixel now, so a truncated file fails here, not later
            opened.load()
            upright = ImageOps.exif_transpose(opened)
    except Image.DecompressionBombError as error:  # far beyond any photograph
        raise ValueError(f"{label} has too many pixels to open safely ({error})") from error
    except UnidentifiedImageError as error:
        # for bytes PIL's message names a BytesIO object: say only what it means
        reason = error if isinstance(source, Path) else "cannot identify image file"
        raise ValueError(f"{label} is not an image PIL can read ({reason})") from error
    except (OSError, SyntaxError) as error:  # PIL reports corrupt data as either
        raise ValueError(
            f"{label} is corrupt or truncated: {type(error).__name__}: {error}"
        ) from error
    rgb = to_rgb(upright)
    # a copy detached from the closed file, whatever path to_rgb took
    return rgb.copy() if rgb is upright else rgb


def load_array(path: str | os.PathLike[str], channels: int) -> Image.Image:
    """Read a ``.npy`` array for a network of ``channels`` channels (see the module
    docstring): a grey picture of its channels' mean carrying the values
    (:func:`array_values`).

    Raises:
        FileNotFoundError: nothing exists at ``path``.
        ValueError: not a NumPy ``.npy`` file (or one holding Python objects), or an array
            :func:`array_image` refuses; the message names the path.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> path = os.path.join(tempfile.mkdtemp(), "bands.npy")
        >>> np.save(path, np.zeros((5, 4, 6), dtype=np.float32))
        >>> picture = load_array(path, 5)
        >>> picture.size, tuple(array_values(picture).shape)
        ((6, 4), (5, 4, 6))
    """
    file_path = Path(path)
    if not file_path.is_file():
        raise FileNotFoundError(f"no array file at {str(file_path)!r}")
    return _read_array(file_path, channels, repr(str(file_path)))


def array_from_bytes(data: bytes, channels: int, name: str = "the upload") -> Image.Image:
    """:func:`load_array` for a ``.npy`` file's bytes (an upload); errors name ``name``.

    Example:
        >>> import io
        >>> import numpy as np
        >>> buffer = io.BytesIO()
        >>> np.save(buffer, np.full((3, 2), 255, dtype=np.uint8))
        >>> array_values(array_from_bytes(buffer.getvalue(), 1)).tolist()
        [[[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]]
    """
    return _read_array(io.BytesIO(data), channels, repr(name))


def _read_array(source: Path | io.BytesIO, channels: int, label: str) -> Image.Image:
    try:
        array = np.load(source, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"{label} is not a NumPy {ARRAY_SUFFIX} array: {error}") from error
    if not isinstance(array, np.ndarray):  # an .npz archive
        raise ValueError(f"{label} is an .npz archive, not one {ARRAY_SUFFIX} array")
    try:
        return array_image(array, channels)
    except ValueError as error:
        raise ValueError(f"{label}: {error}") from error


def array_image(array: np.ndarray, channels: int) -> Image.Image:
    """An array of pixel values for a network of ``channels`` channels, as a picture to
    draw maps on that carries the values (:func:`array_values`).

    The layout is read from the shape: ``(C, H, W)`` when the first axis has ``channels``
    entries, else ``(H, W, C)`` when the last one has, and ``(H, W)`` for one channel.
    ``uint8`` values are divided by 255, float values kept (pixels in [0, 1] units).

    Raises:
        ValueError: a shape that fits neither layout, an empty array, a dtype other than
            ``uint8`` or float, NaN or infinite values; the message names the shape and the
            model's channel count.

    Example:
        >>> import numpy as np
        >>> picture = array_image(np.ones((4, 3, 5), dtype=np.float32), 5)
        >>> picture.mode, picture.size, tuple(array_values(picture).shape)
        ('RGB', (3, 4), (5, 4, 3))
    """
    if array.dtype == np.uint8:
        values = array.astype(np.float32) / 255
    elif np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float32)
    else:
        raise ValueError(f"an array of dtype {array.dtype}: give uint8 (0..255) or float "
                         "values (pixels in [0, 1] units)")
    if array.ndim == 2 and channels == 1:
        values = values[None]
    elif array.ndim == 3 and array.shape[0] == channels:
        pass
    elif array.ndim == 3 and array.shape[-1] == channels:
        values = values.transpose(2, 0, 1)
    else:
        raise ValueError(f"an array of shape {array.shape} is neither ({channels}, H, W) nor "
                         f"(H, W, {channels}) for the model's {channels} channels")
    if values.size == 0:
        raise ValueError(f"an empty array (shape {array.shape})")
    if not np.isfinite(values).all():
        raise ValueError("the array has NaN or infinite values")
    shown = values if channels == 3 else values.mean(axis=0, keepdims=True)
    low, high = float(shown.min()), float(shown.max())
    scaled = (shown - low) / (high - low) * 255 if high > low else np.zeros_like(shown)
    pixels = np.round(scaled).astype(np.uint8).transpose(1, 2, 0)
    if pixels.shape[-1] == 1:  # grey, drawn in RGB as every picture is
        pixels = np.repeat(pixels, 3, axis=-1)
    picture = Image.fromarray(np.ascontiguousarray(pixels))
    picture.info[_ARRAY_VALUES] = torch.from_numpy(np.ascontiguousarray(values))
    return picture


def array_values(image: Image.Image) -> torch.Tensor | None:
    """The ``(C, H, W)`` float32 values a picture made by :func:`array_image` carries, or
    ``None`` for any other image (see the module docstring)."""
    values = image.info.get(_ARRAY_VALUES)
    return values if torch.is_tensor(values) else None


def _skimage_sample(name: str) -> np.ndarray:
    # imported on use: skimage.data is slow to import and only these helpers need it
    from skimage import data

    loaders: dict[str, Callable[[], np.ndarray]] = {
        "chelsea": data.chelsea,
        "coffee": data.coffee,
        "rocket": data.rocket,
        "astronaut": data.astronaut,
        "camera": data.camera,
        "motorcycle": lambda: data.stereo_motorcycle()[0],
    }
    return loaders[name]()


#: images bundled in scikit-image's wheel (read from disk, never downloaded), and what
#: an ImageNet classifier should see in them
SAMPLE_IMAGES: dict[str, str] = {
    "chelsea": "a tabby cat",
    "coffee": "a cup of espresso",
    "rocket": "a rocket on its launch pad",
    "astronaut": "an astronaut portrait",
    "camera": "a man with a camera on a tripod (grayscale, returned as RGB)",
    "motorcycle": "a moped (left image of the stereo pair)",
}


def sample_image(name: str) -> Image.Image:
    """One of scikit-image's bundled photographs as an 8-bit RGB PIL image.

    Args:
        name: one of ``"chelsea"``, ``"coffee"``, ``"rocket"``, ``"astronaut"``,
            ``"camera"``, ``"motorcycle"`` (see :data:`SAMPLE_IMAGES`).

    Raises:
        ValueError: an unknown name (the known ones are listed).

    Example:
        >>> from axiomcam.images import sample_image
        >>> image = sample_image("coffee")
        >>> image.mode, image.size
        ('RGB', (600, 400))
    """
    if name not in SAMPLE_IMAGES:
        raise ValueError(f"unknown sample image {name!r}; known: {', '.join(SAMPLE_IMAGES)}")
    pixels = np.ascontiguousarray(_skimage_sample(name))
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    return Image.fromarray(pixels.astype(np.uint8))


def _as_float_array(values: torch.Tensor | np.ndarray, what: str) -> np.ndarray:
    if torch.is_tensor(values):
        array = values.detach().to("cpu", torch.float64).numpy()
    elif isinstance(values, np.ndarray):
        array = values.astype(np.float64)
    else:
        raise TypeError(
            f"{what} must be a torch.Tensor or numpy array, not {type(values).__name__}"
        )
    return array


def overlay(
    image: Image.Image,
    cam_map: torch.Tensor | np.ndarray,
    alpha: float = 0.5,
    colormap: str = "jet",
) -> Image.Image:
    """Blend a class activation map, coloured, over an image.

    ``result = (1 - alpha) * image + alpha * colormap(cam_map)``, per pixel, in 8 bits.

    Args:
        image: the picture the map explains (for a model from :mod:`axiomcam.models`, the
            ``display`` image, which is what the network saw).
        cam_map: ``(h, w)`` values in ``[0, 1]`` (``Explanation.maps[i]``); resized
            bilinearly to the image's size when it differs.
        alpha: the map's weight: 0 returns the image, 1 the coloured map alone.
        colormap: a matplotlib colormap name (``"jet"``, ``"viridis"``, ...).

    Returns:
        an RGB PIL image of ``image``'s size.

    Raises:
        TypeError: ``image`` is not a PIL image or ``cam_map`` not a tensor/array.
        ValueError: ``cam_map`` is not 2-D, is empty, has NaN/infinite values or values
            outside ``[0, 1]``; ``alpha`` is outside ``[0, 1]``; unknown ``colormap``.

    Example:
        >>> import torch
        >>> from PIL import Image
        >>> from axiomcam.images import overlay
        >>> image = Image.new("RGB", (8, 6), (0, 0, 0))
        >>> blended = overlay(image, torch.ones(3, 4), alpha=1.0, colormap="gray")
        >>> blended.size, blended.getpixel((0, 0))
        ((8, 6), (255, 255, 255))
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"image must be a PIL image, not {type(image).__name__}")
    cam = _as_float_array(cam_map, "cam_map")
    if cam.ndim != 2:
        raise ValueError(
            f"cam_map must be 2-D (h, w), not of shape {cam.shape}: pass one map, "
            "e.g. explanation.maps[0]"
        )
    if cam.size == 0:
        raise ValueError(f"cam_map is empty (shape {cam.shape})")
    if not np.isfinite(cam).all():
        raise ValueError("cam_map has NaN or infinite values")
    tolerance = 1e-6  # float32 rounding of a min-max scaled map
    low, high = float(cam.min()), float(cam.max())
    if low < -tolerance or high > 1 + tolerance:
        raise ValueError(
            f"cam_map values must be in [0, 1], found min {low:.6g}, max {high:.6g}: "
            "pass Explanation.maps (already scaled), not .raw"
        )
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number in [0, 1], not {alpha!r}")
    try:
        colour_map = matplotlib.colormaps[colormap]
    except KeyError as error:
        raise ValueError(f"unknown matplotlib colormap {colormap!r}") from error

    rgb = np.asarray(to_rgb(image), dtype=np.float64) / 255.0
    height, width = rgb.shape[:2]
    if cam.shape != (height, width):
        resized = F.interpolate(
            torch.from_numpy(cam)[None, None],
            size=(height, width),
            mode="bilinear",
            align_corners=False,
        )
        cam = resized[0, 0].numpy()
    coloured = colour_map(np.clip(cam, 0.0, 1.0))[..., :3]
    blended = (1.0 - alpha) * rgb + alpha * coloured
    return Image.fromarray(np.round(blended * 255.0).astype(np.uint8))


def guided_to_image(gradient: torch.Tensor | np.ndarray) -> Image.Image:
    """Turn a signed ``(C, H, W)`` input gradient (guided backprop) into a viewable image.

    The Grad-CAM paper's deprocessing: subtract the mean, divide by the standard deviation,
    multiply by 0.1 and add 0.5, clip to ``[0, 1]``: zero gradient is mid-grey, positive
    and negative evidence brighter and darker (about 5 standard deviations reach the ends).
    Three channels are shown as RGB; any other number as grey, their mean.

    Raises:
        TypeError: ``gradient`` is not a tensor/array.
        ValueError: the shape is not ``(C, H, W)`` or there are NaN/infinite values.

    Example:
        >>> import torch
        >>> from axiomcam.images import guided_to_image
        >>> picture = guided_to_image(torch.randn(3, 32, 48))
        >>> picture.mode, picture.size
        ('RGB', (48, 32))
    """
    values = _as_float_array(gradient, "gradient")
    if values.ndim != 3 or 0 in values.shape:
        raise ValueError(
            f"gradient must have shape (C, H, W), not {values.shape}: pass one image, "
            "e.g. explanation.guided[0]"
        )
    if values.shape[0] != 3:  # grey: the channels' mean, in every colour
        values = np.repeat(values.mean(axis=0, keepdims=True), 3, axis=0)
    if not np.isfinite(values).all():
        raise ValueError("gradient has NaN or infinite values")
    centred = values - values.mean()
    # the epsilon keeps an all-zero gradient an even grey instead of 0/0
    scaled = centred / (centred.std() + 1e-5) * 0.1 + 0.5
    pixels = np.round(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0)))
