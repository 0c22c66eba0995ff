"""Did the model learn the background? :func:`audit` (``axiomcam audit``) checks, class by
class, where the evidence for each class lies on a labelled data set with boxes: the
data-set bias audit of the Grad-CAM paper (Selvaraju et al., ICCV 2017, section
"Identifying bias in dataset": the nurse/doctor classifier trained on a gender-biased set,
whose maps showed it looking at faces and hair).

For every labelled image, one CAM method (Grad-CAM by default, at the model's default
layer) explains the labelled class's score (``score="contrast"``, the default: its logit
minus the mean logit, :class:`LogitAboveMean`, so that evidence raising every class alike
is left out; or ``"logit"``); with ``L`` the class's positive evidence
(:func:`evidence_maps`: ``relu`` of the raw map, upsampled, *not* min-max scaled), ``O``
the union of the labelled object's boxes and ``T`` the other objects' boxes, the image's
**background share** is ``sum_{outside O and T} L / sum L``
(:func:`axiomcam.metrics.evidence_location`), and its
**area share** is what a uniform map would give there: the background's share of the
image's area. Per class: images, top-1 accuracy, the mean background share with its
percentile-bootstrap interval (:func:`axiomcam.evaluation.summary.bootstrap_interval`),
the mean area share, and a flag.

**The flag** (``threshold``). By default (``"uniform"``) a class is flagged when its mean
background share exceeds its mean area share. Per image, ``background share > area share``
holds exactly when the map's mean value on a background pixel exceeds its mean value on a
boxed pixel: the class's evidence is denser on the background than on the objects, which
a map that looks at the object never is (a map blind to the image, uniform, sits on the
threshold). A fixed share was rejected as default: a map of a 7 x 7 layer is blurred over
32-pixel cells, so a small object's honest map still spills most of its mass on the
background (> 0.5), while a large object leaves a biased map little room (< 0.5). A
number ``t`` in ``[0, 1]`` flags the classes whose mean background share exceeds ``t``
instead (``0.5``: the background holds most of the evidence).

The layer matters: at a 7 x 7 layer (MobileNetV2's default, ``features.18``) a cell's
features see most of the image and an object's strong activations dominate the cells
around it, so even a model that reads only the background keeps its evidence denser near
the object; a 14 x 14 layer (``features.13``) separates them (docs/applications.md,
section "Data-set bias audit", measures both).

Images are seen as ``axiomcam evaluate`` sees them
(:func:`axiomcam.evaluation.evaluation_inputs`). Images without a label are skipped;
labelled images without a box of their class count for accuracy only.

The folder written: ``results.json`` (:func:`audit_json`), ``worst/<class>.png`` (each
flagged class's images with the largest background shares, maps over them, boxes drawn)
and ``report.html`` (:mod:`~axiomcam.workflows.audit_page`).

Cost: one forward and one backward pass per labelled image (for the gradient methods),
measured on the first batch and told to ``announce`` before the work starts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from itertools import islice
from pathlib import Path

import torch

from ..data import Dataset, Sample, open_dataset
from ..evaluation.inputs import evaluation_inputs
from ..explanation import Explanation
from ..methods import Explainer, create, method_info, normalise_method_name
from ..methods.maps import safe_divide, upsample
from ..methods.registry import COSTS
from ..metrics import evidence_location
from ..models import PretrainedModel
from ..support import Progress, check_positive_int, eval_mode, progress_bar
from .audit_page import save_worst_figures, write_page
from .audit_results import (
    AUDIT_FILE,
    UNIFORM,
    AuditImage,
    AuditRun,
    Worst,
    audit_json,
    check_threshold,
)
from .classify import check_layer, probabilities_from_logits

__all__ = ["DEFAULT_METHOD", "SCORES", "LogitAboveMean", "audit", "evidence_maps"]

#: what the map explains: the class's logit minus the mean logit (default), or the logit
SCORES: tuple[str, ...] = ("contrast", "logit")

#: the method that explains the classes unless another is asked for
DEFAULT_METHOD = "gradcam"


def audit(pretrained: PretrainedModel, dataset: Dataset | str, out_dir: str | Path, *,
          method: str = DEFAULT_METHOD, layer: str | None = None,
          threshold: float | str = UNIFORM, score: str = "contrast", worst: int = 4,
          batch_size: int = 16,
          seed: int = 0, progress: Progress = None,
          announce: Callable[[str], object] | None = None) -> AuditRun:
    """Audit a labelled data set with boxes for background bias, class by class.

    See the module's documentation for what is measured, the flag and the files written.

    Args:
        pretrained: the model (:func:`axiomcam.models.load`).
        dataset: a :class:`axiomcam.data.Dataset` or a spec for
            :func:`axiomcam.data.open_dataset` (``"composite:200"``, a folder, a CSV).
        out_dir: the folder to write (created if missing; earlier pictures replaced).
        method: a CAM method (:data:`axiomcam.CAM_METHODS`).
        layer: the layer to explain (``None``: the model's default).
        threshold: :data:`UNIFORM` or a background share in ``[0, 1]`` (the flag).
        score: what the map explains (:data:`SCORES`): ``"contrast"``, the class's logit
            minus the mean logit (:class:`LogitAboveMean`), or ``"logit"``.
        worst: how many images with the largest background share to draw per flagged class.
        batch_size: images per forward pass and per explanation.
        seed: the composite benchmark's seed (for a spec) and the bootstrap's.
        progress: a bar over the images (``None``: on a terminal).
        announce: told the cost line before the work starts (the command line prints it).

    Returns:
        an :class:`AuditRun` (``run.classes`` has the per-class results).

    Raises:
        ValueError: a method that is not a CAM, an unknown layer, a bad ``threshold``,
            ``worst`` or ``batch_size``, no labelled image, a label outside the classes.

    Examples:
        >>> import tempfile, torch
        >>> from PIL import Image
        >>> from axiomcam.data import Dataset, Sample
        >>> _ = torch.manual_seed(0)
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.ReLU(),
        ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        >>> toy = PretrainedModel("toy", net.eval(), None, None, ["a", "b"], "1", input_size=8)
        >>> class One(Dataset):
        ...     def __len__(self):
        ...         return 1
        ...     def __iter__(self):
        ...         ramp = Image.linear_gradient("L").resize((8, 8)).convert("RGB")
        ...         yield Sample("x", ramp, 1, torch.tensor([[0.0, 0.0, 4.0, 4.0]]),
        ...                      torch.tensor([1]))
        >>> run = audit(toy, One(toy.class_names, "one"), tempfile.mkdtemp(), progress=False)
        >>> [(c.name, c.images, c.located) for c in run.classes]
        [('b', 1, 1)]
    """
    method = normalise_method_name(method)
    if not method_info(method).cam:
        raise ValueError(f"audit draws class activation maps: {method!r} is not one; use a "
                         f"CAM method such as {DEFAULT_METHOD}")
    threshold = check_threshold(threshold)
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
    worst = check_positive_int(worst, "worst")
    batch_size = check_positive_int(batch_size, "batch_size")
    layer = check_layer(pretrained, layer)
    if isinstance(dataset, str):
        dataset = open_dataset(dataset, pretrained.class_names, seed=seed)
    start = time.perf_counter()
    run = AuditRun(Path(out_dir), pretrained.name, layer, method, dataset.description, seed,
                   threshold, worst, list(pretrained.class_names), score=score)
    with create(method, pretrained.model, layer, progress=False) as explainer:
        samples = iter(dataset)
        batch = list(islice(samples, batch_size))
        if announce is not None and batch:
            announce(_cost_line(pretrained, explainer, run, batch, len(dataset)))
        with progress_bar(progress, len(dataset), "audit", unit="image") as bar:
            while batch:
                _audit_batch(pretrained, explainer, run, batch)
                bar.update(len(batch))
                batch = list(islice(samples, batch_size))
    run.problems = [(problem.path, problem.reason) for problem in dataset.problems]
    if not run.records:
        raise ValueError(f"none of the {run.images} images of {dataset.description} has a "
                         "label: the audit explains each image's labelled class (an image "
                         "folder with one sub-folder per class, a CSV with a label column, "
                         "boxes from --boxes)")
    run.seconds = time.perf_counter() - start
    _write(run)
    return run


def _cost_line(pretrained: PretrainedModel, explainer: Explainer, run: AuditRun,
               samples: list[Sample], total: int) -> str:
    """What the audit costs, measured on the first batch: one forward pass and one
    explanation of every image."""
    started = time.perf_counter()
    inputs, _ = evaluation_inputs(pretrained, [s.image for s in samples],
                                  [s.boxes for s in samples])
    with eval_mode(pretrained.model), torch.no_grad():
        top = pretrained.model(inputs).argmax(dim=1)
    explainer(inputs, top)
    per_image = (time.perf_counter() - started) / len(samples)
    return (f"audit: {total} images of {run.data}, {run.method} at {run.layer}: a forward "
            f"pass and an explanation ({COSTS[method_info(run.method).cost]}) per labelled "
            f"image; measured on the first batch, {per_image:.3f} s per image: about "
            f"{per_image * total:.0f} s")


def _audit_batch(pretrained: PretrainedModel, explainer: Explainer, run: AuditRun,
                 samples: list[Sample]) -> None:
    """One batch: classify, explain each labelled image's class, locate its evidence."""
    run.images += len(samples)
    labelled = [sample for sample in samples if sample.label is not None]
    for sample in labelled:
        if not 0 <= int(sample.label) < len(run.class_names):
            raise ValueError(f"image {sample.id!r} has label {sample.label}, outside the "
                             f"model's {len(run.class_names)} classes")
    if not labelled:
        return
    inputs, boxes = evaluation_inputs(pretrained, [s.image for s in labelled],
                                      [s.boxes for s in labelled])
    with eval_mode(pretrained.model), torch.no_grad():
        probabilities = probabilities_from_logits(pretrained.model(inputs), pretrained)
    labels = torch.tensor([int(s.label) for s in labelled], device=inputs.device)
    target = labels if run.score == "logit" else LogitAboveMean(labels)
    maps = evidence_maps(explainer(inputs, target), tuple(inputs.shape[2:]))
    regions = [_regions(sample, image_boxes.to(maps.device))
               for sample, image_boxes in zip(labelled, boxes, strict=True)]
    where = evidence_location(maps, [r[0] for r in regions], [r[1] for r in regions])
    area = evidence_location(torch.ones_like(maps), [r[0] for r in regions],
                             [r[1] for r in regions])
    top = probabilities.argmax(dim=1)
    for position, sample in enumerate(labelled):
        label = int(sample.label)
        has_box = len(regions[position][0]) > 0
        record = AuditImage(
            image_id=sample.id, label=label, correct=int(top[position]) == label,
            probability=float(probabilities[position, label]),
            background=float(where.background[position]) if has_box else None,
            area=float(area.background[position]) if has_box else None)
        run.records.append(record)
        if has_box:
            _keep_worst(run, Worst(record, sample.image, maps[position].cpu(),
                                   *(part.cpu() for part in regions[position])))


class LogitAboveMean:
    """The target of the audit's default score: each image's class logit minus the mean of
    its logits, ``y_c - mean_j y_j`` (a callable target: output ``(B, C)`` -> ``(B,)``).

    The softmax is unchanged when every logit rises by the same amount, so evidence that
    raises every class alike (a texture every class's weights read the same way) is no
    evidence for the class; subtracting the mean logit removes exactly that part. For a
    linear head ``y = W a + b`` on pooled features, Grad-CAM's weights become
    ``W_c - mean_j W_j``.

    Examples:
        >>> import torch
        >>> LogitAboveMean(torch.tensor([1]))(torch.tensor([[1.0, 4.0, 1.0]]))
        tensor([2.])
    """

    def __init__(self, classes: torch.Tensor) -> None:
        self.classes = classes

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        chosen = output.gather(1, self.classes.to(output.device).reshape(-1, 1))[:, 0]
        return chosen - output.mean(dim=1)


def evidence_maps(explanation: Explanation, size: tuple[int, int]) -> torch.Tensor:
    """The class's positive evidence at the input's size, not min-max scaled:
    ``upsample(relu(raw)) / max``, ``(B, H, W)`` in ``[0, 1]`` (an all-zero map stays 0).

    Dividing by the maximum leaves every share unchanged; subtracting the minimum, as
    :attr:`~axiomcam.Explanation.maps` does, would not: it removes the evidence a
    shortcut spreads evenly over the background. For a linear head on average pooling
    (CAM, where Grad-CAM equals it) the mass of ``relu(raw)`` over the layer's cells is the
    positive part of the class score's sum over those cells, so a share of it is the share
    of the score's positive evidence that the region's cells contribute.

    Examples:
        >>> import torch
        >>> from axiomcam.explanation import Explanation
        >>> raw = torch.tensor([[[2.0, 1.0], [1.0, -1.0]]])
        >>> exp = Explanation(maps=raw, raw=raw, channel_weights=None, scores=raw[:, 0, 0],
        ...                   targets=None, target_layer="4", method="gradcam")
        >>> evidence_maps(exp, (2, 2))
        tensor([[[1.0000, 0.5000],
                 [0.5000, 0.0000]]])
    """
    if explanation.raw is None or explanation.raw.dim() != 3:
        raise ValueError("the audit needs one layer's (B, h, w) raw maps; got "
                         f"{None if explanation.raw is None else tuple(explanation.raw.shape)}")
    evidence = upsample(torch.relu(explanation.raw.detach())[:, None], size)[:, 0].clamp_min(0)
    peak = evidence.amax(dim=(1, 2), keepdim=True)
    return safe_divide(evidence, peak).clamp(0, 1)


def _regions(sample: Sample, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The labelled object's boxes and the other objects' (input pixels, non-empty ones)."""
    box_labels = sample.box_labels.long().reshape(-1).to(boxes.device)
    usable = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # not cut to nothing
    boxes, box_labels = boxes[usable], box_labels[usable]
    mine = box_labels == int(sample.label)
    return boxes[mine], boxes[~mine]


def _keep_worst(run: AuditRun, item: Worst) -> None:
    """Keep the class's ``worst_count`` images of largest background share seen so far."""
    kept = run.worst.setdefault(item.record.label, [])
    kept.append(item)
    kept.sort(key=lambda worst: -worst.record.background)  # stable: first seen first on ties
    del kept[run.worst_count:]


def _write(run: AuditRun) -> None:
    """The flagged classes' pictures, ``results.json`` and ``report.html``."""
    run.pictures = save_worst_figures(run)
    json_file = run.out_dir / AUDIT_FILE
    json_file.write_text(json.dumps(audit_json(run), indent=1), encoding="utf-8")
    report = write_page(run)
    run.files = [json_file, report, *(run.out_dir / path for path in run.pictures.values())]
