"""Make the composite benchmark's object silhouettes, once (issue 21, item 3).

Each object of ``axiomcam.data.composite.OBJECTS`` is a rectangular crop of a scikit-image
photograph; its silhouette is the mask of the object inside that crop. The outline was set
by hand (polygons and thick lines in the crop's pixels, read off a grid drawn over each
crop), then refined by scikit-image's random walker segmentation in a band of ``band``
pixels around the hand outline (inside the band the colour edges decide; outside it the
hand outline does). Every result was looked at over its photograph and the parameters fixed
until it matched (the notes below say what each object's mask holds).

    PYTHONPATH=src python scripts/make_silhouettes.py [--preview DIR]

writes ``src/axiomcam/data/silhouettes/<key>.png`` (8-bit, 255 on the object) and, with
``--preview``, each mask over its photograph for checking by eye.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from skimage.color import rgb2lab
from skimage.segmentation import random_walker

from axiomcam.data.composite import OBJECTS

OUT = Path(__file__).resolve().parents[1] / "src" / "axiomcam" / "data" / "silhouettes"

# Hand outlines in crop pixels: "polygons" filled, "lines" (points..., width) drawn thick,
# "holes" polygons cut out; "band": random-walker refinement half-width (0: the outline as
# drawn); "beta": the random walker's edge sharpness.
OUTLINES: dict[str, dict] = {
    # the cat's head and chest; the blurred pink background at the right edge is left out
    "cat": {"polygons": [[(0, 0), (300, 0), (305, 50), (312, 100), (318, 150), (328, 190),
                          (334, 240), (330, 300), (0, 300)]], "band": 6, "beta": 130},
    # the cup, the spoon and the saucer; the wooden table in the corners is left out
    "espresso": {"polygons": [[(95, 30), (120, 8), (170, 0), (250, 0), (290, 12), (305, 40),
                               (322, 45), (335, 60), (330, 92), (365, 105), (395, 135),
                               (410, 170), (410, 245), (395, 285), (370, 320), (335, 348),
                               (300, 365), (290, 375), (60, 375), (30, 345), (8, 315),
                               (0, 290), (0, 200), (15, 165), (45, 135), (95, 110)]],
                 "band": 8, "beta": 130},
    # the motorcycle with its wheels (spokes included), mirrors and kickstand
    "moped": {"polygons": [[(0, 95), (25, 88), (45, 70), (60, 62), (150, 60), (245, 68),
                            (250, 45), (300, 28), (330, 25), (365, 35), (372, 5), (400, 0),
                            (440, 0), (448, 20), (470, 40), (468, 75), (450, 90), (455, 110),
                            (470, 150), (500, 160), (540, 172), (560, 195), (585, 235),
                            (598, 280), (592, 320), (575, 345), (545, 360), (480, 360),
                            (455, 345), (440, 320), (428, 285), (425, 255), (390, 255),
                            (380, 265), (300, 272), (255, 275), (250, 312), (232, 312),
                            (228, 275), (190, 268), (175, 285), (150, 305), (110, 312),
                            (70, 302), (40, 277), (26, 235), (33, 190), (48, 160),
                            (25, 140), (0, 130)]], "band": 3, "beta": 130},
    # the tripod only: column, head with its handle, three legs (not the camera or the man)
    "tripod": {"polygons": [[(52, 178), (90, 176), (112, 170), (112, 180), (92, 186),
                             (92, 202), (52, 202)]],
               "lines": [([(67, 85), (70, 180)], 9), ([(70, 200), (71, 350)], 7),
                         ([(62, 200), (8, 382)], 7), ([(80, 200), (178, 382)], 7),
                         ([(60, 205), (32, 360)], 6), ([(10, 357), (70, 350)], 4)],
               "band": 0, "beta": 130},
    # the orbiter, the external tank and both boosters, down to the stand
    "space shuttle": {"polygons": [[(48, 5), (55, 0), (85, 0), (90, 20), (92, 40), (100, 45),
                                    (103, 60), (103, 190), (110, 225), (108, 255), (85, 258),
                                    (60, 262), (30, 258), (2, 250), (5, 230), (20, 200),
                                    (28, 175), (28, 80), (33, 45), (40, 40), (45, 40),
                                    (48, 20)]], "band": 5, "beta": 130},
}


def hand_mask(size: tuple[int, int], outline: dict) -> np.ndarray:
    """The outline drawn as a bool mask of the crop's ``(height, width)``."""
    canvas = Image.new("L", size, 0)
    draw = ImageDraw.Draw(canvas)
    for polygon in outline.get("polygons", []):
        draw.polygon(polygon, fill=255)
    for points, width in outline.get("lines", []):
        draw.line(points, fill=255, width=width)
    for polygon in outline.get("holes", []):
        draw.polygon(polygon, fill=0)
    return np.asarray(canvas) > 127


def refined(image: np.ndarray, mask: np.ndarray, band: int, beta: float) -> np.ndarray:
    """The mask refined by the random walker inside ``band`` pixels of its edge."""
    if band == 0:
        return mask
    sure_inside = ndimage.binary_erosion(mask, iterations=band)
    sure_outside = ~ndimage.binary_dilation(mask, iterations=band)
    labels = np.zeros(mask.shape, dtype=np.int32)
    labels[sure_inside] = 1
    labels[sure_outside] = 2
    # image borders of the crop: keep what the hand said there (the crop cut the object)
    lab = rgb2lab(image / 255.0)
    walked = random_walker(lab, labels, beta=beta, mode="cg_j", channel_axis=-1) == 1
    walked = ndimage.binary_fill_holes(walked)
    # keep the largest component (stray islands of the walk are noise)
    components, count = ndimage.label(walked)
    if count > 1:
        sizes = np.bincount(components.ravel())[1:]
        walked = components == (np.argmax(sizes) + 1)
    return walked


def preview(image: Image.Image, mask: np.ndarray) -> Image.Image:
    """The photograph with the background darkened and the mask's edge in green."""
    pixels = np.asarray(image.convert("RGB")).astype(np.float32)
    pixels[~mask] *= 0.35
    edge = mask ^ ndimage.binary_erosion(mask)
    pixels[edge] = (0, 255, 0)
    return Image.fromarray(pixels.astype(np.uint8))


def main() -> None:
    """Write every silhouette (and previews when asked)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preview", type=Path, help="write each mask over its photograph here")
    arguments = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for obj in OBJECTS:
        image = obj.image().convert("RGB")
        outline = OUTLINES[obj.key]
        mask = refined(np.asarray(image), hand_mask(image.size, outline), outline["band"],
                       outline["beta"])
        name = obj.key.replace(" ", "_")
        Image.fromarray(mask.astype(np.uint8) * 255).save(OUT / f"{name}.png", optimize=True)
        print(f"{obj.key}: {mask.mean():.1%} of the crop")
        if arguments.preview is not None:
            arguments.preview.mkdir(parents=True, exist_ok=True)
            preview(image, mask).save(arguments.preview / f"{name}.png")


if __name__ == "__main__":
    main()
