"""Fixtures shared by the CLI tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def composite_image(tmp_path_factory):
    """``(path, picture)``: one composite image (seed 3) saved as a PNG, for the commands
    that run the packaged MobileNetV2 on a file."""
    from torchvision.models import MobileNet_V2_Weights

    from axiomcam.data import CompositeBenchmark

    names = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
    sample = CompositeBenchmark(1, names, seed=3)[0]
    path = tmp_path_factory.mktemp("images") / "one.png"
    sample.image.save(path)
    return path, sample.image
