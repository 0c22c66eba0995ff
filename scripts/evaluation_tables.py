"""Print the comparison tables of docs/evaluation.md from finished `axiomcam evaluate` runs.

    python scripts/evaluation_tables.py results/evaluation > tables.md

Each run directory (holding results.sqlite) becomes one table: a row per method, a column
per metric, "mean (median)" with the run's 95% bootstrap interval of the mean for the
axioms. Only metrics the run computed are shown.
"""

from __future__ import annotations

import sys
from pathlib import Path

from axiomcam.evaluation.store import ResultStore
from axiomcam.evaluation.summary import summarize

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
}
WITH_INTERVAL = {"conservation_error", "sensitivity_error", "bias_share"}


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


def main(root: str) -> None:
    runs = sorted(path.parent for path in Path(root).glob("*/results.sqlite"))
    if not runs:
        raise SystemExit(f"no results.sqlite under {root}")
    print("\n\n".join(table(run) for run in runs))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/evaluation")
