"""The ``counterfactual`` group: where a method's counterfactual map (``counterfactual=True``,
the evidence *against* the class: Selvaraju et al., ICCV 2017, "Counterfactual
explanations") puts its mass on two-object images, and whether removing what it shows
makes the network more confident.

The paper's claim: the counterfactual map of one object's class lights up the *other*
object (its cat-and-dog example), and removing those regions raises the class's
confidence. Only the methods with a counterfactual form get rows (the gradient CAMs:
:data:`axiomcam.methods.registry.COUNTERFACTUAL_METHODS`); each pays one more explanation
and two forward passes per image. ``benchmarks/counterfactual.py`` measures the same on
the pretrained MobileNetV2 with intervals (``docs/applications.md``).
"""

from __future__ import annotations

from ..costs import Passes
from .base import Measurement, Metric, MetricGroup, Needs, Parameter, check_number_in

#: the share of the pixels (the counterfactual map's highest) replaced by the image's mean
#: colour in the removal check
REMOVED = Parameter("counterfactual_removed_percent", 10.0, check_number_in(0.1, 100),
                    option=False)


def compute(measurement: Measurement) -> None:
    """The counterfactual map's mass in the class's boxes and in the other class's, and
    the confidence change when its top pixels are removed."""
    from ...methods import create
    from ...metrics import class_discrimination, top_removal_drop

    with create(measurement.method, measurement.model, measurement.target_layer,
                counterfactual=True, batch_size=measurement.batch_size,
                progress=False) as explainer:
        against = explainer(measurement.inputs, measurement.targets)
    shares = class_discrimination(against.maps, measurement.boxes, measurement.other_boxes)
    measurement.add("counterfactual_own", shares.right)
    measurement.add("counterfactual_other", shares.wrong)
    measurement.add("counterfactual_other_share", 1.0 - shares.share)
    drop = top_removal_drop(measurement.model, measurement.inputs, against.maps,
                            measurement.targets, percent=measurement.parameters[REMOVED.name],
                            **measurement.forward_options)
    measurement.add("counterfactual_removal_drop", 100.0 * drop)


GROUP = MetricGroup(
    name="counterfactual",
    title="the counterfactual maps",
    metrics=(
        Metric("counterfactual_own",
               "share of the counterfactual map's mass (counterfactual=True: the evidence "
               "against the class) in the explained class's boxes (two-class images)",
               "lower"),
        Metric("counterfactual_other",
               "share of the counterfactual map's mass in the other class's boxes (the "
               "Grad-CAM paper: it should light up the other object)", "higher"),
        Metric("counterfactual_other_share",
               "other / (own + other) of the counterfactual map (0.5 for an all-zero map)",
               "higher"),
        Metric("counterfactual_removal_drop",
               "100 (P - P') / P when the counterfactual map's top 10% pixels are replaced "
               "by the image's mean colour: negative when the class's probability rises, as "
               "the Grad-CAM paper says it should", "lower"),
    ),
    compute=compute,
    cost="one counterfactual explanation and two forward passes per image, for the methods "
         "with a counterfactual form",
    needs=Needs(other_boxes=True, counterfactual=True),
    parameters=(REMOVED,),
    unavailable="no image has boxes of its label and of another class (two-object images)",
    passes=lambda parameters: Passes(whole=2, explanations=1),
)
