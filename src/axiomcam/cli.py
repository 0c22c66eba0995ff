"""The ``axiomcam`` command line.

- ``axiomcam explain IMAGE...``: overlays at the original resolution, raw maps (``.npy``),
  guided pictures and ``results.json`` (:func:`axiomcam.runs.explain_files`);
- ``axiomcam compare IMAGE...``: one figure, a row per image and a column per method,
  optionally with XGrad-CAM's axiom errors under each map (:func:`axiomcam.runs.compare_files`);
- ``axiomcam layers``: the layers a CAM can explain, with their output shapes;
- ``axiomcam samples``: scikit-image's bundled photographs as files, to try it on;
- ``axiomcam serve``: the explorer in the browser (:mod:`axiomcam.app`);
- ``axiomcam evaluate``: every metric on a data set (:func:`axiomcam.evaluation.evaluate`),
  into SQLite, summaries, plots and ``report.html``.

``--model`` takes a built-in pretrained name, a torchvision or timm architecture with
``--weights FILE``, a TorchScript or pickled model file, or ``package.module:factory``
(:func:`axiomcam.models.load`).

Exit codes: 0 success, 2 bad usage (an unknown method, model, layer, target or metric
group, a bad option value), 1 any other failure, including any image that could not be
explained (the others are still written; the failures are listed at the end). Errors are
one line on stderr, ``axiomcam: error: ...``; ``--debug`` shows the traceback instead.
axiomcam's warnings are one line each too, ``axiomcam: warning: ...``.

Example:
    >>> from click.testing import CliRunner
    >>> result = CliRunner().invoke(main, ["evaluate", "--methods", "nocam", "--data", "x",
    ...                                    "--out", "never-written"])
    >>> result.exit_code, result.output.splitlines()[-1][:40]
    (2, "axiomcam: error: unknown method 'nocam';")
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from . import __version__
from .methods import CAM_METHODS, AxiomCamWarning

__all__ = ["main"]

DEFAULT_METHODS = "gradcam,gradcam++,xgradcam,ablationcam,scorecam,layercam"
COMPARE_METHODS = "gradcam,gradcam++,xgradcam,ablationcam,scorecam"


class _BadUsage(click.UsageError):
    """Exit 2 with one line on stderr."""

    def show(self, file: Any = None) -> None:
        # "axiomcam SUBCOMMAND" whatever name the program was started by
        sub = self.ctx.info_name if self.ctx is not None and self.ctx.parent else None
        command = f"axiomcam {sub}" if sub else "axiomcam"
        click.echo(f"axiomcam: error: {_one_line(self.format_message())} "
                   f"(see '{command} --help')", err=True, file=file)


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


def _bad_usage(error: BaseException, debug: bool) -> NoReturn:
    if debug:
        raise error
    raise _BadUsage(str(error)) from error


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(format="axiomcam: %(message)s",
                        level=logging.DEBUG if debug else logging.WARNING)


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """axiomcam's own warnings as ``axiomcam: warning: ...`` lines, not in Python's
    ``file:line: category`` form, which would point into click's code."""
    original = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        if issubclass(category, AxiomCamWarning):
            click.echo(f"axiomcam: warning: {_one_line(str(message))}", err=True)
        else:
            original(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


@click.group(context_settings={"help_option_names": ["-h", "--help"],
                               "max_content_width": 100})
@click.version_option(__version__, prog_name="axiomcam")
@click.pass_context
def main(context: click.Context) -> None:
    """axiomcam: class activation maps and measures of how good they are.

    \b
    Examples:
      axiomcam explain photo.jpg --method xgradcam --target top3 --out maps
      axiomcam compare photos/ --methods gradcam,xgradcam,ablationcam --axioms
      axiomcam layers --model mobilenet_v2
      axiomcam samples photos
      axiomcam serve --model mobilenet_v2 --port 7860
      axiomcam evaluate --data composite:200 --out results/mobilenet_v2
    """
    context.with_resource(_warnings_as_lines())


# ------------------------------------------------------------------------ model options


def _floats(text: str | None, option: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise _BadUsage(f"{option} takes comma-separated numbers, got {text!r}") from None
    if len(values) not in (1, 3):
        raise _BadUsage(f"{option} takes 1 or 3 numbers (R,G,B), got {text!r}")
    return values


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that choose and feed the model, shared by every subcommand."""
    options = [
        click.option("--model", "model_spec", default="mobilenet_v2", show_default=True,
                     metavar="NAME|FILE|MODULE:FACTORY",
                     help="A built-in pretrained model (mobilenet_v2, efficientnet_lite0), a "
                          "torchvision or timm architecture name with --weights, a "
                          "TorchScript or pickled model file, or package.module:factory."),
        click.option("--weights", type=click.Path(dir_okay=False), default=None,
                     metavar="FILE", help="A state dict to load into the architecture."),
        click.option("--classes", "classes_file", type=click.Path(dir_okay=False),
                     default=None, metavar="FILE",
                     help="Class names: one per line, or a JSON list/dict "
                          "(default: ImageNet's for 1000 outputs, else 'class N')."),
        click.option("--size", type=click.IntRange(min=8), default=None,
                     help="Input side in pixels (built-in models: their own, 224)."),
        click.option("--mean", default=None, metavar="R,G,B",
                     help="Normalisation mean for pixels in [0, 1] (default: ImageNet's)."),
        click.option("--std", default=None, metavar="R,G,B",
                     help="Normalisation standard deviation (default: ImageNet's)."),
        click.option("--device", default="cpu", show_default=True,
                     help="cpu, cuda, cuda:1, mps, ..."),
        click.option("--debug", is_flag=True, help="Show tracebacks and debug logging."),
    ]
    for option in reversed(options):
        command = option(command)

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        _setup_logging(kwargs["debug"])
        return command(**kwargs)

    return wrapper


def picture_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Batching and how maps are drawn: the options of explain and compare."""
    options = [
        click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
                     help="Images per forward/backward pass."),
        click.option("--alpha", type=click.FloatRange(0, 1), default=0.5, show_default=True,
                     help="Opacity of the map over the image."),
        click.option("--colormap", default="jet", show_default=True,
                     help="A matplotlib colormap name."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _load_model(model_spec: str, weights: str | None, classes_file: str | None,
                size: int | None, mean: str | None, std: str | None, device: str,
                debug: bool):
    """The model, or a one-line error: exit 2 for a spec that names nothing known or an
    unusable device, exit 1 for files that cannot be read or do not fit."""
    import torch

    from . import models
    from .models import ModelSpecError

    try:
        torch_device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise _BadUsage(f"invalid --device {device!r}: {error}") from error
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise _BadUsage(f"--device {device!r} asks for CUDA but no GPU is available")
    mean_values, std_values = _floats(mean, "--mean"), _floats(std, "--std")
    try:
        return models.load(model_spec, weights=weights, classes=classes_file, size=size,
                           mean=mean_values, std=std_values, device=torch_device)
    except ModelSpecError as error:
        _bad_usage(error, debug)
    except Exception as error:
        _fail(error, debug)


def _check_method(name: str) -> str:
    from . import METHOD_NAMES

    key = name.strip().lower()
    if key not in METHOD_NAMES:
        near = difflib.get_close_matches(key, METHOD_NAMES, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise _BadUsage(f"unknown method {name!r}{hint}; known: {', '.join(METHOD_NAMES)}")
    return key


def _check_layer(pretrained, layer: str | None, debug: bool) -> str:
    from .runs import check_layer

    try:
        return check_layer(pretrained, layer)
    except ValueError as error:
        _bad_usage(error, debug)


def _check_targets(text: str, pretrained, debug: bool):
    from .runs import parse_targets

    try:
        return parse_targets(text, pretrained.class_names)
    except ValueError as error:
        _bad_usage(ValueError(f"--target: {error}"), debug)


def _finish(failures: Sequence[Any]) -> None:
    """List the failures on stderr; exit 1 if there were any."""
    from .runs import print_failures

    if failures:
        print_failures(failures, lambda line: click.echo(line, err=True))
        raise click.exceptions.Exit(1)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


# ------------------------------------------------------------------------------ explain


@main.command()
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@model_options
@click.option("--method", default="xgradcam", show_default=True,
              help=f"The method: {', '.join(CAM_METHODS)}, ablationcam:activation, "
                   "guided_backprop, or guided_<method> (e.g. guided_gradcam).")
@click.option("--layer", default=None, metavar="NAME",
              help="Layer to explain (default: the model's last convolutional stage; "
                   "'axiomcam layers' lists them).")
@click.option("--target", "target_spec", default="top1", show_default=True,
              metavar="top1|top3|INDEX|NAME",
              help="What to explain: each image's top N classes, or classes by index or "
                   "name, comma-separated (281,tabby).")
@click.option("--out", "out_dir", default="explanations", show_default=True, metavar="DIR",
              type=click.Path(file_okay=False), help="Output directory.")
@picture_options
def explain(images: tuple[str, ...], model_spec: str, weights: str | None,
            classes_file: str | None, size: int | None, mean: str | None, std: str | None,
            device: str, debug: bool, method: str, layer: str | None, target_spec: str,
            out_dir: str, batch_size: int, alpha: float, colormap: str) -> None:
    """Explain why the model gave its classes to each IMAGE (files, directories, globs).

    Writes, per image and target class, into DIR: the map over the image at its original
    size (class, probability and score in the file name and in the PNG's text chunks),
    the guided picture for guided methods, the raw map as .npy, and one results.json.

    \b
    Examples:
      axiomcam explain cat.jpg --method xgradcam --target top3 --out maps
      axiomcam explain photos/ "more/**/*.png" --target tabby --layer features.16
      axiomcam explain x.png --model resnet50 --weights resnet50.pth --classes names.txt
    """
    method = _check_method(method)
    _check_colormap(colormap)
    pretrained = _load_model(model_spec, weights, classes_file, size, mean, std, device, debug)
    targets = _check_targets(target_spec, pretrained, debug)
    layer_name = None if method == "guided_backprop" else _check_layer(pretrained, layer, debug)
    from .runs import collect_images, explain_files

    paths, failures = collect_images(images)

    try:
        run = explain_files(pretrained, paths, method, out_dir, layer=layer_name,
                            targets=targets, batch_size=batch_size, alpha=alpha,
                            colormap=colormap, failures=failures, model_spec=model_spec)
    except Exception as error:
        _fail(error, debug)
    maps = sum(1 for path in run.written if path.suffix == ".npy")
    click.echo(f"explained {_plural(run.explained, 'image')} ({_plural(maps, 'map')}, "
               f"{method} at {layer_name or 'the input'}) in {run.seconds:.1f} s -> "
               f"{run.out_dir}; details in {run.results_file}")
    _finish(run.failures)


def _check_colormap(colormap: str) -> None:
    import matplotlib

    if colormap not in matplotlib.colormaps:
        near = difflib.get_close_matches(colormap, list(matplotlib.colormaps), n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise _BadUsage(f"unknown matplotlib colormap {colormap!r}{hint}")


# ------------------------------------------------------------------------------ compare


@main.command()
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@model_options
@click.option("--methods", "method_list", default=COMPARE_METHODS, show_default=True,
              metavar="LIST", help="Comma-separated methods, one column each.")
@click.option("--layer", default=None, metavar="NAME",
              help="Layer to explain (default: the model's last convolutional stage).")
@click.option("--target", "target_spec", default="top1", show_default=True,
              metavar="top1|INDEX|NAME", help="The class each row explains.")
@click.option("--axioms", is_flag=True,
              help="Print the conservation (CE) and sensitivity (SE) errors of XGrad-CAM's "
                   "axioms under each map (methods with channel weights).")
@click.option("--out", "figure", default="comparison.png", show_default=True, metavar="FILE",
              type=click.Path(dir_okay=False), help="The figure (.png, .pdf, .svg, .jpg).")
@picture_options
def compare(images: tuple[str, ...], model_spec: str, weights: str | None,
            classes_file: str | None, size: int | None, mean: str | None, std: str | None,
            device: str, debug: bool, method_list: str, layer: str | None, target_spec: str,
            axioms: bool, figure: str, batch_size: int, alpha: float, colormap: str) -> None:
    """Draw several methods side by side: a row per IMAGE, a column per method.

    \b
    Examples:
      axiomcam compare cat.jpg dog.jpg --methods gradcam,gradcam++,xgradcam,ablationcam,scorecam
      axiomcam compare photos/ --methods gradcam,xgradcam --layer features.17.conv.1 --axioms
    """
    methods = list(dict.fromkeys(_check_method(name)
                                 for name in method_list.split(",") if name.strip()))
    if not methods:
        raise _BadUsage(f"--methods names no method: {method_list!r}")
    _check_colormap(colormap)
    pretrained = _load_model(model_spec, weights, classes_file, size, mean, std, device, debug)
    target = _check_targets(target_spec, pretrained, debug)
    if target.count != 1:
        raise _BadUsage(f"--target {target_spec!r}: compare shows one class per image "
                        "(use top1, an index or a name)")
    layer_name = _check_layer(pretrained, layer, debug)
    from .runs import collect_images, compare_files

    paths, failures = collect_images(images)

    try:
        run = compare_files(pretrained, paths, methods, figure, layer=layer_name,
                            target=target, axioms=axioms, batch_size=batch_size, alpha=alpha,
                            colormap=colormap, failures=failures)
    except Exception as error:
        _fail(error, debug)
    click.echo(f"compared {_plural(len(methods), 'method')} on {_plural(run.images, 'image')} "
               f"at {layer_name} in {run.seconds:.1f} s -> {run.figure}")
    _finish(run.failures)


# ------------------------------------------------------------------------------- layers


@main.command()
@model_options
def layers(model_spec: str, weights: str | None, classes_file: str | None, size: int | None,
           mean: str | None, std: str | None, device: str, debug: bool) -> None:
    """List the layers a CAM can explain (output (B, C, h, w) with h*w > 1), in call order,
    with their output shapes for one input; '*' marks the default layer.

    \b
    Examples:
      axiomcam layers --model mobilenet_v2
      axiomcam layers --model resnet50 --weights resnet50.pth --size 320
    """
    import torch

    from .layers import candidate_layers

    pretrained = _load_model(model_spec, weights, classes_file, size, mean, std, device, debug)
    blank = torch.zeros(1, 3, pretrained.input_size, pretrained.input_size,
                        device=pretrained.device)
    try:
        found = candidate_layers(pretrained.model, blank)
    except Exception as error:
        _fail(error, debug)
    width = max(len(name) for name, _ in found)
    click.echo(f"  {'layer'.ljust(width)}  output shape (input {pretrained.input_size}x"
               f"{pretrained.input_size})")
    for name, shape in found:
        mark = "*" if name == pretrained.default_layer else " "
        click.echo(f"{mark} {name.ljust(width)}  {'x'.join(map(str, shape[1:]))}")
    click.echo(f"{_plural(len(found), 'layer')}; * = default ({pretrained.default_layer})")


# -------------------------------------------------------------------------------- serve


@main.command()
@model_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (the default is this machine only; 0.0.0.0 "
                   "opens the app to the network, with no login).")
@click.option("--port", type=click.IntRange(0, 65535), default=7860, show_default=True,
              help="Port to listen on (0: any free port).")
def serve(model_spec: str, weights: str | None, classes_file: str | None, size: int | None,
          mean: str | None, std: str | None, device: str, debug: bool, host: str,
          port: int) -> None:
    """Start the explorer in the browser: upload an image or pick a sample, pick a class,
    a layer and several methods, and see the maps side by side with their axiom errors
    and deletion-curve areas. Runs offline; Ctrl-C stops it.

    \b
    Examples:
      axiomcam serve
      axiomcam serve --model efficientnet_lite0 --port 8080
    """
    from .app.explorer import Explorer
    from .app.server import serve as serve_app

    pretrained = _load_model(model_spec, weights, classes_file, size, mean, std, device, debug)
    try:
        explorer = Explorer(pretrained)
    except Exception as error:
        _fail(error, debug)
    try:
        serve_app(explorer, host, port, ready=lambda url: click.echo(
            f"axiomcam explorer for {pretrained.name}: open {url} (Ctrl-C stops it)"))
    except OSError as error:
        _fail(OSError(f"cannot listen on {host}:{port}: {error.strerror or error}"), debug)


# ------------------------------------------------------------------------------ samples


@main.command()
@click.argument("folder", type=click.Path(file_okay=False), default="samples")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def samples(folder: str, debug: bool) -> None:
    """Write the photographs that ship with scikit-image (chelsea, coffee, rocket,
    astronaut, camera, motorcycle) into FOLDER as PNG files, to try the other commands on.

    \b
    Example:
      axiomcam samples photos && axiomcam explain photos/chelsea.png --out maps
    """
    from .images import SAMPLE_IMAGES, sample_image

    _setup_logging(debug)
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, what in SAMPLE_IMAGES.items():
            path = out / f"{name}.png"
            sample_image(name).save(path)
            click.echo(f"{path}: {what}")
    except OSError as error:
        _fail(error, debug)


# ----------------------------------------------------------------------------- evaluate


@main.command()
@model_options
@click.option("--data", "data_spec", required=True, metavar="SPEC",
              help="composite:N (built-in benchmark), an image folder (one sub-folder per "
                   "class) or a CSV of path,label.")
@click.option("--methods", "method_list", default=DEFAULT_METHODS, show_default=True,
              metavar="LIST", help="Comma-separated CAM methods.")
@click.option("--layer", default=None, metavar="NAME",
              help="Layer to explain (default: the model's last convolutional stage).")
@click.option("--out", "out_dir", required=True, metavar="DIR",
              type=click.Path(file_okay=False, dir_okay=True),
              help="Output directory: results.sqlite, summary.csv, summary.md, plots, "
                   "report.html.")
@click.option("--boxes", nargs=2, default=None, metavar="voc|coco FILE",
              help="Ground-truth boxes for --data: a Pascal VOC folder/file or a COCO JSON.")
@click.option("--metrics", "metric_list", default=None, metavar="LIST",
              help="Comma-separated metric groups: axioms, faithfulness, deletion, road, "
                   "localization, discrimination, sanity (default: all that the data allows).")
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
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed for the benchmark, ROAD noise, randomisation and bootstrap.")
@click.option("--gallery-images", type=click.IntRange(min=0), default=3, show_default=True,
              help="Best and worst images per method shown in report.html (0: none).")
@click.option("--overwrite", is_flag=True,
              help="Delete the results already in --out and start again (without it, a run "
                   "of the same configuration continues where it stopped, and a run of "
                   "another configuration is refused).")
def evaluate(model_spec: str, weights: str | None, classes_file: str | None, size: int | None,
             mean: str | None, std: str | None, device: str, debug: bool, data_spec: str,
             method_list: str, layer: str | None, out_dir: str,
             boxes: tuple[str, str] | None, metric_list: str | None,
             batch_size: int, perturbation_batch_size: int | None, deletion_steps: int,
             road_percentages: str, sanity_images: int, sanity_steps: int | None, seed: int,
             gallery_images: int, overwrite: bool) -> None:
    """Measure CAM methods on a data set: XGrad-CAM's axioms, faithfulness, ROAD,
    localization, class discrimination and sanity, per image, into DIR/results.sqlite,
    with summary.csv, summary.md, plots and report.html (one self-contained file: the
    tables, the plots and the best and worst images of each method).

    \b
    Example:
      axiomcam evaluate --model mobilenet_v2 --data composite:200 \\
          --methods gradcam,gradcam++,xgradcam,ablationcam,scorecam,layercam \\
          --layer features.17.conv.1 --out results/mobilenet_v2
    \b
    Your own images, with Pascal VOC boxes:
      axiomcam evaluate --data photos/ --boxes voc photos/annotations --out results/mine
    \b
    Interrupted? Run the same command again: it continues where it stopped.
    On 4 processes (or machines: docs/scaling.md):
      torchrun --nproc_per_node 4 $(which axiomcam) evaluate --data composite:200 \\
          --out results/mobilenet_v2
    """
    # checks that need nothing loaded come first, so that a typo fails at once
    from .evaluation import check_methods, check_metric_groups
    from .metrics import check_percentages

    try:
        method_names = check_methods(method_list)
        groups = check_metric_groups(metric_list)
        percentages = check_percentages(
            [float(p) for p in road_percentages.split(",") if p.strip()], "--road-percentages")
    except ValueError as error:
        raise _BadUsage(str(error)) from error
    boxes_format, boxes_file = (None, None) if boxes is None else boxes
    if boxes_format is not None and boxes_format.lower() not in ("voc", "coco"):
        raise _BadUsage(f"--boxes takes a format (voc or coco) and a file, got "
                        f"{boxes_format!r}")

    from .evaluation.distributed import rank_device

    pretrained = _load_model(model_spec, weights, classes_file, size, mean, std,
                             rank_device(device), debug)
    if layer is not None:
        layer = _check_layer(pretrained, layer, debug)

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
            sanity_steps=sanity_steps, seed=seed, overwrite=overwrite, progress=None,
            gallery_images=gallery_images)
    except KeyboardInterrupt:
        click.echo(f"\naxiomcam: interrupted; the finished batches are kept in {out_dir}: "
                   "run the same command again to continue", err=True)
        raise SystemExit(130) from None
    except Exception as error:
        _fail(error, debug)

    if int(os.environ.get("RANK", "0")) != 0:
        return  # rank 0 of a distributed run reports for every rank
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
    click.echo(f"wrote {run.database}, {run.files.csv}, {run.files.markdown} and "
               f"{len(run.files.plots)} plots")
    click.echo(f"report: {run.report}")
