"""``--aug-smooth`` and ``--method fullgrad`` on ``axiomcam explain`` and ``axiomcam
compare`` (the pretrained MobileNetV2 on a composite image): the raw map written is the
library's ``aug_smooth=True`` FullGrad map of the same network input, ``results.json``
records the option, and compare draws test-time augmented maps of a layer method and of
FullGrad side by side."""

from __future__ import annotations

import json

import numpy as np
import torch
from cli_helpers import invoke


def test_explain_fullgrad_with_aug_smooth_writes_the_library_map(composite_image,
                                                                 tmp_path):
    import axiomcam
    from axiomcam.workflows import network_inputs

    path, picture = composite_image
    out = tmp_path / "maps"
    result = invoke("explain", str(path), "--method", "fullgrad", "--aug-smooth",
                    "--target", "3", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert "fullgrad at the input" in result.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["aug_smooth"] is True and results["method"] == "fullgrad"
    (entry,) = results["images"][0]["maps"]
    pretrained = axiomcam.models.load("mobilenet_v2")
    expected = axiomcam.explain(pretrained.model, network_inputs(pretrained, [picture]),
                                method="fullgrad", targets=3, aug_smooth=True).raw[0]
    plain = axiomcam.explain(pretrained.model, network_inputs(pretrained, [picture]),
                             method="fullgrad", targets=3).raw[0]
    written = torch.from_numpy(np.load(out / entry["raw"]))
    assert torch.allclose(written, expected, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(written, plain, rtol=1e-2, atol=1e-2)


def test_compare_draws_aug_smoothed_maps(composite_image, tmp_path, monkeypatch):
    from axiomcam.workflows import comparing

    made = []
    real_create = comparing.create_explainer

    def recording_create(*args, **options):
        explainer = real_create(*args, **options)
        made.append((explainer.name, explainer.aug_smooth))
        return explainer

    monkeypatch.setattr(comparing, "create_explainer", recording_create)
    path, _ = composite_image
    figure = tmp_path / "figure.png"
    result = invoke("compare", str(path), "--methods", "gradcam,fullgrad", "--aug-smooth",
                    "--out", str(figure))
    assert result.exit_code == 0, result.stderr
    assert figure.stat().st_size > 0
    assert made == [("gradcam", True), ("fullgrad", True)]
