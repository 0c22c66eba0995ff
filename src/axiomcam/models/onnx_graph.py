"""What an ONNX graph says about feeding it and reading it, before any conversion: the
image input's layout (``N,C,H,W`` or TensorFlow's ``N,H,W,C``) and channels
(:func:`read_image_input`), a final ``Softmax`` or ``Sigmoid`` (:func:`final_activation`,
:func:`strip_final_activation`), and a first node that rescales 0..255 pixels
(:func:`input_rescaling`). Everything here reads the graph only; :mod:`.onnx` acts on it.

Examples:
    >>> from onnx import TensorProto, helper
    >>> graph = helper.make_graph(
    ...     [helper.make_node("Transpose", ["x"], ["t"], name="to_nchw", perm=[0, 3, 1, 2]),
    ...      helper.make_node("Softmax", ["t"], ["y"], name="probs", axis=1)], "g",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "H", "W", "C"])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    >>> proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    >>> found = read_image_input(proto, "g.onnx")
    >>> found.layout, found.reason
    ('NHWC', "the Transpose 'to_nchw' (perm 0,3,1,2) after the input")
    >>> final_activation(proto).describe()
    "Softmax 'probs'"
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .checks import ModelSpecError

if TYPE_CHECKING:  # an optional dependency: axiomcam[onnx]
    import onnx

__all__ = ["LAYOUTS", "FinalActivation", "ImageInput", "final_activation", "input_rescaling",
           "read_image_input", "strip_final_activation"]

#: the input layouts: ONNX's own (PyTorch exports) and TensorFlow/Keras's channels-last
LAYOUTS = ("NCHW", "NHWC")
# the permutation tf2onnx (and a channels-last PyTorch module) puts after an NHWC input
_TO_CHANNELS_FIRST = [0, 3, 1, 2]
# operators that only compute with each value (they keep the input's layout): walked
# through between the input and its first Transpose or convolution
_ELEMENTWISE = {"Cast", "Identity", "Mul", "Div", "Add", "Sub", "Clip", "Relu", "Neg", "Sqrt"}
# operators that read their input as (N, C, ...) in ONNX
_CHANNELS_FIRST_OPS = {"Conv", "ConvTranspose", "BatchNormalization", "InstanceNormalization",
                       "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"}
# factors by which a graph turns 0..255 pixels into [0, 1] or [-1, 1] (Keras's Rescaling)
_PIXEL_SCALES = {255.0: "1/255", 127.5: "1/127.5"}
# nodes looked at after the input before giving up (a preprocessing chain is a few nodes)
_WALK_LIMIT = 16


@dataclass(frozen=True)
class ImageInput:
    """The image input of an ONNX graph, as read by :func:`read_image_input`.

    Attributes:
        name: the input's name in the graph.
        layout: ``"NCHW"`` or ``"NHWC"`` (:data:`LAYOUTS`).
        channels, height, width: its fixed sizes, ``None`` where the file leaves them free
            (the channels then come from the first convolution's weights when it can).
        reason: what says the layout, in words (for a note to the user).
    """

    name: str
    layout: str
    channels: int | None
    height: int | None
    width: int | None
    reason: str


@dataclass(frozen=True)
class FinalActivation:
    """A ``Softmax`` or ``Sigmoid`` that computes the graph's single output over its
    classes (found by :func:`final_activation`)."""

    op_type: str
    node_name: str
    #: the tensor it reads: the logits
    logits: str
    #: the nodes :func:`strip_final_activation` removes (it and Identity nodes after it)
    nodes: list[onnx.NodeProto] = field(repr=False)

    def describe(self) -> str:
        """``"Softmax '/Softmax'"``."""
        return f"{self.op_type} {self.node_name!r}"


def read_image_input(proto: onnx.ModelProto, path: str | os.PathLike[str],
                     layout: str | None = None) -> ImageInput:
    """The graph's one image input: its layout, channels, height and width.

    The layout is read from the graph first: a ``Transpose`` with ``perm=[0, 3, 1, 2]``
    between the input and its first convolution (what tf2onnx writes for a Keras model,
    and torch for a module that permutes channels-last inputs) means ``NHWC``; a
    convolution (or another channels-first operator) reached without one means ``NCHW``.
    Only element-wise nodes (``Mul``, ``Add``, ``Cast``, ...: preprocessing) may stand
    between. When the graph does not say, fixed dims do: ``[N, C, S, S]`` is ``NCHW``,
    ``[N, S, S, C]`` is ``NHWC``; else ONNX's convention, ``NCHW``. ``layout`` forces one.

    The channels are the input's fixed channel dim, else the first convolution's input
    channels (``weight.shape[1] * group``), else ``None``.

    Raises:
        ValueError: not exactly one non-constant input, an input of another rank than 4,
            or an unknown ``layout``; the message names ``path``.
    """
    if layout is not None and layout not in LAYOUTS:
        raise ModelSpecError(f"layout for {str(path)!r} must be one of {', '.join(LAYOUTS)} "
                             f"or None (read from the graph), not {layout!r}")
    constants = {tensor.name for tensor in proto.graph.initializer}
    # old exporters list the weights among the graph inputs too
    inputs = [value for value in proto.graph.input if value.name not in constants]
    if len(inputs) != 1:
        raise ValueError(
            f"the ONNX model {str(path)!r} has {len(inputs)} inputs "
            f"({', '.join(value.name for value in inputs)}): from_onnx takes models with one "
            "image input"
        )
    (image,) = inputs
    dims = [dim.dim_value if dim.HasField("dim_value") else None
            for dim in image.type.tensor_type.shape.dim]
    if image.type.tensor_type.HasField("shape") and len(dims) != 4:
        raise ValueError(
            f"the ONNX model {str(path)!r} takes a rank-{len(dims)} input {image.name!r}, "
            "not a (batch, channels, height, width) or (batch, height, width, channels) image"
        )
    dims = dims or [None] * 4
    walked = _walk_from_input(proto, image.name)
    if layout is not None:
        reason = f"layout={layout!r} was given"
    elif walked.layout is not None:
        layout, reason = walked.layout, walked.reason
    else:
        layout, reason = _layout_from_dims(dims)
    channel_dim, height, width = (dims[1], dims[2], dims[3]) if layout == "NCHW" \
        else (dims[3], dims[1], dims[2])
    channels = channel_dim if channel_dim is not None else walked.conv_channels
    return ImageInput(image.name, layout, channels, height, width, reason)


@dataclass
class _Walk:
    """What the walk from the input to its first convolution found."""

    layout: str | None = None
    reason: str = ""
    conv_channels: int | None = None
    #: the element-wise nodes met before the first convolution, in order
    elementwise: list[onnx.NodeProto] = field(default_factory=list)


def _walk_from_input(proto: onnx.ModelProto, input_name: str) -> _Walk:
    """Follow the input through element-wise nodes to its first Transpose and
    convolution (see :func:`read_image_input`)."""
    consumers = _consumers(proto)
    weights = _Constants(proto)
    walk = _Walk()
    frontier, seen = [input_name], 0
    while frontier and seen < _WALK_LIMIT:
        tensor = frontier.pop(0)
        for node in consumers.get(tensor, []):
            seen += 1
            if node.op_type in _ELEMENTWISE:  # preprocessing, before or after the Transpose
                walk.elementwise.append(node)
                frontier.extend(node.output)
            elif node.op_type in _CHANNELS_FIRST_OPS:
                if walk.layout is None:
                    walk.layout = "NCHW"
                    walk.reason = (f"its first {node.op_type} {node.name!r} reads the input "
                                   "without a Transpose")
                walk.conv_channels = _conv_input_channels(node, weights)
                return walk
            elif node.op_type == "Transpose" and walk.layout is None:
                if list(_attribute(node, "perm", [])) != _TO_CHANNELS_FIRST:
                    return walk  # a layout this reading does not know: the dims decide
                walk.layout = "NHWC"
                walk.reason = f"the Transpose {node.name!r} (perm 0,3,1,2) after the input"
                frontier = list(node.output)  # on to the first convolution, for the channels
                break
    return walk


def _consumers(proto: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    """The nodes reading each tensor, in graph order."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in proto.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return consumers


def _layout_from_dims(dims: list[int | None]) -> tuple[str, str]:
    """The layout fixed dims imply (square images: the odd dim out is the channels)."""
    _, first, middle, last = dims
    shown = "[" + ", ".join("?" if dim is None else str(dim) for dim in dims) + "]"
    if None not in (first, middle, last):
        if middle == last != first:
            return "NCHW", f"its input dims {shown}"
        if first == middle != last:
            return "NHWC", f"its input dims {shown}"
    return "NCHW", f"ONNX's convention (neither the graph nor the dims {shown} say otherwise)"


def _conv_input_channels(node: onnx.NodeProto, weights: _Constants) -> int | None:
    """A convolution's input channels, ``weight.shape[1] * group``, when its weight is a
    constant (another channels-first operator says nothing about them)."""
    if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in weights:
        return None
    dims = list(weights.tensors[node.input[1]].dims)  # the shape, without reading the values
    return dims[1] * int(_attribute(node, "group", 1)) if len(dims) > 1 else None


def input_rescaling(proto: onnx.ModelProto, image: ImageInput) -> str | None:
    """Whether the graph itself turns 0..255 pixels into [0, 1] or [-1, 1], as Keras's
    ``Rescaling(1/255)`` or ``Rescaling(1/127.5, offset=-1)`` does: the node that
    multiplies by 1/255 or 1/127.5 (or divides by 255 or 127.5) among the element-wise
    nodes between the input and its first convolution (before or after the Transpose of a
    channels-last graph: tf2onnx's optimizer moves it), in words; else ``None``.

    Example: see ``tests/models/test_onnx_layout.py``.
    """
    weights = _Constants(proto)
    for node in _walk_from_input(proto, image.name).elementwise:
        if node.op_type not in ("Mul", "Div") or len(node.input) != 2:
            continue
        factor = _scalar(weights.get(node.input[1])) if node.input[1] in weights \
            else _scalar(weights.get(node.input[0]))
        if factor is None or factor == 0:
            continue
        divisor = 1 / factor if node.op_type == "Mul" else factor
        for scale, text in _PIXEL_SCALES.items():
            if abs(divisor - scale) <= 1e-4 * scale:
                verb = "multiplies" if node.op_type == "Mul" else "divides"
                amount = text if node.op_type == "Mul" else text.split("/")[1]
                return f"its {node.op_type} {node.name!r} {verb} the input by {amount}"
    return None


def final_activation(proto: onnx.ModelProto) -> FinalActivation | None:
    """The ``Softmax`` over the classes or the ``Sigmoid`` that computes the graph's single
    output (through ``Identity`` nodes, as tf2onnx often ends a graph), when nothing else
    reads its result; ``None`` otherwise.

    A ``Softmax`` counts when its axis is the output's class axis, 1: ``axis`` (default -1
    from opset 13, 1 before) normalised by the output's rank (2 when the file does not
    say), and for opsets before 13 only on a 2-D output (there it flattened the other axes
    into one).
    """
    graph = proto.graph
    if len(graph.output) != 1:
        return None
    producers = {name: node for node in graph.node for name in node.output}
    readers = {name: len(nodes) for name, nodes in _consumers(proto).items()}
    chain: list[onnx.NodeProto] = []
    node = producers.get(graph.output[0].name)
    while node is not None and node.op_type == "Identity" and len(node.input) == 1 \
            and readers.get(node.input[0], 0) == 1:
        chain.append(node)
        node = producers.get(node.input[0])
    if node is None or node.op_type not in ("Softmax", "Sigmoid") \
            or node.domain not in ("", "ai.onnx") or node.input[0] not in producers:
        return None
    if readers.get(node.output[0], 0) != (1 if chain else 0):
        return None  # something else reads the probabilities
    if node.op_type == "Softmax" and not _softmax_over_classes(proto, node):
        return None
    return FinalActivation(node.op_type, node.name, node.input[0], [node, *chain])


def _softmax_over_classes(proto: onnx.ModelProto, node: onnx.NodeProto) -> bool:
    opset = next((entry.version for entry in proto.opset_import
                  if entry.domain in ("", "ai.onnx")), 13)
    shape = proto.graph.output[0].type.tensor_type.shape
    rank = len(shape.dim) if proto.graph.output[0].type.tensor_type.HasField("shape") else 2
    axis = int(_attribute(node, "axis", -1 if opset >= 13 else 1))
    if rank < 2 or not -rank <= axis < rank:
        return False
    return axis % rank == 1 and (opset >= 13 or rank == 2)


def strip_final_activation(proto: onnx.ModelProto, found: FinalActivation) -> None:
    """Remove ``found``'s nodes: the graph's output becomes the logits they read."""
    removed = {id(node) for node in found.nodes}
    kept = [node for node in proto.graph.node if id(node) not in removed]
    del proto.graph.node[:]
    proto.graph.node.extend(kept)
    proto.graph.output[0].name = found.logits


class _Constants:
    """The graph's initializers and ``Constant`` node values by tensor name, each read
    into an array only when asked for (a model's weights can be large)."""

    def __init__(self, proto: onnx.ModelProto) -> None:
        self.tensors = {tensor.name: tensor for tensor in proto.graph.initializer}
        for node in proto.graph.node:
            if node.op_type == "Constant" and node.output:
                value = next(_values(node, "value"), None)
                if value is not None:
                    self.tensors[node.output[0]] = value

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def get(self, name: str) -> np.ndarray | None:
        """The tensor's values, or None when it is not a constant."""
        from onnx import numpy_helper

        tensor = self.tensors.get(name)
        return None if tensor is None else numpy_helper.to_array(tensor)


def _values(node: onnx.NodeProto, name: str) -> Iterator[onnx.TensorProto]:
    for attribute in node.attribute:
        if attribute.name == name and attribute.HasField("t"):
            yield attribute.t


def _attribute(node: onnx.NodeProto, name: str, default: object) -> object:
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _scalar(array: np.ndarray | None) -> float | None:
    """The one value of an array that holds one value (broadcast or not), else None."""
    if array is None or array.size == 0 or not np.issubdtype(array.dtype, np.number):
        return None
    flat = array.astype(np.float64).ravel()
    return float(flat[0]) if np.all(flat == flat[0]) else None
