"""The metric groups of :func:`axiomcam.evaluation.evaluate`, one module each, and their
registry.

Each group module declares one :class:`~axiomcam.evaluation.groups.base.MetricGroup`
(``GROUP``): its name, its metrics (name, description, which direction is better), its
curves (name, abscissa), the data it needs (boxes of the label, boxes of two classes,
channel weights, only the first images), its parameters (default, check, whether
``evaluate`` takes it), its cost, and ``compute``, which adds one method's rows on one
batch. The runner validates the parameters, selects each batch's images a group needs
and calls ``compute``; the summary and the report read the descriptions and directions
here (:data:`METRICS`, :data:`CURVES`), and the configuration stored in the database lists
every group's parameters (:data:`PARAMETERS`).

**Adding a metric group**: write a module ``groups/NAME.py`` that defines
``compute(measurement)`` (import the metric functions inside it, from the package level
``axiomcam.metrics``, so that the declarations stay light for the summary and the report)
and ``GROUP = MetricGroup(name="NAME", ...)``, then register it: import the module here
and add one line to :data:`GROUPS` (its place there is its place in every run: rows,
timings, summaries). A parameter with ``option=True`` must also become a keyword of
``evaluate`` (and an option of the CLI; ``tests/evaluation/test_groups.py`` checks the
keyword); a protocol parameter (``option=False``) is set by ``evaluate``'s
``metric_options`` (``--metric-option NAME=VALUE``) and stored. Metric, curve and parameter names
must not repeat another group's, which the registry checks when it is imported.

Examples:
    >>> METRIC_GROUPS
    ('axioms', 'faithfulness', 'deletion', 'road', 'localization', 'discrimination', \
'mask_iou', 'sanity', 'occlusion_correlation', 'counterfactual', 'complexity', \
'random_logit', 'mask_localization', 'box_localization', 'faithfulness_correlation', \
'robustness')
    >>> METRICS["pointing_game"].description
    "100 if the map's maximum is within 15 px of a box of the class, else 0"
    >>> metric_group("deletion").cost
    '2 (deletion_steps + 1) forward passes per image and method'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from . import (
    axioms,
    box_localization,
    complexity,
    counterfactual,
    deletion,
    discrimination,
    faithfulness,
    faithfulness_correlation,
    localization,
    mask_iou,
    mask_localization,
    occlusion_correlation,
    random_logit,
    road,
    robustness,
    sanity,
)
from .base import Measurement, Metric, MetricGroup, MetricInfo, Needs, Parameter

__all__ = [
    "CURVES",
    "DERIVED_METRICS",
    "GROUPS",
    "METRICS",
    "METRIC_GROUPS",
    "PARAMETERS",
    "Measurement",
    "MetricGroup",
    "MetricInfo",
    "Needs",
    "Parameter",
    "changed_parameters",
    "check_metric_groups",
    "check_metric_options",
    "check_parameters",
    "metric_group",
]

#: every metric group, in the order :func:`~axiomcam.evaluation.evaluate` computes them
GROUPS: tuple[MetricGroup, ...] = (
    axioms.GROUP,
    faithfulness.GROUP,
    deletion.GROUP,
    road.GROUP,
    localization.GROUP,
    discrimination.GROUP,
    mask_iou.GROUP,
    sanity.GROUP,
    occlusion_correlation.GROUP,
    counterfactual.GROUP,
    complexity.GROUP, random_logit.GROUP, mask_localization.GROUP,
    box_localization.GROUP,
    faithfulness_correlation.GROUP,
    robustness.GROUP,
)

#: the names of the metric groups, in the order they are computed
METRIC_GROUPS: tuple[str, ...] = tuple(group.name for group in GROUPS)


def metric_group(name: str) -> MetricGroup:
    """The registered group called ``name``.

    Raises:
        ValueError: an unknown name (the known ones are listed).
    """
    for group in GROUPS:
        if group.name == name:
            return group
    raise ValueError(f"unknown metric group {name!r}; known: {', '.join(METRIC_GROUPS)}")


def _listed(metrics: Iterable[tuple[str, Metric]]) -> dict[str, MetricInfo]:
    """``{name: MetricInfo}`` in the groups' order, each metric with a ``listed_after``
    moved after the one it names."""
    names: list[str] = []
    infos: dict[str, MetricInfo] = {}
    moved: list[Metric] = []
    for group, metric in metrics:
        if metric.name in infos:
            raise ValueError(f"metric {metric.name!r} is declared twice")
        infos[metric.name] = metric.info(group)
        if metric.listed_after is None:
            names.append(metric.name)
        else:
            moved.append(metric)
    for metric in moved:
        if metric.listed_after not in names:
            raise ValueError(f"metric {metric.name!r} is listed after {metric.listed_after!r}, "
                             "which no group declares")
        names.insert(names.index(metric.listed_after) + 1, metric.name)
    return {name: infos[name] for name in names}


#: every metric the runner stores, by name, in the order summaries list them
METRICS: dict[str, MetricInfo] = _listed(
    (group.name, metric) for group in GROUPS for metric in group.metrics)

#: per-image metrics the report computes from stored ones (not stored themselves)
DERIVED_METRICS: dict[str, MetricInfo] = _listed(
    (group.name, metric) for group in GROUPS for metric in group.derived)

#: the per-image curves the runner stores, and what their abscissa is
CURVES: dict[str, str] = {curve.name: curve.abscissa
                          for group in GROUPS for curve in group.curves}

#: every group's parameters, in the order the configuration stores them: first those
#: ``evaluate`` takes, then the fixed ones, each in the groups' order
PARAMETERS: tuple[Parameter, ...] = (
    *(parameter for group in GROUPS for parameter in group.parameters if parameter.option),
    *(parameter for group in GROUPS for parameter in group.parameters if not parameter.option),
)


def _check_registry() -> None:
    """Names that must not repeat, and needs that must name a parameter."""
    for kind, names in (("metric group", METRIC_GROUPS),
                        ("curve", [c.name for g in GROUPS for c in g.curves]),
                        ("parameter", [p.name for p in PARAMETERS])):
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"{kind} names declared twice: {', '.join(repeated)}")
    if set(METRICS) & set(DERIVED_METRICS):
        raise ValueError("a derived metric has the name of a stored one")
    parameters = {parameter.name for parameter in PARAMETERS}
    for group in GROUPS:
        if group.needs.first_images is not None and group.needs.first_images not in parameters:
            raise ValueError(f"metric group {group.name!r} counts its images with "
                             f"{group.needs.first_images!r}, which is no parameter")


_check_registry()


def check_parameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """Every group's parameters, checked, in the order of :data:`PARAMETERS`: the value
    given in ``values``, else the default.

    Raises:
        ValueError: a value its check refuses, or a name that is no parameter (the known
            ones are listed).

    Examples:
        >>> checked = check_parameters({"road_percentages": (25, 75), "iou_threshold": 0.3})
        >>> checked["road_percentages"], checked["deletion_steps"], checked["iou_threshold"]
        ([25.0, 75.0], 50, 0.3)
    """
    known = [parameter.name for parameter in PARAMETERS]
    unknown = [name for name in values if name not in known]
    if unknown:
        raise ValueError(f"unknown metric parameter {unknown[0]!r}; known: {', '.join(known)}")
    return {parameter.name: parameter.checked(values.get(parameter.name, parameter.default))
            for parameter in PARAMETERS}


def check_metric_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``evaluate``'s ``metric_options``: protocol parameters of the groups (those without
    a keyword of their own, ``option=False``) by name, checked.

    Raises:
        TypeError: ``options`` is no mapping.
        ValueError: an unknown name, a parameter that has its own keyword of ``evaluate``,
            or a value its check refuses.

    Examples:
        >>> check_metric_options({"correlation_runs": 20})
        {'correlation_runs': 20}
        >>> check_metric_options({"deletion_steps": 10})
        Traceback (most recent call last):
        ...
        ValueError: deletion_steps has its own keyword: evaluate(..., deletion_steps=...) \
(--deletion-steps on the command line), not metric_options
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"metric_options must be a mapping of parameter names to values, "
                        f"not {type(options).__name__}")
    by_name = {parameter.name: parameter for parameter in PARAMETERS}
    for name in options:
        parameter = by_name.get(name)
        if parameter is not None and parameter.option:
            raise ValueError(f"{name} has its own keyword: evaluate(..., {name}=...) "
                             f"(--{name.replace('_', '-')} on the command line), not "
                             "metric_options")
    checked = check_parameters(options)
    return {name: checked[name] for name in options}


def changed_parameters(parameters: Mapping[str, Any]) -> list[str]:
    """``"name = value (default: d)"`` for each protocol parameter (``option=False``) of
    ``parameters`` that differs from its default: the metric descriptions quote those
    defaults, so a summary lists what a run changed.

    Examples:
        >>> changed_parameters(check_parameters({"correlation_runs": 20}))
        ['correlation_runs = 20 (default: 100)']
    """
    return [f"{parameter.name} = {parameters[parameter.name]!r} (default: "
            f"{parameter.default!r})" for parameter in PARAMETERS
            if not parameter.option and parameter.name in parameters
            and parameters[parameter.name] != parameter.checked(parameter.default)]


def check_metric_groups(groups: str | Iterable[str] | None) -> list[str]:
    """The metric groups to compute, checked (``None``: every group of :data:`GROUPS`;
    ``evaluate`` then keeps the cheap ones, :func:`~axiomcam.evaluation.request.default_selection`).

    Raises:
        ValueError: an unknown group (the known ones are listed) or an empty selection.

    Examples:
        >>> check_metric_groups("road, axioms")
        ['axioms', 'road']
        >>> check_metric_groups("speed")
        Traceback (most recent call last):
        ...
        ValueError: unknown metric group 'speed'; known: axioms, faithfulness, deletion, \
road, localization, discrimination, mask_iou, sanity, occlusion_correlation, counterfactual, \
complexity, random_logit, mask_localization, box_localization, faithfulness_correlation, \
robustness
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
