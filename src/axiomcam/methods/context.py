"""The layer context of one batch: what a CAM method may use to compute its map (the
target layer's activations ``A``, the gradients ``G = dy^c/dA``, the target scores ``y^c``,
the channel-ablated scores), and :func:`capture_layer`, which gives it for any model.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> from axiomcam.methods import capture_layer
    >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
    ...                       nn.Flatten(), nn.Linear(8, 10))
    >>> context = capture_layer(model, torch.rand(2, 3, 16, 16), targets=3, target_layer="1")
    >>> context.activations.shape, context.gradients().shape, context.scores.shape
    (torch.Size([2, 8, 196]), torch.Size([2, 1, 8, 196]), torch.Size([2, 1]))
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import torch
from torch import nn

from ..outputs import OutputSelector
from ..support import Progress, check_inputs, check_model, check_scores, eval_mode
from ..targets import ResolvedTargets, TargetSpec, resolve_targets
from .capture import TargetLayer, record_layers
from .engine import AblationCache, PerturbationEngine, check_batch_size

__all__ = ["LayerContext", "capture_layer", "score_gradients", "share_gradients"]


def score_gradients(scores: torch.Tensor, leaves: Sequence[torch.Tensor], *,
                    counterfactual: bool = False, allow_unused: bool = False
                    ) -> list[tuple[torch.Tensor | None, ...]]:
    """The gradient of each target's score with respect to ``leaves``, one backward pass
    per target (column of ``scores`` ``(B, n)``; the graph is freed after the last):
    ``d y^c / d leaf``, or with ``counterfactual`` its negation ``d(-y^c) / d leaf``.

    This is the one place where a counterfactual explanation (Selvaraju et al., 2017) is
    made: every gradient method (and the guided-backprop pass of a guided CAM) takes its
    ``G`` from here, so a counterfactual map is the method's own formula applied to
    ``-G``, the evidence *against* the class.

    Examples:
        >>> import torch
        >>> leaf = torch.tensor([2.0, 3.0], requires_grad=True)
        >>> scores = (leaf[0] * leaf[1]).reshape(1, 1)
        >>> score_gradients(scores, [leaf], counterfactual=True)[0][0].tolist()
        [-3.0, -2.0]
    """
    sign = -1.0 if counterfactual else 1.0  # exact: the backward pass only flips signs
    count = scores.shape[1]
    return [torch.autograd.grad(sign * scores[:, column].sum(), leaves,
                                retain_graph=column < count - 1, allow_unused=allow_unused)
            for column in range(count)]


class LayerContext:
    """What a CAM method may use to compute its map for one batch.

    Attributes:
        inputs: ``(B, C, H, W)`` the batch (``(B, C, L)`` 1D signals, ``(B, C, T, H, W)``
            clips).
        activations: ``(B, K, S)`` the target layer's output, spatial axes flattened
            (``S = h * w``; ``l`` or ``t * h * w``); ``spatial_shape`` holds ``(h, w)``.
        scores: ``(B, n)`` the target scores ``y^c`` (``n`` targets per image).
        targets: the resolved targets (``targets.classes`` is ``(B, n)`` or ``None``).
        output: the model's output for the batch, detached.
        counterfactual: :meth:`gradients` is ``-dy^c/dA`` (see :func:`score_gradients`).
        engine: the :class:`~axiomcam.methods.engine.PerturbationEngine` that runs the
            batch's perturbed copies (its ``layer`` is the target layer).
    """

    def __init__(self, engine: PerturbationEngine, inputs: torch.Tensor,
                 activation: torch.Tensor, scores: torch.Tensor, targets: ResolvedTargets,
                 output: object, *, counterfactual: bool = False) -> None:
        self.engine = engine
        self.counterfactual = counterfactual
        self._activation_leaf = activation
        self._scores_with_graph = scores
        self._gradients: torch.Tensor | None = None
        self.inputs = inputs
        self.spatial_shape = tuple(activation.shape[2:])
        self.activations = activation.detach().flatten(2)
        self.scores = scores.detach()
        self.targets = targets
        self.output = output.detach() if torch.is_tensor(output) else output

    @classmethod
    def capture(cls, engine: PerturbationEngine, inputs: torch.Tensor,
                targets: TargetSpec | ResolvedTargets, *, gradients: bool,
                select: OutputSelector = None, counterfactual: bool = False) -> LayerContext:
        """Run the batch once with ``engine.layer`` captured and resolve the targets.

        Args:
            engine: runs the model (and later the perturbed copies) at its layer.
            inputs: ``(B, C, H, W)`` the batch (checked by the caller).
            targets: a target spec (see :func:`axiomcam.explain`) or resolved targets.
            gradients: record autograd after the layer, for :meth:`gradients`.
            select: where class targets find the scores in the model's output.
            counterfactual: :meth:`gradients` gives ``-dy^c/dA``.
        """
        return cls.capture_layers([engine], inputs, targets, gradients=gradients,
                                  select=select, counterfactual=counterfactual)[0]

    @classmethod
    def capture_layers(cls, engines: Sequence[PerturbationEngine], inputs: torch.Tensor,
                       targets: TargetSpec | ResolvedTargets, *, gradients: bool,
                       select: OutputSelector = None, counterfactual: bool = False
                       ) -> list[LayerContext]:
        """One forward pass with every engine's layer captured: the context of each layer,
        sharing the model's output, the targets and the scores (arguments as for
        :meth:`capture`; the engines share the model and its ``forward``). With
        ``gradients``, :func:`share_gradients` takes every layer's gradient in one
        backward pass per target."""
        layers = [engine.layer for engine in engines]
        activations, output = record_layers(layers, engines[0].forward, inputs,
                                            gradients=gradients)
        if not isinstance(targets, ResolvedTargets):
            targets = resolve_targets(targets, output, inputs.shape[0], select=select)
        rows = torch.arange(inputs.shape[0], device=inputs.device)
        with torch.enable_grad() if gradients else nullcontext():
            scores = check_scores(targets.scores(output, rows))
        return [cls(engine, inputs, activation, scores, targets, output,
                    counterfactual=counterfactual)
                for engine, activation in zip(engines, activations, strict=True)]

    @property
    def target_layer(self) -> str | None:
        """The qualified name of the target layer."""
        return self.engine.layer.name

    @property
    def batch_size(self) -> int:
        """``B``, the number of images."""
        return self.activations.shape[0]

    @property
    def num_channels(self) -> int:
        """``K``, the number of channels of the layer's output."""
        return self.activations.shape[1]

    def gradients(self) -> torch.Tensor:
        """``(B, n, K, S)``: ``dy^c / dA`` for each target (``-dy^c / dA`` in a
        counterfactual context), from one backward per target that stops at the target
        layer."""
        if self._gradients is None:
            share_gradients([self])
        return self._gradients

    def channel_ablation_scores(self) -> torch.Tensor:
        """``(B, n, K)``: ``y^c(A without channel k)`` for every image, target and channel
        (channel ``k`` of the target layer's output set to 0, the rest of the network
        re-run on it, in eval mode).  Zeroing a channel that is already all zero leaves the
        layer's output unchanged, so its score is ``y^c`` exactly and no pass is run for
        it.  With the engine's :class:`~axiomcam.methods.AblationCache`, a batch already
        ablated by another explainer (same inputs tensor, layer and classes) is not
        ablated again."""
        cache = self.engine.ablation_cache
        key = None
        if cache is not None and self.targets.classes is not None:
            key = (self.target_layer, id(self.inputs), self.inputs._version,
                   self.targets.score, tuple(self.targets.classes.flatten().tolist()))
            if key in cache:
                return cache[key].clone()
        with eval_mode(self.engine.layer.model):
            result = self._ablate_every_channel()
        if key is not None:
            cache[key] = result.clone()
        return result

    def _ablate_every_channel(self) -> torch.Tensor:
        activations = self._activation_leaf.detach()
        result = self.scores[..., None].repeat(1, 1, self.num_channels)
        nonzero = self.activations.ne(0).any(-1)  # (B, K)
        size = self.engine.copies_per_pass(activations[0].numel() * activations.element_size())
        for image, channels in self.engine.chunks(nonzero, "Ablation", size):
            copies = activations[image:image + 1].repeat(
                channels.shape[0], *([1] * (activations.dim() - 1)))
            copies[torch.arange(channels.shape[0], device=channels.device), channels] = 0
            result[image, :, channels] = self.engine.layer_output_scores(
                self.inputs, image, copies, self.targets.scores,
                original=activations[image:image + 1], own_score=self.scores[image]).T
        return result


def share_gradients(contexts: Sequence[LayerContext]) -> None:
    """Compute ``dy^c / dA`` of every context's layer in one backward pass per target, for
    contexts of one forward pass (:meth:`LayerContext.capture_layers`): afterwards each
    context's :meth:`~LayerContext.gradients` returns its own, and the graph is freed.
    Counterfactual contexts get ``-dy^c/dA`` (all of them, or none, are counterfactual).

    Raises:
        ValueError: the scores do not depend differentiably on the layers, or not on one of
            them (named); counterfactual and plain contexts mixed.
    """
    contexts = [context for context in contexts if context._gradients is None]
    if not contexts:
        return
    if len({context.counterfactual for context in contexts}) > 1:
        raise ValueError("the contexts of one pass are all counterfactual or none are: "
                         "share_gradients takes one backward pass for all of them")
    scores = contexts[0]._scores_with_graph
    if not scores.requires_grad:
        raise ValueError(
            "the target score does not depend differentiably on the target layer's "
            "output (the model or the target detaches it?)"
        )
    leaves = [context._activation_leaf for context in contexts]
    columns: list[list[torch.Tensor]] = [[] for _ in contexts]
    for gradients in score_gradients(scores, leaves, allow_unused=True,
                                     counterfactual=contexts[0].counterfactual):
        for context, gradient, kept in zip(contexts, gradients, columns, strict=True):
            if gradient is None:
                raise ValueError(
                    f"the target score does not depend on the target layer's output "
                    f"({context.target_layer!r}): is the layer on the path from the input "
                    "to the output?"
                )
            kept.append(gradient.flatten(2))
    for context, kept in zip(contexts, columns, strict=True):
        context._gradients = torch.stack(kept, dim=1)
        context._scores_with_graph = scores.detach()  # frees the graph


def capture_layer(model: nn.Module, inputs: torch.Tensor, targets: TargetSpec = None,
                  target_layer: str | nn.Module | None = None, *, gradients: bool = True,
                  batch_size: int | None = None, progress: Progress = None,
                  ablation_cache: AblationCache | None = None) -> LayerContext:
    """The :class:`LayerContext` of a batch at a layer, without a method: what the
    explainers compute their maps from, for measures that need ``A``, ``G`` or the
    channel-ablated scores themselves (:func:`axiomcam.metrics.axioms.probe_layer`).

    One forward pass in eval mode (with ``gradients``: autograd recorded only after the
    layer); :meth:`LayerContext.gradients` then takes one backward pass that stops at the
    layer, and :meth:`LayerContext.channel_ablation_scores` runs the ``K`` ablated copies
    per image through the layers after it, in batches.

    Args:
        model: the network.
        inputs: ``(B, C, H, W)`` preprocessed images.
        targets: as for :func:`axiomcam.explain` (``None``: each image's top class).
        target_layer: as for :func:`axiomcam.explain` (``None``: the default layer).
        gradients: make :meth:`LayerContext.gradients` available.
        batch_size: ablated copies per forward pass (``None``: as many as fit in
            :data:`axiomcam.methods.engine.ABLATION_COPY_BYTES`).
        progress: a progress bar over the ablation passes.
        ablation_cache: shares the channel-ablated scores with Ablation-CAM explainers of
            the same batch.

    Raises:
        TypeError, ValueError: what :func:`axiomcam.explain` rejects (a bad model, input,
            layer, target or ``batch_size``), and a list of layers (one layer at a time).

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                       nn.Flatten(), nn.Linear(4, 10))
        >>> context = capture_layer(model, torch.rand(1, 3, 8, 8), targets=2, target_layer="1")
        >>> context.target_layer, context.channel_ablation_scores().shape
        ('1', torch.Size([1, 1, 4]))
    """
    model = check_model(model)
    check_batch_size(batch_size)
    if isinstance(target_layer, list | tuple):
        raise ValueError(
            f"capture_layer (and the axioms probe) works at one layer; got target_layer="
            f"{list(target_layer)!r}: call it once per layer")
    layer = TargetLayer(model, target_layer)
    inputs = check_inputs(model, inputs)
    engine = PerturbationEngine(layer, batch_size=batch_size, progress=progress,
                                ablation_cache=ablation_cache)
    with eval_mode(model):
        return LayerContext.capture(engine, inputs, targets, gradients=gradients)
