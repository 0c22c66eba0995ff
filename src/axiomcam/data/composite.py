"""A built-in localization benchmark with exact ground truth and nothing to download.

Each image pastes one or two real objects -- rectangular crops of the photographs that ship
with scikit-image (a cat, an espresso, a moped, a tripod, a space shuttle model) -- at a
random position and scale onto a real texture (scikit-image's grass, gravel or brick
photographs, coloured), so where each object is, and what it is, is known to the pixel.
Images with two objects of different classes test whether an explanation of one class
finds that object and not the other. Each sample also carries its objects' silhouettes
(``Sample.masks``, :mod:`axiomcam.data.silhouettes`), pasted with them.

Every object was checked against the real pretrained MobileNetV2 (the composite image
resized to 224 x 224, no crop): single-object composites of it are classified as its class
(or a sibling class listed in :attr:`CompositeObject.related`) in most cases; the measured
accuracies are in the comments of :data:`OBJECTS`.

Examples:
    >>> from torchvision.models import MobileNet_V2_Weights
    >>> names = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
    >>> benchmark = CompositeBenchmark(10, names, seed=0)
    >>> sample = benchmark[3]
    >>> sample.id, sample.image.size, names[sample.label] == names[sample.box_labels[0]]
    ('composite-00003', (224, 224), True)
"""

from __future__ import annotations

import functools
import json
import operator
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..images import sample_image
from .dataset import Dataset, Sample, class_index, normalise_name
from .silhouettes import pasted_masks

__all__ = ["OBJECTS", "TEXTURES", "CompositeBenchmark", "CompositeLayout", "CompositeObject"]


@dataclass(frozen=True)
class CompositeObject:
    """An object the benchmark pastes: a rectangle of one of scikit-image's photographs.

    Attributes:
        key: a short name (``"cat"``).
        source: the :func:`axiomcam.images.sample_image` photograph it is cut from.
        crop: ``(left, upper, right, lower)`` in the photograph's pixels (PIL's crop box:
            right and lower exclusive).
        class_name: its ImageNet class (the label of a box around it).
        related: sibling classes a classifier may fairly answer instead (the five domestic
            cats, moped and motor scooter), for accuracy checks.

    Examples:
        >>> cat = OBJECTS[0]
        >>> cat.key, cat.source, cat.class_name
        ('cat', 'chelsea', 'Egyptian cat')
    """

    key: str
    source: str
    crop: tuple[int, int, int, int]
    class_name: str
    related: tuple[str, ...] = ()

    def image(self) -> Image.Image:
        """The object's pixels at their original resolution (RGB).

        Examples:
            >>> OBJECTS[0].image().size
            (370, 300)
        """
        return _object_crop(self.key).copy()  # a copy: the cached crop must stay intact


#: the objects, crops chosen by looking at the photographs. Pretrained MobileNetV2 (the
#: composite resized to 224 x 224, no crop) on 40 single-object composites of each, top-1 /
#: top-5 accuracy counting ``related`` classes, seed 0 | seed 1 (the misses are mostly the
#: smallest pastes):
#:   cat 0.93 / 1.00 | 0.90 / 1.00        espresso 0.93 / 0.97 | 0.88 / 0.95
#:   moped 0.72 / 0.88 | 0.60 / 0.80      tripod 0.85 / 0.97 | 0.93 / 0.97
#:   space shuttle 0.90 / 0.93 | 0.65 / 0.78
#: Rejected: the rocket (beacon, obelisk, ...) and the astronaut's helmet (crash helmet 11/28).
OBJECTS: tuple[CompositeObject, ...] = (
    CompositeObject(
        "cat",
        "chelsea",
        (30, 0, 400, 300),
        "Egyptian cat",
        ("tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"),
    ),
    CompositeObject("espresso", "coffee", (75, 15, 485, 390), "espresso"),
    CompositeObject("moped", "motorcycle", (90, 95, 690, 455), "moped", ("moped", "motor scooter")),
    CompositeObject("tripod", "camera", (225, 130, 420, 512), "tripod"),
    CompositeObject("space shuttle", "astronaut", (350, 0, 480, 290), "space shuttle"),
)


@dataclass(frozen=True)
class _Texture:
    name: str
    dark: tuple[int, int, int]  # the colour of the texture's black
    light: tuple[int, int, int]  # the colour of its white


#: background textures (scikit-image's grey photographs), coloured by mapping grey 0..1
#: linearly from a dark to a light colour of the material
TEXTURES: tuple[_Texture, ...] = (
    _Texture("grass", (18, 40, 8), (150, 205, 85)),
    _Texture("gravel", (35, 32, 28), (215, 205, 190)),
    _Texture("brick", (55, 22, 16), (215, 120, 90)),
)


# the side of scikit-image's texture photographs (checked when they are loaded)
_TEXTURE_SIDE = 512


@functools.cache
def _object_crop(key: str) -> Image.Image:
    obj = next(o for o in OBJECTS if o.key == key)
    return sample_image(obj.source).crop(obj.crop)


@functools.cache
def _texture_image(name: str) -> Image.Image:
    from skimage import data  # slow to import: only when a benchmark image is made

    texture = next(t for t in TEXTURES if t.name == name)
    grey = getattr(data, name)().astype(np.float32) / 255.0
    if grey.shape != (_TEXTURE_SIDE, _TEXTURE_SIDE):
        raise RuntimeError(f"skimage.data.{name}() is {grey.shape}, expected 512 x 512 grey")
    dark = np.asarray(texture.dark, dtype=np.float32)
    light = np.asarray(texture.light, dtype=np.float32)
    rgb = dark + grey[..., None] * (light - dark)
    return Image.fromarray(np.round(rgb).clip(0, 255).astype(np.uint8))


@dataclass(frozen=True)
class CompositeLayout:
    """Everything random about one benchmark image, drawn from ``(seed, index)``.

    Attributes:
        index: the image's index.
        texture: the background texture's name.
        region: ``(left, upper, right, lower)``: the square of the 512 x 512 texture that is
            resized to the image.
        transpose: a PIL ``Image.Transpose`` value applied to the background, or ``None``.
        brightness: the background's overall brightness factor.
        objects: the objects pasted, in order (the first is the image's label).
        boxes: one ``(x0, y0, x1, y1)`` per object, integers, ``x1``/``y1`` exclusive.

    Examples:
        >>> from torchvision.models import MobileNet_V2_Weights
        >>> names = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
        >>> layout = CompositeBenchmark(3, names, two_object_fraction=1.0).layout(2)
        >>> len(layout.objects), len(layout.boxes), layout.texture in ("grass", "gravel", "brick")
        (2, 2, True)
    """

    index: int
    texture: str
    region: tuple[int, int, int, int]
    transpose: int | None
    brightness: float
    objects: tuple[CompositeObject, ...]
    boxes: tuple[tuple[int, int, int, int], ...]


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int], gap: int) -> bool:
    """Whether two boxes overlap or come closer than ``gap`` pixels."""
    return not (
        a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]
    )


#: the defaults of :class:`CompositeBenchmark`, left out of its description
DEFAULT_SIZE = 224
DEFAULT_TWO_OBJECT_FRACTION = 0.25


def _description(count: int, seed: int, size: int, two_object_fraction: float) -> str:
    """``"composite:200 (seed 0)"``, with the size and the two-object fraction when they
    are not the defaults (runs of different benchmarks must not look alike)."""
    settings = [f"seed {seed}"]
    if size != DEFAULT_SIZE:
        settings.append(f"size {size}")
    if two_object_fraction != DEFAULT_TWO_OBJECT_FRACTION:
        settings.append(f"two-object fraction {two_object_fraction:g}")
    return f"composite:{count} ({', '.join(settings)})"


class CompositeBenchmark(Dataset):
    """Real objects pasted on real textures at known boxes: a localization benchmark.

    Image ``i`` (``size x size``, 8-bit RGB) is drawn from ``numpy.random.default_rng((seed,
    i))`` alone, so it is the same whatever ``count`` is and ``benchmark[i]`` needs no other
    image:

    - the background: a random square of one of :data:`TEXTURES` (half to all of the
      512-pixel photograph), resized to ``size`` (bicubic), maybe flipped or rotated by a
      multiple of 90 degrees, brightness times 0.85..1.15;
    - with probability ``1 - two_object_fraction`` one object of :data:`OBJECTS` whose
      longer side is 35%..70% of ``size``; otherwise two objects of different classes, each
      with the longer side 25%..45% of ``size``, whose boxes are at least ``size // 56``
      pixels apart (drawn again until they are, or else put in opposite halves);
    - each object is its crop resized (Lanczos, aspect ratio kept) to its box and pasted
      at a uniformly random position fully inside the image; the box is exactly the pasted
      rectangle.

    ``label`` is the first object's class, ``box_labels`` has one class per object, all
    indices into ``class_names`` (found by name, so any list holding the ImageNet names
    works). Sample ids are ``"composite-00017"``; ``path`` is ``None``.

    Args:
        count: the number of images.
        class_names: the model's class names (must include every object's class).
        seed: a non-negative integer.
        size: the image side in pixels (at least 32).
        two_object_fraction: the probability that an image has two objects.

    Raises:
        ValueError: ``count`` < 1, ``seed`` < 0, ``size`` < 32, ``two_object_fraction``
            outside ``[0, 1]``, or a class name missing from ``class_names``.
        TypeError: a non-integer ``count``, ``seed`` or ``size``.

    Examples:
        >>> from torchvision.models import MobileNet_V2_Weights
        >>> names = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
        >>> benchmark = CompositeBenchmark(4, names, seed=2, size=64)
        >>> [tuple(sample.boxes.shape) for sample in benchmark][:1]
        [(1, 4)]
        >>> benchmark.description
        'composite:4 (seed 2, size 64)'
    """

    def __init__(
        self,
        count: int = 200,
        class_names: Sequence[str] | None = None,
        *,
        seed: int = 0,
        size: int = DEFAULT_SIZE,
        two_object_fraction: float = DEFAULT_TWO_OBJECT_FRACTION,
    ) -> None:
        for name, value in (("count", count), ("seed", seed), ("size", size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}: {value!r}")
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer, not {seed}")
        if size < 32:
            raise ValueError(f"size must be at least 32 pixels, not {size}")
        if (
            isinstance(two_object_fraction, bool)
            or not isinstance(two_object_fraction, (int, float))
            or not 0 <= two_object_fraction <= 1
        ):
            raise ValueError(
                f"two_object_fraction must be a number in [0, 1], not {two_object_fraction!r}"
            )
        if class_names is None:
            raise TypeError("class_names is required: pass the model's class names")
        super().__init__(class_names, _description(count, seed, size, two_object_fraction))
        self.count = int(count)
        self.seed = int(seed)
        self.size = int(size)
        self.two_object_fraction = float(two_object_fraction)
        self.objects = OBJECTS
        #: each object's class index in ``class_names``, by key
        self.object_classes = {
            obj.key: class_index(obj.class_name, self.class_names, "the composite benchmark")
            for obj in OBJECTS
        }

    # --- layout -------------------------------------------------------------------------

    def first_images_of(self, description: str) -> int | None:
        """``N`` if ``description`` is this benchmark's with ``N <= count`` images (the same
        seed, size and two-object fraction), whose images are then this one's first ``N``.

        Examples:
            >>> from torchvision.models import MobileNet_V2_Weights
            >>> names = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
            >>> benchmark = CompositeBenchmark(200, names, seed=1)
            >>> benchmark.first_images_of("composite:64 (seed 1)")
            64
            >>> print(benchmark.first_images_of("composite:64 (seed 0)"))
            None
        """
        match = re.fullmatch(r"composite:(\d+)( .*)", description)
        if match is None:
            return None
        count = int(match[1])
        same = _description(count, self.seed, self.size, self.two_object_fraction)
        return count if 1 <= count <= self.count and description == same else None

    def layout(self, index: int) -> CompositeLayout:
        """The random choices of image ``index`` (no pixels are made).

        Raises:
            IndexError: ``index`` outside ``-count .. count - 1``.

        Examples:
            >>> from torchvision.models import MobileNet_V2_Weights
            >>> names = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
            >>> layout = CompositeBenchmark(5, names).layout(0)
            >>> all(0 <= v <= 224 for box in layout.boxes for v in box)
            True
        """
        index = self._checked_index(index)
        rng = np.random.default_rng((self.seed, index))
        texture = TEXTURES[int(rng.integers(len(TEXTURES)))].name
        side = int(rng.integers(_TEXTURE_SIDE // 2, _TEXTURE_SIDE + 1))
        left, upper = (int(v) for v in rng.integers(0, _TEXTURE_SIDE - side + 1, size=2))
        orientation = int(rng.integers(6))
        transposes = (None, Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM,
                      Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180,
                      Image.Transpose.ROTATE_270)
        brightness = float(rng.uniform(0.85, 1.15))

        two = bool(rng.random() < self.two_object_fraction)
        chosen = rng.choice(len(OBJECTS), size=2 if two else 1, replace=False)
        objects = tuple(OBJECTS[int(i)] for i in chosen)
        low, high = (0.25, 0.45) if two else (0.35, 0.70)
        extents = [self._extent(obj, float(rng.uniform(low, high))) for obj in objects]
        boxes = self._place(rng, extents)
        transpose = transposes[orientation]
        return CompositeLayout(
            index=index,
            texture=texture,
            region=(left, upper, left + side, upper + side),
            transpose=None if transpose is None else int(transpose),
            brightness=brightness,
            objects=objects,
            boxes=boxes,
        )

    def _extent(self, obj: CompositeObject, scale: float) -> tuple[int, int]:
        """The pasted ``(width, height)``: the longer side ``scale * size``, aspect kept."""
        width, height = obj.crop[2] - obj.crop[0], obj.crop[3] - obj.crop[1]
        longer = max(1, round(scale * self.size))
        if width >= height:
            return longer, max(1, round(longer * height / width))
        return max(1, round(longer * width / height)), longer

    def _place(
        self, rng: np.random.Generator, extents: list[tuple[int, int]]
    ) -> tuple[tuple[int, int, int, int], ...]:
        def random_box(
            width: int, height: int, x_range: tuple[int, int], y_range: tuple[int, int]
        ) -> tuple[int, int, int, int]:
            x0 = int(rng.integers(x_range[0], x_range[1] - width + 1))
            y0 = int(rng.integers(y_range[0], y_range[1] - height + 1))
            return x0, y0, x0 + width, y0 + height

        whole = (0, self.size)
        if len(extents) == 1:
            return (random_box(*extents[0], whole, whole),)
        gap = max(1, self.size // 56)
        for _ in range(100):
            first, second = (random_box(w, h, whole, whole) for w, h in extents)
            if not _overlap(first, second, gap):
                return first, second
        # rare: opposite halves, split along a random axis (each object is < half the size)
        half = self.size // 2
        ranges = ((0, half - gap // 2), (half + (gap - gap // 2), self.size))
        if rng.random() < 0.5:  # left | right
            return tuple(
                random_box(w, h, x_range, whole)
                for (w, h), x_range in zip(extents, ranges, strict=True)
            )
        return tuple(
            random_box(w, h, whole, y_range)
            for (w, h), y_range in zip(extents, ranges, strict=True)
        )

    def _checked_index(self, index: int) -> int:
        try:
            position = operator.index(index)
        except TypeError as error:
            raise TypeError(f"index must be an int, not {type(index).__name__}") from error
        if not -self.count <= position < self.count:
            raise IndexError(f"index {position} is outside 0..{self.count - 1}")
        return position % self.count

    # --- pixels -------------------------------------------------------------------------

    def _render_background(self, layout: CompositeLayout) -> Image.Image:
        background = _texture_image(layout.texture).resize(
            (self.size, self.size), Image.Resampling.BICUBIC, box=layout.region
        )
        if layout.transpose is not None:
            background = background.transpose(Image.Transpose(layout.transpose))
        pixels = np.asarray(background, dtype=np.float32) * layout.brightness
        return Image.fromarray(np.round(pixels).clip(0, 255).astype(np.uint8))

    def background(self, index: int) -> Image.Image:
        """Image ``index`` without its objects: the pixels outside its boxes.

        Examples:
            >>> from torchvision.models import MobileNet_V2_Weights
            >>> names = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
            >>> CompositeBenchmark(5, names, size=32).background(1).size
            (32, 32)
        """
        return self._render_background(self.layout(index))

    def render(self, layout: CompositeLayout) -> Image.Image:
        """The RGB image of a layout: the background with each object pasted in its box.

        Examples:
            >>> from torchvision.models import MobileNet_V2_Weights
            >>> names = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
            >>> benchmark = CompositeBenchmark(5, names, size=48)
            >>> benchmark.render(benchmark.layout(0)).size
            (48, 48)
        """
        image = self._render_background(layout)
        for obj, (x0, y0, x1, y1) in zip(layout.objects, layout.boxes, strict=True):
            pasted = _object_crop(obj.key).resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS)
            image.paste(pasted, (x0, y0))
        return image

    def __getitem__(self, index: int) -> Sample:
        """Sample ``index`` (negative indices count from the end).

        Raises:
            IndexError: ``index`` outside ``-count .. count - 1``.
            TypeError: ``index`` is not an integer.
        """
        layout = self.layout(index)
        classes = [self.object_classes[obj.key] for obj in layout.objects]
        return Sample(
            id=self.image_id(layout.index),
            image=self.render(layout),
            label=classes[0],
            boxes=torch.tensor(layout.boxes, dtype=torch.float32).reshape(-1, 4),
            box_labels=torch.tensor(classes, dtype=torch.long),
            path=None,
            masks=pasted_masks([obj.key for obj in layout.objects], layout.boxes, self.size),
        )

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Sample]:
        for index in range(self.count):
            yield self[index]

    @staticmethod
    def image_id(index: int) -> str:
        """The id of image ``index`` (``"composite-00017"``); its file name adds ``.png``.

        Examples:
            >>> CompositeBenchmark.image_id(17)
            'composite-00017'
        """
        return f"composite-{index:05d}"

    # --- ground truth export ------------------------------------------------------------

    def to_coco(self) -> dict:
        """The ground truth in COCO format.

        ``images``: ``id`` (index + 1; COCO ids start at 1), ``file_name``
        (``"composite-00017.png"``), ``width``, ``height``. ``annotations``: one per object,
        ``id`` (from 1), ``image_id``, ``category_id`` (the class index in
        ``class_names``), ``bbox`` ``[x, y, w, h]`` (``x = x0``, ``w = x1 - x0``), ``area``
        ``w * h`` (the whole pasted rectangle), ``iscrowd`` 0. ``categories``: every
        object class, ``id`` = class index, ``name`` = class name. No pixels are rendered.

        Examples:
            >>> from torchvision.models import MobileNet_V2_Weights
            >>> names = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
            >>> coco = CompositeBenchmark(3, names).to_coco()
            >>> len(coco["images"]), coco["images"][0]["file_name"]
            (3, 'composite-00000.png')
        """
        images, annotations = [], []
        for index in range(self.count):
            layout = self.layout(index)
            images.append(
                {
                    "id": index + 1,
                    "file_name": f"{self.image_id(index)}.png",
                    "width": self.size,
                    "height": self.size,
                }
            )
            for obj, (x0, y0, x1, y1) in zip(layout.objects, layout.boxes, strict=True):
                width, height = x1 - x0, y1 - y0
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": index + 1,
                        "category_id": self.object_classes[obj.key],
                        "bbox": [float(x0), float(y0), float(width), float(height)],
                        "area": float(width * height),
                        "iscrowd": 0,
                    }
                )
        categories = [
            {
                "id": self.object_classes[obj.key],
                "name": self.class_names[self.object_classes[obj.key]],
                "supercategory": obj.key,
            }
            for obj in OBJECTS
        ]
        return {
            "info": {
                "description": f"axiomcam composite benchmark, {self.description}, size {self.size}"
            },
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }

    def write_coco(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_coco` as JSON to ``path`` (parent folders are created).

        Returns:
            the path written.

        Examples:
            >>> import tempfile, os
            >>> from torchvision.models import MobileNet_V2_Weights
            >>> names = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
            >>> path = os.path.join(tempfile.mkdtemp(), "gt.json")
            >>> CompositeBenchmark(2, names).write_coco(path).name
            'gt.json'
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.to_coco(), indent=1), encoding="utf-8")
        return target

    def class_folder(self, label: int) -> str:
        """The folder name :meth:`save_images` uses for a class: its name with underscores.

        The index itself when the name is not a safe folder name or names several classes.

        Examples:
            >>> CompositeBenchmark(1, ["tabby", "Egyptian cat", "espresso", "moped",
            ...                        "tripod", "space shuttle"]).class_folder(1)
            'Egyptian_cat'
        """
        name = self.class_names[label]
        unique = sum(normalise_name(n) == normalise_name(name) for n in self.class_names) == 1
        safe = (
            unique and name.strip() and not any(c in name for c in '/\\:*?"<>|') and name[0] != "."
        )
        return name.replace(" ", "_") if safe else str(label)

    def save_images(
        self, folder: str | os.PathLike[str], *, class_folders: bool = True
    ) -> list[Path]:
        """Write every image as a PNG named by its COCO ``file_name``.

        Args:
            folder: where to write (created if needed).
            class_folders: put each image in a subfolder named after its label
                (:meth:`class_folder`, e.g. ``Egyptian_cat/composite-00017.png``), so that
                :class:`~axiomcam.data.ImageFolder` reads the labels back (boxes are
                matched by base name); ``False`` writes a flat folder (labels come back as
                ``None``).

        Returns:
            the paths written, in index order.

        Examples:
            >>> import tempfile
            >>> from torchvision.models import MobileNet_V2_Weights
            >>> names = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
            >>> paths = CompositeBenchmark(2, names, size=32).save_images(tempfile.mkdtemp())
            >>> [path.suffix for path in paths]
            ['.png', '.png']
        """
        root = Path(folder)
        written = []
        for sample in self:
            directory = root / self.class_folder(sample.label) if class_folders else root
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"{sample.id}.png"
            sample.image.save(path)
            written.append(path)
        return written
