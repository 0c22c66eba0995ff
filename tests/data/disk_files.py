"""What the data tests write to disk: a small class list with the traps of the real one,
deterministic pictures saved as images, and a COCO annotation file."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

# a small class list with the traps of the real one: spaces, capitals, a duplicate name
NAMES = ["goldfish", "tabby", "Egyptian cat", "espresso", "moped", "cardigan", "cardigan"]


def picture(width: int, height: int, shift: int = 0) -> np.ndarray:
    """A deterministic 8-bit RGB picture, different for each (size, shift)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack(
        [(x * 17 + shift) % 256, (y * 29 + shift) % 256, (x * y + 3 * shift) % 256], axis=-1
    ).astype(np.uint8)


def save_picture(path, width: int = 8, height: int = 6, shift: int = 0) -> np.ndarray:
    """Save :func:`picture` at ``path`` (its folders created) and return its pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = picture(width, height, shift)
    Image.fromarray(pixels).save(path)
    return pixels


def write_coco(path, **changes) -> None:
    """Write a COCO file of two images (``a.png`` with two boxes, ``b.png`` with none) to
    ``path``, its top-level keys replaced by ``changes``."""
    document = {
        "images": [
            {"id": 10, "file_name": "a.png", "width": 20, "height": 10},
            {"id": 11, "file_name": "b.png", "width": 20, "height": 10},
        ],
        # category ids are not the model's indices: names decide
        "categories": [{"id": 1, "name": "espresso"}, {"id": 2, "name": "Egyptian_cat"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 2, "bbox": [2, 3, 4.5, 5]},
            {"id": 2, "image_id": 10, "category_id": 1, "bbox": [0, 0, 20, 10]},
        ],
    }
    document.update(changes)
    path.write_text(json.dumps(document))
