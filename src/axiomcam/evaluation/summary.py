"""Data-set summaries of an evaluation run, read back from its database.

From ``DIR/results.sqlite`` (:mod:`axiomcam.evaluation.store`) this module writes

- ``summary.csv``: one row per method, one column per metric, the mean over images;
- ``summary.md``: per metric a table of method, ``n`` (images), mean, median and the 95%
  percentile-bootstrap interval of the mean, the run's configuration and its problems;
- plots (PNG): ``deletion.png`` and ``insertion.png`` (mean curve per method, mean AUC in
  the legend), ``road.png`` (mean probability after MoRF / LeRF removal vs the percentage
  removed), ``sanity.png`` (mean Spearman correlation per randomisation step) and one bar
  chart per metric, ``bars/<metric>.png`` (mean, bootstrap interval as error bars).

**Bootstrap interval** (percentile bootstrap, Efron & Tibshirani 1993): draw ``n`` values
with replacement from the ``n`` per-image values, ``resamples = 2000`` times, take each
resample's mean; the interval is the 2.5th and 97.5th percentiles of those means. The
draws come from ``numpy.random.default_rng(seed)`` with the run's seed, so a summary is
reproducible.

Examples:
    >>> import numpy as np
    >>> values = np.array([1.0, 2.0, 3.0, 4.0])
    >>> low, high = bootstrap_interval(values, seed=0)
    >>> bool(low <= values.mean() <= high)
    True
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .groups import CURVES, METRICS, changed_parameters
from .store import CurveRow, ResultStore, rows_by

__all__ = [
    "MetricSummary",
    "SummaryFiles",
    "bootstrap_interval",
    "format_number",
    "format_table",
    "summarize",
    "write_summary",
]


BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class MetricSummary:
    """Data-set statistics of one metric for one method over ``n`` images."""

    method: str
    metric: str
    n: int
    mean: float
    median: float
    low: float
    high: float


@dataclass(frozen=True)
class SummaryFiles:
    """The files :func:`write_summary` wrote."""

    csv: Path
    markdown: Path
    plots: tuple[Path, ...]


def bootstrap_interval(values: Sequence[float] | np.ndarray, *, seed: int,
                       resamples: int = BOOTSTRAP_RESAMPLES,
                       confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``values``.

    ``resamples`` times, draw ``n = len(values)`` values with replacement and take their
    mean; return the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of
    those means (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 13).
    One value gives ``(value, value)``.

    Args:
        values: the per-image values (finite).
        seed: seed of the ``numpy.random.default_rng`` that draws the resamples.
        resamples: how many resamples (2000).
        confidence: the interval's coverage, in ``(0, 1)``.

    Returns:
        ``(low, high)``.

    Raises:
        ValueError: no values, a non-finite value, or ``confidence`` / ``resamples`` out
            of range.

    Examples:
        >>> bootstrap_interval([2.0, 2.0, 2.0], seed=0)
        (2.0, 2.0)
        >>> bootstrap_interval([0.0, 10.0], seed=1) == bootstrap_interval([0.0, 10.0], seed=1)
        True
    """
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError("bootstrap_interval needs at least one value")
    if not np.isfinite(array).all():
        raise ValueError(f"bootstrap_interval got non-finite values: {array[~np.isfinite(array)]}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"resamples must be a positive int, got {resamples!r}")
    if array.size == 1:
        return float(array[0]), float(array[0])
    generator = np.random.default_rng(seed)
    means = np.empty(resamples)
    # resample in blocks so that memory stays ~8 MB whatever the number of images
    block = max(1, 1_000_000 // array.size)
    for start in range(0, resamples, block):
        stop = min(start + block, resamples)
        indices = generator.integers(0, array.size, size=(stop - start, array.size))
        means[start:stop] = array[indices].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def _metric_order(metrics: Sequence[str]) -> list[str]:
    known = [name for name in METRICS if name in metrics]
    return known + [name for name in metrics if name not in METRICS]


def _run_seed(store: ResultStore) -> int:
    seed = store.config.get("seed", 0)
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else 0


def summarize(out_dir: str | os.PathLike[str], *, seed: int | None = None,
              resamples: int = BOOTSTRAP_RESAMPLES) -> list[MetricSummary]:
    """Mean, median and bootstrap interval of every stored metric, per method.

    Args:
        out_dir: the run's directory (holding ``results.sqlite``).
        seed: the bootstrap's seed; ``None``: the run's own seed (its configuration's
            ``"seed"``, 0 if absent).
        resamples: bootstrap resamples.

    Returns:
        one :class:`MetricSummary` per (metric, method) with results, metrics in the order
        of :data:`axiomcam.evaluation.groups.METRICS` (then any other, as first stored),
        methods in the run's order.

    Raises:
        FileNotFoundError: no database in ``out_dir``.

    Examples:
        >>> import tempfile
        >>> from axiomcam.evaluation.store import ResultRow, ResultStore
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     with ResultStore.create(directory, {"seed": 0}) as store:
        ...         store.write_batch(results=[ResultRow("a", "gradcam", "average_drop", 10.0),
        ...                                    ResultRow("b", "gradcam", "average_drop", 30.0)])
        ...     [(s.method, s.n, s.mean, s.median) for s in summarize(directory)]
        [('gradcam', 2, 20.0, 20.0)]
    """
    with ResultStore.open(out_dir) as store:
        rows = store.results()
        methods = store.methods()
        metrics = _metric_order(store.metrics())
        run_seed = _run_seed(store) if seed is None else seed
    grouped = rows_by(rows, "metric", "method")
    summaries = []
    for metric in metrics:
        for method in methods:
            values = grouped.get((metric, method))
            if not values:
                continue
            array = np.asarray(values, dtype=np.float64)
            low, high = bootstrap_interval(array, seed=run_seed, resamples=resamples)
            summaries.append(MetricSummary(
                method=method, metric=metric, n=int(array.size), mean=float(array.mean()),
                median=float(np.median(array)), low=low, high=high))
    return summaries


def format_number(value: float) -> str:
    """A number as the summaries and the report print it: at most four decimals without
    trailing zeros between 0.001 and 100000 (integers without a point), else three
    significant decimals in scientific notation.

    Examples:
        >>> format_number(20.0), format_number(0.123456), format_number(1e-05)
        ('20', '0.1235', '1.000e-05')
    """
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4f}".rstrip("0").rstrip(".") if not value.is_integer() \
            else f"{value:.0f}"
    return f"{value:.3e}"


def format_table(summaries: Sequence[MetricSummary]) -> str:
    """A compact text table of the means: one line per metric, one column per method.

    Examples:
        >>> print(format_table([MetricSummary("gradcam", "average_drop", 2, 20.0, 20.0,
        ...                                   10.0, 30.0)]))
        metric        gradcam
        average_drop  20
    """
    methods = list(dict.fromkeys(summary.method for summary in summaries))
    metrics = list(dict.fromkeys(summary.metric for summary in summaries))
    means = {(s.metric, s.method): format_number(s.mean) for s in summaries}
    rows = [["metric", *methods]] + [
        [metric, *(means.get((metric, method), "-") for method in methods)]
        for metric in metrics
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _write_csv(path: Path, summaries: Sequence[MetricSummary]) -> None:
    methods = list(dict.fromkeys(summary.method for summary in summaries))
    metrics = list(dict.fromkeys(summary.metric for summary in summaries))
    means = {(s.method, s.metric): s.mean for s in summaries}
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["method", *metrics])
        for method in methods:
            writer.writerow([method, *(repr(means[(method, metric)])
                                       if (method, metric) in means else ""
                                       for metric in metrics)])


def _write_markdown(path: Path, summaries: Sequence[MetricSummary], config: dict[str, Any],
                    store: ResultStore, plots: Sequence[Path], seed: int) -> None:
    lines = ["# axiomcam evaluation", ""]
    for key, label in (("model", "model"), ("probability", "p_c read by"), ("data", "data"),
                       ("target_layer", "layer"),
                       ("methods", "methods"), ("metric_groups", "metric groups"),
                       ("seed", "seed")):
        if key in config:
            value = config[key]
            value = ", ".join(map(str, value)) if isinstance(value, list) else value
            lines.append(f"- {label}: `{value}`")
    changed = changed_parameters(config.get("parameters", {}))
    if changed:  # the metric descriptions below quote the defaults
        lines.append("- changed from the defaults the descriptions quote: "
                     + ", ".join(f"`{change}`" for change in changed))
    lines.append(f"- images: {store.count('images')}, skipped files: {store.count('problems')}")
    lines.append(f"- started {store.started}, finished {store.finished or 'not finished'}")
    lines += ["", f"Mean, median and {CONFIDENCE:.0%} percentile-bootstrap interval of the mean "
              f"over images ({BOOTSTRAP_RESAMPLES} resamples, seed {seed}).", ""]
    by_metric: dict[str, list[MetricSummary]] = {}
    for summary in summaries:
        by_metric.setdefault(summary.metric, []).append(summary)
    for metric, rows in by_metric.items():
        info = METRICS.get(metric)
        lines.append(f"## {metric}")
        if info is not None:
            better = f" ({info.better} is better)" if info.better else ""
            lines.append(f"{info.description}{better}.")
        lines += ["", "| method | n | mean | median | 95% interval |",
                  "|---|---:|---:|---:|---|"]
        lines += [f"| {s.method} | {s.n} | {format_number(s.mean)} | "
                  f"{format_number(s.median)} | [{format_number(s.low)}, "
                  f"{format_number(s.high)}] |" for s in rows]
        lines.append("")
    problems = store.problems()
    lines += ["## Problems", ""]
    if problems:
        lines += [f"- `{problem.path}`: {problem.reason}" for problem in problems]
    else:
        lines.append("No file was skipped.")
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"- [{plot.relative_to(path.parent)}]({plot.relative_to(path.parent)})"
                  for plot in plots]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _mean_curves(rows: Sequence[CurveRow]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per method: (x, mean value over images) by step."""
    sums: dict[str, dict[int, list[float]]] = {}
    for row in rows:
        point = sums.setdefault(row.method, {}).setdefault(row.step, [0.0, 0.0, 0])
        point[0] += row.x
        point[1] += row.value
        point[2] += 1
    result = {}
    for method, steps in sums.items():
        ordered = [steps[step] for step in sorted(steps)]
        result[method] = (np.array([p[0] / p[2] for p in ordered]),
                          np.array([p[1] / p[2] for p in ordered]))
    return result


def _new_figure(width: float = 6.0, height: float = 4.0) -> Any:
    # a bare Figure with its own Agg canvas: no pyplot state, no display needed
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _plot_curve(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]],
                aucs: dict[str, float], title: str, xlabel: str, ylabel: str) -> Path:
    figure = _new_figure()
    axes = figure.add_subplot()
    for method, (x, y) in curves.items():
        label = f"{method} (AUC {aucs[method]:.3f})" if method in aucs else method
        axes.plot(x, y, label=label)
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.savefig(path)
    return path


def _plot_road(path: Path, morf: dict, lerf: dict) -> Path:
    figure = _new_figure(10.0, 4.0)
    for index, (name, curves) in enumerate((("MoRF (most relevant removed first)", morf),
                                            ("LeRF (least relevant removed first)", lerf))):
        axes = figure.add_subplot(1, 2, index + 1)
        for method, (x, y) in curves.items():
            axes.plot(x, y, marker="o", label=method)
        axes.set(title=f"ROAD {name}", xlabel="% of pixels removed",
                 ylabel="mean probability of the class")
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    figure.savefig(path)
    return path


def _plot_sanity(path: Path, curves: dict, layers: dict[str, list[str]]) -> Path:
    figure = _new_figure(8.0, 4.5)
    axes = figure.add_subplot()
    for method, (x, y) in curves.items():
        axes.plot(x, y, marker="o", label=method)
    axes.set(title="Sanity check: cascading randomisation from the top",
             xlabel="randomisation step", ylabel="mean Spearman correlation")
    names = next(iter(layers.values()), None) if layers else None
    steps = next(iter(curves.values()))[0] if curves else None
    if names and steps is not None and len(names) == len(steps) and len(names) <= 30:
        axes.set_xticks(steps, names, rotation=60, ha="right", fontsize="x-small")
        axes.set_xlabel("last layer randomised")
    axes.axhline(0, color="grey", linewidth=0.8)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.savefig(path)
    return path


def _plot_bars(path: Path, rows: Sequence[MetricSummary]) -> Path:
    figure = _new_figure(max(4.0, 1.0 + 0.9 * len(rows)), 4.0)
    axes = figure.add_subplot()
    means = np.array([s.mean for s in rows])
    errors = np.array([[s.mean - s.low for s in rows], [s.high - s.mean for s in rows]])
    axes.bar(range(len(rows)), means, yerr=np.clip(errors, 0, None), capsize=4,
             color="tab:blue")
    axes.set_xticks(range(len(rows)), [s.method for s in rows], rotation=30, ha="right")
    info = METRICS.get(rows[0].metric)
    better = f" ({info.better} is better)" if info and info.better else ""
    axes.set(title=f"{rows[0].metric}{better}", ylabel=f"mean, {CONFIDENCE:.0%} interval")
    axes.grid(axis="y", alpha=0.3)
    figure.savefig(path)
    return path


def write_summary(out_dir: str | os.PathLike[str], *, seed: int | None = None,
                  plots: bool = True) -> SummaryFiles:
    """Write ``summary.csv``, ``summary.md`` and the plots of the run in ``out_dir``.

    Args:
        out_dir: the run's directory (holding ``results.sqlite``).
        seed: the bootstrap's seed (``None``: the run's seed).
        plots: also draw the PNG plots.

    Returns:
        the paths written.

    Raises:
        FileNotFoundError: no database in ``out_dir``.

    Example (one stored value):
        >>> from tempfile import TemporaryDirectory
        >>> from axiomcam.evaluation.store import ResultRow, ResultStore
        >>> with TemporaryDirectory() as directory:
        ...     store = ResultStore.create(directory, {"seed": 0})
        ...     store.write_batch(results=[ResultRow("a", "gradcam", "average_drop", 5.0)])
        ...     store.close()
        ...     files = write_summary(directory)
        ...     files.csv.read_text().splitlines()
        ['method,average_drop', 'gradcam,5.0']
    """
    directory = Path(out_dir)
    summaries = summarize(directory, seed=seed)
    with ResultStore.open(directory) as store:
        config = store.config
        run_seed = _run_seed(store) if seed is None else seed
        written: list[Path] = []
        if plots:
            written = _write_plots(directory, store, summaries)
        csv_path = directory / "summary.csv"
        _write_csv(csv_path, summaries)
        markdown_path = directory / "summary.md"
        _write_markdown(markdown_path, summaries, config, store, written, run_seed)
    return SummaryFiles(csv=csv_path, markdown=markdown_path, plots=tuple(written))


def _write_plots(directory: Path, store: ResultStore,
                 summaries: Sequence[MetricSummary]) -> list[Path]:
    written = []
    means = {(s.metric, s.method): s.mean for s in summaries}
    for curve, title in (("deletion", "Deletion"), ("insertion", "Insertion")):
        curves = _mean_curves(store.curves(curve))
        if curves:
            aucs = {method: means[(f"{curve}_auc", method)] for method in curves
                    if (f"{curve}_auc", method) in means}
            written.append(_plot_curve(
                directory / f"{curve}.png", curves, aucs, f"{title} (RISE)",
                CURVES[curve], "mean probability of the class"))
    morf, lerf = _mean_curves(store.curves("road_morf")), _mean_curves(store.curves("road_lerf"))
    if morf or lerf:
        written.append(_plot_road(directory / "road.png", morf, lerf))
    sanity = _mean_curves(store.curves("sanity"))
    if sanity:
        layers = store.details.get("sanity_layers", {})
        written.append(_plot_sanity(directory / "sanity.png", sanity, layers))
    by_metric: dict[str, list[MetricSummary]] = {}
    for summary in summaries:
        by_metric.setdefault(summary.metric, []).append(summary)
    if by_metric:
        (directory / "bars").mkdir(exist_ok=True)
    for metric, rows in by_metric.items():
        if all(math.isfinite(s.mean) for s in rows):
            written.append(_plot_bars(directory / "bars" / f"{metric}.png", rows))
    return written
