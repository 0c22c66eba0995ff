"""The ``faithfulness`` group: Average Drop and Increase in Confidence (Chattopadhay et
al., WACV 2018), the confidence change of the map-multiplied image (pytorch-grad-cam) and
the drop after removing the most salient pixels.
"""

from __future__ import annotations

from ..costs import Passes
from .base import Measurement, Metric, MetricGroup, Parameter, check_number_in, percent

#: the share of the most salient pixels the removal drop replaces, in %
TOP_REMOVAL = Parameter("top_removal_percent", 20.0, check_number_in(0, 100), option=False)


def compute(measurement: Measurement) -> None:
    """Average Drop and Increase in Confidence (the image masked by its map), then the top
    removal drop."""
    from ...metrics import confidence_change, top_removal_drop

    model, inputs = measurement.model, measurement.inputs
    maps, targets = measurement.maps, measurement.targets
    options = measurement.forward_options
    change = confidence_change(model, inputs, maps, targets, **options)
    measurement.add("average_drop", change.drop)  # already in %
    measurement.add("increase_in_confidence", percent(change.increase))
    measurement.add("confidence_change", change.change)
    drop = top_removal_drop(model, inputs, maps, targets,
                            percent=measurement.parameters[TOP_REMOVAL.name], **options)
    measurement.add("top_removal_drop", drop)


GROUP = MetricGroup(
    name="faithfulness",
    title="the faithfulness metrics",
    metrics=(
        Metric("average_drop",
               "100 max(0, Y - O) / Y, Y = p_c(x), O = p_c(x * map) (Grad-CAM++'s Average "
               "Drop %, per image)", "lower"),
        Metric("increase_in_confidence",
               "100 if O > Y else 0 (mean: Grad-CAM++'s Increase in Confidence %)", "higher"),
        Metric("confidence_change",
               "O - Y = p_c(x * map) - p_c(x) (pytorch-grad-cam's "
               "CamMultImageConfidenceChange; p_c by the model's head)", "higher"),
        Metric("top_removal_drop",
               f"(P - P') / P after replacing the {TOP_REMOVAL.default:g}% most salient "
               "pixels by the image mean", "higher", listed_after="insertion_auc"),
    ),
    compute=compute,
    cost="four forward passes per image and method (each of the two measures also passes "
         "the image itself)",
    parameters=(TOP_REMOVAL,),
    passes=lambda parameters: Passes(whole=4),
)
