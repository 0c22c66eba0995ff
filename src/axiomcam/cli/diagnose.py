"""``axiomcam diagnose``: every misclassified image of a labelled data set explained for
its predicted and its true class, grouped by confusion pair, with where the predicted
class's evidence lies (:func:`axiomcam.workflows.diagnose`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ..methods import CAM_METHODS, method_info
from .group import main
from .messages import BadUsage, bad_usage, fail, plural
from .options import ModelOptions, check_layer, check_method, model_options

if TYPE_CHECKING:
    from ..data import Dataset
    from ..models import PretrainedModel
    from ..workflows import DiagnoseRun

__all__ = ["boxed_data_options", "check_cam_method", "diagnose", "open_labelled_data",
           "open_labelled_run"]

#: confusion pairs printed (diagnose.json and report.html have them all)
PRINTED_PAIRS = 10


@main.command()
@model_options
@click.option("--data", "data_spec", required=True, metavar="SPEC",
              help="Labelled images: composite:N (built-in benchmark, with boxes), an image "
                   "folder (one sub-folder per class) or a CSV of path,label.")
@click.option("--boxes", nargs=2, default=None, metavar="voc|coco FILE",
              help="Ground-truth boxes for --data (a Pascal VOC folder/file or a COCO JSON): "
                   "with them, each failure says where its evidence lies.")
@click.option("--method", default="xgradcam", show_default=True,
              help="The CAM method that explains both classes.")
@click.option("--layer", default=None, metavar="NAME",
              help="Layer to explain (default: the model's last convolutional stage).")
@click.option("--out", "out_dir", default="diagnosis", show_default=True, metavar="DIR",
              type=click.Path(file_okay=False),
              help="Output folder: failures/*.png, diagnose.json, report.html.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Images per forward/backward pass.")
@click.option("--tolerance", type=click.FloatRange(min=0), default=15.0, show_default=True,
              help="Pixels (at the network's input) by which the predicted class's map's peak "
                   "may miss a box and still point at it, as in the pointing game.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the composite benchmark and of the bootstrap intervals.")
def diagnose(model: ModelOptions, debug: bool, data_spec: str, boxes: tuple[str, str] | None,
             method: str, layer: str | None, out_dir: str, batch_size: int, tolerance: float,
             seed: int) -> None:
    """Why did the model fail? For every misclassified image of a labelled data set: the
    predicted and the true class's maps side by side with their probabilities, the
    failures grouped by confusion pair, and, where boxes are known, the share of the
    predicted class's map on the labelled object, on another object and on the background,
    with a verdict: the region the map's peak points at. Writes DIR/failures/*.png,
    DIR/diagnose.json and DIR/report.html (one self-contained page).

    \b
    Examples:
      axiomcam diagnose --model mobilenet_v2 --data composite:200 --out diagnosis
      axiomcam diagnose --data photos/ --boxes voc photos/annotations --method gradcam
    """
    method = check_method(method)
    check_cam_method(method, f"diagnose draws CAMs ({', '.join(CAM_METHODS)})")
    pretrained, layer, dataset = open_labelled_run(model, layer, data_spec, seed, boxes, debug)
    from ..workflows import diagnose as run_diagnosis

    try:
        run = run_diagnosis(pretrained, dataset, out_dir, method=method, layer=layer,
                            batch_size=batch_size, tolerance=tolerance, seed=seed,
                            progress=None,
                            announce=lambda line: click.echo(line, err=True))
    except Exception as error:
        fail(error, debug)
    _report(run)


def boxed_data_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--data SPEC`` and ``--boxes voc|coco FILE`` of the commands that need labelled
    images with boxes (``audit``, ``robustness``; ``diagnose`` takes images without boxes
    too, and says so in its own help)."""
    command = click.option(
        "--boxes", nargs=2, default=None, metavar="voc|coco FILE",
        help="Ground-truth boxes for --data (a Pascal VOC folder/file or a COCO JSON).")(command)
    return click.option(
        "--data", "data_spec", required=True, metavar="SPEC",
        help="Labelled images with boxes: composite:N (built-in benchmark), or an image "
             "folder / CSV with --boxes.")(command)


def check_cam_method(method: str, refusal: str) -> None:
    """A usage error unless ``method`` draws class activation maps; ``refusal`` ends its
    message (what the command draws)."""
    if not method_info(method).cam:
        raise BadUsage(f"--method {method!r} is not a class activation map: {refusal}")


def open_labelled_run(model: ModelOptions, layer: str | None, spec: str, seed: int,
                      boxes: tuple[str, str] | None, debug: bool
                      ) -> tuple[PretrainedModel, str | None, Dataset]:
    """What ``diagnose``, ``audit`` and ``robustness`` start from: ``--boxes``' format
    checked, the model loaded, ``--layer`` checked (``None`` stays ``None``: the workflow's
    default) and ``--data`` opened (:func:`open_labelled_data`)."""
    if boxes is not None and boxes[0].lower() not in ("voc", "coco"):
        raise BadUsage(f"--boxes takes a format (voc or coco) and a file, got {boxes[0]!r}")
    pretrained = model.load(debug)
    if layer is not None:
        layer = check_layer(pretrained, layer, model, debug)
    return pretrained, layer, open_labelled_data(spec, pretrained.class_names, seed, boxes,
                                                 debug)


def open_labelled_data(spec: str, class_names: list[str], seed: int,
                       boxes: tuple[str, str] | None, debug: bool) -> Dataset:
    """``--data`` (and ``--boxes``) opened: exit 2 for a spec that names nothing, exit 1 for
    a missing path or an unreadable file."""
    from ..data import open_dataset

    boxes_format, boxes_file = (None, None) if boxes is None else boxes
    try:
        return open_dataset(spec, class_names, seed=seed, boxes_format=boxes_format,
                            boxes_file=boxes_file)
    except ValueError as error:
        bad_usage(ValueError(f"--data {spec!r}: {error}"), debug)
    except Exception as error:
        fail(error, debug)


def _report(run: DiagnoseRun) -> None:
    """What was found (the top confusion pairs, the verdicts) and written."""
    failures = run.failures
    click.echo(f"{plural(run.images, 'image')}, {run.labelled} labelled, "
               f"{len(failures)} misclassified ({run.method} at {run.layer}, "
               f"{run.seconds:.1f} s)")
    if not failures:
        click.echo(f"no labelled image was misclassified: nothing to diagnose "
                   f"(wrote {run.out_dir / 'diagnose.json'})")
        return
    pairs = run.pairs
    click.echo("confusion pairs (true -> predicted: failures):")
    for pair in pairs[:PRINTED_PAIRS]:
        click.echo(f"  {pair.true.name} -> {pair.predicted.name}: {pair.count}")
    if len(pairs) > PRINTED_PAIRS:
        click.echo(f"  ... {len(pairs) - PRINTED_PAIRS} more pairs in report.html")
    located = [f.evidence for f in failures if f.evidence is not None]
    if located:
        from ..metrics import EVIDENCE_REGIONS

        counts = {region: sum(e.verdict == region for e in located)
                  for region in EVIDENCE_REGIONS}
        click.echo(f"peak of the predicted class's map ({plural(len(located), 'failure')} "
                   "with boxes): " + ", ".join(f"{region} {count}"
                                               for region, count in counts.items()))
    click.echo(f"wrote {plural(len(failures), 'figure')} in {run.out_dir / 'failures'}, "
               f"{run.out_dir / 'diagnose.json'} and {run.out_dir / 'report.html'}")
