"""NumPy arrays as network inputs, for networks whose channel count is not an image
file's (multispectral, depth + colour, ...).

Image files give 1 (grey) or 3 (RGB) channels. For a network of another channel
count (multispectral, depth + colour, ...), :func:`load_array` reads a ``.npy`` array of
shape ``(C, H, W)`` or ``(H, W, C)`` (``(H, W)`` for ``C = 1``). Its values play the role of
an image's pixels in [0, 1]: ``float`` arrays are taken as they are, ``uint8`` arrays divided
by 255; the model's mean and std are applied to them afterwards, as to any image (with
``--preprocess unit``, mean 0 and std 1, the network gets the values unchanged). The result
is a grey picture to draw maps on (the channels' mean, stretched to 0..255), carrying the
values for the network (:func:`array_values`).

Examples:
    >>> import numpy as np
    >>> from axiomcam.arrays import array_image, array_values
    >>> picture = array_image(np.zeros((2, 3, 5), dtype=np.uint8), 5)
    >>> picture.size, tuple(array_values(picture).shape)
    ((3, 2), (5, 2, 3))
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = ["ARRAY_SUFFIX", "array_from_bytes", "array_image", "array_values", "load_array"]

#: the file suffix of the NumPy arrays :func:`load_array` reads
ARRAY_SUFFIX = ".npy"
# where a picture made by array_image keeps the array's values (PIL's info dict holds data
# associated with an image; copy(), resize(), crop() and convert() keep it)
_ARRAY_VALUES = "axiomcam.array_values"


def load_array(path: str | os.PathLike[str], channels: int) -> Image.Image:
    """Read a ``.npy`` array for a network of ``channels`` channels (see the module
    docstring): a grey picture of its channels' mean carrying the values
    (:func:`array_values`).

    Raises:
        FileNotFoundError: nothing exists at ``path``.
        ValueError: not a NumPy ``.npy`` file (or one holding Python objects), or an array
            :func:`array_image` refuses; the message names the path.

    Examples:
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

    Examples:
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

    Examples:
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
