"""Print seconds per image, per method and per metric group, of finished evaluate runs
(the table of docs/scaling.md).

    python scripts/timing_table.py results/scaling/per-method [MORE RUN DIRS]

The times are the ones each run stored in its database (``details.seconds_by_method``,
summed over every session and process of the run) divided by its image count. The axioms
probe (the K channel ablations) is shared by the methods of a batch and counted for the
first method that needed it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from axiomcam.evaluation import METRIC_GROUPS
from axiomcam.evaluation.store import ResultStore

STAGES = ("explain", *METRIC_GROUPS)


def table(run: Path) -> str:
    with ResultStore.open(run) as store:
        details, config = store.details, store.config
        images = store.count("images")
    by_method = details.get("seconds_by_method", {})
    stages = [stage for stage in STAGES if any(stage in s for s in by_method.values())]
    lines = [f"{config['model']} at {config['target_layer']}, {images} images of "
             f"{config['data']}: seconds per image", "",
             "| method | " + " | ".join(stages) + " | all |",
             "|---|" + "---:|" * (len(stages) + 1)]
    for method, seconds in by_method.items():
        cells = [f"{seconds.get(stage, 0.0) / images:.2f}" for stage in stages]
        lines.append(f"| {method} | " + " | ".join(cells)
                     + f" | {sum(seconds.values()) / images:.2f} |")
    total = details.get("seconds", {}).get("total", 0.0)
    lines += ["", f"whole run: {total:.0f} s ({total / images:.1f} s per image, every "
                  "method; forward pass and data included)"]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print("\n\n".join(table(Path(run)) for run in sys.argv[1:]))
