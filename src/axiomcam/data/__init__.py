"""Data sets for evaluating explanations: image folders, CSV lists, VOC/COCO boxes, and a
built-in localization benchmark with exact ground truth.

All of them yield :class:`Sample` objects (an RGB image at its original resolution, its
label, its boxes); bad files are reported in ``dataset.problems`` and skipped.

- :mod:`.dataset`: :class:`Sample`, :class:`Problem`, :class:`Dataset`, :func:`class_index`;
- :mod:`.files`: :class:`ImageFolder`, :class:`CsvImages`;
- :mod:`.boxes`: :func:`read_voc_boxes`, :func:`read_coco_boxes`;
- :mod:`.masks`: :func:`read_coco_masks`, :func:`read_mask_folder`, :class:`MaskedDataset`,
  COCO RLE (:func:`encode_rle`, :func:`decode_rle`);
- :mod:`.silhouettes`: the composite objects' silhouettes;
- :mod:`.composite`: :class:`CompositeBenchmark`, the built-in benchmark;
- :mod:`.specs`: :func:`open_dataset`, a data set named by a short text.

Examples:
    >>> from torchvision.models import MobileNet_V2_Weights
    >>> from axiomcam.data import open_dataset
    >>> names = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
    >>> sample = next(iter(open_dataset("composite:2", names)))
    >>> sample.image.size, sample.boxes.shape[1]
    ((224, 224), 4)
"""

from __future__ import annotations

from .boxes import BoxTable, read_coco_boxes, read_voc_boxes
from .composite import OBJECTS, CompositeBenchmark, CompositeLayout, CompositeObject
from .dataset import Dataset, Problem, Sample, class_index
from .files import IMAGE_EXTENSIONS, CsvImages, ImageFolder
from .masks import (
    MaskedDataset,
    MaskTable,
    decode_rle,
    encode_rle,
    read_coco_masks,
    read_mask_folder,
)
from .specs import open_dataset

__all__ = [
    "IMAGE_EXTENSIONS",
    "OBJECTS",
    "BoxTable",
    "CompositeBenchmark",
    "CompositeLayout",
    "CompositeObject",
    "CsvImages",
    "Dataset",
    "ImageFolder",
    "MaskTable",
    "MaskedDataset",
    "Problem",
    "Sample",
    "class_index",
    "decode_rle",
    "encode_rle",
    "open_dataset",
    "read_coco_boxes",
    "read_coco_masks",
    "read_mask_folder",
    "read_voc_boxes",
]
