"""Ground-truth boxes from Pascal VOC XML files (:func:`read_voc_boxes`) and COCO JSON
files (:func:`read_coco_boxes`), by image file name (:data:`BoxTable`).

Box convention (that of :mod:`axiomcam.metrics`): ``x0, y0, x1, y1`` in the image's pixels,
pixel (row i, column j) covering ``[j, j + 1) x [i, i + 1)``, so a box over columns 10..19 is
``x0 = 10, x1 = 20``.
"""

from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from .dataset import checked_class_names, class_index

__all__ = ["BoxTable", "read_coco_boxes", "read_voc_boxes"]

#: ground-truth boxes by file name: ``(boxes (n, 4) float, box_labels (n,) long)``
BoxTable = dict[str, tuple[torch.Tensor, torch.Tensor]]


def _as_box_entry(boxes: list[list[float]], labels: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    box_tensor = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return box_tensor, torch.tensor(labels, dtype=torch.long)


def _xml_number(element: ElementTree.Element, tag: str, source: str) -> float:
    child = element.find(tag)
    text = None if child is None or child.text is None else child.text.strip()
    if not text:
        raise ValueError(f"{source}: missing <{tag}>")
    try:
        value = float(text)
    except ValueError as error:
        raise ValueError(f"{source}: <{tag}> is not a number: {text!r}") from error
    if not math.isfinite(value):
        raise ValueError(f"{source}: <{tag}> is not finite: {text!r}")
    return value


def _voc_files(path: Path) -> list[Path]:
    if not path.exists():
        raise FileNotFoundError(f"no VOC annotation file or folder at {str(path)!r}")
    if path.is_file():
        return [path]
    files = sorted(
        child for child in path.iterdir() if child.is_file() and child.suffix.lower() == ".xml"
    )
    if not files:
        raise ValueError(f"no .xml annotation files in the folder {str(path)!r}")
    return files


def read_voc_boxes(path: str | os.PathLike[str], class_names: Sequence[str]) -> BoxTable:
    """Read Pascal VOC XML annotations: one file, or every ``.xml`` file of a folder.

    Each file describes one image: ``<filename>`` (the key of the result) and any number of
    ``<object>`` with a ``<name>`` (matched to ``class_names`` as :func:`class_index` says)
    and a ``<bndbox>``. VOC coordinates are 1-based and inclusive: ``xmin = 1, xmax = 10``
    covers the first ten pixel columns, which is ``x0 = 0, x1 = 10`` in our convention, so
    ``x0 = xmin - 1, y0 = ymin - 1, x1 = xmax, y1 = ymax``. Objects marked ``difficult``
    are kept (they are still where the object is).

    Args:
        path: an ``.xml`` file or a folder of them (not searched recursively).
        class_names: the model's class names.

    Returns:
        ``{filename: (boxes (n, 4) float32, box_labels (n,) long)}``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a folder without ``.xml`` files; a file that is not XML or lacks
            ``<filename>``/``<name>``/a coordinate (the file is named); an object name that
            is not a class; two files for the same image.

    Examples:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "a.xml")
        >>> with open(path, "w") as file:
        ...     _ = file.write("<annotation><filename>a.jpg</filename><object><name>tabby"
        ...                    "</name><bndbox><xmin>1</xmin><ymin>5</ymin><xmax>10</xmax>"
        ...                    "<ymax>8</ymax></bndbox></object></annotation>")
        >>> boxes, labels = read_voc_boxes(path, ["goldfish", "tabby"])["a.jpg"]
        >>> boxes.tolist(), labels.tolist()
        ([[0.0, 4.0, 10.0, 8.0]], [1])
    """
    names = checked_class_names(class_names)
    table: BoxTable = {}
    sources: dict[str, Path] = {}
    for file in _voc_files(Path(path)):
        source = str(file)
        try:
            root = ElementTree.parse(file).getroot()
        except (ElementTree.ParseError, OSError) as error:
            raise ValueError(f"{source} is not a readable XML file: {error}") from error
        filename_element = root.find("filename")
        if filename_element is None or not (filename_element.text or "").strip():
            raise ValueError(f"{source}: missing <filename>")
        filename = filename_element.text.strip()
        if filename in table:
            raise ValueError(
                f"{source} and {sources[filename]} both annotate the image {filename!r}"
            )
        boxes: list[list[float]] = []
        labels: list[int] = []
        for number, obj in enumerate(root.findall("object")):
            where = f"{source}, object {number}"
            name_element = obj.find("name")
            if name_element is None or not (name_element.text or "").strip():
                raise ValueError(f"{where}: missing <name>")
            labels.append(class_index(name_element.text.strip(), names, where))
            box = obj.find("bndbox")
            if box is None:
                raise ValueError(f"{where}: missing <bndbox>")
            xmin, ymin, xmax, ymax = (
                _xml_number(box, tag, where) for tag in ("xmin", "ymin", "xmax", "ymax")
            )
            boxes.append([xmin - 1.0, ymin - 1.0, xmax, ymax])
        table[filename] = _as_box_entry(boxes, labels)
        sources[filename] = file
    return table


def json_field(record: Mapping, key: str, where: str) -> object:
    """``record[key]``, or a ValueError saying ``where`` it is missing."""
    if not isinstance(record, Mapping) or key not in record:
        raise ValueError(f"{where}: missing {key!r}")
    return record[key]


def coco_sections(file: Path) -> dict[str, list]:
    """The ``images``, ``annotations`` and ``categories`` lists of a COCO file."""
    if not file.exists():
        raise FileNotFoundError(f"no COCO annotation file at {str(file)!r}")
    source = str(file)
    try:
        with file.open(encoding="utf-8") as handle:
            document = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{source} is not a JSON file: {error}") from error
    sections = {}
    for key in ("images", "annotations", "categories"):
        value = json_field(document, key, source)
        if not isinstance(value, list):
            raise ValueError(f"{source}: {key!r} must be a list, not {type(value).__name__}")
        sections[key] = value
    return sections


def coco_categories(categories: list, names: list[str], source: str) -> dict[object, int]:
    """The class index of every COCO category id, matched by the category's name."""
    category_class: dict[object, int] = {}
    for position, category in enumerate(categories):
        where = f"{source}, categories[{position}]"
        name = json_field(category, "name", where)
        if not isinstance(name, str):
            raise ValueError(f"{where}: 'name' must be a string, not {name!r}")
        category_class[json_field(category, "id", where)] = class_index(name, names, where)
    return category_class


def coco_images(images: list, source: str
                 ) -> tuple[dict[object, str], dict[str, tuple[list[list[float]], list[int]]]]:
    """The file name of every COCO image id, and an empty (boxes, labels) entry per file."""
    file_names: dict[object, str] = {}
    collected: dict[str, tuple[list[list[float]], list[int]]] = {}
    for position, image in enumerate(images):
        where = f"{source}, images[{position}]"
        image_id = json_field(image, "id", where)
        file_name = json_field(image, "file_name", where)
        if not isinstance(file_name, str) or not file_name:
            raise ValueError(f"{where}: 'file_name' must be a non-empty string")
        if file_name in collected:
            raise ValueError(f"{where}: the file name {file_name!r} is listed twice")
        if image_id in file_names:
            raise ValueError(f"{where}: the image id {image_id!r} is used twice")
        file_names[image_id] = file_name
        collected[file_name] = ([], [])
    return file_names, collected


def read_coco_boxes(json_path: str | os.PathLike[str], class_names: Sequence[str]) -> BoxTable:
    """Read the boxes of a COCO-format JSON file (``images``, ``annotations``, ``categories``).

    A COCO ``bbox`` is ``[x, y, w, h]`` with ``x, y`` the top-left corner in pixel
    coordinates, so the box is ``x0 = x, y0 = y, x1 = x + w, y1 = y + h``. Category
    ``name`` s are matched to ``class_names`` as :func:`class_index` says (so a COCO file
    whose category ids are not the model's indices still works). Every image listed gets an
    entry, with ``(0, 4)`` boxes if it has no annotation.

    Args:
        json_path: the ``.json`` file.
        class_names: the model's class names.

    Returns:
        ``{file_name: (boxes (n, 4) float32, box_labels (n,) long)}``.

    Raises:
        FileNotFoundError: no file at ``json_path``.
        ValueError: not JSON; a missing ``images``/``annotations``/``categories`` or field;
            a ``bbox`` that is not four numbers; an annotation of an unknown image or
            category; a category name that is not a class; two images with one file name.

    Examples:
        >>> import json, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "boxes.json")
        >>> with open(path, "w") as file:
        ...     json.dump({"images": [{"id": 7, "file_name": "a.png"}],
        ...                "categories": [{"id": 3, "name": "tabby"}],
        ...                "annotations": [{"image_id": 7, "category_id": 3,
        ...                                 "bbox": [2, 1, 4, 3]}]}, file)
        >>> boxes, labels = read_coco_boxes(path, ["goldfish", "tabby"])["a.png"]
        >>> boxes.tolist(), labels.tolist()
        ([[2.0, 1.0, 6.0, 4.0]], [1])
    """
    names = checked_class_names(class_names)
    file = Path(json_path)
    source = str(file)
    sections = coco_sections(file)
    category_class = coco_categories(sections["categories"], names, source)
    file_names, collected = coco_images(sections["images"], source)
    for position, annotation in enumerate(sections["annotations"]):
        where = f"{source}, annotations[{position}]"
        image_id = json_field(annotation, "image_id", where)
        category_id = json_field(annotation, "category_id", where)
        bbox = json_field(annotation, "bbox", where)
        if image_id not in file_names:
            raise ValueError(f"{where}: image_id {image_id!r} is not in 'images'")
        if category_id not in category_class:
            raise ValueError(f"{where}: category_id {category_id!r} is not in 'categories'")
        if (
            not isinstance(bbox, list)
            or len(bbox) != 4
            or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for v in bbox
            )
        ):
            raise ValueError(
                f"{where}: 'bbox' must be four finite numbers [x, y, w, h], not {bbox!r}"
            )
        x, y, width, height = (float(v) for v in bbox)
        boxes, labels = collected[file_names[image_id]]
        boxes.append([x, y, x + width, y + height])
        labels.append(category_class[category_id])
    return {name: _as_box_entry(*entry) for name, entry in collected.items()}
