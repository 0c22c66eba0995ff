"""Finding the target layer: by name, by module, or automatically."""

from __future__ import annotations

import difflib
import logging
import math

import torch
from torch import nn

logger = logging.getLogger("axiomcam")

LayerSpec = str | nn.Module | None


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """Return ``(qualified_name, module)`` for a layer given by name or as a module.

    Raises:
        ValueError: the name does not exist in ``model`` (near matches are listed), or the
            module is not part of ``model``.
        TypeError: ``layer`` is neither a string nor a module.

    Example:
        >>> import torchvision
        >>> from axiomcam.layers import resolve_layer
        >>> resolve_layer(torchvision.models.resnet18(), "layer4")[0]
        'layer4'
    """
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer and layer in modules:
            return layer, modules[layer]
        names = [name for name in modules if name]
        near = difflib.get_close_matches(layer, names, n=5, cutoff=0.6)
        hint = f" Near matches: {', '.join(near)}." if near else ""
        raise ValueError(
            f"target_layer {layer!r} does not exist in {type(model).__name__}.{hint} "
            "`axiomcam.layers.candidate_layers(model, inputs)` lists the usable layers."
        )
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules():
            if module is layer and name:
                return name, module
        raise ValueError(
            f"target_layer {type(layer).__name__} is not a submodule of "
            f"{type(model).__name__} (or is the model itself)."
        )
    raise TypeError(
        f"target_layer must be a layer name (str), an nn.Module or None, not "
        f"{type(layer).__name__}: {layer!r}"
    )


def _spatial_size(output: object) -> tuple[int, ...] | None:
    if torch.is_tensor(output) and output.dim() in (4, 5):
        return tuple(output.shape[2:])
    return None


def candidate_layers(model: nn.Module, inputs: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """Layers whose output is ``(B, C, h, w)`` (or ``(B, C, t, h, w)``) with more than one
    position, in call order: the layers a CAM can explain.

    Runs one forward pass on ``inputs`` (without autograd) and returns ``(name, shape)``
    for every such module; a module called several times appears at its last call.

    Example:
        >>> import torch, torchvision
        >>> from axiomcam.layers import candidate_layers
        >>> layers = candidate_layers(torchvision.models.resnet18(), torch.rand(1, 3, 64, 64))
        >>> layers[-1]
        ('layer4', (1, 512, 2, 2))
    """
    return [(name, tuple(out.shape)) for name, out in _record_calls(model, inputs)
            if (size := _spatial_size(out)) is not None and math.prod(size) > 1]


def _record_calls(model: nn.Module, inputs: torch.Tensor) -> list[tuple[str, object]]:
    """Each named module's output at its last call, in the order the calls ended."""
    return [(name, output) for name, (output, _) in _record_calls_with_inputs(model, inputs)]


def _record_calls_with_inputs(
    model: nn.Module, inputs: torch.Tensor
) -> list[tuple[str, tuple[object, object]]]:
    calls: dict[str, tuple[object, object]] = {}
    handles = []

    def make_hook(name: str):
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            calls.pop(name, None)  # re-insert so the dict keeps "last call" order
            calls[name] = (output, args[0] if args else None)

        return hook

    try:
        for name, module in model.named_modules():
            if name:
                handles.append(module.register_forward_hook(make_hook(name)))
        with torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return list(calls.items())


def find_default_layer(model: nn.Module, inputs: torch.Tensor) -> str:
    """The last layer whose output is ``(B, C, h, w)`` with ``h * w > 1``.

    Several nested modules often return the very same tensor (``layer4``, ``layer4.1``
    and ``layer4.1.relu`` in a ResNet; ``features`` and ``features.18`` in MobileNetV2).
    Among them this picks the outermost one that holds at most one downsampling step (its
    input is at most twice its output's size): the whole last stage (``layer4``) but not a
    container that also holds the earlier stages (``features``).  Between modules at the
    same depth the later call wins (an in-place ReLU after a convolution).

    Raises:
        ValueError: no layer has a spatial output with more than one position.
    """
    calls = _record_calls_with_inputs(model, inputs[:1])
    spatial = [
        name for name, (out, _) in calls
        if (size := _spatial_size(out)) is not None and math.prod(size) > 1
    ]
    if not spatial:
        raise ValueError(
            f"{type(model).__name__} has no layer with a (B, C, h, w) output with h*w > 1 for "
            f"inputs of shape {tuple(inputs.shape)}: CAMs need a spatial layer; pass "
            "target_layer explicitly."
        )
    order = {name: index for index, (name, _) in enumerate(calls)}
    recorded = dict(calls)
    last_output = recorded[spatial[-1]][0]
    final_size = _spatial_size(last_output)
    same_tensor = sorted(
        (name for name, (out, _) in calls if out is last_output),
        key=lambda name: (name.count("."), -order[name]),
    )

    def one_stage(name: str) -> bool:
        input_size = _spatial_size(recorded[name][1])
        return input_size is not None and len(input_size) == len(final_size) and all(
            i <= 2 * o for i, o in zip(input_size, final_size, strict=True))

    chosen = next((name for name in same_tensor if one_stage(name)), same_tensor[-1])
    logger.info("axiomcam: target layer %r chosen automatically (output %s)", chosen,
                tuple(last_output.shape))
    return chosen
