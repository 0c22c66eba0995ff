"""axiomcam.models.load: every --model form end to end, class files, preprocessing, and each error.

Every model here is built by the test (tiny nets, torchvision/timm architectures with
random weights saved to tmp_path), so nothing is downloaded.
"""

from __future__ import annotations

import json
import sys
import textwrap
import uuid
import warnings

import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

import axiomcam
from axiomcam import models
from axiomcam.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MissingWeightsError,
    checks,
    read_class_names,
    read_state_dict,
    specs,
)

SIZE = 32  # input side for the tiny nets: fast, and enough for a 3x3 conv stage


def tiny_net(classes: int = 3, seed: int = 0) -> nn.Module:
    """Conv-ReLU-pool-linear: built from torch's own classes, so a pickle of it loads
    anywhere."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, classes),
    ).eval()


def logits(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(inputs)


@pytest.fixture
def inputs() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(2, 3, SIZE, SIZE)


FACTORY_SOURCE = textwrap.dedent(
    """
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self, classes=3):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(4, classes)

        def forward(self, x):
            return self.fc(self.pool(self.features(x)).flatten(1))

    def build():
        torch.manual_seed(0)
        return Net()

    INSTANCE = build()

    def needs_argument(classes):
        return Net(classes)

    def not_a_model():
        return 42

    def spatial_output():
        return nn.Conv2d(3, 2, 1)

    def fixed_size():
        return nn.Sequential(nn.Conv2d(3, 2, 1), nn.Flatten(), nn.Linear(2 * 8 * 8, 3))

    def traced():
        return torch.jit.trace(build().eval(), torch.zeros(1, 3, 8, 8))
    """
)


@pytest.fixture
def factory_module(tmp_path, monkeypatch) -> str:
    """A fresh module in tmp_path (the working directory, not on sys.path)."""
    name = f"user_nets_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(FACTORY_SOURCE)
    monkeypatch.chdir(tmp_path)
    assert str(tmp_path) not in sys.path
    yield name
    sys.modules.pop(name, None)


# ----------------------------------------------------------------------------- forms


def test_factory_function_gives_the_modules_own_logits(factory_module, inputs):
    loaded = models.load(f"{factory_module}:build", size=SIZE)
    reference = sys.modules[factory_module].build()
    assert torch.equal(logits(loaded.model, inputs), logits(reference, inputs))
    assert loaded.name == f"{factory_module}:build"
    assert loaded.class_names == ["class 0", "class 1", "class 2"]
    assert loaded.default_layer == "features"  # conv + ReLU stage, last spatial output
    assert not loaded.model.training


def test_factory_does_not_leave_cwd_on_sys_path(factory_module):
    before = list(sys.path)
    models.load(f"{factory_module}:build", size=SIZE)
    assert sys.path == before


def test_factory_instance_and_class(factory_module, inputs):
    instance = models.load(f"{factory_module}:INSTANCE", size=SIZE)
    assert instance.model is sys.modules[factory_module].INSTANCE
    from_class = models.load(f"{factory_module}:Net", size=SIZE)
    assert type(from_class.model).__name__ == "Net"
    assert from_class.model(inputs).shape == (2, 3)


def test_factory_with_weights_loads_them(factory_module, tmp_path, inputs):
    loaded = models.load(f"{factory_module}:build", size=SIZE)
    other = type(loaded.model)()
    torch.manual_seed(5)
    for parameter in other.parameters():
        nn.init.normal_(parameter)
    path = tmp_path / "other.pth"
    torch.save(other.state_dict(), path)
    reloaded = models.load(f"{factory_module}:build", weights=path, size=SIZE)
    assert torch.equal(logits(reloaded.model, inputs), logits(other, inputs))
    assert not torch.equal(logits(reloaded.model, inputs), logits(loaded.model, inputs))


def test_torchvision_state_dict_round_trip(tmp_path, inputs):
    original = torchvision.models.resnet18(num_classes=3).eval()
    path = tmp_path / "resnet18.pth"
    torch.save(original.state_dict(), path)
    loaded = models.load("resnet18", weights=path, size=64)  # layer4 is 2 x 2
    assert torch.equal(logits(loaded.model, inputs), logits(original, inputs))
    assert loaded.model.fc.out_features == 3  # from the file's fc.weight
    assert loaded.class_names == ["class 0", "class 1", "class 2"]
    assert loaded.default_layer == "layer4"
    assert loaded.name == "resnet18"


def test_torchvision_prefix_checkpoint_dict_and_dataparallel_prefix(tmp_path, inputs):
    original = torchvision.models.resnet18(num_classes=3).eval()
    checkpoint = {
        "epoch": 7,
        "state_dict": {f"module.{key}": value for key, value in original.state_dict().items()},
    }
    path = tmp_path / "checkpoint.pth"
    torch.save(checkpoint, path)
    loaded = models.load("torchvision:resnet18", weights=path, size=SIZE)
    assert loaded.name == "torchvision:resnet18"
    assert torch.equal(logits(loaded.model, inputs), logits(original, inputs))


def test_torchvision_1000_classes_get_imagenet_names(tmp_path):
    original = torchvision.models.squeezenet1_1()  # 1000 outputs, a conv classifier
    path = tmp_path / "squeeze.pth"
    torch.save(original.state_dict(), path)
    loaded = models.load("squeezenet1_1", weights=path, size=64)
    assert len(loaded.class_names) == 1000
    assert loaded.class_names[967] == "espresso"


def test_timm_state_dict_round_trip(tmp_path, inputs):
    timm = pytest.importorskip("timm")
    original = timm.create_model("test_resnet", pretrained=False, num_classes=5).eval()
    path = tmp_path / "timm.pth"
    torch.save(original.state_dict(), path)
    for spec in ("timm:test_resnet", "test_resnet"):  # not a torchvision name: timm's
        loaded = models.load(spec, weights=path, size=SIZE)
        assert torch.equal(logits(loaded.model, inputs), logits(original, inputs))
        assert len(loaded.class_names) == 5
        # timm's configuration for test_resnet normalises with 0.5 / 0.5
        assert loaded.mean == (0.5, 0.5, 0.5)
        assert loaded.std == (0.5, 0.5, 0.5)


def test_pickled_full_model(tmp_path, inputs):
    original = tiny_net()
    path = tmp_path / "full.pt"
    torch.save(original, path)
    loaded = models.load(str(path), size=SIZE)
    assert loaded.name == "full.pt"
    assert torch.equal(logits(loaded.model, inputs), logits(original, inputs))
    assert loaded.default_layer == "1"
    # a path object works too, and so does a checkpoint that stores the whole model
    torch.save({"model": original, "epoch": 1}, tmp_path / "checkpoint.pt")
    from_checkpoint = models.load(tmp_path / "checkpoint.pt", size=SIZE)
    assert torch.equal(logits(from_checkpoint.model, inputs), logits(original, inputs))


def test_pickled_model_in_train_mode_is_put_in_eval_mode(tmp_path):
    original = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).train()
    torch.save(original, tmp_path / "train.pt")
    assert not models.load(str(tmp_path / "train.pt"), size=SIZE).model.training


def test_loaded_model_explains_end_to_end(tmp_path, inputs):
    torch.save(tiny_net(), tmp_path / "net.pt")
    loaded = models.load(str(tmp_path / "net.pt"), size=SIZE)
    exp = axiomcam.explain(loaded.model, inputs, method="gradcam",
                           target_layer=loaded.default_layer)
    assert exp.maps.shape == (2, SIZE, SIZE)


# ----------------------------------------------------------------------------- TorchScript


def _scripted(tmp_path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        path = tmp_path / "scripted.pt"
        torch.jit.save(torch.jit.script(tiny_net()), str(path))
    return str(path)


def test_torchscript_hooks_do_not_work_in_this_torch(tmp_path):
    """The fact models.load relies on: a loaded ScriptModule refuses forward hooks."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.load(_scripted(tmp_path))
    conv = dict(scripted.named_modules())["0"]
    with pytest.raises(RuntimeError, match="not supported on ScriptModules"):
        conv.register_forward_hook(lambda *args: None)


def test_torchscript_file_is_refused_with_advice(tmp_path):
    with pytest.raises(ValueError, match="TorchScript models cannot be hooked") as info:
        models.load(_scripted(tmp_path), size=SIZE)
    assert "torch.save(model.state_dict(), FILE)" in str(info.value)


def test_traced_module_from_a_factory_is_refused(factory_module):
    # tracing registers hooks without error, but they are never called
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        with pytest.raises(ValueError, match=r"never called.*cannot be hooked"):
            models.load(f"{factory_module}:traced", size=8)


def test_hook_probe_accepts_an_eager_model():
    assert checks._hook_problem(tiny_net(), torch.zeros(1, 3, SIZE, SIZE)) is None


def test_hook_probe_finds_a_layer_with_no_gradient():
    class Detached(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3)
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            return self.fc(self.conv(x).detach().mean((2, 3)))

    problem = checks._hook_problem(Detached(), torch.zeros(1, 3, 8, 8))
    assert problem is not None and "gradient" in problem


# ----------------------------------------------------------------------------- built-ins


def test_builtin_with_preprocessing_overrides():
    loaded = models.load("mobilenet_v2", size=64, mean=[0.5], std=[0.25, 0.5, 0.125])
    assert (loaded.input_size, loaded.mean, loaded.std) == (64, (0.5,) * 3, (0.25, 0.5, 0.125))
    image = Image.new("RGB", (80, 100), (51, 102, 204))
    tensor = loaded.preprocess(image)
    assert tensor.shape == (3, 64, 64)
    expected = [(51 / 255 - 0.5) / 0.25, (102 / 255 - 0.5) / 0.5, (204 / 255 - 0.5) / 0.125]
    for channel, value in enumerate(expected):
        assert torch.allclose(tensor[channel], torch.full((64, 64), value), atol=1e-5)
    assert loaded.display(image).size == (64, 64)
    assert loaded.default_layer == "features.18"


def test_builtin_without_overrides_is_models_load():
    loaded = models.load("mobilenet_v2")
    assert (loaded.input_size, loaded.mean, loaded.std) == (224, IMAGENET_MEAN, IMAGENET_STD)
    assert loaded.class_names[967] == "espresso"


def test_builtin_with_mismatched_weights_lists_the_keys(tmp_path):
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "resnet.pth")
    with pytest.raises(ValueError, match=r"resnet\.pth.*does not fit mobilenet_v2.*missing"):
        models.load("mobilenet_v2", weights=tmp_path / "resnet.pth")


def test_builtin_classes_file_must_have_1000_names(tmp_path):
    (tmp_path / "two.txt").write_text("cat\ndog\n")
    with pytest.raises(ValueError, match="2 names but mobilenet_v2 has 1000 outputs"):
        models.load("mobilenet_v2", classes=tmp_path / "two.txt")
    (tmp_path / "many.txt").write_text("".join(f"thing {i}\n" for i in range(1000)))
    assert models.load("mobilenet_v2", classes=tmp_path / "many.txt").class_names[5] == "thing 5"


# ----------------------------------------------------------------------------- preprocessing


def test_size_mean_std_reach_preprocess(tmp_path):
    torch.save(tiny_net(), tmp_path / "net.pt")
    loaded = models.load(str(tmp_path / "net.pt"), size=40, mean=[0.2, 0.4, 0.6],
                         std=[0.5])
    image = Image.new("RGB", (50, 70), (255, 0, 153))
    tensor = loaded.preprocess(image)
    assert tensor.shape == (3, 40, 40)
    expected = [(1 - 0.2) / 0.5, (0 - 0.4) / 0.5, (0.6 - 0.6) / 0.5]
    for channel, value in enumerate(expected):
        assert torch.allclose(tensor[channel], torch.full((40, 40), value), atol=1e-5)
    assert (loaded.input_size, loaded.mean, loaded.std) == (40, (0.2, 0.4, 0.6), (0.5,) * 3)


def test_default_preprocessing_is_imagenet_224(tmp_path):
    torch.save(tiny_net(), tmp_path / "net.pt")
    loaded = models.load(str(tmp_path / "net.pt"))
    assert (loaded.input_size, loaded.mean, loaded.std) == (224, IMAGENET_MEAN, IMAGENET_STD)
    # resize the shorter side to 256, then centre-crop 224: a 256 x 512 image keeps its
    # middle 224 columns of the 448 wide resize; a left half red and right half blue image
    # gives the crop's left half red, right half blue
    image = Image.new("RGB", (512, 256), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 256, 256))
    shown = loaded.display(image)
    assert shown.size == (224, 224)
    assert shown.getpixel((10, 100)) == (255, 0, 0)
    assert shown.getpixel((213, 100)) == (0, 0, 255)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("size", 0, "size must be a positive int"),
        ("size", 22.5, r"size must be a positive int .*22\.5"),
        ("size", True, "size must be a positive int"),
        # a 3-channel model: 1 or 3 values (the model, its channels and both counts named)
        ("mean", [0.1, 0.2], r"net\.pt takes 3-channel inputs but the mean has 2 values and "
                             r"the std 3: give 1 or 3 values each"),
        ("mean", "0.5", r"mean must be numbers \(1 for all channels, or 1 per channel\)"),
        ("std", [0.2, 0.0, 0.2], r"std must be > 0 .*\[0\.2, 0\.0, 0\.2\]"),
        ("std", [-1], "std must be > 0"),
        ("mean", [float("nan")], "mean must be finite"),
        ("device", "not-a-device", "invalid device 'not-a-device'"),
    ],
)
def test_bad_options_name_the_value(tmp_path, option, value, message):
    torch.save(tiny_net(), tmp_path / "net.pt")
    with pytest.raises(ValueError, match=message):
        models.load(str(tmp_path / "net.pt"), **{option: value})


# ----------------------------------------------------------------------------- classes


def test_classes_text_file(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("cat  \n\n  dog\nbird\t\n\n")
    assert read_class_names(path) == ["cat", "dog", "bird"]
    torch.save(tiny_net(), tmp_path / "net.pt")
    loaded = models.load(str(tmp_path / "net.pt"), classes=path, size=SIZE)
    assert loaded.class_names == ["cat", "dog", "bird"]


def test_classes_json_list_and_dicts(tmp_path):
    (tmp_path / "list.json").write_text(json.dumps(["cat", "dog", "bird"]))
    (tmp_path / "dict.json").write_text(json.dumps({"2": "bird", "0": "cat", "1": "dog"}))
    (tmp_path / "index.json").write_text(json.dumps(
        {"0": ["n01", "cat"], "1": ["n02", "dog"], "2": ["n03", "bird"]}))
    for name in ("list.json", "dict.json", "index.json"):
        assert read_class_names(tmp_path / name) == ["cat", "dog", "bird"], name


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"0": "cat", "2": "dog"}', "must be the indices 0 to 1"),
        ('{"a": "cat"}', "not a class index"),
        ('["cat", 3]', "class 1 .* is not a name: 3"),
        ('["cat", ', "not valid JSON"),
        ('"cat"', None),  # plain text (not starting with [ or {): one name
        ("\n \n", "has no class names"),
    ],
)
def test_bad_classes_files(tmp_path, content, message):
    path = tmp_path / "classes.json"
    path.write_text(content)
    if message is None:
        assert read_class_names(path) == ['"cat"']
        return
    with pytest.raises(ValueError, match=message) as info:
        read_class_names(path)
    assert "classes.json" in str(info.value)


def test_classes_count_must_match_outputs(tmp_path):
    torch.save(tiny_net(classes=3), tmp_path / "net.pt")
    (tmp_path / "two.txt").write_text("cat\ndog\n")
    with pytest.raises(ValueError, match=r"two\.txt' has 2 names but net\.pt has 3 outputs"):
        models.load(str(tmp_path / "net.pt"), classes=tmp_path / "two.txt", size=SIZE)


def test_missing_classes_file(tmp_path):
    torch.save(tiny_net(), tmp_path / "net.pt")
    with pytest.raises(FileNotFoundError, match=r"nothing\.txt"):
        models.load(str(tmp_path / "net.pt"), classes=tmp_path / "nothing.txt")


# ----------------------------------------------------------------------------- errors


def test_unknown_spec_lists_builtins_forms_and_near_matches():
    with pytest.raises(ValueError) as info:
        models.load("resnet181")
    message = str(info.value)
    assert "unknown model 'resnet181'" in message
    assert "mobilenet_v2, efficientnet_lite0" in message
    assert "package.module:factory" in message and "--weights FILE" in message
    assert "Near matches: resnet18" in message


def test_unknown_torchvision_name_with_prefix():
    with pytest.raises(ValueError, match=r"not a torchvision .*Near matches: resnet50"):
        models.load("torchvision:resnet5O")


def test_missing_model_file_looks_like_a_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"model\.pt"):
        models.load(str(tmp_path / "model.pt"))


def test_architecture_without_weights_explains_why(tmp_path):
    with pytest.raises(ValueError, match=r"never downloads weights.*random weights"):
        models.load("resnet18")
    with pytest.raises(ValueError, match="--weights FILE"):
        models.load("torchvision:resnet18")


def test_timm_missing_says_how_to_install(monkeypatch):
    monkeypatch.setattr(specs, "_timm_installed", lambda: False)
    with pytest.raises(MissingWeightsError, match=r'pip install "axiomcam\[timm\]"'):
        models.load("timm:resnet10t")
    with pytest.raises(ValueError, match=r'pip install "axiomcam\[timm\]"'):
        models.load("resnet10t")


def test_unknown_timm_name():
    pytest.importorskip("timm")
    with pytest.raises(ValueError, match=r"not a timm architecture.*resnet10t"):
        models.load("timm:resnet10tt")


def test_state_dict_given_as_model(tmp_path):
    torch.save(tiny_net().state_dict(), tmp_path / "weights.pth")
    with pytest.raises(ValueError, match=r"weights\.pth' is a state dict, not a model: give the "
                                         r"architecture with --model NAME and this file with "
                                         r"--weights"):
        models.load(str(tmp_path / "weights.pth"))


def test_missing_weights_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.pth"):
        models.load("resnet18", weights=tmp_path / "nothing.pth")


def test_corrupt_weights_file_names_the_path(tmp_path):
    (tmp_path / "broken.pth").write_bytes(b"this is not a torch file")
    with pytest.raises(ValueError, match=r"cannot read the weights file .*broken\.pth"):
        models.load("resnet18", weights=tmp_path / "broken.pth")


def test_pickled_model_given_as_weights(tmp_path):
    torch.save(tiny_net(), tmp_path / "full.pt")
    with pytest.raises(ValueError, match=r"full\.pt.*--model FILE, not --weights"):
        read_state_dict(tmp_path / "full.pt")


def test_corrupt_model_file(tmp_path):
    (tmp_path / "broken.pt").write_bytes(b"garbage garbage")
    with pytest.raises(ValueError, match=r"cannot read the model file .*broken\.pt"):
        models.load(str(tmp_path / "broken.pt"))


def test_pickled_model_whose_class_cannot_be_imported(tmp_path, monkeypatch):
    name = f"gone_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(FACTORY_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = __import__(name)
    torch.save(module.build(), tmp_path / "gone.pt")
    sys.modules.pop(name)
    (tmp_path / f"{name}.py").unlink()
    with pytest.raises(ValueError, match=f"cannot unpickle the model .*{name}"):
        models.load(str(tmp_path / "gone.pt"))


def test_weights_that_do_not_fit_list_keys_with_counts(factory_module, tmp_path):
    loaded = models.load(f"{factory_module}:build", size=SIZE)
    state = dict(loaded.model.state_dict())
    del state["fc.bias"]
    state["extra.weight"] = torch.zeros(1)
    state["features.0.weight"] = torch.zeros(4, 3, 5, 5)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ValueError) as info:
        models.load(f"{factory_module}:build", weights=tmp_path / "bad.pth", size=SIZE)
    message = str(info.value)
    assert f"'{tmp_path / 'bad.pth'}' does not fit {factory_module}:build" in message
    assert "1 key missing (in the model, not in the file): fc.bias" in message
    assert "1 key unexpected (in the file, not in the model): extra.weight" in message
    assert ("1 key with another shape: features.0.weight (file (4, 3, 5, 5), "
            "model (4, 3, 3, 3))") in message


def test_many_missing_keys_show_five_and_the_count(tmp_path):
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ValueError) as info:
        models.load("resnet34", weights=tmp_path / "r18.pth", size=SIZE)
    message = str(info.value)
    expected = torchvision.models.resnet34().state_dict().keys()
    given = torchvision.models.resnet18().state_dict().keys()
    missing = [key for key in expected if key not in given]
    assert len(missing) > 5
    assert f"{len(missing)} keys missing (in the model, not in the file): " \
           f"{', '.join(missing[:5])}, ..." in message
    assert "unexpected" not in message


@pytest.mark.parametrize(
    ("attribute", "error", "message"),
    [
        ("not_a_model", TypeError, r"returned a int \(42\), not a torch\.nn\.Module"),
        ("needs_argument", TypeError, "must be callable without arguments"),
        ("biuld", ValueError, "has no attribute 'biuld'.*Near matches: build"),
        ("spatial_output", ValueError, r"returns shape \(1, 2, 32, 32\).*explains classifiers"),
        ("fixed_size", ValueError, r"fails on an input of shape \(1, 3, 32, 32\).*--size"),
    ],
)
def test_factory_errors(factory_module, attribute, error, message):
    with pytest.raises(error, match=message):
        models.load(f"{factory_module}:{attribute}", size=SIZE)


def test_factory_module_that_cannot_be_imported(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="cannot import 'no_such_module_here'"):
        models.load("no_such_module_here:build")
    with pytest.raises(ValueError, match=r"neither an existing file nor package\.module:factory"):
        models.load("not a module:build")


def test_spec_must_be_a_string():
    with pytest.raises(TypeError, match="must be a str"):
        models.load(3)
