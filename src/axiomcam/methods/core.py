"""The machinery every method shares: hooks, forward/backward passes, targets, batching,
smoothing, upsampling and normalisation.  A method only says how its map is computed from
what the core hands it (:class:`LayerContext`)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import nn

from ..explanation import Explanation
from ..layers import (
    RESHAPES,
    LayerLayout,
    find_default_layer,
    layer_layout,
    resolve_layer,
)
from ..outputs import OutputSelector
from ..support import (
    Progress,
    check_inputs,
    check_model,
    check_scores,
    eval_mode,
    progress_bar,
    warn,
)
from ..targets import ResolvedTargets, TargetSpec, resolve_targets
from .maps import minmax_scale, minmax_scale_quiet, upsample, weighted_sum

logger = logging.getLogger("axiomcam")


#: perturbed images per whole-network forward pass (Score-CAM; Ablation-CAM's fallback).
#: On CPU a larger batch is not faster per image (ResNet-18 at 224, 2 threads: 29 ms per
#: image at 16, 33 ms at 64; Score-CAM 13.4 s vs 16.7 s), and memory grows with it.
DEFAULT_BATCH_SIZE = 16
#: Ablation-CAM and the axioms probe put as many ablated copies of the layer's output in
#: one pass as fit in this many bytes (only the layers after the target run on them)
ABLATION_COPY_BYTES = 128 * 2**20


@dataclass
class PartialResult:
    """One batch explained, always with a target axis ``n`` (squeezed at the end)."""

    raw: torch.Tensor | None  # (B, n, *layer_spatial)
    channel_weights: torch.Tensor | None  # (B, n, K)
    scores: torch.Tensor  # (B, n)
    targets: ResolvedTargets
    target_layer: str | None
    guided: torch.Tensor | None = None  # (B, n, C, *input_spatial)


class _ActivationCapture:
    """Forward hook on the target layer.

    Records the output of the layer's *last* call (a module can be called several times in
    one forward; its last call is the one closest to the output), as the ``(B, C,
    *spatial)`` grid of its :class:`~axiomcam.layers.LayerLayout` (transformer tokens laid
    on their grid, channels-last outputs permuted; convolutional outputs as they are).
    With ``enable_grad`` the model runs under ``torch.no_grad()`` and the hook switches
    autograd on, so only the part of the network after the target layer is recorded, and
    the recorded grid is a leaf: gradients are taken with respect to it and nothing else.
    With a ``replacement`` grid, the output of the call number ``replace_at_call`` is
    swapped for it, put back in the layer's own form (Ablation-CAM's ablated copies; a
    transformer's class token is kept as it was).
    """

    def __init__(self, enable_grad: bool = False, replace_at_call: int = 0,
                 replacement: torch.Tensor | None = None, grad_from_call: int = 1,
                 layout_for: Callable[[nn.Module, torch.Tensor], LayerLayout] | None = None
                 ) -> None:
        self.enable_grad = enable_grad
        self.replace_at_call = replace_at_call
        self.replacement = replacement
        # a module called several times (EfficientNet's shared activation) needs autograd
        # only from its last call on; the caller passes the call count it saw last time
        self.grad_from_call = grad_from_call
        self.layout_for = layout_for
        self.layout = _CHANNELS_FIRST
        self.calls = 0
        self.activation: torch.Tensor | None = None

    def __call__(self, module: nn.Module, args: object, output: object) -> torch.Tensor | None:
        if not torch.is_tensor(output):
            raise TypeError(
                f"the target layer {type(module).__name__} returns {type(output).__name__}, "
                "not a tensor: choose a layer whose output is a (B, C, h, w) tensor"
            )
        self.calls += 1
        layout = _CHANNELS_FIRST if self.layout_for is None else self.layout_for(module, output)
        self.layout = layout
        if self.replacement is not None:
            if self.calls != self.replace_at_call:
                return None
            _, rest = layout.to_grid(output)
            return layout.from_grid(self.replacement, None if rest is None else rest.detach())
        grid, rest = layout.to_grid(output)
        if self.enable_grad and self.calls >= self.grad_from_call:
            torch.set_grad_enabled(True)  # restored by the caller's torch.no_grad() exit
            self.activation = grid.detach().requires_grad_(True)
            # a copy flows on, so an in-place op after the layer (ReLU(inplace=True))
            # cannot modify the leaf we differentiate against
            return layout.from_grid(self.activation.clone(),
                                    None if rest is None else rest.detach())
        # a copy, so an in-place op after the layer cannot change what we recorded
        self.activation = grid.detach().clone()
        return None


_CHANNELS_FIRST = LayerLayout("channels_first")


@contextmanager
def _hooked(module: nn.Module, hook: _ActivationCapture) -> Iterator[_ActivationCapture]:
    handle = module.register_forward_hook(hook)
    try:
        yield hook
    finally:
        handle.remove()


# ----------------------------------------------------------------------------- context


class LayerContext:
    """What a CAM method may use to compute its map for one batch.

    Attributes:
        inputs: ``(B, C, H, W)`` the batch.
        activations: ``(B, K, S)`` the target layer's output, spatial axes flattened
            (``S = h * w``); ``spatial_shape`` holds ``(h, w)``.
        scores: ``(B, n)`` the target scores ``y^c`` (``n`` targets per image).
        targets: the resolved targets (``targets.classes`` is ``(B, n)`` or ``None``).
        output: the model's output for the batch, detached.
    """

    def __init__(self, explainer: BaseCAM, inputs: torch.Tensor, layer: nn.Module,
                 layer_calls: int, activation: torch.Tensor, scores: torch.Tensor,
                 targets: ResolvedTargets, output: object) -> None:
        self._explainer = explainer
        self._layer = layer
        self._layer_calls = layer_calls
        self._activation_leaf = activation
        self._scores_with_graph = scores
        self._gradients: torch.Tensor | None = None
        self.inputs = inputs
        self.spatial_shape = tuple(activation.shape[2:])
        self.activations = activation.detach().flatten(2)
        self.scores = scores.detach()
        self.targets = targets
        self.output = output.detach() if torch.is_tensor(output) else output

    @property
    def batch_size(self) -> int:
        return self.activations.shape[0]

    @property
    def num_channels(self) -> int:
        return self.activations.shape[1]

    def gradients(self) -> torch.Tensor:
        """``(B, n, K, S)``: ``dy^c / dA`` for each target, from one backward per target
        that stops at the target layer."""
        if self._gradients is None:
            scores = self._scores_with_graph
            if not scores.requires_grad:
                raise ValueError(
                    "the target score does not depend differentiably on the target layer's "
                    "output (the model or the target detaches it?)"
                )
            count = scores.shape[1]
            gradients = []
            for column in range(count):
                (gradient,) = torch.autograd.grad(
                    scores[:, column].sum(), self._activation_leaf,
                    retain_graph=column < count - 1, allow_unused=True,
                )
                if gradient is None:
                    raise ValueError(
                        "the target score does not depend on the target layer's output: is "
                        "the layer on the path from the input to the output?"
                    )
                gradients.append(gradient.flatten(2))
            self._gradients = torch.stack(gradients, dim=1)
            self._scores_with_graph = scores.detach()  # frees the graph
        return self._gradients

    # -- perturbations: the forward passes run here, batched, so methods stay small

    def _chunks(self, channels_per_image: list[torch.Tensor], description: str,
                size: int) -> Iterator[tuple[int, torch.Tensor]]:
        """``(image, channel_indices)`` chunks of at most ``size`` of each image's channels
        to run."""
        total = sum(math.ceil(channels.numel() / size) for channels in channels_per_image)
        with progress_bar(self._explainer.progress, total, description) as bar:
            for image, channels in enumerate(channels_per_image):
                for start in range(0, channels.numel(), size):
                    yield image, channels[start:start + size]
                    bar.update(1)

    def _channels_where(self, keep: torch.Tensor) -> list[torch.Tensor]:
        """Per image, the indices of the channels where ``keep`` ``(B, K)`` is true."""
        return [row.nonzero().flatten() for row in keep]

    def _run_replaced(self, model_inputs: torch.Tensor, replacement: torch.Tensor,
                      rows: torch.Tensor) -> object:
        capture = self._explainer._capture(replace_at_call=self._layer_calls,
                                           replacement=replacement)
        with _hooked(self._layer, capture), torch.no_grad():
            return self._explainer.forward(model_inputs, rows)

    def _scores_with_activation(self, image: int, replacement: torch.Tensor) -> torch.Tensor:
        """``(m, n)`` scores of image ``image`` with the target layer's output replaced by
        each of the ``m`` tensors in ``replacement``."""
        one_image = self.inputs[image:image + 1]
        rows = torch.full((replacement.shape[0],), image, dtype=torch.long,
                          device=self.inputs.device)
        if self._explainer._suffix_batches:
            # only the part after the layer sees the m copies: the prefix runs for 1 image
            return self.targets.scores(
                self._run_replaced(one_image, replacement, rows[:1]), rows)
        # the whole network per copy, in whole-network batches of at most batch_size
        size = self._explainer.batch_size or DEFAULT_BATCH_SIZE
        return torch.cat([
            self.targets.scores(self._run_replaced(
                one_image.expand(part.shape[0], *one_image.shape[1:]), part, part_rows),
                part_rows)
            for part, part_rows in zip(replacement.split(size), rows.split(size), strict=True)
        ])

    def _ablation_chunk_size(self) -> int:
        """Ablated copies per pass: ``batch_size`` if given, else as many as keep the copies
        of one image's layer output under :data:`ABLATION_COPY_BYTES` (the network before
        the layer runs once per chunk, so fewer, larger chunks are faster)."""
        if self._explainer.batch_size is not None:
            return self._explainer.batch_size
        one_copy = self._activation_leaf[0].numel() * self._activation_leaf.element_size()
        return max(1, ABLATION_COPY_BYTES // max(1, one_copy))

    def _ablated_scores(self, image: int, copies: torch.Tensor) -> torch.Tensor:
        """``(m, n)`` scores of image ``image`` with the layer's output replaced by each
        copy.  The first call also finds out whether the layers after the target can run
        on a batch of copies of one image's activation (models that reshape with the
        *input's* batch size cannot): the unablated activation rides along as one more
        copy and must give the image's own score back; if not, the whole network is re-run
        per copy from then on (same result, slower), and a warning says so once."""
        explainer = self._explainer
        if explainer._suffix_batches is not None:
            return self._scores_with_activation(image, copies)
        explainer._suffix_batches = True
        original = self._activation_leaf.detach()[image:image + 1]
        try:
            scores = self._scores_with_activation(image, torch.cat([copies, original]))
            own = self.scores[image]
            works = scores.shape[0] == copies.shape[0] + 1 and torch.allclose(
                scores[-1], own, rtol=1e-4, atol=1e-5 * float(own.abs().max().clamp_min(1.0)))
        except Exception as error:  # any failure means "cannot batch here"
            logger.debug("suffix batching failed: %r", error)
            works = False
        if works:
            return scores[:-1]
        explainer._suffix_batches = False
        warn(
            f"{type(explainer.model).__name__} cannot run the layers after "
            f"{explainer.target_layer!r} on a batch of copies of one image (it reshapes "
            "with the input's batch size?): the whole network is re-run per copy instead "
            "(same result, slower)"
        )
        return self._scores_with_activation(image, copies)

    def channel_ablation_scores(self) -> torch.Tensor:
        """``(B, n, K)``: ``y^c(A without channel k)`` for every image, target and channel
        (channel ``k`` of the target layer's output set to 0, the rest of the network
        re-run on it).  Zeroing a channel that is already all zero leaves the layer's
        output unchanged, so its score is ``y^c`` exactly and no pass is run for it.
        With the explainer's :class:`AblationCache`, a batch already ablated by another
        explainer (same inputs tensor, layer and classes) is not ablated again."""
        cache = self._explainer.ablation_cache
        key = None
        if cache is not None and self.targets.classes is not None:
            key = (self._explainer.target_layer, id(self.inputs), self.inputs._version,
                   tuple(self.targets.classes.flatten().tolist()))
            if key in cache:
                return cache[key].clone()
        result = self._ablate_every_channel()
        if key is not None:
            cache[key] = result.clone()
        return result

    def _ablate_every_channel(self) -> torch.Tensor:
        activations = self._activation_leaf.detach()
        result = self.scores[..., None].repeat(1, 1, self.num_channels)
        nonzero = self.activations.ne(0).any(-1)  # (B, K)
        for image, channels in self._chunks(self._channels_where(nonzero), "Ablation",
                                            self._ablation_chunk_size()):
            copies = activations[image:image + 1].repeat(
                channels.shape[0], *([1] * (activations.dim() - 1)))
            copies[torch.arange(channels.shape[0], device=channels.device), channels] = 0
            result[image, :, channels] = self._ablated_scores(image, copies).T
        return result

    def masked_input_probabilities(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Score-CAM's forward passes: ``(B, n, K)`` the target probability of
        ``x * M_k`` (``M_k`` channel ``k`` upsampled to the input and min-max scaled to
        [0, 1]) and ``(B, n)`` the probability of the all-zero baseline.  A channel that
        is constant over positions has an all-zero mask ``M_k`` (see :func:`minmax_scale`):
        its masked image *is* the baseline, so it gets the baseline's probability and no
        pass is run for it."""
        forward = self._explainer.forward
        input_size = tuple(self.inputs.shape[2:])
        activations = self.activations.view(self.batch_size, self.num_channels,
                                            *self.spatial_shape)
        all_images = torch.arange(self.batch_size, device=self.inputs.device)
        with torch.no_grad():
            baseline = self.targets.probabilities(
                forward(torch.zeros_like(self.inputs)), all_images)
            result = baseline[..., None].repeat(1, 1, self.num_channels)
            flat = self.activations
            varying = (flat.amax(-1) - flat.amin(-1)) > torch.finfo(flat.dtype).tiny
            size = self._explainer.batch_size or DEFAULT_BATCH_SIZE
            for image, channels in self._chunks(self._channels_where(varying), "Score-CAM",
                                                size):
                masks = upsample(activations[image:image + 1, channels], input_size)
                masks = minmax_scale_quiet(masks).transpose(0, 1)  # (m, 1, *input)
                masked = self.inputs[image:image + 1] * masks
                rows = torch.full((channels.shape[0],), image, dtype=torch.long,
                                  device=self.inputs.device)
                result[image, :, channels] = self.targets.probabilities(
                    forward(masked, rows), rows).T
        return check_scores(result), baseline


# ----------------------------------------------------------------------------- explainers


class AblationCache(dict):
    """Channel-ablated scores of one batch, shared by the explainers given it (set
    ``explainer.ablation_cache``): ``evaluate`` runs Ablation-CAM's two weight forms and
    the axioms probe on the same batch, and one sweep of the ``K`` ablations serves all
    three. Entries are keyed by the layer, the inputs tensor (identity and version) and
    the target classes; use a new cache per batch, since a freed tensor's id is reused.

    Example:
        >>> import torch, torchvision
        >>> from axiomcam.methods import AblationCAM
        >>> model = torchvision.models.resnet18(num_classes=4).eval()
        >>> inputs, cache = torch.rand(1, 3, 32, 32), AblationCache()
        >>> score_form = AblationCAM(model, "layer4")
        >>> activation_form = AblationCAM(model, "layer4", weights="activation")
        >>> score_form.ablation_cache = activation_form.ablation_cache = cache
        >>> maps = [cam(inputs, 2).maps for cam in (score_form, activation_form)]
        >>> len(cache)  # one sweep for both
        1
    """



class Explainer:
    """Shared by every method: input checks, eval mode, targets, smoothing, final maps.

    Args:
        model: any ``torch.nn.Module`` (put in eval mode during each call, restored after).
        smooth: number of noisy copies to average (SmoothGrad-style); 0 = no smoothing.
        smooth_sigma: noise standard deviation as a fraction of each image's value range.
        seed: seed for the smoothing noise (``None``: a fresh random seed per call).
        batch_size: how many perturbed copies one forward pass may hold (``None``:
            Score-CAM :data:`DEFAULT_BATCH_SIZE` images; Ablation-CAM as many ablated copies
            of the layer's output as fit in :data:`ABLATION_COPY_BYTES`, since only the
            layers after the target run on them).
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
    """

    name: ClassVar[str] = ""
    #: how figures spell the method (``"Grad-CAM++"``)
    title: ClassVar[str] = ""

    def __init__(self, model: nn.Module, *, smooth: int = 0, smooth_sigma: float = 0.15,
                 seed: int | None = None, batch_size: int | None = None,
                 progress: Progress = None, output: OutputSelector = None,
                 extra_inputs: Sequence[object] = ()) -> None:
        self.model = check_model(model)
        if isinstance(smooth, bool) or not isinstance(smooth, int) or smooth < 0:
            raise ValueError(f"smooth must be a non-negative int (noisy copies), got {smooth!r}")
        if not isinstance(smooth_sigma, int | float) or smooth_sigma < 0:
            raise ValueError(f"smooth_sigma must be a number >= 0, got {smooth_sigma!r}")
        if batch_size is not None and (isinstance(batch_size, bool)
                                       or not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
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
        #: channel-ablated scores shared with other explainers of the same batch
        self.ablation_cache: AblationCache | None = None
        self._paired_inputs: tuple[object, ...] = self.extra_inputs

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
        each row of ``inputs`` is a copy of; ``None``: the batch itself)."""
        if not self._paired_inputs:
            return self.model(inputs)
        extras = [
            extra.index_select(0, rows.to(extra.device))
            if rows is not None and torch.is_tensor(extra) and extra.dim() > 0 else extra
            for extra in self._paired_inputs
        ]
        return self.model(inputs, *extras)

    def _pair_extra_inputs(self, batch: int) -> None:
        """Expand batch-1 extra tensors to the batch, and check the others' length."""
        paired = []
        for position, extra in enumerate(self.extra_inputs):
            if torch.is_tensor(extra) and extra.dim() > 0:
                if extra.shape[0] == 1 and batch > 1:
                    extra = extra.expand(batch, *extra.shape[1:])
                elif extra.shape[0] != batch:
                    raise ValueError(
                        f"extra_inputs[{position}] has {extra.shape[0]} rows for a batch of "
                        f"{batch} images: give one row per image, or one for all")
            paired.append(extra)
        self._paired_inputs = tuple(paired)

    def __call__(self, inputs: torch.Tensor, targets: TargetSpec = None) -> Explanation:
        """Explain ``inputs`` ``(B, C, H, W)`` for ``targets`` (see :func:`axiomcam.explain`)."""
        inputs = check_inputs(self.model, inputs)
        self._pair_extra_inputs(inputs.shape[0])
        with eval_mode(self.model):
            if self.smooth:
                partial = self._explain_smoothed(inputs, targets)
            else:
                partial = self.explain_batch(inputs, targets)
            maps, guided = self.final_maps(partial, inputs)
        return self._explanation(partial, maps, guided)

    def explain_batch(self, inputs: torch.Tensor,
                      targets: TargetSpec | ResolvedTargets) -> PartialResult:
        raise NotImplementedError

    def final_maps(self, partial: PartialResult,
                   inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def _resolve_on_clean(self, inputs: torch.Tensor, targets: TargetSpec) -> ResolvedTargets:
        if callable(targets) and not torch.is_tensor(targets):
            return resolve_targets(targets, None, inputs.shape[0], select=self.output)
        with torch.no_grad():
            output = self.forward(inputs)
        return resolve_targets(targets, output, inputs.shape[0], select=self.output)

    def _explain_smoothed(self, inputs: torch.Tensor, targets: TargetSpec) -> PartialResult:
        # every noisy copy explains the class chosen on the clean image
        resolved = self._resolve_on_clean(inputs, targets)
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

    def _explanation(self, partial: PartialResult, maps: torch.Tensor,
                     guided: torch.Tensor | None) -> Explanation:
        def detached(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.detach()

        explanation = Explanation(
            maps=detached(maps), raw=detached(partial.raw),
            channel_weights=detached(partial.channel_weights),
            scores=detached(partial.scores), targets=detached(partial.targets.classes),
            target_layer=partial.target_layer, method=self.name, guided=detached(guided),
            logits=partial.targets.logits,
        )
        # one target per image: drop the target axis the way Explanation.target does
        return explanation if partial.targets.several else explanation.target(0)


def _add(first: PartialResult, second: PartialResult) -> PartialResult:
    def plus(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
        return None if a is None else a + b

    return replace(first, raw=plus(first.raw, second.raw),
                   channel_weights=plus(first.channel_weights, second.channel_weights),
                   scores=first.scores + second.scores, guided=plus(first.guided, second.guided))


def _scale(partial: PartialResult, factor: float) -> PartialResult:
    def times(a: torch.Tensor | None) -> torch.Tensor | None:
        return None if a is None else a * factor

    return replace(partial, raw=times(partial.raw),
                   channel_weights=times(partial.channel_weights),
                   scores=partial.scores * factor, guided=times(partial.guided))


class BaseCAM(Explainer):
    """A class activation map at a target layer.  Subclasses implement :meth:`compute`.

    Args:
        model: any ``torch.nn.Module``.
        target_layer: a qualified name (``"layer4"``, ``"features.18"``), the module itself,
            or ``None`` for the last layer with a ``(B, C, h, w)`` output with ``h*w > 1``
            (chosen on the first call, logged, and reported as ``target_layer``).
        reshape: how the layer's output becomes the ``(B, C, *spatial)`` grid the map is
            computed on (:class:`~axiomcam.layers.LayerLayout`): ``None`` decides from the
            output (``(B, N, C)`` tokens of a vision transformer are laid on their grid,
            the class token set aside; a LayerNorm's ``(B, h, w, C)`` output, as in Swin,
            is channels-last; convolutional outputs are used as they are);
            ``"tokens"``, ``"channels_last"`` or ``"channels_first"`` force one.
        grid: ``(h, w)`` of a token layer (``None``: inferred from the token count and the
            input's aspect ratio).
        **options: see :class:`Explainer` (``smooth``, ``smooth_sigma``, ``seed``,
            ``batch_size``, ``progress``, ``output``, ``extra_inputs``).
    """

    #: whether :meth:`compute` calls ``context.gradients()`` (the forward pass then records
    #: autograd after the target layer)
    needs_gradients: ClassVar[bool] = False
    #: whether the map is ``sum_k w_k A^k`` with channel weights (``Explanation.channel_weights``
    #: is set); XGrad-CAM's axioms are defined for these methods only
    has_channel_weights: ClassVar[bool] = True
    #: a method with variants is also named ``"name:variant"``, which sets this option
    #: to the variant (``"ablationcam:activation"`` is ``weights="activation"``)
    variant_option: ClassVar[str | None] = None
    variants: ClassVar[tuple[str, ...]] = ()
    #: what computing the map costs beyond the forward pass, for a method without
    #: gradients: a key of :data:`axiomcam.methods.registry.COSTS`
    cost: ClassVar[str] = "forward"
    #: other spellings :func:`axiomcam.methods.create` accepts
    aliases: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model: nn.Module, target_layer: str | nn.Module | None = None, *,
                 reshape: str | None = None, grid: tuple[int, int] | None = None,
                 **options: object) -> None:
        super().__init__(model, **options)
        if reshape is not None and reshape not in RESHAPES:
            raise ValueError(f"unknown reshape {reshape!r}; known: {', '.join(RESHAPES)}")
        self.reshape = reshape
        self.grid = grid
        self._input_size: tuple[int, ...] = ()
        self._layer_spec = target_layer
        self.target_layer: str | None = None
        self._layer: nn.Module | None = None
        if target_layer is not None:
            self.target_layer, self._layer = resolve_layer(self.model, target_layer)
        # whether the network after the layer runs on batches of copies of one image
        self._suffix_batches: bool | None = None
        # how often the layer ran in the last forward pass (it is taken at its last call)
        self._layer_calls = 1

    def close(self) -> None:
        self._suffix_batches = None
        self._layer_calls = 1

    def compute(self, context: LayerContext) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return ``raw`` ``(B, n, S)`` and ``channel_weights`` ``(B, n, K)`` (or ``None``)."""
        raise NotImplementedError

    def _layout_for(self, module: nn.Module, output: torch.Tensor) -> LayerLayout:
        return layer_layout(module, output, self._input_size, reshape=self.reshape,
                            grid=self.grid, name=self.target_layer)

    def _capture(self, **options: object) -> _ActivationCapture:
        """A hook on the target layer that sees its output through this method's layout."""
        return _ActivationCapture(layout_for=self._layout_for, **options)

    def _target_module(self, inputs: torch.Tensor) -> nn.Module:
        if self._layer is None:
            self.target_layer, self._layer = resolve_layer(
                self.model, find_default_layer(self.model, inputs))
        return self._layer

    def explain_batch(self, inputs: torch.Tensor,
                      targets: TargetSpec | ResolvedTargets) -> PartialResult:
        layer = self._target_module(inputs)
        self._input_size = tuple(inputs.shape[2:])
        capture = self._capture(enable_grad=self.needs_gradients,
                                grad_from_call=self._layer_calls)
        with _hooked(layer, capture), torch.no_grad():
            output = self.forward(inputs)
        if self.needs_gradients and 0 < capture.calls < self._layer_calls:
            # fewer calls than last time: autograd was never switched on; run again with
            # it on from the first call (forward-only methods need no second pass)
            self._layer_calls = 1
            return self.explain_batch(inputs, targets)
        self._layer_calls = max(capture.calls, 1)
        if capture.calls == 0:
            raise ValueError(
                f"the target layer {self.target_layer!r} was not called during the forward "
                "pass: choose a layer the model uses"
            )
        activation = capture.activation
        if activation.dim() not in (4, 5) or activation.shape[0] != inputs.shape[0]:
            raise ValueError(
                f"the target layer {self.target_layer!r} outputs shape "
                f"{tuple(activation.shape)}; a CAM needs a (B, C, h, w) output (or "
                "(B, C, t, h, w) in 3D networks, or (B, tokens, C) in transformers): choose "
                "a convolutional or transformer-block layer"
            )
        if math.prod(activation.shape[2:]) == 1:
            warn(
                f"the target layer {self.target_layer!r} has a 1x1 output: every map is "
                "constant; choose an earlier layer"
            )
        batch = inputs.shape[0]
        if not isinstance(targets, ResolvedTargets):
            targets = resolve_targets(targets, output, batch, select=self.output)
        rows = torch.arange(batch, device=inputs.device)
        with torch.enable_grad() if self.needs_gradients else nullcontext():
            scores = check_scores(targets.scores(output, rows))
        context = LayerContext(self, inputs, layer, capture.calls, activation, scores,
                               targets, output)
        raw, channel_weights = self.compute(context)
        return PartialResult(
            raw=raw.detach().view(*raw.shape[:2], *context.spatial_shape),
            channel_weights=None if channel_weights is None else channel_weights.detach(),
            scores=context.scores, targets=targets, target_layer=self.target_layer,
        )

    def final_maps(self, partial: PartialResult,
                   inputs: torch.Tensor) -> tuple[torch.Tensor, None]:
        maps = upsample(torch.relu(partial.raw), tuple(inputs.shape[2:]))
        return minmax_scale(maps), None


class GradientCAM(BaseCAM):
    """A CAM computed from the activations ``A`` and the gradients ``G = dy^c/dA``.

    Subclasses implement :meth:`channel_weights_from` (maps ``sum_k w_k A^k``) or, for
    element-wise methods, override :meth:`raw_from`.
    """

    needs_gradients: ClassVar[bool] = True

    def channel_weights_from(self, activations: torch.Tensor,
                             gradients: torch.Tensor) -> torch.Tensor:
        """``(B, 1, K, S)`` activations and ``(B, n, K, S)`` gradients -> ``(B, n, K)``."""
        raise NotImplementedError

    def raw_from(self, activations: torch.Tensor,
                 gradients: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        weights = self.channel_weights_from(activations, gradients)
        return weighted_sum(weights, activations[:, 0]), weights

    def compute(self, context: LayerContext) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.raw_from(context.activations[:, None], context.gradients())
