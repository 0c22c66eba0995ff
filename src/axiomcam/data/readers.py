"""Image data sets from disk: class folders, CSV lists, and Pascal VOC / COCO box files.

Every data set yields :class:`Sample` objects (an 8-bit RGB image at its original
resolution, its class label, its ground-truth boxes) and never stops mid-run on a bad file:
an unreadable image, or a box that does not fit its image, is logged as a warning on the
``"axiomcam"`` logger, recorded in :attr:`Dataset.problems` and skipped. Mistakes that can
be seen before any image is read (a class name the model does not know, a malformed CSV row
or annotation file, a missing folder) raise at once, when the data set is opened.

Box convention (that of :mod:`axiomcam.metrics`): ``x0, y0, x1, y1`` in the image's pixels,
pixel (row i, column j) covering ``[j, j + 1) x [i, i + 1)``, so a box over columns 10..19 is
``x0 = 10, x1 = 20``.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "tabby").mkdir()
    >>> Image.new("RGB", (6, 4)).save(root / "tabby" / "a.png")
    >>> dataset = ImageFolder(root, ["goldfish", "tabby"])
    >>> [(sample.id, sample.label, sample.image.size) for sample in dataset]
    [('tabby/a.png', 1, (6, 4))]
"""

from __future__ import annotations

import abc
import csv
import difflib
import json
import logging
import math
import os
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import torch
from PIL import Image

from ..images import load_image

__all__ = [
    "IMAGE_EXTENSIONS",
    "BoxTable",
    "CsvImages",
    "Dataset",
    "ImageFolder",
    "Problem",
    "Sample",
    "class_index",
    "open_dataset",
    "read_coco_boxes",
    "read_voc_boxes",
]

logger = logging.getLogger("axiomcam")

#: file name endings (compared case-insensitively) taken as images from a folder, by the
#: readers and by `axiomcam explain` / `compare` (formats `images.load_image` reads)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm",
                    ".pgm")

#: ground-truth boxes by file name: ``(boxes (n, 4) float, box_labels (n,) long)``
BoxTable = dict[str, tuple[torch.Tensor, torch.Tensor]]

VALID_SPECS = "'composite:200', 'composite', 'path/to/folder', 'path/to/labels.csv'"


@dataclass(frozen=True, eq=False)
class Sample:
    """One image of a data set, with its label and ground-truth boxes.

    Attributes:
        id: unique in its data set (the path relative to the data root, or
            ``"composite-00017"``).
        image: 8-bit RGB PIL image at its original resolution.
        label: the class the image is labelled with (an index into the model's class
            names), or ``None`` if unknown.
        boxes: ``(n, 4)`` float ``x0, y0, x1, y1`` in the image's pixels (``x1``/``y1``
            exclusive); ``(0, 4)`` if the image has none.
        box_labels: ``(n,)`` long class index of each box.
        path: the file the image came from, if any.

    Example:
        >>> import torch
        >>> from PIL import Image
        >>> sample = Sample("a.png", Image.new("RGB", (4, 4)), 3, torch.zeros(0, 4),
        ...                 torch.zeros(0, dtype=torch.long))
        >>> sample.label, tuple(sample.boxes.shape), sample.path
        (3, (0, 4), None)
    """

    id: str
    image: Image.Image
    label: int | None
    boxes: torch.Tensor
    box_labels: torch.Tensor
    path: str | None = None


@dataclass(frozen=True)
class Problem:
    """A file a data set skipped, and why.

    Example:
        >>> Problem("cats/broken.jpg", "corrupt or truncated").reason
        'corrupt or truncated'
    """

    path: str
    reason: str


class Dataset(abc.ABC):
    """What the evaluation runner iterates over: samples, the class names, what went wrong.

    Attributes:
        class_names: the model's class names that labels index into.
        problems: the bad entries met so far while iterating (each also logged as a
            warning on the ``"axiomcam"`` logger); an entry is recorded once however many
            times the data set is iterated.
        description: a short text for run configurations (``"composite:200 (seed 0)"``, a
            folder path).

    ``len(dataset)`` counts the entries, bad ones included; iteration skips the bad ones.

    Example:
        >>> class Empty(Dataset):
        ...     def __len__(self):
        ...         return 0
        ...     def __iter__(self):
        ...         return iter(())
        >>> dataset = Empty(["cat"], "nothing")
        >>> len(dataset), dataset.problems, dataset.description
        (0, [], 'nothing')
    """

    def __init__(self, class_names: Sequence[str], description: str) -> None:
        self.class_names = _checked_class_names(class_names)
        self.problems: list[Problem] = []
        self.description = description

    @abc.abstractmethod
    def __len__(self) -> int:
        """The number of entries, before any bad file is skipped."""

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Sample]:
        """The good samples, in a fixed order; bad entries are recorded and skipped."""

    def first_images_of(self, description: str) -> int | None:
        """``N`` if the data set described by ``description`` is this one's first ``N``
        images (a shorter run of the same benchmark and seed), else ``None`` (also when it
        cannot tell). The evaluation runner then extends a run of that data set instead of
        refusing it; this base class knows no such relation.

        Example:
            >>> Empty = type("Empty", (Dataset,), {"__len__": lambda self: 0,
            ...                                    "__iter__": lambda self: iter(())})
            >>> print(Empty(["cat"], "nothing").first_images_of("nothing"))
            None
        """
        return None

    def _report(self, path: str, reason: str) -> None:
        problem = Problem(path, reason)
        if problem not in self.problems:
            self.problems.append(problem)
            logger.warning("skipping %s: %s", path, reason)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r}, {len(self)} entries)"


def _checked_class_names(class_names: Sequence[str]) -> list[str]:
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise TypeError(
            f"class_names must be a sequence of strings (the model's class names), not "
            f"{type(class_names).__name__}"
        )
    names = list(class_names)
    if not names:
        raise ValueError("class_names is empty: pass the model's class names")
    for position, name in enumerate(names):
        if not isinstance(name, str):
            raise TypeError(f"class_names[{position}] is a {type(name).__name__}, not a str")
    return names


# ---------------------------------------------------------------------------------------
# class labels


def _normalise_name(name: str) -> str:
    return " ".join(name.replace("_", " ").split()).casefold()


_INTEGER = re.compile(r"[+-]?\d+")


def class_index(label: str | int, class_names: Sequence[str], source: str | None = None) -> int:
    """The index of a class label among ``class_names``.

    A label is matched against the class names case-insensitively, with underscores read as
    spaces and runs of white space as one space (``"Egyptian_cat"``, ``"egyptian cat"``
    and ``"Egyptian cat"`` are the same); a string of digits (or an int) is an index.

    Args:
        label: a class name, or an index as an int or a string of digits.
        class_names: the model's class names.
        source: where the label was read (a file, a line), named in error messages.

    Returns:
        the class index, ``0 <= index < len(class_names)``.

    Raises:
        ValueError: the label is not a class name (the message names it, its source and the
            nearest class names), names two classes (give the index instead), or is an
            index out of range.
        TypeError: the label is neither a str nor an int.

    Example:
        >>> names = ["tabby", "Egyptian cat", "espresso"]
        >>> class_index("egyptian_cat", names), class_index("2", names), class_index(0, names)
        (1, 2, 0)
    """
    where = f" (in {source})" if source else ""
    if isinstance(label, bool) or not isinstance(label, (str, int)):
        raise TypeError(f"a class label must be a str or int, not {type(label).__name__}{where}")
    if isinstance(label, int) or _INTEGER.fullmatch(label.strip()):
        index = int(label)
        if not 0 <= index < len(class_names):
            raise ValueError(
                f"class index {label!r}{where} is out of range: the model has "
                f"{len(class_names)} classes (0..{len(class_names) - 1})"
            )
        return index
    wanted = _normalise_name(label)
    matches = [i for i, name in enumerate(class_names) if _normalise_name(name) == wanted]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ValueError(
            f"class label {label!r}{where} names {len(matches)} classes "
            f"({', '.join(f'{i}: {class_names[i]!r}' for i in matches)}): use the index"
        )
    by_normalised = {_normalise_name(name): name for name in class_names}
    near = difflib.get_close_matches(wanted, list(by_normalised), n=5, cutoff=0.6)
    hint = (
        "near matches: " + ", ".join(repr(by_normalised[name]) for name in near)
        if near
        else "no near match"
    )
    raise ValueError(
        f"unknown class label {label!r}{where}: not one of the model's {len(class_names)} "
        f"class names ({hint})"
    )


# ---------------------------------------------------------------------------------------
# box files


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

    Example:
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
    names = _checked_class_names(class_names)
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


def _json_field(record: Mapping, key: str, where: str) -> object:
    if not isinstance(record, Mapping) or key not in record:
        raise ValueError(f"{where}: missing {key!r}")
    return record[key]


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

    Example:
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
    names = _checked_class_names(class_names)
    file = Path(json_path)
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
        value = _json_field(document, key, source)
        if not isinstance(value, list):
            raise ValueError(f"{source}: {key!r} must be a list, not {type(value).__name__}")
        sections[key] = value

    category_class: dict[object, int] = {}
    for position, category in enumerate(sections["categories"]):
        where = f"{source}, categories[{position}]"
        name = _json_field(category, "name", where)
        if not isinstance(name, str):
            raise ValueError(f"{where}: 'name' must be a string, not {name!r}")
        category_class[_json_field(category, "id", where)] = class_index(name, names, where)

    file_names: dict[object, str] = {}
    collected: dict[str, tuple[list[list[float]], list[int]]] = {}
    for position, image in enumerate(sections["images"]):
        where = f"{source}, images[{position}]"
        image_id = _json_field(image, "id", where)
        file_name = _json_field(image, "file_name", where)
        if not isinstance(file_name, str) or not file_name:
            raise ValueError(f"{where}: 'file_name' must be a non-empty string")
        if file_name in collected:
            raise ValueError(f"{where}: the file name {file_name!r} is listed twice")
        if image_id in file_names:
            raise ValueError(f"{where}: the image id {image_id!r} is used twice")
        file_names[image_id] = file_name
        collected[file_name] = ([], [])

    for position, annotation in enumerate(sections["annotations"]):
        where = f"{source}, annotations[{position}]"
        image_id = _json_field(annotation, "image_id", where)
        category_id = _json_field(annotation, "category_id", where)
        bbox = _json_field(annotation, "bbox", where)
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


# ---------------------------------------------------------------------------------------
# image files


@dataclass(frozen=True)
class _Entry:
    id: str  # the path relative to the data root, with "/" separators
    path: Path
    label: int | None


_NO_BOXES = (torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))


def _is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def _box_problem(boxes: torch.Tensor, width: int, height: int) -> str | None:
    """Why a box does not fit a ``width x height`` image, or None if all fit."""
    for number, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        described = f"box {number} (x0={x0:g}, y0={y0:g}, x1={x1:g}, y1={y1:g})"
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
            return f"{described} has a NaN or infinite coordinate"
        if x1 <= x0 or y1 <= y0:
            return f"{described} is empty or inverted (needs x0 < x1 and y0 < y1)"
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            return f"{described} is outside the {width}x{height} image"
    return None


class _FileDataset(Dataset):
    """A list of image files with labels, and boxes attached by file name."""

    def __init__(
        self,
        entries: list[_Entry],
        class_names: Sequence[str],
        boxes: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None,
        description: str,
    ) -> None:
        super().__init__(class_names, description)
        self._entries = entries
        self._boxes = self._attach_boxes(entries, boxes)

    def _attach_boxes(
        self,
        entries: list[_Entry],
        boxes: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each entry's boxes: looked up by relative path, else by base name."""
        if boxes is None:
            return [_NO_BOXES] * len(entries)
        table = {key: self._checked_box_entry(key, value) for key, value in boxes.items()}
        by_base: dict[str, list[_Entry]] = {}
        for entry in entries:
            by_base.setdefault(PurePosixPath(entry.id).name, []).append(entry)
        attached = []
        used: set[str] = set()
        for entry in entries:
            base = PurePosixPath(entry.id).name
            key = entry.id if entry.id in table else base if base in table else None
            if key is None:
                attached.append(_NO_BOXES)
                continue
            if key == base and key != entry.id and len(by_base[base]) > 1:
                raise ValueError(
                    f"the boxes for {base!r} could belong to any of "
                    f"{', '.join(repr(e.id) for e in by_base[base])}: key the annotations "
                    "by the path relative to the data root"
                )
            used.add(key)
            attached.append(table[key])
        unused = [key for key in table if key not in used]
        if unused:
            # annotations of images that are not there: worth knowing, not worth stopping for
            logger.warning(
                "%d annotated file names match no image of %s (e.g. %s)",
                len(unused),
                self.description,
                ", ".join(repr(key) for key in unused[:3]),
            )
        return attached

    def _checked_box_entry(
        self, key: str, value: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise TypeError(f"boxes[{key!r}] must be a (boxes, box_labels) tuple")
        box_tensor, labels = value
        if not torch.is_tensor(box_tensor) or box_tensor.dim() != 2 or box_tensor.shape[1] != 4:
            raise ValueError(f"boxes[{key!r}][0] must be an (n, 4) tensor")
        if not torch.is_tensor(labels) or labels.shape != (box_tensor.shape[0],):
            raise ValueError(
                f"boxes[{key!r}][1] must be a ({box_tensor.shape[0]},) tensor of class indices"
            )
        if labels.numel() and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise ValueError(
                f"boxes[{key!r}] has a class index outside 0..{len(self.class_names) - 1}"
            )
        return box_tensor.detach().to("cpu", torch.float32), labels.detach().to("cpu", torch.long)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Sample]:
        for entry, (boxes, box_labels) in zip(self._entries, self._boxes, strict=True):
            try:
                image = load_image(entry.path)
            except (OSError, ValueError, Image.DecompressionBombError) as error:
                # FileNotFoundError, IsADirectoryError and PermissionError are OSErrors; PIL
                # refuses images so large they look like decompression bombs
                self._report(str(entry.path), f"{type(error).__name__}: {error}")
                continue
            reason = _box_problem(boxes, *image.size)
            if reason is not None:
                self._report(str(entry.path), reason)
                continue
            yield Sample(
                id=entry.id,
                image=image,
                label=entry.label,
                boxes=boxes.clone(),
                box_labels=box_labels.clone(),
                path=str(entry.path),
            )


def _images_under(folder: Path) -> list[Path]:
    """Image files anywhere under ``folder``, in a fixed (sorted) order."""
    found = []
    for directory, subdirectories, files in os.walk(folder):
        subdirectories.sort()
        found.extend(
            Path(directory) / name
            for name in sorted(files)
            if Path(name).suffix.lower() in IMAGE_EXTENSIONS
        )
    return found


class ImageFolder(_FileDataset):
    """Images in class folders (``root/<class>/<image>``), or a flat folder of images.

    A subfolder of ``root`` that holds images (at any depth) is a class: its name is a class
    name or index, matched as :func:`class_index` says (``tabby``, ``Egyptian_cat``,
    ``285``). Images directly in ``root`` have no label (``None``); a flat folder is all
    such images. Image files end in :data:`IMAGE_EXTENSIONS` (any case); other files are
    ignored. The order is sorted by relative path, so it is the same on every run.

    Sample ids are the paths relative to ``root`` with ``/`` separators
    (``"tabby/001.jpg"``); ``boxes`` are attached by that path, else by the file's base name.

    Args:
        root: the folder.
        class_names: the model's class names (labels index into them).
        boxes: ground-truth boxes by file name (:func:`read_voc_boxes`,
            :func:`read_coco_boxes`); images without an entry have ``(0, 4)`` boxes.
        description: the text for run configurations (default: ``root``).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is a file.
        ValueError: no image under ``root``; a class folder whose name is not a class (with
            near matches); ambiguous base-name box keys.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (5, 3)).save(root / "b.png")
        >>> Image.new("L", (2, 2)).save(root / "a.jpg")
        >>> [(sample.id, sample.label) for sample in ImageFolder(root, ["tabby"])]
        [('a.jpg', None), ('b.png', None)]
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        class_names: Sequence[str],
        boxes: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
        *,
        description: str | None = None,
    ) -> None:
        folder = Path(root)
        if not folder.exists():
            raise FileNotFoundError(f"no image folder at {str(folder)!r}")
        if not folder.is_dir():
            raise NotADirectoryError(f"{str(folder)!r} is a file, not a folder of images")
        names = _checked_class_names(class_names)
        entries = []
        for child in sorted(folder.iterdir()):
            if child.is_dir():
                images = _images_under(child)
                if not images:
                    continue  # e.g. an annotations folder
                label = class_index(child.name, names, f"the class folder {str(child)!r}")
                entries.extend(
                    _Entry(image.relative_to(folder).as_posix(), image, label) for image in images
                )
            elif child.suffix.lower() in IMAGE_EXTENSIONS:
                entries.append(_Entry(child.name, child, None))
        entries.sort(key=lambda entry: entry.id)
        if not entries:
            raise ValueError(
                f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {str(folder)!r} or its "
                "class folders"
            )
        super().__init__(entries, names, boxes, description or str(folder))


class CsvImages(_FileDataset):
    """Images listed in a CSV file with a header ``path,label``.

    ``path`` is an image file, relative to the CSV file's folder unless absolute; ``label``
    is a class name or index (matched as :func:`class_index` says) or empty for unknown.
    Other columns are ignored; blank lines are skipped. Samples come in the file's order;
    their ids are the paths as written (with ``/`` separators), which is also the first key
    ``boxes`` are looked up by (then the base name).

    Args:
        csv_path: the CSV file (UTF-8, a byte-order mark is allowed).
        class_names: the model's class names.
        boxes: ground-truth boxes by file name.
        description: the text for run configurations (default: ``csv_path``).

    Raises:
        FileNotFoundError: no file at ``csv_path``.
        ValueError: no ``path`` column in the header; a row with too few fields, an empty
            path, an unknown label, or a path listed twice (the line number is named); no
            rows.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> folder = Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (4, 4)).save(folder / "a.png")
        >>> _ = (folder / "list.csv").write_text("path,label\\na.png,espresso\\n")
        >>> [(s.id, s.label) for s in CsvImages(folder / "list.csv", ["cup", "espresso"])]
        [('a.png', 1)]
    """

    def __init__(
        self,
        csv_path: str | os.PathLike[str],
        class_names: Sequence[str],
        boxes: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
        *,
        description: str | None = None,
    ) -> None:
        file = Path(csv_path)
        if not file.exists():
            raise FileNotFoundError(f"no CSV file at {str(file)!r}")
        if file.is_dir():
            raise IsADirectoryError(f"{str(file)!r} is a folder, not a CSV file")
        names = _checked_class_names(class_names)
        entries = self._read_rows(file, names)
        super().__init__(entries, names, boxes, description or str(file))

    @staticmethod
    def _read_rows(file: Path, names: list[str]) -> list[_Entry]:
        try:
            with file.open(newline="", encoding="utf-8-sig") as handle:
                rows = list(_numbered_rows(csv.reader(handle)))
        except (UnicodeDecodeError, csv.Error) as error:
            raise ValueError(f"{file} is not a readable UTF-8 CSV file: {error}") from error
        if not rows:
            raise ValueError(f"{file} is empty: expected a header 'path,label' and rows")
        header_line, header = rows[0]
        columns = [column.strip().lower() for column in header]
        if "path" not in columns:
            raise ValueError(
                f"{file}, line {header_line}: the header must name the columns 'path,label', "
                f"found {','.join(header)!r}"
            )
        path_column = columns.index("path")
        label_column = columns.index("label") if "label" in columns else None
        needed = max(path_column, label_column or 0) + 1
        entries = []
        first_line: dict[str, int] = {}
        for line, row in rows[1:]:
            where = f"{file}, line {line}"
            if len(row) < needed:
                raise ValueError(
                    f"{where}: {len(row)} field(s), expected {needed} ({','.join(header)}): "
                    f"{','.join(row)!r}"
                )
            written = row[path_column].strip()
            if not written:
                raise ValueError(f"{where}: the path is empty")
            label_text = row[label_column].strip() if label_column is not None else ""
            label = class_index(label_text, names, where) if label_text else None
            image_id = PurePosixPath(written.replace("\\", "/")).as_posix()
            if image_id in first_line:
                raise ValueError(
                    f"{where}: {written!r} is already listed on line {first_line[image_id]}"
                )
            first_line[image_id] = line
            path = Path(written)
            entries.append(
                _Entry(image_id, path if path.is_absolute() else file.parent / path, label)
            )
        if not entries:
            raise ValueError(f"{file} lists no images (only a header)")
        return entries


def _numbered_rows(reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    """Non-blank rows with the line number each starts on (1-based)."""
    line = 1
    for row in reader:
        if any(field.strip() for field in row):
            yield line, row
        line = reader.line_num + 1


# ---------------------------------------------------------------------------------------
# one entry point for command lines and run configurations


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


def open_dataset(
    spec: str,
    class_names: Sequence[str],
    *,
    boxes_format: str | None = None,
    boxes_file: str | os.PathLike[str] | None = None,
    seed: int = 0,
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

    Raises:
        ValueError: an unknown spec or a bad image count (valid specs are shown); a
            ``boxes_format`` without ``boxes_file`` or the other way round, or an unknown
            format; plus whatever the chosen reader raises.
        FileNotFoundError: a folder or CSV path that does not exist.

    Example:
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
        if boxes_format is not None:
            raise ValueError(
                "the composite benchmark has its own boxes: drop boxes_format/boxes_file"
            )
        from .composite import CompositeBenchmark  # here: composite imports this module

        return CompositeBenchmark(_composite_count(spec), class_names, seed=seed)

    boxes = None
    boxes_text = ""
    if boxes_format is not None:
        readers = {"voc": read_voc_boxes, "coco": read_coco_boxes}
        format_name = str(boxes_format).strip().lower()
        if format_name not in readers:
            raise ValueError(f"unknown boxes_format {boxes_format!r}: use 'voc' or 'coco'")
        boxes = readers[format_name](boxes_file, class_names)
        boxes_text = f" (boxes: {format_name} {boxes_file})"

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
