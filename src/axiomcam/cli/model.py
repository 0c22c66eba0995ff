"""``axiomcam layers`` and ``axiomcam serve``: one model's layers, and the explorer in the
browser (:mod:`axiomcam.app`)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import click

from .group import main
from .messages import BadUsage, fail, plural
from .options import ModelOptions, head_option, model_options

if TYPE_CHECKING:
    from ..models import PretrainedModel

__all__ = ["layers", "serve", "with_head"]


@main.command()
@model_options
def layers(model: ModelOptions, debug: bool) -> None:
    """List the layers a CAM can explain (output (B, C, h, w) with h*w > 1), in call order,
    with their output shapes for one input; '*' marks the default layer.

    \b
    Examples:
      axiomcam layers --model mobilenet_v2
      axiomcam layers --model resnet50 --weights resnet50.pth --size 320
    """
    from ..layers import candidate_layers
    from ..workflows import blank_input

    pretrained = model.load(debug)
    blank = blank_input(pretrained)
    try:
        found = candidate_layers(pretrained.model, blank)
    except Exception as error:
        fail(error, debug)
    width = max(len(name) for name, _ in found)
    click.echo(f"  {'layer'.ljust(width)}  output shape (input {pretrained.input_size}x"
               f"{pretrained.input_size})")
    for name, shape in found:
        mark = "*" if name == pretrained.default_layer else " "
        click.echo(f"{mark} {name.ljust(width)}  {'x'.join(map(str, shape[1:]))}")
    click.echo(f"{plural(len(found), 'layer')}; * = default ({pretrained.default_layer})")


@main.command()
@model_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (the default is this machine only; 0.0.0.0 "
                   "opens the app to the network, with no login).")
@click.option("--port", type=click.IntRange(0, 65535), default=7860, show_default=True,
              help="Port to listen on (0: any free port).")
@head_option
def serve(model: ModelOptions, debug: bool, host: str, port: int, head: str | None) -> None:
    """Start the explorer in the browser: upload an image or pick a sample, pick a class,
    a layer and several methods, and see the maps side by side with their axiom errors
    and deletion-curve areas. Runs offline; Ctrl-C stops it.

    \b
    Examples:
      axiomcam serve
      axiomcam serve --model efficientnet_lite0 --port 8080
      axiomcam serve --model labels.pt --head sigmoid
    """
    from ..app.explorer import Explorer
    from ..app.server import serve as serve_app

    pretrained = with_head(model.load(debug), head)
    try:
        explorer = Explorer(pretrained)
    except Exception as error:
        fail(error, debug)
    try:
        serve_app(explorer, host, port, ready=lambda url: click.echo(
            f"axiomcam explorer for {pretrained.name}: open {url} (Ctrl-C stops it)"))
    except OSError as error:
        fail(OSError(f"cannot listen on {host}:{port}: {error.strerror or error}"), debug)


def with_head(pretrained: PretrainedModel, head: str | None) -> PretrainedModel:
    """The model with its probabilities read by ``--head`` (``None``: as loaded), for
    ``serve`` and ``evaluate`` (their metrics and deletion curves read ``p_c`` by it), or
    a usage error: a head the model contradicts (:func:`axiomcam.workflows.choose_head`),
    or a single-logit model, which they do not take (its classes are ``-z`` and ``z``, not
    the model's outputs)."""
    from ..workflows import TargetChoice, choose_head

    if len(pretrained.class_names) == 1:
        raise BadUsage("serve and evaluate do not take models with one output (binary: "
                       "classes negative -z and positive z) yet: use 'axiomcam explain IMAGE "
                       "--model ... --target positive,negative', or wrap the model to return "
                       "[-z, z] with two class names and use --head sigmoid")
    try:
        chosen = choose_head(TargetChoice(top=1), head, "logit", False, pretrained.probability)
    except ValueError as error:
        raise BadUsage(str(error)) from error
    return dataclasses.replace(pretrained, probability=chosen.head)
