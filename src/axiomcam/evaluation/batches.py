"""The pieces of :func:`axiomcam.evaluation.evaluate`'s batch loop: a batch of prepared
images (:class:`Batch`), the images of it a metric group measures (:func:`select_images`),
the measurement a group's ``compute`` gets (:func:`measurement`) and the clock per stage
(:class:`Timer`).

Examples:
    >>> [len(batch) for batch in batches(iter(range(5)), 2)]
    [2, 2, 1]
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, TypeVar

import torch

from ..data import Sample
from ..explanation import Explanation
from ..metrics import AxiomProbe
from ..metrics.common import check_class_logits
from ..outputs import output_probabilities
from .groups import Measurement, MetricGroup, Needs
from .store import CurveRow, ImageRow, ResultRow

__all__ = ["Batch", "Selection", "Timer", "batches", "image_rows", "measurement",
           "predictions", "select_images"]

Item = TypeVar("Item")


def batches(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    """``items`` in lists of ``size`` (the last one shorter), read as they are needed."""
    while batch := list(islice(items, size)):
        yield batch


def predictions(logits: torch.Tensor, probability: str = "softmax"
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(probabilities, predicted)``: each image's top-1 class of the ``(B, num_classes)``
    outputs ``logits`` and its probability by the model's head ``probability``
    (:func:`axiomcam.outputs.output_probabilities`), in float64.  The softmax and the
    sigmoid are increasing, so the top-1 class is the largest logit with either head (with
    a multi-label sigmoid head: the most probable label).

    Raises:
        ValueError: a single-logit (binary) output: its two classes (``-z``, ``z``) are not
            the model's outputs, so the message says how to give it two.

    Examples:
        >>> logits = torch.tensor([[0.0, 2.0, 1.0]])
        >>> [[round(v, 4) for v in part.tolist()] for part in predictions(logits, "sigmoid")]
        [[0.8808], [1]]
    """
    if logits.dim() == 1 or (logits.dim() == 2 and logits.shape[1] == 1):
        raise ValueError(
            "evaluate does not measure a model with one output (a binary sigmoid head): "
            "wrap it to return its two classes' logits [-z, z] (torch.cat([-z, z], dim=1)), "
            "with class names such as ['negative', 'positive'] and probability='sigmoid' "
            "(--head sigmoid): their sigmoids are 1 - sigmoid(z) and sigmoid(z)")
    probabilities = output_probabilities(check_class_logits(logits).double(), probability)
    return probabilities.max(dim=1)


class Timer:
    """Wall time per stage (and per method within a stage), summed over the run;
    ``on_stage`` is told each stage as it starts (the progress bar shows it: a batch of
    Score-CAM takes minutes between two ticks of the bar).

    Examples:
        >>> timer = Timer()
        >>> with timer("explain", "gradcam"):
        ...     pass
        >>> list(timer.seconds), list(timer.by_method["gradcam"])
        (['explain'], ['explain'])
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.by_method: dict[str, dict[str, float]] = {}
        self.on_stage: Callable[[str], object] | None = None

    @contextlib.contextmanager
    def __call__(self, stage: str, method: str | None = None) -> Iterator[None]:
        """Time the ``with`` block as ``stage`` (of ``method``, if given)."""
        if self.on_stage is not None:
            self.on_stage(stage if method is None else f"{method}: {stage}")
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[stage] = self.seconds.get(stage, 0.0) + elapsed
            if method is not None:
                stages = self.by_method.setdefault(method, {})
                stages[stage] = stages.get(stage, 0.0) + elapsed


@dataclass
class Batch:
    """One batch of images, preprocessed and classified.

    Attributes:
        samples: the data set's samples (duplicates left out).
        inputs: ``(B, 3, S, S)`` preprocessed images on the model's device.
        boxes: per image, its boxes in input pixels.
        box_labels: per image, the class of each box.
        labels: per image, its label (``None``: unknown).
        predicted: the top-1 class per image (CPU).
        probabilities: the top-1 class's probability per image, by the model's head
            (:func:`predictions`; CPU, float64).
        targets: the class explained per image: the label if known, else the top-1 class.
        first_index: the position of the batch's first image in the run.
        masks: per image, its true masks ``(n, S, S)`` bool in input pixels, one per box
            (``None``: unknown).
    """

    samples: list[Sample]
    inputs: torch.Tensor
    boxes: list[torch.Tensor]
    box_labels: list[torch.Tensor]
    labels: list[int | None]
    predicted: torch.Tensor
    probabilities: torch.Tensor
    targets: torch.Tensor
    first_index: int
    masks: list[torch.Tensor | None] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        """The images' ids, in order."""
        return [sample.id for sample in self.samples]


def image_rows(batch: Batch) -> list[ImageRow]:
    """The database's rows of the batch's images."""
    return [
        ImageRow(sample.id, None if sample.path is None else str(sample.path), label,
                 int(predicted), float(probability), *sample.image.size)
        for sample, label, predicted, probability in zip(
            batch.samples, batch.labels, batch.predicted.tolist(),
            batch.probabilities.tolist(), strict=True)
    ]


@dataclass(frozen=True)
class Selection:
    """The images of a batch a metric group measures: positions ``indices`` (a slice, or a
    list of positions), with their label's boxes and the other classes' boxes when the
    group needs them (or the union of the label's true masks)."""

    indices: slice | list[int]
    boxes: list[torch.Tensor] = field(default_factory=list)
    other_boxes: list[torch.Tensor] = field(default_factory=list)
    masks: list[torch.Tensor] = field(default_factory=list)

    def pick(self, items: list[Item]) -> list[Item]:
        """The ``items`` (one per image of the batch) of the images selected."""
        if isinstance(self.indices, slice):
            return items[self.indices]
        return [items[index] for index in self.indices]


def select_images(needs: Needs, batch: Batch, parameters: Mapping[str, Any]
                  ) -> Selection | None:
    """The images of ``batch`` that have what ``needs`` asks for, ``None`` if none has.

    Boxes of the label: a known label and at least one box of it (and of another class
    for ``other_boxes``). Masks of the label: a known label and a true mask of it. First
    images: the run's first ``parameters[first_images]``.
    Otherwise every image.
    """
    if needs.label_masks:
        return _images_with_masks(batch)
    if needs.boxes:
        indices, boxes, others = [], [], []
        for index, label in enumerate(batch.labels):
            if label is None:
                continue
            is_label = batch.box_labels[index] == label
            if not is_label.any() or (needs.other_boxes and not (~is_label).any()):
                continue
            indices.append(index)
            boxes.append(batch.boxes[index][is_label])
            if needs.other_boxes:
                others.append(batch.boxes[index][~is_label])
        return Selection(indices, boxes, others) if indices else None
    if needs.first_images is not None:
        count = min(len(batch.samples), parameters[needs.first_images] - batch.first_index)
        return Selection(slice(0, count)) if count > 0 else None
    return Selection(slice(None))


def _images_with_masks(batch: Batch) -> Selection | None:
    """The images with a known label and a true mask of it, with the union of its masks."""
    indices, masks = [], []
    for index, (label, image_masks) in enumerate(zip(batch.labels, batch.masks, strict=False)):
        if label is None or image_masks is None:
            continue
        of_label = image_masks[batch.box_labels[index] == label]
        if of_label.any():
            indices.append(index)
            masks.append(of_label.any(dim=0))
    return Selection(indices, masks=masks) if indices else None


def measurement(group: MetricGroup, batch: Batch, selection: Selection, *, method: str,
                explanation: Explanation, probe: AxiomProbe, results: list[ResultRow],
                curves: list[CurveRow], **run: Any) -> Measurement:
    """What ``group.compute`` gets for ``method`` on the selected images of ``batch``
    (``run``: the run's ``model``, ``target_layer``, ``parameters``, ``seed``,
    ``batch_size``, ``forward_options`` and ``details``)."""
    take = selection.indices
    return Measurement(
        group=group, method=method, ids=selection.pick(batch.ids), inputs=batch.inputs[take],
        targets=batch.targets[take], predicted=batch.predicted[take],
        maps=explanation.maps[take], explanation=explanation, probe=probe, results=results,
        curves=curves, boxes=selection.boxes, other_boxes=selection.other_boxes,
        masks=selection.masks, **run)
