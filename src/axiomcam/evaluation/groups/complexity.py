"""The ``complexity`` group: how concentrated each map is (Quantus's complexity
metrics): the Gini index of its values, its entropy, and how many pixels it lights.
"""

from __future__ import annotations

from ..costs import Passes
from .base import Measurement, Metric, MetricGroup, Parameter, check_number_in

#: the share of its maximum above which a pixel counts for ``effective_complexity``
EFFECTIVE_THRESHOLD = Parameter("effective_complexity_threshold", 1e-5, check_number_in(0, 1),
                                option=False)


def compute(measurement: Measurement) -> None:
    """Sparseness, complexity and effective complexity of each map."""
    from ...metrics import complexity, effective_complexity, sparseness

    maps = measurement.maps
    measurement.add("sparseness", sparseness(maps))
    measurement.add("complexity", complexity(maps))
    measurement.add("effective_complexity", effective_complexity(
        maps, threshold=measurement.parameters[EFFECTIVE_THRESHOLD.name]))


GROUP = MetricGroup(
    name="complexity",
    title="map complexity",
    metrics=(
        Metric("sparseness",
               "Gini index of the map's values, 0 uniform to 1 - 1/n one pixel "
               "(Chalasani et al. 2020)", "higher"),
        Metric("complexity",
               "entropy (nats) of the map as a distribution over its pixels, 0 one pixel to "
               "log n uniform (Bhatt et al. 2020)", "lower"),
        Metric("effective_complexity",
               f"pixels above {EFFECTIVE_THRESHOLD.default:g} of the map's maximum "
               "(Nguyen & Martinez 2020)", "lower"),
    ),
    compute=compute,
    cost="no forward pass: arithmetic on the maps",
    parameters=(EFFECTIVE_THRESHOLD,),
    passes=lambda parameters: Passes(),
)
