"""Masks and boxes from the maps of ``axiomcam explain --save-masks``: one PNG mask per
image and target next to the overlays, and one COCO file (``masks.json``) of them all.

Each map is upsampled (bilinearly) to its image's original size and cut into a mask by
:func:`axiomcam.metrics.map_to_mask` (a fraction of its maximum, a percentile, or Otsu);
its regions' boxes come from :func:`axiomcam.metrics.mask_to_boxes`. ``masks.json`` holds
``images`` (``file_name``, ``width``, ``height``), ``categories`` (id = class index) and
one annotation per map: ``segmentation`` (COCO's compressed RLE,
:func:`axiomcam.data.encode_rle`), ``area`` (pixels), ``bbox`` ``[x, y, w, h]`` around the
whole mask, ``score`` (the class's probability) and ``component_boxes`` (each
8-connected region's ``[x, y, w, h]``, largest first; ignored by tools that do not know it).

Examples:
    >>> parse_mask_threshold("percentile:90"), parse_mask_threshold("otsu")
    (('percentile', 90.0), ('otsu', None))
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ..data import encode_rle
from ..metrics import check_threshold, map_to_mask, mask_to_boxes

__all__ = ["MASKS_FILE", "MaskWriter", "parse_mask_threshold"]

#: the COCO file ``explain --save-masks`` writes in the output folder
MASKS_FILE = "masks.json"


def parse_mask_threshold(text: str) -> tuple[str, float | None]:
    """``"otsu"``, ``"fraction:0.5"`` or ``"percentile:80"`` (a method alone takes its
    default value) as ``(method, value)``, checked.

    Raises:
        ValueError: an unknown method, a value that is not a number or out of range.
    """
    method, _, value_text = str(text).partition(":")
    if not value_text.strip():
        return check_threshold(method)
    try:
        value = float(value_text)
    except ValueError as error:
        raise ValueError(f"bad mask threshold {text!r}: {value_text!r} is not a number "
                         "(use otsu, fraction:0.5 or percentile:80)") from error
    return check_threshold(method, value)


def _xywh(box: list[float]) -> list[float]:
    x0, y0, x1, y1 = box
    return [x0, y0, x1 - x0, y1 - y0]


@dataclass
class MaskWriter:
    """Writes each map's PNG mask and collects ``masks.json`` (:meth:`finish` writes it).

    Attributes:
        out: the output folder.
        method: the threshold method (``"fraction"``, ``"percentile"``, ``"otsu"``).
        value: its value (``None`` for Otsu).
    """

    out: Path
    method: str = "fraction"
    value: float | None = 0.5
    images: list[dict] = field(default_factory=list)
    annotations: list[dict] = field(default_factory=list)
    categories: dict[int, str] = field(default_factory=dict)
    image_ids: dict[str, int] = field(default_factory=dict)

    def write(self, saliency: torch.Tensor, image: Image.Image, *, base: str, source: str,
              class_index: int, class_name: str, probability: float,
              text: PngInfo) -> dict[str, object]:
        """Cut one map (``(h, w)`` in ``[0, 1]``) at the image's size, write
        ``BASE_mask.png`` (255 on the mask, with the ``text`` chunks) and note its COCO
        annotation: the entry for ``results.json`` (the PNG's name and the boxes)."""
        width, height = image.size
        resized = torch.nn.functional.interpolate(
            saliency.detach().float()[None, None], size=(height, width), mode="bilinear",
            align_corners=False)[0].clamp(0, 1)
        mask = map_to_mask(resized, self.method, self.value)[0].cpu()
        path = self.out / f"{base}_mask.png"
        Image.fromarray(mask.numpy().astype("uint8") * 255).save(path, pnginfo=text)
        boxes = mask_to_boxes(mask[None])[0].tolist()
        image_id = self.image_ids.setdefault(source, len(self.image_ids) + 1)
        if image_id > len(self.images):
            self.images.append({"id": image_id, "file_name": Path(source).name,
                                "path": source, "width": width, "height": height})
        self.categories[class_index] = class_name
        rows, columns = torch.nonzero(mask, as_tuple=True)
        whole = [int(columns.min()), int(rows.min()), int(columns.max()) + 1,
                 int(rows.max()) + 1] if len(rows) else [0, 0, 0, 0]
        self.annotations.append({
            "id": len(self.annotations) + 1, "image_id": image_id, "category_id": class_index,
            "segmentation": encode_rle(mask), "area": int(mask.sum()), "bbox": _xywh(whole),
            "iscrowd": 0, "score": probability,
            "component_boxes": [_xywh(box) for box in boxes]})
        return {"mask": path.name, "boxes": boxes}

    def finish(self, description: str, provenance: dict[str, str]) -> Path:
        """Write ``masks.json`` (COCO) into the output folder, with the method, model and
        layer (``provenance``) at its head; its path."""
        document = {
            **provenance,
            "info": {"description": description,
                     "threshold": {"method": self.method, "value": self.value}},
            "images": self.images, "annotations": self.annotations,
            "categories": [{"id": index, "name": name}
                           for index, name in sorted(self.categories.items())],
        }
        path = self.out / MASKS_FILE
        path.write_text(json.dumps(document) + "\n", encoding="utf-8")
        return path
