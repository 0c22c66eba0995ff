"""Ground-truth object masks: COCO run-length encoding (:func:`encode_rle`,
:func:`decode_rle`), COCO segmentations (:func:`read_coco_masks`: RLE or polygons), folders
of PNG masks (:func:`read_mask_folder`), and a data set with them attached
(:class:`MaskedDataset`).

A mask is ``(H, W)`` bool in the image's pixels; a sample's masks are ``(n, H, W)``, one per
box (``Sample.masks``), its boxes the masks' bounding boxes when they come from here.

COCO's RLE runs through the pixels column by column (Fortran order), alternating runs of 0
and 1 starting with 0; ``counts`` is either that list of run lengths ("uncompressed") or the
compressed string of pycocotools (each run, from the third on, as the difference to the
run two before, in 5-bit groups offset by 48).

Examples:
    >>> import numpy as np
    >>> mask = np.array([[0, 1, 1], [0, 1, 0]], dtype=bool)    # by columns: 0 0 | 1 1 | 1 0
    >>> rle = encode_rle(mask)
    >>> rle
    {'size': [2, 3], 'counts': '231'}
    >>> bool((decode_rle(rle) == mask).all())
    True
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image, ImageDraw

from .boxes import coco_categories, coco_images, coco_sections, json_field
from .dataset import Dataset, Sample, checked_class_names

__all__ = ["MaskTable", "MaskedDataset", "decode_rle", "encode_rle", "mask_boxes",
           "read_coco_masks", "read_mask_folder"]

#: ground-truth masks by file name: ``(masks (n, H, W) bool, labels (n,) long)``; a label
#: of ``-1`` stands for the image's own label (a PNG mask of the labelled object)
MaskTable = dict[str, tuple[torch.Tensor, torch.Tensor]]


def run_lengths(mask: np.ndarray) -> list[int]:
    """The mask's runs, column by column, starting with a (maybe empty) run of 0."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], changes, [flat.size]))
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat.size and flat[0] else runs


def _compress(counts: list[int]) -> str:
    """pycocotools' ``rleToString``."""
    characters = []
    for index, count in enumerate(counts):
        value = count - counts[index - 2] if index > 2 else count
        more = True
        while more:
            group = value & 0x1F
            value >>= 5  # an arithmetic shift, as C's on a signed long
            more = value != -1 if group & 0x10 else value != 0
            characters.append(chr(group + 48 + (0x20 if more else 0)))
    return "".join(characters)


def _decompress(text: str) -> list[int]:
    """pycocotools' ``rleFrString``."""
    counts: list[int] = []
    position = 0
    while position < len(text):
        value, shift, more = 0, 0, True
        while more:
            group = ord(text[position]) - 48
            value |= (group & 0x1F) << (5 * shift)
            more = bool(group & 0x20)
            position, shift = position + 1, shift + 1
            if not more and group & 0x10:
                value |= -1 << (5 * shift)
        counts.append(value + counts[-2] if len(counts) > 2 else value)
    return counts


def encode_rle(mask: np.ndarray | torch.Tensor) -> dict:
    """A ``(H, W)`` mask as COCO's compressed RLE: ``{"size": [H, W], "counts": str}``
    (what ``pycocotools.mask.encode`` writes, as text)."""
    array = mask.detach().cpu().numpy() if torch.is_tensor(mask) else np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"a mask to encode must be (H, W), got shape {array.shape}")
    return {"size": [int(array.shape[0]), int(array.shape[1])],
            "counts": _compress(run_lengths(array))}


def decode_rle(rle: Mapping) -> np.ndarray:
    """A COCO RLE (compressed string or list of counts) as an ``(H, W)`` bool mask.

    Raises:
        ValueError: no ``size``/``counts``, or counts that do not add up to ``H * W``.
    """
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise ValueError(f"an RLE must be a dict with 'size' and 'counts', not {rle!r:.80}")
    height, width = (int(v) for v in rle["size"])
    counts = rle["counts"]
    runs = _decompress(counts) if isinstance(counts, str) else [int(v) for v in counts]
    if sum(runs) != height * width or any(run < 0 for run in runs):
        raise ValueError(f"RLE counts add up to {sum(runs)} pixels, not {height} x {width}")
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    return np.repeat(values, runs).reshape((height, width), order="F")


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int
                     ) -> np.ndarray:
    """COCO polygons (``[x1, y1, x2, y2, ...]`` each) filled as one ``(H, W)`` mask (PIL's
    polygon fill: pixel ``(i, j)`` in when the polygon covers it, its edge included)."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon in polygons:
        points = [float(v) for v in polygon]
        if len(points) < 6 or len(points) % 2:
            raise ValueError(f"a COCO polygon needs x, y pairs of at least 3 points, got "
                             f"{len(points)} numbers")
        draw.polygon(list(zip(points[0::2], points[1::2], strict=True)), fill=1)
    return np.asarray(canvas, dtype=bool)


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """``(n, 4)`` float32 the bounding box ``x0, y0, x1, y1`` (exclusive) of each of
    ``(n, H, W)`` masks (an empty mask: all zero)."""
    boxes = torch.zeros(masks.shape[0], 4)
    for index, mask in enumerate(masks):
        rows, columns = torch.nonzero(mask, as_tuple=True)
        if len(rows):
            boxes[index] = torch.tensor([columns.min(), rows.min(), columns.max() + 1,
                                         rows.max() + 1], dtype=torch.float32)
    return boxes


def _segmentation_mask(segmentation: object, image: Mapping, where: str) -> np.ndarray:
    if isinstance(segmentation, Mapping):
        return decode_rle(segmentation)
    if isinstance(segmentation, list):
        height, width = json_field(image, "height", where), json_field(image, "width", where)
        return polygons_to_mask(segmentation, int(height), int(width))
    raise ValueError(f"{where}: 'segmentation' must be an RLE dict or a list of polygons")


def read_coco_masks(json_path: str | os.PathLike[str], class_names: Sequence[str]
                    ) -> MaskTable:
    """Read the object masks of a COCO JSON file: each annotation's ``segmentation``, an RLE
    (compressed or not) or polygons (which need the image's ``width`` and ``height``).

    Categories are matched to ``class_names`` by name (as :func:`read_coco_boxes`).
    Annotations without a segmentation are left out.

    Returns:
        ``{file_name: (masks (n, H, W) bool, labels (n,) long)}``, every image listed.

    Raises:
        FileNotFoundError: no file there.
        ValueError: not COCO JSON, an unknown image or category, a bad segmentation, or
            masks of one image of different sizes.
    """
    names = checked_class_names(class_names)
    file = Path(json_path)
    sections = coco_sections(file)
    categories = coco_categories(sections["categories"], names, str(file))
    file_names, _ = coco_images(sections["images"], str(file))
    images = {image["id"]: image for image in sections["images"]}
    found: dict[str, tuple[list[np.ndarray], list[int]]] = {n: ([], []) for n in
                                                            file_names.values()}
    for position, annotation in enumerate(sections["annotations"]):
        where = f"{file}, annotations[{position}]"
        if "segmentation" not in annotation:
            continue
        image_id = json_field(annotation, "image_id", where)
        category = json_field(annotation, "category_id", where)
        if image_id not in file_names or category not in categories:
            raise ValueError(f"{where}: unknown image_id {image_id!r} or category_id "
                             f"{category!r}")
        masks, labels = found[file_names[image_id]]
        masks.append(_segmentation_mask(annotation["segmentation"], images[image_id], where))
        labels.append(categories[category])
    return {name: _stacked(masks, labels, f"{file}: {name}")
            for name, (masks, labels) in found.items()}


def _stacked(masks: list[np.ndarray], labels: list[int], where: str
             ) -> tuple[torch.Tensor, torch.Tensor]:
    if len({mask.shape for mask in masks}) > 1:
        raise ValueError(f"{where}: masks of different sizes {sorted({m.shape for m in masks})}")
    stacked = torch.from_numpy(np.stack(masks)) if masks else torch.zeros(0, 0, 0, dtype=bool)
    return stacked, torch.tensor(labels, dtype=torch.long)


def read_mask_folder(folder: str | os.PathLike[str]) -> MaskTable:
    """Read a folder of PNG masks, one per image, named after it (``cat1.png`` for
    ``cat1.jpg``): every non-zero pixel is the image's labelled object.

    Returns:
        ``{stem: (masks (1, H, W) bool, labels [-1])}`` (``-1``: the image's own label).

    Raises:
        FileNotFoundError: no such folder.
        ValueError: no ``.png`` in it, or an unreadable one.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"no folder of PNG masks at {str(root)!r}")
    files = sorted(path for path in root.iterdir() if path.suffix.lower() == ".png")
    if not files:
        raise ValueError(f"no .png masks in the folder {str(root)!r}")
    table: MaskTable = {}
    for path in files:
        try:
            with Image.open(path) as image:
                values = np.asarray(image.convert("L"))
        except OSError as error:
            raise ValueError(f"{path} is not a readable PNG mask: {error}") from error
        table[path.stem] = (torch.from_numpy(values > 0)[None], torch.tensor([-1]))
    return table


class MaskedDataset(Dataset):
    """A data set whose samples carry ground-truth masks (and the masks' boxes).

    Masks are looked up by the sample's id, its base name, or its base name without the
    extension (as PNG mask folders name them); a sample with masks gets those masks as its
    ``masks``, their bounding boxes as its ``boxes`` and their classes as its
    ``box_labels`` (a PNG mask's class is the sample's label; a sample without a label
    then gets none). A mask of another size than its image is a problem: the image is
    reported and skipped.

    Examples:
        >>> import torch
        >>> from PIL import Image
        >>> class One(Dataset):
        ...     def __len__(self):
        ...         return 1
        ...     def __iter__(self):
        ...         yield Sample("a/cat.jpg", Image.new("RGB", (3, 2)), 1, torch.zeros(0, 4),
        ...                      torch.zeros(0, dtype=torch.long))
        >>> mask = torch.tensor([[[0, 1, 1], [0, 0, 0]]], dtype=torch.bool)
        >>> sample = next(iter(MaskedDataset(One(["a", "b"], "one"), {"cat": (mask,
        ...                                  torch.tensor([-1]))})))
        >>> sample.boxes.tolist(), sample.box_labels.tolist()
        ([[1.0, 0.0, 3.0, 1.0]], [1])
    """

    def __init__(self, dataset: Dataset, masks: MaskTable, description: str = "") -> None:
        super().__init__(dataset.class_names,
                         f"{dataset.description}{description or ' (masks)'}")
        self.dataset = dataset
        self.problems = dataset.problems  # one list: the wrapped set's skips are ours
        self.masks = masks

    def __len__(self) -> int:
        return len(self.dataset)

    def first_images_of(self, description: str) -> int | None:
        """As the wrapped data set says (the masks do not change which images come)."""
        return self.dataset.first_images_of(description)

    def _lookup(self, sample_id: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        base = PurePosixPath(sample_id).name
        for key in (sample_id, base, PurePosixPath(base).stem):
            if key in self.masks:
                return self.masks[key]
        return None

    def __iter__(self) -> Iterator[Sample]:
        for sample in self.dataset:
            entry = self._lookup(sample.id)
            if entry is None:
                yield sample
                continue
            masks, labels = entry
            width, height = sample.image.size
            if masks.numel() and tuple(masks.shape[1:]) != (height, width):
                self._report(str(sample.path or sample.id),
                             f"its mask is {masks.shape[2]}x{masks.shape[1]}, the image "
                             f"{width}x{height}")
                continue
            # an empty mask has no box; a PNG mask of an unlabelled image no class
            keep = masks.flatten(1).any(dim=1) & ((labels >= 0) | (sample.label is not None))
            masks, labels = masks[keep], labels[keep]
            labels = torch.where(labels < 0, torch.full_like(labels, sample.label or 0), labels)
            yield Sample(sample.id, sample.image, sample.label, mask_boxes(masks),
                         labels, sample.path, masks=masks.bool())
