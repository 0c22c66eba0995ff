"""Stability of explanations under small random noise, as Quantus 0.6 defines it:
:func:`max_sensitivity`, :func:`avg_sensitivity` (Yeh et al., "On the (in)fidelity and
sensitivity of explanations", NeurIPS 2019) and :func:`local_lipschitz_estimate`
(Alvarez-Melis & Jaakkola, "On the robustness of interpretability methods", 2018).

For an image ``x`` with map ``a(x)`` and ``N`` noisy copies ``x'_s = x + n_s``:

- max-sensitivity ``= max_s ||a(x'_s) - a(x)||_2 / ||a(x)||_2`` with ``n_s`` uniform in
  ``[-radius, radius]`` per input value (Quantus: ``MaxSensitivity``, ``lower_bound``);
- average sensitivity: the same ratio's mean over ``s`` (Quantus: ``AvgSensitivity``);
- local Lipschitz estimate ``= max_s ||a(x'_s) - a(x)||_2 / (||x'_s - x||_2 + 1e-10)`` with
  ``n_s`` Gaussian, mean 0 and standard deviation ``std`` (Quantus:
  ``LocalLipschitzEstimate``, ``perturb_std``).

Norms are over all of a map's pixels (and all of an input's values). Yeh et al. take the
sensitivity's numerator alone (``relative=False``); Quantus (followed by default) divides
it by ``||a(x)||_2``, so that the measure does not depend on the map's scale. Zero in that
denominator is defined, never NaN: for an all-zero clean map the sensitivity is the
numerator alone (absolute), where Quantus's division gives ``inf`` or ``nan``. The noise is
in the units of the inputs (a network's normalised values for :mod:`axiomcam.models`).

Batch-first: the ``N`` noisy copies of a batch are explained ``copies`` at a time as one
batch of ``copies * B`` inputs. ``noise`` may be given (``(N, B, ...)``) to reproduce a
draw; otherwise ``generator`` (a seeded :class:`torch.Generator`) draws it.

Examples:
    >>> import torch
    >>> explain = lambda inputs, targets: inputs[:, 0] ** 2   # a map of the first channel
    >>> inputs = torch.ones(1, 2, 3, 3)
    >>> noise = torch.full((1, 1, 2, 3, 3), 0.1)              # x' = 1.1 everywhere
    >>> max_sensitivity(explain, inputs, torch.tensor([0]), noise=noise)  # (1.21 - 1) / 1
    tensor([0.2100])
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..support import check_positive_int

__all__ = ["avg_sensitivity", "gaussian_noise", "local_lipschitz_estimate",
           "max_sensitivity", "robustness_ratios", "uniform_noise"]

#: Quantus's guard against division by zero in the Lipschitz estimate
LIPSCHITZ_EPSILON = 1e-10

Explain = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def uniform_noise(inputs: torch.Tensor, samples: int, radius: float,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """``(samples, *inputs.shape)`` noise uniform in ``[-radius, radius]``.

    Examples:
        >>> import torch
        >>> noise = uniform_noise(torch.zeros(2, 3), 4, 0.5, torch.Generator().manual_seed(0))
        >>> tuple(noise.shape), bool(noise.abs().max() <= 0.5)
        ((4, 2, 3), True)
    """
    shape = (check_positive_int(samples, "samples"), *inputs.shape)
    values = torch.rand(shape, generator=generator, dtype=inputs.dtype)
    return ((2 * values - 1) * float(radius)).to(inputs.device)


def gaussian_noise(inputs: torch.Tensor, samples: int, std: float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """``(samples, *inputs.shape)`` Gaussian noise, mean 0, standard deviation ``std``.

    Examples:
        >>> import torch
        >>> tuple(gaussian_noise(torch.zeros(2, 3), 4, 0.1).shape)
        (4, 2, 3)
    """
    shape = (check_positive_int(samples, "samples"), *inputs.shape)
    return (torch.randn(shape, generator=generator, dtype=inputs.dtype)
            * float(std)).to(inputs.device)


def _checked_noise(noise: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    if not isinstance(noise, torch.Tensor) or noise.dim() != inputs.dim() + 1 \
            or tuple(noise.shape[1:]) != tuple(inputs.shape) or noise.shape[0] < 1:
        raise ValueError(f"noise must be a (N, {', '.join(map(str, inputs.shape))}) tensor "
                         f"(N noisy copies of the inputs), got "
                         f"{tuple(getattr(noise, 'shape', ()))}")
    if not bool(torch.isfinite(noise).all()):
        raise ValueError("noise holds NaN or inf")
    return noise.to(inputs.device, inputs.dtype)


def robustness_ratios(explain: Explain, inputs: torch.Tensor, targets: torch.Tensor,
                      noise: torch.Tensor, *, lipschitz: bool = False,
                      relative: bool = True, copies: int = 4) -> torch.Tensor:
    """``(N, B)`` per noisy copy ``s`` and image: ``||a(x + n_s) - a(x)||_2`` divided by
    ``||a(x)||_2`` (sensitivity; 1 where that norm is 0; ``relative=False``: not divided)
    or by ``||n_s||_2 + 1e-10`` (``lipschitz``).

    Args:
        explain: ``(inputs, targets) -> (B, H, W)`` maps (or any ``(B, ...)`` attributions).
        inputs: ``(B, ...)`` the clean inputs; targets: ``(B,)`` the explained classes.
        noise: ``(N, B, ...)`` the perturbations.
        copies: noisy copies explained per call (``copies * B`` inputs per batch).

    Examples:
        >>> import torch
        >>> explain = lambda inputs, targets: 2 * inputs
        >>> noise = torch.full((2, 1, 4), 0.5)
        >>> robustness_ratios(explain, torch.ones(1, 4), torch.tensor([0]), noise,
        ...                   lipschitz=True).flatten()   # ||2 n|| / ||n|| = 2
        tensor([2., 2.])
    """
    noise = _checked_noise(noise, inputs)
    copies = check_positive_int(copies, "copies")
    batch = inputs.shape[0]
    clean = explain(inputs, targets).detach().reshape(batch, -1)
    scale = clean.norm(dim=1)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale)) if relative \
        else torch.ones_like(scale)
    ratios = []
    for start in range(0, noise.shape[0], copies):
        chunk = noise[start:start + copies]
        count = chunk.shape[0]
        noisy = (inputs.unsqueeze(0) + chunk).reshape(count * batch, *inputs.shape[1:])
        maps = explain(noisy, targets.repeat(count)).detach().reshape(count, batch, -1)
        numerator = (maps - clean.unsqueeze(0)).norm(dim=2)
        denominator = chunk.reshape(count, batch, -1).norm(dim=2) + LIPSCHITZ_EPSILON \
            if lipschitz else scale.unsqueeze(0).expand(count, batch)
        ratios.append(numerator / denominator)
    return torch.cat(ratios)


def _noise(noise: torch.Tensor | None, draw: Callable[[], torch.Tensor]) -> torch.Tensor:
    """The given noise, or a draw (only when none is given)."""
    return draw() if noise is None else noise


def max_sensitivity(explain: Explain, inputs: torch.Tensor, targets: torch.Tensor, *,
                    radius: float = 0.2, samples: int = 10, noise: torch.Tensor | None = None,
                    generator: torch.Generator | None = None, relative: bool = True,
                    copies: int = 4) -> torch.Tensor:
    """``(B,)`` max-sensitivity: ``max_s ||a(x + n_s) - a(x)|| / ||a(x)||``, ``n_s`` uniform
    in ``[-radius, radius]`` (Quantus's ``lower_bound``, 0.2), ``samples`` copies (Quantus:
    ``nr_samples`` 200; 10 here by default, the cost being one explanation per copy).

    See the module's documentation; ``noise`` (``(N, B, ...)``) replaces the draw;
    ``relative=False`` gives Yeh et al.'s form (no division by ``||a(x)||``).
    """
    drawn = _noise(noise, lambda: uniform_noise(inputs, samples, radius, generator))
    return robustness_ratios(explain, inputs, targets, drawn, relative=relative,
                             copies=copies).amax(dim=0)


def avg_sensitivity(explain: Explain, inputs: torch.Tensor, targets: torch.Tensor, *,
                    radius: float = 0.2, samples: int = 10, noise: torch.Tensor | None = None,
                    generator: torch.Generator | None = None, relative: bool = True,
                    copies: int = 4) -> torch.Tensor:
    """``(B,)`` average sensitivity: the mean over ``s`` of the ratio of
    :func:`max_sensitivity`.

    Examples:
        >>> import torch
        >>> explain = lambda inputs, targets: inputs
        >>> noise = torch.tensor([[[0.1, 0.0]], [[0.3, 0.0]]])   # ratios 0.1, 0.3
        >>> avg_sensitivity(explain, torch.tensor([[1.0, 0.0]]), torch.tensor([0]), noise=noise)
        tensor([0.2000])
    """
    drawn = _noise(noise, lambda: uniform_noise(inputs, samples, radius, generator))
    return robustness_ratios(explain, inputs, targets, drawn, relative=relative,
                             copies=copies).mean(dim=0)


def local_lipschitz_estimate(explain: Explain, inputs: torch.Tensor, targets: torch.Tensor,
                             *, std: float = 0.1, samples: int = 10,
                             noise: torch.Tensor | None = None,
                             generator: torch.Generator | None = None,
                             copies: int = 4) -> torch.Tensor:
    """``(B,)`` local Lipschitz estimate: ``max_s ||a(x + n_s) - a(x)|| / (||n_s|| + 1e-10)``,
    ``n_s`` Gaussian with standard deviation ``std`` (Quantus's ``perturb_std``, 0.1).

    Examples:
        >>> import torch
        >>> explain = lambda inputs, targets: 3 * inputs
        >>> round(float(local_lipschitz_estimate(explain, torch.zeros(1, 5), torch.tensor([0]),
        ...       generator=torch.Generator().manual_seed(0))[0]), 4)
        3.0
    """
    drawn = _noise(noise, lambda: gaussian_noise(inputs, samples, std, generator))
    return robustness_ratios(explain, inputs, targets, drawn, lipschitz=True,
                             copies=copies).amax(dim=0)
