"""``axiomcam robustness``: attack every image of a labelled data set with boxes and compare,
on the images the attack flips, the original class's map on the attacked image with the
clean one (:func:`axiomcam.workflows.robustness.robustness`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .diagnose import boxed_data_options, check_cam_method, open_labelled_run
from .group import main
from .messages import BadUsage, fail, plural
from .options import ModelOptions, check_method_list, model_options

if TYPE_CHECKING:
    from ..workflows.robustness import RobustnessRun

__all__ = ["robustness"]


@main.command()
@model_options
@boxed_data_options
@click.option("--attack", "kind", type=click.Choice(["pgd", "fgsm"]), default="pgd",
              show_default=True, help="The attack (captum.robust), L-inf in pixel space.")
@click.option("--epsilon", default="2/255", show_default=True, metavar="NUMBER|FRACTION",
              help="The attack's budget per pixel and channel, pixels in [0, 1] (2/255: two "
                   "grey levels).")
@click.option("--targeted", is_flag=True,
              help="Aim at a class drawn at random (--seed) among those not on the image, "
                   "rather than away from the original class.")
@click.option("--steps", type=click.IntRange(min=1), default=10, show_default=True,
              help="PGD's steps (each of 2.5 epsilon / steps).")
@click.option("--method", "methods", default="gradcam", show_default=True,
              metavar="NAME[,NAME...]", help="CAM methods that explain the original class.")
@click.option("--layer", default=None, metavar="NAME",
              help="Layer to explain (default: the model's last convolutional stage).")
@click.option("--out", "out_dir", default="robustness", show_default=True, metavar="DIR",
              type=click.Path(file_okay=False),
              help="Output folder: results.json, robustness.png, report.html.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Images per attack and per explanation.")
@click.option("--figures", type=click.IntRange(min=0), default=4, show_default=True,
              help="Flipped images drawn in robustness.png.")
@click.option("--tolerance", type=click.FloatRange(min=0), default=15.0, show_default=True,
              help="The pointing game's tolerance, pixels at the network's input.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the composite benchmark, the targets' draw and the intervals.")
def robustness(model: ModelOptions, debug: bool, data_spec: str,
               boxes: tuple[str, str] | None, kind: str, epsilon: str, targeted: bool,
               steps: int, methods: str, layer: str | None, out_dir: str, batch_size: int,
               figures: int, tolerance: float, seed: int) -> None:
    """Does the explanation survive an adversarial attack? Attacks every correctly
    classified image (FGSM or PGD through captum, within --epsilon per pixel, the image kept
    in [0, 1]); on the images whose prediction it flips, compares the original class's map
    on the attacked image with the clean one: pointing game and energy in the object's
    boxes, and the rank correlation of the two maps, with 95% bootstrap intervals. Needs
    captum: pip install 'axiomcam[attacks]'. Writes DIR/results.json, DIR/robustness.png
    and DIR/report.html.

    \b
    Examples:
      axiomcam robustness --data composite:100 --attack pgd --epsilon 2/255 --out robust
      axiomcam robustness --data composite:100 --attack fgsm --targeted --method gradcam,xgradcam
    """
    from ..workflows.attacks import parse_epsilon
    from ..workflows.robustness import AttackSettings
    from ..workflows.robustness import robustness as run_robustness
    from ..workflows.robustness_report import write_robustness

    try:
        budget = parse_epsilon(epsilon)
    except ValueError as error:
        raise BadUsage(f"--epsilon: {error}") from None
    names = check_method_list(methods)
    for name in names:
        check_cam_method(name, "robustness compares CAMs (gradcam, xgradcam, ...)")
    pretrained, layer, dataset = open_labelled_run(model, layer, data_spec, seed, boxes, debug)
    try:
        run = run_robustness(pretrained, dataset, AttackSettings(kind, budget, targeted, steps),
                             methods=names, layer=layer, batch_size=batch_size,
                             figures=figures, tolerance=tolerance, seed=seed, progress=None,
                             announce=lambda line: click.echo(line, err=True))
        write_robustness(run, out_dir)
    except Exception as error:
        fail(error, debug)
    _report(run)


def _report(run: RobustnessRun) -> None:
    from ..workflows.robustness_report import robustness_json

    summary = robustness_json(run)
    click.echo(f"{plural(run.images, 'image')}, {len(run.attacked)} attacked "
               f"({run.skipped} skipped: no label or box of it, or misclassified clean), "
               f"{len(run.flipped)} flipped by {run.settings.describe()} ({run.seconds:.1f} s)")
    for method, measures in summary["methods_summary"].items():
        if measures["correlation"] is None:
            continue
        pointing, energy = measures["pointing_attacked"], measures["energy_attacked"]
        click.echo(f"  {method}: pointing game clean {measures['pointing_clean']['mean']:.2f} "
                   f"-> attacked {pointing['mean']:.2f}, energy in box "
                   f"{measures['energy_clean']['mean']:.2f} -> {energy['mean']:.2f}, rank "
                   f"correlation {measures['correlation']['mean']:.2f}")
    click.echo("wrote " + ", ".join(str(path) for path in run.files))
