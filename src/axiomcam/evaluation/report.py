"""The HTML report of an evaluation run: ``DIR/report.html``, one self-contained file.

The report reads the run's database (:mod:`axiomcam.evaluation.store`) and shows

- the run's configuration (model, layer, methods, metric groups, data set, number of
  images, seed, parameters, versions, start and end times);
- the summary tables of :func:`axiomcam.evaluation.summary.summarize`: per metric and
  method the mean, median and 95% percentile-bootstrap interval of the mean, with the
  metric's meaning and direction (:data:`axiomcam.evaluation.groups.METRICS`);
- every plot :func:`axiomcam.evaluation.summary.write_summary` wrote;
- a gallery: per method the best and worst images by one **ranking metric**, the first of
  :data:`RANKING_METRICS` the method has values of: insertion AUC minus deletion AUC
  (higher is better), else Average Drop (lower), else the energy pointing game (higher),
  else the conservation error (lower). :func:`select_gallery` picks the image ids; the
  pictures (map over image) are drawn with the model
  (:func:`axiomcam.evaluation.gallery.build_gallery`).

Self-contained means readable offline in any browser: every image is inlined as a base64
``data:`` URI, the style sheet is inline, there is no script and no reference to any URL.
Every string that comes from data (image ids, class names, paths, the configuration) is
HTML-escaped, and ``://`` is written ``:&#47;&#47;`` so that no ``http://`` appears in the
file even when a path or id holds one (a browser shows it unchanged).

Examples:
    >>> import tempfile
    >>> from axiomcam.evaluation.store import ResultRow, ResultStore
    >>> with tempfile.TemporaryDirectory() as directory:
    ...     with ResultStore.create(directory, {"methods": ["gradcam"], "seed": 0}) as store:
    ...         store.write_batch(results=[ResultRow("a", "gradcam", "average_drop", 10.0),
    ...                                    ResultRow("b", "gradcam", "average_drop", 30.0)])
    ...     path = write_report(directory)
    ...     text = path.read_text()
    ...     path.name, "gradcam" in text, "http://" in text
    ('report.html', True, False)
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from .groups import DERIVED_METRICS, METRICS, MetricInfo, changed_parameters
from .pages import THUMBNAIL_SIZE, html_page
from .pages import data_uri as _data_uri
from .pages import html_text as _text
from .pages import inline_jpeg as _jpeg_uri
from .store import ResultStore
from .summary import (
    BOOTSTRAP_RESAMPLES,
    CONFIDENCE,
    MetricSummary,
    SummaryFiles,
    format_number,
    summarize,
    write_summary,
)

__all__ = [
    "DERIVED_METRICS",
    "GALLERY_SIZE",
    "RANKING_METRICS",
    "REPORT_NAME",
    "THUMBNAIL_SIZE",
    "GalleryItem",
    "GallerySelection",
    "RankedImage",
    "metric_info",
    "per_image_values",
    "select_gallery",
    "write_report",
]

#: the report's file name inside the run's directory
REPORT_NAME = "report.html"

#: default number of best (and of worst) images per method in the gallery
GALLERY_SIZE = 3

#: the metrics that can rank the gallery, most informative first: a method's gallery is
#: ranked by the first of these it has values of
RANKING_METRICS: tuple[str, ...] = (
    "insertion_minus_deletion", "average_drop", "energy_pointing_game", "conservation_error",
)


def metric_info(metric: str) -> MetricInfo | None:
    """What a metric is (stored: :data:`~axiomcam.evaluation.groups.METRICS`; derived:
    :data:`~axiomcam.evaluation.groups.DERIVED_METRICS`), ``None`` for a metric neither
    knows.

    Examples:
        >>> metric_info("average_drop").better, metric_info("insertion_minus_deletion").better
        ('lower', 'higher')
        >>> metric_info("speed") is None
        True
    """
    return METRICS.get(metric, DERIVED_METRICS.get(metric))


@dataclass(frozen=True)
class RankedImage:
    """One image's value of the ranking metric.

    Attributes:
        image_id: the image's id in the data set.
        value: its value of the ranking metric, for the method ranked.
    """

    image_id: str
    value: float


@dataclass(frozen=True)
class GallerySelection:
    """The images of one method's gallery.

    Attributes:
        method: the method.
        metric: the ranking metric (one of :data:`RANKING_METRICS`).
        better: ``"higher"`` or ``"lower"``: which values are better.
        images: how many images have a value of ``metric`` for this method.
        best: the best images, best first.
        worst: the worst images, worst first (never one of ``best``).
    """

    method: str
    metric: str
    better: str
    images: int
    best: tuple[RankedImage, ...]
    worst: tuple[RankedImage, ...]


@dataclass(frozen=True)
class GalleryItem:
    """One picture of the gallery: a method's map over an image, and its caption.

    Attributes:
        image_id: the image's id in the data set.
        rank: ``"best"`` or ``"worst"``: which row of the method's gallery it belongs to.
        metric: the ranking metric.
        value: the image's value of ``metric`` for the method.
        picture: the map overlaid on the image (RGB); shrunk to :data:`THUMBNAIL_SIZE` on
            its longest side if larger.
        class_name: the class the map explains.
        note: more caption text (e.g. ``"label; top-1: tabby 0.62"``).
    """

    image_id: str
    rank: Literal["best", "worst"]
    metric: str
    value: float
    picture: Image.Image
    class_name: str | None = None
    note: str = ""


def per_image_values(store: ResultStore, method: str, metric: str) -> dict[str, float]:
    """The per-image values of ``metric`` for ``method``, by image id, in the order stored.

    ``"insertion_minus_deletion"`` is ``insertion_auc - deletion_auc`` for the images that
    have both.

    Examples:
        >>> import tempfile
        >>> from axiomcam.evaluation.store import ResultRow, ResultStore
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     with ResultStore.create(directory, {}) as store:
        ...         store.write_batch(results=[ResultRow("a", "m", "insertion_auc", 0.75),
        ...                                    ResultRow("a", "m", "deletion_auc", 0.25)])
        ...         per_image_values(store, "m", "insertion_minus_deletion")
        {'a': 0.5}
    """
    if metric == "insertion_minus_deletion":
        insertion = per_image_values(store, method, "insertion_auc")
        deletion = per_image_values(store, method, "deletion_auc")
        return {image: value - deletion[image] for image, value in insertion.items()
                if image in deletion}
    return {row.image_id: row.value for row in store.results(method=method, metric=metric)}


def _ranked(values: Mapping[str, float], better: str) -> list[RankedImage]:
    """Best first; ties keep the stored order (the sort is stable)."""
    images = [RankedImage(image, value) for image, value in values.items()]
    sign = -1.0 if better == "higher" else 1.0
    return sorted(images, key=lambda item: sign * item.value)


def select_gallery(run: ResultStore | str | os.PathLike[str], k: int = GALLERY_SIZE,
                   ) -> dict[str, GallerySelection]:
    """Per method, the ``k`` best and ``k`` worst images by its ranking metric.

    The ranking metric is the first of :data:`RANKING_METRICS` the method has values of.
    Of ``n`` images ranked, ``min(k, ceil(n / 2))`` are the best and ``min(k, n - best)``
    the worst, so that no image is in both rows. Ties keep the order the images were
    stored in.

    Args:
        run: the run's open store or its directory.
        k: best (and worst) images per method, ``>= 0``.

    Returns:
        ``{method: GallerySelection}`` in the run's method order; a method without any
        ranking metric (e.g. Layer-CAM when only the axioms ran) is left out.

    Raises:
        ValueError: ``k`` is not an int ``>= 0``.
        FileNotFoundError: a directory without ``results.sqlite``.

    Examples:
        >>> import tempfile
        >>> from axiomcam.evaluation.store import ResultRow, ResultStore
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     with ResultStore.create(directory, {}) as store:
        ...         store.write_batch(results=[
        ...             ResultRow(name, "gradcam", "average_drop", drop)
        ...             for name, drop in [("a", 40.0), ("b", 10.0), ("c", 90.0)]])
        ...     chosen = select_gallery(directory, k=1)["gradcam"]
        ...     chosen.metric, [i.image_id for i in chosen.best], [i.image_id for i in chosen.worst]
        ('average_drop', ['b'], ['c'])
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be an int >= 0, got {k!r}")
    if not isinstance(run, ResultStore):
        with ResultStore.open(run) as store:
            return select_gallery(store, k)
    selections = {}
    for method in run.methods():
        for metric in RANKING_METRICS:
            values = per_image_values(run, method, metric)
            if values:
                break
        else:
            continue
        better = metric_info(metric).better  # type: ignore[union-attr]  (all are known)
        ranked = _ranked(values, better)
        best = min(k, math.ceil(len(ranked) / 2))
        worst = min(k, len(ranked) - best)
        selections[method] = GallerySelection(
            method=method, metric=metric, better=better, images=len(ranked),
            best=tuple(ranked[:best]), worst=tuple(ranked[::-1][:worst]))
    return selections


# ------------------------------------------------------------------------------ HTML
# the configuration keys shown first, with their labels; the others follow as stored
_CONFIG_LABELS = {
    "model": "model",
    "probability": "p_c read by (the model's head)",
    "target_layer": "layer",
    "methods": "methods",
    "metric_groups": "metric groups",
    "data": "data set",
    "seed": "seed",
    "device": "device",
    "axiomcam_version": "axiomcam version",
    "torch_version": "torch version",
    "python_version": "Python version",
}


def _value_html(value: Any) -> str:
    if isinstance(value, Mapping):
        rows = "".join(f"<tr><th>{_text(key)}</th><td>{_value_html(item)}</td></tr>"
                       for key, item in value.items())
        return f"<table>{rows}</table>"
    if isinstance(value, list | tuple):
        if all(not isinstance(item, Mapping | list | tuple) for item in value):
            return _text(", ".join(map(str, value))) if value else "(none)"
        return "<br>".join(_value_html(item) for item in value)
    if value is None:
        return "(none)"
    return _text(value)


def _configuration_html(store: ResultStore) -> str:
    config = store.config
    details = store.details
    rows = []
    for key, label in _CONFIG_LABELS.items():
        if key in config:
            rows.append((label, _value_html(config[key])))
    rows.append(("images evaluated", _text(store.count("images"))))
    rows.append(("files skipped", _text(store.count("problems"))))
    rows.append(("started (UTC)", _text(store.started)))
    rows.append(("finished (UTC)", _text(store.finished or "not finished")))
    seconds = details.get("seconds", {})
    if isinstance(seconds, Mapping) and isinstance(seconds.get("total"), int | float):
        rows.append(("wall time", _text(f"{seconds['total']:.1f} s")))
    for key, value in config.items():
        if key not in _CONFIG_LABELS:
            rows.append((_text(key), _value_html(value)))
    body = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in rows)
    return f'<h2 id="configuration">Configuration</h2>\n<table>{body}</table>\n'


def _direction(metric: str) -> str:
    info = metric_info(metric)
    return f"{info.better} is better" if info is not None and info.better else ""


# means this close to the best are highlighted with it: methods that are equal in exact
# arithmetic (CAM, Grad-CAM, XGrad-CAM and HiResCAM on a GAP + linear head) differ by
# float32 rounding, ~1e-6 relative
BEST_RELATIVE_TOLERANCE = 1e-5


def _best_methods(rows: Sequence[MetricSummary]) -> set[str]:
    info = metric_info(rows[0].metric)
    if info is None or info.better not in ("higher", "lower"):
        return set()
    pick = max if info.better == "higher" else min
    target = pick(row.mean for row in rows)
    return {row.method for row in rows
            if math.isclose(row.mean, target, rel_tol=BEST_RELATIVE_TOLERANCE, abs_tol=1e-12)}


def _summary_html(summaries: Sequence[MetricSummary], seed: int | None,
                  changed: Sequence[str] = ()) -> str:
    if not summaries:
        return '<h2 id="summary">Summary</h2>\n<p>No results are stored.</p>\n'
    methods = list(dict.fromkeys(s.method for s in summaries))
    by_metric: dict[str, list[MetricSummary]] = {}
    for summary in summaries:
        by_metric.setdefault(summary.metric, []).append(summary)
    seed_text = "" if seed is None else f", seed {seed}"
    parts = [
        '<h2 id="summary">Summary</h2>',
        f'<p>Mean over images per method; the best mean of each metric is <span '
        f'class="best">highlighted</span> where the metric has a direction (with the means '
        f'within {BEST_RELATIVE_TOLERANCE:.0e} of it, relatively: float rounding). The tables '
        f'below give the median and the {CONFIDENCE:.0%} percentile-bootstrap interval of '
        f'the mean ({BOOTSTRAP_RESAMPLES} resamples{seed_text}).</p>',
        *([f'<p class="note">The metric descriptions quote the protocol\'s defaults; this '
           f'run changed {_text(", ".join(changed))}.</p>'] if changed else []),
        "<table><tr><th>metric</th><th>direction</th>"
        + "".join(f"<th>{_text(method)}</th>" for method in methods) + "</tr>",
    ]
    for metric, rows in by_metric.items():
        means = {row.method: row for row in rows}
        best = _best_methods(rows)
        cells = []
        for method in methods:
            row = means.get(method)
            if row is None:
                cells.append('<td class="num">-</td>')
            else:
                css = "num best" if method in best else "num"
                cells.append(f'<td class="{css}">{_text(format_number(row.mean))}</td>')
        parts.append(f'<tr><th><a href="#metric-{_text(metric)}">{_text(metric)}</a></th>'
                     f"<td>{_text(_direction(metric))}</td>{''.join(cells)}</tr>")
    parts.append("</table>")
    for metric, rows in by_metric.items():
        info = metric_info(metric)
        direction = _direction(metric)
        description = "" if info is None else _text(info.description)
        if direction:
            description += f" (<b>{_text(direction)}</b>)"
        best = _best_methods(rows)
        parts.append(f'<h3 id="metric-{_text(metric)}">{_text(metric)}</h3>')
        if description:
            parts.append(f'<p class="note">{description}</p>')
        parts.append(f"<table><tr><th>method</th><th>n</th><th>mean</th><th>median</th>"
                     f"<th>{CONFIDENCE:.0%} interval of the mean</th></tr>")
        for row in rows:
            css = ' class="best"' if row.method in best else ""
            parts.append(
                f"<tr{css}><td>{_text(row.method)}</td><td class=\"num\">{row.n}</td>"
                f'<td class="num">{_text(format_number(row.mean))}</td>'
                f'<td class="num">{_text(format_number(row.median))}</td>'
                f'<td class="num">[{_text(format_number(row.low))}, '
                f"{_text(format_number(row.high))}]</td></tr>")
        parts.append("</table>")
    return "\n".join(parts) + "\n"


def _plots_html(directory: Path, plots: Sequence[Path]) -> str:
    parts = ['<h2 id="plots">Plots</h2>']
    figures = []
    for plot in plots:
        path = Path(plot)
        try:
            data = path.read_bytes()
        except OSError as error:
            figures.append(f'<p class="note">{_text(path.name)} could not be read: '
                           f"{_text(error.strerror or error)}</p>")
            continue
        try:
            name = path.relative_to(directory).as_posix()
        except ValueError:
            name = path.name
        mime = "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
        figures.append(f'<figure><img src="{_data_uri(data, mime)}" alt="{_text(name)}">'
                       f"<figcaption>{_text(name)}</figcaption></figure>")
    if not figures:
        figures.append("<p>No plot was written.</p>")
    parts.append('<div class="plots">' + "\n".join(figures) + "</div>")
    return "\n".join(parts) + "\n"


def _gallery_html(gallery: Mapping[str, Sequence[GalleryItem]] | None) -> str:
    parts = ['<h2 id="gallery">Gallery: best and worst images per method</h2>']
    if not gallery or not any(gallery.values()):
        parts.append("<p>No gallery: no picture was drawn for this report (the images "
                     "are re-explained by the runner, which has the model).</p>")
        return "\n".join(parts) + "\n"
    metrics = list(dict.fromkeys(item.metric for items in gallery.values() for item in items))
    named = ", ".join(f"<code>{_text(metric)}</code> ({_text(_direction(metric))})"
                      for metric in metrics)
    parts.append(f"<p>Ranked by {named}: the first of {_text(', '.join(RANKING_METRICS))} "
                 "the run computed for the method. Each picture is the method's map over "
                 "the image it explains (whole image, as the network saw it), with the "
                 "ground-truth boxes of the explained class in white.</p>")
    for method, items in gallery.items():
        if not items:
            continue
        metric = items[0].metric
        parts.append(f'<h3 id="gallery-{_text(method)}">{_text(method)}</h3>')
        parts.append(f'<p class="note">ranked by <code>{_text(metric)}</code> '
                     f"({_text(_direction(metric))})</p>")
        for rank in ("best", "worst"):
            row = [item for item in items if item.rank == rank]
            if not row:
                continue
            figures = []
            for item in row:
                caption = [f"<b>{_text(item.image_id)}</b>"]
                if item.class_name is not None:
                    caption.append(f"class: {_text(item.class_name)}")
                if item.note:
                    caption.append(_text(item.note))
                caption.append(f"{_text(item.metric)} = {_text(format_number(item.value))}")
                figures.append(
                    f'<figure class="gallery-item" data-method="{_text(method)}" '
                    f'data-rank="{rank}" data-image-id="{_text(item.image_id)}" '
                    f'data-metric="{_text(item.metric)}" data-value="{float(item.value)!r}">'
                    f'<img src="{_jpeg_uri(item.picture)}" '
                    f'alt="{_text(method)} map of {_text(item.image_id)}">'
                    f"<figcaption>{'<br>'.join(caption)}</figcaption></figure>")
            parts.append(f"<h4>{rank}</h4>")
            parts.append('<div class="row">' + "\n".join(figures) + "</div>")
    return "\n".join(parts) + "\n"


def _problems_html(store: ResultStore) -> str:
    problems = store.problems()
    parts = ['<h2 id="problems">Skipped files</h2>']
    if problems:
        parts.append("<ul>" + "".join(
            f"<li><code>{_text(p.path)}</code>: {_text(p.reason)}</li>" for p in problems)
            + "</ul>")
    else:
        parts.append("<p>No file was skipped.</p>")
    return "\n".join(parts) + "\n"


def write_report(out_dir: str | os.PathLike[str],
                 gallery: Mapping[str, Sequence[GalleryItem]] | None = None, *,
                 title: str | None = None, summaries: Sequence[MetricSummary] | None = None,
                 files: SummaryFiles | None = None) -> Path:
    """Write ``out_dir/report.html``: configuration, summary tables, plots and gallery.

    Args:
        out_dir: the run's directory (holding ``results.sqlite``).
        gallery: per method, its gallery pictures (from
            :func:`axiomcam.evaluation.gallery.build_gallery`); ``None``: the report says
            that there is no gallery.
        title: the page's title (default: ``"axiomcam evaluation: MODEL on DATA"``).
        summaries: the run's :func:`~axiomcam.evaluation.summary.summarize` (``None``:
            computed here).
        files: what :func:`~axiomcam.evaluation.summary.write_summary` wrote, whose plots
            are inlined (``None``: ``write_summary`` is run here first).

    Returns:
        the report's path.

    Raises:
        FileNotFoundError: no database in ``out_dir``.

    Examples:
        >>> import tempfile
        >>> from PIL import Image
        >>> from axiomcam.evaluation.store import ResultRow, ResultStore
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     with ResultStore.create(directory, {"seed": 0}) as store:
        ...         store.write_batch(results=[ResultRow("<x>", "xgradcam", "average_drop", 5.0)])
        ...     item = GalleryItem("<x>", "best", "average_drop", 5.0, Image.new("RGB", (8, 8)))
        ...     text = write_report(directory, {"xgradcam": [item]}).read_text()
        ...     "&lt;x&gt;" in text, "<x>" in text
        (True, False)
    """
    directory = Path(out_dir)
    if summaries is None:
        summaries = summarize(directory)
    if files is None:
        files = write_summary(directory)
    with ResultStore.open(directory) as store:
        config = store.config
        if title is None:
            model = config.get("model", "a model")
            data = config.get("data")
            title = f"axiomcam evaluation: {model}" + (f" on {data}" if data else "")
        seed = config.get("seed")
        seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
        sections = [
            _configuration_html(store),
            _summary_html(summaries, seed, changed_parameters(config.get("parameters", {}))),
            _plots_html(directory, files.plots),
            _gallery_html(gallery),
            _problems_html(store),
        ]
        version = config.get("axiomcam_version")
    contents = ('<p class="note">Contents: <a href="#configuration">configuration</a> · '
                '<a href="#summary">summary</a> · <a href="#plots">plots</a> · '
                '<a href="#gallery">gallery</a> · <a href="#problems">skipped files</a></p>')
    page = html_page(title, f"{contents}\n" + "".join(sections), version=version)
    path = directory / REPORT_NAME
    path.write_text(page, encoding="utf-8")
    return path
