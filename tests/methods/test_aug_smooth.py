"""``aug_smooth=True`` (test-time augmentation of every method): equal to a slow loop that
transforms, explains, transforms back and averages, and to pytorch-grad-cam's
``aug_smooth`` where their maps are defined alike."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import axiomcam
from axiomcam.methods import create
from axiomcam.methods.augment import AUGMENTATIONS, tile_targets
from axiomcam.targets import resolve_targets


def _net() -> nn.Sequential:
    # the target layer "2" keeps the input's resolution: no resizing in either library
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(6, 5, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(5, 5, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(5, 4)).eval()


def _slow(name: str, model: nn.Module, inputs: torch.Tensor, classes: list[int],
          **options: object) -> torch.Tensor:
    """One explanation per augmentation, its maps flipped back, averaged, min-max scaled."""
    total = torch.zeros(inputs.shape[0], *inputs.shape[2:], dtype=inputs.dtype)
    for flip, factor in AUGMENTATIONS:
        copy = (inputs.flip(-1) if flip else inputs) * factor
        maps = create(name, model, **options)(copy, targets=classes).maps
        total += maps.flip(-1) if flip else maps
    low = total.amin((1, 2), keepdim=True)
    return (total - low) / (total.amax((1, 2), keepdim=True) - low)


@pytest.mark.parametrize(("name", "options"), [
    ("gradcam", {"target_layer": "2"}), ("scorecam", {"target_layer": "5"}),
    ("fullgrad", {}), ("occlusion", {"window": 4}), ("guided_gradcam", {"target_layer": "2"}),
])
def test_equals_a_slow_loop_over_the_augmentations(name: str, options: dict) -> None:
    torch.manual_seed(0)
    model = _net().double()
    inputs = torch.randn(2, 3, 10, 14, dtype=torch.float64)
    with torch.no_grad():
        classes = model(inputs).argmax(1).tolist()
    explanation = axiomcam.explain(model, inputs, method=name, aug_smooth=True, **options)
    assert explanation.targets.tolist() == classes  # chosen on the images, not the copies
    assert torch.allclose(explanation.maps, _slow(name, model, inputs, classes, **options),
                          atol=1e-10)
    plain = axiomcam.explain(model, inputs, method=name, **options)
    assert not torch.allclose(explanation.maps, plain.maps, atol=1e-3)  # it does something
    assert all(not module._forward_hooks for module in model.modules())


def test_other_fields_are_the_copies_mean_and_the_images_targets() -> None:
    torch.manual_seed(1)
    model = _net().double()
    inputs = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    classes = torch.tensor([[1, 3], [0, 2]])
    explanation = axiomcam.explain(model, inputs, method="gradcam", target_layer="2",
                                   targets=classes, aug_smooth=True)
    raws, weights, scores = [], [], []
    for flip, factor in AUGMENTATIONS:
        copy = axiomcam.explain(model, (inputs.flip(-1) if flip else inputs) * factor,
                                method="gradcam", target_layer="2", targets=classes)
        raws.append(copy.raw.flip(-1) if flip else copy.raw)
        weights.append(copy.channel_weights)
        scores.append(copy.scores)
    assert torch.allclose(explanation.raw, torch.stack(raws).mean(0), atol=1e-12)
    assert torch.allclose(explanation.channel_weights, torch.stack(weights).mean(0), atol=1e-12)
    assert torch.allclose(explanation.scores, torch.stack(scores).mean(0), atol=1e-12)
    assert torch.equal(explanation.targets, classes)
    with torch.no_grad():
        assert torch.allclose(explanation.logits, model(inputs))


def test_callable_targets_with_image_indices_see_the_image_not_the_copy() -> None:
    seen = []

    def per_image(output: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        seen.append(images.tolist())
        return output[torch.arange(output.shape[0]), images]

    resolved = resolve_targets(per_image, None, 3)
    tiled = tile_targets(resolved, 3)
    output = torch.arange(6 * 4.0).view(6, 4)[:, :3].repeat(3, 1)  # 18 rows: 6 copies of 3
    rows = torch.arange(18)
    assert tiled.scores(output, rows)[:, 0].tolist() == output[rows, rows % 3].tolist()
    assert seen == [(rows % 3).tolist()]


def test_refuses_a_non_bool() -> None:
    with pytest.raises(TypeError, match="aug_smooth must be True or False"):
        create("gradcam", _net(), aug_smooth="yes")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_agrees_with_pytorch_grad_cam() -> None:
    """pytorch-grad-cam 1.5.7's ``aug_smooth`` (ttach: flip x Multiply([0.9, 1, 1.1])) for
    Grad-CAM on a layer at the input's resolution (no resize on either side): its map is
    the mean of the six copies' maps, not rescaled; ours is that mean min-max scaled. So
    ``minmax(theirs)`` is ours to 1e-5 (float32, and pytorch-grad-cam's ``1e-7`` in each
    copy's min-max denominator). Targets are given: with ``targets=None`` it picks the top
    class of every augmented copy, we keep the image's."""
    pytest.importorskip("ttach")
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam import GradCAM as PeerGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(2)
    model = _net()
    inputs = torch.randn(3, 3, 12, 16)
    classes = [3, 0, 1]
    with PeerGradCAM(model, target_layers=[model[2]]) as peer:
        theirs = torch.from_numpy(peer(inputs, targets=[ClassifierOutputTarget(c)
                                                        for c in classes], aug_smooth=True))
    low = theirs.amin((1, 2), keepdim=True)
    theirs = (theirs - low) / (theirs.amax((1, 2), keepdim=True) - low)
    ours = axiomcam.explain(model, inputs, method="gradcam", target_layer="2", targets=classes,
                            aug_smooth=True).maps
    assert (theirs - ours).abs().max() < 1e-5
