"""``axiomcam evaluate``: every metric on a data set (:func:`axiomcam.evaluation.evaluate`),
into SQLite, summaries, plots and ``report.html``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from ..evaluation.groups import METRIC_GROUPS
from .group import main
from .messages import BadUsage, fail
from .options import ModelOptions, check_layer, head_option, model_options

if TYPE_CHECKING:
    from ..data import Dataset
    from ..evaluation import RunResult

__all__ = ["DEFAULT_METHODS", "evaluate"]

#: the methods ``evaluate`` chooses from unless ``--methods`` names them: the cheap ones
#: (see :mod:`axiomcam.evaluation.costs`), all of them with ``--all``
DEFAULT_METHODS = "gradcam,gradcam++,xgradcam,ablationcam,scorecam,layercam"


@main.command()
@model_options
@head_option
@click.option("--data", "data_spec", required=True, metavar="SPEC",
              help="composite:N (built-in benchmark), an image folder (one sub-folder per "
                   "class) or a CSV of path,label.")
@click.option("--methods", "method_list", default=None, metavar="LIST",
              help=f"Comma-separated CAM methods (default: the cheap ones of {DEFAULT_METHODS}"
                   "; Score-CAM, one pass of the network per channel, only with --all).")
@click.option("--layer", default=None, metavar="NAME",
              help="Layer to explain (default: the model's last convolutional stage).")
@click.option("--out", "out_dir", required=True, metavar="DIR",
              type=click.Path(file_okay=False, dir_okay=True),
              help="Output directory: results.sqlite, summary.csv, summary.md, plots, "
                   "report.html.")
@click.option("--boxes", nargs=2, default=None, metavar="voc|coco FILE",
              help="Ground-truth boxes for --data: a Pascal VOC folder/file or a COCO JSON.")
@click.option("--masks", default=None, metavar="FILE|FOLDER",
              help="Ground-truth object masks for --data (the mask_iou group): a COCO JSON "
                   "with segmentations, or a folder of PNG masks named after the images.")
@click.option("--metrics", "--groups", "metric_list", default=None, metavar="LIST",
              help=f"Comma-separated metric groups: {', '.join(METRIC_GROUPS)} "
                   "(default: the cheap ones, at most 4 passes of the network per image and "
                   "method, that the data allows; the expensive ones, which the estimate "
                   "printed before the run names, only with --all or by name).")
@click.option("--all", "include_expensive", is_flag=True,
              help="Also the expensive metric groups and methods the defaults leave out "
                   "(the estimate printed before the run names them).")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Images per batch.")
@click.option("--perturbation-batch-size", type=click.IntRange(min=1), default=None,
              help="Perturbed copies per forward pass (default: Score-CAM 64 images; "
                   "ablation as many copies of the layer's output as fit in 128 MB).")
@click.option("--deletion-steps", type=click.IntRange(min=1), default=50, show_default=True,
              help="Steps of the deletion/insertion curves.")
@click.option("--road-percentages", default="10,30,50,70,90", show_default=True,
              metavar="LIST", help="Percentages of pixels ROAD removes.")
@click.option("--sanity-images", type=click.IntRange(min=0), default=8, show_default=True,
              help="Images (the first ones) that get the cascading-randomisation check.")
@click.option("--sanity-steps", type=click.IntRange(min=1), default=None,
              help="Randomise only this many blocks from the top (default: all).")
@click.option("--metric-option", "metric_option_pairs", multiple=True, metavar="NAME=VALUE",
              help="A protocol parameter of a metric group, repeatable: e.g. "
                   "correlation_runs=20, robustness_samples=50, pointing_tolerance=30, "
                   "top_k_pixels=500 (every one, with its default: docs/measuring.md). "
                   "Stored with the run; the summary lists those changed.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed for the benchmark, ROAD noise, randomisation and bootstrap.")
@click.option("--gallery-images", type=click.IntRange(min=0), default=3, show_default=True,
              help="Best and worst images per method shown in report.html (0: none).")
@click.option("--overwrite", is_flag=True,
              help="Delete the results already in --out and start again (without it, a run "
                   "of the same configuration continues where it stopped, and a run of "
                   "another configuration is refused).")
def evaluate(model: ModelOptions, debug: bool, data_spec: str, method_list: str,
             head: str | None,
             layer: str | None, out_dir: str, boxes: tuple[str, str] | None, masks: str | None,
             metric_list: str | None, batch_size: int, perturbation_batch_size: int | None,
             deletion_steps: int, road_percentages: str, sanity_images: int,
             sanity_steps: int | None, metric_option_pairs: tuple[str, ...], seed: int,
             gallery_images: int, overwrite: bool, include_expensive: bool) -> None:
    """Measure CAM methods on a data set: XGrad-CAM's axioms, faithfulness, ROAD,
    localization, class discrimination and sanity, per image, into DIR/results.sqlite,
    with summary.csv, summary.md, plots and report.html (one self-contained file: the
    tables, the plots and the best and worst images of each method).

    \b
    Examples:
      axiomcam evaluate --model mobilenet_v2 --data composite:200 \\
          --methods gradcam,gradcam++,xgradcam,ablationcam,scorecam,layercam \\
          --layer features.17.conv.1 --out results/mobilenet_v2
    \b
    Your own images, with Pascal VOC boxes:
      axiomcam evaluate --data photos/ --boxes voc photos/annotations --out results/mine
    \b
    Before the first batch it prints an estimate of the run's cost per method and
    metric group; by default it runs the cheap ones and names those left out.
    \b
    Interrupted? Run the same command again: it continues where it stopped.
    On 4 processes (or machines: docs/scaling.md):
      torchrun --nproc_per_node 4 $(which axiomcam) evaluate --data composite:200 \\
          --out results/mobilenet_v2
    """
    # checks that need nothing loaded come first, so that a typo fails at once
    method_names, groups, percentages = _check_choices(method_list, metric_list,
                                                       road_percentages)
    metric_options = _check_metric_options(metric_option_pairs)
    boxes_format, boxes_file = (None, None) if boxes is None else boxes
    if boxes_format is not None and boxes_format.lower() not in ("voc", "coco"):
        raise BadUsage(f"--boxes takes a format (voc or coco) and a file, got "
                       f"{boxes_format!r}")

    from ..evaluation import evaluate as run_evaluation
    from ..evaluation.distributed import rank_device
    from .model import with_head

    pretrained = with_head(model.load(debug, device=rank_device(model.device)), head)
    if layer is not None:
        layer = check_layer(pretrained, layer, model, debug)
    dataset = _open_data(data_spec, pretrained.class_names, seed, boxes_format, boxes_file,
                         debug, masks)
    try:
        run = run_evaluation(
            pretrained, dataset, method_names, target_layer=layer, out_dir=out_dir,
            metrics=groups, batch_size=batch_size,
            perturbation_batch_size=perturbation_batch_size, deletion_steps=deletion_steps,
            road_percentages=percentages, sanity_images=sanity_images,
            sanity_steps=sanity_steps, seed=seed, overwrite=overwrite, progress=None,
            gallery_images=gallery_images, include_expensive=include_expensive,
            metric_options=metric_options)
    except KeyboardInterrupt:
        click.echo(f"\naxiomcam: interrupted; the finished batches are kept in {out_dir}: "
                   "run the same command again to continue", err=True)
        raise SystemExit(130) from None
    except Exception as error:
        fail(error, debug)
    if int(os.environ.get("RANK", "0")) == 0:  # rank 0 of a distributed run reports for all
        _report(run)


def _check_metric_options(pairs: tuple[str, ...]) -> dict[str, object]:
    """``--metric-option NAME=VALUE`` pairs, checked against the groups' parameters, or a
    usage error."""
    from ..evaluation.groups import check_metric_options
    from .method_options import parse_pairs

    options = parse_pairs(pairs, "--metric-option")
    try:
        return check_metric_options(options)
    except ValueError as error:
        raise BadUsage(f"--metric-option: {error}") from error


def _check_choices(method_list: str | None, metric_list: str | None, road_percentages: str
                   ) -> tuple[list[str] | None, list[str] | None, tuple[float, ...]]:
    """The methods, metric groups (``None``: the defaults) and ROAD percentages, checked,
    or a usage error."""
    from ..evaluation import check_methods, check_metric_groups
    from ..metrics import check_percentages

    try:
        return (None if method_list is None else check_methods(method_list),
                None if metric_list is None else check_metric_groups(metric_list),
                check_percentages([float(p) for p in road_percentages.split(",")
                                   if p.strip()], "--road-percentages"))
    except ValueError as error:
        raise BadUsage(str(error)) from error


def _open_data(data_spec: str, class_names: list[str], seed: int, boxes_format: str | None,
               boxes_file: str | None, debug: bool, masks: str | None = None) -> Dataset:
    """The data set of ``--data``: exit 1 for a missing folder or an unreadable file, exit
    2 for a spec that names nothing."""
    from ..data import open_dataset

    try:
        return open_dataset(data_spec, class_names, seed=seed, boxes_format=boxes_format,
                            boxes_file=boxes_file, masks=masks)
    except FileNotFoundError as error:
        fail(error, debug)
    except ValueError as error:
        if debug:
            raise
        prefix = "" if repr(data_spec) in str(error) else f"--data {data_spec!r}: "
        raise BadUsage(f"{prefix}{error}") from error
    except Exception as error:
        fail(error, debug)


def _report(run: RunResult) -> None:
    """The summary table and what was written."""
    from ..evaluation.summary import format_table

    click.echo(format_table(run.summaries))
    seconds = run.seconds.get("total", 0.0)
    already = f"{run.resumed} image{' was' if run.resumed == 1 else 's were'} already done"
    if run.extended_from is not None:
        click.echo(f"\nextended the run of {run.extended_from}: {already}")
    elif run.resumed:
        click.echo(f"\ncontinued an interrupted run: {already}")
    click.echo(
        f"\n{run.images} image{'' if run.images == 1 else 's'} x {len(run.methods)} "
        f"method{'' if len(run.methods) == 1 else 's'} at {run.target_layer} "
        f"({run.computed} computed in {seconds:.1f} s); {len(run.problems)} files skipped")
    if run.left_out:
        click.echo(f"left out as expensive: {', '.join(run.left_out)} (add them by name, or "
                   "all with --all)")
    click.echo(f"wrote {run.database}, {run.files.csv}, {run.files.markdown} and "
               f"{len(run.files.plots)} plots")
    click.echo(f"report: {run.report}")
