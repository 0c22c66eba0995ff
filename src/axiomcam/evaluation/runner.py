"""Evaluate CAM methods on a data set: every metric the data allows, per image, into SQLite.

:func:`evaluate` checks what it is asked (methods, metric groups, their parameters),
opens the run's database, loops over the batches, then finishes the run. Per batch:

1. **Preprocessing** (:func:`~axiomcam.evaluation.inputs.evaluation_inputs`): the *whole*
   image is resized to ``input_size x input_size`` (no centre crop), converted to a tensor
   and normalised with the model's mean and std; ground-truth boxes are scaled by
   ``(input_size / width, input_size / height)``. The localization protocols (CAM,
   Grad-CAM: ILSVRC boxes) resize whole images because a centre crop cuts objects near the
   border, and a cut box no longer says where the object is. The aspect ratio changes; the
   network copes, and the boxes stay exact.
2. **One forward pass** for the predictions (top-1 class and its probability by the
   model's head, ``pretrained.probability``, which every metric reads too).
   Each image is explained for its **label** when the data set knows it (*GT-known* maps,
   as in the localization protocols), else for the predicted class.
3. **The axioms probe** (:class:`axiomcam.metrics.AxiomProbe`: activations, gradients and
   the ``K`` channel-ablated scores) at most once per batch, reused by every method with
   channel weights (CAM, Grad-CAM, Grad-CAM++, XGrad-CAM, Ablation-CAM, Score-CAM), its
   ``K`` ablations shared with Ablation-CAM's explainers; methods without channel weights
   get no axiom rows.
4. **Per method**, one explainer built once per run, its maps, and every metric group
   requested that the image allows, in the order of
   :data:`~axiomcam.evaluation.groups.METRIC_GROUPS`: ``axioms``, ``faithfulness``,
   ``deletion``, ``road``, ``localization`` (images with a known label and a box of that
   class), ``discrimination`` (images whose boxes carry their label and another class) and
   ``sanity`` (the first ``sanity_images`` images only). Each group is one module of
   :mod:`axiomcam.evaluation.groups`, which says what it computes, from which images, with
   which parameters.

Results go to ``out_dir/results.sqlite`` (:mod:`axiomcam.evaluation.store`), one
transaction per batch, then :func:`axiomcam.evaluation.summary.write_summary` writes the
CSV, Markdown and plots, and :func:`axiomcam.evaluation.report.write_report` writes
``out_dir/report.html`` (one self-contained file) with a gallery of each method's best and
worst images, whose maps :func:`~axiomcam.evaluation.gallery.build_gallery` recomputes at
the end of the run (only those ``2 k`` images per method).

Reproducibility: everything is deterministic for a seed, a batch size and a device (the
ROAD noise is drawn per batch from ``seed``, the sanity randomisation from ``seed``).

**Resuming** (:mod:`axiomcam.evaluation.resuming`): each batch's rows are stored with a
record that the batch is done, in one transaction. A run of the same configuration in the
same ``out_dir`` skips the batches done and computes the others in the same batches, so
an interrupted run (``kill -9`` included) continued gives the rows, in order, of an
uninterrupted one. A run on more images of the same data set (``composite:64``, then
``composite:200``; the sanity image count may grow with it if the images done keep theirs)
extends the one there: its rows stay and only the new images are computed. Another
configuration is refused (``overwrite=True`` deletes the old results).

**Distributed** (:mod:`axiomcam.evaluation.distributed`): under ``torchrun`` batch ``b``
is computed by rank ``b mod N`` into ``out_dir/parts/rank-R.sqlite``; when all are done,
rank 0 merges the parts in batch order (:func:`~axiomcam.evaluation.merging.merge_runs`)
and writes the summaries and report, identical to a one-process run's. See
``docs/scaling.md``.

What :func:`evaluate` accepts is checked by :mod:`axiomcam.evaluation.request` (e.g.
:func:`~axiomcam.evaluation.request.check_methods`) before anything is computed.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..data import Dataset, Problem, Sample
from ..methods import DEFAULT_BATCH_SIZE, AblationCache, Explainer, create, method_info
from ..metrics import AxiomProbe
from ..models import PretrainedModel
from ..support import eval_mode, warn, warning_context
from . import distributed
from .batches import Batch, Timer, batches, image_rows, measurement, predictions, select_images
from .estimate import CostEstimate, estimate_cost, probe_timing
from .gallery import build_gallery
from .groups import GROUPS, check_metric_options, metric_group
from .inputs import evaluation_inputs, evaluation_masks
from .merging import merge_details
from .report import GALLERY_SIZE, write_report
from .request import (
    Request,
    check_dataset,
    check_request,
    configuration,
    no_images_message,
    refuse_unavailable_groups,
    warn_about_empty_groups,
)
from .resuming import check_unchanged, finish_run, open_run, part_paths
from .store import CurveRow, ProblemRow, ResultRow, ResultStore
from .summary import MetricSummary, SummaryFiles, summarize, write_summary

__all__ = ["RunResult", "evaluate"]


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
        seconds: wall time per stage (``"forward"``, ``"estimate"`` (the probe of the
            cost estimate), ``"explain"``, one per metric group,
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
        estimate: the cost estimate given before the first batch (``None``: no batch was
            computed, or not by this process).
        left_out: the expensive methods and metric groups the defaults left out.
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
    estimate: CostEstimate | None = None
    left_out: list[str] = field(default_factory=list)


@dataclass
class _Run:
    """An evaluation on its way: what was asked, the open database, what it measured."""

    request: Request
    pretrained: PretrainedModel
    dataset: Dataset
    explainers: dict[str, Explainer]
    config: dict[str, Any]
    processes: distributed.ProcessGroup
    store: ResultStore
    done: dict[int, list[str]]
    extended: str | None
    out_dir: str | os.PathLike[str]
    start: float
    previous_details: dict[str, Any]
    on_estimate: Callable[[str], object] | None = None
    estimate: CostEstimate | None = None
    estimated: bool = False
    timer: Timer = field(default_factory=Timer)
    # what the groups record per method (sanity_layers), over this session
    recorded: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        group.details: {} for group in GROUPS if group.details is not None})
    computed: int = 0

    def details(self) -> dict[str, Any]:
        """This database's details, over every session of the run."""
        self.timer.seconds["total"] = time.perf_counter() - self.start
        return merge_details([self.previous_details, {
            "images": self.computed, "seconds": self.timer.seconds,
            "seconds_by_method": self.timer.by_method, **self.recorded}])


def evaluate(
    pretrained: PretrainedModel,
    dataset: Dataset | str,
    methods: str | Sequence[str] | None = None,
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
    include_expensive: bool = False,
    on_estimate: Callable[[str], object] | None = None,
    metric_options: Mapping[str, Any] | None = None,
) -> RunResult:
    """Evaluate CAM methods on a data set and write the database, summaries, plots and
    the HTML report.

    See the module's documentation for what is computed per batch and how.

    Args:
        pretrained: a :class:`axiomcam.models.PretrainedModel` (``model``, ``class_names``,
            ``input_size``, ``mean``, ``std``, ``default_layer``, ``name``); its
            ``probability`` (``"softmax"``, ``"sigmoid"``, ``"output"``) is how every metric
            and the predictions read ``p_c``. A model with one output is refused.
        dataset: a :class:`axiomcam.data.Dataset`, or a spec for
            :func:`axiomcam.data.open_dataset` (``"composite:200"``, a folder, a CSV).
        methods: CAM method names (a sequence or a comma list); see
            :data:`EVALUATED_METHODS`. ``None``: the cheap ones of
            :data:`~axiomcam.evaluation.request.DEFAULT_METHODS` (see
            :mod:`axiomcam.evaluation.costs`: Score-CAM is left out, and named).
        target_layer: the layer to explain (``None``: ``pretrained.default_layer``).
        out_dir: the run's directory (created if missing).
        metrics: metric groups (:data:`METRIC_GROUPS`; a sequence or a comma list);
            ``None``: the cheap ones by the rule of :mod:`axiomcam.evaluation.costs`
            (deletion, ROAD, the sanity check and the occlusion correlation are left out,
            and named), each where the data allows it (no boxes: no localization or
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
            (:func:`~axiomcam.evaluation.gallery.build_gallery`; 0: no gallery). Not part
            of the run's configuration: it changes no stored number.
        include_expensive: with ``methods`` or ``metrics`` ``None``, also the expensive
            methods or groups (``--all``).
        on_estimate: told the cost estimate's text before the first batch (per method
            and stage, from a probe on the first batch: :mod:`.estimate`), with the
            expensive groups and methods left out; ``None``: written to stderr unless
            ``progress`` is ``False`` (above the progress bar).
        metric_options: the groups' protocol parameters by name, e.g.
            ``{"correlation_runs": 20, "robustness_samples": 50, "pointing_tolerance":
            30}`` (:data:`~axiomcam.evaluation.groups.PARAMETERS` with ``option=False``;
            ``None``: the defaults the metric descriptions quote). They are stored in the
            configuration, so a run with other values is another run; the summary and
            the report list those changed.

    Returns:
        a :class:`RunResult`.

    Raises:
        ValueError: an unknown method or metric group, the axioms asked for by name with
            no method that has channel weights, the sanity check asked for by name with
            ``sanity_images=0``, a bad parameter or metric option, a label outside
            the model's classes, a database of another run in ``out_dir``
            (:class:`~axiomcam.evaluation.store.ConfigurationMismatchError`: another
            configuration or schema version), a data set that changed since the run in
            ``out_dir`` started, more processes than images, "no images to
            evaluate" (an empty data set, or every file skipped: the problems are listed),
            or a NaN/inf result (:class:`~axiomcam.evaluation.store.NonFiniteValueError`,
            naming the image, method and metric: a bug upstream).
        PermissionError: ``out_dir`` cannot be created or written to.

    Examples:
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
    request = check_request(
        pretrained, methods, metrics, target_layer=target_layer, batch_size=batch_size,
        perturbation_batch_size=perturbation_batch_size, seed=seed,
        gallery_images=gallery_images, progress=progress, include_expensive=include_expensive,
        parameters={"deletion_steps": deletion_steps, "road_percentages": road_percentages,
                    "sanity_images": sanity_images, "sanity_steps": sanity_steps,
                    **check_metric_options(metric_options)})
    dataset = check_dataset(dataset, pretrained, seed)
    with contextlib.ExitStack() as stack:
        # explainers first: an unknown layer fails here, before anything is written
        explainers = {
            name: stack.enter_context(create(
                name, pretrained.model, request.layer,
                batch_size=request.perturbation_batch_size, progress=False))
            for name in request.methods
        }
        warnings = refuse_unavailable_groups(request, explainers)
        samples = iter(dataset)
        first = next(samples, None)  # an empty data set must not leave a database behind
        if first is None:
            raise ValueError(no_images_message(dataset))
        run = _open(stack, request, pretrained, dataset, explainers, out_dir=out_dir,
                    overwrite=overwrite, start=start)
        run.on_estimate = on_estimate if on_estimate is not None or progress is False \
            else (lambda text: tqdm.write(text, file=sys.stderr))
        for message in warnings if run.processes.is_main else []:
            warn(message)
        _compute_batches(run, chain([first], samples))
        return _finish(run)


def _open(stack: contextlib.ExitStack, request: Request, pretrained: PretrainedModel,
          dataset: Dataset, explainers: dict[str, Explainer], *,
          out_dir: str | os.PathLike[str], overwrite: bool, start: float) -> _Run:
    """Join the processes of the run and open this process's database (resuming or
    extending a run there)."""
    config = configuration(request, pretrained, dataset)
    processes = distributed.join(pretrained.device)
    stack.callback(processes.leave)
    if processes.world_size > len(dataset):
        count = len(dataset)
        raise ValueError(
            f"{processes.world_size} processes for {count} image{'' if count == 1 else 's'} "
            f"in {dataset.description}: start at most one process per image")
    store, done, extended = open_run(out_dir, config, processes, dataset, overwrite=overwrite)
    stack.enter_context(store)
    return _Run(request=request, pretrained=pretrained, dataset=dataset,
                explainers=explainers, config=config, processes=processes, store=store,
                done=done, extended=extended, out_dir=out_dir, start=start,
                previous_details=store.details)


def _compute_batches(run: _Run, samples: Iterator[Sample]) -> None:
    """Every batch this process owns that no earlier session stored, each stored in one
    transaction, under a progress bar over images."""
    processes, dataset = run.processes, run.dataset
    everything_done = run.store.finished is not None and processes.world_size == 1 and \
        not part_paths(run.out_dir)
    # progress=None: a bar on a terminal (None lets tqdm decide), from rank 0 only
    progress = run.request.progress
    quiet = not progress if progress is not None else (None if processes.is_main else True)
    seen: set[str] = set()
    problems_written = 0
    evaluated = 0  # images before the current batch, whoever computes them
    batch_index = 0
    with tqdm(total=len(dataset), initial=len(dataset) if everything_done else 0,
              unit="image", dynamic_ncols=True, disable=quiet,
              desc="evaluate" if processes.world_size == 1 else
              f"evaluate (rank {processes.rank})") as bar:
        run.timer.on_stage = bar.set_postfix_str  # which method and stage the batch is at
        for batch_index, batch_samples in enumerate(
                [] if everything_done else batches(samples, run.request.batch_size)):
            unique = _unique_samples(batch_samples, seen, dataset)
            new_problems = [ProblemRow(p.path, p.reason)
                            for p in dataset.problems[problems_written:]]
            problems_written = len(dataset.problems)
            first_index, evaluated = evaluated, evaluated + len(unique)
            if batch_index in run.done:
                check_unchanged(batch_index, run.done[batch_index], unique, dataset)
            elif processes.owns(batch_index):
                _compute_batch(run, batch_index, unique, first_index, new_problems)
            bar.update(len(batch_samples))
        if not everything_done:
            # problems met after the last good image (trailing bad files): one more batch
            trailing = batch_index + 1
            if trailing not in run.done and processes.owns(trailing):
                run.store.write_batch(problems=[ProblemRow(p.path, p.reason)
                                                for p in dataset.problems[problems_written:]],
                                      batch=trailing, details=run.details())
        run.timer.on_stage = None
        bar.set_postfix_str("", refresh=False)  # the finished bar ends on no stage


def _unique_samples(samples: list[Sample], seen: set[str], dataset: Dataset) -> list[Sample]:
    """The samples whose id was not seen before (a repeated id is a problem of the data
    set's, evaluated once)."""
    unique = []
    for sample in samples:
        if sample.id in seen:
            dataset.problems.append(Problem(
                str(sample.path or sample.id), "duplicate image id, evaluated once"))
        else:
            seen.add(sample.id)
            unique.append(sample)
    return unique


def _compute_batch(run: _Run, batch_index: int, samples: list[Sample], first_index: int,
                   problems: list[ProblemRow]) -> None:
    """One batch's rows, computed and stored in one transaction with the batch's record."""
    results: list[ResultRow] = []
    curves: list[CurveRow] = []
    images = []
    if samples:
        batch = _prepare_batch(run.pretrained, samples, first_index, run.timer)
        if not run.estimated and run.processes.is_main:
            run.estimated = True  # once, even if the probe fails
            _announce_estimate(run, batch)
        try:
            _evaluate_batch(run, batch, results, curves)
        finally:  # the cache keys on tensor ids, which later tensors reuse
            for explainer in run.explainers.values():
                explainer.ablation_cache = None
        images = image_rows(batch)
    run.computed += len(samples)
    run.store.write_batch(images=images, results=results, curves=curves, problems=problems,
                          batch=batch_index, details=run.details())


def _announce_estimate(run: _Run, batch: Batch) -> None:
    """Probe the first batch computed, estimate the run's cost and tell it."""
    request = run.request
    every = [*request.groups, *(metric_group(name) for name in request.left_out_groups)]
    passes = [group.passes_at(request.parameters) for group in every]
    try:
        with run.timer("estimate"):
            timing = probe_timing(
                run.pretrained.model, batch.inputs, batch.targets, request.layer,
                imputation=any(p is not None and p.imputations for p in passes),
                blocks=any(p is not None and p.explanations_per_block for p in passes),
                batch_size=request.perturbation_batch_size)
    except Exception as error:  # the run itself does not need the estimate
        warn(f"no cost estimate: its probe of the first batch failed ({error!r})")
        return
    remaining = len(run.dataset) - sum(len(ids) for ids in run.done.values())
    run.estimate = estimate_cost(
        timing, request.methods, request.group_names, request.parameters,
        images=max(remaining, len(batch.samples)), first_index=batch.first_index,
        left_out_methods=request.left_out_methods, left_out_groups=request.left_out_groups)
    if run.on_estimate is not None:
        run.on_estimate(run.estimate.format())


def _prepare_batch(pretrained: PretrainedModel, samples: list[Sample], first_index: int,
                   timer: Timer) -> Batch:
    """The batch's inputs and boxes (:func:`evaluation_inputs`), its predictions, and the
    class explained per image."""
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
        masks = [None if s.masks is None else evaluation_masks(s.masks, pretrained.input_size)
                 for s in samples]
        with eval_mode(pretrained.model), torch.no_grad():
            logits = pretrained.model(inputs)
        probabilities, predicted = predictions(logits, pretrained.probability)
    targets = torch.tensor([predicted[i].item() if label is None else label
                            for i, label in enumerate(labels)], dtype=torch.long)
    return Batch(samples=samples, inputs=inputs, boxes=boxes,
                 box_labels=[s.box_labels.long().reshape(-1) for s in samples], labels=labels,
                 predicted=predicted.cpu(), probabilities=probabilities.cpu(),
                 targets=targets.to(inputs.device), first_index=first_index, masks=masks)


def _evaluate_batch(run: _Run, batch: Batch, results: list[ResultRow],
                    curves: list[CurveRow]) -> None:
    """Per method: its explanation, then every requested group's rows on the images the
    group measures."""
    request, model = run.request, run.pretrained.model
    # one sweep of the K channel ablations for Ablation-CAM's two forms and the probe
    ablations = AblationCache()
    probe = AxiomProbe(model, batch.inputs, batch.targets, request.layer,
                       batch_size=request.perturbation_batch_size, progress=False,
                       ablation_cache=ablations)
    for explainer in run.explainers.values():
        explainer.ablation_cache = ablations
    selections = {group.name: select_images(group.needs, batch, request.parameters)
                  for group in request.groups}
    # the metrics' own forward passes (whole perturbed images) take a number; explainers
    # and the probe take None too (their defaults)
    forward_options = {"batch_size": request.perturbation_batch_size or DEFAULT_BATCH_SIZE,
                       "progress": False, "probability": run.pretrained.probability}
    ids = batch.ids
    shared: dict[Any, Any] = {}  # what groups share across the batch's methods
    for method, explainer in run.explainers.items():
        with run.timer("explain", method), warning_context(f"{method} at {request.layer}", ids):
            explanation = explainer(batch.inputs, batch.targets)
        for group in request.groups:
            selection = selections[group.name]
            if selection is None or not group.needs.measures(method_info(method)):
                continue
            with run.timer(group.name, method), warning_context(
                    f"{method} at {request.layer} ({group.name})",
                    selection.pick(ids)):
                group.compute(measurement(
                    group, batch, selection, method=method, explanation=explanation,
                    probe=probe, results=results, curves=curves, model=model,
                    target_layer=request.layer, parameters=request.parameters,
                    seed=request.seed, batch_size=request.perturbation_batch_size,
                    forward_options=forward_options, details=run.recorded, shared=shared))


def _finish(run: _Run) -> RunResult:
    """Once every process stored its batches: rank 0 merges the databases, draws the
    gallery, writes the summaries and the report; every process returns the same result."""
    run.store.close()
    # collective: also waits until every rank's batches are stored
    computed_by_all = run.processes.total(run.computed)
    shared = _write_outputs(run) if run.processes.is_main else None
    # the other ranks learn what rank 0 wrote, once it has written everything
    database, files, report, summaries, images, problems = run.processes.from_main(shared)
    request = run.request
    return RunResult(
        out_dir=Path(run.out_dir), database=database, files=files, report=report,
        summaries=summaries, images=images, problems=problems, target_layer=request.layer,
        methods=request.methods, metric_groups=request.group_names,
        seconds=dict(run.timer.seconds), seconds_by_method=run.timer.by_method,
        config=run.config, resumed=sum(len(ids) for ids in run.done.values()),
        computed=computed_by_all, extended_from=run.extended, estimate=run.estimate,
        left_out=[*request.left_out_groups, *request.left_out_methods],
    )


def _write_outputs(run: _Run) -> tuple[Path, SummaryFiles, Path, list[MetricSummary], int,
                                       list[Problem]]:
    """Rank 0's end of the run: the merged database, gallery, summaries and report."""
    out_dir, timer, request = run.out_dir, run.timer, run.request
    database = finish_run(out_dir)
    with timer("gallery"):  # while the explainers' hooks are still in place
        gallery = build_gallery(run.pretrained, run.dataset, out_dir, k=request.gallery_images,
                                explainers=run.explainers, batch_size=request.batch_size,
                                progress=request.progress)
    with timer("summary"):
        files = write_summary(out_dir)
        summaries = summarize(out_dir)
    with timer("report"):
        report = write_report(out_dir, gallery, summaries=summaries, files=files)
    with ResultStore.open(out_dir) as merged:
        shared = (database, files, report, summaries, merged.count("images"),
                  [Problem(row.path, row.reason) for row in merged.problems()])
    warn_about_empty_groups(request, summaries)
    return shared
