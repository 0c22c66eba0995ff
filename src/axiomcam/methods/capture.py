"""Capturing a target layer: the forward hook that records (or replaces) the layer's output
as a ``(B, C, *spatial)`` grid, the context manager that always removes it, and
:class:`TargetLayer`, what the methods know about the layer of one model across calls.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> from axiomcam.methods.capture import LayerCapture, capturing
    >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    >>> with capturing(model[1], LayerCapture()) as capture, torch.no_grad():
    ...     output = model(torch.rand(2, 3, 8, 8))
    >>> capture.calls, capture.activation.shape
    (1, torch.Size([2, 4, 6, 6]))
    >>> len(model[1]._forward_hooks)  # removed on leaving the block
    0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from ..layers import RESHAPES, LayerLayout, find_default_layer, layer_layout, resolve_layer
from ..support import warn

__all__ = ["LayerCapture", "TargetLayer", "capturing", "record_layers", "target_layers"]

#: what ``target_layer=`` takes: a name, a module, ``None`` (the default layer), or a list
#: or tuple of names and modules (several layers at once)
LayerSpec = str | nn.Module | Sequence[str | nn.Module] | None

_CHANNELS_FIRST = LayerLayout("channels_first")


@dataclass(eq=False)
class LayerCapture:
    """Forward hook on the target layer.

    Records the output of the layer's *last* call (a module can be called several times in
    one forward; its last call is the one closest to the output), as the ``(B, C,
    *spatial)`` grid of its :class:`~axiomcam.layers.LayerLayout` (transformer tokens laid
    on their grid, channels-last outputs permuted; convolutional outputs as they are).
    With ``enable_grad`` the model runs under ``torch.no_grad()`` and the hook switches
    autograd on, so only the part of the network after the target layer is recorded, and
    the recorded grid is a leaf: gradients are taken with respect to it and nothing else.
    When an earlier target layer's hook has switched autograd on already (several target
    layers in one pass), the grid is kept in the graph instead of cut from it, so that the
    gradient with respect to the earlier layer still flows through this one.
    With a ``replacement`` grid, the output of the call number ``replace_at_call`` is
    swapped for it, put back in the layer's own form (Ablation-CAM's ablated copies; a
    transformer's class token is kept as it was).

    Attributes:
        grad_from_call: the first call that records autograd. A module called several
            times (EfficientNet's shared activation) needs it only from its last call on;
            the caller passes the call count it saw last time.
        layout_for: ``(module, output) -> LayerLayout`` (``None``: channels first).
        calls: how often the layer ran so far.
        activation: the recorded grid (``None`` before the layer runs, or when replacing).
        layout: the layout of the layer's last output.
    """

    enable_grad: bool = False
    replace_at_call: int = 0
    replacement: torch.Tensor | None = None
    grad_from_call: int = 1
    layout_for: Callable[[nn.Module, torch.Tensor], LayerLayout] | None = None
    calls: int = field(default=0, init=False)
    activation: torch.Tensor | None = field(default=None, init=False)
    layout: LayerLayout = field(default_factory=lambda: _CHANNELS_FIRST, init=False)

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
            if grid.requires_grad:  # after another target layer: stay in its graph
                self.activation = grid
                return layout.from_grid(grid.clone(), rest)
            self.activation = grid.detach().requires_grad_(True)
            # a copy flows on, so an in-place op after the layer (ReLU(inplace=True))
            # cannot modify the leaf we differentiate against
            return layout.from_grid(self.activation.clone(),
                                    None if rest is None else rest.detach())
        # a copy, so an in-place op after the layer cannot change what we recorded
        self.activation = grid.detach().clone()
        return None


@contextmanager
def capturing(module: nn.Module, capture: LayerCapture) -> Iterator[LayerCapture]:
    """Register ``capture`` as a forward hook of ``module`` for the ``with`` block; the hook
    is removed on leaving it, also when the block raises."""
    handle = module.register_forward_hook(capture)
    try:
        yield capture
    finally:
        handle.remove()


class TargetLayer:
    """A model's target layer as the methods see it, kept across calls: the module and its
    qualified name, how its output becomes the ``(B, C, *spatial)`` grid, and what the
    forward passes taught about it.

    Args:
        model: the network.
        layer: a qualified name (``"layer4"``), the module itself, or ``None`` for the last
            layer with a ``(B, C, h, w)`` output with ``h*w > 1``, chosen on the first
            :meth:`record` (see :func:`axiomcam.layers.find_default_layer`).
        reshape: ``None``, ``"tokens"``, ``"channels_last"`` or ``"channels_first"`` (see
            :class:`~axiomcam.methods.BaseCAM`).
        grid: ``(h, w)`` of a token layer (``None``: inferred).

    Attributes:
        name: the layer's qualified name (``None`` until the default layer is chosen).
        module: the layer (``None`` likewise).
        calls: how often the layer ran in the last forward pass (its last call is the one
            captured; ablated copies replace that call).
        suffix_batches: whether the layers after this one run on a batch of copies of one
            image's output (``None``: not known yet; found out by
            :class:`~axiomcam.methods.engine.PerturbationEngine` on its first ablation).

    Examples:
        >>> import torch, torchvision
        >>> layer = TargetLayer(torchvision.models.resnet18(num_classes=4).eval(), "layer3")
        >>> activation, output = layer.record(layer.model, torch.rand(1, 3, 64, 64),
        ...                                   gradients=False)
        >>> layer.name, activation.shape, layer.calls
        ('layer3', torch.Size([1, 256, 4, 4]), 1)
    """

    def __init__(self, model: nn.Module, layer: str | nn.Module | None = None, *,
                 reshape: str | None = None, grid: tuple[int, int] | None = None) -> None:
        if reshape is not None and reshape not in RESHAPES:
            raise ValueError(f"unknown reshape {reshape!r}; known: {', '.join(RESHAPES)}")
        self.model = model
        self.reshape = reshape
        self.grid = grid
        self.name: str | None = None
        self.module: nn.Module | None = None
        if layer is not None:
            self.name, self.module = resolve_layer(model, layer)
        self.input_size: tuple[int, ...] = ()
        self.calls = 1
        self.suffix_batches: bool | None = None

    def reset(self) -> None:
        """Forget what the forward passes taught (call count, suffix batching)."""
        self.calls = 1
        self.suffix_batches = None

    def layout_for(self, module: nn.Module, output: torch.Tensor) -> LayerLayout:
        """The layout of ``output``, the layer's output for the last recorded input size."""
        return layer_layout(module, output, self.input_size, reshape=self.reshape,
                            grid=self.grid, name=self.name)

    def capture(self, **options: object) -> LayerCapture:
        """A :class:`LayerCapture` that sees the output through this layer's layout
        (``options`` as for :class:`LayerCapture`)."""
        return LayerCapture(layout_for=self.layout_for, **options)

    def resolve(self, inputs: torch.Tensor) -> nn.Module:
        """The layer's module, choosing the default layer for ``inputs`` if none was given."""
        if self.module is None:
            self.name, self.module = resolve_layer(self.model,
                                                   find_default_layer(self.model, inputs))
        return self.module

    def record(self, forward: Callable[[torch.Tensor], object], inputs: torch.Tensor, *,
               gradients: bool) -> tuple[torch.Tensor, object]:
        """Run ``forward(inputs)`` once and return the layer's output grid ``(B, C,
        *spatial)`` and the model's output (:func:`record_layers` of this layer alone).

        With ``gradients`` the grid is a leaf that the output depends on through autograd
        recorded after the layer only; the part of the network before it runs without.

        Raises:
            ValueError: the layer did not run, or its output is no ``(B, C, ...)`` grid.
        """
        (activation,), output = record_layers([self], forward, inputs, gradients=gradients)
        return activation, output

    def _check_grid(self, activation: torch.Tensor, batch: int) -> None:
        dims = len(self.input_size) + 2
        if activation.dim() != dims or activation.shape[0] != batch:
            wanted = {3: "a (B, C, l) output for 1D signals (B, C, L), as a Conv1d gives",
                      5: "a (B, C, t, h, w) output for 3D inputs (B, C, T, H, W)"}.get(
                dims, "a (B, C, h, w) output (or (B, tokens, C) in transformers)")
            raise ValueError(
                f"the target layer {self.name!r} outputs shape {tuple(activation.shape)} "
                f"for inputs with spatial size {self.input_size}; a CAM needs {wanted}: "
                "choose a convolutional or transformer-block layer"
            )
        if math.prod(activation.shape[2:]) == 1:
            warn(
                f"the target layer {self.name!r} has a 1x1 output: every map is "
                "constant; choose an earlier layer"
            )


def target_layers(model: nn.Module, layer: LayerSpec, *, reshape: str | None = None,
                  grid: tuple[int, int] | None = None) -> list[TargetLayer]:
    """The :class:`TargetLayer` of each layer ``layer`` names: one for a name, a module or
    ``None``; one per item for a list or tuple (a list of one layer is that layer).

    Raises:
        ValueError: an empty list, ``None`` in a list, a layer listed twice (by name or as
            the same module), an unknown name (:func:`~axiomcam.layers.resolve_layer`).
        TypeError: an item that is neither a name nor a module.

    Examples:
        >>> import torchvision
        >>> model = torchvision.models.resnet18()
        >>> [layer.name for layer in target_layers(model, ["layer3", model.layer4])]
        ['layer3', 'layer4']
        >>> target_layers(model, ["layer4", model.layer4])
        Traceback (most recent call last):
        ...
        ValueError: target_layer lists layer 'layer4' twice: give each layer once
    """
    if not isinstance(layer, list | tuple):
        return [TargetLayer(model, layer, reshape=reshape, grid=grid)]
    if not layer:
        raise ValueError("target_layer is an empty list: give one layer, several, or None "
                         "for the default layer")
    if any(item is None for item in layer):
        raise ValueError(f"target_layer lists None ({list(layer)!r}): a list names each "
                         "layer; None alone asks for the default layer")
    layers = [TargetLayer(model, item, reshape=reshape, grid=grid) for item in layer]
    seen: set[int] = set()
    for target in layers:
        if id(target.module) in seen:
            raise ValueError(f"target_layer lists layer {target.name!r} twice: give each "
                             "layer once")
        seen.add(id(target.module))
    return layers


def record_layers(layers: Sequence[TargetLayer], forward: Callable[[torch.Tensor], object],
                  inputs: torch.Tensor, *, gradients: bool) -> tuple[list[torch.Tensor], object]:
    """Run ``forward(inputs)`` once with every layer of ``layers`` captured; each layer's
    output grid ``(B, C, *spatial)`` and the model's output.

    With ``gradients``, autograd is recorded from the first target layer that runs on:
    that layer's grid is a leaf, the grids of the layers after it stay in its graph, so
    one backward pass gives the gradient with respect to every layer (see
    :class:`LayerCapture`). Every hook is removed on return, also when the model raises.

    Raises:
        ValueError: a layer did not run, or its output is no ``(B, C, ...)`` grid.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU(), nn.Conv1d(4, 4, 3), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(4, 3))
        >>> layers = [TargetLayer(model, "1"), TargetLayer(model, "3")]
        >>> (first, second), output = record_layers(layers, model, torch.rand(2, 2, 16),
        ...                                         gradients=True)
        >>> first.is_leaf, second.is_leaf, tuple(second.shape)
        (True, False, (2, 4, 12))
    """
    modules = [layer.resolve(inputs) for layer in layers]
    captures = []
    for layer in layers:
        layer.input_size = tuple(inputs.shape[2:])
        captures.append(layer.capture(enable_grad=gradients, grad_from_call=layer.calls))
    with ExitStack() as stack:
        for module, capture in zip(modules, captures, strict=True):
            stack.enter_context(capturing(module, capture))
        stack.enter_context(torch.no_grad())
        output = forward(inputs)
    pairs = list(zip(layers, captures, strict=True))
    fewer = [layer for layer, capture in pairs if 0 < capture.calls < layer.calls]
    if gradients and fewer:
        # fewer calls than last time: autograd was never switched on there; run again with
        # it on from the first call (forward-only methods need no second pass)
        for layer in fewer:
            layer.calls = 1
        return record_layers(layers, forward, inputs, gradients=gradients)
    for layer, capture in pairs:
        layer.calls = max(capture.calls, 1)
        if capture.calls == 0:
            raise ValueError(
                f"the target layer {layer.name!r} was not called during the forward "
                "pass: choose a layer the model uses"
            )
        layer._check_grid(capture.activation, inputs.shape[0])
    return [capture.activation for capture in captures], output
