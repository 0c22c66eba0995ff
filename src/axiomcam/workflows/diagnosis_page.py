"""The pictures and the page of a diagnosis (``axiomcam diagnose``): one side-by-side
figure per failure (:func:`save_failure_figure`) and ``report.html``
(:func:`write_page`), one self-contained page in the evaluation report's style
(:mod:`axiomcam.evaluation.pages`).

A failure's figure has three panels: the image with its boxes (the labelled object's in
white, the other objects' in magenta), the predicted class's map and the true class's
map over it, each titled with its class and probability and captioned with where its mass and its
peak lie (the peak of the predicted class's map is the failure's verdict).

The page: the run (model, layer, method, data set, accuracy), where the predicted class's
evidence lies over all failures (verdict counts, mean shares with bootstrap intervals,
beside the true class's and the regions' areas), the confusion pairs, then every failure's
figure grouped by pair, then the skipped files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .. import __version__
from ..evaluation.pages import THUMBNAIL_SIZE, html_page, html_text, inline_jpeg
from ..evaluation.report import REPORT_NAME
from ..evaluation.summary import CONFIDENCE, format_number
from ..figures import method_title, save_grid
from ..images import draw_boxes, overlay
from ..metrics import EVIDENCE_REGIONS
from .diagnosis import VERDICT_RULE, DiagnoseRun, Evidence, diagnosis_json

__all__ = ["FAILURES_FOLDER", "FailureFigure", "evidence_caption", "save_failure_figure",
           "write_page"]

#: the folder of the failures' figures, inside the diagnosis folder
FAILURES_FOLDER = "failures"

#: box colours: the labelled object's, the other objects'
OBJECT_COLOUR, OTHER_COLOUR = "white", "magenta"

#: the width of a failure's figure on the page, in pixels
FIGURE_WIDTH = 3 * THUMBNAIL_SIZE + 48

_STYLE = f""".failure figure {{ display: inline-block; margin: 0.4em; width: {FIGURE_WIDTH}px;
  vertical-align: top; }}
.failure img {{ max-width: 100%; border: 1px solid #ccc; }}
"""


@dataclass(frozen=True)
class FailureFigure:
    """What a failure's figure shows.

    Attributes:
        image: the image at its original resolution.
        image_id: its id (the first panel's title).
        input_size: the side the network saw it at (the maps' and boxes' pixels).
        maps: the predicted and the true class's ``(S, S)`` maps in ``[0, 1]``.
        object_boxes: ``(n, 4)`` the labelled object's boxes, in input pixels.
        other_boxes: ``(m, 4)`` the other objects' boxes.
        predicted: the predicted class's name and probability.
        true: the true class's name and probability.
        evidence: where each map's mass lies (``None``: no box known).
        method: the method that drew the maps.
    """

    image: Image.Image
    image_id: str
    input_size: int
    maps: tuple[torch.Tensor, torch.Tensor]
    object_boxes: torch.Tensor
    other_boxes: torch.Tensor
    predicted: tuple[str, float]
    true: tuple[str, float]
    evidence: tuple[Evidence | None, Evidence | None]
    method: str


def evidence_caption(evidence: Evidence | None) -> str:
    """A map's shares in a few words, for a figure's caption.

    Examples:
        >>> evidence_caption(Evidence(0.125, 0.0, 0.875, "background"))
        'object 0.12, other 0.00, background 0.88; peak on background'
        >>> evidence_caption(None)
        'no boxes known'
    """
    if evidence is None:
        return "no boxes known"
    return (f"object {evidence.object:.2f}, other {evidence.other_object:.2f}, "
            f"background {evidence.background:.2f}; peak on {evidence.verdict or 'nothing'}")


def _draw_boxes(picture: Image.Image, figure: FailureFigure) -> Image.Image:
    """``picture`` with the boxes drawn (scaled from input pixels to its size)."""
    scale = (picture.width / figure.input_size, picture.height / figure.input_size)
    draw_boxes(picture, figure.other_boxes, OTHER_COLOUR, scale)
    return draw_boxes(picture, figure.object_boxes, OBJECT_COLOUR, scale)


def save_failure_figure(path: str | Path, figure: FailureFigure) -> None:
    """Write a failure's three panels (image, predicted class's map, true class's map) to
    ``path`` (PNG), each picture the whole image scaled to :data:`THUMBNAIL_SIZE` on its
    longest side, as the gallery of ``report.html`` draws them.

    Examples:
        >>> import tempfile, os, torch
        >>> from PIL import Image
        >>> path = os.path.join(tempfile.mkdtemp(), "failure.png")
        >>> save_failure_figure(path, FailureFigure(
        ...     Image.new("RGB", (16, 8)), "x", 8, (torch.zeros(8, 8), torch.ones(8, 8)),
        ...     torch.tensor([[0.0, 0.0, 4.0, 4.0]]), torch.zeros(0, 4), ("dog", 0.7),
        ...     ("cat", 0.2), (None, None), "xgradcam"))
        >>> Image.open(path).width > Image.open(path).height
        True
    """
    width, height = figure.image.size
    scale = THUMBNAIL_SIZE / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BILINEAR
    shown = figure.image.convert("RGB").resize(size, resample)
    pictures = [_draw_boxes(shown.copy(), figure)]
    pictures += [_draw_boxes(overlay(shown, cam_map.clamp(0, 1)), figure)
                 for cam_map in figure.maps]
    title = method_title(figure.method)
    titles = [f"{figure.image_id}\nlabel: {figure.true[0]}",
              f"predicted: {figure.predicted[0]} ({figure.predicted[1]:.3g})\n{title}",
              f"true: {figure.true[0]} ({figure.true[1]:.3g})\n{title}"]
    captions = ["boxes: labelled object white,\nother objects magenta",
                *(evidence_caption(item).replace("; ", "\n")
                  for item in figure.evidence)]
    save_grid(path, [pictures], [titles], captions=[captions])


# ----------------------------------------------------------------------------- the page
def _share_cell(summary: dict[str, Any], region: str) -> str:
    share = summary["shares"].get(region)
    if share is None:
        return '<td class="num">-</td>'
    return (f'<td class="num">{html_text(format_number(share["mean"]))} '
            f'[{html_text(format_number(share["low"]))}, '
            f'{html_text(format_number(share["high"]))}]</td>')


def _run_html(run: DiagnoseRun, summary: dict[str, Any]) -> str:
    accuracy = summary["accuracy"]
    rows = [("model", run.model), ("layer", run.layer), ("method", run.method),
            ("data set", run.data), ("images", run.images), ("labelled", run.labelled),
            ("top-1 accuracy", "-" if accuracy is None else f"{accuracy:.3f}"),
            ("misclassified", len(run.failures)), ("files skipped", len(run.problems)),
            ("wall time", f"{run.seconds:.1f} s")]
    body = "".join(f"<tr><th>{html_text(key)}</th><td>{html_text(value)}</td></tr>"
                   for key, value in rows)
    return f'<h2 id="run">Run</h2>\n<table>{body}</table>\n'


def _evidence_html(summary: dict[str, Any]) -> str:
    evidence = summary["evidence"]
    predicted, true, area = (evidence[key] for key in ("predicted_class", "true_class", "area"))
    parts = ['<h2 id="evidence">Where the predicted class\'s evidence lies</h2>',
             f'<p>Over the {predicted["images"]} failures whose images have boxes. Verdict: '
             f"{html_text(VERDICT_RULE)}. Shares: mean over the failures with the "
             f"{CONFIDENCE:.0%} percentile-bootstrap interval of the mean; the true class's "
             "map and each region's share of the image's area (a uniform map) beside them. "
             f"In {evidence['named_another_object']} failures the predicted class is another "
             "object's of the image.</p>"]
    if not predicted["images"]:
        parts.append("<p>No failure's image has boxes: no verdict.</p>")
        return "\n".join(parts) + "\n"
    parts.append("<table><tr><th>region</th><th>verdicts</th><th>share of the predicted "
                 "class's map</th><th>share of the true class's map</th><th>share of the "
                 "area</th></tr>")
    for region in EVIDENCE_REGIONS:
        parts.append(f"<tr><th>{html_text(region)}</th>"
                     f'<td class="num">{predicted["verdicts"][region]}</td>'
                     f"{_share_cell(predicted, region)}{_share_cell(true, region)}"
                     f"{_share_cell(area, region)}</tr>")
    parts.append("</table>")
    return "\n".join(parts) + "\n"


def _pairs_html(summary: dict[str, Any]) -> str:
    parts = ['<h2 id="pairs">Confusion pairs</h2>']
    if not summary["pairs"]:
        parts.append("<p>No labelled image was misclassified: nothing to diagnose.</p>")
        return "\n".join(parts) + "\n"
    parts.append("<table><tr><th>true</th><th>predicted</th><th>failures</th><th>mean "
                 "probability of the true class</th><th>of the predicted class</th></tr>")
    for number, pair in enumerate(summary["pairs"]):
        parts.append(
            f'<tr><td><a href="#pair-{number}">{html_text(pair["true"]["name"])}</a></td>'
            f'<td>{html_text(pair["predicted"]["name"])}</td>'
            f'<td class="num">{pair["count"]}</td>'
            f'<td class="num">{pair["true"]["probability"]:.3f}</td>'
            f'<td class="num">{pair["predicted"]["probability"]:.3f}</td></tr>')
    parts.append("</table>")
    return "\n".join(parts) + "\n"


def _failures_html(run: DiagnoseRun, summary: dict[str, Any]) -> str:
    parts = ['<h2 id="failures">Failures, by confusion pair</h2>']
    by_image = {failure["image"]: failure for failure in summary["failures"]}
    for number, pair in enumerate(summary["pairs"]):
        parts.append(f'<h3 id="pair-{number}">{html_text(pair["true"]["name"])} &rarr; '
                     f'{html_text(pair["predicted"]["name"])} ({pair["count"]})</h3>')
        figures = []
        for image_id in pair["images"]:
            failure = by_image[image_id]
            try:
                with Image.open(run.out_dir / failure["picture"]) as picture:
                    source = inline_jpeg(picture, size=FIGURE_WIDTH * 2)
            except OSError as error:
                figures.append(f'<p class="note">{html_text(failure["picture"])} could not '
                               f"be read: {html_text(error)}</p>")
                continue
            evidence = failure["evidence"]
            verdict = "no boxes" if evidence is None else \
                f"verdict: {evidence['verdict'] or 'no mass'}"
            figures.append(f'<figure data-image-id="{html_text(image_id)}">'
                           f'<img src="{source}" alt="{html_text(image_id)}">'
                           f"<figcaption>{html_text(verdict)}; "
                           f'<code>{html_text(failure["picture"])}</code>'
                           "</figcaption></figure>")
        parts.append('<div class="failure">' + "\n".join(figures) + "</div>")
    return "\n".join(parts) + "\n"


def _problems_html(problems: Sequence[tuple[str, str]]) -> str:
    items = "".join(f"<li><code>{html_text(path)}</code>: {html_text(reason)}</li>"
                    for path, reason in problems)
    return ('<h2 id="problems">Skipped files</h2>\n'
            + (f"<ul>{items}</ul>\n" if items else "<p>No file was skipped.</p>\n"))


def write_page(run: DiagnoseRun) -> Path:
    """Write ``report.html`` in the diagnosis folder (the failures' figures inlined).

    Returns:
        its path.

    Examples:
        >>> import tempfile
        >>> run = DiagnoseRun(Path(tempfile.mkdtemp()), "toy", "1", "xgradcam", "<toys>", 0,
        ...                   images=2, labelled=2, correct=2)
        >>> text = write_page(run).read_text()
        >>> "nothing to diagnose" in text, "&lt;toys&gt;" in text
        (True, True)
    """
    summary = diagnosis_json(run)
    body = ('<p class="note">Contents: <a href="#run">run</a> · <a href="#evidence">where '
            'the evidence lies</a> · <a href="#pairs">confusion pairs</a> · '
            '<a href="#failures">failures</a> · <a href="#problems">skipped files</a></p>\n'
            + _run_html(run, summary) + _evidence_html(summary) + _pairs_html(summary)
            + _failures_html(run, summary) + _problems_html(run.problems))
    path = run.out_dir / REPORT_NAME
    path.write_text(html_page(f"axiomcam diagnosis: {run.model} on {run.data}", body,
                              version=__version__, style=_STYLE), encoding="utf-8")
    return path
