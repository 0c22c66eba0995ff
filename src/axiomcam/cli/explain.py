"""``axiomcam explain`` and ``axiomcam compare``: maps of image files, as files or as one
figure (:func:`axiomcam.workflows.explain_files`, :func:`axiomcam.workflows.compare_files`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ..methods import CAM_METHODS, COUNTERFACTUAL_METHODS, BaseCAM, method_info
from ..support import warn
from .group import main
from .messages import BadUsage, fail, finish, plural
from .method_options import check_method_options, method_option
from .options import (
    ModelOptions,
    check_colormap,
    check_layer,
    check_method,
    check_method_list,
    check_targets,
    head_option,
    model_options,
    picture_options,
)

if TYPE_CHECKING:
    from ..models import PretrainedModel

__all__ = ["COMPARE_METHODS", "aug_smooth_option", "compare", "counterfactual_option",
           "eigen_smooth_option", "explain", "image_options"]

#: the columns of ``axiomcam compare`` unless ``--methods`` says otherwise
COMPARE_METHODS = "gradcam,gradcam++,xgradcam,ablationcam,scorecam"


def image_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """What explain and compare share: the images (``IMAGE...``), the model
    (:func:`~axiomcam.cli.options.model_options`) and the layer (``--layer``)."""
    command = click.option(
        "--layer", "layers", multiple=True, metavar="NAME",
        help="Layer to explain (default: the model's last convolutional stage; "
             "'axiomcam layers' lists them). explain takes it again for several layers: "
             "their fused map, and each layer's raw map.")(command)
    command = model_options(command)
    return click.argument("images", nargs=-1, required=True, metavar="IMAGE...")(command)


def counterfactual_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--counterfactual``: the evidence against the class (explain and compare)."""
    return click.option(
        "--counterfactual", is_flag=True,
        help="Show the evidence against the class: the regions whose removal would raise "
             "its score (the method's formula of the negated gradient; gradient methods "
             "only).")(command)


def eigen_smooth_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--eigen-smooth``: each map the first principal component of its channel terms."""
    return click.option(
        "--eigen-smooth", is_flag=True,
        help="Replace each map by the first principal component of the method's channel "
             "terms (w_k A^k, ...) over the positions, instead of their sum (pytorch-grad-"
             "cam's eigen_smooth; CAMs with channel terms).")(command)


def _check_eigen_smooth(methods: list[str]) -> None:
    """A usage error naming the methods ``--eigen-smooth`` does not apply to."""
    lacking = [method for method in methods
               if not (method_info(method).takes_layer
                       and issubclass(method_info(method).explainer, BaseCAM)
                       and method_info(method).explainer.has_channel_terms)]
    if lacking:
        raise BadUsage(f"--eigen-smooth: {', '.join(lacking)} "
                       f"{'has' if len(lacking) == 1 else 'have'} no channel terms to "
                       "decompose (it applies to CAMs whose map is a sum over channels)")


def aug_smooth_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--aug-smooth``: test-time augmentation of every map (explain and compare)."""
    return click.option(
        "--aug-smooth", is_flag=True,
        help="Average each map over test-time augmentations: the image flipped or not, "
             "its values times 0.9, 1 or 1.1 (six copies in one batch), each map brought "
             "back (pytorch-grad-cam's aug_smooth).")(command)


def _check_counterfactual(methods: list[str], default_methods: bool) -> list[str]:
    """The methods to draw counterfactually: the default list without the methods that have
    no counterfactual form (named on the terminal), or a usage error naming those given."""
    lacking = [method for method in methods if not method_info(method).counterfactual]
    if lacking and default_methods:
        warn(f"--counterfactual: leaving out {', '.join(lacking)} (no counterfactual form)")
        return [method for method in methods if method not in lacking]
    if lacking:
        raise BadUsage(f"--counterfactual: {', '.join(lacking)} "
                       f"{'has' if len(lacking) == 1 else 'have'} no counterfactual form "
                       f"(only gradient methods do: {', '.join(COUNTERFACTUAL_METHODS)})")
    return methods


def _check_layers(pretrained: PretrainedModel, layers: tuple[str, ...], model: ModelOptions,
                  debug: bool) -> str | list[str]:
    """The layer of ``--layer`` (the default without it), or the layers of several."""
    if len(set(layers)) < len(layers):
        twice = next(name for name in layers if layers.count(name) > 1)
        raise BadUsage(f"--layer {twice!r} is given twice: give each layer once")
    names = [check_layer(pretrained, name, model, debug) for name in layers or (None,)]
    return names[0] if len(names) == 1 else names


@main.command()
@image_options
@click.option("--method", default="xgradcam", show_default=True,
              help=f"The method: {', '.join(CAM_METHODS)}, ablationcam:activation, "
                   "occlusion (windows of 1/7 of the input's side, stride half of it, "
                   "zeros: 1 + 169 passes at 224 px), "
                   "guided_backprop, fullgrad, or guided_<method> (e.g. guided_gradcam).")
@click.option("--target", "target_spec", default="top1", show_default=True,
              metavar="top1|top3|aboveT|INDEX|NAME",
              help="What to explain: each image's top N classes; each image's labels whose "
                   "sigmoid probability is at least T (above0.5: a multi-label model); or "
                   "classes by index or name, comma-separated (281,tabby; positive or "
                   "negative for a model with one output).")
@head_option
@counterfactual_option
@eigen_smooth_option
@aug_smooth_option
@method_option
@click.option("--score", type=click.Choice(["logit", "probability", "softmax", "sigmoid"]),
              default="logit", show_default=True,
              help="The score each map explains: the class's logit, or the head's "
                   "probability (softmax and sigmoid name it and the head at once).")
@click.option("--out", "out_dir", default="explanations", show_default=True, metavar="DIR",
              type=click.Path(file_okay=False), help="Output directory.")
@click.option("--save-masks", is_flag=True,
              help="Also write each map cut into a mask (NAME_..._mask.png) and masks.json, a "
                   "COCO file of every mask (RLE) and its boxes.")
@click.option("--mask-threshold", default="fraction:0.5", show_default=True,
              metavar="otsu|fraction:F|percentile:P",
              help="Where --save-masks cuts a map: at F times its maximum, at its P-th "
                   "percentile, or at Otsu's threshold.")
@picture_options
def explain(images: tuple[str, ...], model: ModelOptions, debug: bool,
            layers: tuple[str, ...], method: str, target_spec: str, head: str | None,
            counterfactual: bool, eigen_smooth: bool, score: str, out_dir: str,
            save_masks: bool, mask_threshold: str, aug_smooth: bool,
            method_option_pairs: tuple[str, ...], batch_size: int, alpha: float,
            colormap: str) -> None:
    """Explain why the model gave its classes to each IMAGE (files, directories, globs).

    Writes, per image and target class, into DIR: the map over the image at its original
    size (class, probability and score in the file name and in the PNG's text chunks),
    the guided picture for guided methods, the raw map as .npy, and one results.json;
    with --save-masks, each map's mask as a PNG and masks.json (COCO: masks and boxes).
    File names carry the method; a file of another method, model or layer that a run
    replaces is named in a warning.

    A sigmoid head (--head sigmoid, a model with one output, --target aboveT) gives each
    class its own probability sigmoid(z); results.json says the head and the score.

    \b
    Examples:
      axiomcam explain cat.jpg --method xgradcam --target top3 --out maps
      axiomcam explain photos/ "more/**/*.png" --target tabby --layer features.16
      axiomcam explain x.png --model resnet50 --weights resnet50.pth --classes names.txt
      axiomcam explain cat.jpg --layer features.13 --layer features.18
      axiomcam explain x.png --model labels.pt --target above0.5 --score sigmoid
      axiomcam explain x.png --model binary.pt --target positive,negative
      axiomcam explain two-objects.png --method gradcam --target tabby --counterfactual
      axiomcam explain cat.jpg --method xgradcam --eigen-smooth
      axiomcam explain photos/ --save-masks --mask-threshold otsu --out seeds
      axiomcam explain cat.jpg --method fullgrad --aug-smooth
      axiomcam explain cat.jpg --method occlusion --method-option window=48
    """
    from ..models import PretrainedModel
    from ..workflows import collect_images, explain_files, layer_label
    from ..workflows.masks import parse_mask_threshold

    try:
        masks = parse_mask_threshold(mask_threshold) if save_masks else None
    except ValueError as error:
        raise BadUsage(f"--mask-threshold: {error}") from error
    method = check_method(method)
    if counterfactual:
        _check_counterfactual([method], default_methods=False)
    if eigen_smooth:
        _check_eigen_smooth([method])
    options = check_method_options(method_option_pairs, [method])[method]
    check_colormap(colormap)
    pretrained = model.load(debug)
    targets = check_targets(target_spec, pretrained, debug, head=head, score=score)
    layer_name = None
    if method_info(method).takes_layer:
        layer_name = _check_layers(pretrained, layers, model, debug)
    elif layers:  # said, not refused: the same command line serves every method
        click.echo(f"axiomcam: note: {method} explains the input: --layer ignored", err=True)
    paths, failures = collect_images(images)
    try:
        run = explain_files(pretrained, paths, method, out_dir, layer=layer_name,
                            targets=targets, batch_size=batch_size, alpha=alpha,
                            colormap=colormap, failures=failures, model_spec=model.spec,
                            counterfactual=counterfactual, masks=masks,
                            eigen_smooth=eigen_smooth, aug_smooth=aug_smooth,
                            method_options=options)
    except Exception as error:
        fail(error, debug)
    maps = sum(1 for path in run.written if path.suffix in (".npy", ".npz"))
    # the score is named when it is not simply the model's output (an ONNX graph's logits)
    output_note = "" if pretrained.score == PretrainedModel.score else \
        f" of the {pretrained.score}"
    head_note = "" if targets.head != "sigmoid" else \
        f", sigmoid head: {targets.explained} explained"
    kind = (" (counterfactual)" if counterfactual else "") + \
        (" (eigen-smoothed)" if eigen_smooth else "")
    click.echo(f"explained {plural(run.explained, 'image')} ({plural(maps, 'map')}{output_note}, "
               f"{method}{kind} at {layer_label(layer_name or 'the input')}{head_note}) in "
               f"{run.seconds:.1f} s -> {run.out_dir}; details in {run.results_file}")
    finish(run.failures)


@main.command()
@image_options
@click.option("--methods", "method_list", default=COMPARE_METHODS, show_default=True,
              metavar="LIST", help="Comma-separated methods, one column each.")
@click.option("--target", "target_spec", default="top1", show_default=True,
              metavar="top1|INDEX|NAME", help="The class each row explains.")
@head_option
@click.option("--axioms", is_flag=True,
              help="Print the conservation (CE) and sensitivity (SE) errors of XGrad-CAM's "
                   "axioms under each map (methods with channel weights).")
@counterfactual_option
@eigen_smooth_option
@aug_smooth_option
@method_option
@click.option("--out", "figure", default="comparison.png", show_default=True, metavar="FILE",
              type=click.Path(dir_okay=False), help="The figure (.png, .pdf, .svg, .jpg).")
@picture_options
def compare(images: tuple[str, ...], model: ModelOptions, debug: bool, method_list: str,
            layers: tuple[str, ...], target_spec: str, head: str | None, axioms: bool,
            counterfactual: bool, eigen_smooth: bool, figure: str, aug_smooth: bool,
            method_option_pairs: tuple[str, ...], batch_size: int, alpha: float,
            colormap: str) -> None:
    """Draw several methods side by side: a row per IMAGE, a column per method.

    \b
    Examples:
      axiomcam compare cat.jpg dog.jpg --methods gradcam,gradcam++,xgradcam,ablationcam,scorecam
      axiomcam compare photos/ --methods gradcam,xgradcam --layer features.17.conv.1 --axioms
      axiomcam compare two-objects.png --target tabby --counterfactual
      axiomcam compare cat.jpg --methods gradcam,xgradcam,eigengradcam,kpcacam,fem --eigen-smooth
      axiomcam compare cat.jpg --methods gradcam,fullgrad --aug-smooth
      axiomcam compare cat.jpg --methods occlusion,gradcam --method-option window=16
    """
    from ..workflows import collect_images, compare_files

    methods = check_method_list(method_list)
    if counterfactual:
        source = click.get_current_context().get_parameter_source("method_list")
        methods = _check_counterfactual(
            methods, default_methods=source is click.core.ParameterSource.DEFAULT)
    if eigen_smooth:
        _check_eigen_smooth(methods)
    options = check_method_options(method_option_pairs, methods)
    check_colormap(colormap)
    pretrained = model.load(debug)
    target = check_targets(target_spec, pretrained, debug, head=head)
    if target.count != 1:
        raise BadUsage(f"--target {target_spec!r}: compare shows one class per image "
                       "(use top1, an index or a name)")
    if len(layers) > 1:
        raise BadUsage(f"compare draws (and measures the axioms at) one layer, not "
                       f"{len(layers)}: give one --layer, or use explain for several")
    layer_name = check_layer(pretrained, layers[0] if layers else None, model, debug)
    paths, failures = collect_images(images)
    try:
        run = compare_files(pretrained, paths, methods, figure, layer=layer_name,
                            target=target, axioms=axioms, batch_size=batch_size, alpha=alpha,
                            colormap=colormap, failures=failures,
                            counterfactual=counterfactual, eigen_smooth=eigen_smooth,
                            aug_smooth=aug_smooth, method_options=options)
    except Exception as error:
        fail(error, debug)
    kind = (" (counterfactual maps)" if counterfactual else "") + \
        (" (eigen-smoothed)" if eigen_smooth else "")
    click.echo(f"compared {plural(len(methods), 'method')}{kind} on {plural(run.images, 'image')} "
               f"at {layer_name} in {run.seconds:.1f} s -> {run.figure}")
    finish(run.failures)
