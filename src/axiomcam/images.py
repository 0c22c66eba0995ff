"""Images in and out: loading any image file as 8-bit RGB (or grey, for a 1-channel
network), NumPy arrays for networks of other channel counts, sample images, map overlays
(over an image, or under a 1D signal drawn as a line).

**Arrays** for networks of other channel counts are read by :mod:`axiomcam.arrays`; its
names are re-exported here.

Examples:
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
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from .arrays import ARRAY_SUFFIX, array_from_bytes, array_image, array_values, load_array

__all__ = ["ARRAY_SUFFIX", "SAMPLE_IMAGES", "array_from_bytes", "array_image", "array_values",
           "draw_boxes", "guided_to_image", "image_from_bytes", "load_array", "load_image",
           "overlay",
           "sample_image", "signal_overlay", "to_channels", "to_rgb"]


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

    Examples:
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

    Examples:
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

    Examples:
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

    Examples:
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
    except (UnidentifiedImageError, ImportError) as error:
        # for bytes PIL's message names a BytesIO object: say only what it means. The
        # ImportError: ultralytics replaces Image.open when imported, and on a file PIL
        # cannot identify its replacement imports a HEIF plugin that may not be installed
        reason = error if isinstance(source, Path) and isinstance(
            error, UnidentifiedImageError) else "cannot identify image file"
        raise ValueError(f"{label} is not an image PIL can read ({reason})") from error
    except (OSError, SyntaxError) as error:  # PIL reports corrupt data as either
        raise ValueError(
            f"{label} is corrupt or truncated: {type(error).__name__}: {error}"
        ) from error
    rgb = to_rgb(upright)
    # a copy detached from the closed file, whatever path to_rgb took
    return rgb.copy() if rgb is upright else rgb


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

    Examples:
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


def _checked_map(cam_map: torch.Tensor | np.ndarray, dims: int, shape: str) -> np.ndarray:
    """One map of ``dims`` axes (``shape`` says which) with values in ``[0, 1]``, as a
    float array."""
    cam = _as_float_array(cam_map, "cam_map")
    if cam.ndim != dims:
        raise ValueError(
            f"cam_map must be {dims}-D {shape}, not of shape {cam.shape}: pass one map, "
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
    return cam


def _checked_colours(alpha: float, colormap: str) -> matplotlib.colors.Colormap:
    """The colormap called ``colormap`` once ``alpha`` is checked to be in ``[0, 1]``."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number in [0, 1], not {alpha!r}")
    try:
        return matplotlib.colormaps[colormap]
    except KeyError as error:
        raise ValueError(f"unknown matplotlib colormap {colormap!r}") from error


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

    Examples:
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
    cam = _checked_map(cam_map, 2, "(h, w)")
    colour_map = _checked_colours(alpha, colormap)

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


def draw_boxes(picture: Image.Image, boxes: torch.Tensor, colour: str,
               scale: tuple[float, float] = (1.0, 1.0), width: int = 2) -> Image.Image:
    """Draw ``boxes`` ``(n, 4)`` (``x0, y0, x1, y1``, ``x1``/``y1`` exclusive) on ``picture``
    in place, each coordinate multiplied by ``scale`` ``(x, y)`` (the boxes' pixels to the
    picture's); returns ``picture``.

    Examples:
        >>> import torch
        >>> from PIL import Image
        >>> picture = draw_boxes(Image.new("RGB", (8, 8)), torch.tensor([[2, 2, 6, 6]]),
        ...                      "white", width=1)
        >>> picture.getpixel((2, 2)), picture.getpixel((5, 5)), picture.getpixel((6, 6))
        ((255, 255, 255), (255, 255, 255), (0, 0, 0))
    """
    draw = ImageDraw.Draw(picture)
    factors = torch.tensor([scale[0], scale[1]] * 2)
    for x0, y0, x1, y1 in (boxes.float().reshape(-1, 4).cpu() * factors).tolist():
        # PIL's rectangle corners are inclusive
        draw.rectangle((x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)), outline=colour,
                       width=width)
    return picture


def signal_overlay(
    signal: torch.Tensor | np.ndarray,
    cam_map: torch.Tensor | np.ndarray,
    alpha: float = 0.6,
    colormap: str = "jet",
    *,
    positions: torch.Tensor | np.ndarray | None = None,
    xlabel: str = "sample",
    size: tuple[int, int] = (640, 160),
) -> Image.Image:
    """Draw a 1D signal as a black line over its map's colours, as a picture.

    Behind each sample, from the bottom of the plot to its top, the colour
    ``(1 - alpha) * white + alpha * colormap(cam_map)``: the map runs along the signal.
    A ``(C, L)`` signal gets one plot per channel, stacked, all with the same map.

    Args:
        signal: ``(L,)`` or ``(C, L)`` values (one input of a ``(B, C, L)`` batch).
        cam_map: ``(l,)`` values in ``[0, 1]`` (``Explanation.maps[i]``); resized
            linearly to ``L`` samples when ``l`` differs.
        alpha: the colours' weight against white: 0 is a plain line plot.
        colormap: a matplotlib colormap name.
        positions: ``(L,)`` increasing x values of the samples (seconds, wavelengths;
            ``None``: 0, 1, ..., L - 1); each sample's colour reaches halfway to its
            neighbours.
        xlabel: the x axis's label.
        size: ``(width, height)`` in pixels of one channel's plot.

    Returns:
        an RGB PIL image (``size``, one ``height`` per channel).

    Raises:
        TypeError: ``signal``, ``cam_map`` or ``positions`` is not a tensor/array.
        ValueError: a signal that is not ``(L,)`` / ``(C, L)`` or has NaN/infinite
            values, a map as :func:`overlay` refuses (1-D here), ``positions`` that are
            not ``L`` increasing values, ``alpha`` outside ``[0, 1]``, an unknown
            ``colormap``, a ``size`` that is not two positive ints.

    Examples:
        >>> import torch
        >>> from axiomcam.images import signal_overlay
        >>> picture = signal_overlay(torch.randn(2, 100), torch.linspace(0, 1, 25))
        >>> picture.mode, picture.size
        ('RGB', (640, 320))
    """
    values = _as_float_array(signal, "signal")
    if values.ndim == 1:
        values = values[None]
    if values.ndim != 2 or values.shape[1] == 0 or values.shape[0] == 0:
        raise ValueError(f"signal must be (L,) or (C, L), not of shape {values.shape}: pass "
                         "one signal of the batch, e.g. inputs[0]")
    if not np.isfinite(values).all():
        raise ValueError("signal has NaN or infinite values")
    cam = _checked_map(cam_map, 1, "(l,)")
    colour_map = _checked_colours(alpha, colormap)
    if (not isinstance(size, tuple | list) or len(size) != 2
            or not all(isinstance(side, int) and side > 0 for side in size)):
        raise ValueError(f"size must be (width, height) in pixels, not {size!r}")
    length = values.shape[1]
    if cam.shape[0] != length:
        cam = F.interpolate(torch.from_numpy(cam)[None, None], size=(length,), mode="linear",
                            align_corners=False)[0, 0].numpy()
    xs = np.arange(length, dtype=np.float64) if positions is None else \
        _as_float_array(positions, "positions")
    if xs.shape != (length,) or (length > 1 and not (np.diff(xs) > 0).all()):
        raise ValueError(f"positions must be {length} increasing values, one per sample, "
                         f"not of shape {xs.shape}")
    return _draw_signal(values, cam, xs, _blend_white(colour_map, alpha), xlabel, size)


def _blend_white(colour_map: matplotlib.colors.Colormap,
                 alpha: float) -> matplotlib.colors.Colormap:
    """``colour_map`` blended with white: ``(1 - alpha) * white + alpha * colour``."""
    colours = colour_map(np.linspace(0.0, 1.0, 256))[:, :3]
    return matplotlib.colors.ListedColormap((1.0 - alpha) + alpha * colours)


def _draw_signal(values: np.ndarray, cam: np.ndarray, xs: np.ndarray,
                 colour_map: matplotlib.colors.Colormap, xlabel: str,
                 size: tuple[int, int]) -> Image.Image:
    """The picture of :func:`signal_overlay`, its inputs checked."""
    # each sample's colour spans halfway to its neighbours (one sample: a unit-wide band)
    middles = (xs[1:] + xs[:-1]) / 2 if len(xs) > 1 else np.empty(0)
    first = xs[0] - (middles[0] - xs[0] if len(middles) else 0.5)
    last = xs[-1] + (xs[-1] - middles[-1] if len(middles) else 0.5)
    edges = np.concatenate([[first], middles, [last]])
    dpi = 100
    width, height = size
    total = height * len(values)
    figure = Figure(figsize=(width / dpi, total / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(figure)
    # fixed margins in pixels (room for the tick labels and the x label): a constrained
    # layout would cost 0.1 s per picture
    axes = figure.subplots(len(values), 1, sharex=True, squeeze=False, gridspec_kw={
        "left": min(0.4, 56 / width), "right": 1 - min(0.2, 8 / width),
        "bottom": min(0.4, 40 / total), "top": 1 - min(0.2, 6 / total),
        "hspace": 14 / max(height - 14, 1)})[:, 0]
    for channel, (axis, line) in enumerate(zip(axes, values, strict=True)):
        low, high = float(line.min()), float(line.max())
        margin = 0.08 * (high - low) if high > low else 0.5
        bottom, top = low - margin, high + margin
        axis.pcolormesh(edges, [bottom, top], cam[None, :], cmap=colour_map, vmin=0.0,
                        vmax=1.0, shading="flat", rasterized=True)
        axis.plot(xs, line, color="black", linewidth=1.0)
        axis.set_xlim(edges[0], edges[-1])
        axis.set_ylim(bottom, top)
        if len(values) > 1:
            axis.set_ylabel(f"channel {channel}", fontsize=8)
        axis.tick_params(labelsize=8)
    axes[-1].set_xlabel(xlabel, fontsize=8)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3]
    return Image.fromarray(np.ascontiguousarray(pixels))


def guided_to_image(gradient: torch.Tensor | np.ndarray) -> Image.Image:
    """Turn a signed ``(C, H, W)`` input gradient (guided backprop) into a viewable image.

    The Grad-CAM paper's deprocessing: subtract the mean, divide by the standard deviation,
    multiply by 0.1 and add 0.5, clip to ``[0, 1]``: zero gradient is mid-grey, positive
    and negative evidence brighter and darker (about 5 standard deviations reach the ends).
    Three channels are shown as RGB; any other number as grey, their mean.

    Raises:
        TypeError: ``gradient`` is not a tensor/array.
        ValueError: the shape is not ``(C, H, W)`` or there are NaN/infinite values.

    Examples:
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
