"""Why did the model fail? :func:`diagnose` (``axiomcam diagnose``) explains every
misclassified image of a labelled data set.

For each image with a label whose top-1 class is not the label, one CAM method (XGrad-CAM
by default, at the model's default layer) explains the predicted and the true class;
the two maps are drawn side by side with both probabilities; when the image has boxes,
:func:`axiomcam.metrics.evidence_location` says where each map's mass lies (the labelled
object, another object, the background), and where the predicted class's map peaks is
the failure's one-word verdict (see :mod:`~axiomcam.workflows.diagnosis`). The
failures are grouped by confusion pair.

Images are seen as ``axiomcam evaluate`` sees them
(:func:`axiomcam.evaluation.evaluation_inputs`: the whole image resized to the input size,
no crop, boxes scaled with it), so the shares agree with its localization metrics.

The folder written: ``failures/<image>.png`` (one side-by-side figure per failure),
``diagnose.json`` (:func:`~axiomcam.workflows.diagnosis.diagnosis_json`) and
``report.html`` (:mod:`~axiomcam.workflows.diagnosis_page`, one self-contained page).

Cost: one forward pass per image, then two explanations and a figure per failure (for
XGrad-CAM one forward and one backward pass per explanation). Before the work starts,
``announce`` is told the cost measured on the first batch (its forward pass, and one
failure's work on its first image).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path, PurePosixPath

import torch

from ..data import Dataset, Sample, open_dataset
from ..evaluation.inputs import evaluation_inputs
from ..methods import Explainer, create, method_info, normalise_method_name
from ..methods.registry import COSTS
from ..metrics import EVIDENCE_REGIONS, evidence_location
from ..models import PretrainedModel
from ..support import Progress, check_positive_int, eval_mode, progress_bar
from .classify import check_layer, probabilities_from_logits
from .diagnosis import (
    DIAGNOSIS_FILE,
    PEAK_TOLERANCE,
    ClassProbability,
    DiagnoseRun,
    Evidence,
    Misclassification,
    diagnosis_json,
)
from .diagnosis_page import FAILURES_FOLDER, FailureFigure, save_failure_figure, write_page
from .explaining import name_slug

__all__ = ["DEFAULT_METHOD", "diagnose"]

#: the method that explains the failures unless another is asked for
DEFAULT_METHOD = "xgradcam"


@dataclass
class _Diagnosis:
    """A diagnosis on its way: the model, the explainer, what it found so far."""

    pretrained: PretrainedModel
    explainer: Explainer
    run: DiagnoseRun
    used_names: set[str]


def diagnose(pretrained: PretrainedModel, dataset: Dataset | str,
             out_dir: str | Path, *, method: str = DEFAULT_METHOD, layer: str | None = None,
             batch_size: int = 16, tolerance: float = PEAK_TOLERANCE, seed: int = 0,
             progress: Progress = None, announce: Callable[[str], object] | None = None
             ) -> DiagnoseRun:
    """Explain every misclassified image of a labelled data set, group the failures by
    confusion pair, and say where the predicted class's evidence lies.

    See the module's documentation for what is computed and written.

    Args:
        pretrained: the model (:func:`axiomcam.models.load`).
        dataset: a :class:`axiomcam.data.Dataset` or a spec for
            :func:`axiomcam.data.open_dataset` (``"composite:200"``, a folder, a CSV).
        out_dir: the folder to write (created if missing); an earlier diagnosis there is
            replaced (its figures in ``failures/`` deleted first).
        method: a CAM method (:data:`axiomcam.CAM_METHODS`).
        layer: the layer to explain (``None``: the model's default).
        batch_size: images per forward pass and per explanation.
        tolerance: how far (pixels at the network's input) the predicted class's map's
            peak may miss a box and still point at it (the verdict; see
            :mod:`~axiomcam.workflows.diagnosis`).
        seed: the composite benchmark's seed (for a spec) and the bootstrap's.
        progress: a bar over the images (``None``: on a terminal; see
            :func:`axiomcam.support.progress_bar`).
        announce: told the cost line before the work starts (the command line prints it).

    Returns:
        a :class:`~axiomcam.workflows.diagnosis.DiagnoseRun`.

    Raises:
        ValueError: a method that is not a CAM, an unknown layer, a bad ``batch_size`` or
            ``tolerance``,
            a data set where no image has a label (nothing to diagnose), a label outside
            the model's classes.

    Examples:
        >>> import tempfile, torch
        >>> from PIL import Image
        >>> from axiomcam.data import Dataset, Sample
        >>> from axiomcam.models import PretrainedModel
        >>> _ = torch.manual_seed(0)
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.ReLU(),
        ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        >>> toy = PretrainedModel("toy", net.eval(), None, None, ["a", "b"], "1", input_size=8)
        >>> class One(Dataset):
        ...     def __len__(self):
        ...         return 1
        ...     def __iter__(self):
        ...         ramp = Image.linear_gradient("L").resize((8, 8)).convert("RGB")
        ...         yield Sample("x", ramp, 1,
        ...                      torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
        >>> run = diagnose(toy, One(toy.class_names, "one"), tempfile.mkdtemp(), progress=False)
        >>> run.labelled, run.correct + len(run.failures)
        (1, 1)
    """
    method = _checked_method(method)
    batch_size = check_positive_int(batch_size, "batch_size")
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) \
            or not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a finite number of pixels >= 0, got {tolerance!r}")
    layer = check_layer(pretrained, layer)
    if isinstance(dataset, str):
        dataset = open_dataset(dataset, pretrained.class_names, seed=seed)
    folder = Path(out_dir)
    (folder / FAILURES_FOLDER).mkdir(parents=True, exist_ok=True)
    for stale in (folder / FAILURES_FOLDER).glob("*.png"):  # an earlier diagnosis's figures
        stale.unlink()
    start = time.perf_counter()
    run = DiagnoseRun(folder, pretrained.name, layer, method, dataset.description, seed,
                      float(tolerance))
    with create(method, pretrained.model, layer, progress=False) as explainer:
        state = _Diagnosis(pretrained, explainer, run, set())
        samples = iter(dataset)
        first = list(islice(samples, batch_size))
        if announce is not None and first:
            announce(_cost_line(state, first, len(dataset)))
        with progress_bar(progress, len(dataset), "diagnose", unit="image") as bar:
            batch = first
            while batch:
                _diagnose_batch(state, batch)
                bar.update(len(batch))
                batch = list(islice(samples, batch_size))
    run.problems = [(problem.path, problem.reason) for problem in dataset.problems]
    if run.labelled == 0:
        raise ValueError(
            f"none of the {run.images} images of {dataset.description} has a label: diagnose "
            "compares each prediction with its label (an image folder with one sub-folder "
            "per class, or a CSV with a label column)")
    run.seconds = time.perf_counter() - start
    _write(run)
    return run


def _checked_method(method: str) -> str:
    name = normalise_method_name(method)
    if not method_info(name).cam:
        raise ValueError(f"diagnose draws class activation maps: {method!r} is not one; use "
                         f"a CAM method such as {DEFAULT_METHOD} or gradcam")
    return name


def _cost_line(state: _Diagnosis, samples: list[Sample], total: int) -> str:
    """What the diagnosis costs, measured on the first batch: its forward pass, and one
    failure's work (two explanations and a figure) on its first image."""
    pretrained, run = state.pretrained, state.run
    started = time.perf_counter()
    inputs, _ = evaluation_inputs(pretrained, [s.image for s in samples],
                                  [s.boxes for s in samples])
    with eval_mode(pretrained.model), torch.no_grad():
        top = pretrained.model(inputs).argmax(dim=1)
    forward = (time.perf_counter() - started) / len(samples)
    started = time.perf_counter()
    maps = [state.explainer(inputs[:1], top[:1]).maps[0].detach().cpu() for _ in range(2)]
    empty = torch.zeros(0, 4)
    with tempfile.TemporaryDirectory() as scratch:
        save_failure_figure(Path(scratch) / "probe.png", FailureFigure(
            samples[0].image, samples[0].id, pretrained.input_size, (maps[0], maps[1]), empty,
            empty, ("", 0.0), ("", 0.0), (None, None), run.method))
    failure = time.perf_counter() - started
    cost = COSTS[method_info(run.method).cost]
    return (f"diagnose: {total} images of {run.data}, {run.method} at {run.layer}: one forward "
            f"pass per image, then per misclassified image two explanations ({cost} each) "
            f"and a figure; measured on the first batch, {forward:.3f} s per image and "
            f"{failure:.2f} s more per failure: {forward * total:.0f} s if no image is "
            f"misclassified, {(forward + failure) * total:.0f} s if every one is")


def _diagnose_batch(state: _Diagnosis, samples: list[Sample]) -> None:
    """One batch: classify, then explain and place the failures among it."""
    pretrained, run = state.pretrained, state.run
    names = pretrained.class_names
    labels = [sample.label for sample in samples]
    for sample, label in zip(samples, labels, strict=True):
        if label is not None and not 0 <= int(label) < len(names):
            raise ValueError(f"image {sample.id!r} has label {label}, outside the model's "
                             f"{len(names)} classes")
    inputs, boxes = evaluation_inputs(pretrained, [s.image for s in samples],
                                      [s.boxes for s in samples])
    with eval_mode(pretrained.model), torch.no_grad():
        probabilities = probabilities_from_logits(pretrained.model(inputs), pretrained)
    if probabilities.shape[1] < 2:
        raise ValueError("the model gives one score per image: diagnose compares the top-1 "
                         "class with the label, which needs two class scores or more")
    predicted = probabilities.argmax(dim=1).tolist()
    run.images += len(samples)
    run.labelled += sum(label is not None for label in labels)
    run.correct += sum(label is not None and int(label) == top
                       for label, top in zip(labels, predicted, strict=True))
    wrong = [i for i, label in enumerate(labels) if label is not None and
             int(label) != predicted[i]]
    if not wrong:
        return
    device = inputs.device
    predicted_classes = torch.tensor([predicted[i] for i in wrong], device=device)
    true_classes = torch.tensor([int(labels[i]) for i in wrong], device=device)
    predicted_maps = state.explainer(inputs[wrong], predicted_classes).maps.detach()
    true_maps = state.explainer(inputs[wrong], true_classes).maps.detach()
    for position, index in enumerate(wrong):
        run.failures.append(_failure(state, samples[index], boxes[index],
                                     (predicted_maps[position], true_maps[position]),
                                     (int(labels[index]), predicted[index]),
                                     probabilities[index]))


def _failure(state: _Diagnosis, sample: Sample, boxes: torch.Tensor,
             maps: tuple[torch.Tensor, torch.Tensor], classes: tuple[int, int],
             probabilities: torch.Tensor) -> Misclassification:
    """One failure: where its maps lie, and its figure."""
    names = state.pretrained.class_names
    label, top = classes
    box_labels = sample.box_labels.long().reshape(-1).to(boxes.device)
    usable = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # not cut to nothing
    boxes, box_labels = boxes[usable], box_labels[usable]
    regions = (boxes[box_labels == label], boxes[box_labels != label])
    tolerance = state.run.tolerance
    evidence = (_evidence(maps[0], regions, tolerance), _evidence(maps[1], regions, tolerance))
    predicted = ClassProbability(top, names[top], float(probabilities[top]))
    true = ClassProbability(label, names[label], float(probabilities[label]))
    figure = FailureFigure(
        image=sample.image, image_id=sample.id, input_size=state.pretrained.input_size,
        maps=(maps[0].cpu(), maps[1].cpu()), object_boxes=regions[0].cpu(),
        other_boxes=regions[1].cpu(), predicted=(predicted.name, predicted.probability),
        true=(true.name, true.probability), evidence=evidence, method=state.run.method)
    return Misclassification(
        image_id=sample.id, path=None if sample.path is None else str(sample.path),
        true=true, predicted=predicted, evidence=evidence[0], true_evidence=evidence[1],
        area=_evidence(torch.ones_like(maps[0]), regions, None),
        named_another_object=bool((box_labels == top).any()),
        picture=_save_figure(state, figure))


def _evidence(cam_map: torch.Tensor, regions: tuple[torch.Tensor, torch.Tensor],
              tolerance: float | None) -> Evidence | None:
    """Where one map's mass and peak lie (``tolerance`` ``None``: no verdict), ``None``
    when the image has no box."""
    object_boxes, other_boxes = regions
    if len(object_boxes) + len(other_boxes) == 0:
        return None
    location = evidence_location(cam_map[None].clamp(0, 1), [object_boxes.to(cam_map.device)],
                                 [other_boxes.to(cam_map.device)], tolerance=tolerance or 0.0)
    peak = int(location.peak[0])
    return Evidence(object=float(location.object[0]), other_object=float(location.other[0]),
                    background=float(location.background[0]),
                    verdict=EVIDENCE_REGIONS[peak] if tolerance is not None and peak >= 0
                    else None)


def _save_figure(state: _Diagnosis, figure: FailureFigure) -> str:
    """Write a failure's figure, named after its image; its path relative to the folder."""
    stem = name_slug(str(PurePosixPath(figure.image_id).with_suffix("")))
    name, number = f"{stem}.png", 2
    while name in state.used_names:  # two ids of one slug keep a figure each
        name, number = f"{stem}-{number}.png", number + 1
    state.used_names.add(name)
    relative = f"{FAILURES_FOLDER}/{name}"
    save_failure_figure(state.run.out_dir / relative, figure)
    return relative


def _write(run: DiagnoseRun) -> None:
    """``diagnose.json`` and ``report.html``."""
    json_file = run.out_dir / DIAGNOSIS_FILE
    json_file.write_text(json.dumps(diagnosis_json(run), indent=1), encoding="utf-8")
    report = write_page(run)
    run.files = [json_file, report, *(run.out_dir / f.picture for f in run.failures)]
