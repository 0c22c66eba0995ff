"""The ``localization`` group: the ILSVRC box protocol (CAM, Grad-CAM), the pointing game
and its energy form, on images with a known label and a box of that class.
"""

from __future__ import annotations

import math

from ..costs import Passes
from .base import Measurement, Metric, MetricGroup, Needs, Parameter, check_number_in, percent

#: the map is cut at this share of its maximum before the box is drawn around it
THRESHOLD = Parameter("localization_threshold", 0.15, check_number_in(0, 1), option=False)
#: the IoU from which a box counts as located
IOU_THRESHOLD = Parameter("iou_threshold", 0.5, check_number_in(0, 1), option=False)
#: how far (input pixels) the map's maximum may be from a box and still hit it
POINTING_TOLERANCE = Parameter("pointing_tolerance", 15.0, check_number_in(0, math.inf),
                               option=False)


def compute(measurement: Measurement) -> None:
    """IoU, the localization errors, the pointing game and its energy form."""
    from ...metrics import box_localization, energy_pointing_game, pointing_game

    maps, boxes, parameters = measurement.maps, measurement.boxes, measurement.parameters
    boxed = box_localization(maps, boxes, threshold=parameters[THRESHOLD.name],
                             iou_threshold=parameters[IOU_THRESHOLD.name])
    correct = boxed.correct.cpu()
    right_class = measurement.predicted == measurement.targets.cpu()  # the target: the label
    measurement.add("localization_iou", boxed.iou)
    measurement.add("localization_error", percent(~correct))
    measurement.add("top1_localization_error", percent(~(correct & right_class)))
    measurement.add("pointing_game", percent(pointing_game(
        maps, boxes, tolerance=parameters[POINTING_TOLERANCE.name]).cpu()))
    measurement.add("energy_pointing_game", energy_pointing_game(maps, boxes))


GROUP = MetricGroup(
    name="localization",
    title="box localization",
    metrics=(
        Metric("localization_iou",
               f"IoU of the box around the largest component of map >= "
               f"{THRESHOLD.default:.0%} of its maximum with the best ground-truth box of the "
               "class", "higher"),
        Metric("localization_error",
               f"0 if that IoU >= {IOU_THRESHOLD.default:g} else 100 (GT-known localization "
               "error %)", "lower"),
        Metric("top1_localization_error",
               f"0 if IoU >= {IOU_THRESHOLD.default:g} and the top-1 class is right, else 100 "
               "(top-1 localization error %)", "lower"),
        Metric("pointing_game",
               f"100 if the map's maximum is within {POINTING_TOLERANCE.default:g} px of a "
               "box of the class, else 0", "higher"),
        Metric("energy_pointing_game",
               "share of the map's mass inside the boxes of the class", "higher"),
    ),
    compute=compute,
    cost="no forward pass: arithmetic on the maps",
    needs=Needs(label_boxes=True),
    parameters=(THRESHOLD, IOU_THRESHOLD, POINTING_TOLERANCE),
    unavailable="no image has a label and a box of that class (a folder or CSV needs "
                "--boxes voc|coco FILE)",
    passes=lambda parameters: Passes(),
)
