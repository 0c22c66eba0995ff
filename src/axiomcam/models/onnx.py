"""ONNX model files, converted to torch by onnx2torch (``pip install "axiomcam[onnx]"``), with
each layer named by its ONNX node name: :func:`from_onnx` and :func:`onnx_layer`.
:func:`axiomcam.models.load` reads a ``.onnx`` path this way too.
"""

from __future__ import annotations

import collections
import importlib
import os
import types
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.fx
from torch import nn

from ..layers import find_default_layer
from .checks import (
    MissingWeightsError,
    ModelSpecError,
    checked_channels,
    checked_device,
    checked_file,
    forward_on_zeros,
    missing_modules,
    near_matches,
    output_description,
)
from .onnx_graph import (
    ImageInput,
    final_activation,
    input_rescaling,
    read_image_input,
    strip_final_activation,
)
from .pretrained import (
    INPUT_SIZE,
    PREPROCESS_PRESETS,
    PretrainedModel,
    channel_note,
    chosen_normalisation,
    default_class_names,
)

if TYPE_CHECKING:  # an optional dependency: axiomcam[onnx]
    import onnx

__all__ = ["ONNX_INSTALL", "ONNX_LAYERS_KEY", "ONNX_SCORES", "from_onnx", "onnx_layer"]

ONNX_INSTALL = "pip install 'axiomcam[onnx]'"
#: the key of ``model.meta`` (a GraphModule's dict, kept by deepcopy) under which a model
#: made by :func:`from_onnx` maps ONNX node names to qualified module names (see onnx_layer)
ONNX_LAYERS_KEY = "onnx_layers"
#: what :func:`from_onnx` explains of a graph ending in Softmax or Sigmoid (``score``)
ONNX_SCORES = ("logits", "probability")
# how onnx2torch keeps the graph's constant tensors (weights it does not fold into modules)
_ONNX2TORCH_INITIALIZERS = "initializers"
# a module path segment goes into fx's generated code as getattr(parent, "segment")
_UNQUOTABLE = ('"', "\\", "\n", "\r")


def from_onnx(
    path: str | os.PathLike[str],
    *,
    class_names: Sequence[str] | None = None,
    input_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    preprocess: str | None = None,
    score: str = "logits",
    layout: str | None = None,
    device: str | torch.device = "cpu",
) -> PretrainedModel:
    """Load an ONNX model file as a torch module (through onnx2torch) ready to explain.

    The ONNX graph is converted by ``onnx2torch.convert`` into a ``torch.fx.GraphModule``
    with one submodule per ONNX node, and the submodules are renamed so that **a layer's
    qualified name is its ONNX node name**: ``target_layer="/layer4/layer4.1/relu_1/Relu"``
    names the node of that name (as Netron shows it), in :func:`axiomcam.explain`, in
    ``axiomcam explain --layer`` and in ``axiomcam layers``.  A node name's dots become
    nesting (``"/layer4/layer4"`` is then an empty container that is never called).  A node
    whose name cannot be a module path (empty, duplicated, a dotted prefix of another
    node's name, an ``nn.Module`` attribute such as ``"forward"``) keeps onnx2torch's name
    (dots replaced by ``/``); :func:`onnx_layer` maps every named node to its module either
    way, and the mapping is kept as ``model.meta["onnx_layers"]``.

    **TensorFlow/Keras models.** The input layout is read from the graph
    (:func:`axiomcam.models.onnx_graph.read_image_input`: a ``Transpose`` with perm
    ``0,3,1,2`` after the input, as tf2onnx writes, means channels-last ``N,H,W,C``; else
    the first convolution, else the fixed dims).  A channels-last model gets a permute
    as its first operation, so ``model`` takes ``(B, C, H, W)`` like every axiomcam model,
    every method works on it, its layers keep their node names, and maps come out
    ``(B, H, W)``.  The channels are any number (1 for grey, 5 bands, ...).

    **A final Softmax or Sigmoid.** A graph whose output is a ``Softmax`` over the classes
    or a ``Sigmoid`` is explained on the logits before it (``score="logits"``, the
    default): Grad-CAM's score is the pre-softmax logit and XGrad-CAM's axioms are stated
    for it, while a probability's gradient vanishes as it saturates.  The node is left out
    of the converted model; ``score`` of the result says so (``"logits before the graph's
    final Softmax"``) and ``probabilities`` applies it back for the class probabilities
    shown.  ``score="probability"`` keeps the node: the graph's own probabilities are
    explained.

    **Preprocessing** as for the pretrained models: the shorter side resized to
    ``round(input_size * 256 / 224)``, a centre crop of ``input_size``, normalised with
    ``mean`` and ``std`` or the ``preprocess`` preset
    (:data:`~axiomcam.models.pretrained.PREPROCESS_PRESETS`).  Unless they are given: a
    graph whose first nodes multiply the input by 1/255 or 1/127.5 (Keras's
    ``Rescaling``; read from the graph) gets ``raw255`` (pixels 0..255); else a
    channels-last graph gets ``tf`` (pixels in [-1, 1], the most common preprocessing of
    TensorFlow/Keras classifiers: keras.applications' MobileNet, Inception, Xception,
    ResNetV2, NASNet, and TFLite/TF Hub models); else a 3-channel graph gets ImageNet's
    mean and std (torch exports), and any other channel count ``unit`` (pixels in [0, 1]).
    ``notes`` of the result says what was chosen and why.

    Two fixes before the conversion, which change no output: torch's exporter stores equal
    weight tensors once (random-init biases are all zeros) and reads the copies through
    ``Identity`` nodes, while onnx2torch needs convolution weights as graph constants, so
    an ``Identity`` of a constant becomes a copy of that constant.  One forward pass on a
    ``(1, C, input_size, input_size)`` input of zeros counts the outputs and picks
    ``default_layer`` with :func:`axiomcam.layers.find_default_layer` (the last layer with
    a ``(B, C, h, w)`` output, ``h * w > 1``).

    onnx2torch converts the standard ONNX operators up to about opset 17.  Models exported
    by ``torch.onnx.export`` convert when exported with ``dynamo=False,
    opset_version=17``; the default exporter of torch >= 2.9 writes opset 18 operators
    (``ReduceMean`` with an axes input, ``Reshape`` with ``allowzero``) that onnx2torch
    refuses, with the error below.

    Args:
        path: the ``.onnx`` file (external-data files next to it are read too).
        class_names: a name per output, by index.  Default: the 1000 ImageNet names for a
            model with 1000 outputs, else ``"class 0"``, ``"class 1"``, ...
        input_size: the side of the square input, in pixels.  Default: the file's input
            height and width when they are fixed (as ``torch.onnx.export`` writes them),
            else 224.
        mean: per-channel mean for pixels in [0, 1] (1 number for all channels, or one per
            channel).
        std: per-channel standard deviation, all > 0 (1 number, or one per channel).
        preprocess: a preset name instead of ``mean`` and ``std``: ``"imagenet"``,
            ``"unit"`` ([0, 1]), ``"raw255"`` ([0, 255]), ``"tf"`` ([-1, 1]).
        score: ``"logits"`` or ``"probability"``: what is explained of a graph that ends in
            a Softmax or Sigmoid (see above).
        layout: ``"NCHW"`` or ``"NHWC"`` to override what the graph says.
        device: where to put the model.

    Returns:
        a :class:`PretrainedModel` named after the file, model in eval mode on ``device``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IsADirectoryError: ``path`` is a directory.
        MissingWeightsError: onnx2torch (or onnx) is not installed; the message says
            ``pip install 'axiomcam[onnx]'``.
        ValueError: the file is not an ONNX model; it uses an operator onnx2torch cannot
            convert (each such operator, its opset and its nodes are named); it has not
            exactly one image input of rank 4; ``input_size`` differs from the file's
            fixed input size; the model fails on a ``(1, C, input_size, input_size)``
            input, has several outputs or one that is not ``(1, N, ...)``, or has no layer
            with a ``(B, C, h, w)`` output; ``class_names`` does not have one name per
            output; ``score="probability"`` for a graph without a final Softmax or
            Sigmoid; ``mean``/``std`` whose lengths do not fit the channels; an invalid
            ``input_size``, ``mean``, ``std``, ``preprocess``, ``score``, ``layout`` or
            ``device``.  Every message names the path.
        TypeError: ``class_names`` is not a sequence of strings.

    Examples:
        >>> import tempfile, warnings, torch
        >>> from pathlib import Path
        >>> from torch import nn
        >>> from axiomcam import models
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2)).eval()
        >>> with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")  # torch deprecates dynamo=False
        ...     path = Path(folder, "net.onnx")
        ...     torch.onnx.export(net, (torch.rand(1, 3, 16, 16),), path, dynamo=False,
        ...                       opset_version=17)
        ...     converted = models.from_onnx(path, class_names=["cat", "dog"])
        >>> converted.name, converted.input_size, converted.default_layer
        ('net.onnx', 16, '/1/Relu')
        >>> x = torch.rand(2, 3, 16, 16)
        >>> torch.allclose(converted.model(x), net(x), atol=1e-6)
        True
        >>> models.onnx_layer(converted, "/0/Conv")  # the layer of an ONNX node
        '/0/Conv'
    """
    path = _checked_onnx_path(path)
    torch_device = checked_device(device, where=f" for {str(path)!r}")
    if score not in ONNX_SCORES:
        raise ModelSpecError(f"score for {str(path)!r} must be one of {', '.join(ONNX_SCORES)}"
                             f", not {score!r}")
    mean = None if mean is None else checked_channels(mean, "mean", source=path, channels=None)
    std = None if std is None else checked_channels(std, "std", positive=True, source=path,
                                                    channels=None)
    onnx, onnx2torch = _onnx_modules(path)
    proto = _read_onnx(onnx, path)
    image = read_image_input(proto, path, layout)
    side = _onnx_input_side(image, path, input_size)
    channels = image.channels or 3
    reading = _output_reading(proto, score, path)
    normalisation, notes = _onnx_normalisation(proto, image, channels, (mean, std, preprocess),
                                               path)
    _inline_constant_identities(proto)
    _check_convertible(proto, path)
    try:
        converted = onnx2torch.convert(proto)
    except Exception as error:  # a converter refusing an attribute, a broken graph, ...
        raise ValueError(
            f"onnx2torch cannot convert the ONNX model {str(path)!r}: "
            f"{type(error).__name__}: {error}"
        ) from error
    model = _named_by_onnx_nodes(converted, proto)
    if image.layout == "NHWC":
        _permute_input_to_channels_last(model)
    model = model.to(torch_device).eval()

    zeros = torch.zeros(1, channels, side, side, device=torch_device)
    num_outputs = _onnx_output_count(model, zeros, path)
    names = _onnx_class_names(class_names, num_outputs, path)
    try:
        default_layer = find_default_layer(model, zeros)
    except ValueError as error:
        raise ValueError(f"the ONNX model {str(path)!r}: {error}") from error
    notes = [*_layout_notes(image, channels), *reading.notes, *notes]
    return PretrainedModel.with_imagenet_crop(
        path.name, model, names, default_layer, side, *normalisation, channels=channels,
        score=reading.score, probability=reading.probability, notes=tuple(notes))


def onnx_layer(model: nn.Module | PretrainedModel, node_name: str) -> str:
    """The qualified module name of an ONNX node in a model made by :func:`from_onnx`.

    It is the node name itself unless that name cannot be a module path (see
    :func:`from_onnx`); either way the result works as ``target_layer``.

    Args:
        model: the converted module, or the :class:`PretrainedModel` holding it.
        node_name: the ONNX node's name, e.g. ``"/layer4/layer4.1/relu_1/Relu"``.

    Raises:
        TypeError: ``model`` was not made by :func:`from_onnx`, or ``node_name`` is not a str.
        ValueError: no node has that name (near matches are listed).

    Example: the last line of :func:`from_onnx`'s example.
    """
    module = model.model if isinstance(model, PretrainedModel) else model
    meta = getattr(module, "meta", None) if isinstance(module, torch.fx.GraphModule) else None
    layers = meta.get(ONNX_LAYERS_KEY) if isinstance(meta, dict) else None
    if not isinstance(layers, dict):
        raise TypeError(
            f"{type(module).__name__} was not made by axiomcam.models.from_onnx: it has no "
            "ONNX node names"
        )
    if not isinstance(node_name, str):
        raise TypeError(f"node_name must be a str, not {type(node_name).__name__}")
    if node_name in layers:
        return layers[node_name]
    raise ValueError(
        f"the ONNX model has no node named {node_name!r}{near_matches(node_name, list(layers))}"
    )


def _checked_onnx_path(path: str | os.PathLike[str]) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or path-like, not {type(path).__name__}")
    return checked_file(path, "ONNX model file")


def _onnx_modules(path: Path) -> tuple[types.ModuleType, types.ModuleType]:
    """``onnx`` and ``onnx2torch``, imported only now (onnx2torch takes seconds to import)."""
    missing = missing_modules(["onnx", "onnx2torch"])
    if missing:
        raise MissingWeightsError(
            f"reading the ONNX model {str(path)!r} needs {' and '.join(missing)}, not "
            f"installed: run `{ONNX_INSTALL}`",
            name=missing[0],
        )
    return importlib.import_module("onnx"), importlib.import_module("onnx2torch")


def _read_onnx(onnx: types.ModuleType, path: Path) -> onnx.ModelProto:
    try:
        proto = onnx.load(str(path))
    except Exception as error:  # protobuf's DecodeError, a missing external-data file, ...
        raise ValueError(
            f"{str(path)!r} is not an ONNX model: {type(error).__name__}: {error}"
        ) from error
    if len(proto.graph.node) == 0:  # an empty file parses as an empty model
        raise ValueError(f"{str(path)!r} is not an ONNX model: it has no graph nodes")
    return proto


def _onnx_input_side(image: ImageInput, path: Path, input_size: int | None) -> int:
    """The square input side: ``input_size``, checked against the file's fixed height and
    width when it has them, else those, else 224."""
    if input_size is not None and (
            isinstance(input_size, bool) or not isinstance(input_size, int) or input_size <= 0):
        raise ValueError(
            f"input_size for {str(path)!r} must be a positive int (pixels), not {input_size!r}"
        )
    height, width = image.height, image.width
    fixed = height if height is not None and height == width else None
    if height is not None and width is not None and height != width:
        raise ValueError(
            f"the ONNX model {str(path)!r} takes {height}x{width} inputs; axiomcam's "
            "preprocessing makes square ones: export the model with a square input"
        )
    if input_size is not None and fixed is not None and input_size != fixed:
        raise ValueError(
            f"the ONNX model {str(path)!r} takes {fixed}x{fixed} inputs, not "
            f"input_size={input_size}"
        )
    return input_size if input_size is not None else fixed or INPUT_SIZE


@dataclass(frozen=True)
class _OutputReading:
    """What the converted model's output is (see :func:`from_onnx`, final Softmax)."""

    score: str
    probability: str
    notes: tuple[str, ...] = ()


def _output_reading(proto: onnx.ModelProto, score: str, path: Path) -> _OutputReading:
    """Leave a final Softmax or Sigmoid out of the graph for ``score="logits"``, and say
    what the output then is."""
    tail = final_activation(proto)
    if tail is None:
        if score == "probability":
            last = proto.graph.node[-1]
            raise ValueError(
                f"score='probability' needs a graph that ends in a Softmax or Sigmoid; the "
                f"ONNX model {str(path)!r} ends in {last.op_type} {last.name!r}: its output "
                "is explained as it is (score='logits')"
            )
        return _OutputReading("the graph's output", "softmax")
    if score == "probability":
        return _OutputReading(f"probabilities: the output of the graph's final {tail.op_type}",
                              "output")
    strip_final_activation(proto, tail)
    note = (f"the graph ends in {tail.describe()}: the logits before it are explained "
            "(Grad-CAM's score; XGrad-CAM's axioms hold for logits); "
            "--onnx-score probability (score='probability') explains its output "
            "instead")
    return _OutputReading(f"logits before the graph's final {tail.op_type}",
                          tail.op_type.lower(), (note,))


def _onnx_normalisation(proto: onnx.ModelProto, image: ImageInput, channels: int,
                        given: tuple[Sequence[float] | None, Sequence[float] | None,
                                     str | None], path: Path
                        ) -> tuple[tuple[tuple[float, ...], tuple[float, ...]], list[str]]:
    """``(mean, std)`` for the graph (the options, else the defaults of :func:`from_onnx`)
    and a note when a default other than ImageNet's was chosen."""
    mean, std, preset = given
    rescaling = input_rescaling(proto, image)
    if rescaling is not None:
        default, why = "raw255", rescaling
    elif image.layout == "NHWC":
        default, why = "tf", "the usual preprocessing of channels-last TensorFlow/Keras models"
    elif channels == 3:
        default, why = "imagenet", ""
    else:
        default, why = "unit", f"a {channels}-channel model"
    chosen = chosen_normalisation(mean, std, preset, channels, default, repr(str(path)))
    notes = []
    if default != "imagenet" and preset is None and (mean is None or std is None):
        notes.append(f"preprocessing {default!r}: {PREPROCESS_PRESETS[default][2]}, as "
                     f"{why}; --preprocess or --mean/--std change it")
    return chosen, notes


def _layout_notes(image: ImageInput, channels: int) -> list[str]:
    """What the user should know about the input: channels last, channels other than 3."""
    notes = []
    if image.layout == "NHWC":
        notes.append(f"it takes channels-last (N, H, W, C) inputs ({image.reason} says so): "
                     "axiomcam permutes its (B, C, H, W) inputs to them; layers keep their "
                     "ONNX node names")
    note = channel_note(channels)
    return [*notes, note] if note is not None else notes


def _permute_input_to_channels_last(model: torch.fx.GraphModule) -> None:
    """Make a channels-last graph take ``(B, C, H, W)``: its first operation becomes
    ``x.permute(0, 2, 3, 1)``, and every layer keeps its name."""
    graph = model.graph
    placeholder = next(node for node in graph.nodes if node.op == "placeholder")
    with graph.inserting_after(placeholder):
        permuted = graph.call_method("permute", (placeholder, 0, 2, 3, 1))
    placeholder.replace_all_uses_with(permuted, delete_user_cb=lambda user: user is not permuted)
    model.recompile()


def _inline_constant_identities(proto: onnx.ModelProto) -> None:
    """Replace each ``Identity`` of a graph constant by a copy of that constant under the
    Identity's output name (torch's exporter shares equal weight tensors that way; onnx2torch
    wants a convolution's weights as constants)."""
    constants = {tensor.name: tensor for tensor in proto.graph.initializer}
    outputs = {value.name for value in proto.graph.output}
    kept = []
    for node in proto.graph.node:
        if (node.op_type == "Identity" and node.domain in ("", "ai.onnx")
                and len(node.input) == 1 and node.input[0] in constants
                and node.output[0] not in outputs):
            copy = proto.graph.initializer.add()
            copy.CopyFrom(constants[node.input[0]])
            copy.name = node.output[0]
        else:
            kept.append(node)
    if len(kept) < len(proto.graph.node):
        del proto.graph.node[:]
        proto.graph.node.extend(kept)


def _check_convertible(proto: onnx.ModelProto, path: Path) -> None:
    """Every operator onnx2torch has no converter for, with its opset and nodes, in one
    error (onnx2torch itself stops at the first)."""
    try:
        from onnx2torch.node_converters.registry import get_converter
    except ImportError:  # a later onnx2torch moved it: its own error will have to do
        return
    opsets = {opset.domain or "": opset.version for opset in proto.opset_import}
    missing: dict[tuple[str, str, int | None], list[str]] = {}
    for index, node in enumerate(proto.graph.node):
        domain = "" if node.domain == "ai.onnx" else node.domain
        version = opsets.get(domain)
        try:
            if version is None:
                raise NotImplementedError
            get_converter(operation_type=node.op_type, version=version, domain=domain)
        except NotImplementedError:
            key = (domain, node.op_type, version)
            missing.setdefault(key, []).append(node.name or f"#{index}")
    if not missing:
        return
    parts = []
    for (domain, op_type, version), nodes in missing.items():
        operator = f"{domain}.{op_type}" if domain else op_type
        opset = f"opset {version}" if version is not None else f"domain {domain!r} not imported"
        shown = ", ".join(repr(name) for name in nodes[:3])
        more = f" and {len(nodes) - 3} more" if len(nodes) > 3 else ""
        parts.append(f"{operator} ({opset}; node {shown}{more})")
    from importlib.metadata import version as installed_version

    raise ValueError(
        f"onnx2torch {installed_version('onnx2torch')} cannot convert the ONNX model "
        f"{str(path)!r}: no converter for {'; '.join(parts)}. A model exported by "
        "torch.onnx.export converts when exported with dynamo=False, opset_version=17"
    )


def _named_by_onnx_nodes(converted: torch.fx.GraphModule, proto: onnx.ModelProto) -> nn.Module:
    """``converted`` rebuilt with each submodule at its ONNX node's name (see
    :func:`from_onnx`), the mapping node name -> module name in ``meta["onnx_layers"]``."""
    from onnx2torch.onnx_graph import OnnxGraph

    # onnx2torch's module name for each node, in node order (its own naming rule)
    generated = list(OnnxGraph(proto.graph).nodes)
    calls = [node for node in converted.graph.nodes if node.op == "call_module"]
    if sorted(node.target for node in calls) != sorted(generated):
        # another onnx2torch naming: keep its names and map what can be mapped
        warnings.warn("onnx2torch named the layers in an unexpected way: the layer names are "
                      "onnx2torch's, not the ONNX node names", stacklevel=3)
        converted.meta[ONNX_LAYERS_KEY] = {}
        return converted
    reserved = set(dir(torch.fx.GraphModule(nn.Module(), torch.fx.Graph())))
    reserved.add(_ONNX2TORCH_INITIALIZERS)
    counts = collections.Counter(node.name for node in proto.graph.node)
    wanted = {
        module_name: node.name
        for node, module_name in zip(proto.graph.node, generated, strict=True)
        if counts[node.name] == 1 and _usable_module_path(node.name, reserved)
    }
    chosen = set(wanted.values())
    for module_name, name in list(wanted.items()):
        parts = name.split(".")
        if any(".".join(parts[:end]) in chosen for end in range(1, len(parts))):
            del wanted[module_name]  # its prefix is a layer: it cannot be a container too
    final = {module_name: wanted.get(module_name, module_name) for module_name in generated}
    if not _prefix_free(final.values()):
        final = {module_name: module_name for module_name in generated}
    layers = {node.name: final[module_name]
              for node, module_name in zip(proto.graph.node, generated, strict=True)
              if node.name and counts[node.name] == 1}

    # the submodules registered in call order, containers at their first descendant's call,
    # so that model.modules() lists them as they run (the first convolution first)
    root = nn.Module()
    if _ONNX2TORCH_INITIALIZERS in converted._modules:  # there only when some node reads one
        root.add_module(_ONNX2TORCH_INITIALIZERS, converted._modules[_ONNX2TORCH_INITIALIZERS])
    for node in converted.graph.nodes:
        if node.op == "call_module":
            module = converted.get_submodule(node.target)
            node.target = final[node.target]
            *containers, leaf = node.target.split(".")
            parent = root
            for segment in containers:
                if segment not in parent._modules:
                    parent.add_module(segment, nn.Module())
                parent = parent._modules[segment]
            parent.add_module(leaf, module)
    model = torch.fx.GraphModule(root, converted.graph, class_name="OnnxModel")
    model.meta[ONNX_LAYERS_KEY] = layers
    return model


def _usable_module_path(name: str, reserved: set[str]) -> bool:
    """Whether ``name`` can be a qualified module name: dot-separated non-empty segments,
    none of them an attribute nn.Module or GraphModule already has, none breaking the
    quotes of fx's generated code."""
    segments = name.split(".")
    return bool(name) and all(
        segment and segment not in reserved
        and not any(character in segment for character in _UNQUOTABLE)
        for segment in segments
    )


def _prefix_free(names: Iterable[str]) -> bool:
    """No name twice and none the dotted prefix of another (a layer cannot be a container)."""
    listed = list(names)
    unique = set(listed)
    if len(unique) != len(listed):
        return False
    return not any(".".join(name.split(".")[:end]) in unique
                   for name in listed for end in range(1, name.count(".") + 1))


def _onnx_output_count(model: nn.Module, zeros: torch.Tensor, path: Path) -> int:
    """``N`` for a converted model that maps ``zeros`` to one ``(1, N, ...)`` tensor."""
    output = forward_on_zeros(model, zeros, f"the ONNX model {str(path)!r}",
                              "is input_size right?")
    if isinstance(output, (tuple, list)):
        raise ValueError(
            f"the ONNX model {str(path)!r} has {len(output)} outputs; from_onnx takes models "
            "with one output"
        )
    if not torch.is_tensor(output) or output.dim() < 2 or output.shape[0] != 1:
        raise ValueError(
            f"the ONNX model {str(path)!r} returns {output_description(output)} for an input "
            f"of shape {tuple(zeros.shape)}, not (1, N, ...) scores"
        )
    return int(output.shape[1])


def _onnx_class_names(class_names: Sequence[str] | None, num_outputs: int,
                      path: Path) -> list[str]:
    if class_names is None:
        return default_class_names(num_outputs)
    if isinstance(class_names, (str, bytes)) or not isinstance(class_names, Sequence) \
            or not all(isinstance(name, str) for name in class_names):
        raise TypeError(f"class_names must be a sequence of str, not {class_names!r}")
    if len(class_names) != num_outputs:
        raise ValueError(
            f"class_names has {len(class_names)} names but the ONNX model {str(path)!r} has "
            f"{num_outputs} outputs"
        )
    return list(class_names)
