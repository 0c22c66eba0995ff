"""The perturbation engine: runs perturbed copies of a batch's images through the network,
in batches and with progress, for the methods that measure scores instead of taking
gradients (Ablation-CAM, Score-CAM, occlusion, the axioms probe).

Two kinds of copies:

- copies of the *target layer's output* (Ablation-CAM's ablated channels): swapped in at
  the layer's forward hook, so only the layers after it run on the batch of copies when
  the model allows it (checked once per layer; else the whole network is re-run per copy,
  with a warning);
- copies of the *input* (Score-CAM's masked images, occlusion's windows): the whole
  network runs on them.

The model is always called through :func:`model_output`, which pairs the model's extra
inputs with the images each copy comes from.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    >>> engine = PerturbationEngine(TargetLayer(model, "0"), batch_size=2, progress=False)
    >>> [(image, channels.tolist()) for image, channels
    ...  in engine.chunks(torch.tensor([[True, False, True, True]]), "demo", 2)]
    [(0, [0, 2]), (0, [3])]
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Iterator, Sequence

import torch

from ..support import Progress, progress_bar, warn
from .capture import TargetLayer, capturing

__all__ = [
    "ABLATION_COPY_BYTES", "DEFAULT_BATCH_SIZE", "AblationCache", "PerturbationEngine",
    "check_batch_size", "check_noise_std", "check_samples", "model_output",
    "noise_generator",
]

logger = logging.getLogger("axiomcam")

#: perturbed images per whole-network forward pass (Score-CAM; Ablation-CAM's fallback).
#: On CPU a larger batch is not faster per image (ResNet-18 at 224, 2 threads: 29 ms per
#: image at 16, 33 ms at 64; Score-CAM 13.4 s vs 16.7 s), and memory grows with it.
DEFAULT_BATCH_SIZE = 16
#: Ablation-CAM and the axioms probe put as many ablated copies of the layer's output in
#: one pass as fit in this many bytes (only the layers after the target run on them)
ABLATION_COPY_BYTES = 128 * 2**20

#: what a score measure takes and gives: the model's output for ``m`` rows and the image
#: each row belongs to ``(m,)`` -> ``(m, n)`` (``ResolvedTargets.scores`` or
#: ``ResolvedTargets.probabilities``)
Measure = Callable[[object, torch.Tensor], torch.Tensor]


class AblationCache(dict):
    """Channel-ablated scores of one batch, shared by the explainers given it (set
    ``explainer.ablation_cache``): ``evaluate`` runs Ablation-CAM's two weight forms and
    the axioms probe on the same batch, and one sweep of the ``K`` ablations serves all
    three. Entries are keyed by the layer, the inputs tensor (identity and version) and
    the target classes; use a new cache per batch, since a freed tensor's id is reused.

    Examples:
        >>> import torch, torchvision
        >>> from axiomcam.methods import AblationCAM
        >>> model = torchvision.models.resnet18(num_classes=4).eval()
        >>> inputs, cache = torch.rand(1, 3, 32, 32), AblationCache()
        >>> score_form = AblationCAM(model, "layer4")
        >>> activation_form = AblationCAM(model, "layer4", weights="activation")
        >>> score_form.ablation_cache = activation_form.ablation_cache = cache
        >>> maps = [cam(inputs, 2).maps for cam in (score_form, activation_form)]
        >>> len(cache)  # one sweep for both
        1
    """


def noise_generator(seed: int | None, device: torch.device | str) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed`` (``None``: a fresh random seed), for
    the noise of the sampled methods (smoothing, SS-CAM, Smooth Grad-CAM++).

    Examples:
        >>> draw = lambda: torch.randn(2, generator=noise_generator(7, "cpu"))
        >>> bool((draw() == draw()).all())
        True
    """
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def check_samples(num_samples: object) -> int:
    """``num_samples`` (noisy copies, path steps) if it is a positive int, else a
    ValueError naming it."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    return num_samples


def check_noise_std(std: object) -> float:
    """``std`` (a noise's standard deviation) as a float if it is a number >= 0, else a
    ValueError naming it."""
    if isinstance(std, bool) or not isinstance(std, int | float) or not std >= 0:
        raise ValueError(f"std must be a number >= 0 (the noise's standard deviation), "
                         f"got {std!r}")
    return float(std)


def check_batch_size(batch_size: object) -> int | None:
    """``batch_size`` if it is ``None`` or a positive int, else a ValueError naming it."""
    if batch_size is not None and (isinstance(batch_size, bool)
                                   or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    return batch_size


def model_output(model: torch.nn.Module, inputs: torch.Tensor,
                 rows: torch.Tensor | None = None, *,
                 extra_inputs: Sequence[object] = ()) -> object:
    """``model(inputs, *extra_inputs)`` with the extra inputs paired to the images.

    A tensor among ``extra_inputs`` with a first axis pairs its rows with the images: with
    ``rows`` ``(m,)`` (the image each of the ``m`` rows of ``inputs`` is a copy of), row
    ``rows[i]`` goes with ``inputs[i]``; without, it must have ``len(inputs)`` rows. A
    tensor with one row goes with every image. Anything else is passed as it is.

    Raises:
        ValueError: without ``rows``, a tensor with neither 1 nor ``len(inputs)`` rows.

    Examples:
        >>> import torch
        >>> def model(images, offsets):
        ...     return images.flatten(1).sum(1) + offsets
        >>> images, offsets = torch.zeros(3, 1, 2, 2), torch.tensor([10.0, 20.0, 30.0])
        >>> model_output(model, images[:2], torch.tensor([2, 2]), extra_inputs=(offsets,))
        tensor([30., 30.])
        >>> model_output(model, images, extra_inputs=(offsets[:1],))  # one row for all
        tensor([10., 10., 10.])
    """
    if not extra_inputs:
        return model(inputs)
    return model(inputs, *(_paired(extra, position, inputs.shape[0], rows)
                           for position, extra in enumerate(extra_inputs)))


def _paired(extra: object, position: int, batch: int, rows: torch.Tensor | None) -> object:
    """One extra input, its rows paired with the ``batch`` images (see :func:`model_output`)."""
    if not (torch.is_tensor(extra) and extra.dim() > 0):
        return extra
    if rows is not None:
        rows = rows.to(extra.device)
        return extra.index_select(0, torch.zeros_like(rows) if extra.shape[0] == 1 else rows)
    if extra.shape[0] == 1 and batch > 1:
        return extra.expand(batch, *extra.shape[1:])
    if extra.shape[0] != batch:
        raise ValueError(
            f"extra_inputs[{position}] has {extra.shape[0]} rows for a batch of "
            f"{batch} images: give one row per image, or one for all")
    return extra


class PerturbationEngine:
    """Runs perturbed copies of a batch's images through the network for one explainer (or
    one probe), in batches, with progress.

    Args:
        layer: the target layer, which also keeps what the engine learns about it
            (:attr:`~axiomcam.methods.capture.TargetLayer.suffix_batches`); ``None`` for
            copies of the input only (occlusion), with ``forward`` given.
        forward: ``(inputs, rows) -> output``, the model with its extra inputs paired to
            ``rows`` (``None``: :func:`model_output` of the layer's model, no extra inputs).
        batch_size: copies per forward pass (``None``: :data:`DEFAULT_BATCH_SIZE` images
            through the whole network; as many copies of the layer's output as fit in
            :data:`ABLATION_COPY_BYTES` through the layers after it).
        progress: a progress bar over the passes (see :func:`axiomcam.support.progress_bar`).
        ablation_cache: channel-ablated scores shared with other explainers of the batch.
    """

    def __init__(self, layer: TargetLayer | None,
                 forward: Callable[[torch.Tensor, torch.Tensor | None], object] | None = None,
                 *, batch_size: int | None = None, progress: Progress = None,
                 ablation_cache: AblationCache | None = None) -> None:
        if layer is None and forward is None:
            raise ValueError("a PerturbationEngine without a layer needs forward")
        self.layer = layer
        self.forward = functools.partial(model_output, layer.model) if forward is None \
            else forward
        self.batch_size = check_batch_size(batch_size)
        self.progress = progress
        self.ablation_cache = ablation_cache

    @property
    def images_per_pass(self) -> int:
        """Copies of the input per whole-network pass."""
        return self.batch_size or DEFAULT_BATCH_SIZE

    def copies_per_pass(self, copy_bytes: int) -> int:
        """Copies of the layer's output (``copy_bytes`` each) per pass of the layers after
        it: ``batch_size`` if given, else as many as fit in :data:`ABLATION_COPY_BYTES` (the
        network before the layer runs once per pass, so fewer, larger passes are faster)."""
        if self.batch_size is not None:
            return self.batch_size
        return max(1, ABLATION_COPY_BYTES // max(1, copy_bytes))

    def chunks(self, channels: torch.Tensor, description: str,
               size: int) -> Iterator[tuple[int, torch.Tensor]]:
        """``(image, channel indices)``: the channels where ``channels`` ``(B, K)`` is true,
        image by image, in chunks of at most ``size``; the progress bar counts the chunks."""
        per_image = [row.nonzero().flatten() for row in channels]
        total = sum(math.ceil(indices.numel() / size) for indices in per_image)
        with progress_bar(self.progress, total, description) as bar:
            for image, indices in enumerate(per_image):
                for start in range(0, indices.numel(), size):
                    yield image, indices[start:start + size]
                    bar.update(1)

    def copy_scores(self, image: int, copies: torch.Tensor, measure: Measure) -> torch.Tensor:
        """``(m, n)``: ``measure`` of the model's output on each of the ``m`` ``copies`` of
        image ``image`` (its extra inputs follow it), whole-network passes of at most
        :attr:`images_per_pass`, without autograd."""
        rows = _image_rows(image, copies.shape[0], copies.device)
        size = self.images_per_pass
        with torch.no_grad():
            return torch.cat([
                measure(self.forward(part, part_rows), part_rows)
                for part, part_rows in zip(copies.split(size), rows.split(size), strict=True)
            ])

    def layer_output_scores(self, inputs: torch.Tensor, image: int, copies: torch.Tensor,
                            measure: Measure, *, original: torch.Tensor,
                            own_score: torch.Tensor) -> torch.Tensor:
        """``(m, n)``: ``measure`` of the output of image ``image`` of ``inputs`` with the
        layer's output replaced by each of the ``m`` ``copies``.

        The first call for the layer finds out whether the layers after it can run on a
        batch of copies of one image's output (models that reshape with the *input's*
        batch size cannot): the image's ``original`` output rides along as one more copy
        and must give ``own_score`` back; if not, the whole network is re-run per copy from
        then on (same result, slower), and a warning says so once.
        """
        if self.layer.suffix_batches is not None:
            return self._replaced_scores(inputs, image, copies, measure)
        self.layer.suffix_batches = True
        try:
            scores = self._replaced_scores(inputs, image, torch.cat([copies, original]),
                                           measure)
            works = scores.shape[0] == copies.shape[0] + 1 and torch.allclose(
                scores[-1], own_score, rtol=1e-4,
                atol=1e-5 * float(own_score.abs().max().clamp_min(1.0)))
        except Exception as error:  # any failure means "cannot batch here"
            logger.debug("suffix batching failed: %r", error)
            works = False
        if works:
            return scores[:-1]
        self.layer.suffix_batches = False
        warn(
            f"{type(self.layer.model).__name__} cannot run the layers after "
            f"{self.layer.name!r} on a batch of copies of one image (it reshapes "
            "with the input's batch size?): the whole network is re-run per copy instead "
            "(same result, slower)"
        )
        return self._replaced_scores(inputs, image, copies, measure)

    def _replaced_scores(self, inputs: torch.Tensor, image: int, replacement: torch.Tensor,
                         measure: Measure) -> torch.Tensor:
        one_image = inputs[image:image + 1]
        rows = _image_rows(image, replacement.shape[0], inputs.device)
        if self.layer.suffix_batches:
            # only the part after the layer sees the m copies: the prefix runs for 1 image
            return measure(self._run_replaced(one_image, replacement, rows[:1]), rows)
        # the whole network per copy, in whole-network batches of at most images_per_pass
        size = self.images_per_pass
        return torch.cat([
            measure(self._run_replaced(
                one_image.expand(part.shape[0], *one_image.shape[1:]), part, part_rows),
                part_rows)
            for part, part_rows in zip(replacement.split(size), rows.split(size), strict=True)
        ])

    def _run_replaced(self, model_inputs: torch.Tensor, replacement: torch.Tensor,
                      rows: torch.Tensor) -> object:
        capture = self.layer.capture(replace_at_call=self.layer.calls, replacement=replacement)
        with capturing(self.layer.module, capture), torch.no_grad():
            return self.forward(model_inputs, rows)


def _image_rows(image: int, count: int, device: torch.device) -> torch.Tensor:
    """``(count,)`` copies of the index ``image``: the image each copy comes from."""
    return torch.full((count,), image, dtype=torch.long, device=device)
