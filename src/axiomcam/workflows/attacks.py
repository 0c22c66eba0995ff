"""Adversarial attacks in pixel space, through captum's ``robust`` module (FGSM and PGD,
untargeted and targeted): :func:`attack`.

A network from :mod:`axiomcam.models` sees normalised inputs ``x = (p - mean) / std`` of
pixels ``p`` in ``[0, 1]``. An attack's budget ``epsilon`` is given in pixel units (``2/255``:
two grey levels of an 8-bit image), so :func:`attack` takes the normalised inputs, turns
them back into pixels, attacks the network composed with the normalisation (captum clamps
every step to ``[0, 1]``), and normalises the result again. The attacked image is therefore
a valid image (``0 <= p' <= 1``) with ``max |p' - p| <= epsilon`` per pixel and channel;
in the normalised space that is ``epsilon / std_c`` per channel ``c``.

- **FGSM** (Goodfellow et al., ICLR 2015): ``p' = clamp(p + epsilon sign(grad_p L(p, y)))``
  (untargeted, ``y`` the class to leave) or ``p' = clamp(p - epsilon sign(grad_p L(p, t)))``
  (targeted, ``t`` the class to reach), ``L`` the cross-entropy of the logits.
- **PGD** (Madry et al., ICLR 2018): ``steps`` FGSM steps of ``step_size`` (default
  ``2.5 epsilon / steps``, Madry et al.'s choice), each projected back onto the L-inf ball
  of radius ``epsilon`` around ``p`` and clamped to ``[0, 1]``; optionally from a uniform
  random start in the ball.

captum (``pip install 'axiomcam[attacks]'``) was chosen over torchattacks because
torchattacks pins ``requests~=2.25.1``, which downgrades requests and idna and holds back
mkdocs-material.

Examples:
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    >>> pixels = torch.rand(2, 3, 2, 2)
    >>> mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    >>> inputs = (pixels - 0.5) / 0.25
    >>> attacked = attack(net, inputs, torch.tensor([0, 1]), epsilon=2 / 255, mean=mean,
    ...                   std=std, kind="fgsm")
    >>> moved = attacked * 0.25 + 0.5 - pixels
    >>> bool(moved.abs().max() <= 2 / 255 + 1e-6)
    True
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from fractions import Fraction

import torch
from torch import nn
from torch.nn import functional

from ..support import check_positive_int, eval_mode

__all__ = ["ATTACKS", "PIXEL_TOLERANCE", "attack", "parse_epsilon", "pixels_of"]

#: the attacks :func:`attack` runs
ATTACKS = ("fgsm", "pgd")

#: how far outside [0, 1] the pixels of normalised inputs may lie (float rounding) before
#: the inputs are refused as not images under the given mean and std
PIXEL_TOLERANCE = 1e-3


def parse_epsilon(text: str | float) -> float:
    """An attack's budget in pixel units: a number (``0.01``) or a fraction (``2/255``).

    Raises:
        ValueError: not a number or a fraction, or not in ``(0, 1]``.

    Examples:
        >>> round(parse_epsilon("2/255"), 6), parse_epsilon(0.5)
        (0.007843, 0.5)
    """
    try:
        value = float(Fraction(text.strip())) if isinstance(text, str) else float(text)
    except (ValueError, ZeroDivisionError, TypeError):
        raise ValueError(f"epsilon must be a number or a fraction of pixel values in (0, 1] "
                         f"such as 2/255, got {text!r}") from None
    if not math.isfinite(value) or not 0 < value <= 1:
        raise ValueError(f"epsilon is in pixel units (pixels in [0, 1]) and must be in (0, 1], "
                         f"got {text!r}")
    return value


def _channel_values(values: Sequence[float], name: str, inputs: torch.Tensor) -> torch.Tensor:
    """``mean`` or ``std`` as a ``(1, C, 1, ...)`` tensor matching ``inputs``."""
    channels = inputs.shape[1]
    if len(values) != channels:
        raise ValueError(f"{name} has {len(values)} values but the inputs have {channels} "
                         "channels: give one per channel")
    tensor = torch.tensor([float(v) for v in values], dtype=inputs.dtype, device=inputs.device)
    if name == "std" and not bool((tensor > 0).all()):
        raise ValueError(f"std must be > 0 in every channel, got {tuple(values)}")
    return tensor.reshape(1, channels, *([1] * (inputs.dim() - 2)))


def pixels_of(inputs: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """The pixels ``p = x std + mean`` of normalised inputs, clamped to ``[0, 1]``.

    Raises:
        ValueError: pixels more than :data:`PIXEL_TOLERANCE` outside ``[0, 1]`` (the inputs
            are not images normalised with this mean and std).

    Examples:
        >>> import torch
        >>> pixels_of(torch.tensor([[[[-2.0, 2.0]]]]), [0.5], [0.25]).tolist()
        [[[[0.0, 1.0]]]]
    """
    pixels = inputs * _channel_values(std, "std", inputs) + _channel_values(mean, "mean", inputs)
    low, high = float(pixels.min()), float(pixels.max())
    if low < -PIXEL_TOLERANCE or high > 1 + PIXEL_TOLERANCE:
        raise ValueError(f"the inputs' pixels (x * std + mean) span [{low:.4g}, {high:.4g}], "
                         "outside [0, 1]: attacks take images normalised with the model's "
                         "mean and std (PretrainedModel.mean, .std)")
    return pixels.clamp(0, 1)


class _PixelModel(nn.Module):
    """The network composed with its normalisation: pixels in, logits out."""

    def __init__(self, model: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.model, self.mean, self.std = model, mean, std

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        logits = self.model((pixels - self.mean) / self.std)
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
            raise ValueError("attacks need a classifier whose output is a (B, classes) tensor "
                             f"of logits, got {getattr(logits, 'shape', type(logits))}")
        return logits


def _cross_entropy(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Per image (captum differentiates each image's loss separately)."""
    return functional.cross_entropy(logits, classes, reduction="none")


def _captum_robust():
    try:
        from captum import robust
    except ImportError as error:
        raise ImportError("adversarial attacks use captum: pip install 'axiomcam[attacks]'"
                          ) from error
    return robust


def attack(model: nn.Module, inputs: torch.Tensor, classes: torch.Tensor, *, epsilon: float,
           mean: Sequence[float], std: Sequence[float], kind: str = "pgd",
           targeted: bool = False, steps: int = 10, step_size: float | None = None,
           random_start: bool = False) -> torch.Tensor:
    """Attack a batch of normalised inputs within an L-inf budget in pixel space.

    See the module's documentation for the formulas.

    Args:
        model: a classifier of normalised inputs, giving ``(B, classes)`` logits.
        inputs: ``(B, C, ...)`` images normalised with ``mean`` and ``std``.
        classes: ``(B,)`` per image the class to leave (untargeted) or to reach (targeted).
        epsilon: the budget, in pixel units (pixels in ``[0, 1]``; ``2 / 255``).
        mean: the normalisation's mean (``PretrainedModel.mean``), one per channel.
        std: its standard deviation (``PretrainedModel.std``), one per channel.
        kind: ``"fgsm"`` or ``"pgd"``.
        targeted: reach ``classes`` rather than leave them.
        steps: PGD's steps; step_size: PGD's step (pixel units; default
            ``2.5 epsilon / steps``); random_start: PGD from a uniform point of the ball
            (``torch``'s global generator: seed it).

    Returns:
        the attacked inputs, normalised as ``inputs``, detached, on their device.

    Raises:
        ImportError: captum is missing (``pip install 'axiomcam[attacks]'``).
        ValueError: an unknown ``kind``, a budget outside ``(0, 1]``, a bad ``steps`` or
            ``step_size``, ``classes`` that do not match the batch, inputs that are not
            normalised images.
    """
    if kind not in ATTACKS:
        raise ValueError(f"unknown attack {kind!r}: use one of {', '.join(ATTACKS)}")
    epsilon = parse_epsilon(epsilon)
    steps = check_positive_int(steps, "steps")
    step_size = 2.5 * epsilon / steps if step_size is None else step_size
    if isinstance(step_size, bool) or not isinstance(step_size, int | float) \
            or not math.isfinite(step_size) or step_size <= 0:
        raise ValueError(f"step_size must be a number > 0 (pixel units), got {step_size!r}")
    classes = torch.as_tensor(classes, device=inputs.device).long().reshape(-1)
    if classes.numel() != inputs.shape[0]:
        raise ValueError(f"classes has {classes.numel()} values for {inputs.shape[0]} images: "
                         "give one class per image")
    robust = _captum_robust()
    pixels = pixels_of(inputs.detach(), mean, std)
    mean_tensor = _channel_values(mean, "mean", inputs)
    std_tensor = _channel_values(std, "std", inputs)
    wrapped = _PixelModel(model, mean_tensor, std_tensor)
    with eval_mode(model), warnings.catch_warnings():
        # captum says it set requires_grad on the pixels it differentiates: expected here
        warnings.filterwarnings("ignore", message="Input Tensor .* did not already require")
        if kind == "fgsm":
            attacked = robust.FGSM(wrapped, _cross_entropy, lower_bound=0.0, upper_bound=1.0
                                   ).perturb(pixels, epsilon, classes, targeted=targeted)
        else:
            attacked = robust.PGD(wrapped, _cross_entropy, lower_bound=0.0, upper_bound=1.0
                                  ).perturb(pixels, epsilon, float(step_size), steps, classes,
                                            targeted=targeted, random_start=random_start)
    # float rounding of clamp(p + d, p - eps, p + eps) can overshoot eps by an ulp
    attacked = torch.minimum(torch.maximum(attacked.detach(), pixels - epsilon), pixels + epsilon)
    return (attacked.clamp(0, 1) - mean_tensor) / std_tensor
