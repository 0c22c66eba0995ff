"""What a robustness run (:func:`axiomcam.workflows.robustness`) writes: ``results.json``
(:func:`robustness_json`), ``robustness.png`` (:func:`save_robustness_figure`: per flipped
image the clean image with the original class's map, the attacked image, and the attacked
image with that class's map, per method) and ``report.html`` (one self-contained page in
the evaluation report's style, :mod:`axiomcam.evaluation.pages`).

The summary: the flip rate (flipped / attacked) and, for a targeted attack, the success
rate (top-1 is the target); per method, over the flipped images, the pointing game and the
energy in the labelled object's boxes on the clean and on the attacked image, their paired
change (attacked minus clean), and the rank correlation of the two maps, each a mean with
its 95% percentile-bootstrap interval
(:func:`axiomcam.evaluation.summary.bootstrap_interval`, seeded with the run's seed).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from .. import __version__
from ..evaluation.pages import html_page, html_text, inline_jpeg
from ..evaluation.report import REPORT_NAME
from ..evaluation.summary import CONFIDENCE, bootstrap_interval, format_number
from ..figures import method_title, save_grid
from ..images import overlay
from .robustness import RobustnessRun, picture_of

__all__ = ["FIGURE_NAME", "RESULTS_NAME", "mean_interval", "robustness_json",
           "save_robustness_figure", "write_robustness"]

#: the summary's and the figure's file names in the output folder
RESULTS_NAME, FIGURE_NAME = "results.json", "robustness.png"

#: the per-method measures: key -> what it is
MEASURES = {
    "pointing_clean": "pointing game, clean image",
    "pointing_attacked": "pointing game, attacked image",
    "pointing_change": "pointing game, attacked minus clean",
    "energy_clean": "energy in the object's boxes, clean image",
    "energy_attacked": "energy in the object's boxes, attacked image",
    "energy_change": "energy in the object's boxes, attacked minus clean",
    "correlation": "Spearman rank correlation, clean map vs attacked map",
}


def mean_interval(values: Sequence[float], seed: int) -> dict[str, Any] | None:
    """``{"n", "mean", "low", "high"}``: the mean with its 95% bootstrap interval, ``None``
    for no values.

    Examples:
        >>> mean_interval([1.0, 1.0], seed=0)
        {'n': 2, 'mean': 1.0, 'low': 1.0, 'high': 1.0}
        >>> mean_interval([], seed=0) is None
        True
    """
    if not values:
        return None
    low, high = bootstrap_interval(values, seed=seed)
    return {"n": len(values), "mean": float(sum(values) / len(values)), "low": low, "high": high}


def _method_summary(run: RobustnessRun, method: str) -> dict[str, Any]:
    changes = [image.maps[method] for image in run.flipped]
    values = {
        "pointing_clean": [float(c.pointing[0]) for c in changes],
        "pointing_attacked": [float(c.pointing[1]) for c in changes],
        "pointing_change": [float(c.pointing[1]) - float(c.pointing[0]) for c in changes],
        "energy_clean": [c.energy[0] for c in changes],
        "energy_attacked": [c.energy[1] for c in changes],
        "energy_change": [c.energy[1] - c.energy[0] for c in changes],
        "correlation": [c.correlation for c in changes],
    }
    return {key: mean_interval(series, run.seed) for key, series in values.items()}


def robustness_json(run: RobustnessRun) -> dict[str, Any]:
    """The run as JSON-ready data: settings, counts, rates and per-method summaries with
    intervals, and every attacked image.

    Examples:
        >>> from axiomcam.workflows.robustness import AttackSettings
        >>> run = RobustnessRun(None, "toy", "1", ("gradcam",), "toys", AttackSettings(), 0)
        >>> robustness_json(run)["flip_rate"] is None
        True
    """
    settings = run.settings
    attacked = run.attacked
    summary: dict[str, Any] = {
        "model": run.model, "layer": run.layer, "methods": list(run.methods), "data": run.data,
        "attack": {"kind": settings.kind, "epsilon": settings.epsilon,
                   "targeted": settings.targeted, "steps": settings.steps,
                   "step_size": settings.step_size, "space": "pixels in [0, 1], L-inf",
                   "description": settings.describe()},
        "seed": run.seed, "confidence": CONFIDENCE, "images": run.images,
        "skipped": run.skipped, "attacked": len(attacked), "flipped": len(run.flipped),
        "flip_rate": mean_interval([float(a.flipped) for a in attacked], run.seed),
        "target_reached": mean_interval([float(a.predicted == a.target) for a in attacked],
                                        run.seed) if settings.targeted else None,
        "original_probability": {
            "clean": mean_interval([a.probabilities[0] for a in attacked], run.seed),
            "attacked": mean_interval([a.probabilities[1] for a in attacked], run.seed)},
        "measures": MEASURES,
        "methods_summary": {method: _method_summary(run, method) for method in run.methods},
        "seconds": run.seconds,
        "per_image": [{
            "image": a.image_id, "original": a.original, "target": a.target,
            "predicted": a.predicted, "probability_clean": a.probabilities[0],
            "probability_attacked": a.probabilities[1], "flipped": a.flipped,
            "maps": {name: {"pointing": list(change.pointing), "energy": list(change.energy),
                            "correlation": change.correlation}
                     for name, change in a.maps.items()}} for a in attacked],
    }
    return summary


def save_robustness_figure(run: RobustnessRun, path: str | Path) -> bool:
    """Write the figure of the kept flipped images (:attr:`RobustnessRun.examples`): per
    image and method, the clean image with the original class's map, the attacked image,
    and the attacked image with the original class's map. ``False`` (nothing written) when
    no image was flipped.
    """
    if not run.examples:
        return False
    pictures, titles, captions = [], [], []
    for image_id, clean, attacked, maps in run.examples:
        clean_picture, attacked_picture = picture_of(clean), picture_of(attacked)
        row, row_titles, row_captions = [], [], []
        for method, (clean_map, attacked_map) in maps.items():
            row += [overlay(clean_picture, clean_map), attacked_picture,
                    overlay(attacked_picture, attacked_map)]
            name = method_title(method)
            row_titles += [f"{image_id}\nclean, {name}", "attacked image",
                           f"attacked, {name}"]
            moved = float((attacked - clean).abs().max()) * 255
            row_captions += ["original class's map", f"max change {moved:.2g}/255",
                             "original class's map"]
        pictures.append(row)
        titles.append(row_titles)
        captions.append(row_captions)
    save_grid(path, pictures, titles, captions=captions)
    return True


def _cell(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return '<td class="num">-</td>'
    return (f'<td class="num">{html_text(format_number(entry["mean"]))} '
            f'[{html_text(format_number(entry["low"]))}, '
            f'{html_text(format_number(entry["high"]))}]</td>')


def _page_body(run: RobustnessRun, summary: dict[str, Any], figure: Path | None) -> str:
    rows = [("model", run.model), ("layer", run.layer), ("methods", ", ".join(run.methods)),
            ("data set", run.data), ("attack", run.settings.describe()),
            ("images", run.images), ("skipped (no label or box, or misclassified clean)",
                                     run.skipped),
            ("attacked", summary["attacked"]), ("flipped", summary["flipped"]),
            ("wall time", f"{run.seconds:.1f} s")]
    parts = ['<h2 id="run">Run</h2><table>' + "".join(
        f"<tr><th>{html_text(k)}</th><td>{html_text(v)}</td></tr>" for k, v in rows)
        + "</table>",
        f"<p>Means with their {CONFIDENCE:.0%} percentile-bootstrap intervals.</p><table>"
        f"<tr><th>flip rate</th>{_cell(summary['flip_rate'])}</tr>"
        + (f"<tr><th>target reached</th>{_cell(summary['target_reached'])}</tr>"
           if run.settings.targeted else "")
        + f"<tr><th>original class's probability, clean</th>"
        f"{_cell(summary['original_probability']['clean'])}</tr>"
        f"<tr><th>original class's probability, attacked</th>"
        f"{_cell(summary['original_probability']['attacked'])}</tr></table>",
        '<h2 id="maps">The original class\'s map on the flipped images</h2><table><tr>'
        "<th>measure</th>" + "".join(f"<th>{html_text(method_title(m))}</th>"
                                     for m in run.methods) + "</tr>"]
    for key, description in MEASURES.items():
        parts.append(f"<tr><th>{html_text(description)}</th>" + "".join(
            _cell(summary["methods_summary"][m][key]) for m in run.methods) + "</tr>")
    parts.append("</table>")
    if figure is not None:
        with Image.open(figure) as picture:
            parts.append(f'<h2 id="figure">Examples</h2><p><img src="{inline_jpeg(picture, 1600)}"'
                         ' alt="clean map, attacked image, attacked map" style="max-width:100%">'
                         "</p>")
    else:
        parts.append("<p>No image was flipped: nothing to compare.</p>")
    return "\n".join(parts) + "\n"


def write_robustness(run: RobustnessRun, out_dir: str | Path) -> list[Path]:
    """Write ``results.json``, ``robustness.png`` (when an image was flipped) and
    ``report.html`` into ``out_dir`` (created if missing); sets ``run.out_dir`` and
    ``run.files``.

    Returns:
        the files written.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    run.out_dir = folder
    summary = robustness_json(run)
    results = folder / RESULTS_NAME
    results.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    figure = folder / FIGURE_NAME
    drawn = save_robustness_figure(run, figure)
    if not drawn and figure.exists():   # an earlier run's figure would mislead
        figure.unlink()
    page = folder / REPORT_NAME
    page.write_text(html_page(f"axiomcam robustness: {run.model} on {run.data}",
                              _page_body(run, summary, figure if drawn else None),
                              version=__version__), encoding="utf-8")
    run.files = [results, *([figure] if drawn else []), page]
    return run.files
