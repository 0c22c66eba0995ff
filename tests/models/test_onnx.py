"""ONNX models through onnx2torch: ``axiomcam.models.from_onnx``, layers named by ONNX node
names, and ``axiomcam explain --model FILE.onnx``."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import pytest
import torch
import torchvision
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper
from torch.nn import functional as F

import axiomcam
from axiomcam import models
from axiomcam.cli import main
from axiomcam.images import sample_image
from axiomcam.models import MissingWeightsError, from_onnx, onnx_layer

SIZE = 64
NUM_CLASSES = 10
# torch layer -> the ONNX node computing the same tensor in torch.onnx.export's naming
# (a BasicBlock calls its ReLU twice: the second call is "relu_1")
SAME_TENSOR = {
    "layer4": "/layer4/layer4.1/relu_1/Relu",
    "layer3": "/layer3/layer3.1/relu_1/Relu",
    # the exporter folds each BatchNorm into the convolution before it
    "layer4.0.bn1": "/layer4/layer4.0/conv1/Conv",
}


def export(model: torch.nn.Module, example: torch.Tensor, path, **options) -> None:
    """torch's TorchScript-based exporter at opset 17, which onnx2torch converts (the
    default exporter of torch >= 2.9 writes opset-18 operators onnx2torch lacks)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch deprecates dynamo=False
        torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=17,
                          **options)


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    """A random-weight resnet18 (10 classes) and its ONNX file, exported at 64 x 64."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=NUM_CLASSES).eval()
    path = tmp_path_factory.mktemp("onnx") / "resnet18.onnx"
    export(model, torch.rand(1, 3, SIZE, SIZE), path)
    return model, path


@pytest.fixture(scope="module")
def converted(resnet):
    return from_onnx(resnet[1])


@pytest.fixture(scope="module")
def photos(converted):
    """chelsea and coffee as the converted model's (2, 3, 64, 64) inputs."""
    return converted.prepare([sample_image("chelsea"), sample_image("coffee")])


# ----------------------------------------------------------------------------- loading


def test_the_exported_file_shares_weights_through_identity_nodes(resnet):
    # the case from_onnx inlines: without it onnx2torch cannot convert this file at all
    graph = onnx.load(str(resnet[1])).graph
    constants = {tensor.name for tensor in graph.initializer}
    assert any(node.op_type == "Identity" and node.input[0] in constants
               for node in graph.node)


def test_outputs_equal_the_torch_model(resnet, converted):
    model, _ = resnet
    inputs = torch.randn(3, 3, SIZE, SIZE)  # another batch size than the export's
    with torch.no_grad():
        expected, actual = model(inputs), converted.model(inputs)
    assert actual.shape == (3, NUM_CLASSES)
    assert expected.abs().max() > 0.05  # not a trivially tiny output
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


def test_loaded_model_description(resnet, converted):
    assert converted.name == "resnet18.onnx"
    assert converted.input_size == SIZE  # the file's fixed input size
    assert converted.class_names == [f"class {index}" for index in range(NUM_CLASSES)]
    assert converted.default_layer == SAME_TENSOR["layer4"]
    assert converted.mean == models.IMAGENET_MEAN and converted.std == models.IMAGENET_STD
    assert not converted.model.training
    assert converted.prepare(sample_image("rocket")).shape == (1, 3, SIZE, SIZE)


def test_models_load_reads_an_onnx_file_as_from_onnx_does(resnet, converted, tmp_path):
    model, path = resnet
    loaded = models.load(path, classes=None)  # a path object, as the CLI's --model FILE.onnx
    assert (loaded.name, loaded.input_size, loaded.default_layer) == \
        (converted.name, converted.input_size, converted.default_layer)
    inputs = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(inputs), model(inputs), atol=1e-4, rtol=1e-4)
    (tmp_path / "names.txt").write_text("".join(f"n{index}\n" for index in range(NUM_CLASSES)))
    named = models.load(str(path), classes=tmp_path / "names.txt", mean=[0.5], std=[0.25])
    assert named.class_names[3] == "n3" and named.std == (0.25,) * 3
    with pytest.raises(models.ModelSpecError, match="--weights does not apply to the ONNX"):
        models.load(path, weights=path)


def test_layers_are_named_by_onnx_node_names(resnet, converted):
    graph = onnx.load(str(resnet[1])).graph
    modules = dict(converted.model.named_modules())
    called = [node.name for node in graph.node if node.op_type != "Identity"]
    assert len(called) > 40
    for name in called:
        assert name in modules, name
        assert onnx_layer(converted, name) == name
        assert onnx_layer(converted.model, name) == name
    # registered in call order, so the first convolution of model.modules() is the stem's
    assert [name for name in modules if name in set(called)] == called
    first_conv = next(module for module in converted.model.modules()
                      if isinstance(module, torch.nn.Conv2d))
    assert first_conv is modules["/conv1/Conv"] and first_conv.in_channels == 3


# ----------------------------------------------------------------------------- maps


def hand_raw(model, inputs, layer_name, method):
    """``sum_k w_k A^k`` at ``layer_name`` for each image's top class, from a hook and
    autograd: Grad-CAM ``w_k = mean_ij G^k_ij``, XGrad-CAM
    ``w_k = sum_ij A^k_ij G^k_ij / sum_ij A^k_ij`` (0 for an all-zero channel)."""
    layer = dict(model.named_modules())[layer_name]
    captured = []

    def capture(module, args, output):
        captured.append(output)
        return output.clone()  # what follows gets a copy: ResNet's ReLUs work in place

    handle = layer.register_forward_hook(capture)
    try:
        logits = model(inputs)
    finally:
        handle.remove()
    activation = captured[-1]
    score = logits.gather(1, logits.argmax(1, keepdim=True)).sum()
    (gradient,) = torch.autograd.grad(score, activation)
    activation, gradient = activation.detach(), gradient.detach()
    if method == "gradcam":
        weights = gradient.mean(dim=(2, 3))
    else:
        sums = activation.sum(dim=(2, 3))
        weights = torch.where(sums != 0, (activation * gradient).sum(dim=(2, 3))
                              / torch.where(sums != 0, sums, 1.0), 0.0)
    return (weights[:, :, None, None] * activation).sum(dim=1)


@pytest.mark.parametrize(("method", "torch_layer"), [
    ("gradcam", "layer4"), ("xgradcam", "layer4"),
    ("gradcam", "layer3"), ("xgradcam", "layer3"),
    # before BN, XGrad-CAM's sum_ij A^k_ij can be ~0, which turns rounding into noise
    ("gradcam", "layer4.0.bn1"),
])
def test_maps_by_onnx_node_name_equal_the_torch_model_and_a_hand_reference(
        resnet, converted, photos, method, torch_layer):
    model, _ = resnet
    node = SAME_TENSOR[torch_layer]
    onnx_exp = axiomcam.explain(converted.model, photos, method=method, target_layer=node)
    torch_exp = axiomcam.explain(model, photos, method=method, target_layer=torch_layer)
    assert onnx_exp.target_layer == node
    assert onnx_exp.maps.shape == (2, SIZE, SIZE)
    assert torch.equal(onnx_exp.targets, torch_exp.targets)
    for image_map in onnx_exp.maps:  # non-trivial: each map spans [0, 1]
        assert image_map.min() == 0 and image_map.max() == 1
        assert image_map.std() > 0.05
    torch.testing.assert_close(onnx_exp.maps, torch_exp.maps, atol=1e-4, rtol=0)
    reference = hand_raw(model, photos, torch_layer, method)
    assert onnx_exp.raw.shape == reference.shape
    scale = reference.abs().max()
    assert scale > 0
    torch.testing.assert_close(onnx_exp.raw / scale, reference / scale, atol=1e-4, rtol=0)


def test_default_layer_is_what_explain_picks(converted, photos):
    exp = axiomcam.explain(converted.model, photos, method="gradcam")
    assert exp.target_layer == converted.default_layer


def test_an_unknown_node_name_lists_near_matches(converted, photos):
    with pytest.raises(ValueError, match="does not exist") as error:
        axiomcam.explain(converted.model, photos, target_layer="/layer4/layer4.1/relu_2/Relu")
    assert "/layer4/layer4.1/relu_1/Relu" in str(error.value)
    with pytest.raises(ValueError, match=r"no node named '/layer4/layer4\.1/relu_2/Relu'. "
                                         r"Near matches: /layer4/layer4\.1/relu_1/Relu"):
        onnx_layer(converted, "/layer4/layer4.1/relu_2/Relu")
    with pytest.raises(TypeError, match=r"not made by axiomcam\.models\.from_onnx"):
        onnx_layer(torchvision.models.resnet18(), "/conv1/Conv")
    with pytest.raises(TypeError, match="node_name must be a str"):
        onnx_layer(converted, 3)


# ----------------------------------------------------------------------------- node names


def tiny_graph(path, nodes, initializers, *, opsets=(("", 17),), height="H", width="W",
               channels=3, out_features=4):
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, height, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", out_features])],
        [numpy_helper.from_array(array, name) for name, array in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(domain, version)
                                                   for domain, version in opsets])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_node_names_that_cannot_be_module_paths_keep_onnx2torchs_names(tmp_path):
    rng = np.random.default_rng(0)
    weights = {
        "w1": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "b1": rng.standard_normal(4).astype(np.float32),
        "w2": rng.standard_normal((4, 4, 3, 3)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="stem.conv", pads=[1] * 4),
        helper.make_node("Relu", ["c1"], ["r1"], name="stem"),  # a prefix of "stem.conv"
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="block.1/Conv", pads=[1] * 4),
        helper.make_node("Relu", ["c2"], ["r2"], name=""),  # unnamed
        helper.make_node("Relu", ["r2"], ["r3"], name="dup"),  # twice the same name
        helper.make_node("Relu", ["r3"], ["r4"], name="dup"),
        # "training" is an nn.Module attribute: it cannot be a submodule
        helper.make_node("GlobalAveragePool", ["r4"], ["p"], name="pool.training"),
        helper.make_node("Flatten", ["p"], ["y"], name="head.flatten"),
    ]
    path = tiny_graph(tmp_path / "tiny.onnx", nodes, weights)
    converted = from_onnx(path, input_size=8)
    assert converted.model.meta["onnx_layers"] == {
        "stem.conv": "stem/conv", "stem": "stem", "block.1/Conv": "block.1/Conv",
        "pool.training": "pool/training", "head.flatten": "head.flatten",
    }
    modules = dict(converted.model.named_modules())
    for name in ("stem/conv", "stem", "block.1/Conv", "Relu", "dup", "dup_1",
                 "pool/training", "head.flatten"):
        assert name in modules, name
    with pytest.raises(ValueError, match="no node named 'dup'"):
        onnx_layer(converted, "dup")  # ambiguous
    assert converted.default_layer == "dup_1"  # the last (B, C, h, w) output

    # the values: the same network written with torch's functional ops
    tensors = {name: torch.from_numpy(array) for name, array in weights.items()}
    x = torch.randn(2, 3, 8, 8)
    hidden = F.conv2d(F.relu(F.conv2d(x, tensors["w1"], tensors["b1"], padding=1)),
                      tensors["w2"], padding=1)
    expected = F.relu(hidden).mean(dim=(2, 3))
    with torch.no_grad():
        torch.testing.assert_close(converted.model(x), expected, atol=1e-5, rtol=1e-5)

    # Grad-CAM at "block.1/Conv" (A = hidden): y_c = mean_ij ReLU(A_c), so G^k is
    # [A_c > 0] / hw on channel c only, and raw = w_c A_c with w_c = mean_ij G^c_ij
    exp = axiomcam.explain(converted.model, x, method="gradcam", target_layer="block.1/Conv",
                           targets=[1, 2])
    assert exp.target_layer == "block.1/Conv"
    for row, target in enumerate((1, 2)):
        channel = hidden[row, target]
        weight = (channel > 0).float().mean() / channel.numel()
        torch.testing.assert_close(exp.raw[row], weight * channel, atol=1e-6, rtol=1e-5)


def test_free_input_size_defaults_to_224(tmp_path):
    weights = {"w": np.ones((2, 3, 1, 1), dtype=np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("GlobalAveragePool", ["c"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["y"], name="flat")]
    path = tiny_graph(tmp_path / "free.onnx", nodes, weights, out_features=2)
    assert from_onnx(path).input_size == 224
    assert from_onnx(path, input_size=32).input_size == 32


# ----------------------------------------------------------------------------- bad input


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'.*missing\.onnx' does not exist"):
        from_onnx(tmp_path / "missing.onnx")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        from_onnx(tmp_path)


@pytest.mark.parametrize(("content", "reason"), [
    (b"this is not an ONNX model\n", "DecodeError"),
    (bytes(range(256)) * 4, "DecodeError"),
    (b"", "no graph nodes"),
])
def test_a_file_that_is_not_onnx(tmp_path, content, reason):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="is not an ONNX model") as error:
        from_onnx(path)
    assert str(path) in str(error.value) and reason in str(error.value)


def test_operators_onnx2torch_cannot_convert_are_all_listed(tmp_path):
    nodes = [
        helper.make_node("Magic", ["x"], ["m"], name="spell", domain="com.example"),
        helper.make_node("ReduceMean", ["m", "axes"], ["y"], name="mean", keepdims=0),
    ]
    path = tiny_graph(tmp_path / "new.onnx", nodes, {"axes": np.array([2, 3])},
                      opsets=(("", 18), ("com.example", 1)), out_features=3)
    with pytest.raises(ValueError) as error:
        from_onnx(path)
    message = str(error.value)
    assert f"cannot convert the ONNX model {str(path)!r}" in message
    assert "com.example.Magic (opset 1; node 'spell')" in message
    assert "ReduceMean (opset 18; node 'mean')" in message
    assert "dynamo=False, opset_version=17" in message


def test_missing_onnx2torch_says_how_to_install(resnet, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "onnx2torch"
                        else real_find_spec(name, *args))
    with pytest.raises(MissingWeightsError, match=r"needs onnx2torch, not installed: run "
                                                  r"`pip install 'axiomcam\[onnx\]'`") as error:
        from_onnx(resnet[1])
    assert str(resnet[1]) in str(error.value)


def test_bad_options(resnet):
    path = resnet[1]
    with pytest.raises(ValueError, match="takes 64x64 inputs, not input_size=96"):
        from_onnx(path, input_size=96)
    with pytest.raises(ValueError, match=r"input_size .* must be a positive int"):
        from_onnx(path, input_size=0)
    with pytest.raises(ValueError, match=r"class_names has 2 names but the ONNX model .* has "
                                         r"10 outputs"):
        from_onnx(path, class_names=["cat", "dog"])
    with pytest.raises(TypeError, match="class_names must be a sequence of str"):
        from_onnx(path, class_names="cat")
    with pytest.raises(ValueError, match=r"std for .* must be finite numbers > 0, 1 per "
                                         r"channel \(or 1 for all channels\)"):
        from_onnx(path, std=(0.2, 0.0, 0.2))
    with pytest.raises(ValueError, match="invalid device"):
        from_onnx(path, device="gpu:x")


def test_inputs_that_are_not_rgb_images(tmp_path):
    weights = {"w": np.full((2, 1, 1, 1), 2.0, dtype=np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("GlobalAveragePool", ["c"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["y"], name="flat")]
    grey = from_onnx(tiny_graph(tmp_path / "grey.onnx", nodes, weights, channels=1,
                                out_features=2), input_size=8)
    # any channel count is taken now (tests/models/test_onnx_layout.py); grey: 1 channel,
    # pixels in [0, 1] by default (ImageNet's statistics are for RGB)
    assert (grey.channels, grey.mean, grey.std) == (1, (0.0,), (1.0,))
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(grey.model(x), 2 * x.mean(dim=(1, 2, 3))[:, None].expand(2, 2))
    weights = {"w": np.ones((2, 3, 1, 1), dtype=np.float32)}
    wide = tiny_graph(tmp_path / "wide.onnx", nodes, weights, height=32, width=48,
                      out_features=2)
    with pytest.raises(ValueError, match="takes 32x48 inputs"):
        from_onnx(wide)


# ----------------------------------------------------------------------------- command line


def test_command_line_explains_with_an_onnx_file(resnet, tmp_path):
    photo = tmp_path / "cat.png"
    sample_image("chelsea").save(photo)
    out = tmp_path / "maps"
    node = SAME_TENSOR["layer3"]
    result = CliRunner().invoke(main, ["explain", str(photo), "--model", str(resnet[1]),
                                       "--method", "gradcam", "--layer", node,
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["layer"] == node
    (record,) = results["images"]
    (entry,) = record["maps"]
    overlay = out / entry["overlay"]
    assert overlay.is_file() and overlay.stat().st_size > 1000
    from PIL import Image

    assert Image.open(overlay).size == sample_image("chelsea").size
    assert np.load(out / entry["raw"]).shape == (4, 4)  # layer3 of a 64 x 64 input

    layers = CliRunner().invoke(main, ["layers", "--model", str(resnet[1])])
    assert layers.exit_code == 0, layers.stderr
    assert f"* {SAME_TENSOR['layer4']}" in layers.stdout  # the default, marked

    wrong = CliRunner().invoke(main, ["explain", str(photo), "--model", str(resnet[1]),
                                      "--weights", str(resnet[1]), "--out", str(out)])
    assert wrong.exit_code == 2
    assert "--weights does not apply to the ONNX model" in wrong.stderr
