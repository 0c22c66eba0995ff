"""One entry point for command lines and run configurations: :func:`open_dataset` opens a
data set named by a short text (``"composite:200"``, a folder, a CSV file)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .boxes import BoxTable, read_coco_boxes, read_voc_boxes
from .composite import CompositeBenchmark
from .dataset import Dataset
from .files import CsvImages, ImageFolder
from .masks import MaskedDataset, MaskTable, read_coco_masks, read_mask_folder

__all__ = ["open_dataset"]

VALID_SPECS = "'composite:200', 'composite', 'path/to/folder', 'path/to/labels.csv'"


def _composite_count(spec: str) -> int:
    _, _, count_text = spec.partition(":")
    if not count_text:
        return 200
    if not count_text.strip().isdigit() or int(count_text) < 1:
        raise ValueError(
            f"bad data set spec {spec!r}: the image count must be a positive integer; "
            f"valid specs: {VALID_SPECS}"
        )
    return int(count_text)


def _read_boxes(boxes_format: str | None, boxes_file: str | os.PathLike[str] | None,
                class_names: Sequence[str]) -> tuple[BoxTable | None, str]:
    """The boxes of ``boxes_file`` read as ``boxes_format`` says (``None``: no boxes), and
    the text that adds them to a data set's description."""
    if boxes_format is None:
        return None, ""
    readers = {"voc": read_voc_boxes, "coco": read_coco_boxes}
    format_name = str(boxes_format).strip().lower()
    if format_name not in readers:
        raise ValueError(f"unknown boxes_format {boxes_format!r}: use 'voc' or 'coco'")
    boxes = readers[format_name](boxes_file, class_names)
    return boxes, f" (boxes: {format_name} {boxes_file})"


def open_dataset(
    spec: str,
    class_names: Sequence[str],
    *,
    boxes_format: str | None = None,
    boxes_file: str | os.PathLike[str] | None = None,
    seed: int = 0,
    masks: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Open a data set named by a short text (a command-line argument, a config value).

    - ``"composite:200"``: the built-in benchmark
      (:class:`~axiomcam.data.composite.CompositeBenchmark`) with 200 images of the given
      ``seed``; ``"composite"`` alone is 200 images.
    - a folder: :class:`ImageFolder`.
    - a ``.csv`` file: :class:`CsvImages`.

    Args:
        spec: one of the above.
        class_names: the model's class names.
        boxes_format: ``"voc"`` (:func:`read_voc_boxes`) or ``"coco"``
            (:func:`read_coco_boxes`), to attach ground-truth boxes from ``boxes_file``
            (not for the composite benchmark, which has its own).
        boxes_file: the annotation file (or VOC folder).
        seed: the composite benchmark's seed.
        masks: ground-truth object masks (:class:`~axiomcam.data.masks.MaskedDataset`): a
            COCO JSON file with segmentations (RLE or polygons), or a folder of PNG masks
            named after the images (non-zero: the labelled object). Not for the composite
            benchmark, whose samples carry their objects' silhouettes.

    Raises:
        ValueError: an unknown spec or a bad image count (valid specs are shown); a
            ``boxes_format`` without ``boxes_file`` or the other way round, or an unknown
            format; plus whatever the chosen reader raises.
        FileNotFoundError: a folder or CSV path that does not exist.

    Examples:
        >>> from torchvision.models import MobileNet_V2_Weights
        >>> names = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
        >>> dataset = open_dataset("composite:3", names, seed=1)
        >>> len(dataset), dataset.description
        (3, 'composite:3 (seed 1)')
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(
            f"data set spec must be a non-empty string, not {spec!r}; valid: {VALID_SPECS}"
        )
    if (boxes_format is None) != (boxes_file is None):
        raise ValueError("boxes_format and boxes_file go together: give both or neither")
    spec = spec.strip()
    kind = spec.partition(":")[0].strip().lower()
    if kind == "composite" and not Path(spec).exists():
        if boxes_format is not None or masks is not None:
            raise ValueError("the composite benchmark has its own boxes and masks: drop "
                             "boxes_format/boxes_file/masks")
        return CompositeBenchmark(_composite_count(spec), class_names, seed=seed)
    if masks is not None:  # the masks first: a bad mask file fails before any image is read
        table, masks_text = _read_masks(masks, class_names)
        return MaskedDataset(open_dataset(spec, class_names, boxes_format=boxes_format,
                                          boxes_file=boxes_file), table, masks_text)

    boxes, boxes_text = _read_boxes(boxes_format, boxes_file, class_names)

    path = Path(spec)
    if path.is_dir():
        return ImageFolder(path, class_names, boxes, description=f"{path}{boxes_text}")
    if path.suffix.lower() == ".csv":
        return CsvImages(path, class_names, boxes, description=f"{path}{boxes_text}")
    if path.exists():
        raise ValueError(
            f"{spec!r} is a file but not a .csv list of images; valid specs: {VALID_SPECS}"
        )
    if ":" in spec:
        raise ValueError(f"unknown data set spec {spec!r}; valid specs: {VALID_SPECS}")
    raise FileNotFoundError(f"no folder or .csv file at {spec!r}; valid specs: {VALID_SPECS}")


def _read_masks(masks: str | os.PathLike[str], class_names: Sequence[str]
                ) -> tuple[MaskTable, str]:
    """The masks of a COCO file or a folder of PNG masks, and the text that adds them to a
    data set's description."""
    path = Path(masks)
    if path.is_dir():
        return read_mask_folder(path), f" (masks: folder {path})"
    if path.suffix.lower() == ".json":
        return read_coco_masks(path, class_names), f" (masks: coco {path})"
    if not path.exists():
        raise FileNotFoundError(f"no mask folder or COCO .json file at {str(path)!r}")
    raise ValueError(f"masks must be a COCO .json file or a folder of PNG masks, not {str(path)!r}")
