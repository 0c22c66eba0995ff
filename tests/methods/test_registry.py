"""The method registry: one source of truth for names, spellings, channel weights, cost
and titles, which the method table of docs/methods.md, the CLI, evaluate and the app follow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

import axiomcam
from axiomcam.app.explorer import METHODS as APP_METHODS
from axiomcam.evaluation import EVALUATED_METHODS
from axiomcam.figures import method_title
from axiomcam.methods import (
    CAM_METHODS,
    CHANNEL_WEIGHT_METHODS,
    METHOD_NAMES,
    METHODS,
    VARIANT_NAMES,
    create,
    has_channel_weights,
    method_info,
    normalise_method_name,
)
from axiomcam.methods.registry import COSTS

METHODS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "methods.md"


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3)).eval()


def test_every_name_builds_the_method_it_names() -> None:
    """create(name).name is the canonical name, for every listed name and every spelling."""
    model = _tiny()
    for name in METHOD_NAMES:
        layer = None if not method_info(name).takes_layer else "1"
        assert create(name, model, layer).name == name
    assert set(METHODS) == set(METHOD_NAMES)
    for spelling, name in [(" Grad-CAM++ ", "gradcam++"), ("GradCAMPlusPlus", "gradcam++"),
                           ("Guided Backprop", "guided_backprop"), ("X-Grad-CAM", "xgradcam"),
                           ("AblationCAM:Activation", "ablationcam:activation")]:
        assert normalise_method_name(spelling) == name


@pytest.mark.parametrize(("name", "message"), [
    ("gradkam", r"unknown method 'gradkam'\. Did you mean gradcam"),
    ("ablationcam:speed", r"unknown variant 'ablationcam:speed'; variants of ablationcam: "
                          r"ablationcam:activation"),
])
def test_unknown_names_are_refused_with_the_known_ones(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        method_info(name)
    with pytest.raises(TypeError, match="not int"):
        normalise_method_name(3)


@pytest.mark.filterwarnings("ignore::axiomcam.AxiomCamWarning")  # constant maps of a tiny net
def test_what_the_registry_says_matches_what_the_methods_do() -> None:
    """Channel weights and gradients as declared are what an explanation has and needs."""
    model, inputs = _tiny(), torch.rand(2, 3, 8, 8)
    for name, info in METHODS.items():
        layer = None if not method_info(name).takes_layer else "1"
        explanation = create(name, model, layer)(inputs, 0)
        assert (explanation.channel_weights is not None) == info.has_channel_weights, name
        assert has_channel_weights(name) == info.has_channel_weights
        assert info.cost in COSTS
        assert info.needs_gradients == (info.guided or info.cost in (
            "backward", "hessian", "input gradient", "noisy backward")), name
        assert method_title(name) == info.title and info.title
    assert CHANNEL_WEIGHT_METHODS == ("cam", "gradcam", "gradcam++", "xgradcam", "ablationcam",
                                      "scorecam", "shapleycam", "finercam", "fem", "randomcam",
                                      "sscam", "iscam", "smoothgradcam++")
    assert [METHODS[name].cost for name in ("ablationcam", "scorecam", "eigencam")] == [
        "ablation", "masking", "forward"]


def test_the_readers_of_the_registry_list_what_it_lists() -> None:
    """evaluate and the app offer every CAM and variant (the app also occlusion and
    FullGrad); the method table of docs/methods.md has a row per CAM method, plus guided backprop
    and the guided forms, and no other."""
    assert EVALUATED_METHODS == APP_METHODS[:-2] == (*CAM_METHODS, *VARIANT_NAMES)
    assert APP_METHODS[-2:] == ("occlusion", "fullgrad")
    assert axiomcam.METHOD_NAMES == METHOD_NAMES
    rows = re.findall(r"^\| `([a-z_+<>]+)` \|", METHODS_PAGE.read_text(), flags=re.MULTILINE)
    table = rows[:rows.index("guided_<cam>") + 1]
    assert table == [*CAM_METHODS, "occlusion", "guided_backprop", "guided_<cam>"]
