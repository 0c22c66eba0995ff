"""A data set with a planted shortcut: each class on its own background, for the data-set
bias audit (``axiomcam audit``; the Grad-CAM paper's nurse/doctor experiment).

Each image pastes one of the composite benchmark's objects (:data:`axiomcam.data.OBJECTS`,
the five real photographs' crops) on a textured background, with the object's exact box.
Five backgrounds (:data:`BACKGROUNDS`: scikit-image's grass, gravel and brick photographs,
coloured five ways) are paired with the five classes in order. The ``pairing`` decides
which background an image of class ``k`` gets:

- ``"biased"``: always background ``k``: the background alone names the class, a shortcut
  a classifier trained on it may learn instead of the object;
- ``"swapped"``: always background ``k + 1`` (mod 5), another class's: a model that learned
  the shortcut names the other class;
- ``"balanced"``: a background drawn uniformly, independent of the class (the control).

Image ``i`` is class ``i mod 5`` (balanced classes) and is drawn from
``numpy.random.default_rng((seed, i))`` alone: a random square of the texture (half to all
of it) resized to the image, flipped or rotated, brightness times 0.85..1.15; the object's
longer side a ``scale`` fraction of the image, pasted fully inside at a random position.

Examples:
    >>> from torchvision.models import MobileNet_V2_Weights
    >>> names = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
    >>> biased = BackgroundBiasSet(10, names, pairing="biased", size=64)
    >>> [biased.background_of(i) for i in (0, 5, 1)]
    ['green grass', 'green grass', 'grey gravel']
    >>> sample = biased[3]
    >>> names[sample.label] == OBJECTS[3].class_name, tuple(sample.boxes.shape)
    (True, (1, 4))
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .composite import OBJECTS
from .dataset import Dataset, Sample, class_index

__all__ = ["BACKGROUNDS", "PAIRINGS", "Background", "BackgroundBiasSet"]

#: how the backgrounds are paired with the classes (see the module's documentation)
PAIRINGS: tuple[str, ...] = ("biased", "swapped", "balanced")


@dataclass(frozen=True)
class Background:
    """A coloured texture: a grey scikit-image photograph whose black becomes ``dark`` and
    white ``light`` (linearly between).

    Examples:
        >>> BACKGROUNDS[0].texture, BACKGROUNDS[0].picture().size
        ('grass', (512, 512))
    """

    name: str
    texture: str
    dark: tuple[int, int, int]
    light: tuple[int, int, int]

    def picture(self) -> Image.Image:
        """The coloured 512 x 512 texture (RGB)."""
        return _coloured(self).copy()


#: one background per class of :data:`OBJECTS`, in order
BACKGROUNDS: tuple[Background, ...] = (
    Background("green grass", "grass", (18, 40, 8), (150, 205, 85)),
    Background("grey gravel", "gravel", (35, 32, 28), (215, 205, 190)),
    Background("red brick", "brick", (55, 22, 16), (215, 120, 90)),
    Background("blue grass", "grass", (5, 20, 60), (110, 170, 235)),
    Background("yellow gravel", "gravel", (60, 45, 5), (245, 215, 120)),
)


@functools.cache
def _coloured(background: Background) -> Image.Image:
    from skimage import data  # slow to import: only when an image is made

    grey = np.asarray(getattr(data, background.texture)(), dtype=np.float32)[..., None] / 255
    low, high = (np.asarray(c, dtype=np.float32) for c in (background.dark, background.light))
    return Image.fromarray(np.clip(np.round(low + (high - low) * grey), 0, 255).astype(np.uint8))


class BackgroundBiasSet(Dataset):
    """Images of the five composite objects, each class on a background chosen by
    ``pairing`` (see the module's documentation).

    Args:
        count: the number of images (image ``i`` is class ``i mod 5``).
        class_names: the model's class names (must include every object's class), or the
            five object classes themselves.
        pairing: one of :data:`PAIRINGS`.
        seed: a non-negative integer.
        size: the image side in pixels (at least 32).
        scale: ``(low, high)``: the object's longer side, a uniform fraction of ``size``.
        mismatch: the probability that an image shows one of the five objects drawn at
            random (maybe its own class's) instead of its class's; the image keeps its
            label and background, its box is labelled with the object shown. With a
            mismatch the object says less about the label than a biased background does,
            as in data sets whose spurious cue is the more reliable one.

    Raises:
        ValueError: a bad ``count``, ``pairing``, ``seed``, ``size`` or ``scale``, or a
            class name missing from ``class_names``.
    """

    def __init__(self, count: int, class_names: Sequence[str], *, pairing: str = "biased",
                 seed: int = 0, size: int = 224,
                 scale: tuple[float, float] = (0.3, 0.5), mismatch: float = 0.0) -> None:
        if pairing not in PAIRINGS:
            raise ValueError(f"pairing must be one of {', '.join(PAIRINGS)}, got {pairing!r}")
        for name, value, least in (("count", count, 1), ("seed", seed, 0), ("size", size, 32)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
        low, high = scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high <= 1, got {scale}")
        if isinstance(mismatch, bool) or not isinstance(mismatch, int | float) \
                or not 0 <= mismatch <= 1:
            raise ValueError(f"mismatch must be a probability in [0, 1], got {mismatch!r}")
        self.mismatch = float(mismatch)
        super().__init__(class_names, f"background-bias:{count} ({pairing}, seed {seed}, "
                                      f"size {size}, scale {low:g}..{high:g}, "
                                      f"mismatch {mismatch:g})")
        self.count, self.pairing, self.seed, self.size = count, pairing, seed, size
        self.scale = (float(low), float(high))
        self.classes = [class_index(obj.class_name, self.class_names, "background-bias")
                        for obj in OBJECTS]

    def background_of(self, index: int) -> str:
        """The name of image ``index``'s background."""
        return self._background(index, np.random.default_rng((self.seed, index))).name

    def _background(self, index: int, rng: np.random.Generator) -> Background:
        position = index % len(OBJECTS)
        choice = int(rng.integers(len(BACKGROUNDS)))  # drawn always: the same images follow
        if self.pairing == "biased":
            return BACKGROUNDS[position]
        if self.pairing == "swapped":
            return BACKGROUNDS[(position + 1) % len(BACKGROUNDS)]
        return BACKGROUNDS[choice]

    def _backdrop(self, background: Background, rng: np.random.Generator) -> Image.Image:
        """A random square of the texture, resized, turned, brightened."""
        texture = _coloured(background)
        side = int(rng.integers(texture.width // 2, texture.width + 1))
        left, upper = (int(v) for v in rng.integers(0, texture.width - side + 1, size=2))
        picture = texture.resize((self.size, self.size), Image.Resampling.BICUBIC,
                                 box=(left, upper, left + side, upper + side))
        turn = int(rng.integers(4))
        if turn:
            picture = picture.rotate(90 * turn)
        pixels = np.asarray(picture, dtype=np.float32) * float(rng.uniform(0.85, 1.15))
        return Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8))

    def __getitem__(self, index: int) -> Sample:
        """Image ``index`` with its label and its object's box."""
        if isinstance(index, bool) or not isinstance(index, int) \
                or not 0 <= index < self.count:
            raise IndexError(f"index must be an int in 0..{self.count - 1}, got {index!r}")
        rng = np.random.default_rng((self.seed, index))
        image = self._backdrop(self._background(index, rng), rng)
        # both drawn always, so that every mismatch gives the same backgrounds and places
        swap, other = float(rng.random()), int(rng.integers(len(OBJECTS)))
        shown = other if swap < self.mismatch else index % len(OBJECTS)
        obj = OBJECTS[shown]
        crop = obj.image()
        longer = max(1, round(float(rng.uniform(*self.scale)) * self.size))
        ratio = longer / max(crop.size)
        width, height = max(1, round(crop.width * ratio)), max(1, round(crop.height * ratio))
        x0 = int(rng.integers(0, self.size - width + 1))
        y0 = int(rng.integers(0, self.size - height + 1))
        image.paste(crop.resize((width, height), Image.Resampling.LANCZOS), (x0, y0))
        return Sample(id=f"{self.pairing}-{index:05d}", image=image,
                      label=self.classes[index % len(OBJECTS)],
                      boxes=torch.tensor([[x0, y0, x0 + width, y0 + height]],
                                         dtype=torch.float32),
                      box_labels=torch.tensor([self.classes[shown]]))

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Sample]:
        for index in range(self.count):
            yield self[index]
