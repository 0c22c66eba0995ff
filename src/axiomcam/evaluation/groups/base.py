"""What a metric group declares (:class:`MetricGroup`) and what its ``compute`` gets
(:class:`Measurement`).

Nothing here imports torch or the metrics: the summary and the report read the
declarations, and stay light to import. The group modules import the metric functions
inside ``compute``, which only runs in :func:`axiomcam.evaluation.evaluate`.

Examples:
    >>> metric = Metric("average_drop", "100 max(0, Y - O) / Y", "lower")
    >>> metric.info("faithfulness")
    MetricInfo(group='faithfulness', description='100 max(0, Y - O) / Y', better='lower')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from ...support import check_positive_int
from ..costs import Passes
from ..store import CurveRow, ResultRow

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ...explanation import Explanation
    from ...methods import MethodInfo
    from ...metrics import AxiomProbe

__all__ = [
    "DIRECTIONS",
    "Curve",
    "Measurement",
    "Metric",
    "MetricGroup",
    "MetricInfo",
    "Needs",
    "Parameter",
    "check_count",
    "check_number_in",
    "check_optional_count",
    "percent",
]

#: which values of a metric are better: ``""`` for a property of the network, not the method
DIRECTIONS = ("higher", "lower", "")


class MetricInfo(NamedTuple):
    """What a stored metric is: its group, its meaning and which direction is better
    (``"higher"``, ``"lower"``, or ``""`` for a property of the network, not the method)."""

    group: str
    description: str
    better: str


@dataclass(frozen=True)
class Metric:
    """One per-image metric a group stores (or derives from stored ones).

    Attributes:
        name: the name in the database (``"average_drop"``).
        description: its formula and source, one sentence (the summary and the report
            show it).
        better: ``"higher"``, ``"lower"``, or ``""`` (a property of the network).
        listed_after: summaries list the metric after this one (of another group) instead
            of with its own group; ``None``: with its group.
    """

    name: str
    description: str
    better: str
    listed_after: str | None = None

    def __post_init__(self) -> None:
        if self.better not in DIRECTIONS:
            raise ValueError(f"metric {self.name!r}: better must be one of {DIRECTIONS}, "
                             f"got {self.better!r}")

    def info(self, group: str) -> MetricInfo:
        """The metric's :class:`MetricInfo` as a metric of ``group``."""
        return MetricInfo(group, self.description, self.better)


@dataclass(frozen=True)
class Curve:
    """A per-image curve a group stores.

    Attributes:
        name: the curve's name in the database (``"deletion"``).
        abscissa: what its x values are (the summary's plots label their axis with it).
    """

    name: str
    abscissa: str


@dataclass(frozen=True)
class Parameter:
    """A parameter of a metric group, stored in the run's configuration
    (``config["parameters"][name]``).

    Attributes:
        name: its name (also the keyword of :func:`~axiomcam.evaluation.evaluate` when
            ``option`` is true).
        default: its value when not given (the descriptions quote the fixed ones).
        check: ``check(value, name)`` returns the value checked (and normalised, e.g. a
            list), or raises a ValueError naming ``name`` and the value.
        option: ``evaluate`` takes it as a keyword; ``False``: a value of the protocol
            (the metric descriptions quote its default), set by ``evaluate``'s
            ``metric_options`` and stored so that a run says how it was measured.

    Examples:
        >>> Parameter("deletion_steps", 50, check_positive_int).checked(0)
        Traceback (most recent call last):
        ...
        ValueError: deletion_steps must be an int >= 1, got 0
    """

    name: str
    default: Any
    check: Callable[[Any, str], Any]
    option: bool = True

    def checked(self, value: Any) -> Any:
        """``value`` checked by :attr:`check`."""
        return self.check(value, self.name)


@dataclass(frozen=True)
class Needs:
    """The data a group's rows need; an image (or a method) without it gets no row of the
    group.

    Attributes:
        label_boxes: a known label and at least one box of that class (``boxes`` are
            those of the label).
        other_boxes: also a box of another class (``other_boxes``); implies
            ``label_boxes``.
        channel_weights: a method whose maps are ``sum_k w_k A^k`` with channel weights.
        first_images: only the run's first ``N`` images, ``N`` the value of the parameter
            of this name.
        label_masks: a known label and a true mask of that class (``masks``: the union
            of the label's masks).
        counterfactual: a method with a counterfactual form (``counterfactual=True``).
    """

    label_boxes: bool = False
    other_boxes: bool = False
    channel_weights: bool = False
    first_images: str | None = None
    label_masks: bool = False
    counterfactual: bool = False

    def measures(self, method: MethodInfo) -> bool:
        """Whether the group has rows for ``method`` (its registry entry)."""
        return ((method.has_channel_weights or not self.channel_weights)
                and (method.counterfactual or not self.counterfactual))

    @property
    def method_kind(self) -> str:
        """What the methods the group measures have, as messages say it."""
        return "a counterfactual form" if self.counterfactual else "channel weights"

    @property
    def boxes(self) -> bool:
        """Whether the group needs boxes of the label (and so a known label)."""
        return self.label_boxes or self.other_boxes

    @property
    def ground_truth(self) -> bool:
        """Whether the group needs boxes or masks of the label (images may lack them)."""
        return self.boxes or self.label_masks


@dataclass(frozen=True)
class MetricGroup:
    """A metric group of :func:`~axiomcam.evaluation.evaluate`: what it stores, what it
    needs and how it computes one batch.

    Attributes:
        name: the group's name (``--metrics`` takes it; its timer stage is called so).
        title: how messages name it (``"the sanity check"``).
        metrics: the metrics it stores, in the order it stores them.
        compute: ``compute(measurement)`` adds the rows of one method on one batch.
        cost: what it costs per image and method, in forward passes.
        curves: the per-image curves it stores.
        derived: per-image metrics the report computes from the stored ones.
        needs: the data its rows need.
        parameters: its parameters.
        unavailable: why a run can have none of its rows, said when it was asked for by
            name and has none (a reason, e.g. "no image has boxes of its label").
        row_label: what messages call its rows (``"axiom"`` in "no axiom rows"; default:
            the name).
        details: the key under which the run's details keep what ``compute`` records per
            method (:meth:`Measurement.record`), ``None``: it records nothing.
        passes: ``passes(parameters)``, what :attr:`cost` says in numbers: the
            :class:`~axiomcam.evaluation.costs.Passes` per image and method at the run's
            parameters. ``None``: undeclared, and so expensive (left out of a run unless
            named, see :mod:`axiomcam.evaluation.costs`).
    """

    name: str
    title: str
    metrics: tuple[Metric, ...]
    compute: Callable[[Measurement], None]
    cost: str
    curves: tuple[Curve, ...] = ()
    derived: tuple[Metric, ...] = ()
    needs: Needs = field(default_factory=Needs)
    parameters: tuple[Parameter, ...] = ()
    unavailable: str = ""
    row_label: str = ""
    details: str | None = None
    passes: Callable[[Mapping[str, Any]], Passes] | None = None

    def passes_at(self, parameters: Mapping[str, Any]) -> Passes | None:
        """The group's :class:`~axiomcam.evaluation.costs.Passes` at ``parameters``
        (``None``: undeclared)."""
        return None if self.passes is None else self.passes(parameters)

    @property
    def rows_called(self) -> str:
        """What messages call the group's rows: :attr:`row_label`, else its name."""
        return self.row_label or self.name

    def metric_names(self) -> tuple[str, ...]:
        """The names of :attr:`metrics`, in order."""
        return tuple(metric.name for metric in self.metrics)


@dataclass
class Measurement:
    """What a group's ``compute`` gets: one method's explanation of the images of one
    batch that the group measures (see :class:`Needs`), and where its rows go.

    Every tensor holds only those images, in batch order.

    Attributes:
        group: the group measuring.
        method: the method's name.
        model: the network.
        target_layer: the layer explained.
        ids: the images' ids.
        inputs: the preprocessed images ``(n, 3, S, S)``.
        targets: the class explained per image ``(n,)`` (the label if known, else the
            top-1 class).
        predicted: the top-1 class per image ``(n,)``, on the CPU.
        maps: the method's maps ``(n, S, S)``.
        boxes: per image, its label's boxes in input pixels (empty: not needed).
        other_boxes: per image, the boxes of the other classes (empty: not needed).
        masks: per image, the union of its label's true masks in input pixels ``(S, S)``
            bool (empty: not needed).
        explanation: the method's explanation of the whole batch.
        probe: the batch's :class:`~axiomcam.metrics.AxiomProbe` (it probes the layer on
            first need, once for every method).
        parameters: every group's parameters, checked.
        seed: the run's seed.
        batch_size: perturbed copies per forward pass as given (``None``: each method's
            default).
        forward_options: options of the metrics' own forward passes (``batch_size`` as a
            number, no progress bar, and ``probability``: the model's head, how every
            metric reads ``p_c``); pass them on whole (``**forward_options``).
        results: the batch's result rows (:meth:`add` appends).
        curves: the batch's curve rows (:meth:`add_curve` appends).
        details: the run's details by key (:meth:`record` writes).
        shared: what groups share across the methods of one batch (a new dict per batch:
            the occlusion maps, computed once for every method).
    """

    group: MetricGroup
    method: str
    model: nn.Module
    target_layer: str
    ids: list[str]
    inputs: torch.Tensor
    targets: torch.Tensor
    predicted: torch.Tensor
    maps: torch.Tensor
    explanation: Explanation
    probe: AxiomProbe
    parameters: Mapping[str, Any]
    seed: int
    batch_size: int | None
    forward_options: Mapping[str, Any]
    results: list[ResultRow]
    curves: list[CurveRow]
    details: dict[str, Any]
    boxes: list[torch.Tensor] = field(default_factory=list)
    other_boxes: list[torch.Tensor] = field(default_factory=list)
    masks: list[torch.Tensor] = field(default_factory=list)
    shared: dict[Any, Any] = field(default_factory=dict)

    def add(self, metric: str, values: torch.Tensor, images: list[int] | None = None) -> None:
        """Store one value of ``metric`` per image (``values``: ``(n,)``), or per image of
        ``images`` (indices into :attr:`ids`: the others get no row of ``metric``).

        Raises:
            ValueError: a metric the group does not declare, or not one value per image.
        """
        if metric not in self.group.metric_names():
            raise ValueError(f"metric group {self.group.name!r} declares no metric "
                             f"{metric!r} (it declares {', '.join(self.group.metric_names())})")
        ids = self.ids if images is None else [self.ids[index] for index in images]
        listed = values.detach().double().cpu().reshape(-1).tolist()
        if len(listed) != len(ids):
            raise ValueError(f"{metric} of {self.method}: {len(listed)} values for "
                             f"{len(ids)} images")
        self.results += [ResultRow(image_id, self.method, metric, value)
                         for image_id, value in zip(ids, listed, strict=True)]

    def add_curve(self, curve: str, x: list[float], values: torch.Tensor) -> None:
        """Store one curve per image: ``values`` ``(n, len(x))`` at the abscissae ``x``.

        Raises:
            ValueError: a curve the group does not declare, or a row of another length
                than ``x``.
        """
        declared = [declared.name for declared in self.group.curves]
        if curve not in declared:
            raise ValueError(f"metric group {self.group.name!r} declares no curve {curve!r}")
        table = values.detach().double().cpu().reshape(len(self.ids), -1).tolist()
        xs = [float(value) for value in x]
        for image_id, row in zip(self.ids, table, strict=True):
            if len(row) != len(xs):
                raise ValueError(f"{curve} of {self.method}: {len(row)} points for "
                                 f"{len(xs)} x values")
            self.curves += [CurveRow(image_id, self.method, curve, step, position, value)
                            for step, (position, value) in enumerate(zip(xs, row, strict=True))]

    def record(self, value: Any) -> None:
        """Keep ``value`` (JSON data) for this method in the run's details, under the
        group's :attr:`~MetricGroup.details` key."""
        if self.group.details is None:
            raise ValueError(f"metric group {self.group.name!r} declares no details key")
        self.details.setdefault(self.group.details, {})[self.method] = value


def percent(flags: torch.Tensor) -> torch.Tensor:
    """100 where ``flags`` is true, 0 where false, in float64 (a mean is then a %)."""
    return flags.double() * 100.0


def check_count(value: object, name: str) -> int:
    """An int ``>= 0`` (how many images), else a ValueError naming ``name``.

    Examples:
        >>> check_count(0, "sanity_images")
        0
    """
    return check_positive_int(value, name, minimum=0)


def check_optional_count(value: object, name: str) -> int | None:
    """``None`` or an int ``>= 1``, else a ValueError naming ``name``.

    Examples:
        >>> check_optional_count(None, "sanity_steps") is None
        True
    """
    return None if value is None else check_positive_int(value, name)


def check_number_in(low: float, high: float, *,
                    above_low: bool = False) -> Callable[[object, str], float]:
    """A check of a number in ``[low, high]`` (``(low, high]`` with ``above_low``: a
    noise scale of 0 would divide by zero) for the protocols' parameters.

    Examples:
        >>> check_number_in(0, 1)(1.5, "iou_threshold")
        Traceback (most recent call last):
        ...
        ValueError: iou_threshold must be a number in [0, 1], got 1.5
        >>> check_number_in(0, math.inf, above_low=True)(0, "lipschitz_std")
        Traceback (most recent call last):
        ...
        ValueError: lipschitz_std must be a number in (0, inf], got 0
    """
    opening = "(" if above_low else "["

    def check(value: object, name: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value) or not low <= value <= high \
                or (above_low and value == low):
            raise ValueError(f"{name} must be a number in {opening}{low:g}, {high:g}], "
                             f"got {value!r}")
        return value

    return check
