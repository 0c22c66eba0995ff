"""Several methods side by side on image files: what ``axiomcam compare`` does.

:func:`compare_files` writes one figure: a row per image, a column per method, and
optionally XGrad-CAM's axiom errors under each map, measured by one
:class:`~axiomcam.metrics.AxiomProbe` per batch (the layer probed once, for every method).

Examples:
    >>> from PIL import Image
    >>> thumbnail(Image.new("RGB", (1000, 500))).size
    (448, 224)
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..figures import axiom_caption, method_title, save_grid
from ..images import overlay
from ..methods import AblationCache, Explainer
from ..metrics import AxiomErrors, AxiomProbe
from ..models import PretrainedModel
from .classify import (
    TargetChoice,
    check_layer,
    create_explainer,
    network_inputs,
    probabilities_from_logits,
    target_class_names,
)
from .image_files import Failure, failing_alone, image_batches

__all__ = ["THUMBNAIL_SIDE", "CompareRun", "compare_files", "thumbnail"]

#: the largest side of a picture in the comparison figure (the overlay is made at full size)
THUMBNAIL_SIDE = 448

#: one row of the figure: its pictures, their titles and their captions
Row = tuple[list[Image.Image], list[str], list[str]]


@dataclass
class CompareRun:
    """What :func:`compare_files` did."""

    figure: Path
    images: int = 0
    failures: list[Failure] = field(default_factory=list)
    axiom_errors: dict[str, list[tuple[float, float] | None]] = field(default_factory=dict)
    seconds: float = 0.0


def compare_files(pretrained: PretrainedModel, paths: Sequence[Path], methods: Sequence[str],
                  figure_path: str | os.PathLike[str], *, layer: str | None = None,
                  target: TargetChoice | None = None, axioms: bool = False,
                  batch_size: int = 8, alpha: float = 0.5, colormap: str = "jet",
                  failures: Sequence[Failure] = (), progress: bool | None = None,
                  counterfactual: bool = False, eigen_smooth: bool = False,
                  aug_smooth: bool = False,
                  method_options: Mapping[str, Mapping[str, object]] | None = None
                  ) -> CompareRun:
    """One figure: a row per image (the image, titled with the class explained, its
    probability and logit; then each method's map over it), and, with ``axioms=True``, the
    conservation error (CE) and sensitivity error (SE) of XGrad-CAM's axioms under each
    map of a method with channel weights (:mod:`axiomcam.metrics.axioms`; one probe of the
    layer per batch, shared by the methods).

    Args:
        pretrained: the model.
        paths: image files; unreadable ones are failures, the others still drawn.
        methods: method names (guided methods are drawn as their guided map).
        figure_path: the figure to write (``.png``, ``.pdf``, ``.svg``, ``.jpg``).
        layer: the layer (``None``: the model's default).
        target: one class per image (``top1`` by default; ``topN`` with ``N > 1`` is
            refused: a row shows one class).
        axioms: print CE / SE under the maps.
        batch_size: images per forward/backward pass.
        alpha: the overlays' opacity.
        colormap: the overlays' colour map.
        failures: failures met before, reported with the run's own.
        progress: a progress bar (``None``: when there are more than 4 images).
        counterfactual: every column shows its method's counterfactual map (the evidence
            against the class; titled "(counterfactual)"; the axioms then measure it
            against ``-y^c``).
        eigen_smooth: every map is the first principal component of its method's channel
            terms (:class:`~axiomcam.methods.BaseCAM`).
        aug_smooth: every map averaged over test-time augmentations (see
            :class:`~axiomcam.methods.Explainer`).
        method_options: per method, its keyword options (``window`` for occlusion, ...:
            :func:`axiomcam.methods.method_options`).

    Raises:
        ValueError: no methods, an unknown method or layer, ``topN`` with ``N > 1``, no
            image could be read, or ``counterfactual`` with a method that has no
            counterfactual form (named, with the ones that have one).
    """
    started = time.perf_counter()
    target = target or TargetChoice(top=1)
    if target.count != 1:
        got = f"{target.count} targets" if target.count else f"--target {target.describe()}"
        raise ValueError(f"compare shows one class per image; got {got}")
    if not methods:
        raise ValueError("compare needs at least one method")
    layer = check_layer(pretrained, layer)
    run = CompareRun(figure=Path(figure_path), failures=list(failures),
                     axiom_errors={method: [] for method in methods})
    rows: list[Row] = []
    with ExitStack() as stack:  # the explainers' hooks are removed whatever happens
        explainers = {method: stack.enter_context(
            create_explainer(pretrained, method, layer, counterfactual=counterfactual,
                             aug_smooth=aug_smooth, **dict((method_options or {}).get(method, {})),
                             **({"eigen_smooth": True} if eigen_smooth else {})))
            for method in methods}
        for loaded in image_batches(paths, batch_size, run.failures, progress=progress,
                                    description="compare", channels=pretrained.channels):
            with failing_alone(loaded, run.failures):
                rows.extend(_compare_batch(pretrained, explainers, loaded, target, layer,
                                           axioms, alpha, colormap, run))
    if not rows:
        raise ValueError("no image could be read: " + "; ".join(
            f"{failure.path}: {failure.reason}" for failure in run.failures))
    run.figure.parent.mkdir(parents=True, exist_ok=True)
    pictures, titles, captions = (list(column) for column in zip(*rows, strict=True))
    save_grid(run.figure, pictures, titles, captions if axioms else None)
    run.seconds = time.perf_counter() - started
    return run


def _compare_batch(pretrained: PretrainedModel, explainers: dict[str, Explainer],
                   loaded: Sequence[tuple[Path, Image.Image]], target: TargetChoice, layer: str,
                   axioms: bool, alpha: float, colormap: str, run: CompareRun) -> list[Row]:
    """The figure's rows for one batch: (pictures, titles, captions) per image."""
    images = [image for _, image in loaded]
    inputs = network_inputs(pretrained, images)
    # one sweep of channel ablations per batch, shared by Ablation-CAM and the axioms probe
    cache = AblationCache()
    for explainer in explainers.values():
        explainer.ablation_cache = cache
    # the first method's forward pass classifies the images too: no pass of its own
    first_method, first_explainer = next(iter(explainers.items()))
    # class indices as they are: the axiom probe and the other methods explain the same
    # classes (logits; Score-CAM its softmax, or a binary model's sigmoid); the head says
    # how the titles' probabilities are computed
    plain = dataclasses.replace(target, head="softmax", score="logit")
    first = first_explainer(inputs, plain.spec(inputs.shape[0], inputs.device)).target(0)
    logits, classes = first.logits, first.targets
    probabilities = probabilities_from_logits(logits, pretrained, head=target.head)
    names = target_class_names(pretrained.class_names)
    # the layer is probed once, when the first map with channel weights is measured
    batch = AxiomProbe(pretrained.model, inputs, classes, layer, ablation_cache=cache) \
        if axioms else None
    # the overlays are drawn on the thumbnails: the figure shows nothing finer
    thumbnails = [thumbnail(image) for image in images]
    rows = [([small],
             [f"{path.name}\n{names[c]}: p {float(probabilities[i, c]):.2f}, "
              f"logit {float(logits[i, c]):.2f}"],
             [""])
            for i, ((path, _), c, small) in enumerate(
                zip(loaded, classes.tolist(), thumbnails, strict=True))]
    for method, explainer in explainers.items():
        if batch is None:
            explanation = first if method == first_method else explainer(inputs, classes)
            errors = None
        elif method == first_method:
            explanation, errors = first, batch.errors(first)
        else:
            explanation, errors = batch.explain(explainer)
        for i, row in enumerate(rows):
            row[0].append(overlay(thumbnails[i], explanation.maps[i], alpha=alpha,
                                  colormap=colormap))
            row[1].append(method_title(method, counterfactual=explanation.counterfactual))
            row[2].append(_caption(run, method, errors, i, axioms))
    run.images += len(images)
    return rows


def _caption(run: CompareRun, method: str, errors: AxiomErrors | None, image: int,
             axioms: bool) -> str:
    """The caption under one map, its axiom errors recorded in ``run``."""
    if errors is None:
        run.axiom_errors[method].append(None)
        return "axioms: n/a (no channel weights)" if axioms else ""
    pair = (float(errors.conservation_error[image]), float(errors.sensitivity_error[image]))
    run.axiom_errors[method].append(pair)
    return axiom_caption(*pair)


def thumbnail(image: Image.Image) -> Image.Image:
    """A copy no larger than :data:`THUMBNAIL_SIDE` on its longest side (PIL keeps the
    aspect)."""
    small = image.copy()
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    return small
