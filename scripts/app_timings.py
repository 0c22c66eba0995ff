"""Seconds the explorer (``axiomcam serve``) takes to answer, per layer and methods: the
table of docs/app.md.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/app_timings.py

The pretrained MobileNetV2 on scikit-image's ``chelsea``, class 285, a fresh probe of the
layer for each row (as for a new image), one torch thread.
"""

from __future__ import annotations

import time

import torch

from axiomcam import models
from axiomcam.app.explorer import Explorer

ROWS = [
    ("features.18", ["gradcam", "xgradcam"]),
    ("features.17.conv.1", ["gradcam", "xgradcam"]),
    ("features.17.conv.1", ["gradcam++", "layercam", "ablationcam"]),
    ("features.18", ["scorecam"]),
]


def main() -> None:
    torch.set_num_threads(1)
    explorer = Explorer(models.load("mobilenet_v2"))
    opened = explorer.open_sample("chelsea")
    print("| layer | methods | seconds |\n|---|---|---|")
    for layer, methods in ROWS:
        opened.probes.clear()
        started = time.perf_counter()
        explorer.explain(opened, 285, layer, methods)
        print(f"| `{layer}` | {', '.join(methods)} | {time.perf_counter() - started:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
