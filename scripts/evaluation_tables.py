"""Print the comparison tables of docs/evaluation.md from finished `axiomcam evaluate` runs.

    python scripts/evaluation_tables.py results/evaluation > tables.md

Each run directory (holding results.sqlite) becomes one table: a row per method, a column
per metric, "mean (median)" with the run's 95% bootstrap interval of the mean for the
axioms. Only metrics the run computed are shown. Then, for runs with XGrad-CAM, paired
per-image comparisons of its axiom errors, deletion / insertion AUC and ROAD with every
other method's: the mean difference with its 95% bootstrap interval (2000 resamples,
seed 0) and the share of images where XGrad-CAM's value is the lower.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import numpy as np

from axiomcam.evaluation.store import ResultStore
from axiomcam.evaluation.summary import bootstrap_interval, summarize

COLUMNS = {
    "conservation_error": "CE",
    "bias_share": "bias share",
    "sensitivity_error": "SE",
    "sensitivity_correlation": "SE corr.",
    "average_drop": "Avg Drop %",
    "increase_in_confidence": "Incr. Conf. %",
    "top_removal_drop": "top-20% drop",
    "deletion_auc": "deletion AUC",
    "insertion_auc": "insertion AUC",
    "road_morf": "ROAD MoRF",
    "road_lerf": "ROAD LeRF",
    "localization_iou": "loc. IoU",
    "localization_error": "loc. error %",
    "top1_localization_error": "top-1 loc. err. %",
    "pointing_game": "pointing %",
    "energy_pointing_game": "energy pointing",
    "discrimination_share": "discrimination",
    "sanity_spearman": "sanity Spearman",
    "occlusion_spearman": "occlusion Spearman",
}
WITH_INTERVAL = {"conservation_error", "sensitivity_error", "bias_share", "occlusion_spearman"}


def number(value: float) -> str:
    if value != 0 and (abs(value) >= 1000 or abs(value) < 0.001):
        return f"{value:.2e}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def table(run: Path) -> str:
    with ResultStore.open(run) as store:
        config = store.config
    summaries = summarize(run)
    cells: dict[tuple[str, str], str] = {}
    counts: dict[str, int] = {}
    methods: list[str] = []
    for summary in summaries:
        if summary.method not in methods:
            methods.append(summary.method)
        text = f"{number(summary.mean)} ({number(summary.median)})"
        if summary.metric in WITH_INTERVAL:
            text += f" [{number(summary.low)}, {number(summary.high)}]"
        cells[summary.method, summary.metric] = text
        counts[summary.metric] = max(counts.get(summary.metric, 0), summary.n)
    metrics = [m for m in COLUMNS if any((method, m) in cells for method in methods)]
    images = max(counts.values(), default=0)
    lines = [
        f"**{config['model']} `{config['target_layer']}`**, {config['data']}, "
        f"{images} images (`{run.name}`)",
        "",
        "| method | " + " | ".join(f"{COLUMNS[m]} (n)" if counts[m] != images else COLUMNS[m]
                                  for m in metrics) + " |",
        "|---" * (len(metrics) + 1) + "|",
    ]
    for method in methods:
        row = [cells.get((method, m), "") for m in metrics]
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    partial = [f"{COLUMNS[m]}: n = {counts[m]}" for m in metrics if counts[m] != images]
    if partial:
        lines += ["", "(" + "; ".join(partial) + ")"]
    return "\n".join(lines)


#: metrics compared image by image with the reference method, when a run has them
PAIRED_METRICS = {"conservation_error": "CE", "sensitivity_error": "SE",
                  "deletion_auc": "deletion AUC", "insertion_auc": "insertion AUC",
                  "road_morf": "ROAD MoRF", "road_lerf": "ROAD LeRF",
                  "occlusion_spearman": "occlusion Spearman"}


def paired(run: Path, reference: str = "xgradcam") -> str:
    """Paired comparisons of ``reference``'s per-image values with the other methods',
    for the metrics of :data:`PAIRED_METRICS` the run has."""
    connection = sqlite3.connect(f"file:{run / 'results.sqlite'}?mode=ro", uri=True)
    try:
        marks = ", ".join("?" * len(PAIRED_METRICS))
        rows = connection.execute(
            f"SELECT image_id, method, metric, value FROM results WHERE metric IN ({marks})",
            list(PAIRED_METRICS)).fetchall()
    finally:
        connection.close()
    values = {(image, method, metric): value for image, method, metric, value in rows}
    methods = list(dict.fromkeys(method for _, method, _, _ in rows))
    metrics = [m for m in PAIRED_METRICS if any(k == m for _, _, k in values)]
    if reference not in methods:
        return ""
    lines = [f"Paired with {reference}, `{run.name}`: {reference}'s value minus the other's "
             "(mean [95% bootstrap interval]), and where it is the lower", "",
             "| other method | " + " | ".join(f"{PAIRED_METRICS[m]} difference | "
                                          f"{PAIRED_METRICS[m]} lower on" for m in metrics)
             + " |",
             "|---" * (2 * len(metrics) + 1) + "|"]
    for other in methods:
        if other == reference:
            continue
        cells = []
        for metric in metrics:
            images = sorted({i for i, m, k in values if m == other and k == metric
                             and (i, reference, metric) in values})
            if not images:
                cells += ["", ""]
                continue
            difference = np.array([values[i, reference, metric] - values[i, other, metric]
                                   for i in images])
            low, high = bootstrap_interval(difference, seed=0)
            cells += [f"{number(difference.mean())} [{number(low)}, {number(high)}]",
                      f"{100 * (difference < 0).mean():.0f}% of {len(difference)}"]
        lines.append(f"| {other} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(root: str) -> None:
    runs = sorted(path.parent for path in Path(root).glob("*/results.sqlite"))
    if not runs:
        raise SystemExit(f"no results.sqlite under {root}")
    print("\n\n".join(table(run) for run in runs))
    comparisons = [paired(run) for run in runs]
    print("\n\n" + "\n\n".join(text for text in comparisons if text))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/evaluation")
