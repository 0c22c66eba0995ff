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
from ..support import Progress, check_inputs, check_model, check_scores, eval_mode, progress_bar
from ..targets import ResolvedTargets, TargetSpec, resolve_targets
from .capture import TargetLayer, record_layers
from .engine import AblationCache, PerturbationEngine, check_batch_size

__all__ = [
    "LayerContext", "capture_layer", "noisy_gradient_moments", "score_curvatures",
    "score_gradients", "share_gradients",
]


#: one derivative per leaf (``None``: the score does not depend on that leaf)
Derivatives = tuple[torch.Tensor | None, ...]


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


def score_curvatures(scores: torch.Tensor, leaves: Sequence[torch.Tensor], *,
                     counterfactual: bool = False) -> list[tuple[Derivatives, Derivatives]]:
    """The gradient ``g = dy^c/dA`` and the Hessian-vector product ``H A`` (``H =
    d^2 y^c / dA^2``, the vector the leaf's own value) of each target's score with respect to
    each leaf, one pair per target (column of ``scores`` ``(B, n)``), detached: what
    Shapley-CAM's second-order Taylor expansion needs.

    The backward pass keeps its graph (``create_graph``) so that ``g`` can be differentiated
    once more; ``H A`` is then ``d <g, stop(A)> / dA``, one more backward pass through the
    network after the leaf (Pearlmutter's trick: ``H`` is never formed). Each leaf gets its
    own product (no cross terms between layers). A gradient that does not depend on the
    leaf (a linear head) gives ``H A = 0``; ``None`` where the score does not depend on the
    leaf at all. With ``counterfactual`` both are of ``-y^c`` (``-g`` and ``-H A``). No
    parameter's ``.grad`` is touched.

    Examples:
        >>> import torch
        >>> leaf = torch.tensor([[2.0, 3.0]], requires_grad=True)
        >>> scores = (leaf[:, :1] ** 2 * leaf[:, 1:])  # y = a^2 b: g = (2ab, a^2)
        >>> (gradient,), (product,) = score_curvatures(scores, [leaf])[0]
        >>> gradient.tolist(), product.tolist()  # H = [[2b, 2a], [2a, 0]], H (a, b)
        ([[12.0, 4.0]], [[24.0, 8.0]])
    """
    sign = -1.0 if counterfactual else 1.0
    results = []
    with torch.enable_grad():
        for column in range(scores.shape[1]):
            gradients = torch.autograd.grad(sign * scores[:, column].sum(), leaves,
                                            create_graph=True, allow_unused=True)
            products = tuple(_hessian_product(gradient, leaf)
                             for gradient, leaf in zip(gradients, leaves, strict=True))
            results.append((tuple(None if gradient is None else gradient.detach()
                                  for gradient in gradients), products))
    return results


def _hessian_product(gradient: torch.Tensor | None, leaf: torch.Tensor) -> torch.Tensor | None:
    """``H A``: the derivative of ``<gradient, A>`` (``A`` held constant) with respect to
    the leaf ``A``; zero when the gradient does not depend on it."""
    if gradient is None:
        return None
    if not gradient.requires_grad:
        return torch.zeros_like(leaf)
    product, = torch.autograd.grad(gradient, leaf, grad_outputs=leaf.detach(),
                                   retain_graph=True, allow_unused=True)
    return torch.zeros_like(leaf) if product is None else product.detach()


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
        second_order: :meth:`hessian_vector_products` is available (the backward pass
            keeps its graph for a second one, :func:`score_curvatures`).
        engine: the :class:`~axiomcam.methods.engine.PerturbationEngine` that runs the
            batch's perturbed copies (its ``layer`` is the target layer).
    """

    def __init__(self, engine: PerturbationEngine, inputs: torch.Tensor,
                 activation: torch.Tensor, scores: torch.Tensor, targets: ResolvedTargets,
                 output: object, *, counterfactual: bool = False,
                 second_order: bool = False) -> None:
        self.engine = engine
        self.counterfactual = counterfactual
        self.second_order = second_order
        self._hessian_products: torch.Tensor | None = None
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
                       select: OutputSelector = None, counterfactual: bool = False,
                       second_order: bool = False) -> list[LayerContext]:
        """One forward pass with every engine's layer captured: the context of each layer,
        sharing the model's output, the targets and the scores (arguments as for
        :meth:`capture`; the engines share the model and its ``forward``). With
        ``gradients``, :func:`share_gradients` takes every layer's gradient in one
        backward pass per target (with ``second_order`` also every layer's ``H A``)."""
        layers = [engine.layer for engine in engines]
        activations, output = record_layers(layers, engines[0].forward, inputs,
                                            gradients=gradients)
        if not isinstance(targets, ResolvedTargets):
            targets = resolve_targets(targets, output, inputs.shape[0], select=select)
        rows = torch.arange(inputs.shape[0], device=inputs.device)
        with torch.enable_grad() if gradients else nullcontext():
            scores = check_scores(targets.scores(output, rows))
        return [cls(engine, inputs, activation, scores, targets, output,
                    counterfactual=counterfactual, second_order=second_order)
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

    def hessian_vector_products(self) -> torch.Tensor:
        """``(B, n, K, S)``: ``H A`` for each target, ``H = d^2 y^c / dA^2`` the Hessian of
        the score with respect to the layer's output and ``A`` that output (``-H A`` in a
        counterfactual context), from :func:`score_curvatures` (taken together with
        :meth:`gradients`, in the pass that computes them).

        Raises:
            ValueError: the context was captured without ``second_order``, or its
                gradients were already taken (the graph is gone).
        """
        if self._hessian_products is None:
            if not self.second_order or self._gradients is not None:
                raise ValueError(
                    "Hessian-vector products need a context captured with second_order=True "
                    "before its gradients are taken (the backward pass must keep its graph)")
            share_gradients([self])
        return self._hessian_products

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
    When every context is ``second_order``, each also gets its ``H A``
    (:meth:`~LayerContext.hessian_vector_products`, :func:`score_curvatures`).

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
    counterfactual = contexts[0].counterfactual
    if all(context.second_order for context in contexts):
        derivatives = score_curvatures(scores, leaves, counterfactual=counterfactual)
    else:
        derivatives = [(gradients, (None,) * len(leaves)) for gradients in score_gradients(
            scores, leaves, allow_unused=True, counterfactual=counterfactual)]
    columns: list[list[torch.Tensor]] = [[] for _ in contexts]
    products: list[list[torch.Tensor | None]] = [[] for _ in contexts]
    for gradients, hessian_products in derivatives:
        for index, (context, gradient) in enumerate(zip(contexts, gradients, strict=True)):
            if gradient is None:
                raise ValueError(
                    f"the target score does not depend on the target layer's output "
                    f"({context.target_layer!r}): is the layer on the path from the input "
                    "to the output?"
                )
            columns[index].append(gradient.flatten(2))
            product = hessian_products[index]
            products[index].append(None if product is None else product.flatten(2))
    for context, kept, hessian in zip(contexts, columns, products, strict=True):
        context._gradients = torch.stack(kept, dim=1)
        if hessian[0] is not None:
            context._hessian_products = torch.stack(hessian, dim=1)
        context._scores_with_graph = scores.detach()  # frees the graph


def noisy_gradient_moments(context: LayerContext, samples: int, std: float,
                           generator: torch.Generator, *, powers: Sequence[int] = (1, 2, 3),
                           description: str = "Noisy gradients") -> list[torch.Tensor]:
    """``[(1/N) sum_i G_i^p for p in powers]``, each ``(B, n, K, S)``: the moments of the
    gradient ``G_i = dy^c/dA`` at the context's layer over ``N = samples`` noisy copies
    of the batch, ``x + delta_i`` with ``delta_i ~ N(0, std^2)`` drawn from ``generator``
    for every input element (SmoothGrad's noise, Smilkov et al. 2017).  The targets are
    the context's, resolved on the clean images.  Per sample: one forward pass of the
    whole batch and one backward pass per target that stops at the layer (a
    counterfactual context gives moments of ``-G``); a progress bar counts the samples.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                       nn.Flatten(), nn.Linear(4, 2))
        >>> context = capture_layer(model, torch.rand(1, 3, 8, 8), targets=1, target_layer="1")
        >>> first, = noisy_gradient_moments(context, 3, 0.1, torch.Generator(), powers=(1,))
        >>> torch.allclose(first, context.gradients())  # linear after the layer: G constant
        True
    """
    totals: list[torch.Tensor] = []
    inputs = context.inputs
    with progress_bar(context.engine.progress, samples, description) as bar:
        for _ in range(samples):
            noise = torch.randn(inputs.shape, generator=generator, device=inputs.device,
                                dtype=inputs.dtype)
            noisy = LayerContext.capture(context.engine, inputs + std * noise, context.targets,
                                         gradients=True, counterfactual=context.counterfactual)
            gradients = noisy.gradients()
            moments = [gradients.pow(power) for power in powers]
            totals = moments if not totals else [
                total + moment for total, moment in zip(totals, moments, strict=True)]
            bar.update(1)
    return [total / samples for total in totals]


def capture_layer(model: nn.Module, inputs: torch.Tensor, targets: TargetSpec = None,
                  target_layer: str | nn.Module | None = None, *, gradients: bool = True,
                  batch_size: int | None = None, progress: Progress = None,
                  ablation_cache: AblationCache | None = None,
                  second_order: bool = False) -> LayerContext:
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
        second_order: make :meth:`LayerContext.hessian_vector_products` available too.

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
        contexts = LayerContext.capture_layers([engine], inputs, targets,
                                               gradients=gradients or second_order,
                                               second_order=second_order)
        return contexts[0]
