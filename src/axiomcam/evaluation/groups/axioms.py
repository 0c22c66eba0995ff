"""The ``axioms`` group: XGrad-CAM's conservation and sensitivity axioms as per-image
errors (Fu et al., BMVC 2020), for methods with channel weights.

The layer is probed once per batch (:class:`~axiomcam.metrics.AxiomProbe`: activations,
gradients and the ``K`` channel-ablated scores) and the probe serves every method.
"""

from __future__ import annotations

from ..costs import Passes
from .base import Measurement, Metric, MetricGroup, Needs


def compute(measurement: Measurement) -> None:
    """The axiom errors of the method's maps, from the batch's probe."""
    errors = measurement.probe.errors(measurement.explanation)
    for metric in GROUP.metric_names():
        measurement.add(metric, getattr(errors, metric))


GROUP = MetricGroup(
    name="axioms",
    title="the axioms",
    metrics=(
        Metric("conservation_error",
               "|y^c - sum_ij L^c_ij| / |y^c|, L^c = sum_k w_k A^k before ReLU "
               "(XGrad-CAM's conservation axiom)", "lower"),
        Metric("sensitivity_error",
               "sum_k |dS_k - w_k sum_ij A^k_ij| / sum_k |dS_k|, dS_k the score drop when "
               "channel k is zeroed (XGrad-CAM's sensitivity axiom)", "lower"),
        Metric("sensitivity_correlation",
               "Pearson correlation over channels of dS_k and w_k sum_ij A^k_ij", "higher"),
        Metric("bias_share",
               "|y^c - sum G*A| / |y^c|: the part of the score from biases after the layer, "
               "which no map sum_k w_k A^k can conserve (a property of the network)", ""),
    ),
    compute=compute,
    cost="one probe of the layer per batch, shared by every method: a forward and a "
         "backward pass, then K passes of the network after the layer (K channels)",
    needs=Needs(channel_weights=True),
    unavailable="the axioms apply to maps sum_k w_k A^k with channel weights",
    row_label="axiom",
    passes=lambda parameters: Passes(whole=2, after_layer_per_channel=1, shared=True),
)
