"""ONNX models as TensorFlow/Keras exports them: channels-last inputs (``N,H,W,C``), a final
``Softmax`` or ``Sigmoid``, preprocessing baked into the graph, and any channel count.

The ONNX files are written by ``torch.onnx.export`` from PyTorch modules that take
channels-last inputs and permute them, as tf2onnx's graphs do; each converted model is
checked against the same PyTorch network, values and maps.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import pytest
import torch
import torchvision.transforms.functional as TF
from click.testing import CliRunner
from onnx import TensorProto, helper
from torch import nn

import axiomcam
from axiomcam import models
from axiomcam.cli import main
from axiomcam.images import array_image, sample_image
from axiomcam.models import ModelSpecError, from_onnx, onnx_layer
from axiomcam.models.onnx_graph import final_activation, input_rescaling, read_image_input

SIZE = 16
CLASSES = 4
# the ONNX node of the network's last ReLU, and the same layer in PyTorch
LAST_RELU = "/features/features.3/Relu"
TORCH_LAST_RELU = "features.3"


class Logits(nn.Module):
    """The network in PyTorch: ``(B, C, H, W)`` inputs to logits (the reference)."""

    def __init__(self, channels: int = 3, scale: float | None = None) -> None:
        super().__init__()
        self.scale = scale
        self.features = nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x if self.scale is None else x * self.scale))


class ChannelsLast(nn.Module):
    """What gets exported: channels-last inputs, an optional rescaling before the
    transpose (Keras's ``Rescaling``), the network, then ``tail``."""

    def __init__(self, network: Logits, tail: str | None) -> None:
        super().__init__()
        self.network, self.tail = network, tail

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.network.scale is not None:
            x = x * self.network.scale  # in NHWC, as Keras rescales before its first conv
        z = self.network.head(self.network.features(x.permute(0, 3, 1, 2)))
        if self.tail == "softmax":
            return z.softmax(dim=-1)
        return torch.sigmoid(z) if self.tail == "sigmoid" else z


def export(module: nn.Module, example: torch.Tensor, path, **options) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch deprecates dynamo=False
        torch.onnx.export(module.eval(), (example,), str(path), dynamo=False, opset_version=17,
                          input_names=["input_1"], **options)


def make(tmp_path, name: str, *, tail: str | None = "softmax", channels: int = 3,
         scale: float | None = None, channels_last: bool = True, dynamic: bool = False):
    """A random network and its ONNX file (fixed 16 x 16 inputs unless ``dynamic``)."""
    torch.manual_seed(0)
    network = Logits(channels, scale).eval()
    path = tmp_path / name
    dims = (1, SIZE, SIZE, channels) if channels_last else (1, channels, SIZE, SIZE)
    exported = ChannelsLast(network, tail) if channels_last else network
    axes = {"input_1": {0: "N", 1: "A", 2: "B", 3: "C"}} if dynamic else None
    export(exported, torch.rand(dims), path, dynamic_axes=axes)
    return network, path


@pytest.fixture(scope="module")
def softmax_model(tmp_path_factory):
    return make(tmp_path_factory.mktemp("nhwc"), "keras_like.onnx")


@pytest.fixture(scope="module")
def sigmoid_model(tmp_path_factory):
    return make(tmp_path_factory.mktemp("nhwc"), "multi_label.onnx", tail="sigmoid")


def inputs_of(channels: int = 3) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(3, channels, SIZE, SIZE)


# ----------------------------------------------------------------------------- reading


def test_a_channels_last_softmax_graph_is_read_as_it_is(softmax_model):
    network, path = softmax_model
    graph = onnx.load(str(path)).graph
    assert graph.node[0].op_type == "Transpose"  # right after the input, as tf2onnx writes it
    assert graph.node[-1].op_type == "Softmax"
    converted = from_onnx(path)
    assert (converted.input_size, converted.channels) == (SIZE, 3)
    assert converted.score == "logits before the graph's final Softmax"
    assert converted.probability == "softmax"
    layout, tail, preprocessing = converted.notes
    assert "channels-last (N, H, W, C)" in layout and "'/Transpose'" in layout
    assert "Softmax '/Softmax'" in tail and "--onnx-score probability" in tail
    # no rescaling node in this graph: TensorFlow's usual [-1, 1]
    assert "preprocessing 'tf'" in preprocessing
    assert converted.mean == (0.5,) * 3 and converted.std == (0.5,) * 3

    # the converted model takes (B, C, H, W) and returns the logits before the Softmax
    x = inputs_of()
    with torch.no_grad():
        logits = network(x)
        torch.testing.assert_close(converted.model(x), logits, atol=1e-5, rtol=1e-5)
        exported = ChannelsLast(network, "softmax")(x.permute(0, 2, 3, 1))
        torch.testing.assert_close(converted.probabilities(converted.model(x)), exported)
    assert logits.std() > 0.01  # not a degenerate network
    # layers keep their node names; the Softmax node is not in the model
    assert converted.default_layer == LAST_RELU
    assert onnx_layer(converted, LAST_RELU) == LAST_RELU
    with pytest.raises(ValueError, match="no node named '/Softmax'"):
        onnx_layer(converted, "/Softmax")


def test_symbolic_dims_are_read_from_the_transpose_and_the_first_convolution(tmp_path):
    network, path = make(tmp_path, "free.onnx", channels=5, tail=None, dynamic=True)
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert all(dim.dim_param for dim in dims)  # nothing fixed: the graph must say it all
    converted = from_onnx(path, input_size=24)
    assert (converted.channels, converted.input_size) == (5, 24)
    assert "the Transpose '/Transpose' (perm 0,3,1,2) after the input" in converted.notes[0]
    assert converted.score == "the graph's output"
    x = torch.rand(2, 5, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(converted.model(x), network(x), atol=1e-5, rtol=1e-5)


def small_graph(path, nodes, dims, initializers=()):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], list(initializers))
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.save(proto, str(path))
    return proto


@pytest.mark.parametrize(("dims", "layout", "channels", "reason"), [
    (["N", 8, 8, 3], "NHWC", 3, "its input dims [?, 8, 8, 3]"),
    (["N", 3, 8, 8], "NCHW", 3, "its input dims [?, 3, 8, 8]"),
    (["N", "H", "W", "C"], "NCHW", None, "ONNX's convention"),
])
def test_without_a_convolution_the_fixed_dims_decide(tmp_path, dims, layout, channels, reason):
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat"),
             helper.make_node("ReduceMax", ["f"], ["y"], name="max", keepdims=1)]
    found = read_image_input(small_graph(tmp_path / "g.onnx", nodes, dims), "g.onnx")
    assert (found.layout, found.channels) == (layout, channels)
    assert found.reason.startswith(reason)
    forced = read_image_input(small_graph(tmp_path / "g.onnx", nodes, dims), "g.onnx",
                              layout="NHWC")
    assert (forced.layout, forced.reason) == ("NHWC", "layout='NHWC' was given")


def test_a_convolution_without_transpose_means_channels_first(tmp_path):
    weight = helper.make_tensor("w", TensorProto.FLOAT, [2, 6, 1, 1], [0.0] * 12)
    nodes = [helper.make_node("Mul", ["x", "x"], ["m"], name="square"),
             helper.make_node("Conv", ["m", "w"], ["c"], name="conv", group=2),
             helper.make_node("GlobalAveragePool", ["c"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["y"], name="flat")]
    # square dims that would read as NHWC: the graph says otherwise, and it wins
    found = read_image_input(small_graph(tmp_path / "g.onnx", nodes, ["N", 12, 12, 12],
                                         [weight]), "g.onnx")
    assert (found.layout, found.channels) == ("NCHW", 12)
    assert found.reason == "its first Conv 'conv' reads the input without a Transpose"
    free = read_image_input(small_graph(tmp_path / "g.onnx", nodes, ["N", "C", "H", "W"],
                                        [weight]), "g.onnx")
    assert free.channels == 12  # weight (2, 6, 1, 1) with group 2


# ----------------------------------------------------------------------------- maps


@pytest.mark.parametrize("method", ["gradcam", "xgradcam", "gradcam++", "layercam", "scorecam"])
@pytest.mark.parametrize("tail", ["softmax", "sigmoid"])
def test_maps_equal_the_pytorch_network_explained_on_its_logits(
        softmax_model, sigmoid_model, method, tail):
    network, path = softmax_model if tail == "softmax" else sigmoid_model
    converted = from_onnx(path)
    x = inputs_of()
    onnx_exp = axiomcam.explain(converted.model, x, method=method, target_layer=LAST_RELU)
    torch_exp = axiomcam.explain(network, x, method=method, target_layer=TORCH_LAST_RELU)
    assert onnx_exp.maps.shape == (3, SIZE, SIZE)
    assert torch.equal(onnx_exp.targets, torch_exp.targets)
    torch.testing.assert_close(onnx_exp.scores, torch_exp.scores, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # the scores are the logits, not the probabilities
        logits = network(x)
    torch.testing.assert_close(onnx_exp.scores, logits[torch.arange(3), onnx_exp.targets],
                               atol=1e-5, rtol=1e-5)
    assert all(image_map.max() == 1 and image_map.std() > 0.05 for image_map in onnx_exp.maps)
    torch.testing.assert_close(onnx_exp.maps, torch_exp.maps, atol=1e-4, rtol=0)
    scale = torch_exp.raw.abs().max()
    torch.testing.assert_close(onnx_exp.raw / scale, torch_exp.raw / scale, atol=1e-5, rtol=0)


@pytest.mark.parametrize("tail", ["softmax", "sigmoid"])
def test_the_probability_option_explains_the_graphs_own_output(
        softmax_model, sigmoid_model, tail):
    network, path = softmax_model if tail == "softmax" else sigmoid_model
    converted = from_onnx(path, score="probability")
    assert converted.score == f"probabilities: the output of the graph's final {tail.title()}"
    assert converted.probability == "output"
    assert not any("ends in" in note for note in converted.notes)
    x = inputs_of()
    with torch.no_grad():
        logits = network(x)
    squash = (lambda z: z.softmax(dim=1)) if tail == "softmax" else torch.sigmoid
    with torch.no_grad():
        torch.testing.assert_close(converted.model(x), squash(logits), atol=1e-6, rtol=1e-5)
    targets = torch.tensor([1, 2, 3])
    onnx_exp = axiomcam.explain(converted.model, x, method="gradcam", target_layer=LAST_RELU,
                                targets=targets)
    # the same network in PyTorch, its probability as a callable target
    torch_exp = axiomcam.explain(network, x, method="gradcam", target_layer=TORCH_LAST_RELU,
                                 targets=lambda output: squash(output)[torch.arange(3), targets])
    probabilities = squash(logits)[torch.arange(3), targets]
    torch.testing.assert_close(onnx_exp.scores, probabilities)
    torch.testing.assert_close(torch_exp.scores, probabilities)
    scale = torch_exp.raw.abs().max()
    assert scale > 0
    torch.testing.assert_close(onnx_exp.raw / scale, torch_exp.raw / scale, atol=1e-5, rtol=0)
    # and how it relates to the logit's map, which the default explains
    logit_exp = axiomcam.explain(network, x, method="gradcam", target_layer=TORCH_LAST_RELU,
                                 targets=targets)
    if tail == "sigmoid":  # d sigmoid(z_c) = sigmoid'(z_c) dz_c: the same map, scaled
        slope = probabilities * (1 - probabilities)
        torch.testing.assert_close(onnx_exp.raw / scale, slope[:, None, None] * logit_exp.raw
                                   / scale, atol=1e-5, rtol=0)
    else:  # d p_c = p_c (dz_c - sum_j p_j dz_j): another map, not only another scale
        def unit(raw):
            return raw / raw.abs().amax(dim=(1, 2), keepdim=True)
        assert (unit(onnx_exp.raw) - unit(logit_exp.raw)).abs().max() > 0.05


def test_grey_and_five_channel_graphs(tmp_path):
    for channels, channels_last in ((1, True), (5, False)):
        network, path = make(tmp_path, f"c{channels}.onnx", channels=channels,
                             channels_last=channels_last, tail="softmax")
        converted = from_onnx(path)
        assert converted.channels == channels
        x = inputs_of(channels)
        onnx_exp = axiomcam.explain(converted.model, x, method="xgradcam",
                                    target_layer=LAST_RELU)
        torch_exp = axiomcam.explain(network, x, method="xgradcam",
                                     target_layer=TORCH_LAST_RELU)
        torch.testing.assert_close(onnx_exp.maps, torch_exp.maps, atol=1e-4, rtol=0)
        scale = torch_exp.raw.abs().max()
        assert scale > 0
        torch.testing.assert_close(onnx_exp.raw / scale, torch_exp.raw / scale, atol=1e-5,
                                   rtol=0)
    # 5 channels, pixels in [0, 1] as they are: prepare() takes an array's picture
    bands = from_onnx(tmp_path / "c5.onnx")
    assert (bands.mean, bands.std) == ((0.0,) * 5, (1.0,) * 5)
    values = np.random.default_rng(0).random((5, 30, 20), dtype=np.float32)
    expected = TF.center_crop(TF.resize(torch.from_numpy(values), 18, antialias=True), SIZE)
    torch.testing.assert_close(bands.prepare(array_image(values, 5))[0], expected)
    grey = from_onnx(tmp_path / "c1.onnx")
    assert "converted to grey" in " ".join(grey.notes)
    # grey: the photo's luma, [-1, 1] (a channels-last graph)
    photo = sample_image("coffee")
    expected = TF.to_tensor(TF.center_crop(TF.resize(photo.convert("L"), 18), SIZE)) * 2 - 1
    torch.testing.assert_close(grey.prepare(photo)[0], expected)


# ----------------------------------------------------------------------------- preprocessing


def test_a_graph_that_rescales_0_255_itself_gets_raw_pixels(tmp_path):
    network, path = make(tmp_path, "rescaling.onnx", scale=1 / 255)
    found = input_rescaling(onnx.load(str(path)), read_image_input(onnx.load(str(path)), path))
    assert found == "its Mul '/Mul' multiplies the input by 1/255"
    converted = from_onnx(path)
    assert converted.mean == (0.0,) * 3 and converted.std == pytest.approx((1 / 255,) * 3)
    assert any(note.startswith("preprocessing 'raw255'") and "'/Mul'" in note
               for note in converted.notes)
    photo = sample_image("chelsea")
    prepared = converted.prepare(photo)
    pixels = TF.pil_to_tensor(TF.center_crop(TF.resize(photo, 18), SIZE)).float()
    torch.testing.assert_close(prepared[0], pixels, atol=1e-4, rtol=1e-6)  # 0..255
    with torch.no_grad():  # the graph rescales them: the network sees [0, 1]
        torch.testing.assert_close(converted.model(prepared), network(prepared), atol=1e-5,
                                   rtol=1e-5)


def test_rescaling_is_found_after_the_transpose_and_in_channels_first_graphs(tmp_path):
    # a channels-first graph that multiplies by 1/127.5 before its first convolution
    network, path = make(tmp_path, "nchw.onnx", scale=1 / 127.5, channels_last=False,
                         tail=None)
    converted = from_onnx(path)
    assert converted.std == pytest.approx((1 / 255,) * 3)
    assert "its Mul '/Mul' multiplies the input by 1/127.5" in converted.notes[-1]
    x = inputs_of() * 255
    with torch.no_grad():
        torch.testing.assert_close(converted.model(x), network(x), atol=1e-5, rtol=1e-5)
    # Transpose, then a Div by 255 (where tf2onnx's optimizer may move Keras's Rescaling)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], name="to_nchw", perm=[0, 3, 1, 2]),
             helper.make_node("Div", ["t", "k"], ["d"], name="rescale"),
             helper.make_node("GlobalAveragePool", ["d"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["y"], name="flat")]
    proto = small_graph(tmp_path / "g.onnx", nodes, ["N", 8, 8, 3],
                        [helper.make_tensor("k", TensorProto.FLOAT, [1], [255.0])])
    assert input_rescaling(proto, read_image_input(proto, "g.onnx")) == \
        "its Div 'rescale' divides the input by 255"
    proto.graph.initializer[0].float_data[:] = [2.0]  # any other factor: not pixels
    assert input_rescaling(proto, read_image_input(proto, "g.onnx")) is None


@pytest.mark.parametrize(("options", "mean", "std", "noted"), [
    ({"preprocess": "imagenet"}, models.IMAGENET_MEAN, models.IMAGENET_STD, False),
    ({"preprocess": "unit"}, (0.0,) * 3, (1.0,) * 3, False),
    # the default preset's std is kept, and the note about it too
    ({"mean": [0.25]}, (0.25,) * 3, (0.5,) * 3, True),
    ({"mean": [0.1, 0.2, 0.3], "std": [2.0]}, (0.1, 0.2, 0.3), (2.0,) * 3, False),
])
def test_options_replace_the_default_preprocessing(softmax_model, options, mean, std, noted):
    converted = from_onnx(softmax_model[1], **options)
    assert (converted.mean, converted.std) == (mean, std)
    assert any(note.startswith("preprocessing 'tf'") for note in converted.notes) == noted


def test_models_load_passes_the_options_on(softmax_model, tmp_path):
    loaded = models.load(softmax_model[1], preprocess="raw255", onnx_score="probability")
    assert loaded.std == pytest.approx((1 / 255,) * 3)
    assert loaded.probability == "output"
    torch.save(nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()),
               tmp_path / "net.pt")
    with pytest.raises(ModelSpecError, match="--onnx-score probability applies to ONNX files"):
        models.load(str(tmp_path / "net.pt"), onnx_score="probability")
    tf = models.load(str(tmp_path / "net.pt"), preprocess="tf", size=16)
    assert (tf.mean, tf.std, tf.channels, tf.notes) == ((0.5,) * 3, (0.5,) * 3, 3, ())


# ----------------------------------------------------------------------------- what stays


def test_a_softmax_over_another_axis_or_read_elsewhere_stays(tmp_path):
    # softmax over the last axis of a (N, 4, 2) output: not over the classes
    nodes = [helper.make_node("Softmax", ["x"], ["y"], name="s", axis=2)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 2])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert final_activation(proto) is None
    # a Softmax whose output another node reads too
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Softmax", ["r"], ["y"], name="s", axis=1),
             helper.make_node("ArgMax", ["y"], ["a"], name="pick")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert final_activation(proto) is None
    del proto.graph.node[2]  # alone, it is the final activation, through Identity nodes too
    proto.graph.node.append(helper.make_node("Identity", ["y"], ["out"], name="id"))
    proto.graph.output[0].name = "out"
    found = final_activation(proto)
    assert found.describe() == "Softmax 's'" and found.logits == "r"


# ----------------------------------------------------------------------------- errors


def test_bad_options_and_graphs_are_clear_errors(softmax_model, tmp_path):
    _, plain = make(tmp_path, "plain.onnx", tail=None, channels_last=False)
    with pytest.raises(ValueError, match=r"score='probability' needs a graph that ends in a "
                                         r"Softmax or Sigmoid; the ONNX model .*plain\.onnx' "
                                         r"ends in Gemm '/head/head\.2/Gemm'"):
        from_onnx(plain, score="probability")
    path = softmax_model[1]
    with pytest.raises(ModelSpecError, match=r"score for .* must be one of logits, "
                                             r"probability, not 'probabilities'"):
        from_onnx(path, score="probabilities")
    with pytest.raises(ModelSpecError, match=r"layout for .* must be one of NCHW, NHWC"):
        from_onnx(path, layout="NWHC")
    with pytest.raises(ModelSpecError, match=r"keras_like\.onnx' takes 3-channel inputs but "
                                             r"the mean has 2 values and the std 1"):
        from_onnx(path, mean=[0.5, 0.5])
    with pytest.raises(ModelSpecError, match=r"give a preprocessing preset .* or a mean and "
                                             r"std, not both"):
        from_onnx(path, preprocess="tf", std=[0.5])
    with pytest.raises(ModelSpecError, match=r"unknown preprocessing preset 'keras'; the "
                                             r"presets: imagenet: .*tf: pixels in \[-1, 1\]"):
        from_onnx(path, preprocess="keras")
    # forcing the wrong layout: the dims [1, 16, 16, 3] read as N, C, H, W
    with pytest.raises(ValueError, match=r"keras_like\.onnx' takes 16x3 inputs"):
        from_onnx(path, layout="NCHW")


# ----------------------------------------------------------------------------- command line


def whole_image_input(image, scale: float, shift: float) -> torch.Tensor:
    """The command line's preprocessing, written out: the whole image resized to 16 x 16,
    pixels in [0, 1] times ``scale`` plus ``shift``."""
    resized = TF.resize(image, [SIZE, SIZE], interpolation=TF.InterpolationMode.BILINEAR,
                        antialias=True)
    return TF.to_tensor(resized)[None] * scale + shift


def test_the_command_line_explains_a_keras_like_file_with_no_other_flag(softmax_model,
                                                                        tmp_path):
    network, path = softmax_model
    photo = sample_image("chelsea")
    photo.save(tmp_path / "cat.png")
    out = tmp_path / "maps"
    result = CliRunner().invoke(main, ["explain", str(tmp_path / "cat.png"), "--model",
                                       str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    assert "(1 map of the logits before the graph's final Softmax, xgradcam at " \
           f"{LAST_RELU})" in result.stdout
    notes = result.stderr.splitlines()
    assert len(notes) == 3 and all(line.startswith("axiomcam: note: keras_like.onnx: ")
                                   for line in notes)
    results = json.loads((out / "results.json").read_text())
    assert results["score"] == "logits before the graph's final Softmax"
    assert results["layer"] == LAST_RELU
    assert results["preprocessing"]["channels"] == 3
    assert results["preprocessing"]["mean"] == [0.5] * 3  # the 'tf' preset: [-1, 1]
    assert len(results["notes"]) == 3
    (entry,) = results["images"][0]["maps"]

    x = whole_image_input(photo, 2.0, -1.0)
    with torch.no_grad():
        logits = network(x)[0]
    top = int(logits.argmax())
    assert entry["class_index"] == top
    assert entry["score"] == pytest.approx(float(logits[top]), abs=1e-4)
    assert entry["probability"] == pytest.approx(float(logits.softmax(0)[top]), abs=1e-5)
    expected = axiomcam.explain(network, x, method="xgradcam", target_layer=TORCH_LAST_RELU)
    raw = torch.from_numpy(np.load(out / entry["raw"]))
    scale = expected.raw.abs().max()
    torch.testing.assert_close(raw / scale, expected.raw[0] / scale, atol=1e-5, rtol=0)

    probability = CliRunner().invoke(main, [
        "explain", str(tmp_path / "cat.png"), "--model", str(path), "--out",
        str(tmp_path / "probability"), "--onnx-score", "probability", "--preprocess", "tf",
        "--method", "gradcam"])
    assert probability.exit_code == 0, probability.stderr
    assert len(probability.stderr.splitlines()) == 1  # the layout only: no Softmax left out
    results = json.loads((tmp_path / "probability" / "results.json").read_text())
    assert results["score"] == "probabilities: the output of the graph's final Softmax"
    (entry,) = [entry for image in results["images"] for entry in image["maps"]]
    assert entry["score"] == pytest.approx(float(logits.softmax(0)[top]), abs=1e-5)
    assert entry["probability"] == pytest.approx(entry["score"], abs=1e-6)


def test_the_layers_command_lists_the_node_names_of_a_channels_last_file(softmax_model):
    result = CliRunner().invoke(main, ["layers", "--model", str(softmax_model[1])])
    assert result.exit_code == 0, result.stderr
    assert f"* {LAST_RELU}" in result.stdout
    for node in ("/features/features.0/Conv", "/features/features.1/Relu",
                 "/features/features.2/Conv"):
        assert f"  {node} " in result.stdout
    assert "(input 16x16)" in result.stdout
