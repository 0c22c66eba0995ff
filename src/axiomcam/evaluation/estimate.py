"""The cost estimate :func:`~axiomcam.evaluation.evaluate` prints before its first batch:
each group's and method's declared :class:`~axiomcam.evaluation.costs.Passes` times the
seconds one pass takes, measured by a short probe on the first batch
(:func:`probe_timing`).

The probe times, on the first batch: a forward pass of the whole network (seconds per
image; a backward pass is counted as one more such pass), the network after the target
layer on one pass of channel-ablated copies of the first image's layer output, as many as
the ablations put in one pass (seconds per copy),
one noisy linear imputation of the first image's top half (when a group imputes), and counts
the blocks the sanity check randomises (when it is asked for or left out). The estimate
of a group for a method is then, per image it measures,
``whole * t_whole + K (whole_per_channel * t_whole + after_layer_per_channel * t_after)
+ imputations * t_imputation + explanations * t_explain(method)``, ``K`` the layer's
channels. Not estimated: the gallery, summaries and report at the end (seconds).

Examples:
    >>> format_seconds(0.25), format_seconds(75), format_seconds(5400)
    ('0.25 s', '1.2 min', '1.5 h')
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..methods import capture_layer, method_info
from ..metrics import noisy_linear_imputation
from ..metrics.sanity import default_randomization_layers
from ..support import eval_mode
from .costs import CHEAP_PASSES, Passes, method_passes
from .groups import MetricGroup, metric_group

__all__ = ["CostEstimate", "PassTiming", "estimate_cost", "format_seconds", "probe_timing"]

#: what the estimate charges for an undeclared cost (it cannot be estimated)
UNKNOWN = float("nan")


@dataclass(frozen=True)
class PassTiming:
    """What the probe measured.

    Attributes:
        layer: the target layer.
        channels: ``K``, its channels.
        whole: seconds per image of a pass of the whole network.
        after_layer: seconds per copy of a pass of the network after the layer.
        imputation: seconds of one noisy linear imputation (0: not measured).
        blocks: blocks the sanity check randomises (0: not counted).
    """

    layer: str
    channels: int
    whole: float
    after_layer: float
    imputation: float = 0.0
    blocks: int = 0

    def seconds(self, passes: Passes, explanation: float = 0.0) -> float:
        """Seconds per image of ``passes`` (``explanation``: seconds per image of one
        explanation by the method, for ``passes.explanations``)."""
        per_channel = passes.whole_per_channel * self.whole + \
            passes.after_layer_per_channel * self.after_layer
        explanations = passes.explanations + passes.explanations_per_block * self.blocks
        return (passes.whole * self.whole + self.channels * per_channel
                + passes.imputations * self.imputation + explanations * explanation)


def _timed(function: Callable[..., object], *args: object) -> float:
    """The faster of two calls' wall time (the first call pays one-time costs)."""
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        function(*args)
        best = min(best, time.perf_counter() - start)
    return best


def probe_timing(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                 layer: str, *, imputation: bool, blocks: bool,
                 batch_size: int | None = None) -> PassTiming:
    """Time the passes on the first batch ``inputs`` (see the module's documentation);
    ``imputation`` / ``blocks``: also time an imputation / count the sanity check's
    blocks; ``batch_size``: ablated copies per pass, as the run's (``None``: the
    default)."""
    with eval_mode(model), torch.no_grad():
        whole = _timed(model, inputs) / inputs.shape[0]
    context = capture_layer(model, inputs[:1], targets[:1], layer, gradients=False,
                            batch_size=batch_size)
    channels = context.num_channels
    output = context.activations[:1].reshape(1, channels, *context.spatial_shape)
    # one pass as the ablations batch them: the part before the layer runs once per pass
    count = min(channels, context.engine.copies_per_pass(output.numel() * output.element_size()))
    copies = output.repeat(count, *([1] * (output.dim() - 1)))
    diagonal = torch.arange(count, device=copies.device)
    copies[diagonal, diagonal] = 0  # copy i without channel i
    start = time.perf_counter()
    with eval_mode(model):
        context.engine.layer_output_scores(context.inputs, 0, copies, context.targets.scores,
                                           original=output, own_score=context.scores[0])
    after = (time.perf_counter() - start) / count
    seconds = 0.0
    if imputation:
        # one contiguous half, as ROAD removes salient blobs (scattered pixels solve faster)
        removed = torch.zeros(inputs.shape[-2:], dtype=torch.bool)
        removed[:inputs.shape[-2] // 2] = True
        image = inputs[0].detach().double().cpu()
        start = time.perf_counter()
        noisy_linear_imputation(image, removed, generator=torch.Generator().manual_seed(0))
        seconds = time.perf_counter() - start
    count_blocks = len(default_randomization_layers(model, inputs[:1])) if blocks else 0
    return PassTiming(layer, channels, whole, after, seconds, count_blocks)


@dataclass(frozen=True)
class CostEstimate:
    """The estimated seconds of a run, per method and stage (``"explain"`` or a metric
    group), for the images still to compute, and of what the defaults left out.

    Attributes:
        timing: what the probe measured.
        images: the images still to compute.
        seconds: ``{method: {stage: seconds}}`` of what the run will compute.
        left_out: ``{name: seconds}`` of each expensive group (with every method of the
            run) and method (with every group of the run) the defaults left out.
    """

    timing: PassTiming
    images: int
    seconds: dict[str, dict[str, float]]
    left_out: dict[str, float]

    @property
    def total(self) -> float:
        """The estimated seconds of the whole run."""
        return sum(sum(stages.values()) for stages in self.seconds.values())

    def format(self) -> str:
        """The estimate as a table, one row per method, one column per stage, then the
        total and what was left out."""
        timing = self.timing
        stages = list(dict.fromkeys(stage for stages in self.seconds.values()
                                    for stage in stages))
        width = max(len(name) for name in [*self.seconds, "total"])
        lines = [
            f"cost estimate for {self.images} image{'' if self.images == 1 else 's'} at "
            f"{timing.layer} (K = {timing.channels} channels), from a probe on the first "
            f"batch: a pass of the whole network {1000 * timing.whole:.3g} ms per image, of "
            f"the network after the layer {1000 * timing.after_layer:.3g} ms per copy",
            "  ".join([" " * width, *(f"{stage:>12}" for stage in [*stages, "total"])]),
        ]
        for method, by_stage in self.seconds.items():
            cells = [format_seconds(by_stage.get(stage, 0.0)) for stage in stages]
            lines.append("  ".join([f"{method:<{width}}", *(f"{cell:>12}" for cell in cells),
                                    f"{format_seconds(sum(by_stage.values())):>12}"]))
        lines.append(f"{'total':<{width}}  {format_seconds(self.total)} (plus the gallery, "
                     "summaries and report at the end)")
        if self.left_out:
            listed = ", ".join(f"{name} (~{format_seconds(seconds)})"
                               for name, seconds in self.left_out.items())
            lines.append(
                f"left out as expensive (more than {CHEAP_PASSES} passes of the whole network "
                f"per image and method, or passes per channel or per block): {listed}; ask "
                "for them by name (--metrics NAME / --methods NAME; metrics= / methods=) or "
                "for everything with --all (include_expensive=True)")
        return "\n".join(lines)


def format_seconds(seconds: float) -> str:
    """``"0.4 s"``, ``"12 s"``, ``"4.2 min"``, ``"1.5 h"`` (``"?"``: unknown)."""
    if seconds != seconds:  # NaN: an undeclared cost
        return "?"
    if seconds < 60:
        return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.2g} min"
    return f"{seconds / 3600:.2g} h"


def _explanation_seconds(timing: PassTiming, method: str, ablations_shared: bool) -> float:
    """Seconds per image of one explanation by ``method`` (its K ablations free when the
    axioms probe shares them)."""
    passes = method_passes(method_info(method).cost)
    if passes is None:
        return UNKNOWN
    if ablations_shared and passes.after_layer_per_channel:
        passes = Passes(whole=passes.whole)
    return timing.seconds(passes)


def _group_images(group: MetricGroup, images: int, first_index: int,
                  parameters: Mapping[str, Any]) -> int:
    """How many of the ``images`` (from the run's ``first_index``-th on) ``group``
    measures."""
    if group.needs.first_images is None:
        return images
    first = int(parameters[group.needs.first_images])
    return max(0, min(images, first - first_index))


def _method_seconds(timing: PassTiming, method: str, groups: Sequence[MetricGroup],
                    parameters: Mapping[str, Any], images: int, first_index: int,
                    pays_shared: bool) -> dict[str, float]:
    """``{stage: seconds}`` of one method over ``images`` images."""
    group_names = {group.name for group in groups}
    info = method_info(method)
    seconds = {"explain": images * _explanation_seconds(timing, method,
                                                        "axioms" in group_names)}
    # the sanity check's explanations of a randomised model share no ablations
    explanation = _explanation_seconds(timing, method, ablations_shared=False)
    for group in groups:
        if not group.needs.measures(info):
            continue
        passes = group.passes_at(parameters)
        if passes is None:
            seconds[group.name] = UNKNOWN
        elif not passes.shared or pays_shared:
            seconds[group.name] = _group_images(group, images, first_index, parameters) * \
                timing.seconds(passes, explanation)
    return seconds


def estimate_cost(timing: PassTiming, methods: Sequence[str], groups: Sequence[str],
                  parameters: Mapping[str, Any], *, images: int, first_index: int = 0,
                  left_out_methods: Sequence[str] = (),
                  left_out_groups: Sequence[str] = ()) -> CostEstimate:
    """The :class:`CostEstimate` of ``methods`` x ``groups`` on ``images`` images (the
    run's ``first_index``-th on), and of each group or method left out, added to the run.
    """
    def run_seconds(names: Sequence[str], group_names: Sequence[str]
                    ) -> dict[str, dict[str, float]]:
        chosen = [metric_group(name) for name in group_names]
        # the axioms probe, shared by the methods, is charged to the first that needs it
        payer = next((name for name in names if method_info(name).has_channel_weights), None)
        return {name: _method_seconds(timing, name, chosen, parameters, images,
                                      first_index, pays_shared=name == payer)
                for name in names}

    seconds = run_seconds(methods, groups)
    left_out: dict[str, float] = {}
    for group in left_out_groups:
        left_out[group] = sum(stages.get(group, 0.0) for stages in
                              run_seconds(methods, [*groups, group]).values())
    for method in left_out_methods:
        left_out[method] = sum(run_seconds([*methods, method], groups)[method].values())
    return CostEstimate(timing, images, seconds, left_out)
