"""Attacks in pixel space (:func:`axiomcam.workflows.attacks.attack`, captum's FGSM and PGD):
equal to a hand-written FGSM / PGD on the network composed with its normalisation; the
attacked image stays an image (pixels in [0, 1]) within epsilon of the clean one in pixel
units; attacks move the scores the way they should; bad input is refused clearly.
"""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from axiomcam.workflows.attacks import attack, parse_epsilon, pixels_of

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, 5)).eval()


def _normalise(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


def _pixel_gradient(net: nn.Module, pixels: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """d CE / d pixels, image by image (an independent reference)."""
    grads = []
    for image, cls in zip(pixels, classes, strict=True):
        image = image[None].clone().requires_grad_(True)
        loss = nn.functional.cross_entropy(net(_normalise(image)), cls[None])
        grads.append(torch.autograd.grad(loss, image)[0][0])
    return torch.stack(grads)


def _slow_pgd(net, pixels, classes, epsilon, step, steps, targeted):
    sign = -1.0 if targeted else 1.0
    current = pixels.clone()
    for _ in range(steps):
        gradient = _pixel_gradient(net, current, classes)
        current = (current + sign * step * gradient.sign()).clamp(0, 1)
        current = torch.minimum(torch.maximum(current, pixels - epsilon), pixels + epsilon)
        current = current.clamp(0, 1)
    return current


@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_is_the_sign_step_in_pixel_space(targeted):
    torch.manual_seed(0)
    net, pixels = _net(), torch.rand(3, 3, 8, 8)
    pixels[0, :, :2] = 0.0   # pixels at the bounds: the clamp matters there
    pixels[1, :, :2] = 1.0
    classes = torch.tensor([0, 3, 4])
    epsilon = 8 / 255
    attacked = attack(net, _normalise(pixels), classes, epsilon=epsilon, mean=MEAN, std=STD,
                      kind="fgsm", targeted=targeted)
    sign = -1.0 if targeted else 1.0
    expected = (pixels + sign * epsilon * _pixel_gradient(net, pixels, classes).sign()).clamp(0, 1)
    result = pixels_of(attacked, MEAN, STD)
    # float32 normalisation there and back: ~1e-7 per pixel
    assert torch.allclose(result, expected, atol=1e-5)
    assert (result - pixels).abs().max() <= epsilon + 1e-6
    assert (result - pixels).abs().max() >= epsilon - 1e-5   # the budget is used
    assert attacked.shape == pixels.shape


@pytest.mark.parametrize("targeted", [False, True])
def test_pgd_matches_a_slow_loop_and_stays_in_the_ball(targeted):
    torch.manual_seed(1)
    net, pixels = _net(), torch.rand(2, 3, 8, 8)
    classes = torch.tensor([1, 2])
    epsilon, step, steps = 3 / 255, 1 / 255, 5
    attacked = attack(net, _normalise(pixels), classes, epsilon=epsilon, mean=MEAN, std=STD,
                      kind="pgd", targeted=targeted, steps=steps, step_size=step)
    expected = _slow_pgd(net, pixels, classes, epsilon, step, steps, targeted)
    normalised_back = (attacked * torch.tensor(STD)[:, None, None]
                       + torch.tensor(MEAN)[:, None, None])
    assert torch.allclose(normalised_back, expected, atol=1e-5)
    assert normalised_back.min() >= -1e-6 and normalised_back.max() <= 1 + 1e-6
    assert (normalised_back - pixels).abs().max() <= epsilon + 1e-6


def test_attacks_move_the_scores_the_right_way():
    torch.manual_seed(2)
    net, pixels = _net(), torch.rand(4, 3, 8, 8)
    inputs = _normalise(pixels)
    with torch.no_grad():
        logits = net(inputs)
    top = logits.argmax(1)
    away = attack(net, inputs, top, epsilon=4 / 255, mean=MEAN, std=STD, kind="pgd")
    target = (top + 1) % 5
    toward = attack(net, inputs, target, epsilon=4 / 255, mean=MEAN, std=STD, kind="pgd",
                    targeted=True)
    with torch.no_grad():
        clean_loss = nn.functional.cross_entropy(logits, top, reduction="none")
        away_loss = nn.functional.cross_entropy(net(away), top, reduction="none")
        target_before = nn.functional.cross_entropy(logits, target, reduction="none")
        target_after = nn.functional.cross_entropy(net(toward), target, reduction="none")
    assert bool((away_loss > clean_loss).all())
    assert bool((target_after < target_before).all())


def test_random_start_is_seeded_and_in_the_ball():
    net, pixels = _net(), torch.rand(1, 3, 6, 6)
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        runs.append(attack(net, _normalise(pixels), torch.tensor([0]), epsilon=0.05, mean=MEAN,
                           std=STD, steps=2, random_start=True))
    assert torch.equal(runs[0], runs[1])
    assert (pixels_of(runs[0], MEAN, STD) - pixels).abs().max() <= 0.05 + 1e-6


def test_parse_epsilon():
    assert parse_epsilon("2/255") == pytest.approx(2 / 255)
    assert parse_epsilon(" 0.01 ") == pytest.approx(0.01)
    for bad in ("abc", "1/0", "0", "-1/255", "2", "nan"):
        with pytest.raises(ValueError, match="epsilon"):
            parse_epsilon(bad)


def test_bad_input_is_refused():
    torch.manual_seed(4)
    net, pixels = _net(), torch.rand(2, 3, 6, 6)
    inputs = _normalise(pixels)
    with pytest.raises(ValueError, match="unknown attack 'cw'"):
        attack(net, inputs, torch.tensor([0, 1]), epsilon=0.01, mean=MEAN, std=STD, kind="cw")
    with pytest.raises(ValueError, match="one class per image"):
        attack(net, inputs, torch.tensor([0]), epsilon=0.01, mean=MEAN, std=STD)
    with pytest.raises(ValueError, match="outside \\[0, 1\\]"):
        attack(net, inputs * 10, torch.tensor([0, 1]), epsilon=0.01, mean=MEAN, std=STD)
    with pytest.raises(ValueError, match="std has 2 values"):
        attack(net, inputs, torch.tensor([0, 1]), epsilon=0.01, mean=MEAN, std=(1.0, 1.0))
    with pytest.raises(ValueError, match="step_size"):
        attack(net, inputs, torch.tensor([0, 1]), epsilon=0.01, mean=MEAN, std=STD,
               step_size=-1.0)


def test_missing_captum_names_the_extra(monkeypatch):
    torch.manual_seed(5)
    monkeypatch.setitem(sys.modules, "captum", None)
    with pytest.raises(ImportError, match=r"pip install 'axiomcam\[attacks\]'"):
        attack(_net(), _normalise(torch.rand(1, 3, 4, 4)), torch.tensor([0]), epsilon=0.01,
               mean=MEAN, std=STD)
