"""Occlusion (Zeiler & Fergus, ECCV 2014): a window slid over the input, replaced by a
baseline, and the drop of the target's score as the map.

It explains the input itself (no target layer): every window position is one copy of the
image through the whole network, run in batches by the
:class:`~axiomcam.methods.engine.PerturbationEngine`, with progress.
:func:`occlusion_positions` says how many copies an image costs before anything runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..support import check_scores
from ..targets import ResolvedTargets, TargetSpec, resolve_targets
from .base import Explainer, PartialResult
from .engine import PerturbationEngine
from .maps import minmax_scale

__all__ = ["BASELINES", "WINDOWS_PER_SIDE", "Occlusion", "occlusion_baseline",
           "occlusion_positions", "scaled_window", "window_starts"]

#: the baselines named by a string (a number or a tensor is also a baseline)
BASELINES: tuple[str, ...] = ("zeros", "mean", "blur")
#: ``evaluate``'s and the app's window: the input's side divided by this, rounded up
#: (32 px at 224, the default window)
WINDOWS_PER_SIDE = 7

Size = int | Sequence[int]


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Where the windows start along one axis: ``0, stride, 2 stride, ...``, plus
    ``length - window`` when the stride does not land there, so every position is covered
    (a window longer than the axis is the whole axis).

    Examples:
        >>> window_starts(10, 4, 3), window_starts(10, 4, 2), window_starts(3, 8, 1)
        ([0, 3, 6], [0, 2, 4, 6], [0])
    """
    window = min(window, length)
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


def _per_axis(value: Size, axes: int, name: str) -> tuple[int, ...]:
    """``value`` as one positive int per spatial axis (an int is the same for all)."""
    values = (value,) * axes if isinstance(value, int) and not isinstance(value, bool) \
        else tuple(value) if isinstance(value, Sequence) else None
    if values is None or len(values) != axes or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"{name} must be a positive int or {axes} positive ints (one per "
                         f"spatial axis of the input), got {value!r}")
    return values


def _checked_size(value: object, name: str) -> Size:
    """A window or stride as given (int or sequence of ints >= 1), checked for its form."""
    items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(items, Sequence) or isinstance(items, str) or not items or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in items):
        raise ValueError(f"{name} must be a positive int or a tuple of positive ints (one "
                         f"per spatial axis), got {value!r}")
    return value


def scaled_window(spatial: Sequence[int], windows: int = WINDOWS_PER_SIDE
                  ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A window and a stride that fit the input: per spatial axis, ``ceil(side / windows)``
    and half of it (at least 1).

    Examples:
        >>> scaled_window((224, 224)), scaled_window((100,), 5)
        (((32, 32), (16, 16)), ((20,), (10,)))
    """
    window = tuple(math.ceil(side / windows) for side in spatial)
    return window, tuple(max(1, side // 2) for side in window)


def occlusion_positions(spatial: Sequence[int], window: Size = 32,
                        stride: Size | None = None) -> int:
    """How many window positions an image of spatial size ``spatial`` (``(H, W)``; ``(L,)``
    for a signal) has: the forward passes of the whole network on occluded copies that
    one image costs (the explanation adds one pass for the clean batch).

    Examples:
        >>> occlusion_positions((224, 224)), occlusion_positions((224, 224), 56, 56)
        (169, 16)
    """
    windows, strides = _windows_and_strides(window, stride, len(spatial))
    return math.prod(len(window_starts(length, w, s))
                     for length, w, s in zip(spatial, windows, strides, strict=True))


def _windows_and_strides(window: Size, stride: Size | None,
                         axes: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The window and the stride per spatial axis (the stride defaults to half the
    window)."""
    windows = _per_axis(window, axes, "window")
    strides = _per_axis(stride if stride is not None else
                        tuple(max(1, w // 2) for w in windows), axes, "stride")
    return windows, strides


def _gaussian_blur(inputs: torch.Tensor, sigmas: Sequence[float]) -> torch.Tensor:
    """``inputs`` ``(B, C, *spatial)`` blurred by a Gaussian of standard deviation
    ``sigmas[d]`` along spatial axis ``d`` (one separable 1-D pass per axis, edges
    replicated)."""
    blurred = inputs
    for axis, sigma in enumerate(sigmas, start=2):
        radius = math.ceil(3 * sigma)
        if radius < 1:
            continue
        offsets = torch.arange(-radius, radius + 1, device=inputs.device, dtype=inputs.dtype)
        kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
        moved = blurred.movedim(axis, -1)
        lines = moved.reshape(-1, 1, moved.shape[-1])
        lines = F.conv1d(F.pad(lines, (radius, radius), mode="replicate"),
                         (kernel / kernel.sum()).view(1, 1, -1))
        blurred = lines.view(moved.shape).movedim(-1, axis)
    return blurred


def occlusion_baseline(inputs: torch.Tensor, baseline: object,
                       window: Sequence[int]) -> torch.Tensor:
    """What fills a window, ``(B, C, *spatial)``: ``"zeros"`` (zeros in the network's input
    space: for a normalised model, the data set's mean colour), ``"mean"`` (each image's
    mean per channel), ``"blur"`` (the image blurred by a Gaussian of standard deviation
    half the window along each axis: the window's detail removed, its colours kept), a
    number, or a tensor broadcastable to ``inputs``.

    Raises:
        ValueError: an unknown name, a tensor of another shape, or a non-finite value.
        TypeError: anything else.

    Examples:
        >>> x = torch.arange(4.0).view(1, 1, 2, 2)
        >>> occlusion_baseline(x, "mean", (2, 2)).flatten().tolist()
        [1.5, 1.5, 1.5, 1.5]
    """
    if isinstance(baseline, str):
        if baseline == "zeros":
            return torch.zeros_like(inputs)
        if baseline == "mean":
            spatial = tuple(range(2, inputs.dim()))
            return inputs.mean(dim=spatial, keepdim=True).expand_as(inputs)
        if baseline == "blur":
            return _gaussian_blur(inputs, [w / 2 for w in window])
        raise ValueError(f"baseline must be one of {', '.join(BASELINES)}, a number or a "
                         f"tensor, got {baseline!r}")
    if isinstance(baseline, int | float) and not isinstance(baseline, bool):
        if not math.isfinite(baseline):
            raise ValueError(f"baseline must be finite, got {baseline!r}")
        return torch.full_like(inputs, float(baseline))
    if torch.is_tensor(baseline):
        try:
            values = torch.broadcast_to(baseline.to(inputs), inputs.shape)
        except RuntimeError:
            raise ValueError(f"a baseline tensor must broadcast to the input's shape "
                             f"{tuple(inputs.shape)}, got {tuple(baseline.shape)}") from None
        if not torch.isfinite(values).all():
            raise ValueError("the baseline tensor holds NaN or inf")
        return values
    raise TypeError(f"baseline must be one of {', '.join(BASELINES)}, a number or a tensor, "
                    f"not {type(baseline).__name__}")


class Occlusion(Explainer):
    """Occlusion (Zeiler & Fergus, ECCV 2014): the drop of the target's score when a
    window of the input is replaced by a baseline.

    Windows of ``window`` pixels start every ``stride`` pixels along each spatial axis
    (and one more ends at the far edge: see :func:`window_starts`). For window ``w``,
    ``d_w = y^c(x) - y^c(x with w replaced by the baseline)``, ``y^c`` the target's score
    (the logit, or what the target says: ``ClassScore(c, softmax=True)`` for the
    probability). The map at a pixel is the mean of ``d_w`` over the windows that cover
    it: ``raw`` ``(B, H, W)`` is that signed map at the input's resolution (negative where
    hiding the pixel *raises* the score), ``maps`` is ``minmax(ReLU(raw))`` like a CAM's.
    There is no target layer, no channel weights.

    Cost: one forward pass for the clean batch, then one pass of the whole network per
    window position and image (:func:`occlusion_positions`: 169 at 224 x 224 with the
    defaults), ``batch_size`` copies per pass.

    Args:
        model: any ``torch.nn.Module``.
        window: the window's side in input pixels, or one side per spatial axis.
        stride: how far the window moves (``None``: half the window).
        baseline: what fills the window: ``"zeros"`` (default), ``"mean"``, ``"blur"``, a
            number or a tensor (see :func:`occlusion_baseline`).
        **options: see :class:`~axiomcam.methods.Explainer` (``batch_size``,
            ``progress``, ``smooth``, ``output``, ``extra_inputs``, ...).

    Examples:
        >>> import torch, torchvision
        >>> from axiomcam.methods import Occlusion
        >>> model = torchvision.models.resnet18(num_classes=10)
        >>> exp = Occlusion(model, window=16, stride=8)(torch.rand(1, 3, 64, 64))
        >>> exp.maps.shape, exp.raw.shape, exp.target_layer
        (torch.Size([1, 64, 64]), torch.Size([1, 64, 64]), None)
    """

    name = "occlusion"
    title = "Occlusion"
    cost = "occlusion"

    def __init__(self, model: nn.Module, *, window: Size = 32, stride: Size | None = None,
                 baseline: str | float | torch.Tensor = "zeros", **options: object) -> None:
        super().__init__(model, **options)
        self.window = _checked_size(window, "window")
        self.stride = None if stride is None else _checked_size(stride, "stride")
        if isinstance(baseline, str) and baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {', '.join(BASELINES)}, a number or a "
                             f"tensor, got {baseline!r}")
        self.baseline = baseline

    @property
    def target_layer(self) -> None:
        """Occlusion explains the input: no layer."""
        return None

    def passes(self, inputs: torch.Tensor) -> int:
        """Forward passes of the whole network on occluded copies for ``inputs``
        ``(B, C, *spatial)``: window positions per image times ``B``."""
        return occlusion_positions(inputs.shape[2:], self.window, self.stride) * inputs.shape[0]

    def _grid(self, spatial: Sequence[int]) -> list[torch.Tensor]:
        """Per spatial axis, ``(P_d, L_d)``: 1 where window position ``p`` covers pixel ``l``."""
        cover = []
        for length, window, stride in zip(spatial, *_windows_and_strides(
                self.window, self.stride, len(spatial)), strict=True):
            starts = torch.tensor(window_starts(length, window, stride))
            pixels = torch.arange(length)
            cover.append(((pixels >= starts[:, None])
                          & (pixels < starts[:, None] + min(window, length))).float())
        return cover

    def explain_batch(self, inputs: torch.Tensor,
                      targets: TargetSpec | ResolvedTargets) -> PartialResult:
        batch, spatial = inputs.shape[0], tuple(inputs.shape[2:])
        rows = torch.arange(batch, device=inputs.device)
        with torch.no_grad():
            output = self.forward(inputs)
        if not isinstance(targets, ResolvedTargets):
            targets = resolve_targets(targets, output, batch, select=self.output)
        scores = check_scores(targets.scores(output, rows).detach())  # (B, n)
        cover = [axis.to(device=inputs.device, dtype=inputs.dtype)
                 for axis in self._grid(spatial)]
        counts = [axis.shape[0] for axis in cover]
        baseline = occlusion_baseline(inputs, self.baseline,
                                      _per_axis(self.window, len(spatial), "window"))
        drops = self._drops(inputs, baseline, cover, scores, targets)  # (B, n, P)
        # sum of the drops of the windows covering each pixel, axis by axis, then the mean
        total = drops.view(*scores.shape, *counts)
        coverage = torch.ones((), device=inputs.device, dtype=inputs.dtype)
        for axis, axis_cover in enumerate(cover):
            total = (total.movedim(2 + axis, -1) @ axis_cover).movedim(-1, 2 + axis)
            coverage = coverage[..., None] * axis_cover.sum(0)
        return PartialResult(raw=total / coverage, channel_weights=None, scores=scores,
                             targets=targets, target_layer=None)

    def _drops(self, inputs: torch.Tensor, baseline: torch.Tensor, cover: list[torch.Tensor],
               scores: torch.Tensor, targets: ResolvedTargets) -> torch.Tensor:
        """``(B, n, P)``: the score's drop for every window position (row-major over the
        axes' positions), the occluded copies run in batches with progress."""
        engine = PerturbationEngine(None, self.forward, batch_size=self.batch_size,
                                    progress=self.progress)
        counts = [axis.shape[0] for axis in cover]
        positions = math.prod(counts)
        drops = scores[..., None].repeat(1, 1, positions)
        every = torch.ones(inputs.shape[0], positions, dtype=torch.bool)
        for image, chunk in engine.chunks(every, "Occlusion", engine.images_per_pass):
            masks = torch.ones(chunk.numel(), 1, *inputs.shape[2:], device=inputs.device,
                               dtype=inputs.dtype)
            for axis, index in enumerate(torch.unravel_index(chunk, counts)):
                shape = [chunk.numel(), 1] + [1] * len(counts)
                shape[2 + axis] = -1
                masks = masks * cover[axis][index.to(inputs.device)].view(shape)
            copies = torch.lerp(inputs[image:image + 1], baseline[image:image + 1], masks)
            drops[image, :, chunk] -= engine.copy_scores(image, copies, targets.scores).T
        return drops

    def final_maps(self, partial: PartialResult,
                   inputs: torch.Tensor) -> tuple[torch.Tensor, None]:
        return minmax_scale(torch.relu(partial.raw), "occlusion map"), None
