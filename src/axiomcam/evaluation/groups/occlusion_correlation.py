"""The ``occlusion_correlation`` group: the Spearman rank correlation of a method's map
with the occlusion map of the same image and class (Zeiler & Fergus 2014), the
faithfulness measure of the Grad-CAM paper (Selvaraju et al., ICCV 2017, "Faithfulness
vs. interpretability").

The occlusion map is computed once per image and class, on the first method's turn, and
shared by every method of the batch (:attr:`Measurement.shared`). It costs ``1 + P``
forward passes per image (``P = 169`` window positions at 224 x 224), so ``evaluate``'s
defaults leave it out (:mod:`axiomcam.evaluation.costs`): it runs when named or with
``include_expensive=True``.
"""

from __future__ import annotations

import torch

from ...support import check_positive_int
from ..costs import Passes
from .base import Measurement, Metric, MetricGroup, Parameter

#: the window's side is the input's side divided by this, rounded up (32 px at 224 px);
#: the stride is half the window (:func:`axiomcam.methods.occlusion.scaled_window`)
WINDOWS = Parameter("occlusion_windows", 7, check_positive_int, option=False)


def _check_baseline(value: object, name: str) -> str:
    if value not in ("zeros", "mean", "blur"):
        raise ValueError(f"{name} must be 'zeros', 'mean' or 'blur', got {value!r}")
    return value


#: what fills a window (:func:`axiomcam.methods.occlusion.occlusion_baseline`)
BASELINE = Parameter("occlusion_baseline", "zeros", _check_baseline, option=False)


def occlusion_reference(measurement: Measurement) -> torch.Tensor:
    """``(n, *spatial)``: the signed occlusion map (mean score drop of the windows covering
    each pixel) of each measured image for its class, computed on the batch's first
    request and kept in :attr:`Measurement.shared` for the other methods."""
    from ...methods.occlusion import Occlusion, scaled_window
    from ...support import eval_mode

    key = ("occlusion", tuple(measurement.ids), tuple(measurement.targets.tolist()))
    if key not in measurement.shared:
        window, stride = scaled_window(tuple(measurement.inputs.shape[2:]),
                                       measurement.parameters[WINDOWS.name])
        occlusion = Occlusion(measurement.model, window=window, stride=stride,
                              baseline=measurement.parameters[BASELINE.name],
                              batch_size=measurement.forward_options["batch_size"],
                              progress=False)
        with eval_mode(measurement.model):
            partial = occlusion.explain_batch(measurement.inputs, measurement.targets)
        measurement.shared[key] = partial.raw[:, 0]
    return measurement.shared[key]


def compute(measurement: Measurement) -> None:
    """Spearman's rho of each map with its image's occlusion map, ties averaged."""
    from ...metrics import spearman_correlation

    reference = occlusion_reference(measurement)
    measurement.add("occlusion_spearman", spearman_correlation(measurement.maps, reference))


GROUP = MetricGroup(
    name="occlusion_correlation",
    title="the occlusion correlation",
    metrics=(
        Metric("occlusion_spearman",
               "Spearman correlation over pixels (ties averaged) of the map with the "
               "occlusion map: mean drop of the score when a window (1/7 of the side, "
               "stride 1/14, filled with zeros) covering the pixel is hidden (Zeiler & Fergus "
               "2014; the Grad-CAM paper's faithfulness)", "higher"),
    ),
    compute=compute,
    cost="1 + P forward passes per image (P window positions: 169 at 224 x 224), once per "
         "image and class, shared by the methods",
    parameters=(WINDOWS, BASELINE),
    # 1 + P at 224 x 224 (P = 169): far above the cheap limit, so only --all or by name runs it
    passes=lambda parameters: Passes(whole=170, shared=True),
)
