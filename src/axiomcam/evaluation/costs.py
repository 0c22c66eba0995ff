"""What a run of :func:`~axiomcam.evaluation.evaluate` costs, counted in passes of the
network, and the rule that picks the **cheap** metric groups and methods a run measures
when none are named.

Each metric group declares its cost per image and method as :class:`Passes` (the
group's ``passes``, a function of the run's parameters); each method's cost class
(:data:`axiomcam.methods.registry.COSTS`) has its :class:`Passes` in
:data:`METHOD_PASSES`. The rule (:meth:`Passes.cheap`):

    **cheap** = at most :data:`CHEAP_PASSES` passes of the whole network per image (and
    method), none of them repeated per channel of the layer or per block of the network.

A forward and a backward pass count as one pass each, and so does a noisy linear
imputation (ROAD's, a sparse solve that costs a few passes); an explanation by the method
(the sanity check's, per randomisation step) counts as two (a gradient method's forward and
backward pass). Passes of the network *after* the
target layer (the axioms probe's and Ablation-CAM's ``K`` channel ablations) do not count:
at the default layer (the last convolutional stage) they run the pooling and the
classifier only; the estimate printed before a run measures what they cost at the layer
given. A group or a cost class that declares no passes counts as expensive. A group or
method named in ``metrics=`` / ``methods=`` (``--metrics`` / ``--methods``) always runs,
and ``include_expensive=True`` (``--all``) takes the expensive ones too.

Examples:
    >>> Passes(whole=2).cheap, Passes(whole=102).cheap, Passes(whole=1, whole_per_channel=1).cheap
    (True, False, False)
    >>> Passes(whole=1, after_layer_per_channel=1).describe()
    '1 pass and K after the layer'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CHEAP_PASSES", "METHOD_PASSES", "Passes", "Selection", "method_passes",
           "select_cheap"]

#: the most passes of the whole network per image (and method) a cheap group or method
#: costs: explaining an image about twice more
CHEAP_PASSES = 4


@dataclass(frozen=True)
class Passes:
    """What one image costs (per method, for a metric group), in passes of the network.

    Attributes:
        whole: passes of the whole network (a forward or a backward pass: one each).
        whole_per_channel: passes of the whole network per channel of the target layer
            (Score-CAM's masked images).
        after_layer_per_channel: passes of the network after the target layer per channel
            (channel ablations).
        explanations: explanations of the image by the method itself (each costs the
            method's own passes).
        explanations_per_block: explanations per block of the network (the sanity check
            randomising every block).
        imputations: noisy linear imputations of the image (ROAD: a sparse solve each).
        shared: paid once per image for every method of the run (the axioms probe).
    """

    whole: float = 0.0
    whole_per_channel: float = 0.0
    after_layer_per_channel: float = 0.0
    explanations: float = 0.0
    explanations_per_block: float = 0.0
    imputations: float = 0.0
    shared: bool = False

    @property
    def cheap(self) -> bool:
        """The rule: at most :data:`CHEAP_PASSES` whole passes (an imputation counting as
        one, an explanation as two), none per channel or per block."""
        return (self.whole_per_channel == 0 and self.explanations_per_block == 0
                and self.whole + 2 * self.explanations + self.imputations <= CHEAP_PASSES)

    def describe(self) -> str:
        """The passes in a few words (``"102 passes"``, ``"1 + K passes"``)."""
        parts = []
        if self.whole or not any((self.whole_per_channel, self.explanations,
                                  self.explanations_per_block)):
            parts.append(f"{self.whole:g} pass{'' if self.whole == 1 else 'es'}")
        if self.whole_per_channel:
            whole = f"{self.whole:g} + " if self.whole else ""
            parts = [f"{whole}{_times(self.whole_per_channel)}K passes"]
        if self.after_layer_per_channel:
            parts.append(f"{_times(self.after_layer_per_channel)}K after the layer")
        if self.explanations:
            parts.append(f"{self.explanations:g} explanations")
        if self.explanations_per_block:
            parts.append(f"{_times(self.explanations_per_block)}one explanation per block")
        if self.imputations:
            parts.append(f"{self.imputations:g} imputations")
        return " and ".join(parts) + (", shared by the methods" if self.shared else "")


def _times(factor: float) -> str:
    return "" if factor == 1 else f"{factor:g} "


#: the passes of one explanation per image, by cost class of the method registry; a cost
#: class missing here counts as expensive
METHOD_PASSES: dict[str, Passes] = {
    "forward": Passes(whole=1),
    "backward": Passes(whole=2),
    "input gradient": Passes(whole=2),
    # a Hessian-vector product differentiates the backward pass: about two passes more
    "hessian": Passes(whole=4),
    "ablation": Passes(whole=1, after_layer_per_channel=1),
    "masking": Passes(whole=1, whole_per_channel=1),
    "noisy masking": Passes(whole=2, whole_per_channel=35),  # SS-CAM, num_samples=35
    "integrated masking": Passes(whole=2, whole_per_channel=10),  # IS-CAM, num_samples=10
    "noisy backward": Passes(whole=9),  # Smooth Grad-CAM++: 1 + 4 forward, 4 backward
}


def method_passes(cost: str) -> Passes | None:
    """The :class:`Passes` of a method's cost class (``MethodInfo.cost``), ``None`` when
    it declares none."""
    return METHOD_PASSES.get(cost)


@dataclass(frozen=True)
class Selection:
    """The names a run measures and the expensive ones the defaults left out."""

    chosen: list[str]
    left_out: list[str]


def select_cheap(candidates: Sequence[str], passes: Sequence[Passes | None], *,
                 include_expensive: bool) -> Selection:
    """The ``candidates`` whose ``passes`` are cheap (all of them with
    ``include_expensive``), and the others.

    Examples:
        >>> select_cheap(["gradcam", "scorecam"], [Passes(whole=2), None],
        ...              include_expensive=False)
        Selection(chosen=['gradcam'], left_out=['scorecam'])
    """
    chosen, left_out = [], []
    for name, cost in zip(candidates, passes, strict=True):
        (chosen if include_expensive or (cost is not None and cost.cheap) else left_out
         ).append(name)
    return Selection(chosen, left_out)
