"""Randomisation of the explained class: the map of a random other class should differ.

:func:`random_logit` (Sixt, Granz & Landgraf, "When explanations lie: why many modified
BP attributions fail", ICML 2020) explains each image again for a class drawn at random
among the others (:func:`random_other_classes`) and measures the
:func:`structural_similarity` (SSIM, Wang et al. 2004) of the two maps: a method whose map
barely changes with the class explains the image, not the decision. Lower is better.

Quantus 0.6 (``quantus.RandomLogit``) takes the same SSIM, but of the two maps flattened
into vectors (a 7-pixel window along the rows joined end to end); here the maps stay
images, with the paper's 7 x 7 window (``docs/peers.md``).

Examples:
    >>> import torch
    >>> maps = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> structural_similarity(maps, maps)
    tensor([1., 1.])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import axiomcam

from ..support import check_inputs, check_model, check_positive_int, eval_mode
from ..targets import TargetSpec
from .common import check_maps

__all__ = ["RandomLogit", "random_logit", "random_other_classes", "structural_similarity"]

#: SSIM's stabilising constants, as shares of the data range (Wang et al. 2004)
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _window(window: int | tuple[int, int]) -> tuple[int, int]:
    sizes = (window, window) if isinstance(window, int) and not isinstance(window, bool) \
        else window
    if not isinstance(sizes, tuple) or len(sizes) != 2 or not all(
            isinstance(size, int) and not isinstance(size, bool) and size >= 1
            and size % 2 == 1 for size in sizes):
        raise ValueError(f"window must be an odd int >= 1 or a pair of them (height, width), "
                         f"got {window!r}")
    return sizes


def structural_similarity(first: torch.Tensor, second: torch.Tensor, *,
                          window: int | tuple[int, int] = 7) -> torch.Tensor:
    """The mean structural similarity (SSIM) of two maps, per image.

    Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment: from error visibility to
    structural similarity", IEEE TIP 2004, as ``skimage.metrics.structural_similarity``
    computes it by default: in every ``window``-sized patch lying wholly inside the map,
    the means ``mu``, the sample variances ``s^2`` and covariance ``s_xy`` (dividing by
    ``N - 1``, ``N`` the patch's pixels) give
    ``((2 mu_x mu_y + C1)(2 s_xy + C2)) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))``,
    ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, ``L`` the data range of the two maps
    together (their maximum minus their minimum, as Quantus gives it); the SSIM is the
    mean over the patches. In ``[-1, 1]``, 1 for equal maps (two equal constant maps too).

    Args:
        first: ``(B, H, W)`` maps in ``[0, 1]``.
        second: ``(B, H, W)`` maps in ``[0, 1]``, compared with ``first``.
        window: the patch's side in pixels, odd (7 in the paper and skimage), or
            ``(height, width)``; at most the maps' size.

    Returns:
        ``(B,)`` in the maps' dtype (computed in float64).

    Raises:
        TypeError, ValueError: bad maps, maps of different shapes, a bad or too large
            window.

    Examples:
        >>> import torch
        >>> a = torch.tensor([[[0.0, 1.0, 0.0]]])
        >>> # one patch: (4/9 + C1)(-2/3 + C2) / ((5/9 + C1)(2/3 + C2))
        >>> structural_similarity(a, 1 - a, window=(1, 3))
        tensor([-0.7979])
    """
    first, second = check_maps(first, what="first"), check_maps(second, what="second")
    if first.shape != second.shape:
        raise ValueError(f"the maps must have the same shape, got {tuple(first.shape)} and "
                         f"{tuple(second.shape)}")
    height, width = _window(window)
    if height > first.shape[1] or width > first.shape[2]:
        raise ValueError(f"window {(height, width)} is larger than the maps "
                         f"{tuple(first.shape[1:])}")
    x, y = first.double()[:, None], second.double()[:, None]
    both = torch.cat([x, y], dim=1).flatten(1)
    data_range = (both.amax(dim=1) - both.amin(dim=1))[:, None, None, None]

    def mean(values: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(values, (height, width), stride=1)

    correction = height * width / max(height * width - 1, 1)    # sample (co)variances
    mean_x, mean_y = mean(x), mean(y)
    var_x = (mean(x * x) - mean_x ** 2) * correction
    var_y = (mean(y * y) - mean_y ** 2) * correction
    covariance = (mean(x * y) - mean_x * mean_y) * correction
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    numerator = (2 * mean_x * mean_y + c1) * (2 * covariance + c2)
    denominator = (mean_x ** 2 + mean_y ** 2 + c1) * (var_x + var_y + c2)
    # two equal constant maps: no range, 0 / 0 everywhere; they are the same map
    index = torch.where(denominator > 0, numerator / denominator.where(denominator > 0, 1.0),
                        torch.ones_like(numerator))
    return index.mean(dim=(1, 2, 3)).to(first.dtype)


def random_other_classes(targets: torch.Tensor, num_classes: int, *,
                         seed: int = 0) -> torch.Tensor:
    """For each target class, a class drawn uniformly among the ``num_classes - 1``
    others: ``(target + u) mod num_classes`` with ``u`` uniform in
    ``1 .. num_classes - 1``, drawn by a generator seeded with ``seed`` (reproducible,
    independent of the global random state).

    Raises:
        ValueError: fewer than 2 classes, targets not ``(B,)`` integers in
            ``[0, num_classes)``.

    Examples:
        >>> import torch
        >>> others = random_other_classes(torch.tensor([0, 1, 2]), 3, seed=0)
        >>> bool((others != torch.tensor([0, 1, 2])).all()), int(others.max()) < 3
        (True, True)
    """
    classes = check_positive_int(num_classes, "num_classes", minimum=2)
    if not torch.is_tensor(targets) or targets.dim() != 1 or targets.is_floating_point() \
            or targets.dtype == torch.bool:
        raise ValueError(f"targets must be a (B,) integer tensor of classes, got {targets!r}")
    if targets.numel() and not bool(((targets >= 0) & (targets < classes)).all()):
        raise ValueError(f"targets must be classes in [0, {classes}), got "
                         f"{targets.tolist()}")
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.randint(1, classes, (targets.shape[0],), generator=generator)
    return (targets.cpu() + offsets).remainder(classes).to(targets.device)


@dataclass(frozen=True)
class RandomLogit:
    """Per-image result of :func:`random_logit`.

    Attributes:
        classes: ``(B,)`` the classes explained first.
        other_classes: ``(B,)`` the random other classes explained second.
        similarity: ``(B,)`` the SSIM of the two maps (lower is better).
    """

    classes: torch.Tensor
    other_classes: torch.Tensor
    similarity: torch.Tensor


def _class_count(model: nn.Module, inputs: torch.Tensor) -> int:
    """The number of classes the model scores (one forward pass)."""
    with torch.no_grad(), eval_mode(model):
        outputs = model(inputs[:1])
    return max(2, outputs.flatten(1).shape[1])            # a single logit: two classes


def random_logit(model: nn.Module, inputs: torch.Tensor, method: str = "xgradcam",
                 targets: TargetSpec = None, *, maps: torch.Tensor | None = None,
                 num_classes: int | None = None, seed: int = 0, window: int = 7,
                 **method_options: object) -> RandomLogit:
    """The random-logit test: the SSIM of the map of each image's class with the map of a
    random other class.

    Sixt, Granz & Landgraf, ICML 2020: explain ``c``, explain ``c'`` drawn uniformly among
    the other classes (:func:`random_other_classes`), and compare the two maps by
    :func:`structural_similarity`. A map that follows the class differs (low SSIM); one
    that shows the image whatever the class stays the same (SSIM near 1).

    Args:
        model: the network.
        inputs: ``(B, C, H, W)`` images.
        method: the CAM method (:func:`axiomcam.explain`).
        targets: as in :func:`axiomcam.explain`, one class per image (``None``: the top
            class).
        maps: the maps of ``targets`` when already computed (``Explanation.maps``, with
            ``targets`` as the classes they explain): saves the first explanation.
        num_classes: the number of classes (``None``: from the model's output).
        seed: the draw of the other classes.
        window: the SSIM patch's side (see :func:`structural_similarity`).
        **method_options: passed to :func:`axiomcam.explain` (``target_layer``,
            ``batch_size``...).

    Returns:
        a :class:`RandomLogit` of per-image ``classes``, ``other_classes``, ``similarity``.

    Raises:
        TypeError, ValueError: a bad model, inputs or method (as :func:`axiomcam.explain`),
            ``maps`` given without one class per image in ``targets``, fewer than 2
            classes.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
        >>> test = random_logit(model, torch.rand(2, 3, 16, 16), "gradcam", targets=[0, 1],
        ...                     target_layer="0")
        >>> test.similarity.shape, bool((test.other_classes != test.classes).all())
        (torch.Size([2]), True)
    """
    model = check_model(model)
    inputs = check_inputs(model, inputs)
    if maps is None:
        first = axiomcam.explain(model, inputs, method=method, targets=targets,
                                 **method_options)
        maps, classes = first.maps, first.targets
        if num_classes is None and first.logits is not None:
            num_classes = first.logits.shape[1]
    else:
        maps = check_maps(maps, inputs)
        classes = torch.as_tensor(targets) if targets is not None else None
        if classes is None or classes.shape != (inputs.shape[0],):
            raise ValueError(f"with maps given, targets must be one class per image "
                             f"({inputs.shape[0]}), got {targets!r}")
    if maps.dim() != 3:
        raise ValueError(f"random_logit compares one map per image, got maps of shape "
                         f"{tuple(maps.shape)}: pass one target per image")
    if num_classes is None:
        num_classes = _class_count(model, inputs)
    classes = classes.to(device=inputs.device, dtype=torch.long).reshape(-1)
    others = random_other_classes(classes, num_classes, seed=seed)
    second = axiomcam.explain(model, inputs, method=method, targets=others, **method_options)
    return RandomLogit(classes=classes, other_classes=others,
                       similarity=structural_similarity(maps, second.maps, window=window))
