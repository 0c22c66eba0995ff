"""Sanity checks: does a map depend on what the model learned? (Adebayo et al., NeurIPS 2018)

:func:`cascading_randomization` re-initialises a copy of the model block by block from the
output side down and measures, by :func:`spearman_correlation` over pixels, how much of
each image's map survives.  A method whose maps stay the same once the weights are random
explains the image (its edges, its contrast), not the model.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

import axiomcam

from ..layers import resolve_layer
from ..support import check_inputs, check_model, eval_mode
from ..targets import TargetSpec

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _as_rows(values: object, name: str) -> torch.Tensor:
    if not torch.is_tensor(values):
        raise TypeError(f"{name} must be a torch.Tensor (B, N), not {type(values).__name__}")
    if values.dim() < 2 or values.shape[0] == 0 or values[0].numel() == 0:
        raise ValueError(f"{name} must have shape (B, N) with B, N >= 1, got "
                         f"{tuple(values.shape)}")
    if values.dtype == torch.bool or values.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {values.dtype}")
    rows = values.detach().flatten(1).double()
    if not torch.isfinite(rows).all():
        bad = (~torch.isfinite(rows)).any(1).nonzero().flatten().tolist()
        raise ValueError(f"{name} contain NaN or inf (rows {bad})")
    return rows


def _average_ranks(rows: torch.Tensor) -> torch.Tensor:
    """1-based ranks of each row's values, equal values sharing the mean of their ranks."""
    ordered, order = rows.sort(dim=1, stable=True)
    count = rows.shape[1]
    positions = torch.arange(count, device=rows.device).expand_as(rows)
    starts = torch.ones_like(rows, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]      # a run of equal values begins
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]                            # ... and ends before the next
    # each position's run: its first position (running max of run starts) and its last
    # (running min of run ends, from the right)
    first = torch.where(starts, positions, 0).cummax(dim=1).values
    last = torch.where(ends, positions, count).flip(1).cummin(dim=1).values.flip(1)
    ranks = torch.empty_like(rows)
    ranks.scatter_(1, order, (first + last).to(rows.dtype) / 2 + 1)
    return ranks


def spearman_correlation(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation of each row of ``first`` with the same row of ``second``.

    ``rho = sum_n (r_n - mean r)(s_n - mean s) / sqrt(sum_n (r_n - mean r)^2 sum_n (s_n -
    mean s)^2)``: the Pearson correlation of the ranks ``r``, ``s`` of the row's values,
    with tied values given the average of the ranks they span (so it equals
    ``scipy.stats.spearmanr``).  Ties matter for CAMs: after the ReLU many pixels are
    exactly 0.  A row whose values are all equal has no ranking: its correlation is
    defined as 0 (never NaN).

    Args:
        first: ``(B, N)`` real values (``(B, H, W)`` maps are flattened to ``(B, H*W)``).
        second: the same shape as ``first``.

    Returns:
        ``(B,)`` correlations in ``[-1, 1]``, in the inputs' floating dtype (float32 for
        integer inputs), on their device.

    Raises:
        TypeError: not tensors, or bool/complex tensors.
        ValueError: shapes differ or are not ``(B, N)`` with ``B, N >= 1``; NaN or inf.

    Examples:
        >>> import torch
        >>> spearman_correlation(torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]]),
        ...                      torch.tensor([[10.0, 30.0, 20.0], [1.0, 2.0, 3.0]]))
        tensor([0.5000, 0.8660])
    """
    rows_first = _as_rows(first, "first")
    rows_second = _as_rows(second, "second")
    if first.shape != second.shape:
        raise ValueError(
            f"first and second must have the same shape, got {tuple(first.shape)} and "
            f"{tuple(second.shape)}"
        )
    ranks_first = _average_ranks(rows_first)
    ranks_second = _average_ranks(rows_second)
    centred_first = ranks_first - ranks_first.mean(dim=1, keepdim=True)
    centred_second = ranks_second - ranks_second.mean(dim=1, keepdim=True)
    covariance = (centred_first * centred_second).sum(dim=1)
    scale = ((centred_first ** 2).sum(dim=1) * (centred_second ** 2).sum(dim=1)).sqrt()
    # ranks are multiples of 1/2, so a non-constant row has a scale of at least 1/2
    correlation = torch.where(scale > 0, covariance / scale.clamp_min(1e-300),
                              torch.zeros_like(scale)).clamp(-1, 1)
    dtype = torch.promote_types(first.dtype, second.dtype)
    return correlation.to(dtype if dtype.is_floating_point else torch.float32)


def _has_parameters(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def _candidate_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's children with parameters, a container child with parameters in two or
    more of its own children replaced by those (see :func:`default_randomization_layers`)."""
    blocks: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        if isinstance(child, _CONTAINERS):
            inner = [(f"{name}.{inner_name}", module)
                     for inner_name, module in child.named_children()
                     if _has_parameters(module)]
            if len(inner) >= 2:
                blocks.extend(inner)
                continue
        if _has_parameters(child):
            blocks.append((name, child))
    return blocks


def default_randomization_layers(model: nn.Module, inputs: torch.Tensor) -> tuple[str, ...]:
    """The blocks :func:`cascading_randomization` randomises by default, output side first.

    The model's direct children, where a ``nn.Sequential``/``nn.ModuleList``/
    ``nn.ModuleDict`` child with parameters in at least two of its own children is
    replaced by those children (one level deep: MobileNetV2's ``features`` becomes
    ``features.0`` .. ``features.18``, while its ``classifier``, a dropout and one linear
    layer, stays whole).  Only modules with parameters that run in a forward pass are
    kept, ordered by when they first run in one forward pass on ``inputs[:1]`` (no
    autograd, eval mode), then reversed.  Parameters held directly by the model, outside
    any child, are not part of any block.

    Args:
        model: the network.
        inputs: ``(B, C, H, W)`` a batch the model accepts (only the first image runs).

    Returns:
        the qualified module names, output side first.

    Raises:
        TypeError/ValueError: a model without parameters, bad inputs.
        ValueError: no child module with parameters runs in the forward pass.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        >>> default_randomization_layers(model, torch.rand(1, 3, 8, 8))
        ('5', '2', '0')
    """
    check_model(model)
    inputs = check_inputs(model, inputs)
    blocks = _candidate_blocks(model)
    first_run: list[str] = []
    handles = []

    def make_hook(name: str):
        def hook(module: nn.Module, args: object) -> None:
            if name not in first_run:
                first_run.append(name)
        return hook

    try:
        for name, module in blocks:
            handles.append(module.register_forward_pre_hook(make_hook(name)))
        with eval_mode(model), torch.no_grad():
            model(inputs[:1])
    finally:
        for handle in handles:
            handle.remove()
    if not first_run:
        raise ValueError(
            f"no child module of {type(model).__name__} with parameters runs in the forward "
            "pass: pass layers= explicitly"
        )
    return tuple(reversed(first_run))


def _randomize(module: nn.Module) -> None:
    """Re-initialise ``module`` and its submodules in place from the global RNG.

    Every submodule with ``reset_parameters()`` calls it (a BatchNorm then also forgets
    its running statistics: mean 0, variance 1, weight 1, bias 0).  A submodule that holds
    parameters of its own but has no ``reset_parameters()`` gets each of those parameters'
    values shuffled (same values, so the same scale, in a random order).
    """
    for submodule in module.modules():
        reset = getattr(submodule, "reset_parameters", None)
        if callable(reset):
            reset()
            continue
        with torch.no_grad():
            for parameter in submodule.parameters(recurse=False):
                order = torch.randperm(parameter.numel()).to(parameter.device)
                parameter.copy_(parameter.flatten()[order].view_as(parameter))


def _layer_names(model: nn.Module, layers: Sequence[str | nn.Module]) -> tuple[str, ...]:
    if isinstance(layers, str | nn.Module) or not isinstance(layers, Sequence):
        raise TypeError(
            f"layers must be a sequence of module names, not {type(layers).__name__}: "
            f"{layers!r}"
        )
    modules = dict(model.named_modules())
    names: list[str] = []
    unknown: list[str] = []
    for layer in layers:
        if isinstance(layer, nn.Module):
            names.append(resolve_layer(model, layer)[0])
        elif isinstance(layer, str) and layer in modules and layer:
            names.append(layer)
        elif isinstance(layer, str):
            unknown.append(layer)
        else:
            raise TypeError(f"layers must hold module names (str), got {layer!r}")
    if unknown:
        raise ValueError(
            f"layers {unknown} do not exist in {type(model).__name__} "
            "(default_randomization_layers(model, inputs) lists the default blocks)"
        )
    if not names:
        raise ValueError("layers is empty: name at least one module to randomise")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"layers {repeated} are named more than once")
    without = [name for name in names if not _has_parameters(modules[name])]
    if without:
        raise ValueError(f"layers {without} have no parameters to randomise")
    return tuple(names)


@dataclass(frozen=True)
class SanityCheck:
    """Per-image result of :func:`cascading_randomization`.

    Attributes:
        layers: the module randomised at each step, output side first; step ``i`` has
            randomised ``layers[:i + 1]`` (cumulatively).
        correlations: ``(B, steps)`` Spearman rank correlation over pixels between each
            image's original map and its map after step ``i``.
    """

    layers: tuple[str, ...]
    correlations: torch.Tensor


def cascading_randomization(model: nn.Module, inputs: torch.Tensor, method: str,
                            targets: TargetSpec, *,
                            target_layer: str | nn.Module | None = None,
                            layers: Sequence[str | nn.Module] | None = None,
                            max_steps: int | None = None, seed: int = 0,
                            **method_options: object) -> SanityCheck:
    """Cascading model-parameter randomization test (Adebayo et al., "Sanity Checks for
    Saliency Maps", NeurIPS 2018).

    On a copy of the model (``copy.deepcopy``; the user's model is never modified),
    re-initialise ``layers[0]``, then also ``layers[1]``, and so on (output side first,
    cumulatively).  After step ``i``, explain the images again for the **same** target
    classes (the original explanation's ``targets``: with ``targets=None`` the top class
    of the *original* model) at the same target layer (by name), and compute
    ``correlations[:, i] = spearman(original maps, step-i maps)`` over the pixels of
    :attr:`axiomcam.Explanation.maps`.  Maps that stay correlated while the weights they
    should depend on are random fail the check.

    Randomising a module calls ``reset_parameters()`` on it and on every submodule that
    has it (a submodule with parameters of its own but no ``reset_parameters()`` has those
    values shuffled), inside ``torch.random.fork_rng()`` with
    ``torch.manual_seed(seed + step)``: results are reproducible and the global RNG is
    untouched.  A BatchNorm's reset also resets its running statistics (mean 0, variance
    1), i.e. it returns to a freshly built network's state, as the paper's
    re-initialisation does.  The target layer itself is randomised at some step of the
    default order: that is expected (the map then changes with it).  A step whose map
    becomes all-zero (``AxiomCamWarning`` from the method) has correlation 0.  ``seed``
    also seeds the smoothing noise of ``smooth=n``, so every step sees the same noisy
    copies.  (A random-weight model built right after ``torch.manual_seed(seed + i)``
    gets the very same weights back at step ``i``: use another ``seed`` for such models.)

    Args:
        model: the network (left unchanged, parameters, buffers and modes).
        inputs: ``(B, C, H, W)`` float batch on the model's device.
        method: any name of :data:`axiomcam.METHOD_NAMES`.
        targets: as in :func:`axiomcam.explain`, one target per image (``None`` = each
            image's top class under the original model; a callable is re-used at each
            step).
        target_layer: the layer explained (name or module of ``model``; ``None``: the
            method's automatic choice on the original model, kept at every step).
        layers: the modules to randomise in order (names or modules of ``model``);
            ``None``: :func:`default_randomization_layers` (blocks, output side first).
        max_steps: keep only the first ``max_steps`` layers (``None``: all).
        seed: the randomisation of step ``i`` uses seed ``seed + i``.
        **method_options: passed to :func:`axiomcam.explain` (``batch_size``, ``smooth``,
            ``progress``, method options).

    Returns:
        a :class:`SanityCheck`: ``layers`` (one per step) and ``correlations``
        ``(B, steps)`` on the inputs' device.

    Raises:
        TypeError: a bad model, inputs, ``layers`` or ``seed``.
        ValueError: unknown, repeated or parameter-free ``layers`` (the names are listed),
            an empty ``layers``, ``max_steps < 1``, targets giving several maps per image
            (a ``(B, k)`` tensor), and whatever :func:`axiomcam.explain` rejects.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(7)
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                       nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
        >>> check = cascading_randomization(model, torch.rand(2, 3, 8, 8), "gradcam", 0,
        ...                                 target_layer="2")
        >>> check.layers, check.correlations.shape
        (('6', '2', '0'), torch.Size([2, 3]))
    """
    check_model(model)
    inputs = check_inputs(model, inputs)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int)
                                  or max_steps < 1):
        raise ValueError(f"max_steps must be a positive int or None, got {max_steps!r}")
    if isinstance(target_layer, nn.Module):
        target_layer = resolve_layer(model, target_layer)[0]
    names = (default_randomization_layers(model, inputs) if layers is None
             else _layer_names(model, layers))
    if max_steps is not None:
        names = names[:max_steps]

    randomized = copy.deepcopy(model)
    modules = dict(randomized.named_modules())
    options = {"seed": seed, **method_options}
    original = axiomcam.explain(randomized, inputs, method=method, target_layer=target_layer,
                                targets=targets, **options)
    if original.maps.dim() != 3:
        raise ValueError(
            f"cascading_randomization compares one map per image; targets gave maps of "
            f"shape {tuple(original.maps.shape)}: pass one target per image"
        )
    same_targets = original.targets if original.targets is not None else targets
    devices = sorted({p.device.index or 0 for p in randomized.parameters()
                      if p.device.type == "cuda"})
    correlations = torch.empty(inputs.shape[0], len(names), dtype=original.maps.dtype,
                               device=inputs.device)
    for step, name in enumerate(names):
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed + step)
            _randomize(modules[name])
        after = axiomcam.explain(randomized, inputs, method=method,
                                 target_layer=original.target_layer, targets=same_targets,
                                 **options)
        correlations[:, step] = spearman_correlation(original.maps.flatten(1),
                                                     after.maps.flatten(1))
    return SanityCheck(layers=tuple(names), correlations=correlations)


__all__ = [
    "SanityCheck", "cascading_randomization", "default_randomization_layers",
    "spearman_correlation",
]
