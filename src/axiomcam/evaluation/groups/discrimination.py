"""The ``discrimination`` group: how a map splits its mass between the explained class's
boxes and the other classes' boxes, on images with boxes of two classes or more.
"""

from __future__ import annotations

from ..costs import Passes
from .base import Measurement, Metric, MetricGroup, Needs


def compute(measurement: Measurement) -> None:
    """The map's mass in the label's boxes, in the other boxes, and the share."""
    from ...metrics import class_discrimination

    result = class_discrimination(measurement.maps, measurement.boxes, measurement.other_boxes)
    measurement.add("discrimination_right", result.right)
    measurement.add("discrimination_wrong", result.wrong)
    measurement.add("discrimination_share", result.share)


GROUP = MetricGroup(
    name="discrimination",
    title="class discrimination",
    metrics=(
        Metric("discrimination_right",
               "share of the map's mass in the explained class's boxes (two-class images)",
               "higher"),
        Metric("discrimination_wrong",
               "share of the map's mass in the other class's boxes", "lower"),
        Metric("discrimination_share", "right / (right + wrong)", "higher"),
    ),
    compute=compute,
    cost="no forward pass: arithmetic on the maps",
    needs=Needs(other_boxes=True),
    unavailable="no image has boxes of its label and of another class (two-object images)",
    passes=lambda parameters: Passes(),
)
