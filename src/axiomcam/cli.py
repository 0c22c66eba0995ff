"""The ``axiomcam`` command line.

``axiomcam evaluate`` runs :func:`axiomcam.evaluation.evaluate` on a pretrained model and a
data set and prints a summary table. Exit codes: 0 success, 2 bad usage (an unknown
method, metric group, model or layer, a bad ``--data`` spec), 1 any other failure. Errors
are one line on stderr, ``axiomcam: error: ...``; ``--debug`` shows the traceback instead.

Example:
    >>> from click.testing import CliRunner
    >>> result = CliRunner().invoke(main, ["evaluate", "--methods", "nocam", "--data", "x",
    ...                                    "--out", "never-written"])
    >>> result.exit_code, result.output.splitlines()[-1][:40]
    (2, "axiomcam: error: unknown method 'nocam';")
"""

from __future__ import annotations

import difflib
import logging
from typing import Any, NoReturn

import click

from . import __version__

__all__ = ["main"]

DEFAULT_METHODS = "gradcam,gradcam++,xgradcam,ablationcam,scorecam,layercam"


class _BadUsage(click.UsageError):
    """Exit 2 with one line on stderr."""

    def show(self, file: Any = None) -> None:
        click.echo(f"axiomcam: error: {_one_line(self.format_message())} "
                   "(see 'axiomcam evaluate --help')", err=True, file=file)


class _Failure(click.ClickException):
    """Exit 1 with one line on stderr."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"axiomcam: error: {_one_line(self.format_message())}", err=True, file=file)


def _one_line(message: str) -> str:
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())


def _fail(error: BaseException, debug: bool) -> NoReturn:
    if debug:
        raise error
    text = str(error) or type(error).__name__
    if isinstance(error, KeyError) and error.args:  # str(KeyError) is the repr of the key
        text = str(error.args[0])
    raise _Failure(text) from error


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="axiomcam")
def main() -> None:
    """axiomcam: class activation maps and measures of how good they are."""


@main.command(context_settings={"max_content_width": 100})
@click.option("--model", "model_name", default="mobilenet_v2", show_default=True,
              help="Pretrained model: mobilenet_v2 or efficientnet_lite0.")
@click.option("--data", "data_spec", required=True, metavar="SPEC",
              help="composite:N (built-in benchmark), an image folder (one sub-folder per "
                   "class) or a CSV of path,label.")
@click.option("--methods", "method_list", default=DEFAULT_METHODS, show_default=True,
              metavar="LIST", help="Comma-separated CAM methods.")
@click.option("--layer", default=None, metavar="NAME",
              help="Layer to explain (default: the model's last convolutional stage).")
@click.option("--out", "out_dir", required=True, metavar="DIR",
              type=click.Path(file_okay=False, dir_okay=True),
              help="Output directory: results.sqlite, summary.csv, summary.md, plots.")
@click.option("--boxes", nargs=2, default=None, metavar="voc|coco FILE",
              help="Ground-truth boxes for --data: a Pascal VOC folder/file or a COCO JSON.")
@click.option("--metrics", "metric_list", default=None, metavar="LIST",
              help="Comma-separated metric groups: axioms, faithfulness, deletion, road, "
                   "localization, discrimination, sanity (default: all that the data allows).")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Images per batch.")
@click.option("--perturbation-batch-size", type=click.IntRange(min=1), default=64,
              show_default=True, help="Perturbed copies per forward pass.")
@click.option("--deletion-steps", type=click.IntRange(min=1), default=50, show_default=True,
              help="Steps of the deletion/insertion curves.")
@click.option("--road-percentages", default="10,30,50,70,90", show_default=True,
              metavar="LIST", help="Percentages of pixels ROAD removes.")
@click.option("--sanity-images", type=click.IntRange(min=0), default=8, show_default=True,
              help="Images (the first ones) that get the cascading-randomisation check.")
@click.option("--sanity-steps", type=click.IntRange(min=1), default=None,
              help="Randomise only this many blocks from the top (default: all).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed for the benchmark, ROAD noise, randomisation and bootstrap.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, ...")
@click.option("--overwrite", is_flag=True, help="Replace the results already in --out.")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
def evaluate(model_name: str, data_spec: str, method_list: str, layer: str | None,
             out_dir: str, boxes: tuple[str, str] | None, metric_list: str | None,
             batch_size: int, perturbation_batch_size: int, deletion_steps: int,
             road_percentages: str, sanity_images: int, sanity_steps: int | None, seed: int,
             device: str, overwrite: bool, debug: bool) -> None:
    """Measure CAM methods on a data set: XGrad-CAM's axioms, faithfulness, ROAD,
    localization, class discrimination and sanity, per image, into DIR/results.sqlite,
    with summary.csv, summary.md and plots.

    \b
    Example:
      axiomcam evaluate --model mobilenet_v2 --data composite:200 \\
          --methods gradcam,gradcam++,xgradcam,ablationcam,scorecam,layercam \\
          --layer features.17.conv.1 --out results/mobilenet_v2
    \b
    Your own images, with Pascal VOC boxes:
      axiomcam evaluate --data photos/ --boxes voc photos/annotations --out results/mine
    """
    logging.basicConfig(format="axiomcam: %(message)s",
                        level=logging.DEBUG if debug else logging.WARNING)
    # checks that need nothing loaded come first, so that a typo fails at once
    from .evaluation.runner import check_methods, check_metric_groups

    try:
        method_names = check_methods(method_list)
        groups = check_metric_groups(metric_list)
        percentages = [float(p) for p in road_percentages.split(",") if p.strip()]
    except ValueError as error:
        raise _BadUsage(str(error)) from error
    if not percentages or any(not 0 < p < 100 for p in percentages):
        raise _BadUsage(f"--road-percentages must be numbers in (0, 100), got "
                        f"{road_percentages!r}")
    boxes_format, boxes_file = (None, None) if boxes is None else boxes
    if boxes_format is not None and boxes_format.lower() not in ("voc", "coco"):
        raise _BadUsage(f"--boxes takes a format (voc or coco) and a file, got "
                        f"{boxes_format!r}")

    from . import models

    if model_name not in models.available():
        raise _BadUsage(f"unknown model {model_name!r}; known: {', '.join(models.available())}")
    try:
        pretrained = models.load(model_name, device=device)
    except Exception as error:
        _fail(error, debug)
    if layer is not None:
        names = [name for name, _ in pretrained.model.named_modules() if name]
        if layer not in names:
            near = difflib.get_close_matches(layer, names, n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise _BadUsage(f"{model_name} has no layer {layer!r}{hint}")

    from .data import open_dataset
    from .evaluation.runner import evaluate as run_evaluation
    from .evaluation.summary import format_table

    try:
        dataset = open_dataset(data_spec, pretrained.class_names, seed=seed,
                               boxes_format=boxes_format, boxes_file=boxes_file)
    except FileNotFoundError as error:
        _fail(error, debug)
    except ValueError as error:
        if debug:
            raise
        prefix = "" if repr(data_spec) in str(error) else f"--data {data_spec!r}: "
        raise _BadUsage(f"{prefix}{error}") from error
    except Exception as error:
        _fail(error, debug)

    try:
        run = run_evaluation(
            pretrained, dataset, method_names, target_layer=layer, out_dir=out_dir,
            metrics=groups, batch_size=batch_size,
            perturbation_batch_size=perturbation_batch_size, deletion_steps=deletion_steps,
            road_percentages=percentages, sanity_images=sanity_images,
            sanity_steps=sanity_steps, seed=seed, overwrite=overwrite, progress=None)
    except Exception as error:
        _fail(error, debug)

    click.echo(format_table(run.summaries))
    seconds = run.seconds.get("total", 0.0)
    click.echo(
        f"\n{run.images} image{'' if run.images == 1 else 's'} x {len(run.methods)} "
        f"method{'' if len(run.methods) == 1 else 's'} at {run.target_layer} in "
        f"{seconds:.1f} s; {len(run.problems)} files skipped")
    click.echo(f"wrote {run.database}, {run.files.csv}, {run.files.markdown} and "
               f"{len(run.files.plots)} plots")
