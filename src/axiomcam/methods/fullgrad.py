"""FullGrad (Srinivas & Fleuret, NeurIPS 2019): the input-gradient plus the bias-gradient
of every layer with a bias, each post-processed and summed.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> from axiomcam.methods.fullgrad import bias_layers
    >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
    ...                       nn.Conv2d(4, 4, 3, bias=False), nn.Flatten(), nn.Linear(16, 2))
    >>> [name for name, _ in bias_layers(model)]
    ['0', '1', '5']
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field

import torch
from torch import nn

from ..support import check_scores
from ..targets import ResolvedTargets, TargetSpec, resolve_targets
from .base import Explainer, PartialResult
from .context import score_gradients
from .maps import minmax_scale, upsample

__all__ = ["FullGrad", "FullGradients", "bias_layers", "layer_bias"]

#: the layers whose output is an affine function with a bias of their input, per channel
_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def layer_bias(module: nn.Module) -> torch.Tensor | None:
    """The per-channel bias ``b`` of ``module``'s output ``y = W x + b`` (``None``: none).

    A convolution's or a linear layer's own bias; a batch norm in eval mode, folded
    (``y = gamma (x - mu) / sqrt(var + eps) + beta``): ``b = beta - gamma mu / sqrt(var +
    eps)`` (``gamma = 1``, ``beta = 0`` without affine parameters).

    Examples:
        >>> norm = nn.BatchNorm1d(1).eval()
        >>> _ = norm.running_mean.fill_(2.0), norm.running_var.fill_(4.0 - norm.eps)
        >>> layer_bias(norm).tolist()
        [-1.0]
    """
    if isinstance(module, _BATCH_NORMS):
        if module.running_mean is None or module.running_var is None:
            return None  # normalised by batch statistics: no fixed bias
        scale = torch.rsqrt(module.running_var + module.eps)
        if module.weight is not None:
            scale = scale * module.weight
        shift = -module.running_mean * scale
        return shift if module.bias is None else shift + module.bias
    if isinstance(module, (*_CONVOLUTIONS, nn.Linear)) and module.bias is not None:
        return module.bias
    return None


def bias_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The ``(qualified name, module)`` of every layer of ``model`` with a bias
    (:func:`layer_bias`): convolutions, linear layers, batch norms with running statistics."""
    return [(name, module) for name, module in model.named_modules()
            if layer_bias(module) is not None]


@dataclass(eq=False)
class _OutputRecorder:
    """Forward hook keeping every call's output in the graph (and its layer's bias)."""

    outputs: list[torch.Tensor] = field(default_factory=list)
    biases: list[torch.Tensor] = field(default_factory=list)

    def __call__(self, module: nn.Module, args: object, output: object) -> torch.Tensor:
        if not torch.is_tensor(output):
            raise TypeError(f"the bias layer {type(module).__name__} returns "
                            f"{type(output).__name__}, not a tensor")
        self.outputs.append(output)
        self.biases.append(layer_bias(module).detach())
        # a copy flows on, so an in-place op after the layer (ReLU(inplace=True)) cannot
        # turn the recorded output into the activation's
        return output.clone()


@dataclass
class FullGradients:
    """The full-gradient decomposition of a batch's target scores ``(B, n)``.

    ``input_gradient`` ``(B, n, C, *spatial)`` is ``dy^c/dx``; ``bias_gradients`` holds,
    per call of a bias layer, ``(B, n, K, *layer_spatial)``: ``dy^c/dz * b`` (``z`` the
    layer's output, ``b`` its bias on the channel axis ``K``). For a network that is
    piecewise linear in ``x`` (ReLU, max-pool, convolutions, linear layers, batch norms in
    eval mode), the completeness identity of the paper holds:
    ``y^c = sum(dy^c/dx * x) + sum_l sum(bias_gradients[l])``.
    """

    input_gradient: torch.Tensor
    bias_gradients: list[torch.Tensor]
    layers: list[str]
    scores: torch.Tensor
    targets: ResolvedTargets


class FullGrad(Explainer):
    """FullGrad (Srinivas & Fleuret, "Full-Gradient Representation for Neural Network
    Visualization", NeurIPS 2019).

    ``S^c(x) = psi(|dy^c/dx * x|) + sum_l sum_k psi(|dy^c/dz_l * b_l|_k)``, the sum over
    every layer ``l`` with a bias (:func:`bias_layers`) whose output ``z_l`` is laid out
    like the input (``(B, K, *spatial)``: convolutions and batch norms; a linear layer's
    bias counts in the decomposition, :meth:`decompose`, not in the map), ``psi`` the
    paper's post-processing: the absolute value min-max scaled per image over all channels
    and positions of the term, bilinearly upsampled to the input, then summed over its
    channels. ``raw`` ``(B, H, W)`` is that sum; ``maps`` is ``minmax(raw)``. There is no
    target layer and no channel weights. Cost: one forward and one backward pass through
    the whole network per target.

    Examples:
        >>> import torch, torchvision
        >>> from axiomcam.methods import FullGrad
        >>> model = torchvision.models.resnet18(num_classes=10)
        >>> exp = FullGrad(model)(torch.rand(2, 3, 64, 64))
        >>> exp.maps.shape, exp.raw.shape, exp.target_layer
        (torch.Size([2, 64, 64]), torch.Size([2, 64, 64]), None)
    """

    name = "fullgrad"
    title = "FullGrad"
    cost = "input gradient"

    @property
    def target_layer(self) -> None:
        """FullGrad explains the input with every bias layer: no target layer."""
        return None

    def decompose(self, inputs: torch.Tensor,
                  targets: TargetSpec | ResolvedTargets) -> FullGradients:
        """The :class:`FullGradients` of ``inputs`` for ``targets`` (one forward pass with
        every bias layer hooked, the hooks removed on return, and one backward pass per
        target), in the caller's eval mode."""
        layers = bias_layers(self.model)
        recorders = [_OutputRecorder() for _ in layers]
        leaf = inputs.detach().clone().requires_grad_(True)
        with ExitStack() as stack:
            for (_, module), recorder in zip(layers, recorders, strict=True):
                stack.callback(module.register_forward_hook(recorder).remove)
            stack.enter_context(torch.enable_grad())
            output = self.forward(leaf)
        if not isinstance(targets, ResolvedTargets):
            targets = resolve_targets(targets, output, inputs.shape[0], select=self.output)
        rows = torch.arange(inputs.shape[0], device=inputs.device)
        with torch.enable_grad():
            scores = check_scores(targets.scores(output, rows))
        if not scores.requires_grad:
            raise ValueError("the target score is not differentiable with respect to the input")
        names = [name for (name, _), recorder in zip(layers, recorders, strict=True)
                 for _ in recorder.outputs]
        outputs = [out for recorder in recorders for out in recorder.outputs]
        biases = [bias for recorder in recorders for bias in recorder.biases]
        gradients = score_gradients(scores, [leaf, *outputs], counterfactual=self.counterfactual,
                                    allow_unused=True)
        input_gradient = torch.stack([_zero_if_none(g[0], leaf) for g in gradients], dim=1)
        bias_gradients = [
            torch.stack([_zero_if_none(g[index + 1], out) for g in gradients], dim=1)
            * bias.view(-1, *[1] * (out.dim() - 2))
            for index, (out, bias) in enumerate(zip(outputs, biases, strict=True))]
        return FullGradients(input_gradient, bias_gradients, names, scores.detach(), targets)

    def explain_batch(self, inputs: torch.Tensor,
                      targets: TargetSpec | ResolvedTargets) -> PartialResult:
        parts = self.decompose(inputs, targets)
        size = tuple(inputs.shape[2:])
        raw = _post_process(parts.input_gradient * inputs[:, None], size)
        for term in _spatial_terms(parts.bias_gradients, inputs.dim()):
            raw = raw + _post_process(term, size)
        return PartialResult(raw=raw, channel_weights=None, scores=parts.scores,
                             targets=parts.targets, target_layer=None)

    def final_maps(self, partial: PartialResult,
                   inputs: torch.Tensor) -> tuple[torch.Tensor, None]:
        return minmax_scale(partial.raw, "FullGrad map"), None


def _zero_if_none(gradient: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    # a layer the target does not depend on (another head's) has no gradient
    return torch.zeros_like(like) if gradient is None else gradient


def _spatial_terms(terms: list[torch.Tensor], input_dims: int) -> Iterator[torch.Tensor]:
    """The bias-gradients laid out like the input, ``(B, n, K, *spatial)``."""
    return (term for term in terms if term.dim() == input_dims + 1)


def _post_process(term: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """``psi``: ``|term|`` ``(B, n, K, *spatial)`` min-max scaled per image and target over
    all its channels and positions, upsampled to ``size``, summed over channels ->
    ``(B, n, *size)``."""
    magnitude = term.abs()
    flat = magnitude.flatten(2)
    low = flat.amin(-1, keepdim=True)
    span = (flat.amax(-1, keepdim=True) - low).clamp_min(torch.finfo(term.dtype).tiny)
    scaled = ((flat - low) / span).view_as(magnitude)
    # upsampling is linear: summing the channels first gives the same map, K times cheaper
    return upsample(scaled.sum(2), size)
