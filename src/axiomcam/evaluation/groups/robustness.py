"""The ``robustness`` group: how much a method's map moves under small random noise of the
input (:mod:`axiomcam.metrics.robustness`, the Quantus 0.6 definitions): max-sensitivity
and average sensitivity (Yeh et al. 2019), and the local Lipschitz estimate
(Alvarez-Melis & Jaakkola 2018).

Per image and method: ``N`` uniform copies (``robustness_samples``, each value moved by up
to ``robustness_radius`` in the network's normalised units) give both sensitivities, and
``N`` Gaussian copies (``lipschitz_std``) the Lipschitz estimate: ``2 N + 1``
explanations, so ``evaluate``'s defaults leave it out (:mod:`axiomcam.evaluation.costs`).
The noise is drawn from a generator seeded with the run's seed and the batch's image ids.
"""

from __future__ import annotations

import math
import zlib

from ...support import check_positive_int
from ..costs import Passes
from .base import Measurement, Metric, MetricGroup, Parameter, check_number_in

#: noisy copies per image, for each kind of noise (Quantus: 200)
SAMPLES = Parameter("robustness_samples", 10, check_positive_int, option=False)
#: half-width of the uniform noise, in the inputs' normalised units (Quantus: 0.2)
RADIUS = Parameter("robustness_radius", 0.2, check_number_in(0, math.inf, above_low=True),
                   option=False)
#: standard deviation of the Gaussian noise of the Lipschitz estimate (Quantus: 0.1)
STD = Parameter("lipschitz_std", 0.1, check_number_in(0, math.inf, above_low=True),
                option=False)


def compute(measurement: Measurement) -> None:
    """Both sensitivities from one set of uniform copies; the estimate from Gaussian ones."""
    import torch

    from ...methods import create
    from ...metrics.robustness import gaussian_noise, robustness_ratios, uniform_noise

    parameters = measurement.parameters
    samples = parameters[SAMPLES.name]
    inputs, targets = measurement.inputs, measurement.targets
    generator = torch.Generator().manual_seed(
        zlib.crc32(" ".join(measurement.ids).encode()) ^ measurement.seed)
    copies = max(1, int(measurement.forward_options["batch_size"]) // len(inputs))
    with create(measurement.method, measurement.model, measurement.target_layer,
                progress=False) as explainer:
        def explain(batch: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
            return explainer(batch, classes).maps

        uniform = uniform_noise(inputs, samples, parameters[RADIUS.name], generator)
        sensitivity = robustness_ratios(explain, inputs, targets, uniform, copies=copies)
        gaussian = gaussian_noise(inputs, samples, parameters[STD.name], generator)
        lipschitz = robustness_ratios(explain, inputs, targets, gaussian, lipschitz=True,
                                      copies=copies)
    # the ratio to ||map|| is undefined for an all-zero map (the metric function then gives
    # the absolute change, on another scale): such an image gets no sensitivity row
    defined = measurement.maps.flatten(1).abs().amax(dim=1).cpu() > 0
    images = [index for index, keep in enumerate(defined.tolist()) if keep]
    measurement.add("max_sensitivity", sensitivity.amax(dim=0)[defined], images)
    measurement.add("avg_sensitivity", sensitivity.mean(dim=0)[defined], images)
    measurement.add("local_lipschitz", lipschitz.amax(dim=0))


GROUP = MetricGroup(
    name="robustness",
    title="the robustness to noise",
    metrics=(
        Metric("max_sensitivity",
               "max over 10 noisy copies (each input value moved by U(-0.2, 0.2)) of "
               "||map' - map|| / ||map|| (Yeh et al. 2019, as Quantus; no row where the "
               "map is all zero)", "lower"),
        Metric("avg_sensitivity",
               "mean over the same copies of ||map' - map|| / ||map|| (Yeh et al. 2019, "
               "as Quantus)", "lower"),
        Metric("local_lipschitz",
               "max over 10 copies with Gaussian noise (std 0.1) of ||map' - map|| / "
               "||x' - x|| (Alvarez-Melis & Jaakkola 2018, as Quantus)", "lower"),
    ),
    compute=compute,
    cost="2 N + 1 explanations per image and method (N = robustness_samples, 10)",
    parameters=(SAMPLES, RADIUS, STD),
    passes=lambda parameters: Passes(explanations=2 * parameters[SAMPLES.name] + 1),
)
