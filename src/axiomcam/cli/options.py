"""The options the subcommands share, and their checks: each bad value is a one-line usage
error (exit 2) that says what would be accepted.

Examples:
    >>> ModelOptions("resnet18", weights="r18.pth").layers_command()
    'axiomcam layers --model resnet18 --weights r18.pth'
    >>> check_method("Grad-CAM++")
    'gradcam++'
"""

from __future__ import annotations

import difflib
import functools
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from .messages import BadUsage, bad_usage, fail, setup_logging

if TYPE_CHECKING:
    import torch

    from ..models import PretrainedModel
    from ..workflows import TargetChoice

__all__ = [
    "PRESET_HELP", "ModelOptions", "check_colormap", "check_layer", "check_method",
    "check_method_list", "check_targets", "head_option", "layer_error_message",
    "model_options", "parse_device", "picture_options",
]

# how the library's layer errors point to Python (axiomcam.layers.resolve_layer): on the
# command line the command that lists the layers is named instead
#: the --preprocess presets and what each feeds the network (the models' presets, written
#: out here so that --help does not import torch)
PRESET_HELP = {
    "imagenet": "ImageNet's mean and std",
    "unit": "pixels in [0, 1]",
    "raw255": "pixels in [0, 255]",
    "tf": "pixels in [-1, 1]",
}
_PYTHON_LAYER_LISTING = re.compile(
    r"\s*`axiomcam\.layers\.candidate_layers\([^`]*\)` lists the usable layers\.?")


@dataclass(frozen=True)
class ModelOptions:
    """What ``--model`` and the options beside it asked for (see :func:`model_options`)."""

    spec: str
    weights: str | None = None
    classes_file: str | None = None
    size: int | None = None
    mean: str | None = None
    std: str | None = None
    device: str = "cpu"
    preprocess: str | None = None
    onnx_score: str = "logits"

    def load(self, debug: bool, device: str | None = None) -> PretrainedModel:
        """The model, or a one-line error: exit 2 for a spec that names nothing known or an
        unusable device, exit 1 for files that cannot be read or do not fit.

        Args:
            debug: raise the loader's exception itself.
            device: instead of ``--device`` (a distributed run's rank's own).
        """
        from .. import models
        from ..models import ModelSpecError

        try:
            torch_device = parse_device(self.device if device is None else device)
        except ValueError as error:
            raise BadUsage(str(error)) from error
        mean_values, std_values = _floats(self.mean, "--mean"), _floats(self.std, "--std")
        try:
            pretrained = models.load(self.spec, weights=self.weights, classes=self.classes_file,
                                     size=self.size, mean=mean_values, std=std_values,
                                     preprocess=self.preprocess, onnx_score=self.onnx_score,
                                     device=torch_device)
        except ModelSpecError as error:
            bad_usage(error, debug)
        except Exception as error:
            fail(error, debug)
        for note in pretrained.notes:  # what the loader decided: layout, score, preprocessing
            click.echo(f"axiomcam: note: {pretrained.name}: {note}", err=True)
        return pretrained

    def layers_command(self) -> str:
        """The ``axiomcam layers`` command that lists this model's layers."""
        words = ["axiomcam", "layers", "--model", self.spec]
        for option, value in (("--weights", self.weights), ("--size", self.size)):
            if value is not None:
                words += [option, str(value)]
        return shlex.join(words)


def parse_device(text: str) -> torch.device:
    """A torch device from ``--device``.

    Raises:
        ValueError: not a device, or CUDA asked for where no GPU is available.
    """
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"invalid --device {text!r}: {error}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {text!r} asks for CUDA but no GPU is available")
    return device


def _floats(text: str | None, option: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise BadUsage(f"{option} takes comma-separated numbers, got {text!r}") from None
    if not values:
        raise BadUsage(f"{option} takes 1 number (every channel) or 1 per channel, got "
                       f"{text!r}")
    return values


_MODEL_OPTION_NAMES = ("model_spec", "weights", "classes_file", "size", "mean", "std",
                       "device", "preprocess", "onnx_score")


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that choose and feed the model, shared by every subcommand; the command
    receives them as ``model`` (a :class:`ModelOptions`) and ``debug``."""
    options = [
        click.option("--model", "model_spec", default="mobilenet_v2", show_default=True,
                     metavar="NAME|FILE|MODULE:FACTORY",
                     help="A built-in pretrained model (mobilenet_v2, efficientnet_lite0), a "
                          "torchvision or timm architecture name with --weights, a model "
                          "file saved whole with torch.save(model, FILE) (TorchScript "
                          "files are refused: hooks cannot run inside them), an ONNX file, "
                          "or package.module:factory."),
        click.option("--weights", type=click.Path(dir_okay=False), default=None,
                     metavar="FILE", help="A state dict to load into the architecture."),
        click.option("--classes", "classes_file", type=click.Path(dir_okay=False),
                     default=None, metavar="FILE",
                     help="Class names: one per line, or a JSON list/dict "
                          "(default: ImageNet's for 1000 outputs, else 'class N')."),
        click.option("--size", type=click.IntRange(min=8), default=None,
                     help="Input side in pixels (built-in models: their own, 224)."),
        click.option("--mean", default=None, metavar="M[,M...]",
                     help="Normalisation mean for pixels in [0, 1]: 1 number for every "
                          "channel, or 1 per channel (default: ImageNet's; see --preprocess)."),
        click.option("--std", default=None, metavar="S[,S...]",
                     help="Normalisation standard deviation, 1 number or 1 per channel."),
        click.option("--preprocess", type=click.Choice(list(PRESET_HELP)), default=None,
                     help="A named mean/std instead of --mean/--std: "
                          + "; ".join(f"{name}: {text}" for name, text in PRESET_HELP.items())
                          + ". Default: imagenet for RGB models; an ONNX graph that "
                          "rescales 0..255 itself: raw255; other channels-last (TensorFlow) "
                          "ONNX: tf; models of other than 3 channels: unit."),
        click.option("--onnx-score", type=click.Choice(["logits", "probability"]),
                     default="logits", show_default=True,
                     help="What to explain of an ONNX graph that ends in Softmax or Sigmoid: "
                          "the logits before that node, or the graph's probability."),
        click.option("--device", default="cpu", show_default=True,
                     help="cpu, cuda, cuda:1, mps, ..."),
        click.option("--debug", is_flag=True, help="Show tracebacks and debug logging."),
    ]
    for option in reversed(options):
        command = option(command)

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        setup_logging(kwargs["debug"])
        spec, *others = (kwargs.pop(name) for name in _MODEL_OPTION_NAMES)
        return command(model=ModelOptions(spec, *others), **kwargs)

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


def check_method(name: str) -> str:
    """A method's canonical name (:func:`axiomcam.methods.normalise_method_name`), or a
    usage error that lists the near and the known names."""
    from ..methods import METHOD_NAMES, normalise_method_name

    try:
        return normalise_method_name(name)
    except ValueError:
        key = name.strip().lower()
        near = difflib.get_close_matches(key, METHOD_NAMES, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise BadUsage(f"unknown method {name!r}{hint}; known: {', '.join(METHOD_NAMES)}"
                       ) from None


def check_method_list(text: str) -> list[str]:
    """Comma-separated methods, each checked, without repeats."""
    methods = list(dict.fromkeys(check_method(name) for name in text.split(",")
                                 if name.strip()))
    if not methods:
        raise BadUsage(f"--methods names no method: {text!r}")
    return methods


def check_layer(pretrained: PretrainedModel, layer: str | None, model: ModelOptions,
                debug: bool) -> str:
    """The layer (:func:`axiomcam.workflows.check_layer`), or a usage error that names
    the ``axiomcam layers`` command listing the usable ones."""
    from ..workflows import check_layer as checked_layer

    try:
        return checked_layer(pretrained, layer)
    except ValueError as error:
        if debug:
            raise
        raise BadUsage(layer_error_message(str(error), model)) from error


def layer_error_message(message: str, model: ModelOptions, *, always: bool = True) -> str:
    """A layer error's ``message`` with the ``axiomcam layers`` command that lists the
    model's usable layers in place of the library's pointer to Python; where the message
    has no such pointer, the command is added at its end when ``always``.

    Examples:
        >>> layer_error_message("layer 'x' does not exist. `axiomcam.layers.candidate_"
        ...                     "layers(model, inputs)` lists the usable layers.",
        ...                     ModelOptions("resnet18"))
        "layer 'x' does not exist. 'axiomcam layers --model resnet18' lists the usable layers"
    """
    text, pointers = _PYTHON_LAYER_LISTING.subn("", message)
    if not (pointers or always):
        return message
    text = text.rstrip()
    separator = " " if text.endswith(".") else "; "
    return f"{text}{separator}'{model.layers_command()}' lists the usable layers"


def check_targets(text: str, pretrained: PretrainedModel, debug: bool, *,
                  head: str | None = None, score: str = "logit") -> TargetChoice:
    """``--target`` read against the model's classes, with ``--head`` and ``--score``
    (:func:`axiomcam.workflows.choose_head`), or a usage error."""
    from ..workflows import choose_head, parse_targets

    try:
        choice = parse_targets(text, pretrained.class_names)
    except ValueError as error:
        bad_usage(ValueError(f"--target: {error}"), debug)
    try:
        return choose_head(choice, head, score, len(pretrained.class_names) == 1,
                           pretrained.probability)
    except ValueError as error:
        bad_usage(error, debug)


def head_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--head softmax|sigmoid``: how the model's class scores become probabilities."""
    return click.option(
        "--head", type=click.Choice(["softmax", "sigmoid"]), default=None,
        help="How the model's outputs become probabilities: softmax over the classes, or "
             "each class's own sigmoid (multi-label models). Default: sigmoid for a model "
             "with one output (binary: classes negative and positive) or --target aboveT, "
             "else softmax.")(command)


def check_colormap(colormap: str) -> None:
    """A matplotlib colormap's name, or a usage error with the near ones."""
    import matplotlib

    if colormap not in matplotlib.colormaps:
        near = difflib.get_close_matches(colormap, list(matplotlib.colormaps), n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise BadUsage(f"unknown matplotlib colormap {colormap!r}{hint}")
