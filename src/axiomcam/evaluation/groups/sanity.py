"""The ``sanity`` group: cascading randomisation (Adebayo et al., NeurIPS 2018) on the
run's first ``sanity_images`` images: the map's Spearman correlation with the maps of the
model randomised from the top, block after block.
"""

from __future__ import annotations

from ..costs import Passes
from .base import (
    Curve,
    Measurement,
    Metric,
    MetricGroup,
    Needs,
    Parameter,
    check_count,
    check_optional_count,
)

#: how many of the run's first images get the check (0: none)
IMAGES = Parameter("sanity_images", 8, check_count)
#: randomise only the first ``sanity_steps`` blocks from the top (``None``: all)
STEPS = Parameter("sanity_steps", None, check_optional_count)


def compute(measurement: Measurement) -> None:
    """The per-step correlations (the curve), their mean, and the layers randomised."""
    from ...metrics import cascading_randomization

    check = cascading_randomization(
        measurement.model, measurement.inputs, measurement.method, measurement.targets,
        target_layer=measurement.target_layer, max_steps=measurement.parameters[STEPS.name],
        seed=measurement.seed, batch_size=measurement.batch_size, progress=False)
    measurement.record(list(check.layers))
    measurement.add("sanity_spearman", check.correlations.mean(dim=1))
    measurement.add_curve("sanity", list(range(1, len(check.layers) + 1)), check.correlations)


GROUP = MetricGroup(
    name="sanity",
    title="the sanity check",
    metrics=(
        Metric("sanity_spearman",
               "Spearman correlation of the map with the maps of the cascadingly randomised "
               "model, mean over the steps (Adebayo et al. 2018)", "lower"),
    ),
    compute=compute,
    cost="one explanation per randomisation step (up to one per block of the network), "
         "per image and method",
    curves=(Curve("sanity", "randomisation step (layers randomised from the top)"),),
    needs=Needs(first_images=IMAGES.name),
    parameters=(IMAGES, STEPS),
    details="sanity_layers",
    passes=lambda parameters: Passes(explanations=parameters[STEPS.name])
    if parameters[STEPS.name] is not None else Passes(explanations_per_block=1),
)
