"""The ``random_logit`` group: the map of a random other class should differ from the
map of the explained class (Sixt et al. 2020), measured by their SSIM.
"""

from __future__ import annotations

from ..costs import Passes
from .base import Measurement, Metric, MetricGroup


def compute(measurement: Measurement) -> None:
    """One more explanation per image, for a random other class, and its SSIM with the
    map of the class."""
    from ...metrics import random_logit

    logits = measurement.explanation.logits
    test = random_logit(
        measurement.model, measurement.inputs, measurement.method, measurement.targets,
        maps=measurement.maps, num_classes=None if logits is None else logits.shape[1],
        seed=measurement.seed, target_layer=measurement.target_layer,
        batch_size=measurement.batch_size, progress=False)
    measurement.add("random_logit_ssim", test.similarity)


GROUP = MetricGroup(
    name="random_logit",
    title="the random-logit test",
    metrics=(
        Metric("random_logit_ssim",
               "SSIM (7 x 7 windows) of the map with the map of a random other class "
               "(Sixt et al. 2020)", "lower"),
    ),
    compute=compute,
    cost="one more explanation per image and method (for a random other class)",
    passes=lambda parameters: Passes(explanations=1),
)
