"""What :func:`axiomcam.evaluation.evaluate` is asked for, checked before anything is
computed or written: the methods (:func:`check_methods`), the metric groups and their
parameters (:func:`check_request`), groups asked for by name that the run cannot give
(:func:`refuse_unavailable_groups`), and the configuration stored in the run's database
(:func:`configuration`).

Examples:
    >>> check_metric_groups(["axioms", "road"])
    ['axioms', 'road']
    >>> check_methods("gradcam,xgradcam")
    ['gradcam', 'xgradcam']
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .. import __version__
from ..data import Dataset, open_dataset
from ..methods import (
    CAM_METHODS,
    CHANNEL_WEIGHT_METHODS,
    COUNTERFACTUAL_METHODS,
    VARIANT_NAMES,
    Explainer,
    method_info,
    normalise_method_name,
)
from ..models import PretrainedModel
from ..support import check_positive_int, warn
from .costs import Passes, Selection, method_passes, select_cheap
from .groups import GROUPS, MetricGroup, check_metric_groups, check_parameters
from .summary import MetricSummary

__all__ = [
    "DEFAULT_METHODS",
    "EVALUATED_METHODS",
    "Request",
    "check_dataset",
    "check_methods",
    "check_request",
    "configuration",
    "default_selection",
    "no_images_message",
    "refuse_unavailable_groups",
    "warn_about_empty_groups",
]

#: the methods :func:`~axiomcam.evaluation.evaluate` accepts: every CAM method. Guided
#: methods are not evaluated: their maps are pixel-level gradients, not class activation
#: maps, and the metrics here are defined for maps of the form ReLU(sum_k w_k A^k)
#: upsampled.
EVALUATED_METHODS: tuple[str, ...] = (*CAM_METHODS, *VARIANT_NAMES)

#: the methods a run measures when none are named, those that are cheap by the rule of
#: :mod:`axiomcam.evaluation.costs` (all of them with ``include_expensive``)
DEFAULT_METHODS: tuple[str, ...] = (
    "gradcam", "gradcam++", "xgradcam", "ablationcam", "scorecam", "layercam")


def check_methods(names: str | Iterable[str]) -> list[str]:
    """The method names to evaluate, checked: a comma list or a sequence of names, each
    spelled as :func:`axiomcam.methods.normalise_method_name` accepts.

    Raises:
        ValueError: no method, an unknown name (the evaluable ones are listed), a guided
            method (not evaluated), or a name given twice.

    Examples:
        >>> check_methods(["GradCAM++", " xgradcam"])
        ['gradcam++', 'xgradcam']
        >>> check_methods("guided_gradcam")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: guided_gradcam is not evaluated (guided methods give pixel-level \
gradient maps, not class activation maps); evaluable methods: cam, gradcam, gradcam++, ...
    """
    if isinstance(names, str):
        names = names.split(",")
    checked: list[str] = []
    known = ", ".join(EVALUATED_METHODS)
    for raw_name in names:
        if not isinstance(raw_name, str):
            raise TypeError(f"method names must be strings, not {type(raw_name).__name__}")
        if not raw_name.strip():
            continue
        try:
            name = normalise_method_name(raw_name)
        except ValueError:
            raise ValueError(f"unknown method {raw_name.strip()!r}; known methods: "
                             f"{known}") from None
        info = method_info(name)
        if not info.cam:
            why = "guided methods give pixel-level gradient maps, not class activation maps" \
                if info.guided else "it is the reference of the occlusion_correlation group"
            raise ValueError(f"{name} is not evaluated ({why}); evaluable methods: {known}")
        if name in checked:
            raise ValueError(f"method {name!r} is given twice")
        checked.append(name)
    if not checked:
        raise ValueError(f"no method given; known methods: {known}")
    return checked


@dataclass(frozen=True)
class Request:
    """What :func:`~axiomcam.evaluation.evaluate` was asked for, checked.

    Attributes:
        methods: the methods' canonical names, in the order given.
        groups: the metric groups to compute, in the registry's order.
        named: the names of the groups asked for by name (empty when the groups were
            left to the defaults with ``metrics=None``): those are refused or warned about
            when the run cannot give them.
        left_out_methods: expensive methods the defaults left out (``methods=None``).
        left_out_groups: expensive groups the defaults left out (``metrics=None``).
        layer: the layer to explain.
        batch_size: images per batch.
        perturbation_batch_size: perturbed copies per forward pass (``None``: each
            method's default).
        parameters: every group's parameters (:func:`~axiomcam.evaluation.groups.
            check_parameters`).
        seed: the run's seed.
        gallery_images: best (and worst) images per method in the report's gallery.
        progress: progress bars (``None``: on a terminal).
    """

    methods: list[str]
    groups: list[MetricGroup]
    named: set[str]
    layer: str
    batch_size: int
    perturbation_batch_size: int | None
    parameters: dict[str, Any]
    seed: int
    gallery_images: int
    progress: bool | None
    left_out_methods: list[str]
    left_out_groups: list[str]

    @property
    def group_names(self) -> list[str]:
        """The names of :attr:`groups`."""
        return [group.name for group in self.groups]


def default_selection(methods: str | Sequence[str] | None,
                      metrics: str | Sequence[str] | None, parameters: Mapping[str, Any], *,
                      include_expensive: bool) -> tuple[Selection, Selection]:
    """The methods and metric groups a run measures, checked: those named, else the cheap
    ones of :data:`DEFAULT_METHODS` and of every group at ``parameters`` (the rule of
    :mod:`axiomcam.evaluation.costs`), with the expensive ones left out.

    Examples:
        >>> methods, groups = default_selection(None, None, check_parameters({}),
        ...                                     include_expensive=False)
        >>> methods.left_out, groups.left_out
        (['scorecam'], ['deletion', 'road', 'sanity', 'occlusion_correlation', \
'faithfulness_correlation', 'robustness'])
        >>> default_selection("scorecam", "road", check_parameters({}),
        ...                   include_expensive=False)[1]
        Selection(chosen=['road'], left_out=[])
    """
    if methods is None:
        method_choice = select_cheap(DEFAULT_METHODS, [_explanation_passes(name)
                                                       for name in DEFAULT_METHODS],
                                     include_expensive=include_expensive)
    else:
        method_choice = Selection(check_methods(methods), [])
    if metrics is None:
        group_choice = select_cheap([group.name for group in GROUPS],
                                    [group.passes_at(parameters) for group in GROUPS],
                                    include_expensive=include_expensive)
    else:
        group_choice = Selection(check_metric_groups(metrics), [])
    return method_choice, group_choice


def _explanation_passes(method: str) -> Passes | None:
    return method_passes(method_info(method).cost)


def check_request(pretrained: PretrainedModel, methods: str | Sequence[str] | None,
                  metrics: str | Sequence[str] | None, *, target_layer: str | None,
                  batch_size: int, perturbation_batch_size: int | None,
                  parameters: dict[str, Any], seed: int, gallery_images: int,
                  progress: bool | None, include_expensive: bool = False) -> Request:
    """Every argument of :func:`~axiomcam.evaluation.evaluate` but the data set and the
    output, checked in the order of its signature (``parameters``: the groups' settable
    parameters by name; ``methods`` or ``metrics`` ``None``: the cheap ones, see
    :func:`default_selection`).

    Raises:
        ValueError: an unknown method or metric group, or a value out of range (named).
        TypeError: ``pretrained`` is no :class:`~axiomcam.models.PretrainedModel`.
    """
    if methods is not None:
        check_methods(methods)  # a bad name is told before a bad parameter
    if metrics is not None:
        check_metric_groups(metrics)
    batch_size = check_positive_int(batch_size, "batch_size")
    if perturbation_batch_size is not None:
        perturbation_batch_size = check_positive_int(perturbation_batch_size,
                                                     "perturbation_batch_size")
    checked = check_parameters(parameters)
    method_choice, group_choice = default_selection(methods, metrics, checked,
                                                    include_expensive=include_expensive)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    gallery_images = check_positive_int(gallery_images, "gallery_images", minimum=0)
    if not isinstance(pretrained, PretrainedModel):
        raise TypeError(
            f"pretrained must be an axiomcam.models.PretrainedModel, not "
            f"{type(pretrained).__name__}: see axiomcam.models.load")
    return Request(
        methods=method_choice.chosen,
        groups=[group for group in GROUPS if group.name in group_choice.chosen],
        named=set() if metrics is None else set(group_choice.chosen),
        layer=pretrained.default_layer if target_layer is None else target_layer,
        batch_size=batch_size, perturbation_batch_size=perturbation_batch_size,
        parameters=checked, seed=seed, gallery_images=gallery_images, progress=progress,
        left_out_methods=method_choice.left_out, left_out_groups=group_choice.left_out)


def check_dataset(dataset: Dataset | str, pretrained: PretrainedModel, seed: int) -> Dataset:
    """The data set, opened from its spec with the run's seed if given one.

    Raises:
        TypeError: neither a :class:`~axiomcam.data.Dataset` nor a string.
    """
    if isinstance(dataset, str):
        dataset = open_dataset(dataset, pretrained.class_names, seed=seed)
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be an axiomcam.data.Dataset or a spec string, not "
                        f"{type(dataset).__name__}")
    return dataset


def _no_rows_reason(group: MetricGroup, methods: Sequence[str]) -> str:
    """Why ``methods`` get none of ``group``'s rows: they lack what it needs."""
    if group.needs.counterfactual:
        need = f"{group.title} need a method with a counterfactual form " \
               f"({', '.join(name for name in COUNTERFACTUAL_METHODS if '_' not in name)})"
    else:
        need = f"{group.unavailable} ({', '.join(CHANNEL_WEIGHT_METHODS)})"
    return f"{need}, and {', '.join(methods)} {'has' if len(methods) == 1 else 'have'} none"


def refuse_unavailable_groups(request: Request, explainers: Mapping[str, Explainer]
                              ) -> list[str]:
    """Groups asked for by name that cannot be computed: refused when that is known now,
    before anything is written (no method has the channel weights a group needs, or the
    count of first images it measures is 0).

    Returns:
        warnings to give once the run goes ahead: per group asked for by name, the
        methods that will have none of its rows (no channel weights).

    Raises:
        ValueError: a group asked for by name that no method or image can give.
    """
    warnings: list[str] = []
    for group in request.groups:
        if group.name not in request.named:
            continue
        needs = group.needs
        names = [name for name in explainers if not needs.measures(method_info(name))]
        if names and len(names) == len(explainers):
            raise ValueError(f"{_no_rows_reason(group, names)}: add a method with "
                             f"{needs.method_kind}, or drop {group.name!r} from the metrics")
        if names:
            warnings.append(f"{_no_rows_reason(group, names)}: no {group.rows_called} rows "
                            f"for {'it' if len(names) == 1 else 'them'}")
        if needs.first_images is not None and request.parameters[needs.first_images] == 0:
            option = needs.first_images.replace("_", "-")
            raise ValueError(f"{group.title} was asked for with {needs.first_images}=0: give "
                             f"the number of images to check (--{option} N)")
    return warnings


def configuration(request: Request, pretrained: PretrainedModel,
                  dataset: Dataset) -> dict[str, Any]:
    """The run's configuration, as the database stores it (a run is resumed only with the
    same one): model and its head (``probability``: how the metrics read ``p_c``), data,
    methods, layer, metric groups, parameters (the batch sizes, every group's parameters,
    the preprocessing), seed, device and versions."""
    return {
        "model": pretrained.name,
        "probability": pretrained.probability,  # the head every metric reads p_c by
        "data": dataset.description,
        "methods": request.methods,
        "target_layer": request.layer,
        "metric_groups": request.group_names,
        "parameters": {
            "batch_size": request.batch_size,
            "perturbation_batch_size": request.perturbation_batch_size,
            **request.parameters,
            "preprocessing": f"whole image resized to {pretrained.input_size}x"
                             f"{pretrained.input_size} (bilinear, antialiased), "
                             f"normalised with mean {list(pretrained.mean)} and std "
                             f"{list(pretrained.std)}",
            "explained_class": "label if known, else the top-1 class",
        },
        "seed": request.seed,
        "device": pretrained.device.type,
        "axiomcam_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
    }


def warn_about_empty_groups(request: Request, summaries: Sequence[MetricSummary]) -> None:
    """Warn about each group asked for by name that has no row because no image had the
    boxes (or masks) it needs, with the reason."""
    measured = {summary.metric for summary in summaries}
    for group in request.groups:
        if group.name in request.named and group.needs.ground_truth and \
                not measured & set(group.metric_names()):
            warn(f"metric group {group.name!r} was asked for, but {group.unavailable}: the "
                 f"run has no {group.rows_called} rows")


def no_images_message(dataset: Dataset) -> str:
    """Why a run has no image: an empty data set, or the files it skipped and why."""
    problems = "; ".join(f"{p.path}: {p.reason}" for p in dataset.problems)
    detail = f" ({len(dataset.problems)} skipped: {problems})" if problems else \
        " (the data set is empty)"
    return f"no images to evaluate in {dataset.description}{detail}"
