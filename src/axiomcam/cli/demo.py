"""``axiomcam demo`` and ``axiomcam samples``: what needs nothing of the user's, the quick
start on two photographs (:func:`axiomcam.workflows.run_demo`) and the photographs
themselves as files.

``python -m axiomcam.demo`` runs ``axiomcam demo`` (:func:`run_as_script`). Unlike the
other commands, the demo's failures are ``error: ...`` lines (exit 1), as they have always
been; its usage errors are the usual ``axiomcam: error: ...`` (exit 2).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from .group import main
from .messages import BadUsage, fail, one_line, setup_logging
from .options import ModelOptions, layer_error_message, parse_device

__all__ = ["DemoFailure", "demo", "run_as_script", "samples"]


class DemoFailure(click.ClickException):
    """The demo's failures: exit 1 with ``error: ...`` on stderr."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        """``error: MESSAGE``, one line."""
        click.echo(f"error: {one_line(self.format_message())}", err=True, file=file)


def _methods(context: click.Context, parameter: click.Parameter, text: str) -> list[str]:
    from ..workflows import parse_methods

    try:
        return parse_methods(text)
    except ValueError as error:
        raise BadUsage(f"--methods: {error}", context) from error


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default="results", show_default=True,
              help="Folder for the PNG files (created if missing).")
@click.option("--device", default="cpu", show_default=True, help="torch device.")
@click.option("--methods", "methods", default="gradcam,xgradcam", show_default=True,
              callback=_methods, help="Comma-separated methods.")
@click.option("--layer", default=None,
              help="Target layer (default: an inner layer where Grad-CAM and XGrad-CAM "
                   "differ, features.17.conv.1 for mobilenet_v2; features.18 shows them as "
                   "one map).")
@click.option("--model", "model_name", default="mobilenet_v2", show_default=True,
              help="A built-in pretrained model: mobilenet_v2 or efficientnet_lite0.")
def demo(out: Path, device: str, methods: list[str], layer: str | None,
         model_name: str) -> None:
    """Explain a pretrained ImageNet classifier on two sample photographs and write the
    class activation maps as PNG files: one per image and method, and a grid of them all
    in OUT/quickstart.png, each map with its conservation (CE) and sensitivity (SE)
    errors; and OUT/counterfactual.png: on a composite image of two objects, Grad-CAM of
    one object's class and its counterfactual map (the evidence against that class).

    \b
    Examples:
      axiomcam demo --out results
      axiomcam demo --out results --layer features.16 --methods gradcam,xgradcam,scorecam
    """
    from ..models import MissingWeightsError, available, load
    from ..workflows import run_counterfactual, run_demo

    if model_name not in available():
        raise BadUsage(f"--model: {model_name!r} is not one of "
                       f"{', '.join(map(repr, available()))}")
    try:
        pretrained = load(model_name, device=parse_device(device))
    except (ValueError, MissingWeightsError) as error:
        raise DemoFailure(str(error)) from error
    try:
        run_demo(pretrained, out, methods, layer, echo=click.echo)
        run_counterfactual(pretrained, out, layer, echo=click.echo)
    except ValueError as error:  # e.g. a --layer that does not exist (near matches listed)
        raise DemoFailure(layer_error_message(str(error), ModelOptions(model_name),
                                               always=False)) from error
    except OSError as error:  # e.g. an --out that cannot be created or written
        raise DemoFailure(f"cannot write to {str(out)!r}: {error}") from error


def run_as_script(argv: Sequence[str] | None = None) -> int:
    """``axiomcam demo ARGV`` (``sys.argv[1:]`` by default), as ``python -m axiomcam.demo``
    runs it: the exit code, 0 when done and 1 on a failure; bad usage exits (``SystemExit``
    with 2), as a command line does.

    Examples:
        >>> run_as_script(["--out", "results"])  # doctest: +SKIP
        0
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        main.main(["demo", *arguments], prog_name="axiomcam")
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
        if code == BadUsage.exit_code:
            raise
        return code
    return 0


@main.command()
@click.argument("folder", type=click.Path(file_okay=False), default="samples")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def samples(folder: str, debug: bool) -> None:
    """Write the photographs that ship with scikit-image (chelsea, coffee, rocket,
    astronaut, camera, motorcycle) into FOLDER as PNG files, to try the other commands on.

    \b
    Examples:
      axiomcam samples photos && axiomcam explain photos/chelsea.png --out maps
    """
    from ..images import SAMPLE_IMAGES, sample_image

    setup_logging(debug)
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, what in SAMPLE_IMAGES.items():
            path = out / f"{name}.png"
            sample_image(name).save(path)
            click.echo(f"{path}: {what}")
    except OSError as error:
        fail(error, debug)
