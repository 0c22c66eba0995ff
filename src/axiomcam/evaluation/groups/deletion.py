"""The ``deletion`` group: deletion and insertion curves and their areas (RISE, Petsiuk
et al., BMVC 2018). A group of its own for its cost: ``2 (steps + 1)`` forward passes per
image and method.
"""

from __future__ import annotations

from ...support import check_positive_int
from ..costs import Passes
from .base import Curve, Measurement, Metric, MetricGroup, Parameter

#: points of the deletion and insertion curves, after the first
STEPS = Parameter("deletion_steps", 50, check_positive_int)


def compute(measurement: Measurement) -> None:
    """The deletion and insertion AUCs, and their curves."""
    from ...metrics import deletion_insertion

    curves = deletion_insertion(measurement.model, measurement.inputs, measurement.maps,
                                measurement.targets, steps=measurement.parameters[STEPS.name],
                                **measurement.forward_options)
    measurement.add("deletion_auc", curves.deletion_auc)
    measurement.add("insertion_auc", curves.insertion_auc)
    fractions = curves.fractions.tolist()
    measurement.add_curve("deletion", fractions, curves.deletion)
    measurement.add_curve("insertion", fractions, curves.insertion)


GROUP = MetricGroup(
    name="deletion",
    title="deletion and insertion",
    metrics=(
        Metric("deletion_auc",
               "area under p_c as the most salient pixels are deleted (RISE)", "lower"),
        Metric("insertion_auc",
               "area under p_c as the most salient pixels are revealed over a blurred copy "
               "(RISE)", "higher"),
    ),
    compute=compute,
    cost="2 (deletion_steps + 1) forward passes per image and method",
    curves=(Curve("deletion", "fraction of pixels deleted"),
            Curve("insertion", "fraction of pixels inserted")),
    derived=(
        Metric("insertion_minus_deletion",
               "insertion AUC - deletion AUC of the same image (RISE): high when revealing "
               "the salient pixels restores the class quickly and deleting them removes it "
               "quickly", "higher"),
    ),
    parameters=(STEPS,),
    passes=lambda parameters: Passes(whole=2 * (parameters[STEPS.name] + 1)),
)
