"""Evaluate CAM methods on a data set: every metric the data allows, per image, into SQLite.

:func:`evaluate` runs, per batch of images:

1. **Preprocessing**: the *whole* image is resized to ``input_size x input_size`` (no centre
   crop), converted to a tensor and normalised with the model's mean and std; ground-truth
   boxes are scaled by ``(input_size / width, input_size / height)``. The localization
   protocols (CAM, Grad-CAM: ILSVRC boxes) resize whole images because a centre crop cuts
   objects near the border, and a cut box no longer says where the object is. The aspect
   ratio changes; the network copes, and the boxes stay exact.
2. **One forward pass** for the predictions (top-1 class and its softmax probability).
   Each image is explained for its **label** when the data set knows it (*GT-known* maps,
   as in the localization protocols), else for the predicted class.
3. **The axioms probe** (:func:`axiomcam.metrics.axioms.probe_layer`: activations,
   gradients and the ``K`` channel-ablated scores) once per batch, reused by every method
   with channel weights (CAM, Grad-CAM, Grad-CAM++, XGrad-CAM, Ablation-CAM, Score-CAM);
   methods without channel weights get no axiom rows.
4. **Per method**, one explainer built once per run, its maps, and every metric group
   requested (:data:`METRIC_GROUPS`) that the image allows:

   - ``axioms``: conservation error, sensitivity error and correlation, bias share;
   - ``faithfulness``: Average Drop (``100 max(0, Y - O) / Y`` per image), Increase in
     Confidence (100 or 0 per image, so its mean is the %), the top-20% removal drop;
   - ``deletion``: deletion and insertion AUC (and curves), ``2 (steps + 1)`` forward
     passes per image and method, so a group of its own;
   - ``road``: probability after MoRF / LeRF removal, mean over the percentages (and the
     per-percentage values as curves);
   - ``localization`` (images with a known label and a box of that class): the IoU of the
     box from the map (15% of the maximum, largest component), localization error (0 if
     IoU >= 0.5, else 100), top-1 localization error (also 100 when the top-1 class is
     not the label), pointing game (100 / 0), energy pointing game;
   - ``discrimination`` (images with a known label whose boxes carry two or more classes):
     mass in the label's boxes, in the other classes' boxes, and right / (right + wrong);
   - ``sanity`` (the first ``sanity_images`` images only): cascading randomisation, the
     per-step Spearman correlations as a curve and their mean.

Results go to ``out_dir/results.sqlite`` (:mod:`axiomcam.evaluation.store`), one
transaction per batch, then :func:`axiomcam.evaluation.summary.write_summary` writes the
CSV, Markdown and plots, and :func:`axiomcam.evaluation.report.write_report` writes
``out_dir/report.html`` (one self-contained file) with a gallery of each method's best and
worst images, whose maps :func:`build_gallery` recomputes at the end of the run (only
those ``2 k`` images per method).

Reproducibility: everything is deterministic for a seed, a batch size and a device (the
ROAD noise is drawn per batch from ``seed``, the sanity randomisation from ``seed``).

**Resuming**: each batch's rows are stored with a record that the batch is done, in one
transaction. A run of the same configuration in the same ``out_dir`` skips the batches
done and computes the others in the same batches, so an interrupted run (``kill -9``
included) continued gives the rows, in order, of an uninterrupted one. A run on more
images of the same data set (``composite:64``, then ``composite:200``; the sanity image
count may grow with it if the images done keep theirs) extends the one there: its rows
stay and only the new images are computed. Another configuration is refused
(``overwrite=True`` deletes the old results).

**Distributed** (:mod:`axiomcam.evaluation.distributed`): under ``torchrun`` batch ``b``
is computed by rank ``b mod N`` into ``out_dir/parts/rank-R.sqlite``; when all are done,
rank 0 merges the parts in batch order (:func:`~axiomcam.evaluation.store.merge_runs`)
and writes the summaries and report, identical to a one-process run's. See
``docs/scaling.md``.

Example:
    >>> check_metric_groups(["axioms", "road"])
    ['axioms', 'road']
    >>> check_methods("gradcam,xgradcam")
    ['gradcam', 'xgradcam']
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import Any

import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from .. import __version__
from .. import methods as method_registry
from ..data import Dataset, Problem, Sample, open_dataset
from ..images import overlay
from ..methods import DEFAULT_BATCH_SIZE, AblationCache
from ..metrics import axioms, faithfulness, localization, sanity
from ..models import PretrainedModel
from ..support import check_positive_int, eval_mode, warn
from . import distributed
from .report import GALLERY_SIZE, THUMBNAIL_SIZE, GalleryItem, select_gallery, write_report
from .store import (
    DATABASE_NAME,
    CurveRow,
    ImageRow,
    ProblemRow,
    ResultRow,
    ResultStore,
    check_resumable,
    differences,
    extend_run,
    merge_details,
    merge_runs,
    remove_database,
)
from .summary import MetricSummary, SummaryFiles, summarize, write_summary

__all__ = [
    "EVALUATED_METHODS",
    "METRIC_GROUPS",
    "PARTS_FOLDER",
    "RunResult",
    "build_gallery",
    "check_methods",
    "check_metric_groups",
    "evaluate",
    "evaluation_inputs",
]

#: the metric groups :func:`evaluate` can compute, in the order it computes them
METRIC_GROUPS: tuple[str, ...] = (
    "axioms", "faithfulness", "deletion", "road", "localization", "discrimination", "sanity",
)

#: the methods :func:`evaluate` accepts: every CAM method. Guided methods are not
#: evaluated: their maps are pixel-level gradients, not class activation maps, and the
#: metrics here are defined for maps of the form ReLU(sum_k w_k A^k) upsampled.
EVALUATED_METHODS: tuple[str, ...] = (*method_registry.CAM_METHODS,
                                      *method_registry.VARIANT_NAMES)

#: where each process of a distributed run keeps its database until rank 0 merges them
PARTS_FOLDER = "parts"

# fixed protocol parameters, stored in the run's configuration
TOP_REMOVAL_PERCENT = 20.0
LOCALIZATION_THRESHOLD = 0.15
IOU_THRESHOLD = 0.5
POINTING_TOLERANCE = 15.0


@dataclass(frozen=True)
class RunResult:
    """What :func:`evaluate` did.

    Attributes:
        out_dir: the run's directory.
        database: ``out_dir/results.sqlite``.
        files: the summary files and plots written.
        report: ``out_dir/report.html``, the self-contained HTML report.
        summaries: mean, median and bootstrap interval per method and metric.
        images: how many images were evaluated.
        problems: the files the data set skipped.
        target_layer: the layer explained.
        methods: the methods evaluated.
        metric_groups: the metric groups requested.
        seconds: wall time per stage (``"forward"``, ``"explain"``, one per metric group,
            ``"total"``; then ``"gallery"``, ``"summary"``, ``"report"``, which come after
            the run's end and are not in the database's details), summed over the run.
        seconds_by_method: per method, wall time per stage (the axioms probe, shared by
            the methods of a batch, counts for the first method that needed it).
        config: the configuration stored in the database.
        resumed: images an earlier, interrupted run of this configuration had stored (not
            computed again).
        computed: images this run computed (every process's, in a distributed run).
        extended_from: the data description of the shorter run this one extended
            (``"composite:64 (seed 0)"``), ``None`` if it extended none.
    """

    out_dir: Path
    database: Path
    files: SummaryFiles
    report: Path
    summaries: list[MetricSummary]
    images: int
    problems: list[Problem]
    target_layer: str
    methods: list[str]
    metric_groups: list[str]
    seconds: dict[str, float]
    seconds_by_method: dict[str, dict[str, float]]
    config: dict[str, Any] = field(repr=False)
    resumed: int = 0
    computed: int = 0
    extended_from: str | None = None


def check_methods(names: str | Iterable[str]) -> list[str]:
    """The method names to evaluate, checked: a comma list or a sequence of names.

    Raises:
        ValueError: no method, an unknown name (the evaluable ones are listed), a guided
            method (not evaluated), or a name given twice.

    Example:
        >>> check_methods(["GradCAM++", " xgradcam"])
        ['gradcam++', 'xgradcam']
        >>> check_methods("guided_gradcam")
        Traceback (most recent call last):
        ...
        ValueError: guided_gradcam is not evaluated (guided methods give pixel-level \
gradient maps, not class activation maps); evaluable methods: cam, gradcam, gradcam++, \
xgradcam, hirescam, layercam, ablationcam, scorecam, eigencam, ablationcam:activation
    """
    if isinstance(names, str):
        names = names.split(",")
    checked: list[str] = []
    known = ", ".join(EVALUATED_METHODS)
    for raw_name in names:
        if not isinstance(raw_name, str):
            raise TypeError(f"method names must be strings, not {type(raw_name).__name__}")
        name = raw_name.strip().lower()
        if not name:
            continue
        if name in method_registry.METHOD_NAMES and name not in EVALUATED_METHODS:
            raise ValueError(
                f"{name} is not evaluated (guided methods give pixel-level gradient maps, "
                f"not class activation maps); evaluable methods: {known}")
        if name not in EVALUATED_METHODS:
            raise ValueError(f"unknown method {raw_name.strip()!r}; known methods: {known}")
        if name in checked:
            raise ValueError(f"method {name!r} is given twice")
        checked.append(name)
    if not checked:
        raise ValueError(f"no method given; known methods: {known}")
    return checked


def check_metric_groups(groups: str | Iterable[str] | None) -> list[str]:
    """The metric groups to compute, checked (``None``: all of :data:`METRIC_GROUPS`).

    Raises:
        ValueError: an unknown group (the known ones are listed) or an empty selection.

    Example:
        >>> check_metric_groups("road, axioms")
        ['axioms', 'road']
        >>> check_metric_groups("speed")
        Traceback (most recent call last):
        ...
        ValueError: unknown metric group 'speed'; known: axioms, faithfulness, deletion, \
road, localization, discrimination, sanity
    """
    if groups is None:
        return list(METRIC_GROUPS)
    if isinstance(groups, str):
        groups = groups.split(",")
    wanted = set()
    for raw_group in groups:
        if not isinstance(raw_group, str):
            raise TypeError(f"metric groups must be strings, not {type(raw_group).__name__}")
        group = raw_group.strip().lower()
        if not group:
            continue
        if group not in METRIC_GROUPS:
            raise ValueError(
                f"unknown metric group {raw_group.strip()!r}; known: {', '.join(METRIC_GROUPS)}")
        wanted.add(group)
    if not wanted:
        raise ValueError(f"no metric group given; known: {', '.join(METRIC_GROUPS)}")
    return [group for group in METRIC_GROUPS if group in wanted]


def evaluation_inputs(pretrained: PretrainedModel, images: Sequence[Image.Image],
                      boxes: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The evaluation preprocessing: whole images resized to ``input_size`` squared, boxes
    scaled with them.

    ``x' = x * input_size / width``, ``y' = y * input_size / height`` (clamped to the
    image). There is no centre crop: a crop would cut objects near the border and their
    boxes with them, which the localization protocols avoid by resizing whole images.

    Args:
        pretrained: the model (its ``input_size``, ``mean``, ``std``, device).
        images: RGB PIL images at their original sizes.
        boxes: per image, ``(n, 4)`` boxes ``x0, y0, x1, y1`` in the original pixels.

    Returns:
        ``(inputs (B, 3, S, S) normalised, on the model's device; boxes in input pixels)``.

    Example:
        >>> import torch
        >>> from PIL import Image
        >>> from axiomcam.models import PretrainedModel
        >>> pretrained = PretrainedModel("toy", torch.nn.Conv2d(3, 2, 1), None, None, [], "",
        ...                              input_size=8)
        >>> inputs, boxes = evaluation_inputs(pretrained, [Image.new("RGB", (16, 4))],
        ...                                   [torch.tensor([[0.0, 0.0, 8.0, 2.0]])])
        >>> tuple(inputs.shape), boxes[0].tolist()
        ((1, 3, 8, 8), [[0.0, 0.0, 4.0, 4.0]])
    """
    size = pretrained.input_size
    tensors, scaled = [], []
    for image, image_boxes in zip(images, boxes, strict=True):
        width, height = image.size
        resized = TF.resize(image.convert("RGB"), [size, size],
                            interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        tensors.append(TF.normalize(TF.to_tensor(resized), list(pretrained.mean),
                                    list(pretrained.std)))
        factors = torch.tensor([size / width, size / height, size / width, size / height])
        scaled.append((image_boxes.float().reshape(-1, 4) * factors).clamp(0, size))
    return torch.stack(tensors).to(pretrained.device), scaled


def _batches(samples: Iterator[Sample], size: int) -> Iterator[list[Sample]]:
    while batch := list(islice(samples, size)):
        yield batch


class _Timer:
    """Wall time per stage (and per method within a stage), summed over the run;
    ``on_stage`` is told each stage as it starts (the progress bar shows it: a batch of
    Score-CAM takes minutes between two ticks of the bar)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.by_method: dict[str, dict[str, float]] = {}
        self.on_stage: Callable[[str], object] | None = None

    @contextlib.contextmanager
    def __call__(self, stage: str, method: str | None = None) -> Iterator[None]:
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
class _Batch:
    samples: list[Sample]
    inputs: torch.Tensor
    boxes: list[torch.Tensor]  # in input pixels
    box_labels: list[torch.Tensor]
    labels: list[int | None]
    predicted: torch.Tensor
    probabilities: torch.Tensor
    targets: torch.Tensor
    first_index: int  # position of the batch's first image in the run

    @property
    def ids(self) -> list[str]:
        return [sample.id for sample in self.samples]


class _Rows:
    """Collects one batch's result and curve rows."""

    def __init__(self) -> None:
        self.results: list[ResultRow] = []
        self.curves: list[CurveRow] = []

    def add(self, ids: Sequence[str], method: str, metric: str, values: torch.Tensor) -> None:
        values = values.detach().double().cpu().reshape(-1).tolist()
        if len(values) != len(ids):
            raise ValueError(f"{metric} of {method}: {len(values)} values for {len(ids)} images")
        self.results += [ResultRow(image_id, method, metric, value)
                         for image_id, value in zip(ids, values, strict=True)]

    def add_curve(self, ids: Sequence[str], method: str, curve: str, x: Sequence[float],
                  values: torch.Tensor) -> None:
        table = values.detach().double().cpu().reshape(len(ids), -1).tolist()
        xs = [float(value) for value in x]
        for image_id, row in zip(ids, table, strict=True):
            if len(row) != len(xs):
                raise ValueError(f"{curve} of {method}: {len(row)} points for {len(xs)} x values")
            self.curves += [CurveRow(image_id, method, curve, step, position, value)
                            for step, (position, value) in enumerate(zip(xs, row, strict=True))]


def _percent(flags: torch.Tensor) -> torch.Tensor:
    return flags.to(torch.float64) * 100.0


def evaluate(
    pretrained: PretrainedModel,
    dataset: Dataset | str,
    methods: str | Sequence[str],
    *,
    target_layer: str | None = None,
    out_dir: str | os.PathLike[str],
    metrics: str | Sequence[str] | None = None,
    batch_size: int = 16,
    perturbation_batch_size: int | None = None,
    deletion_steps: int = 50,
    road_percentages: Sequence[float] = (10, 30, 50, 70, 90),
    sanity_images: int = 8,
    sanity_steps: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool | None = None,
    gallery_images: int = GALLERY_SIZE,
) -> RunResult:
    """Evaluate CAM methods on a data set and write the database, summaries, plots and
    the HTML report.

    See the module's documentation for what is computed per batch and how.

    Args:
        pretrained: a :class:`axiomcam.models.PretrainedModel` (``model``, ``class_names``,
            ``input_size``, ``mean``, ``std``, ``default_layer``, ``name``).
        dataset: a :class:`axiomcam.data.Dataset`, or a spec for
            :func:`axiomcam.data.open_dataset` (``"composite:200"``, a folder, a CSV).
        methods: CAM method names (a sequence or a comma list); see
            :data:`EVALUATED_METHODS`.
        target_layer: the layer to explain (``None``: ``pretrained.default_layer``).
        out_dir: the run's directory (created if missing).
        metrics: metric groups (:data:`METRIC_GROUPS`; a sequence or a comma list);
            ``None``: all, each where the data allows it (no boxes: no localization or
            discrimination rows; no channel weights: no axiom rows). Asking for
            ``"axioms"`` by name with methods that have no channel weights (Layer-CAM,
            HiResCAM, Eigen-CAM) warns about them, or refuses the run if no method has
            any; ``"localization"`` or ``"discrimination"`` by name warns at the end if
            no image allowed it, and ``"sanity"`` by name needs ``sanity_images > 0``.
        batch_size: images per batch (and per database transaction).
        perturbation_batch_size: perturbed or ablated copies per forward pass (``None``:
            each method's default, see :class:`axiomcam.methods.Explainer`).
        deletion_steps: steps of the deletion / insertion curves.
        road_percentages: the percentages ROAD removes.
        sanity_images: how many of the first images get the sanity check (0: none).
        sanity_steps: randomise only the first ``sanity_steps`` blocks (``None``: all).
        seed: seeds the data set (for specs), the ROAD noise, the sanity randomisation and
            the summary's bootstrap.
        overwrite: delete the results already in ``out_dir`` (and any per-process parts)
            and start again. Without it, a run of the same configuration there is
            continued: its finished batches are kept, the others computed.
        progress: a progress bar over images, then one over the gallery's maps (``None``:
            on a terminal only).
        gallery_images: best (and worst) images per method in the report's gallery
            (:func:`build_gallery`; 0: no gallery). Not part of the run's configuration:
            it changes no stored number.

    Returns:
        a :class:`RunResult`.

    Raises:
        ValueError: an unknown method or metric group, the axioms asked for by name with
            no method that has channel weights, the sanity check asked for by name with
            ``sanity_images=0``, a bad parameter, a label outside
            the model's classes, a database of another run in ``out_dir``
            (:class:`~axiomcam.evaluation.store.ConfigurationMismatchError`: another
            configuration or schema version), a data set that changed since the run in
            ``out_dir`` started, more processes than images, "no images to
            evaluate" (an empty data set, or every file skipped: the problems are listed),
            or a NaN/inf result (:class:`~axiomcam.evaluation.store.NonFiniteValueError`,
            naming the image, method and metric: a bug upstream).
        PermissionError: ``out_dir`` cannot be created or written to.

    Example:
        >>> import tempfile, torch
        >>> from torch import nn
        >>> from axiomcam.data import Dataset, Sample
        >>> from axiomcam.models import PretrainedModel
        >>> from PIL import Image
        >>> torch.manual_seed(0) and None
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
        >>> toy = PretrainedModel("toy", net.eval(), None, None, ["a", "b", "c"], "1",
        ...                       input_size=16)
        >>> class Two(Dataset):
        ...     def __len__(self):
        ...         return 2
        ...     def __iter__(self):
        ...         for i in range(2):
        ...             yield Sample(f"img{i}", Image.new("RGB", (20, 10), (40 * i, 90, 9)),
        ...                          i, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     run = evaluate(toy, Two(toy.class_names, "two toys"), "gradcam", out_dir=directory,
        ...                    metrics="axioms", progress=False)
        ...     [summary.metric for summary in run.summaries]
        ['conservation_error', 'sensitivity_error', 'sensitivity_correlation', 'bias_share']
    """
    start = time.perf_counter()
    method_names = check_methods(methods)
    groups = check_metric_groups(metrics)
    batch_size = check_positive_int(batch_size, "batch_size")
    if perturbation_batch_size is not None:
        perturbation_batch_size = check_positive_int(perturbation_batch_size,
                                                  "perturbation_batch_size")
    deletion_steps = check_positive_int(deletion_steps, "deletion_steps")
    percentages = list(faithfulness.check_percentages(road_percentages, "road_percentages"))
    sanity_images = check_positive_int(sanity_images, "sanity_images", minimum=0)
    if sanity_steps is not None:
        sanity_steps = check_positive_int(sanity_steps, "sanity_steps")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    gallery_images = check_positive_int(gallery_images, "gallery_images", minimum=0)
    if not isinstance(pretrained, PretrainedModel):
        raise TypeError(
            f"pretrained must be an axiomcam.models.PretrainedModel, not "
            f"{type(pretrained).__name__}: see axiomcam.models.load")
    if isinstance(dataset, str):
        dataset = open_dataset(dataset, pretrained.class_names, seed=seed)
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be an axiomcam.data.Dataset or a spec string, not "
                        f"{type(dataset).__name__}")
    layer = pretrained.default_layer if target_layer is None else target_layer
    model = pretrained.model

    # explainers first: an unknown layer fails here, before anything is written
    with contextlib.ExitStack() as stack:
        explainers = {
            name: stack.enter_context(method_registry.create(
                name, model, layer, batch_size=perturbation_batch_size, progress=False))
            for name in method_names
        }
        # groups asked for by name that cannot be computed: refused when that is known
        # now, before anything is written, else a warning once the run goes ahead
        named_groups = set() if metrics is None else set(groups)
        without_axioms = _without_channel_weights(explainers) \
            if "axioms" in named_groups else []
        if without_axioms and len(without_axioms) == len(explainers):
            raise ValueError(f"{_no_axioms_reason(without_axioms)}: add a method with "
                             f"channel weights, or drop 'axioms' from the metrics")
        if "sanity" in named_groups and sanity_images == 0:
            raise ValueError("the sanity check was asked for with sanity_images=0: give the "
                             "number of images to check (--sanity-images N)")
        samples = iter(dataset)
        first = next(samples, None)  # an empty data set must not leave a database behind
        if first is None:
            raise ValueError(_no_images_message(dataset))

        config = {
            "model": pretrained.name,
            "data": dataset.description,
            "methods": method_names,
            "target_layer": layer,
            "metric_groups": groups,
            "parameters": {
                "batch_size": batch_size,
                "perturbation_batch_size": perturbation_batch_size,
                "deletion_steps": deletion_steps,
                "road_percentages": percentages,
                "sanity_images": sanity_images,
                "sanity_steps": sanity_steps,
                "top_removal_percent": TOP_REMOVAL_PERCENT,
                "localization_threshold": LOCALIZATION_THRESHOLD,
                "iou_threshold": IOU_THRESHOLD,
                "pointing_tolerance": POINTING_TOLERANCE,
                "preprocessing": f"whole image resized to {pretrained.input_size}x"
                                 f"{pretrained.input_size} (bilinear, antialiased), "
                                 f"normalised with mean {list(pretrained.mean)} and std "
                                 f"{list(pretrained.std)}",
                "explained_class": "label if known, else the top-1 class",
            },
            "seed": seed,
            "device": pretrained.device.type,
            "axiomcam_version": __version__,
            "torch_version": torch.__version__,
            "python_version": platform.python_version(),
        }
        group = distributed.join(pretrained.device)
        stack.callback(group.leave)
        if group.world_size > len(dataset):
            count = len(dataset)
            raise ValueError(
                f"{group.world_size} processes for {count} image{'' if count == 1 else 's'} "
                f"in {dataset.description}: start at most one process per image")
        store, done, extended = _open_run(out_dir, config, group, dataset,
                                          overwrite=overwrite)
        stack.enter_context(store)
        if without_axioms and group.is_main:
            warn(f"{_no_axioms_reason(without_axioms)}: no axiom rows for "
                 f"{'it' if len(without_axioms) == 1 else 'them'}")
        resumed = sum(len(ids) for ids in done.values())
        timer = _Timer()
        sanity_layers: dict[str, list[str]] = {}
        previous_details = store.details
        computed = 0

        def details() -> dict[str, Any]:  # this database's details, over every session
            timer.seconds["total"] = time.perf_counter() - start
            return merge_details([previous_details, {
                "images": computed, "seconds": timer.seconds,
                "seconds_by_method": timer.by_method, "sanity_layers": sanity_layers}])

        seen: set[str] = set()
        problems_written = 0
        evaluated = 0  # images before the current batch, whoever computes them
        batch_index = 0
        everything_done = store.finished is not None and group.world_size == 1 and \
            not _part_paths(out_dir)
        # progress=None: a bar on a terminal (None lets tqdm decide), from rank 0 only
        quiet = not progress if progress is not None else (None if group.is_main else True)
        bar = stack.enter_context(tqdm(
            total=len(dataset), initial=len(dataset) if everything_done else 0, unit="image",
            desc="evaluate" if group.world_size == 1 else f"evaluate (rank {group.rank})",
            dynamic_ncols=True, disable=quiet))
        timer.on_stage = bar.set_postfix_str  # which method and stage the batch is at
        raw_batches = [] if everything_done else _batches(chain([first], samples), batch_size)
        for batch_index, batch_samples in enumerate(raw_batches):
            unique = []
            for sample in batch_samples:
                if sample.id in seen:
                    dataset.problems.append(Problem(
                        str(sample.path or sample.id), "duplicate image id, evaluated once"))
                else:
                    seen.add(sample.id)
                    unique.append(sample)
            new_problems = [ProblemRow(p.path, p.reason)
                            for p in dataset.problems[problems_written:]]
            problems_written = len(dataset.problems)
            first_index, evaluated = evaluated, evaluated + len(unique)
            if batch_index in done:
                _check_unchanged(batch_index, done[batch_index], unique, dataset)
            elif group.owns(batch_index):
                rows = _Rows()
                image_rows: list[ImageRow] = []
                if unique:
                    batch = _prepare_batch(pretrained, unique, first_index, timer)
                    try:
                        _evaluate_batch(batch, model, explainers, groups, rows, timer,
                                        layer=layer,
                                        perturbation_batch_size=perturbation_batch_size,
                                        deletion_steps=deletion_steps, percentages=percentages,
                                        sanity_images=sanity_images, sanity_steps=sanity_steps,
                                        sanity_layers=sanity_layers, seed=seed)
                    finally:  # the cache keys on tensor ids, which later tensors reuse
                        for explainer in explainers.values():
                            explainer.ablation_cache = None
                    image_rows = _image_rows(batch)
                computed += len(unique)
                store.write_batch(images=image_rows, results=rows.results, curves=rows.curves,
                                  problems=new_problems, batch=batch_index, details=details())
            bar.update(len(batch_samples))
        if not everything_done:
            # problems met after the last good image (trailing bad files): one more batch
            trailing = batch_index + 1
            if trailing not in done and group.owns(trailing):
                store.write_batch(problems=[ProblemRow(p.path, p.reason)
                                            for p in dataset.problems[problems_written:]],
                                  batch=trailing, details=details())
        timer.on_stage = None
        bar.set_postfix_str("", refresh=False)  # the finished bar ends on no stage
        bar.close()
        store.close()
        # collective: also waits until every rank's batches are stored
        computed_by_all = group.total(computed)
        shared = None
        if group.is_main:
            database = _finish_run(out_dir)
            with timer("gallery"):  # while the explainers' hooks are still in place
                gallery = build_gallery(pretrained, dataset, out_dir, k=gallery_images,
                                        explainers=explainers, batch_size=batch_size,
                                        progress=progress)
            with timer("summary"):
                files = write_summary(out_dir)
                summaries = summarize(out_dir)
            with timer("report"):
                report = write_report(out_dir, gallery, summaries=summaries, files=files)
            with ResultStore.open(out_dir) as merged:
                shared = (database, files, report, summaries, merged.count("images"),
                          [Problem(row.path, row.reason) for row in merged.problems()])
            _warn_about_empty_groups(named_groups, summaries)
        # the other ranks learn what rank 0 wrote, once it has written everything
        database, files, report, summaries, images, problems = group.from_main(shared)
    return RunResult(
        out_dir=Path(out_dir), database=database, files=files, report=report,
        summaries=summaries, images=images, problems=problems, target_layer=layer,
        methods=method_names, metric_groups=groups, seconds=dict(timer.seconds),
        seconds_by_method=timer.by_method, config=config, resumed=resumed,
        computed=computed_by_all, extended_from=extended,
    )


def _image_rows(batch: _Batch) -> list[ImageRow]:
    return [
        ImageRow(sample.id, None if sample.path is None else str(sample.path), label,
                 int(predicted), float(probability), *sample.image.size)
        for sample, label, predicted, probability in zip(
            batch.samples, batch.labels, batch.predicted.tolist(),
            batch.probabilities.tolist(), strict=True)
    ]


def _part_paths(out_dir: str | os.PathLike[str]) -> list[Path]:
    """The per-process databases of a distributed run (deleted once merged)."""
    return sorted((Path(out_dir) / PARTS_FOLDER).glob("rank-*.sqlite"))


def _extended_data(old: Mapping[str, Any], config: Mapping[str, Any],
                   dataset: Dataset) -> tuple[str, int] | None:
    """The old run's data description and image count if ``config`` is the stored
    configuration ``old`` on more images of the same data set, else ``None``.

    Only the data set's size may differ, and the sanity image count if the images already
    done keep their sanity rows: the first ``min(sanity_images, old count)`` get them
    either way.
    """
    differing = differences(old, config)
    if "data" not in differing or not set(differing) <= {"data", "parameters.sanity_images"}:
        return None
    old_data = old["data"]
    old_count = dataset.first_images_of(old_data) if isinstance(old_data, str) else None
    if old_count is None:
        return None
    before, after = differing.get("parameters.sanity_images", (0, 0))
    if not isinstance(before, int) or min(before, old_count) != min(after, old_count):
        return None
    return old_data, old_count


def _open_run(out_dir: str | os.PathLike[str], config: dict[str, Any],
              group: distributed.ProcessGroup, dataset: Dataset, *,
              overwrite: bool) -> tuple[ResultStore, dict[int, list[str]], str | None]:
    """This process's database (``results.sqlite`` on one process, ``parts/rank-R.sqlite``
    on several), the batches already done by any earlier run of the configuration, and the
    data description of the run this one extends (``None``: none).

    A run of the same configuration on fewer images of the same data set (``composite:64``
    then ``composite:200``) is extended: its rows stay, it takes the new configuration and
    only the new batches are computed. Every process checks every database of the
    directory before anything is written (so a refusal happens on all ranks alike); rank 0
    deletes them when overwriting, or extends them; the done batches are read before any
    process writes.
    """
    existing = [path for path in (Path(out_dir) / DATABASE_NAME, *_part_paths(out_dir))
                if path.exists()]
    extended, to_extend = None, []
    if not overwrite:
        for path in existing:
            with ResultStore.open(path.parent, name=path.name) as previous:
                found = _extended_data(previous.config, config, dataset)
            if found is not None:
                extended, old_count = found
                to_extend.append((path, old_count))
        group.barrier()  # every rank has read the old configurations
        if group.is_main:
            for path, old_count in to_extend:
                # the full batches stay; a partial last one is computed again, whole
                extend_run(path, config,
                           kept_batches=old_count // config["parameters"]["batch_size"])
        group.barrier()  # and every database is extended before anyone checks them
        for path in existing:
            check_resumable(path, config)
    elif group.is_main:
        for path in existing:
            remove_database(path)
    group.barrier()
    done: dict[int, list[str]] = {}
    for path in (Path(out_dir) / DATABASE_NAME, *_part_paths(out_dir)):
        if path.exists():
            with ResultStore.open(path.parent, name=path.name) as previous:
                for batch, ids in previous.done_batches().items():
                    done.setdefault(batch, ids)
    group.barrier()  # nobody writes before everybody has read
    name = DATABASE_NAME if group.world_size == 1 else \
        f"{PARTS_FOLDER}/rank-{group.rank:05d}.sqlite"
    return ResultStore.create(out_dir, config, resume=True, name=name), done, extended


def _check_unchanged(batch: int, stored: list[str], unique: list[Sample],
                     dataset: Dataset) -> None:
    ids = [sample.id for sample in unique]
    if ids != stored:
        raise ValueError(
            f"{dataset.description} changed since this run started: batch {batch} held "
            f"{len(stored)} images ({', '.join(stored[:3])}...) and now holds {len(ids)} "
            f"({', '.join(ids[:3])}...); resuming would mix two data sets: use another "
            "output directory, or --overwrite")


def _finish_run(out_dir: str | os.PathLike[str]) -> Path:
    """Merge the processes' databases into ``results.sqlite`` (if the run had several) and
    mark it finished, with its image count."""
    parts = _part_paths(out_dir)
    if parts:
        merge_runs(out_dir, parts)
        folder = Path(out_dir) / PARTS_FOLDER
        for stale in folder.glob("*.lock"):  # left by killed ranks; every rank is done now
            stale.unlink()
        folder.rmdir()
    with ResultStore.open(out_dir) as store:
        if store.finished is None:
            store.finish({**store.details, "images": store.count("images")})
        return store.path


def build_gallery(pretrained: PretrainedModel, dataset: Dataset | str,
                  out_dir: str | os.PathLike[str], *, k: int = GALLERY_SIZE,
                  explainers: Mapping[str, method_registry.Explainer] | None = None,
                  batch_size: int = 16,
                  perturbation_batch_size: int | None = None,
                  progress: bool | None = None) -> dict[str, list[GalleryItem]]:
    """The report's gallery of a finished run: each method's map over its ``k`` best and
    ``k`` worst images by the ranking metric.

    The images are chosen from the stored results by
    :func:`axiomcam.evaluation.report.select_gallery` (the ranking metric, per method, is
    the first of insertion - deletion AUC, Average Drop, energy pointing game and
    conservation error that it has values of). Only those images are looked up in the
    data set (iterated again, up to the last one needed) and explained again, as in the
    run: whole image resized to ``input_size``, for the label if known, else the stored
    top-1 class. Each picture is the map (``images.overlay``, jet, alpha 0.5) over the image
    scaled to :data:`~axiomcam.evaluation.report.THUMBNAIL_SIZE` on its longest side,
    with the explained class's ground-truth boxes drawn in white.

    Args:
        pretrained: the run's model.
        dataset: the run's data set (or its spec, opened with the run's seed).
        out_dir: the run's directory (holding ``results.sqlite``).
        k: best (and worst) images per method; 0: an empty gallery.
        explainers: the run's explainers by method (``None``: created for the stored
            methods at the stored layer, and closed again).
        batch_size: images per explainer call.
        perturbation_batch_size: for explainers created here.
        progress: a progress bar over the maps to draw (``None``: on a terminal only);
            worth having for Score-CAM, whose gallery costs minutes.

    Returns:
        ``{method: [GalleryItem, ...]}`` (best first, then worst first); an image the
        data set no longer yields is left out.

    Raises:
        FileNotFoundError: no database in ``out_dir``.
        ValueError: ``k`` or ``batch_size`` out of range.

    Example:
        >>> import tempfile, torch
        >>> from torch import nn
        >>> from axiomcam.data import Dataset, Sample
        >>> from axiomcam.models import PretrainedModel
        >>> from PIL import Image
        >>> torch.manual_seed(0) and None
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
        >>> toy = PretrainedModel("toy", net.eval(), None, None, ["a", "b", "c"], "1",
        ...                       input_size=16)
        >>> ramp = Image.linear_gradient("L").resize((20, 10))
        >>> class Four(Dataset):
        ...     def __len__(self):
        ...         return 4
        ...     def __iter__(self):
        ...         for i in range(4):
        ...             image = Image.merge("RGB", (ramp, Image.new("L", (20, 10), 60 * i),
        ...                                         ramp.transpose(0)))
        ...             yield Sample(f"img{i}", image, i % 3, torch.zeros(0, 4),
        ...                          torch.zeros(0, dtype=torch.long))
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     run = evaluate(toy, Four(toy.class_names, "four toys"), "gradcam",
        ...                    out_dir=directory, metrics="faithfulness", progress=False,
        ...                    gallery_images=0)
        ...     items = build_gallery(toy, Four(toy.class_names, "four toys"), directory, k=1)
        ...     [(item.rank, item.image_id, item.metric, item.picture.size)
        ...      for item in items["gradcam"]]
        [('best', 'img0', 'average_drop', (224, 112)), ('worst', 'img3', 'average_drop', \
(224, 112))]
    """
    k = check_positive_int(k, "k", minimum=0)
    batch_size = check_positive_int(batch_size, "batch_size")
    with ResultStore.open(out_dir) as store:
        selections = select_gallery(store, k)
        rows = {row.image_id: row for row in store.images()}
        config = store.config
    wanted = {ranked.image_id for selection in selections.values()
              for ranked in (*selection.best, *selection.worst)}
    if not wanted:
        return {}
    if isinstance(dataset, str):
        seed = config.get("seed", 0)
        dataset = open_dataset(dataset, pretrained.class_names,
                               seed=seed if isinstance(seed, int) else 0)
    samples = _find_samples(dataset, wanted & set(rows))
    names = pretrained.class_names
    chosen_by_method = {
        method: [(rank, ranked) for rank, ranking in (("best", selection.best),
                                                     ("worst", selection.worst))
                 for ranked in ranking if ranked.image_id in samples]
        for method, selection in selections.items()}
    gallery: dict[str, list[GalleryItem]] = {}
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(tqdm(
            total=sum(map(len, chosen_by_method.values())), unit="map", desc="gallery",
            dynamic_ncols=True, disable=None if progress is None else not progress))
        for method, selection in selections.items():
            chosen = chosen_by_method[method]
            if not chosen:
                continue
            explainer = (explainers or {}).get(method)
            if explainer is None:
                layer = config.get("target_layer") or pretrained.default_layer
                explainer = stack.enter_context(method_registry.create(
                    method, pretrained.model, layer, batch_size=perturbation_batch_size,
                    progress=False))
            items = gallery.setdefault(method, [])
            for start in range(0, len(chosen), batch_size):
                part = chosen[start:start + batch_size]
                part_samples = [samples[ranked.image_id] for _, ranked in part]
                part_rows = [rows[ranked.image_id] for _, ranked in part]
                targets = [row.predicted if row.label is None else row.label
                           for row in part_rows]
                inputs, _ = evaluation_inputs(pretrained, [s.image for s in part_samples],
                                              [s.boxes for s in part_samples])
                maps = explainer(inputs, torch.tensor(targets, dtype=torch.long,
                                                      device=inputs.device)).maps.cpu()
                for (rank, ranked), sample, row, target, cam_map in zip(
                        part, part_samples, part_rows, targets, maps, strict=True):
                    items.append(GalleryItem(
                        image_id=ranked.image_id, rank=rank, metric=selection.metric,
                        value=ranked.value, picture=_gallery_picture(sample, cam_map, target),
                        class_name=_class_name(names, target), note=_gallery_note(row, names)))
                bar.update(len(part))
    return gallery


def _find_samples(dataset: Dataset, wanted: set[str]) -> dict[str, Sample]:
    """The first sample of each wanted id (as the run evaluated the first of duplicates),
    iterating only as far as needed."""
    found: dict[str, Sample] = {}
    if not wanted:
        return found
    for sample in dataset:
        if sample.id in wanted and sample.id not in found:
            found[sample.id] = sample
            if len(found) == len(wanted):
                break
    return found


def _class_name(names: Sequence[str], index: int) -> str:
    return names[index] if 0 <= index < len(names) else f"class {index}"


def _gallery_note(row: ImageRow, names: Sequence[str]) -> str:
    top1 = f"{_class_name(names, row.predicted)} ({row.predicted_probability:.2f})"
    if row.label is None:
        return f"no label: explains the top-1 class, {top1}"
    return f"the label; top-1: {top1}"


def _gallery_picture(sample: Sample, cam_map: torch.Tensor, target: int) -> Image.Image:
    """The map over the whole image at thumbnail size, the target's boxes in white."""
    width, height = sample.image.size
    scale = THUMBNAIL_SIZE / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BILINEAR
    # the run resized the whole image (no crop), so the map covers the whole thumbnail
    picture = overlay(sample.image.convert("RGB").resize(size, resample),
                      cam_map.clamp(0, 1))
    boxes = sample.boxes.reshape(-1, 4)[sample.box_labels.reshape(-1) == target]
    if boxes.numel():
        draw = ImageDraw.Draw(picture)
        factors = torch.tensor([size[0] / width, size[1] / height] * 2)
        for x0, y0, x1, y1 in (boxes.float() * factors).tolist():
            # PIL's rectangle corners are inclusive; x1, y1 are exclusive
            draw.rectangle((x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)), outline="white",
                           width=2)
    return picture


def _without_channel_weights(explainers: Mapping[str, method_registry.Explainer]
                             ) -> list[str]:
    return [name for name, explainer in explainers.items()
            if not explainer.has_channel_weights]


def _no_axioms_reason(methods: Sequence[str]) -> str:
    return (f"the axioms apply to maps sum_k w_k A^k with channel weights "
            f"({', '.join(method_registry.CHANNEL_WEIGHT_METHODS)}), and "
            f"{', '.join(methods)} {'has' if len(methods) == 1 else 'have'} none")


#: the groups whose rows depend on the data, a metric each always has, and why a run
#: can have none of it
_DATA_DEPENDENT_GROUPS = {
    "localization": ("localization_iou", "no image has a label and a box of that class "
                                         "(a folder or CSV needs --boxes voc|coco FILE)"),
    "discrimination": ("discrimination_share", "no image has boxes of its label and of "
                                               "another class (two-object images)"),
}


def _warn_about_empty_groups(named_groups: set[str], summaries: Sequence[MetricSummary]
                             ) -> None:
    """Metric groups asked for by name that the data gave no row of, each named."""
    measured = {summary.metric for summary in summaries}
    for group, (metric, reason) in _DATA_DEPENDENT_GROUPS.items():
        if group in named_groups and metric not in measured:
            warn(f"metric group {group!r} was asked for, but {reason}: the run has no "
                 f"{group} rows")


def _no_images_message(dataset: Dataset) -> str:
    problems = "; ".join(f"{p.path}: {p.reason}" for p in dataset.problems)
    detail = f" ({len(dataset.problems)} skipped: {problems})" if problems else \
        " (the data set is empty)"
    return f"no images to evaluate in {dataset.description}{detail}"


def _prepare_batch(pretrained: PretrainedModel, samples: list[Sample], first_index: int,
                   timer: _Timer) -> _Batch:
    num_classes = len(pretrained.class_names)
    labels = []
    for sample in samples:
        label = None if sample.label is None else int(sample.label)
        if label is not None and not 0 <= label < num_classes:
            raise ValueError(f"image {sample.id!r} has label {label}, outside the model's "
                             f"{num_classes} classes")
        labels.append(label)
    with timer("forward"):
        inputs, boxes = evaluation_inputs(pretrained, [s.image for s in samples],
                                          [s.boxes for s in samples])
        with eval_mode(pretrained.model), torch.no_grad():
            logits = pretrained.model(inputs)
        probabilities, predicted = torch.softmax(logits.double(), dim=1).max(dim=1)
    targets = torch.tensor([predicted[i].item() if label is None else label
                            for i, label in enumerate(labels)], dtype=torch.long)
    return _Batch(samples=samples, inputs=inputs, boxes=boxes,
                  box_labels=[s.box_labels.long().reshape(-1) for s in samples], labels=labels,
                  predicted=predicted.cpu(), probabilities=probabilities.cpu(),
                  targets=targets.to(inputs.device), first_index=first_index)


def _evaluate_batch(batch: _Batch, model: torch.nn.Module,
                    explainers: dict[str, method_registry.Explainer], groups: list[str],
                    rows: _Rows, timer: _Timer, *, layer: str, perturbation_batch_size: int | None,
                    deletion_steps: int, percentages: list[float], sanity_images: int,
                    sanity_steps: int | None, sanity_layers: dict[str, list[str]],
                    seed: int) -> None:
    inputs, targets, ids = batch.inputs, batch.targets, batch.ids
    # the metrics' own forward passes (whole perturbed images) take a number; explainers
    # and the probe take None too (their defaults)
    options = {"batch_size": perturbation_batch_size or DEFAULT_BATCH_SIZE, "progress": False}
    probe: axioms.LayerProbe | None = None
    # one sweep of the K channel ablations for Ablation-CAM's two forms and the probe
    ablations = AblationCache()
    for explainer in explainers.values():
        explainer.ablation_cache = ablations
    localized = _localization_subset(batch) if "localization" in groups else None
    discriminated = _discrimination_subset(batch) if "discrimination" in groups else None
    sanity_count = max(0, min(len(ids), sanity_images - batch.first_index))

    for name, explainer in explainers.items():
        with timer("explain", name):
            explanation = explainer(inputs, targets)
        maps = explanation.maps

        if "axioms" in groups and explanation.channel_weights is not None:
            with timer("axioms", name):
                if probe is None:  # once per batch, shared by every method
                    probe = axioms.probe_layer(model, inputs, targets, layer,
                                               batch_size=perturbation_batch_size,
                                               progress=False, ablation_cache=ablations)
                errors = axioms.axiom_errors(probe, explanation)
                for metric in ("conservation_error", "sensitivity_error",
                               "sensitivity_correlation", "bias_share"):
                    rows.add(ids, name, metric, getattr(errors, metric))

        if "faithfulness" in groups:
            with timer("faithfulness", name):
                change = faithfulness.confidence_change(model, inputs, maps, targets, **options)
                rows.add(ids, name, "average_drop", change.drop)  # already in %
                rows.add(ids, name, "increase_in_confidence", _percent(change.increase))
                drop = faithfulness.top_removal_drop(model, inputs, maps, targets,
                                                     percent=TOP_REMOVAL_PERCENT, **options)
                rows.add(ids, name, "top_removal_drop", drop)

        if "deletion" in groups:  # its own group: 2 (steps + 1) forward passes per image
            with timer("deletion", name):
                curves = faithfulness.deletion_insertion(model, inputs, maps, targets,
                                                         steps=deletion_steps, **options)
                rows.add(ids, name, "deletion_auc", curves.deletion_auc)
                rows.add(ids, name, "insertion_auc", curves.insertion_auc)
                fractions = curves.fractions.tolist()
                rows.add_curve(ids, name, "deletion", fractions, curves.deletion)
                rows.add_curve(ids, name, "insertion", fractions, curves.insertion)

        if "road" in groups:
            with timer("road", name):
                road = faithfulness.road(model, inputs, maps, targets,
                                         percentages=tuple(percentages), seed=seed, **options)
                xs = [float(p) for p in road.percentages]
                rows.add(ids, name, "road_morf", road.morf.mean(dim=1))
                rows.add(ids, name, "road_lerf", road.lerf.mean(dim=1))
                rows.add_curve(ids, name, "road_morf", xs, road.morf)
                rows.add_curve(ids, name, "road_lerf", xs, road.lerf)

        if localized:
            with timer("localization", name):
                _localization_rows(batch, localized, maps, name, rows)

        if discriminated:
            with timer("discrimination", name):
                indices, right, wrong = discriminated
                result = localization.class_discrimination(maps[indices], right, wrong)
                chosen = [ids[i] for i in indices]
                rows.add(chosen, name, "discrimination_right", result.right)
                rows.add(chosen, name, "discrimination_wrong", result.wrong)
                rows.add(chosen, name, "discrimination_share", result.share)

        if "sanity" in groups and sanity_count:
            with timer("sanity", name):
                check = sanity.cascading_randomization(
                    model, inputs[:sanity_count], name, targets[:sanity_count],
                    target_layer=layer, max_steps=sanity_steps, seed=seed,
                    batch_size=perturbation_batch_size, progress=False)
                sanity_layers[name] = list(check.layers)
                chosen = ids[:sanity_count]
                rows.add(chosen, name, "sanity_spearman", check.correlations.mean(dim=1))
                rows.add_curve(chosen, name, "sanity",
                               list(range(1, len(check.layers) + 1)), check.correlations)


def _localization_subset(batch: _Batch) -> tuple[list[int], list[torch.Tensor]] | None:
    """Images with a known label and at least one box of that class, and those boxes."""
    indices, boxes = [], []
    for index, label in enumerate(batch.labels):
        if label is None:
            continue
        mine = batch.boxes[index][batch.box_labels[index] == label]
        if mine.shape[0]:
            indices.append(index)
            boxes.append(mine)
    return (indices, boxes) if indices else None


def _discrimination_subset(
        batch: _Batch) -> tuple[list[int], list[torch.Tensor], list[torch.Tensor]] | None:
    """Images with a known label whose boxes carry that class and at least one other."""
    indices, right, wrong = [], [], []
    for index, label in enumerate(batch.labels):
        if label is None:
            continue
        classes = batch.box_labels[index]
        is_label = classes == label
        if is_label.any() and (~is_label).any():
            indices.append(index)
            right.append(batch.boxes[index][is_label])
            wrong.append(batch.boxes[index][~is_label])
    return (indices, right, wrong) if indices else None


def _localization_rows(batch: _Batch, subset: tuple[list[int], list[torch.Tensor]],
                       maps: torch.Tensor, method: str, rows: _Rows) -> None:
    indices, boxes = subset
    chosen_maps = maps[indices]
    chosen = [batch.ids[i] for i in indices]
    boxed = localization.box_localization(chosen_maps, boxes, threshold=LOCALIZATION_THRESHOLD,
                                          iou_threshold=IOU_THRESHOLD)
    correct = boxed.correct.cpu()
    right_class = torch.tensor([int(batch.predicted[i]) == batch.labels[i] for i in indices])
    rows.add(chosen, method, "localization_iou", boxed.iou)
    rows.add(chosen, method, "localization_error", _percent(~correct))
    rows.add(chosen, method, "top1_localization_error", _percent(~(correct & right_class)))
    rows.add(chosen, method, "pointing_game", _percent(localization.pointing_game(
        chosen_maps, boxes, tolerance=POINTING_TOLERANCE).cpu()))
    rows.add(chosen, method, "energy_pointing_game",
             localization.energy_pointing_game(chosen_maps, boxes))

