"""Image files as data sets: class folders or a flat folder (:class:`ImageFolder`), and
images listed in a CSV file (:class:`CsvImages`), with ground-truth boxes attached by file
name.

Examples:
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

import csv
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import torch
from PIL import Image

from ..images import load_image
from .dataset import Dataset, Sample, checked_class_names, class_index

__all__ = ["IMAGE_EXTENSIONS", "BoxesByName", "CsvImages", "ImageFolder"]

logger = logging.getLogger("axiomcam")

#: file name endings (compared case-insensitively) taken as images from a folder, by the
#: readers and by `axiomcam explain` / `compare` (formats `images.load_image` reads)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm",
                    ".pgm")

#: ground-truth boxes by file name, as the data sets take them: a
#: :data:`~axiomcam.data.BoxTable` or any mapping like it
BoxesByName = Mapping[str, tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class _Entry:
    id: str  # the path relative to the data root, with "/" separators
    path: Path
    label: int | None


_NO_BOXES = (torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))


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
        boxes: BoxesByName | None,
        description: str,
    ) -> None:
        super().__init__(class_names, description)
        self._entries = entries
        self._boxes = self._attach_boxes(entries, boxes)

    def _attach_boxes(
        self,
        entries: list[_Entry],
        boxes: BoxesByName | None,
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


def _existing(path: str | os.PathLike[str], *, folder: bool) -> Path:
    """``path``, checked to exist and to be a folder of images (``folder``) or a CSV file."""
    checked = Path(path)
    if not checked.exists():
        raise FileNotFoundError(
            f"no {'image folder' if folder else 'CSV file'} at {str(checked)!r}"
        )
    if folder and not checked.is_dir():
        raise NotADirectoryError(f"{str(checked)!r} is a file, not a folder of images")
    if not folder and checked.is_dir():
        raise IsADirectoryError(f"{str(checked)!r} is a folder, not a CSV file")
    return checked


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

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (5, 3)).save(root / "b.png")
        >>> Image.new("L", (2, 2)).save(root / "a.jpg")
        >>> [(sample.id, sample.label) for sample in ImageFolder(root, ["tabby"])]
        [('a.jpg', None), ('b.png', None)]
    """

    def __init__(self, root: str | os.PathLike[str], class_names: Sequence[str],
                 boxes: BoxesByName | None = None, *, description: str | None = None) -> None:
        folder = _existing(root, folder=True)
        names = checked_class_names(class_names)
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

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> folder = Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (4, 4)).save(folder / "a.png")
        >>> _ = (folder / "list.csv").write_text("path,label\\na.png,espresso\\n")
        >>> [(s.id, s.label) for s in CsvImages(folder / "list.csv", ["cup", "espresso"])]
        [('a.png', 1)]
    """

    def __init__(self, csv_path: str | os.PathLike[str], class_names: Sequence[str],
                 boxes: BoxesByName | None = None, *, description: str | None = None) -> None:
        file = _existing(csv_path, folder=False)
        names = checked_class_names(class_names)
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
