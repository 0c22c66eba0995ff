"""The pictures and the page of a data-set bias audit (``axiomcam audit``): one figure per
flagged class (:func:`save_worst_figures`: its images with the largest background shares,
the class's map over each, the labelled object's boxes in white and the other objects' in
magenta) and ``report.html`` (:func:`write_page`), one self-contained page in the
evaluation report's style (:mod:`axiomcam.evaluation.pages`): the run, the flag's rule, the
per-class table (images, accuracy, background share with its interval, area share, flag),
then the flagged classes' figures, then the skipped files.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from .. import __version__
from ..evaluation.pages import THUMBNAIL_SIZE, html_page, html_text, inline_jpeg
from ..evaluation.report import REPORT_NAME
from ..evaluation.summary import CONFIDENCE, format_number
from ..figures import method_title, save_grid
from ..images import draw_boxes, overlay
from .audit_results import AuditRun, ClassAudit, Worst, class_audits, flag_rule
from .diagnosis_page import OBJECT_COLOUR, OTHER_COLOUR
from .explaining import name_slug

__all__ = ["WORST_FOLDER", "save_worst_figures", "write_page"]

#: the folder of the flagged classes' figures, inside the audit folder
WORST_FOLDER = "worst"


def _panel(item: Worst, input_size: int) -> Image.Image:
    """The image (scaled to the thumbnail size) with the map over it and the boxes drawn."""
    width, height = item.image.size
    scale = THUMBNAIL_SIZE / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    shown = overlay(item.image.convert("RGB").resize(size, Image.Resampling.BILINEAR),
                    item.cam_map.clamp(0, 1))
    box_scale = (shown.width / input_size, shown.height / input_size)
    draw_boxes(shown, item.other_boxes, OTHER_COLOUR, box_scale)
    return draw_boxes(shown, item.object_boxes, OBJECT_COLOUR, box_scale)


def save_worst_figures(run: AuditRun) -> dict[int, str]:
    """Write ``worst/<class>.png`` for every flagged class (earlier ones deleted first).

    Returns:
        ``{class index: path relative to run.out_dir}``.
    """
    folder = run.out_dir / WORST_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.png"):  # an earlier audit's figures
        stale.unlink()
    pictures: dict[int, str] = {}
    for item in class_audits(run):
        kept = run.worst.get(item.index, [])
        if not item.flagged or not kept:
            continue
        input_size = int(kept[0].cam_map.shape[-1])
        relative = f"{WORST_FOLDER}/{item.index}-{name_slug(item.name)}.png"
        save_grid(run.out_dir / relative, [[_panel(worst, input_size) for worst in kept]],
                  [[f"{worst.record.image_id}\n{item.name}: {method_title(run.method)}"
                    for worst in kept]],
                  captions=[[f"background {worst.record.background:.2f} "
                             f"(area {worst.record.area:.2f})" for worst in kept]])
        pictures[item.index] = relative
    return pictures


def _share(item: ClassAudit) -> str:
    if item.background is None:
        return "-"
    mean, low, high = (format_number(value) for value in item.background)
    return f"{mean} [{low}, {high}]"


def _classes_html(run: AuditRun, classes: list[ClassAudit]) -> str:
    parts = ['<h2 id="classes">Classes</h2>',
             f"<p>Background share: the share of the labelled class's {html_text(run.method)} "
             "map outside every box, mean over the class's images with a box of it, with "
             f"the {CONFIDENCE:.0%} percentile-bootstrap interval of the mean; area share: "
             "the background's share of those images' area (what a uniform map would give). "
             f"Flagged: {html_text(flag_rule(run.threshold))}.</p>",
             "<table><tr><th>class</th><th>images</th><th>top-1 accuracy</th><th>with a box"
             "</th><th>background share</th><th>area share</th><th>flagged</th></tr>"]
    for item in classes:
        area = "-" if item.area is None else format_number(item.area)
        name = html_text(item.name)
        if item.index in run.pictures:
            name = f'<a href="#class-{item.index}">{name}</a>'
        parts.append(f'<tr{" class=best" if item.flagged else ""}><td>{name}</td>'
                     f'<td class="num">{item.images}</td>'
                     f'<td class="num">{item.accuracy:.3f}</td>'
                     f'<td class="num">{item.located}</td>'
                     f'<td class="num">{html_text(_share(item))}</td>'
                     f'<td class="num">{html_text(area)}</td>'
                     f'<td>{"yes" if item.flagged else "no"}</td></tr>')
    parts.append("</table>")
    return "\n".join(parts) + "\n"


def _worst_html(run: AuditRun, classes: list[ClassAudit]) -> str:
    parts = ['<h2 id="worst">Flagged classes: the images with the most background evidence'
             "</h2>"]
    flagged = [item for item in classes if item.index in run.pictures]
    if not flagged:
        parts.append("<p>No class is flagged.</p>")
    for item in flagged:
        parts.append(f'<h3 id="class-{item.index}">{html_text(item.name)}</h3>')
        try:
            with Image.open(run.out_dir / run.pictures[item.index]) as picture:
                source = inline_jpeg(picture, size=picture.width)
        except OSError as error:
            parts.append(f'<p class="note">{html_text(run.pictures[item.index])} could not '
                         f"be read: {html_text(error)}</p>")
            continue
        parts.append(f'<figure><img src="{source}" alt="{html_text(item.name)}" '
                     'style="max-width: 100%"><figcaption>boxes: labelled object white, '
                     f'other objects magenta; <code>{html_text(run.pictures[item.index])}'
                     "</code></figcaption></figure>")
    return "\n".join(parts) + "\n"


def write_page(run: AuditRun) -> Path:
    """Write ``report.html`` in the audit folder (the figures inlined); returns its path.

    Examples:
        >>> import tempfile
        >>> from axiomcam.workflows.audit_results import AuditImage
        >>> run = AuditRun(Path(tempfile.mkdtemp()), "toy", "1", "gradcam", "<toys>", 0,
        ...                "uniform", 2, ["a"], records=[AuditImage("x", 0, True, 0.9, 0.2, 0.5)])
        >>> text = write_page(run).read_text()
        >>> "No class is flagged" in text, "&lt;toys&gt;" in text
        (True, True)
    """
    classes = class_audits(run)
    rows = [("model", run.model), ("layer", run.layer), ("method", run.method),
            ("data set", run.data), ("images", run.images), ("labelled", len(run.records)),
            ("flagged classes", ", ".join(i.name for i in classes if i.flagged) or "none"),
            ("files skipped", len(run.problems)), ("wall time", f"{run.seconds:.1f} s")]
    body = ('<h2 id="run">Run</h2>\n<table>'
            + "".join(f"<tr><th>{html_text(key)}</th><td>{html_text(value)}</td></tr>"
                      for key, value in rows) + "</table>\n"
            + _classes_html(run, classes) + _worst_html(run, classes))
    if run.problems:
        body += ('<h2 id="problems">Skipped files</h2>\n<ul>'
                 + "".join(f"<li><code>{html_text(path)}</code>: {html_text(reason)}</li>"
                           for path, reason in run.problems) + "</ul>\n")
    path = run.out_dir / REPORT_NAME
    path.write_text(html_page(f"axiomcam audit: {run.model} on {run.data}", body,
                              version=__version__), encoding="utf-8")
    return path
