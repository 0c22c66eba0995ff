"""Evaluate explanation methods on a data set: per-image metrics in SQLite, summaries, plots.

- :func:`evaluate` (:mod:`.runner`): run every metric the data allows for a list of CAM
  methods, writing ``DIR/results.sqlite``, ``summary.csv``, ``summary.md`` and PNG plots.
- :class:`ResultStore` (:mod:`.store`): the database (one row per image x method x metric).
- :func:`write_summary`, :func:`summarize` (:mod:`.summary`): means, medians and bootstrap
  intervals from a run's database.
- :func:`write_report` (:mod:`.report`): ``DIR/report.html``, one self-contained file with
  the configuration, the summary tables, the plots and a gallery of each method's best and
  worst images (:func:`select_gallery` picks them, :func:`build_gallery` draws them).

The runner (and with it torch and the metrics) is imported on first use, so that reading
a run's database or summarising it stays light.

Example:
    >>> from axiomcam import evaluation
    >>> evaluation.METRIC_GROUPS
    ('axioms', 'faithfulness', 'deletion', 'road', 'localization', 'discrimination', 'sanity')
"""

from __future__ import annotations

import importlib
from typing import Any

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
from .summary import METRICS, MetricSummary, SummaryFiles, summarize, write_summary

_FROM_RUNNER = ("METRIC_GROUPS", "EVALUATED_METHODS", "RunResult", "build_gallery",
                "check_methods", "check_metric_groups", "evaluate", "evaluation_inputs")


def __getattr__(name: str) -> Any:
    if name in _FROM_RUNNER:
        return getattr(importlib.import_module(".runner", __name__), name)
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
    "select_gallery",
    "summarize",
    "write_report",
    "write_summary",
]
