"""The ``faithfulness_correlation`` group: Quantus' perturbation metrics of faithfulness,
faithfulness correlation (Bhatt et al., IJCAI 2020), monotonicity correlation (Nguyen &
Martinez, 2020) and IROF (Rieger & Hansen, 2020), in :mod:`axiomcam.metrics.correlation`.

Each metric perturbs every image about a hundred times (``runs``, ``steps * samples``
and the superpixels), so ``evaluate``'s defaults leave the group out
(:mod:`axiomcam.evaluation.costs`): it runs when named or with ``include_expensive=True``.
The random draws are seeded by the run's seed.
"""

from __future__ import annotations

from ...support import check_positive_int
from ..costs import Passes
from .base import Measurement, Metric, MetricGroup, Parameter

#: pixels per random subset of the faithfulness correlation (Quantus' default)
SUBSET_SIZE = Parameter("correlation_subset_size", 224, check_positive_int, option=False)
#: random subsets per image of the faithfulness correlation (Quantus' default)
RUNS = Parameter("correlation_runs", 100, check_positive_int, option=False)
#: groups of pixels of the monotonicity correlation
STEPS = Parameter("monotonicity_steps", 32, check_positive_int, option=False)
#: perturbations per group of the monotonicity correlation
SAMPLES = Parameter("monotonicity_samples", 4, check_positive_int, option=False)
#: SLIC's target number of superpixels of IROF (scikit-image's default, Quantus' choice)
SEGMENTS = Parameter("irof_segments", 100, check_positive_int, option=False)


def compute(measurement: Measurement) -> None:
    """The three correlations / areas of one method's maps."""
    from ...metrics import faithfulness_correlation, irof, monotonicity_correlation

    model, inputs = measurement.model, measurement.inputs
    maps, targets = measurement.maps, measurement.targets
    parameters, options = measurement.parameters, measurement.forward_options
    measurement.add("faithfulness_pearson", faithfulness_correlation(
        model, inputs, maps, targets, subset_size=parameters[SUBSET_SIZE.name],
        runs=parameters[RUNS.name], seed=measurement.seed, **options))
    measurement.add("monotonicity_spearman", monotonicity_correlation(
        model, inputs, maps, targets, steps=parameters[STEPS.name],
        samples=parameters[SAMPLES.name], seed=measurement.seed, **options))
    measurement.add("irof_aoc", irof(model, inputs, maps, targets,
                                     n_segments=parameters[SEGMENTS.name], **options).aoc)


def passes(parameters: dict) -> Passes:
    """The original image once per metric, then every perturbed copy."""
    return Passes(whole=3 + parameters[RUNS.name]
                  + parameters[STEPS.name] * parameters[SAMPLES.name]
                  + parameters[SEGMENTS.name])


GROUP = MetricGroup(
    name="faithfulness_correlation",
    title="the faithfulness correlations",
    metrics=(
        Metric("faithfulness_pearson",
               f"Pearson correlation, over {RUNS.default} random subsets of "
               f"{SUBSET_SIZE.default} pixels, of the map's sum on the subset with the drop of "
               "p_c when the subset is set to 0 (Bhatt et al. 2020; Quantus' "
               "FaithfulnessCorrelation)", "higher"),
        Metric("monotonicity_spearman",
               f"Spearman correlation, over {STEPS.default} groups of pixels of increasing "
               "relevance, of the map's sum on the group with the mean squared change of p_c "
               f"when the group is set to U(0, 1) values ({SAMPLES.default} draws; Nguyen & "
               "Martinez 2020; Quantus' MonotonicityCorrelation)", "higher"),
        Metric("irof_aoc",
               "area over the curve of p_c / p_c(x) as the SLIC superpixels (about "
               f"{SEGMENTS.default}) are set to the image's mean colour in decreasing mean "
               "relevance, on [0, 1] (IROF, Rieger & Hansen 2020)", "higher"),
    ),
    compute=compute,
    cost="3 + correlation_runs + monotonicity_steps * monotonicity_samples + about "
         "irof_segments forward passes per image and method (331 by default)",
    parameters=(SUBSET_SIZE, RUNS, STEPS, SAMPLES, SEGMENTS),
    passes=passes,
)
