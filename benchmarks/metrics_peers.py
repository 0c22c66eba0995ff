"""The map metrics taken from Quantus 0.6 (issue 22), timed in axiomcam and in Quantus side
by side on the real pretrained MobileNetV2 (``axiomcam.models.load("mobilenet_v2")``,
packaged weights) and composite images (``open_dataset("composite:N")``, seed 0), with
Grad-CAM maps at ``features.17.conv.1`` for each image's top class.

Per metric: the wall time of one call on the whole batch in each library (the two calls
interleaved, ``--repeats`` times, median), their ratio, and how far the values are apart
(largest absolute difference per image, or the documented difference, docs/peers.md).
Both libraries get the same model, inputs, maps, targets and settings, and the same
random draws: Quantus draws from ``numpy.random``, which is seeded before each of its
calls; the same draws are replayed in Quantus' order and handed to axiomcam (``subsets=``,
``fill_values=``, ``noise=``), computed outside the timed call.

Quantus counts every channel of every pixel as a feature, axiomcam every pixel (all its
channels changed together). So that the faithfulness metrics (faithfulness correlation,
monotonicity correlation, IROF) have one definition, both run them on one-channel images:
each image's mean over its three normalised channels, fed to a copy of the network whose
first convolution sums its weights over the three input channels (the same network on the
grey image repeated over three channels, at the same cost). The robustness metrics and the
random logit explain the RGB images (the noise is per input value in both); the
complexity and mask metrics read only the maps (and the composite's object silhouettes).

Quantus perturbs and predicts the whole batch of images at a time (``B`` images per
forward pass); axiomcam gathers perturbed copies of all images into batches of
``batch_size`` (64 by default) and explains ``copies`` noisy copies of the batch at once
(4 by default). Each perturbation metric is timed at axiomcam's default and at Quantus'
number of images per pass. ``--jitter`` adds noise of 1e-3 to the maps, so that no two
pixels tie: where the libraries order tied pixels differently, the values then agree.

The default run keeps to a few minutes on one core: fewer runs, steps and noise draws
than the defaults (printed); ``--full`` uses each axiomcam function's defaults.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.metrics_peers
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

import axiomcam
from axiomcam.data import open_dataset
from axiomcam.metrics import (
    attribution_localisation,
    complexity,
    effective_complexity,
    faithfulness_correlation,
    irof,
    mask_auc,
    monotonicity_correlation,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    sparseness,
    top_k_intersection,
)
from axiomcam.metrics.random_logit import random_logit, structural_similarity
from axiomcam.metrics.robustness import (
    avg_sensitivity,
    local_lipschitz_estimate,
    max_sensitivity,
)
from axiomcam.support import AxiomCamWarning

LAYER = "features.17.conv.1"

#: the settings that set the cost: (quick run, ``--full``). ``--full`` is each axiomcam
#: function's default, which is Quantus' for faithfulness correlation (100 runs of 224
#: pixels); Quantus' own defaults elsewhere would take hours on one core: monotonicity
#: correlation with one pixel per step (50176 steps x 12 samples per image) and 200
#: noisy copies per robustness metric
SETTINGS = {
    "faithfulness_runs": (20, 100),
    "monotonicity_steps": (8, 32),
    "monotonicity_samples": (2, 4),
    "robustness_samples": (5, 10),
}


@dataclass
class Row:
    """One metric: its settings, the two calls and how to compare their results."""

    metric: str
    settings: str
    ours: Callable[[], object]
    theirs: Callable[[], object]
    compare: Callable[[object, object], str]
    note: str = ""
    slow: bool = False       # seconds per call: timed --slow-repeats times


@dataclass
class Case:
    """The shared inputs: RGB and one-channel views, maps, targets, masks."""

    model: nn.Module
    inputs: torch.Tensor
    classes: torch.Tensor
    maps: torch.Tensor
    grey_model: nn.Module
    grey: torch.Tensor
    grey_classes: torch.Tensor
    grey_maps: torch.Tensor
    masks: torch.Tensor


def one_channel(model: nn.Module) -> nn.Module:
    """A copy of MobileNetV2 that reads one-channel images: its first convolution's weights
    summed over the three input channels, the same network as the original on the image
    repeated over three channels."""
    grey = copy.deepcopy(model)
    first = grey.features[0][0]
    summed = nn.Conv2d(1, first.out_channels, first.kernel_size, first.stride,
                       first.padding, bias=first.bias is not None)
    with torch.no_grad():
        summed.weight.copy_(first.weight.sum(dim=1, keepdim=True))
        if first.bias is not None:
            summed.bias.copy_(first.bias)
    grey.features[0][0] = summed
    return grey.eval()


def gradcam(model: nn.Module, layer: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``(inputs, targets) -> (B, H, W)`` Grad-CAM maps at ``layer``."""
    def explain(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return axiomcam.explain(model, inputs, "gradcam", layer, targets=targets).maps
    return explain


def quantus_explain(explain, asked: list | None = None):
    """Quantus' ``explain_func`` (numpy in, ``(B, 1, H, W)`` numpy out) around ``explain``;
    the classes it is asked for are appended to ``asked``."""
    def explain_func(model: nn.Module, inputs: np.ndarray, targets: np.ndarray,
                     **_: object) -> np.ndarray:
        if asked is not None:
            asked.append(np.asarray(targets).copy())
        maps = explain(torch.as_tensor(inputs, dtype=torch.float32), torch.as_tensor(targets))
        return maps[:, None].detach().numpy()
    return explain_func


def without_ties(maps: torch.Tensor, seed: int) -> torch.Tensor:
    """``maps`` plus uniform noise of 1e-3, divided by the maximum: no two pixels equal."""
    noise = torch.rand(maps.shape, generator=torch.Generator().manual_seed(seed))
    jittered = maps + 1e-3 * noise
    return jittered / jittered.flatten(1).amax(1)[:, None, None]


def build_case(images: int, jitter: bool) -> Case:
    """MobileNetV2, composite images, top classes, Grad-CAM maps (``jitter``: without
    ties), silhouettes."""
    pretrained = axiomcam.models.load("mobilenet_v2")
    model = pretrained.model.eval()
    dataset = open_dataset(f"composite:{images}", pretrained.class_names, seed=0)
    samples = list(dataset)
    inputs = torch.stack([pretrained.preprocess(sample.image) for sample in samples])
    masks = torch.stack([sample.masks[sample.box_labels == sample.label].any(0)
                         if (sample.box_labels == sample.label).any() else sample.masks.any(0)
                         for sample in samples])
    grey_model = one_channel(model)
    grey = inputs.mean(1, keepdim=True)
    with torch.no_grad():
        classes, grey_classes = model(inputs).argmax(1), grey_model(grey).argmax(1)
    maps = gradcam(model, LAYER)(inputs, classes)
    grey_maps = gradcam(grey_model, LAYER)(grey, grey_classes)
    if jitter:
        maps, grey_maps = without_ties(maps, 8), without_ties(grey_maps, 9)
    return Case(model=model, inputs=inputs, classes=classes, maps=maps,
                grey_model=grey_model, grey=grey, grey_classes=grey_classes,
                grey_maps=grey_maps, masks=masks)


def quietly(function: Callable[[], object]) -> object:
    """``function()`` with Quantus' warnings (one per call and per image) silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function()


def seeded(seed: int, function: Callable[[], object]) -> Callable[[], np.ndarray]:
    """A Quantus call made after seeding numpy (its draws), its scores as float64."""
    def call() -> np.ndarray:
        np.random.seed(seed)
        return np.asarray(quietly(function), dtype=np.float64)
    return call


def max_difference(ours: object, theirs: object) -> str:
    """The largest absolute difference of the per-image values."""
    first = torch.as_tensor(ours).double().cpu().numpy()
    return f"{float(np.max(np.abs(first - np.asarray(theirs, dtype=np.float64)))):.1e}"


def run_quantus(metric: object, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                maps: torch.Tensor, **call: object) -> object:
    """``metric`` called on numpy copies of the batch, scores on probabilities."""
    return metric(model=model, x_batch=inputs.numpy(), y_batch=targets.numpy(),
                  a_batch=maps[:, None].double().numpy().copy(), softmax=True, device="cpu",
                  channel_first=True, **call)


def faithfulness_draws(seed: int, runs: int, size: int, batch: int, pixels: int
                       ) -> torch.Tensor:
    """Quantus' subsets in its order: per run, one subset per image, then the ``B`` uniform
    numbers of its baseline table."""
    np.random.seed(seed)
    draws = []
    for _ in range(runs):
        draws.append(np.stack([np.random.choice(pixels, size, replace=False)
                               for _ in range(batch)]))
        np.random.uniform(size=batch)
    return torch.from_numpy(np.stack(draws, axis=1))


def monotonicity_draws(seed: int, steps: int, samples: int, batch: int) -> torch.Tensor:
    """Quantus' fill values in its order: per step, per sample, one per image."""
    np.random.seed(seed)
    fills = np.zeros((batch, steps, samples))
    for step in range(steps):
        for sample in range(samples):
            fills[:, step, sample] = np.random.uniform(0.0, 1.0, size=batch)
    return torch.from_numpy(fills)


def noise_draws(seed: int, shape: tuple[int, ...], samples: int, gaussian: bool,
                scale: float) -> torch.Tensor:
    """Quantus' noise in its order: per copy, one ``(B, C*H*W)`` array."""
    np.random.seed(seed)
    size = (shape[0], int(np.prod(shape[1:])))
    copies = [np.random.normal(0.0, scale, size=size) if gaussian
              else np.random.uniform(-scale, scale, size=size) for _ in range(samples)]
    return torch.tensor(np.stack(copies).reshape(samples, *shape), dtype=torch.float32)


def to_quantus_irof(result) -> np.ndarray:
    """Quantus' IROF from ours: ``n - trapz(f_1 .. f_n, dx=1) = n AOC + (1 + f_1) / 2``."""
    return np.array([(len(curve) - 1) * float(aoc) + (1 + float(curve[1])) / 2
                     for aoc, curve in zip(result.aoc, result.curves, strict=True)])


def faithfulness_rows(case: Case, quantus, full: bool) -> list[Row]:
    """Faithfulness correlation, monotonicity correlation and IROF on the one-channel view."""
    model, inputs, maps, targets = case.grey_model, case.grey, case.grey_maps, case.grey_classes
    batch, _, height, width = inputs.shape
    pixels = height * width
    runs = SETTINGS["faithfulness_runs"][full]
    steps, samples = (SETTINGS[f"monotonicity_{key}"][full] for key in ("steps", "samples"))
    subsets = faithfulness_draws(1, runs, 224, batch, pixels)
    fills = monotonicity_draws(2, steps, samples, batch)
    black = inputs.flatten(1).min(1).values.view(batch, 1, 1, 1)  # Quantus' "black"
    rows = []
    for size in (64, batch):  # axiomcam's default; Quantus' images per forward pass
        rows += [
            Row("faithfulness correlation", f"{runs} runs of 224 pixels, black baseline; "
                f"batch_size={size}", lambda b=size: faithfulness_correlation(
                    model, inputs, maps, targets, subsets=subsets, baseline=black,
                    batch_size=b, progress=False),
                seeded(1, lambda: run_quantus(quantus.FaithfulnessCorrelation(
                    nr_runs=runs, subset_size=224, perturb_baseline="black",
                    normalise=False, abs=False, return_aggregate=False,
                    disable_warnings=True), model, inputs, targets, maps)),
                max_difference, slow=True),
            Row("monotonicity correlation", f"{steps} steps of {pixels // steps} pixels, "
                f"{samples} samples; batch_size={size}", lambda b=size: monotonicity_correlation(
                    model, inputs, maps, targets, steps=steps, fill_values=fills,
                    batch_size=b, progress=False),
                seeded(2, lambda: run_quantus(quantus.MonotonicityCorrelation(
                    nr_samples=samples, features_in_step=pixels // steps, normalise=False,
                    abs=False, return_aggregate=False, disable_warnings=True),
                    model, inputs, targets, maps)),
                max_difference, "tied pixels grouped in another order", slow=True),
            Row("IROF", f"SLIC, 100 segments, baseline 0; batch_size={size}", lambda b=size: irof(
                    model, inputs, maps, targets, baseline=0.0, batch_size=b,
                    progress=False),
                seeded(3, lambda: run_quantus(quantus.IROF(
                    perturb_baseline=0.0, normalise=False, abs=False,
                    return_aggregate=False, disable_warnings=True),
                    model, inputs, targets, maps)),
                lambda ours, theirs: max_difference(to_quantus_irof(ours), theirs),
                "ours rescaled to Quantus' scale; tied superpixels removed in another order",
                slow=True),
        ]
    return rows


def robustness_rows(case: Case, quantus, full: bool) -> list[Row]:
    """Max-sensitivity, average sensitivity, local Lipschitz estimate on the RGB images,
    each noisy copy explained by Grad-CAM at the same layer in both libraries."""
    explain = gradcam(case.model, LAYER)
    samples = SETTINGS["robustness_samples"][full]
    shape = tuple(case.inputs.shape)
    rows = []
    for (name, ours, gaussian, scale, seed), copies in itertools.product((
            ("MaxSensitivity", max_sensitivity, False, 0.2, 4),
            ("AvgSensitivity", avg_sensitivity, False, 0.2, 5),
            ("LocalLipschitzEstimate", local_lipschitz_estimate, True, 0.1, 6)), (4, 1)):
        noise = noise_draws(seed, shape, samples, gaussian, scale)
        options = {"perturb_std": scale} if gaussian else {"lower_bound": scale}
        metric = getattr(quantus, name)(nr_samples=samples, normalise=False, abs=False,
                                        disable_warnings=True, **options)
        rows.append(Row(
            name, f"{samples} copies, " + (f"Gaussian std {scale}" if gaussian
                                           else f"uniform +-{scale}")
            + f"; copies={copies}", lambda f=ours, n=noise, c=copies: f(
                explain, case.inputs, case.classes, noise=n, copies=c),
            seeded(seed, lambda m=metric: run_quantus(
                m, case.model, case.inputs, case.classes, case.maps,
                explain_func=quantus_explain(explain))),
            max_difference, "axiomcam also explains the clean images"))
    return rows


def random_logit_row(case: Case, quantus) -> Row:
    """Random logit: one more explanation, of a random other class."""
    asked: list[np.ndarray] = []
    explain = gradcam(case.model, LAYER)

    def compare(ours: object, theirs: object) -> str:
        # Quantus: SSIM of the flattened maps (1 x 7 windows); ours of the 2D maps: the
        # same formula on rows gives Quantus' number, with the classes it drew
        second = explain(case.inputs, torch.as_tensor(asked[-1]))
        batch = case.maps.shape[0]
        flat = structural_similarity(case.maps.reshape(batch, 1, -1),
                                     second.reshape(batch, 1, -1), window=(1, 7))
        square = ours.similarity.double().numpy()
        return (f"{max_difference(flat, theirs)} (2D SSIM, ours: "
                f"{float(np.max(np.abs(square - theirs))):.1e})")

    return Row(
        "random logit", "1000 classes, SSIM 7",
        lambda: random_logit(case.model, case.inputs, "gradcam", case.classes,
                             maps=case.maps, target_layer=LAYER, seed=0),
        seeded(7, lambda: run_quantus(
            quantus.RandomLogit(num_classes=1000, disable_warnings=True), case.model,
            case.inputs, case.classes, case.maps,
            explain_func=quantus_explain(explain, asked))),
        compare, "flat vs 2D SSIM (documented)")


def map_rows(case: Case, quantus) -> list[Row]:
    """The metrics that read only the maps (and the objects' silhouettes)."""
    maps, masks = case.maps, case.masks
    batch, height, width = maps.shape
    quantus_inputs = {
        "model": case.model, "y_batch": case.classes.numpy(),
        "x_batch": np.zeros((batch, 1, height, width), dtype=np.float32),
        "s_batch": masks.numpy()[:, None].astype(np.float64)}

    def theirs(kind, **options) -> Callable[[], np.ndarray]:
        return seeded(0, lambda: kind(disable_warnings=True, **options)(
            a_batch=maps.detach().double().numpy()[:, None].copy(), **quantus_inputs))

    return [
        Row("sparseness", "", lambda: sparseness(maps), theirs(quantus.Sparseness),
            max_difference, "Quantus adds 1e-7 to every value"),
        Row("complexity", "", lambda: complexity(maps), theirs(quantus.Complexity),
            max_difference),
        Row("effective complexity", "threshold 1e-5", lambda: effective_complexity(maps),
            theirs(quantus.EffectiveComplexity, eps=1e-5), max_difference),
        Row("relevance mass accuracy", "", lambda: relevance_mass_accuracy(maps, masks),
            theirs(quantus.RelevanceMassAccuracy), max_difference),
        Row("relevance rank accuracy", "", lambda: relevance_rank_accuracy(maps, masks),
            theirs(quantus.RelevanceRankAccuracy), max_difference,
            "ties: Quantus' argsort order, ours their average"),
        Row("top-k intersection", "k = 1000", lambda: top_k_intersection(maps, masks, k=1000),
            theirs(quantus.TopKIntersection, k=1000), max_difference,
            "ties: Quantus' argsort order, ours their average"),
        Row("attribution localisation", "unweighted",
            lambda: attribution_localisation(maps, masks, weighted=False),
            theirs(quantus.AttributionLocalisation), max_difference,
            "weighted: Quantus' weight is not the paper's (documented)"),
        Row("mask AUC", "", lambda: mask_auc(maps, masks), theirs(quantus.AUC),
            max_difference),
    ]


def timed_pair(row: Row, repeats: int) -> tuple[float, float, object, object]:
    """Median wall times of the two calls, interleaved, and their last results."""
    ours_times, their_times, ours, theirs = [], [], None, None
    for _ in range(repeats):
        start = time.perf_counter()
        ours = row.ours()
        ours_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        theirs = row.theirs()
        their_times.append(time.perf_counter() - start)
    return statistics.median(ours_times), statistics.median(their_times), ours, theirs


def forward_cost(model: nn.Module, inputs: torch.Tensor, sizes: tuple[int, ...],
                 repeats: int) -> dict[int, float]:
    """Milliseconds per image of a ``no_grad`` forward pass of 64 images in batches of
    each size (the sizes interleaved, median of ``repeats``)."""
    images = inputs.repeat((64 + len(inputs) - 1) // len(inputs), 1, 1, 1)[:64]
    times: dict[int, list[float]] = {size: [] for size in sizes}
    with torch.no_grad():
        for _, size in itertools.product(range(repeats), sizes):
            start = time.perf_counter()
            for part in images.split(size):
                model(part)
            times[size].append((time.perf_counter() - start) / 64 * 1000)
    return {size: statistics.median(values) for size, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slow-repeats", type=int, default=1,
                        help="repeats of the faithfulness metrics (hundreds of passes a call)")
    parser.add_argument("--full", action="store_true",
                        help="each axiomcam function's default settings (slow)")
    parser.add_argument("--metrics", nargs="*", help="only the metrics whose name starts so")
    parser.add_argument("--jitter", action="store_true",
                        help="add noise of 1e-3 to the maps so that no two pixels tie")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", AxiomCamWarning)
    import quantus

    if not hasattr(np, "trapz"):  # Quantus 0.6's IROF calls np.trapz, gone in numpy 2
        np.trapz = np.trapezoid
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    started = time.perf_counter()
    case = build_case(args.images, args.jitter)
    rows = [*faithfulness_rows(case, quantus, args.full),
            *robustness_rows(case, quantus, args.full), random_logit_row(case, quantus),
            *map_rows(case, quantus)]
    if args.metrics:
        rows = [row for row in rows if row.metric.lower().startswith(tuple(args.metrics))]
    print(f"MobileNetV2, Grad-CAM at {LAYER}, {args.images} composite images (224 px), "
          f"torch {torch.__version__} on {torch.get_num_threads()} thread, quantus "
          f"{quantus.__version__}, median of {args.repeats} interleaved calls "
          f"({args.slow_repeats} for the faithfulness metrics), "
          f"{'maps without ties (--jitter), ' if args.jitter else ''}"
          f"load average at start {load}")
    print("| metric | settings | axiomcam s | Quantus s | Quantus / axiomcam | "
          "max \\|diff\\| | note |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        repeats = args.slow_repeats if row.slow else args.repeats
        ours_time, their_time, ours, theirs = timed_pair(row, repeats)
        print(f"| {row.metric} | {row.settings} | {ours_time:.3g} | {their_time:.3g} | "
              f"{their_time / ours_time:.1f}x | {row.compare(ours, theirs)} | {row.note} |",
              flush=True)
    cost = forward_cost(case.model, case.inputs, (len(case.inputs), 16, 64), args.repeats)
    print("MobileNetV2 no_grad forward, ms per image: " + ", ".join(
        f"batch {size}: {value:.1f}" for size, value in cost.items()))
    print(f"whole run {time.perf_counter() - started:.0f} s wall clock; load average at end "
          + ", ".join(f"{value:.2f}" for value in os.getloadavg()))


if __name__ == "__main__":
    main()
