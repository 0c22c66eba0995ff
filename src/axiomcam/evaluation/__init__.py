"""Evaluate explanation methods on a data set: per-image metrics in SQLite, summaries, plots.

- :func:`evaluate` (:mod:`.runner`): run every metric the data allows for a list of CAM
  methods, writing ``DIR/results.sqlite``, ``summary.csv``, ``summary.md`` and PNG plots.
- :mod:`.groups`: the metric groups, one module each (what they store, need and cost),
  and their registry (:data:`METRIC_GROUPS`, :data:`METRICS`).
- :class:`ResultStore` (:mod:`.store`): the database (one row per image x method x metric);
  :mod:`.merging` extends a run or merges a distributed run's parts, :mod:`.resuming`
  decides which of them a run continues.
- :func:`write_summary`, :func:`summarize` (:mod:`.summary`): means, medians and bootstrap
  intervals from a run's database.
- :func:`write_report` (:mod:`.report`): ``DIR/report.html``, one self-contained file with
  the configuration, the summary tables, the plots and a gallery of each method's best and
  worst images (:func:`select_gallery` picks them, :func:`build_gallery` of
  :mod:`.gallery` draws them).

The runner, the gallery and the preprocessing (:func:`evaluation_inputs`, :mod:`.inputs`),
and with them the metrics, are imported on first use, so that reading a run's database
or summarising it stays light.

Examples:
    >>> from axiomcam import evaluation
    >>> evaluation.METRIC_GROUPS
    ('axioms', 'faithfulness', 'deletion', 'road', 'localization', 'discrimination', \
'mask_iou', 'sanity', 'occlusion_correlation', 'counterfactual', 'complexity', \
'random_logit', 'mask_localization', 'box_localization', 'faithfulness_correlation', \
'robustness')
"""

from __future__ import annotations

import importlib
from typing import Any

from .groups import METRIC_GROUPS, METRICS, check_metric_groups
from .report import (
    RANKING_METRICS,
    REPORT_NAME,
    GalleryItem,
    GallerySelection,
    RankedImage,
    select_gallery,
    write_report,
)
from .store import (
    DATABASE_NAME,
    ConfigurationMismatchError,
    NonFiniteValueError,
    ResultStore,
)
from .summary import MetricSummary, SummaryFiles, summarize, write_summary

# names imported on first use (with torchvision and the metrics), and their modules
_LAZY = {"EVALUATED_METHODS": ".request", "check_methods": ".request", "RunResult": ".runner",
         "evaluate": ".runner", "build_gallery": ".gallery", "evaluation_inputs": ".inputs",
         "evaluation_masks": ".inputs"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DATABASE_NAME",
    "EVALUATED_METHODS",
    "METRICS",
    "METRIC_GROUPS",
    "RANKING_METRICS",
    "REPORT_NAME",
    "ConfigurationMismatchError",
    "GalleryItem",
    "GallerySelection",
    "MetricSummary",
    "NonFiniteValueError",
    "RankedImage",
    "ResultStore",
    "RunResult",
    "SummaryFiles",
    "build_gallery",
    "check_methods",
    "check_metric_groups",
    "evaluate",
    "evaluation_inputs",
    "evaluation_masks",
    "select_gallery",
    "summarize",
    "write_report",
    "write_summary",
]
