"""The ``road`` group: the probability after removing the most (MoRF) or least (LeRF)
relevant pixels with noisy linear imputation (ROAD, Rong et al., ICML 2022), and their
combination (pytorch-grad-cam's ROADCombined).
"""

from __future__ import annotations

from typing import Any

from ..costs import Passes
from .base import Curve, Measurement, Metric, MetricGroup, Parameter


def check_road_percentages(value: Any, name: str) -> list[float]:
    """ROAD's percentages checked by :func:`axiomcam.metrics.check_percentages`, as a list
    (how the configuration stores them)."""
    from ...metrics import check_percentages

    return list(check_percentages(value, name))


#: the percentages of pixels ROAD removes
PERCENTAGES = Parameter("road_percentages", (10, 30, 50, 70, 90), check_road_percentages)


def compute(measurement: Measurement) -> None:
    """MoRF and LeRF probabilities per percentage (the curves) and their means."""
    from ...metrics import road

    result = road(measurement.model, measurement.inputs, measurement.maps,
                  measurement.targets, percentages=tuple(measurement.parameters[PERCENTAGES.name]),
                  seed=measurement.seed, **measurement.forward_options)
    xs = [float(p) for p in result.percentages]
    for name, probabilities in (("road_morf", result.morf), ("road_lerf", result.lerf)):
        measurement.add(name, probabilities.mean(dim=1))
        measurement.add_curve(name, xs, probabilities)
    measurement.add("road_combined", result.combined)


GROUP = MetricGroup(
    name="road",
    title="ROAD",
    metrics=(
        Metric("road_morf",
               "p_c after removing the most relevant p% (noisy linear imputation), mean over "
               "the percentages (ROAD MoRF)", "lower"),
        Metric("road_lerf", "p_c after removing the least relevant p%, mean over the "
               "percentages (ROAD LeRF)", "higher"),
        Metric("road_combined", "(road_lerf - road_morf) / 2 (pytorch-grad-cam's "
               "ROADCombined; p_c by the model's head)", "higher"),
    ),
    compute=compute,
    cost="two forward passes (MoRF and LeRF) per percentage of road_percentages, per "
         "image and method",
    curves=(Curve("road_morf", "percentage removed (most relevant first)"),
            Curve("road_lerf", "percentage removed (least relevant first)")),
    parameters=(PERCENTAGES,),
    passes=lambda parameters: Passes(whole=2 * len(parameters[PERCENTAGES.name]),
                                     imputations=2 * len(parameters[PERCENTAGES.name])),
)
