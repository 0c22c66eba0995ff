"""The explainers' base classes: :class:`Explainer` (checks, eval mode, targets, extra
inputs, smoothing, the final :class:`~axiomcam.Explanation`), :class:`BaseCAM` (a class
activation map at a target layer, computed from its :class:`LayerContext`) and
:class:`GradientCAM` (a CAM from ``A`` and ``G = dy^c/dA``).  A method only says how its
map is computed from what the layer context hands it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import nn

from ..explanation import Explanation
from ..outputs import OutputSelector
from ..support import Progress, check_inputs, check_model, eval_mode
from ..targets import ResolvedTargets, TargetSpec, resolve_targets
from .augment import augment_batch, average_augmented, tile_extra_inputs, tile_targets
from .capture import LayerSpec, target_layers
from .context import LayerContext, share_gradients
from .engine import AblationCache, PerturbationEngine, check_batch_size, model_output
from .maps import fuse_maps, minmax_scale, principal_projection, upsample, weighted_sum

__all__ = ["BaseCAM", "Explainer", "GradientCAM", "PartialResult", "check_counterfactual",
           "counterfactual_methods"]


@dataclass
class PartialResult:
    """One batch explained, always with a target axis ``n`` (squeezed at the end); at
    several layers, each layer's result in ``layers`` (``raw`` and ``channel_weights`` are
    then ``None``)."""

    raw: torch.Tensor | None  # (B, n, *layer_spatial)
    channel_weights: torch.Tensor | None  # (B, n, K)
    scores: torch.Tensor  # (B, n)
    targets: ResolvedTargets
    target_layer: str | tuple[str, ...] | None
    guided: torch.Tensor | None = None  # (B, n, C, *input_spatial)
    layers: dict[str, PartialResult] | None = None


class Explainer:
    """Shared by every method: input checks, eval mode, targets, smoothing, final maps.

    Args:
        model: any ``torch.nn.Module`` (put in eval mode during each call, restored after).
        smooth: number of noisy copies to average (SmoothGrad-style); 0 = no smoothing.
        smooth_sigma: noise standard deviation as a fraction of each image's value range.
        seed: seed for the smoothing noise and a random method's draws (``None``: a fresh
            random seed per call).
        batch_size: how many perturbed copies one forward pass may hold (``None``:
            Score-CAM :data:`~axiomcam.methods.engine.DEFAULT_BATCH_SIZE` images;
            Ablation-CAM as many ablated copies of the layer's output as fit in
            :data:`~axiomcam.methods.engine.ABLATION_COPY_BYTES`, since only the layers
            after the target run on them).
        progress: show a progress bar on long perturbation work (``None``: only on a
            terminal and when there are more than a few batches), or a callable
            ``(done, total, description)`` told after every batch of perturbed copies.
        output: where class targets find the ``(B, num_classes)`` scores in the model's
            output (:func:`axiomcam.outputs.select_output`): ``None`` finds them (a
            tensor; a dict's, dataclass's or ``ModelOutput``'s ``"logits"`` or ``"out"``;
            a tuple's first tensor), a key or attribute name, a tuple position, or a
            callable. When given, target callables receive the selected part too.
        extra_inputs: more positional inputs of the model, after the image batch (text
            tokens of a visual-question-answering model, say): the model is called as
            ``model(images, *extra_inputs)`` and only the images are explained. A tensor
            whose first axis has the batch's length (or 1) pairs its rows with the images,
            and follows them into the perturbation passes; anything else is passed as is.
        counterfactual: explain the evidence *against* the target (Selvaraju et al.,
            2017, "Counterfactual explanations"): the method's formula applied to the
            negated gradient ``-dy^c/dA``, so the map shows the regions whose removal would
            raise the score. Only gradient methods (:attr:`has_counterfactual`) have this
            form; the others raise a ``ValueError`` naming the ones that do.
    """

    name: ClassVar[str] = ""
    #: how figures spell the method (``"Grad-CAM++"``)
    title: ClassVar[str] = ""
    #: what one explanation costs: a key of :data:`axiomcam.methods.registry.COSTS`
    cost: ClassVar[str] = "forward"
    #: other spellings :func:`axiomcam.methods.create` accepts
    aliases: ClassVar[tuple[str, ...]] = ()
    #: whether ``counterfactual=True`` is defined (the map is a formula of ``G``)
    has_counterfactual: ClassVar[bool] = False

    def __init__(self, model: nn.Module, *, smooth: int = 0, smooth_sigma: float = 0.15,
                 seed: int | None = None, batch_size: int | None = None,
                 progress: Progress = None, output: OutputSelector = None,
                 extra_inputs: Sequence[object] = (), counterfactual: bool = False,
                 aug_smooth: bool = False) -> None:
        self.model = check_model(model)
        if not isinstance(aug_smooth, bool):
            raise TypeError(f"aug_smooth must be True or False, not {aug_smooth!r}")
        #: whether each batch is explained under test-time augmentation and averaged
        self.aug_smooth = aug_smooth
        check_counterfactual(type(self), counterfactual)
        if isinstance(smooth, bool) or not isinstance(smooth, int) or smooth < 0:
            raise ValueError(f"smooth must be a non-negative int (noisy copies), got {smooth!r}")
        if not isinstance(smooth_sigma, int | float) or smooth_sigma < 0:
            raise ValueError(f"smooth_sigma must be a number >= 0, got {smooth_sigma!r}")
        check_batch_size(batch_size)
        if output is not None and (isinstance(output, bool)
                                   or not (isinstance(output, str | int) or callable(output))):
            raise TypeError(f"output must be None, a key or attribute name, a position or a "
                            f"callable, not {type(output).__name__}: {output!r}")
        if isinstance(extra_inputs, str | bytes) or not isinstance(extra_inputs, Sequence):
            raise TypeError(f"extra_inputs must be a tuple or list of the model's other "
                            f"inputs, not {type(extra_inputs).__name__}")
        self.smooth = smooth
        self.smooth_sigma = float(smooth_sigma)
        self.seed = seed
        self.batch_size = batch_size
        self.progress = progress
        self.output = output
        self.extra_inputs = tuple(extra_inputs)
        #: whether the maps show the evidence against the target (the gradient negated)
        self.counterfactual = counterfactual
        #: channel-ablated scores shared with other explainers of the same batch
        self.ablation_cache: AblationCache | None = None

    # context-manager sugar: nothing stays registered between calls, so there is little
    # to release, but `with` makes the object's lifetime explicit in user loops
    def __enter__(self) -> Explainer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop per-model caches (hooks never outlive a call)."""

    def forward(self, inputs: torch.Tensor, rows: torch.Tensor | None = None) -> object:
        """The model's output for ``inputs``, with the extra inputs of ``rows`` (the image
        each row of ``inputs`` is a copy of; ``None``: the batch itself), paired by
        :func:`~axiomcam.methods.engine.model_output` in every pass of every explainer."""
        return model_output(self.model, inputs, rows, extra_inputs=self.extra_inputs)

    def __call__(self, inputs: torch.Tensor, targets: TargetSpec = None) -> Explanation:
        """Explain ``inputs`` ``(B, C, H, W)`` for ``targets`` (see :func:`axiomcam.explain`)."""
        inputs = check_inputs(self.model, inputs)
        with eval_mode(self.model):
            if self.aug_smooth:
                explanation, several = self._explain_augmented(inputs, targets)
            else:
                partial = self._explain_noisy(inputs, targets)
                explanation, several = self._explanation(partial, inputs), partial.targets.several
        # one target per image: drop the target axis the way Explanation.target does
        return explanation if several else explanation.target(0)

    def _explain_noisy(self, inputs: torch.Tensor,
                       targets: TargetSpec | ResolvedTargets) -> PartialResult:
        if self.smooth:
            return self._explain_smoothed(inputs, targets)
        return self.explain_batch(inputs, targets)

    def _explain_augmented(self, inputs: torch.Tensor,
                           targets: TargetSpec) -> tuple[Explanation, bool]:
        # every augmented copy explains the targets chosen on the image itself
        resolved = self._resolve_on_clean(inputs, targets)
        copies, extra_inputs = augment_batch(inputs), self.extra_inputs
        self.extra_inputs = tile_extra_inputs(extra_inputs, inputs.shape[0])
        try:
            partial = self._explain_noisy(copies, tile_targets(resolved, inputs.shape[0]))
        finally:
            self.extra_inputs = extra_inputs
        return average_augmented(self._explanation(partial, copies), resolved), resolved.several

    def explain_batch(self, inputs: torch.Tensor,
                      targets: TargetSpec | ResolvedTargets) -> PartialResult:
        """One checked batch explained, in the caller's eval mode, without smoothing."""
        raise NotImplementedError

    def final_maps(self, partial: PartialResult,
                   inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``maps`` ``(B, n, H, W)`` in ``[0, 1]`` and ``guided`` (or ``None``) of a batch."""
        raise NotImplementedError

    def fused_maps(self, partial: PartialResult, layers: dict[str, Explanation],
                   inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``maps`` and ``guided`` of a batch explained at several layers, whose own
        explanations are ``layers`` (a guided method: the guided product of the fused map,
        which ``partial.guided`` holds)."""
        return self.final_maps(partial, inputs)

    def _resolve_on_clean(self, inputs: torch.Tensor, targets: TargetSpec) -> ResolvedTargets:
        if callable(targets) and not torch.is_tensor(targets):
            return resolve_targets(targets, None, inputs.shape[0], select=self.output)
        with torch.no_grad():
            output = self.forward(inputs)
        return resolve_targets(targets, output, inputs.shape[0], select=self.output)

    def _explain_smoothed(self, inputs: torch.Tensor,
                          targets: TargetSpec | ResolvedTargets) -> PartialResult:
        # every noisy copy explains the class chosen on the clean image
        resolved = targets if isinstance(targets, ResolvedTargets) else \
            self._resolve_on_clean(inputs, targets)
        generator = torch.Generator(device=inputs.device)
        if self.seed is None:
            generator.seed()
        else:
            generator.manual_seed(self.seed)
        dims = tuple(range(1, inputs.dim()))
        sigma = self.smooth_sigma * (inputs.amax(dim=dims, keepdim=True)
                                     - inputs.amin(dim=dims, keepdim=True))
        total: PartialResult | None = None
        for _ in range(self.smooth):
            noise = torch.randn(inputs.shape, generator=generator, device=inputs.device,
                                dtype=inputs.dtype)
            partial = self.explain_batch(inputs + sigma * noise, resolved)
            total = partial if total is None else _add(total, partial)
        return _scale(total, 1.0 / self.smooth)

    def _explanation(self, partial: PartialResult, inputs: torch.Tensor) -> Explanation:
        """The explanation of ``partial`` with its target axis (and each layer's, if any)."""
        def detached(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.detach()

        layers = None
        if partial.layers is not None:
            layers = {name: self._explanation(part, inputs)
                      for name, part in partial.layers.items()}
            maps, guided = self.fused_maps(partial, layers, inputs)
        else:
            maps, guided = self.final_maps(partial, inputs)
        return Explanation(
            maps=detached(maps), raw=detached(partial.raw),
            channel_weights=detached(partial.channel_weights),
            scores=detached(partial.scores), targets=detached(partial.targets.explained),
            target_layer=partial.target_layer, method=self.name, guided=detached(guided),
            logits=partial.targets.logits, layers=layers, selected=partial.targets.selected,
            counterfactual=self.counterfactual,
        )


def check_counterfactual(explainer: type[Explainer], counterfactual: object) -> None:
    """Refuse ``counterfactual`` unless it is a bool, and ``True`` for a method without a
    counterfactual form (the error names the methods that have one).

    Examples:
        >>> from axiomcam.methods import GradCAM, ScoreCAM
        >>> check_counterfactual(GradCAM, True)  # defined: nothing raised
        >>> check_counterfactual(ScoreCAM, True)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Score-CAM (scorecam) has no counterfactual form: ...
    """
    if not isinstance(counterfactual, bool):
        raise TypeError(f"counterfactual must be True or False, not {counterfactual!r}")
    if counterfactual and not explainer.has_counterfactual:
        title = explainer.title or explainer.__name__
        raise ValueError(
            f"{title} ({explainer.name}) has no counterfactual form: a counterfactual map "
            f"is a gradient CAM's formula applied to the negated gradient -dy/dA at the "
            f"target layer; the methods that have one: "
            f"{', '.join(counterfactual_methods())} and their guided forms")


def counterfactual_methods() -> list[str]:
    """The names of the methods with a counterfactual form (:attr:`Explainer.has_counterfactual`),
    found among the subclasses of :class:`Explainer`.

    Examples:
        >>> import axiomcam
        >>> counterfactual_methods()  # doctest: +NORMALIZE_WHITESPACE
        ['gradcam', 'xgradcam', 'gradcam++', 'hirescam', 'layercam', 'gradcamelementwise',
         'shapleycam', 'finercam']
    """
    names: list[str] = []
    pending = [Explainer]
    while pending:
        cls = pending.pop(0)
        if cls.has_counterfactual and cls.name and cls.name not in names:
            names.append(cls.name)
        pending.extend(cls.__subclasses__())
    return names


def _add(first: PartialResult, second: PartialResult) -> PartialResult:
    def plus(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
        return None if a is None else a + b

    layers = None if first.layers is None else {
        name: _add(part, second.layers[name]) for name, part in first.layers.items()}
    return replace(first, raw=plus(first.raw, second.raw),
                   channel_weights=plus(first.channel_weights, second.channel_weights),
                   scores=first.scores + second.scores, guided=plus(first.guided, second.guided),
                   layers=layers)


def _scale(partial: PartialResult, factor: float) -> PartialResult:
    def times(a: torch.Tensor | None) -> torch.Tensor | None:
        return None if a is None else a * factor

    layers = None if partial.layers is None else {
        name: _scale(part, factor) for name, part in partial.layers.items()}
    return replace(partial, raw=times(partial.raw),
                   channel_weights=times(partial.channel_weights),
                   scores=partial.scores * factor, guided=times(partial.guided), layers=layers)


class BaseCAM(Explainer):
    """A class activation map at a target layer.  Subclasses implement :meth:`compute`.

    Several layers at once: ``target_layer=["layer3", "layer4"]`` (names or modules)
    explains the batch at every layer from one forward pass (and, for gradient methods,
    one backward pass per target that reaches them all). ``Explanation.layers`` then holds
    each layer's explanation, equal to the one that layer alone gives, and
    ``Explanation.maps`` the fused map ``minmax(mean_l M_l)``, ``M_l`` each layer's
    ``maps`` (ReLU, upsampled to the input, min-max scaled); ``raw`` and
    ``channel_weights`` are per layer only (``None`` on the fused explanation), and
    ``target_layer`` is the tuple of names. This is the multi-layer fusion of Layer-CAM
    (Jiang et al., 2021) and pytorch-grad-cam's list of layers, with two differences:
    pytorch-grad-cam min-max scales each layer's map *before* resizing it (we scale after
    upsampling, so each layer's map is exactly its single-layer ``maps``), and the
    Layer-CAM paper (and torchcam's ``fuse_cams``) takes the element-wise *maximum* of
    maps whose shallow layers are scaled by ``tanh(2 M)``; the mean keeps every layer's
    share visible and needs no parameter.

    Args:
        model: any ``torch.nn.Module``.
        target_layer: a qualified name (``"layer4"``, ``"features.18"``), the module itself,
            ``None`` for the last layer with a ``(B, C, h, w)`` output with ``h*w > 1``
            (chosen on the first call, logged, and reported as ``target_layer``), or a
            list of names and modules (several layers; a list of one is that layer;
            ``reshape`` and ``grid`` apply to each).
        reshape: how the layer's output becomes the ``(B, C, *spatial)`` grid the map is
            computed on (:class:`~axiomcam.layers.LayerLayout`): ``None`` decides from the
            output (``(B, N, C)`` tokens of a vision transformer are laid on their grid,
            the class token set aside; a LayerNorm's ``(B, h, w, C)`` output, as in Swin,
            is channels-last; convolutional outputs are used as they are);
            ``"tokens"``, ``"channels_last"`` or ``"channels_first"`` force one.
        grid: ``(h, w)`` of a token layer (``None``: inferred from the token count and the
            input's aspect ratio).
        eigen_smooth: replace ``raw`` by the first principal component of the method's
            per-channel terms (:meth:`channel_terms`, ``w_k A^k`` for a channel-weight
            method) over the positions, instead of their sum (pytorch-grad-cam's
            ``eigen_smooth``; :func:`~axiomcam.methods.maps.principal_projection`, signed
            to correlate with the plain ``raw``). ``channel_weights`` stay the method's.
        **options: see :class:`Explainer` (``smooth``, ``smooth_sigma``, ``seed``,
            ``batch_size``, ``progress``, ``output``, ``extra_inputs``).
    """

    #: whether :meth:`compute` calls ``context.gradients()`` (the forward pass then records
    #: autograd after the target layer)
    needs_gradients: ClassVar[bool] = False
    #: whether :meth:`compute` also calls ``context.hessian_vector_products()`` (the
    #: backward pass then keeps its graph for a second one)
    needs_hessian: ClassVar[bool] = False
    #: whether the map is ``sum_k w_k A^k`` with channel weights (``Explanation.channel_weights``
    #: is set); XGrad-CAM's axioms are defined for these methods only
    has_channel_weights: ClassVar[bool] = True
    #: a method with variants is also named ``"name:variant"``, which sets this option
    #: to the variant (``"ablationcam:activation"`` is ``weights="activation"``)
    variant_option: ClassVar[str | None] = None
    variants: ClassVar[tuple[str, ...]] = ()
    #: whether the map is a sum over channels of terms (:meth:`channel_terms`), which
    #: ``eigen_smooth`` decomposes; ``False`` for the methods that are a decomposition
    has_channel_terms: ClassVar[bool] = True

    def __init__(self, model: nn.Module, target_layer: LayerSpec = None, *,
                 reshape: str | None = None, grid: tuple[int, int] | None = None,
                 eigen_smooth: bool = False, **options: object) -> None:
        super().__init__(model, **options)
        if not isinstance(eigen_smooth, bool):
            raise TypeError(f"eigen_smooth must be True or False, not {eigen_smooth!r}")
        if eigen_smooth and not self.has_channel_terms:
            raise ValueError(f"{self.title} ({self.name}) is already a decomposition of the "
                             "activations, not a sum of channel terms: eigen_smooth does not "
                             "apply to it")
        #: whether ``raw`` is the first principal component of the channel terms
        self.eigen_smooth = eigen_smooth
        #: the target layers (one unless ``target_layer`` lists several), with what the
        #: forward passes taught about each
        self.layers = target_layers(self.model, target_layer, reshape=reshape, grid=grid)
        #: the target layer (the first of several)
        self.layer = self.layers[0]

    @property
    def target_layer(self) -> str | tuple[str, ...] | None:
        """The target layer's qualified name (``None`` until the default one is chosen), or
        the tuple of the names of several layers."""
        if len(self.layers) > 1:
            return tuple(layer.name for layer in self.layers)
        return self.layer.name

    def close(self) -> None:
        """Forget what the forward passes taught about the layers (call count, batching)."""
        for layer in self.layers:
            layer.reset()

    def compute(self, context: LayerContext) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return ``raw`` ``(B, n, S)`` and ``channel_weights`` ``(B, n, K)`` (or ``None``)."""
        raise NotImplementedError

    def layer_contexts(self, inputs: torch.Tensor,
                       targets: TargetSpec | ResolvedTargets) -> list[LayerContext]:
        """The :class:`LayerContext` of a batch at each of this method's layers: one
        forward pass with every layer hooked (autograd after the first if
        :attr:`needs_gradients`, every layer's gradient then from one backward pass per
        target), the targets resolved, and per layer a
        :class:`~axiomcam.methods.engine.PerturbationEngine` with this method's
        ``batch_size``, ``progress`` and ``ablation_cache`` for its perturbed copies."""
        engines = [PerturbationEngine(layer, self.forward, batch_size=self.batch_size,
                                      progress=self.progress,
                                      ablation_cache=self.ablation_cache)
                   for layer in self.layers]
        contexts = LayerContext.capture_layers(engines, inputs, targets,
                                               gradients=self.needs_gradients,
                                               select=self.output,
                                               counterfactual=self.counterfactual,
                                               second_order=self.needs_hessian)
        if self.needs_gradients and len(contexts) > 1:
            share_gradients(contexts)
        return contexts

    def layer_context(self, inputs: torch.Tensor,
                      targets: TargetSpec | ResolvedTargets) -> LayerContext:
        """The :class:`LayerContext` of a batch at this method's (first) layer (see
        :meth:`layer_contexts`)."""
        return self.layer_contexts(inputs, targets)[0]

    def explain_batch(self, inputs: torch.Tensor,
                      targets: TargetSpec | ResolvedTargets) -> PartialResult:
        parts = [self._layer_result(context)
                 for context in self.layer_contexts(inputs, targets)]
        if len(parts) == 1:
            return parts[0]
        return PartialResult(raw=None, channel_weights=None, scores=parts[0].scores,
                             targets=parts[0].targets, target_layer=self.target_layer,
                             layers={part.target_layer: part for part in parts})

    def channel_terms(self, context: LayerContext,
                      channel_weights: torch.Tensor | None) -> torch.Tensor:
        """``(B, n, K, S)``: the terms whose sum over channels is ``raw``, ``w_k A^k`` by
        default (methods without channel weights override it)."""
        if channel_weights is None:
            raise ValueError(f"{self.title} ({self.name}) has no channel weights and does not "
                             "say its channel terms (channel_terms): eigen_smooth cannot "
                             "decompose its map")
        return channel_weights[..., None] * context.activations[:, None]

    def _layer_result(self, context: LayerContext) -> PartialResult:
        raw, channel_weights = self.compute(context)
        if self.eigen_smooth:
            terms = self.channel_terms(context, channel_weights)
            raw = principal_projection(terms.transpose(-1, -2))
        return PartialResult(
            raw=raw.detach().view(*raw.shape[:2], *context.spatial_shape),
            channel_weights=None if channel_weights is None else channel_weights.detach(),
            scores=context.scores, targets=context.targets, target_layer=context.target_layer,
        )

    def final_maps(self, partial: PartialResult,
                   inputs: torch.Tensor) -> tuple[torch.Tensor, None]:
        if partial.layers is not None:
            return fuse_maps([self.final_maps(part, inputs)[0]
                              for part in partial.layers.values()]), None
        maps = upsample(torch.relu(partial.raw), tuple(inputs.shape[2:]))
        return minmax_scale(maps), None

    def fused_maps(self, partial: PartialResult, layers: dict[str, Explanation],
                   inputs: torch.Tensor) -> tuple[torch.Tensor, None]:
        return fuse_maps([explanation.maps for explanation in layers.values()]), None


class GradientCAM(BaseCAM):
    """A CAM computed from the activations ``A`` and the gradients ``G = dy^c/dA``.

    Subclasses implement :meth:`channel_weights_from` (maps ``sum_k w_k A^k``) or, for
    element-wise methods, override :meth:`raw_from`. With ``counterfactual=True`` they
    receive ``-G`` (:func:`~axiomcam.methods.context.score_gradients`), so each method's
    counterfactual map is its own formula of the negated gradient.
    """

    needs_gradients: ClassVar[bool] = True
    cost: ClassVar[str] = "backward"
    #: the method's formula applied to ``-G`` is the counterfactual map
    has_counterfactual: ClassVar[bool] = True

    def channel_weights_from(self, activations: torch.Tensor,
                             gradients: torch.Tensor) -> torch.Tensor:
        """``(B, 1, K, S)`` activations and ``(B, n, K, S)`` gradients -> ``(B, n, K)``."""
        raise NotImplementedError

    def raw_from(self, activations: torch.Tensor,
                 gradients: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(B, 1, K, S)`` activations and ``(B, n, K, S)`` gradients -> the raw map
        ``(B, n, S)`` and the channel weights ``(B, n, K)`` (``None`` for element-wise
        methods): ``sum_k w_k A^k`` with :meth:`channel_weights_from`'s weights."""
        weights = self.channel_weights_from(activations, gradients)
        return weighted_sum(weights, activations[:, 0]), weights

    def compute(self, context: LayerContext) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.raw_from(context.activations[:, None], context.gradients())
