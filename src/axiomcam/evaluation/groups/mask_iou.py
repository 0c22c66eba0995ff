"""The ``mask_iou`` group: the map cut into a mask, compared with the true mask of the
explained class (weakly supervised segmentation), on images with a known label and a true
mask of it (the composite benchmark's silhouettes; ``--masks`` for a folder or CSV).
"""

from __future__ import annotations

from ..costs import Passes
from .base import Measurement, Metric, MetricGroup, Needs, Parameter, check_number_in

#: the share of its maximum at which the map is cut for ``mask_iou``
MASK_FRACTION = Parameter("mask_fraction", 0.5, check_number_in(0, 1), option=False)
#: the cuts ``mask_iou_best`` tries: 5%, 10%, ..., 95% of the maximum
BEST_FRACTIONS = tuple(step / 20 for step in range(1, 20))


def compute(measurement: Measurement) -> None:
    """The IoU of the map's mask (at a fraction of its maximum, at Otsu's threshold, at the
    best fraction) with the union of the label's true masks."""
    import torch

    from ...metrics import map_to_mask, mask_iou

    maps = measurement.maps
    truth = torch.stack(measurement.masks).to(maps.device)
    fraction = measurement.parameters[MASK_FRACTION.name]
    measurement.add("mask_iou", mask_iou(map_to_mask(maps, "fraction", fraction), truth))
    measurement.add("mask_iou_otsu", mask_iou(map_to_mask(maps, "otsu"), truth))
    best = torch.stack([mask_iou(map_to_mask(maps, "fraction", value), truth)
                        for value in BEST_FRACTIONS]).amax(dim=0)
    measurement.add("mask_iou_best", best)


GROUP = MetricGroup(
    name="mask_iou",
    title="mask IoU",
    metrics=(
        Metric("mask_iou",
               f"IoU of map >= {MASK_FRACTION.default:.0%} of its maximum with the true mask "
               "of the class", "higher"),
        Metric("mask_iou_otsu",
               "IoU of map > Otsu's threshold with the true mask of the class", "higher"),
        Metric("mask_iou_best",
               "the best IoU over cuts at 5%, 10%, ..., 95% of the maximum (an oracle "
               "threshold per image: an upper bound)", "higher"),
    ),
    compute=compute,
    cost="no forward pass: arithmetic on the maps",
    passes=lambda parameters: Passes(),
    needs=Needs(label_masks=True),
    parameters=(MASK_FRACTION,),
    unavailable="no image has a label and a true mask of that class (the composite benchmark "
                "has them; a folder or CSV needs --masks FILE|FOLDER)",
)
