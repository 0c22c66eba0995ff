"""The composite benchmark's object silhouettes: which pixels of each pasted rectangle are the
object.

Each object of :data:`axiomcam.data.composite.OBJECTS` is a rectangular crop of a
photograph; its silhouette (a PNG in ``axiomcam/data/silhouettes/``, 255 on the object) was
made once by ``scripts/make_silhouettes.py`` (hand outlines refined by scikit-image's random
walker, then checked by eye over the photograph). :func:`pasted_masks` lays the silhouettes
of an image's objects at their boxes, resized as the objects are.

Examples:
    >>> silhouette("cat").shape, silhouette("cat").dtype
    ((300, 370), dtype('bool'))
    >>> masks = pasted_masks(["cat"], [(2, 3, 12, 11)], 16)
    >>> tuple(masks.shape), bool(masks[0, 0, 0]), bool(masks[0, 5, 5])
    ((1, 16, 16), False, True)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources

import numpy as np
import torch
from PIL import Image

__all__ = ["pasted_masks", "silhouette"]


@functools.cache
def _silhouette_image(key: str) -> Image.Image:
    name = f"{key.replace(' ', '_')}.png"
    source = resources.files("axiomcam.data").joinpath("silhouettes", name)
    if not source.is_file():
        raise ValueError(f"no silhouette for the object {key!r} (no {name} in "
                         "axiomcam/data/silhouettes; make it with scripts/make_silhouettes.py)")
    with source.open("rb") as handle:
        image = Image.open(handle)
        image.load()
    return image.convert("L")


def silhouette(key: str) -> np.ndarray:
    """The object's mask at the resolution of its crop: ``(height, width)`` bool.

    Raises:
        ValueError: an object without a silhouette file.
    """
    return np.asarray(_silhouette_image(key)) > 127


def pasted_masks(keys: Sequence[str], boxes: Sequence[Sequence[int]], size: int) -> torch.Tensor:
    """The silhouettes of an image's objects, each resized to its box and laid there.

    A silhouette is resized as its object is (to the box's ``x1 - x0`` by ``y1 - y0``
    pixels), by bilinear filtering of its 0/255 values, and a pixel belongs to the object
    when the resized value is at least 128 (the edge falls where the object's does).

    Args:
        keys: each object's key (:attr:`~axiomcam.data.composite.CompositeObject.key`).
        boxes: each object's integer box ``(x0, y0, x1, y1)`` inside the image.
        size: the image's side.

    Returns:
        ``(n, size, size)`` bool, one mask per object, in order.
    """
    masks = torch.zeros(len(keys), size, size, dtype=torch.bool)
    for index, (key, (x0, y0, x1, y1)) in enumerate(zip(keys, boxes, strict=True)):
        resized = _silhouette_image(key).resize((x1 - x0, y1 - y0), Image.Resampling.BILINEAR)
        masks[index, y0:y1, x0:x1] = torch.from_numpy(np.asarray(resized) >= 128)
    return masks
