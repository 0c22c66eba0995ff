"""``axiomcam audit``: the data-set bias audit, per class the share of the class's
evidence on the background, flagged where it dominates, with the worst images
(:func:`axiomcam.workflows.audit`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..methods import CAM_METHODS
from .diagnose import boxed_data_options, check_cam_method, open_labelled_run
from .group import main
from .messages import fail, plural
from .options import ModelOptions, check_method, model_options

if TYPE_CHECKING:
    from ..workflows import AuditRun

__all__ = ["audit"]


def _threshold(context: click.Context, parameter: click.Parameter, value: str) -> float | str:
    from ..workflows.audit_results import check_threshold

    try:
        return check_threshold(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error


@main.command()
@model_options
@boxed_data_options
@click.option("--method", default="gradcam", show_default=True,
              help="The CAM method that explains each image's labelled class.")
@click.option("--layer", default=None, metavar="NAME",
              help="Layer to explain (default: the model's last convolutional stage).")
@click.option("--threshold", default="uniform", show_default=True, callback=_threshold,
              metavar="uniform|SHARE",
              help="Flag a class when its mean background share exceeds the background's "
                   "share of the area (uniform), or this share in [0, 1].")
@click.option("--score", type=click.Choice(["contrast", "logit"]), default="contrast",
              show_default=True,
              help="What the map explains: the class's logit minus the mean logit (evidence "
                   "that raises every class alike is left out), or the logit.")
@click.option("--worst", type=click.IntRange(min=1), default=4, show_default=True,
              help="Images with the most background evidence drawn per flagged class.")
@click.option("--out", "out_dir", default="audit", show_default=True, metavar="DIR",
              type=click.Path(file_okay=False),
              help="Output folder: results.json, worst/*.png, report.html.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Images per forward/backward pass.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the composite benchmark and of the bootstrap intervals.")
def audit(model: ModelOptions, debug: bool, data_spec: str, boxes: tuple[str, str] | None,
          method: str, layer: str | None, threshold: float | str, score: str, worst: int,
          out_dir: str, batch_size: int, seed: int) -> None:
    """Did the model learn the background? For each class of a labelled data set with
    boxes: the images, the top-1 accuracy, and the mean share of the class's map outside
    every box (the background) with its bootstrap interval, beside the background's share
    of the area; the classes whose evidence lies on the background are flagged and their
    worst images drawn. Writes DIR/results.json, DIR/worst/*.png and DIR/report.html.

    \b
    Examples:
      axiomcam audit --model mobilenet_v2 --data composite:200 --out audit
      axiomcam audit --data photos/ --boxes voc photos/annotations --threshold 0.5
    """
    method = check_method(method)
    check_cam_method(method, f"audit draws CAMs ({', '.join(CAM_METHODS)})")
    pretrained, layer, dataset = open_labelled_run(model, layer, data_spec, seed, boxes, debug)
    from ..workflows import audit as run_audit

    try:
        run = run_audit(pretrained, dataset, out_dir, method=method, layer=layer,
                        threshold=threshold, score=score, worst=worst,
                        batch_size=batch_size, seed=seed,
                        progress=None, announce=lambda line: click.echo(line, err=True))
    except Exception as error:
        fail(error, debug)
    _report(run)


def _report(run: AuditRun) -> None:
    """Each class's line, the flagged ones, and what was written."""
    classes = run.classes
    click.echo(f"{plural(run.images, 'image')}, {len(run.records)} labelled "
               f"({run.method} at {run.layer}, {run.seconds:.1f} s)")
    click.echo("class: images, accuracy, background share [interval] (area share)")
    for item in classes:
        share = "no box" if item.background is None else \
            "{:.3f} [{:.3f}, {:.3f}] ({:.3f})".format(*item.background, item.area)
        click.echo(f"  {item.name}: {item.images}, {item.accuracy:.3f}, {share}"
                   f"{'  FLAGGED' if item.flagged else ''}")
    flagged = [item.name for item in classes if item.flagged]
    click.echo(f"flagged ({len(flagged)}): {', '.join(flagged) or 'none'}")
    click.echo(f"wrote {run.out_dir / 'results.json'} and {run.out_dir / 'report.html'}"
               + (f" and {plural(len(run.pictures), 'figure')} in {run.out_dir / 'worst'}"
                  if run.pictures else ""))
