"""axiomcam.models.load, the one entry point: reachable after ``import axiomcam`` alone, and
the older ``load(name, device, weights_path)`` calls still work.

Each spec form is tested through ``models.load`` where its loading is tested:
built-in names in ``test_builtin.py`` and ``test_model_specs.py`` (built-ins),
``torchvision:NAME``/``NAME``, ``timm:``, state-dict and whole-model files and
``package.module:factory`` in ``test_model_specs.py``, ``.onnx`` files in ``test_onnx.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import axiomcam
from axiomcam import models


def test_models_is_reachable_after_import_axiomcam_alone():
    script = textwrap.dedent(
        """
        import sys
        import axiomcam
        assert "axiomcam.models" not in sys.modules, "import axiomcam imported models"
        m = axiomcam.models.load("mobilenet_v2")
        print(m.default_layer, m.input_size)
        """
    )
    # the axiomcam under test, whatever the environment's own install is
    source = str(Path(axiomcam.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [source, *filter(None, [os.environ.get("PYTHONPATH")])])}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["features.18", "224"]


def test_models_is_listed_by_dir_and_all():
    assert "models" in dir(axiomcam)
    assert "models" in axiomcam.__all__
    assert axiomcam.models is models
    with pytest.raises(AttributeError, match="has no attribute 'not_a_submodule'"):
        axiomcam.not_a_submodule  # noqa: B018


def test_positional_device_and_weights_path(tmp_path):
    pretrained = models.load("mobilenet_v2", "cpu")
    assert pretrained.device == torch.device("cpu")
    path = tmp_path / "mobilenet.pth"
    torch.save(pretrained.model.state_dict(), path)
    for reloaded in (models.load("mobilenet_v2", "cpu", path),
                     models.load("mobilenet_v2", weights=path)):
        for name, value in pretrained.model.state_dict().items():
            assert torch.equal(reloaded.model.state_dict()[name], value), name


def test_weights_and_weights_path_together_are_refused(tmp_path):
    with pytest.raises(ValueError, match="give weights or weights_path, not both"):
        models.load("mobilenet_v2", weights_path=tmp_path / "a.pth", weights=tmp_path / "b.pth")


def test_weights_path_serves_every_form(tmp_path):
    import torchvision

    original = torchvision.models.resnet18(num_classes=3).eval()
    torch.save(original.state_dict(), tmp_path / "resnet18.pth")
    loaded = models.load("resnet18", weights_path=tmp_path / "resnet18.pth", size=64)
    assert loaded.model.fc.out_features == 3
