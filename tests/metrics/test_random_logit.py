"""The random-logit test: SSIM against scikit-image, the draw of the other classes, a
model whose maps are known per class, and Quantus 0.6's RandomLogit (which takes the SSIM
of the flattened maps: the documented difference)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from quantus_maps import quantus_scores
from skimage.metrics import structural_similarity as skimage_ssim
from torch import nn

import axiomcam
from axiomcam.metrics import random_logit, random_other_classes, structural_similarity


def channel_model() -> nn.Module:
    """Class 0 and class 2 read channel 0 of the conv layer, class 1 reads channel 1:
    Grad-CAM's map of a class is the channel it reads (normalised)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(2, 3, bias=False))
    with torch.no_grad():
        model[4].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]))
    return model


def skimage_reference(first: torch.Tensor, second: torch.Tensor) -> list[float]:
    """scikit-image's SSIM per image, 7 x 7 windows, the data range of both maps."""
    values = []
    for a, b in zip(first.double().numpy(), second.double().numpy(), strict=True):
        span = float(max(a.max(), b.max()) - min(a.min(), b.min()))
        values.append(skimage_ssim(a, b, win_size=7, data_range=span))
    return values


def test_ssim_agrees_with_scikit_image():
    torch.manual_seed(1)
    first = torch.rand(3, 12, 15)
    second = (first + 0.3 * torch.rand(3, 12, 15)).clamp(0, 1)
    second[2] = torch.rand(12, 15)                          # unrelated
    ours = structural_similarity(first, second).double()
    # the same formula in float64 on both sides: only rounding differs
    assert torch.allclose(ours, torch.tensor(skimage_reference(first, second),
                                             dtype=torch.float64), atol=1e-6)
    assert structural_similarity(first, first).tolist() == pytest.approx([1.0] * 3)
    constant = torch.full((1, 8, 8), 0.25)
    assert structural_similarity(constant, constant).item() == pytest.approx(1.0)


def test_other_classes_are_uniform_among_the_others_and_reproducible():
    torch.manual_seed(2)
    targets = torch.full((3000,), 2)
    others = random_other_classes(targets, 5, seed=3)
    assert not (others == 2).any()
    counts = torch.bincount(others, minlength=5).tolist()
    assert counts[2] == 0 and all(600 <= count <= 900 for i, count in enumerate(counts)
                                  if i != 2)           # 750 each expected, sd ~24
    assert torch.equal(others, random_other_classes(targets, 5, seed=3))
    assert not torch.equal(others, random_other_classes(targets, 5, seed=4))


def test_a_class_reading_the_same_channel_gives_the_same_map():
    model = channel_model()
    torch.manual_seed(5)
    inputs = torch.rand(6, 3, 12, 12)
    test = random_logit(model, inputs, "gradcam", targets=[0] * 6, target_layer="1", seed=0)
    assert not (test.other_classes == 0).any()
    maps = {c: axiomcam.explain(model, inputs, "gradcam", targets=c, target_layer="1").maps
            for c in (0, 1)}
    expected = skimage_reference(maps[0], maps[1])
    for image, other in enumerate(test.other_classes.tolist()):
        # class 2 reads channel 0 like class 0: the same map; class 1 another channel
        want = 1.0 if other == 2 else expected[image]
        assert test.similarity[image].item() == pytest.approx(want, abs=1e-6)
    assert set(test.other_classes.tolist()) == {1, 2}     # both drawn at this seed
    given = random_logit(model, inputs, "gradcam", targets=torch.zeros(6, dtype=torch.long),
                         maps=maps[0], target_layer="1", seed=0)
    assert torch.allclose(given.similarity, test.similarity)


def test_quantus_takes_the_ssim_of_the_flattened_maps():
    quantus = pytest.importorskip("quantus")  # the quantus extra (in dev)
    model = channel_model()
    torch.manual_seed(6)
    inputs = torch.rand(4, 3, 12, 12)
    asked: list[np.ndarray] = []

    def explain_func(model: nn.Module, inputs: np.ndarray, targets: np.ndarray,
                     **_: object) -> np.ndarray:
        asked.append(np.asarray(targets).copy())
        maps = axiomcam.explain(model, torch.as_tensor(inputs), "gradcam",
                                targets=torch.as_tensor(targets), target_layer="1").maps
        return maps[:, None].detach().numpy()

    maps = axiomcam.explain(model, inputs, "gradcam", targets=0, target_layer="1").maps
    theirs = quantus_scores(
        quantus.RandomLogit(num_classes=3, disable_warnings=True), maps, model=model,
        targets=torch.zeros(4, dtype=torch.long), x_batch=inputs.numpy(),
        explain_func=explain_func)
    others = torch.as_tensor(asked[-1])                     # the classes Quantus drew
    second = axiomcam.explain(model, inputs, "gradcam", targets=others, target_layer="1").maps
    # Quantus: skimage's SSIM of the maps flattened into rows of 144 values, 7-value
    # windows; ours on rows (1 x 144 maps, 1 x 7 windows) is the same number
    flat = structural_similarity(maps.reshape(4, 1, -1), second.reshape(4, 1, -1),
                                 window=(1, 7)).double()
    assert torch.allclose(flat, torch.from_numpy(theirs), atol=1e-6)
    # the paper's 2D SSIM (7 x 7 windows, what we report) is another number when the
    # maps differ
    square = structural_similarity(maps, second).double()
    differ = others == 1
    assert differ.any() and not torch.allclose(square[differ], flat[differ], atol=1e-3)


def test_bad_arguments_are_refused():
    model = channel_model()
    inputs = torch.rand(2, 3, 12, 12)
    with pytest.raises(ValueError, match="num_classes must be an int >= 2"):
        random_other_classes(torch.tensor([0, 0]), 1)
    with pytest.raises(ValueError, match=r"targets must be classes in \[0, 3\)"):
        random_other_classes(torch.tensor([0, 3]), 3)
    with pytest.raises(ValueError, match="with maps given, targets must be one class per image"):
        random_logit(model, inputs, "gradcam", maps=torch.zeros(2, 12, 12), target_layer="1")
    with pytest.raises(ValueError, match=r"window \(13, 13\) is larger than the maps"):
        structural_similarity(torch.zeros(1, 12, 12), torch.zeros(1, 12, 12), window=13)
    with pytest.raises(ValueError, match="window must be an odd int"):
        structural_similarity(torch.zeros(1, 12, 12), torch.zeros(1, 12, 12), window=4)
    with pytest.raises(ValueError, match="the maps must have the same shape"):
        structural_similarity(torch.zeros(1, 12, 12), torch.zeros(1, 12, 11))
