"""Explain a 3D (video) CNN: maps over time and space.

A random-weight torchvision R3D-18 (3D ResNet, Kinetics-400's 400 classes) sees a short clip
made from the bundled ``chelsea`` photo: 8 frames of a square crop sliding from its left
edge to its right edge (a camera pan), each 112 x 112.  The input is ``(1, 3, 8, 112, 112)``
(batch, colour, time, height, width); Grad-CAM and XGrad-CAM at ``layer3``, whose output
is ``(1, 256, 2, 14, 14)`` (time and space downsampled), give ``raw`` maps ``(1, 2, 14, 14)``
and ``maps`` ``(1, 8, 112, 112)``: one map per frame, upsampled trilinearly.  At ``layer4``
the 8 frames shrink to a single time step (every frame would get the same map), and there,
right before global pooling and the linear layer, the two methods give the same map.

The script writes one PNG: the clip's frames in the first row, each method's overlays,
frame by frame, in the next rows.

Run (a few seconds on a CPU; nothing is downloaded)::

    python examples/video_3d.py              # -> examples/output/video_3d.png
    python examples/video_3d.py out/ --frames 16 --layer layer2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torchvision
import torchvision.transforms.functional as TF
from PIL import Image

import axiomcam
from axiomcam.figures import method_title, save_grid
from axiomcam.images import overlay, sample_image

METHODS = ("gradcam", "xgradcam")
LAYER = "layer3"
FRAME_SIZE = 112  # R3D-18's training resolution
# the normalisation of torchvision's Kinetics-400 video models
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


def panning_clip(image: Image.Image, frames: int) -> tuple[list[Image.Image], torch.Tensor]:
    """``frames`` square crops of ``image`` sliding evenly from its left (or top) edge to the
    other, each resized to 112 x 112: the frames, and the ``(1, 3, T, 112, 112)`` clip."""
    side = min(image.size)
    travel_x, travel_y = image.width - side, image.height - side
    pictures = []
    for step in range(frames):
        fraction = step / max(frames - 1, 1)
        left, top = round(fraction * travel_x), round(fraction * travel_y)
        crop = image.crop((left, top, left + side, top + side))
        pictures.append(crop.resize((FRAME_SIZE, FRAME_SIZE), Image.Resampling.BILINEAR))
    tensors = [TF.normalize(TF.to_tensor(p), KINETICS_MEAN, KINETICS_STD) for p in pictures]
    return pictures, torch.stack(tensors, dim=1)[None]  # time is axis 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", default=Path(__file__).parent / "output",
                        type=Path, help="where the PNG goes (default: examples/output/)")
    parser.add_argument("--frames", type=int, default=8, help="frames in the clip")
    parser.add_argument("--layer", default=LAYER,
                        help=f"the layer to explain (default: {LAYER})")
    arguments = parser.parse_args()
    if arguments.frames < 2:
        parser.error(f"--frames must be at least 2, got {arguments.frames}")
    arguments.out_dir.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(0)
    model = torchvision.models.video.r3d_18().eval()
    frames, clip = panning_clip(sample_image("chelsea"), arguments.frames)
    print(f"R3D-18 (random weights), clip {tuple(clip.shape)} (batch, colour, time, height, "
          "width)")

    pictures = [frames]
    titles = [[f"frame {t}" for t in range(len(frames))]]
    for method in METHODS:
        exp = axiomcam.explain(model, clip, method=method, target_layer=arguments.layer)
        pictures.append([overlay(frame, exp.maps[0, t]) for t, frame in enumerate(frames)])
        titles.append([f"{method_title(method)}, frame {t}" for t in range(len(frames))])
        print(f"{method_title(method)} at {exp.target_layer!r}: class {int(exp.targets[0])}, "
              f"raw {tuple(exp.raw.shape)} (batch, time, height, width), maps "
              f"{tuple(exp.maps.shape)}")

    out_path = arguments.out_dir / "video_3d.png"
    save_grid(out_path, pictures, titles, cell_inches=1.8)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
