"""Finding the target layer: by name, by module, or automatically; and how its output is
laid on the ``(B, C, *spatial)`` grid a CAM works on.

The input's dimensions decide how a layer's output is read:

- images ``(B, C, H, W)`` and clips ``(B, C, T, H, W)``: ``(B, C, h, w)`` and
  ``(B, C, t, h, w)`` outputs are grids; a 3-D ``(B, N, C)`` output is a transformer's
  tokens, laid on an ``(h, w)`` grid;
- 1D signals ``(B, C, L)`` (audio, time series, spectra): a 3-D ``(B, C, l)`` output (a
  ``Conv1d``'s) is the grid, never tokens; a ``LayerNorm``'s ``(B, l, C)`` is
  channels-last, as in images.
"""

from __future__ import annotations

import difflib
import logging
import math

import torch
from torch import nn

logger = logging.getLogger("axiomcam")


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """Return ``(qualified_name, module)`` for a layer given by name or as a module.

    Raises:
        ValueError: the name does not exist in ``model`` (near matches are listed), or the
            module is not part of ``model``.
        TypeError: ``layer`` is neither a string nor a module.

    Examples:
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


#: names of a transformer block's first norm (before attention): torchvision ViT ``ln_1``,
#: timm and Swin ``norm1``, Hugging Face ``layernorm_before``
BLOCK_FIRST_NORMS = ("ln_1", "norm1", "norm_1", "ln1", "layernorm_before")


def _last_block_norm(model: nn.Module,
                     calls: list[tuple[str, tuple[object, object]]]) -> str | None:
    """A vision transformer's default layer: the first norm of its last block (tokens
    ``(B, N, C)`` in a ViT, ``(B, h, w, C)`` in a Swin Transformer), when that runs after
    every convolutional layer (the patch embedding).

    Not the final norm: the classifier reads only the class token there, so the patch
    tokens get no gradient; in the last block the class token still attends to them.
    """
    modules = dict(model.named_modules())
    norms = [name for name, (out, _) in calls
             if name.rsplit(".", 1)[-1] in BLOCK_FIRST_NORMS
             and isinstance(modules.get(name), nn.LayerNorm)
             and torch.is_tensor(out) and out.dim() in (3, 4)]  # ViT tokens, Swin grids
    if not norms:
        return None
    order = [name for name, _ in calls]
    convolutions = [name for name in order
                    if isinstance(modules.get(name), nn.Conv1d | nn.Conv2d | nn.Conv3d)]
    if convolutions and order.index(convolutions[-1]) > order.index(norms[-1]):
        return None  # a convolutional stage comes after the blocks: a CNN
    logger.info("axiomcam: target layer %r (the last transformer block's first norm) chosen "
                "automatically", norms[-1])
    return norms[-1]


def _convolution_grids(model: nn.Module, calls: list[tuple[str, tuple[object, object]]],
                       names: list[str]) -> list[str]:
    """For 1D signals, the ``names`` whose 3-D output has as many channels as the output of
    the latest ``Conv1d`` that ran before it: ``(B, C, l)`` grids, not the ``(B, l, C)``
    outputs of layers that work on the last axis (a linear layer per time step, a
    ``LayerNorm``). All of ``names`` for a network without ``Conv1d``."""
    modules = dict(model.named_modules())
    if not any(isinstance(module, nn.Conv1d) for module in modules.values()):
        return names
    channels, grids = None, set()
    for name, (out, _) in calls:
        if isinstance(modules.get(name), nn.Conv1d) and torch.is_tensor(out):
            channels = out.shape[1]
        if name in names and channels is not None and out.shape[1] == channels \
                and not isinstance(modules.get(name), nn.LayerNorm):
            grids.add(name)
    return [name for name in names if name in grids]


def _backbone_scope(model: nn.Module) -> str:
    """``"backbone.body."`` (a torchvision detector's feature extractor under its FPN),
    ``"backbone."`` (segmentation models, detectors without FPN), or ``""``: where the
    default layer is looked for. A detector's region-proposal and box heads run after the
    backbone on detached proposals, so the score of a detection has no gradient there."""
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        return ""
    return "backbone.body." if isinstance(getattr(backbone, "body", None), nn.Module) \
        else "backbone."


def _yolo_dependencies(layers: nn.Sequential) -> list[set[int]]:
    """Each layer of an Ultralytics model's ``nn.Sequential`` with the layers it depends on
    (through its inputs ``f``: -1 the previous layer, negative counts back, else indices)."""
    depends_on: list[set[int]] = []
    for index, layer in enumerate(layers):
        own = {index}
        for source in [layer.f] if isinstance(layer.f, int) else layer.f:
            source = index + source if source < 0 else source
            if 0 <= source < index:  # -1 of the first layer: the image
                own |= depends_on[source]
        depends_on.append(own)
    return depends_on


def _yolo_layer(model: nn.Module) -> str | None:
    """An Ultralytics YOLO model's default layer: the last layer that every input of its
    head depends on, or ``None`` for other models.

    Ultralytics keeps the layers in an ``nn.Sequential`` whose modules name their inputs
    (``f``: -1 the previous layer, or indices); the detection head reads several levels
    (``f`` a list: strides 8, 16 and 32).  The last layer they all depend on is the neck's
    stride-8 output in YOLOv5u/v8/11 (``model.15`` in YOLOv8): the finest map that every
    detection, small or large, gets a gradient through.  The head's last input alone
    (``model.21``, a usual choice) feeds only the stride-32 anchors: a small object's
    detection has no gradient there.
    """
    for prefix, layers in model.named_modules():
        if not isinstance(layers, nn.Sequential) or len(layers) < 2 \
                or not isinstance(getattr(layers[-1], "f", None), list) \
                or not all(isinstance(getattr(layer, "f", None), int | list) for layer in layers):
            continue
        depends_on = _yolo_dependencies(layers)
        inputs = [index + len(layers) - 1 if index < 0 else index for index in layers[-1].f]
        shared = set.intersection(*(depends_on[index] for index in inputs))
        if shared:
            chosen = f"{prefix}.{max(shared)}" if prefix else str(max(shared))
            logger.info("axiomcam: target layer %r (the last layer all the inputs of the YOLO "
                        "head depend on) chosen automatically", chosen)
            return chosen
    return None


#: the dimensions of a batch of 1D signals ``(B, C, L)``
SIGNAL_DIMS = 3


def grid_dims(input_dims: int) -> tuple[int, ...]:
    """The dimensions of the layer outputs that are grids for inputs of ``input_dims``
    dimensions: ``(B, C, l)`` for 1D signals, ``(B, C, h, w)`` and ``(B, C, t, h, w)``
    otherwise.

    Examples:
        >>> grid_dims(3), grid_dims(4)
        ((3,), (4, 5))
    """
    return (SIGNAL_DIMS,) if input_dims == SIGNAL_DIMS else (4, 5)


def _spatial_size(output: object, batch: int | None = None,
                  input_dims: int = 4) -> tuple[int, ...] | None:
    """The spatial size of a grid output (:func:`grid_dims`); ``None`` for anything else,
    and for outputs whose first axis is not the batch's ``batch`` images (a detector's
    per-proposal features: one row per box, not per image)."""
    if torch.is_tensor(output) and output.dim() in grid_dims(input_dims) and (
            batch is None or output.shape[0] == batch):
        return tuple(output.shape[2:])
    return None


def candidate_layers(model: nn.Module, inputs: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """Layers whose output is ``(B, C, h, w)`` (or ``(B, C, t, h, w)``; ``(B, C, l)`` for
    1D signals) with more than one position, or a transformer's ``(B, tokens, C)`` that
    lays on a grid, in call order: the layers a CAM can explain.

    Runs one forward pass on ``inputs`` (without autograd) and returns ``(name, shape)``
    for every such module; a module called several times appears at its last call.

    Examples:
        >>> import torch, torchvision
        >>> from axiomcam.layers import candidate_layers
        >>> layers = candidate_layers(torchvision.models.resnet18(), torch.rand(1, 3, 64, 64))
        >>> layers[-1]
        ('layer4', (1, 512, 2, 2))
    """
    def usable(output: object) -> bool:
        size = _spatial_size(output, inputs.shape[0], inputs.dim())
        return (size is not None and math.prod(size) > 1) or \
            _token_grid(output, inputs) is not None

    return [(name, tuple(out.shape)) for name, out in _record_calls(model, inputs)
            if usable(out)]


def _token_grid(output: object, inputs: torch.Tensor) -> tuple[int, int] | None:
    """The grid of a transformer's ``(B, tokens, C)`` output (more than one cell), or
    ``None`` when it is not one."""
    if (not torch.is_tensor(output) or output.dim() != 3 or output.shape[0] != inputs.shape[0]
            or inputs.dim() == SIGNAL_DIMS):
        return None
    try:
        grid, _ = infer_token_grid(output.shape[1], tuple(inputs.shape[2:]))
    except ValueError:
        return None
    return grid if math.prod(grid) > 1 else None


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
    """The last layer whose output is ``(B, C, h, w)`` with ``h * w > 1`` (for 1D signals
    ``(B, C, L)``: ``(B, C, l)`` with ``l > 1`` and as many channels as the ``Conv1d``
    before it, so that no per-time-step linear layer's ``(B, l, C)`` is taken for one);
    in a vision
    transformer (blocks after the patch embedding), the first norm of its last block; in a
    model with a ``backbone`` (torchvision detection and segmentation models), the last
    such layer of the backbone (of ``backbone.body`` under a feature pyramid).

    Several nested modules often return the very same tensor (``layer4``, ``layer4.1``
    and ``layer4.1.relu`` in a ResNet; ``features`` and ``features.18`` in MobileNetV2).
    Among them this picks the outermost one that holds at most one downsampling step (its
    input is at most twice its output's size): the whole last stage (``layer4``) but not a
    container that also holds the earlier stages (``features``).  Between modules at the
    same depth the later call wins (an in-place ReLU after a convolution).

    In an Ultralytics YOLO model, the last layer that every input of the detection head
    depends on (``model.15`` in YOLOv8, ``model.16`` in YOLO11: the neck's stride-8 output).

    Raises:
        ValueError: no layer has a spatial output with more than one position.
    """
    yolo = _yolo_layer(model)
    if yolo is not None:
        return yolo
    calls = _record_calls_with_inputs(model, inputs[:1])
    scope = _backbone_scope(model)
    dims = inputs.dim()
    spatial = [
        name for name, (out, _) in calls
        if (size := _spatial_size(out, 1, dims)) is not None and math.prod(size) > 1
        and name.startswith(scope)
    ]
    if dims == SIGNAL_DIMS:
        spatial = _convolution_grids(model, calls, spatial)
    block_norm = None if dims == SIGNAL_DIMS else _last_block_norm(model, calls)
    if block_norm is not None:
        return block_norm
    if not spatial:
        wanted = "(B, C, l) output with l > 1" if dims == SIGNAL_DIMS else \
            "(B, C, h, w) output with h*w > 1"
        raise ValueError(
            f"{type(model).__name__} has no layer with a {wanted} for inputs of shape "
            f"{tuple(inputs.shape)}: CAMs need a spatial layer; pass target_layer explicitly."
        )
    order = {name: index for index, (name, _) in enumerate(calls)}
    recorded = dict(calls)
    last_output = recorded[spatial[-1]][0]
    final_size = _spatial_size(last_output, None, dims)
    same_tensor = sorted(
        (name for name, (out, _) in calls if out is last_output),
        key=lambda name: (name.count("."), -order[name]),
    )

    def one_stage(name: str) -> bool:
        input_size = _spatial_size(recorded[name][1], None, dims)
        return input_size is not None and len(input_size) == len(final_size) and all(
            i <= 2 * o for i, o in zip(input_size, final_size, strict=True))

    chosen = next((name for name in same_tensor if one_stage(name)), same_tensor[-1])
    logger.info("axiomcam: target layer %r chosen automatically (output %s)", chosen,
                tuple(last_output.shape))
    return chosen


# ----------------------------------------------------------------------------- layouts

#: how a layer's output is turned into the ``(B, C, *spatial)`` grid a CAM works on
RESHAPES = ("channels_first", "channels_last", "tokens")
#: most leading tokens (class token, distillation token, registers) a token grid may have
MAX_EXTRA_TOKENS = 16


class LayerLayout:
    """How a target layer's output maps to the ``(B, C, *spatial)`` grid CAMs use, and
    back (Ablation-CAM replaces the grid, the network then runs on the layer's own form).

    - ``channels_first``: convolutional outputs ``(B, C, h, w)`` / ``(B, C, t, h, w)``, as is.
    - ``channels_last``: ``(B, h, w, C)`` (Swin Transformer blocks, LayerNorm outputs):
      permuted.
    - ``tokens``: ``(B, extra + h*w, C)`` (ViT blocks): the ``extra`` leading tokens (class
      token, distillation token, registers) are set aside, the others laid on the
      ``(h, w)`` grid row by row; going back puts the set-aside tokens in front again.

    Examples:
        >>> import torch
        >>> layout = LayerLayout("tokens", grid=(2, 3), extra_tokens=1)
        >>> tokens = torch.arange(7.0).view(1, 7, 1)  # class token 0, then patches 1..6
        >>> grid, rest = layout.to_grid(tokens)
        >>> grid[0, 0].tolist(), rest.flatten().tolist()
        ([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], [0.0])
        >>> torch.equal(layout.from_grid(grid, rest), tokens)
        True
    """

    def __init__(self, kind: str, *, grid: tuple[int, ...] | None = None,
                 extra_tokens: int = 0) -> None:
        if kind not in RESHAPES:
            raise ValueError(f"unknown reshape {kind!r}; known: {', '.join(RESHAPES)}")
        self.kind = kind
        self.grid = grid
        self.extra_tokens = extra_tokens

    def __repr__(self) -> str:
        if self.kind == "tokens":
            return f"LayerLayout('tokens', grid={self.grid}, extra_tokens={self.extra_tokens})"
        return f"LayerLayout({self.kind!r})"

    def to_grid(self, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(grid (B, C, *spatial), set-aside tokens or None)``."""
        if self.kind == "channels_first":
            return output, None
        if self.kind == "channels_last":
            return output.movedim(-1, 1), None
        rest = output[:, :self.extra_tokens]
        patches = output[:, self.extra_tokens:]
        grid = patches.transpose(1, 2).reshape(output.shape[0], output.shape[2], *self.grid)
        return grid, rest

    def from_grid(self, grid: torch.Tensor, rest: torch.Tensor | None) -> torch.Tensor:
        """The layer's own form of ``grid``; ``rest`` (batch 1 or the grid's batch) is put
        back in front for tokens."""
        if self.kind == "channels_first":
            return grid
        if self.kind == "channels_last":
            return grid.movedim(1, -1)
        patches = grid.flatten(2).transpose(1, 2)
        if rest is None or rest.shape[1] == 0:
            return patches
        rest = rest.expand(grid.shape[0], *rest.shape[1:])
        return torch.cat([rest.to(patches.dtype), patches], dim=1)


def infer_token_grid(tokens: int, input_size: tuple[int, ...]) -> tuple[tuple[int, int], int]:
    """``((h, w), extra)`` with ``extra + h * w = tokens`` and ``h / w`` the input's aspect
    ratio, for the fewest leading extra tokens (at most :data:`MAX_EXTRA_TOKENS`).

    On square inputs this is unambiguous for the usual grids: ``k**2 + e`` is not a square
    for ``0 < e <= 2k``, so a class token (or up to 16 registers on grids of 8 x 8 and more)
    is never mistaken for patches.

    Raises:
        ValueError: no grid fits (the message gives the token count: pass ``grid=``).

    Examples:
        >>> infer_token_grid(197, (224, 224))  # ViT-B/16: a class token and 14 x 14 patches
        ((14, 14), 1)
        >>> infer_token_grid(33, (64, 128))     # a class token and 4 x 8 patches
        ((4, 8), 1)
        >>> infer_token_grid(2, (32, 96))
        Traceback (most recent call last):
        ...
        ValueError: cannot lay 2 tokens on a grid with the input's 32 x 96 aspect ratio \
(after up to 16 leading class/register tokens): pass grid=(h, w)
    """
    height, width = input_size[-2], input_size[-1]
    for extra in range(min(MAX_EXTRA_TOKENS, tokens - 1) + 1):
        count = tokens - extra
        rows = round(math.sqrt(count * height / width))
        for h in (rows - 1, rows, rows + 1):
            if h > 0 and count % h == 0 and h * width == (count // h) * height:
                return (h, count // h), extra
    raise ValueError(
        f"cannot lay {tokens} tokens on a grid with the input's {height} x {width} aspect "
        f"ratio (after up to {MAX_EXTRA_TOKENS} leading class/register tokens): pass "
        "grid=(h, w)")


def _misfit(grid: tuple[int, ...], input_size: tuple[int, ...]) -> float:
    """How far, in cells, an ``(h, w)`` grid is from the input's ``(H, W)`` seen with one
    stride ``s``: the least over ``s`` of ``max(|h - H / s|, |w - W / s|)`` (0 for an
    exact fit; below 1 when sizes were rounded at each downsampling step)."""
    (h, w), (height, width) = grid, input_size
    scales = [h / height, w / width, (h + w) / (height + width)]  # 1 / s at the kinks
    if height != width:
        scales.append((h - w) / (height - width))
    return min(max(abs(h - height * u), abs(w - width * u)) for u in scales if u > 0)


def _image_layout(module: nn.Module, output: torch.Tensor,
                  input_size: tuple[int, ...]) -> str | None:
    """``"channels_first"`` or ``"channels_last"`` for the 4-D output of a layer of an image
    model (``None`` for any other output, or input).

    A ``LayerNorm`` normalises the channels: its output is laid along the axis its size
    matches (torchvision's and timm's ``LayerNorm2d`` are LayerNorms of ``(B, C, h, w)``).
    Other layers: the reading whose ``(h, w)`` is a grid of the image seen with one stride
    (:func:`_misfit` below one cell) when the other reading is clearly not (half a cell
    worse): Swin's stage outputs and the layers inside a ConvNeXt block are
    ``(B, h, w, C)`` with no LayerNorm to tell.  Otherwise a ``LayerNorm``'s output is
    channels-last and any other layer's channels-first.

    Examples:
        >>> _image_layout(nn.GELU(), torch.zeros(1, 8, 12, 768), (64, 96))  # Swin, ConvNeXt
        'channels_last'
        >>> _image_layout(nn.Conv2d(3, 768, 8, 8), torch.zeros(1, 768, 8, 12), (64, 96))
        'channels_first'
    """
    if output.dim() != 4 or len(input_size) != 2:
        return None
    if isinstance(module, nn.LayerNorm) and len(module.normalized_shape) == 1:
        channels = module.normalized_shape[0]
        if (output.shape[-1] == channels) != (output.shape[1] == channels):
            return "channels_last" if output.shape[-1] == channels else "channels_first"
    first = _misfit(tuple(output.shape[2:]), input_size)
    last = _misfit(tuple(output.shape[1:3]), input_size)
    if min(first, last) < 1 and abs(first - last) >= 0.5:
        return "channels_first" if first < last else "channels_last"
    return "channels_last" if isinstance(module, nn.LayerNorm) else "channels_first"


def layer_layout(module: nn.Module, output: torch.Tensor, input_size: tuple[int, ...], *,
                 reshape: str | None = None, grid: tuple[int, int] | None = None,
                 name: str | None = None) -> LayerLayout:
    """The :class:`LayerLayout` of ``module``'s ``output``.

    ``reshape=None`` decides from the output and the input (``input_size`` is the input's
    spatial size: ``(L,)`` for 1D signals): for images, a 3-D output ``(B, N, C)`` is tokens
    (grid inferred from the input's aspect ratio, or ``grid``); for 1D signals a 3-D output
    is the ``(B, C, l)`` grid of a ``Conv1d``-style layer; a ``LayerNorm``'s output (which
    normalises the last, channel, axis) is channels-last when it is ``(B, h, w, C)`` (or
    ``(B, l, C)`` for 1D signals); anything else is channels-first.

    Raises:
        ValueError: an unknown ``reshape``; a ``grid`` that does not fit the token count
            (the message gives both); tokens whose grid cannot be inferred.

    Note:
        A 4-D output of an image model is first read by :func:`_image_layout`: the axes
        that make a grid of the image decide (Swin's stages and the layers inside a
        ConvNeXt block are ``(B, h, w, C)`` with no LayerNorm to tell; ConvNeXt's
        ``LayerNorm2d`` is ``(B, C, h, w)``); the LayerNorm rule is its fallback.
    """
    where = f"the target layer {name!r}" if name else "the target layer"
    if reshape is not None and reshape not in RESHAPES:
        raise ValueError(f"unknown reshape {reshape!r}; known: {', '.join(RESHAPES)}")
    kind = reshape or _image_layout(module, output, input_size)
    if kind is None:
        signal = len(input_size) == SIGNAL_DIMS - 2
        if output.dim() == 3 and not signal:
            kind = "tokens"
        elif output.dim() == (3 if signal else 4) and isinstance(module, nn.LayerNorm):
            kind = "channels_last"
        else:
            kind = "channels_first"
    if kind != "tokens":
        return LayerLayout(kind)
    if output.dim() != 3:
        raise ValueError(f"reshape='tokens' needs a (B, tokens, C) output; {where} outputs "
                         f"{tuple(output.shape)}")
    tokens = output.shape[1]
    if grid is None:
        grid, extra = infer_token_grid(tokens, input_size)
    else:
        if (not isinstance(grid, tuple | list) or len(grid) != 2
                or not all(isinstance(g, int) and g > 0 for g in grid)):
            raise ValueError(f"grid must be (h, w) positive ints, got {grid!r}")
        grid = (int(grid[0]), int(grid[1]))
        extra = tokens - grid[0] * grid[1]
        if not 0 <= extra <= MAX_EXTRA_TOKENS:
            raise ValueError(
                f"{where} outputs {tokens} tokens but grid {grid} needs {grid[0] * grid[1]} "
                f"(plus up to {MAX_EXTRA_TOKENS} leading class/register tokens)")
    return LayerLayout("tokens", grid=grid, extra_tokens=extra)
