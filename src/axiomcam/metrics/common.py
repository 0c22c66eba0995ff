"""Checks and batched forward passes shared by every metric.

Conventions of :mod:`axiomcam.metrics`:

- ``inputs`` is a ``(B, C, H, W)`` float batch, preprocessed as the model expects;
- ``maps`` is ``(B, H, W)``, one map per image at the input's resolution with values in
  ``[0, 1]`` (:attr:`axiomcam.Explanation.maps`);
- ``targets`` is ``(B,)`` class indices (the class each map explains);
- the metrics that perturb images read the target's probability ``p_c`` by the model's
  head, ``probability=`` (:data:`~axiomcam.outputs.PROBABILITY_RULES`): ``"softmax"``
  (default) over the classes, ``"sigmoid"`` of the class's own logit (multi-label heads;
  a single-logit binary model's classes are ``0``: ``1 - sigmoid(z)`` and ``1``:
  ``sigmoid(z)``), or ``"output"`` (the model already returns probabilities);
  :func:`class_probabilities` is where they all read it;
- ``boxes`` is a sequence of ``B`` float tensors ``(n_i, 4)``: ``x0, y0, x1, y1`` in input
  pixels, where pixel ``(row i, column j)`` covers ``[j, j + 1) x [i, i + 1)`` (a box over
  columns 10..19 has ``x0 = 10, x1 = 20``);
- results are per image, ``(B,)`` tensors (or ``(B, steps)`` curves); data-set means,
  medians and intervals are taken over those per-image values by the runner.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from ..outputs import check_probability_rule, output_probabilities
from ..support import Progress, check_inputs, check_model, eval_mode, progress_bar

__all__ = [
    "check_batch_size",
    "check_boxes",
    "check_class_logits",
    "check_class_targets",
    "check_faithfulness_inputs",
    "check_maps",
    "check_number",
    "chunked_probabilities",
    "chunks",
    "class_probabilities",
    "head_probabilities",
    "pixel_count",
    "saliency_rank",
]


def check_number(value: object, name: str) -> float:
    """``value`` as a float, checked to be a finite real number (not a bool).

    Raises:
        ValueError: naming ``name`` and the value.

    Examples:
        >>> check_number(3, "steps"), check_number(0.5, "noise_std")
        (3.0, 0.5)
    """
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def check_batch_size(batch_size: object) -> int:
    """``batch_size`` checked to be a positive int (not a bool).

    Raises:
        ValueError: naming the value.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


def check_class_logits(logits: object) -> torch.Tensor:
    """``logits``, checked to be the ``(B, num_classes)`` tensor a classifier returns.

    Raises:
        ValueError: naming the shape (or type) the model returned.
    """
    if not torch.is_tensor(logits) or logits.dim() != 2:
        shape = tuple(logits.shape) if torch.is_tensor(logits) else type(logits)
        raise ValueError(
            f"the metrics need a model that returns (B, num_classes) logits; got {shape}"
        )
    return logits


def check_maps(maps: object, inputs: torch.Tensor | None = None,
               what: str = "maps") -> torch.Tensor:
    """``maps`` as a ``(B, H, W)`` float tensor of finite values in ``[0, 1]``, matching
    ``inputs`` ``(B, C, H, W)`` in batch size and spatial size when given (``what`` names
    them in the messages).

    Raises:
        TypeError: not a float tensor.
        ValueError: not ``(B, H, W)``, empty, NaN / inf, values outside ``[0, 1]``, or a
            batch or spatial size other than the inputs'.
    """
    if not torch.is_tensor(maps):
        raise TypeError(f"{what} must be a torch.Tensor (B, H, W), not {type(maps).__name__}")
    if maps.dim() != 3:
        raise ValueError(f"{what} must have shape (B, H, W), got {tuple(maps.shape)}")
    if not maps.is_floating_point():
        raise TypeError(f"{what} must be a float tensor, got dtype {maps.dtype}")
    if maps.numel() == 0:
        raise ValueError(f"{what} is empty: shape {tuple(maps.shape)}")
    if not torch.isfinite(maps).all():
        bad = (~torch.isfinite(maps)).flatten(1).any(1).nonzero().flatten().tolist()
        raise ValueError(f"{what} contain NaN or inf (images {bad})")
    if float(maps.min()) < 0 or float(maps.max()) > 1:
        raise ValueError(
            f"{what} must have values in [0, 1] (Explanation.maps), got "
            f"[{float(maps.min()):.4g}, {float(maps.max()):.4g}]"
        )
    if inputs is not None:
        if maps.shape[0] != inputs.shape[0]:
            raise ValueError(
                f"{maps.shape[0]} {what} for a batch of {inputs.shape[0]} images"
            )
        if tuple(maps.shape[1:]) != tuple(inputs.shape[2:]):
            raise ValueError(
                f"{what} are {tuple(maps.shape[1:])} but the images are "
                f"{tuple(inputs.shape[2:])}: use maps at the input's resolution "
                "(Explanation.maps, not .raw)"
            )
    return maps


def check_class_targets(targets: object, batch_size: int,
                        num_classes: int | None = None) -> torch.Tensor:
    """``targets`` as a ``(B,)`` long tensor of class indices (an int applies to all),
    each below ``num_classes`` when given.

    Raises:
        TypeError: a bool, floats, or a value that is not an int, sequence or tensor.
        ValueError: a length other than ``batch_size``, a class out of range.

    Examples:
        >>> check_class_targets(1, 3), check_class_targets([0, 2], 2, num_classes=3)
        (tensor([1, 1, 1]), tensor([0, 2]))
    """
    if isinstance(targets, bool):
        raise TypeError(f"targets must be class indices, not a bool: {targets!r}")
    if isinstance(targets, int):
        tensor = torch.full((batch_size,), targets, dtype=torch.long)
    elif torch.is_tensor(targets):
        tensor = targets.detach()
    elif isinstance(targets, Sequence) and not isinstance(targets, str):
        tensor = torch.as_tensor(list(targets))
    else:
        raise TypeError(
            f"targets must be an int, a sequence or a (B,) tensor of class indices, not "
            f"{type(targets).__name__}"
        )
    if tensor.is_floating_point() or tensor.dtype == torch.bool:
        raise TypeError(f"targets must be integer class indices, got dtype {tensor.dtype}")
    tensor = tensor.long().reshape(-1)
    if tensor.shape[0] != batch_size:
        raise ValueError(f"got {tensor.shape[0]} targets for a batch of {batch_size} images")
    if num_classes is not None:
        bad = (tensor < 0) | (tensor >= num_classes)
        if bad.any():
            raise ValueError(
                f"target class {int(tensor[bad][0])} is out of range: the model has "
                f"{num_classes} classes (0..{num_classes - 1})"
            )
    return tensor


def check_boxes(boxes: object, batch_size: int, height: int, width: int,
                what: str = "boxes", *, allow_empty: bool = False) -> list[torch.Tensor]:
    """``boxes`` as ``B`` float tensors ``(n_i, 4)`` of ``x0 < x1``, ``y0 < y1`` inside the
    ``height x width`` image (each image needs at least one box, unless ``allow_empty``);
    a ``(B, 4)`` tensor is one box per image.

    Raises:
        TypeError: not a sequence of tensors.
        ValueError: a length other than ``batch_size``, an image without boxes, NaN / inf,
            an empty or inverted box, a box outside the image.
    """
    if torch.is_tensor(boxes) and boxes.dim() == 2:
        boxes = [box[None] for box in boxes]  # one box per image, (B, 4)
    if not isinstance(boxes, Sequence) and not torch.is_tensor(boxes):
        raise TypeError(
            f"{what} must be a sequence of B tensors (n_i, 4), not {type(boxes).__name__}"
        )
    if len(boxes) != batch_size:
        raise ValueError(f"got {len(boxes)} {what} entries for a batch of {batch_size} images")
    checked = []
    for image, image_boxes in enumerate(boxes):
        tensor = torch.as_tensor(image_boxes, dtype=torch.float32).reshape(-1, 4) \
            if not torch.is_tensor(image_boxes) else image_boxes.float().reshape(-1, 4)
        if tensor.shape[0] == 0 and not allow_empty:
            raise ValueError(f"image {image} has no {what}")
        if not torch.isfinite(tensor).all():
            raise ValueError(f"{what} of image {image} contain NaN or inf: {tensor.tolist()}")
        x0, y0, x1, y1 = tensor.unbind(1)
        if ((x1 <= x0) | (y1 <= y0)).any():
            raise ValueError(
                f"{what} of image {image} must be x0, y0, x1, y1 with x0 < x1 and y0 < y1, "
                f"got {tensor.tolist()}"
            )
        if (x0 < 0).any() or (y0 < 0).any() or (x1 > width).any() or (y1 > height).any():
            raise ValueError(
                f"a box of image {image} lies outside the {width}x{height} image: "
                f"{tensor.tolist()}"
            )
        checked.append(tensor)
    return checked


def chunks(total: int, size: int) -> Iterator[slice]:
    """Slices of at most ``size`` over ``range(total)``.

    Examples:
        >>> list(chunks(5, 2))
        [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    """
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))


def head_probabilities(outputs: object, probability: str = "softmax") -> torch.Tensor:
    """``(B, num_classes)`` class probabilities of a classifier's output by the rule
    ``probability`` (:func:`axiomcam.outputs.output_probabilities`): ``"softmax"``,
    ``"sigmoid"`` or ``"output"``.  A single-logit (binary) output ``z``, ``(B,)`` or
    ``(B, 1)``, has two classes, as when explaining it (:func:`axiomcam.targets.binary_scores`):
    ``0`` with ``1 - p`` and ``1`` with ``p``, ``p = sigmoid(z)`` (or ``z`` itself with
    ``"output"``).

    Raises:
        ValueError: an unknown rule; an output that is not ``(B, num_classes)`` logits;
            ``"softmax"`` on a single logit (always 1: its head is a sigmoid); ``"output"``
            values outside ``[0, 1]``.

    Examples:
        >>> head_probabilities(torch.tensor([[0.0, 2.0]]), "sigmoid").tolist()
        [[0.5, 0.8807970285415649]]
        >>> head_probabilities(torch.tensor([[0.0]]), "sigmoid").tolist()
        [[0.5, 0.5]]
    """
    check_probability_rule(probability)
    if torch.is_tensor(outputs) and (outputs.dim() == 1 or (
            outputs.dim() == 2 and outputs.shape[1] == 1)):
        if probability == "softmax":
            raise ValueError(
                "the model returns one logit per image (a binary sigmoid head): its softmax "
                "is always 1; read it with probability='sigmoid' (classes 0: 1 - sigmoid(z), "
                "1: sigmoid(z)), or 'output' if it already returns a probability")
        positive = output_probabilities(outputs.reshape(-1, 1), probability)
        return torch.cat([1 - positive, positive], dim=1)
    return output_probabilities(check_class_logits(outputs), probability)


def class_probabilities(model: nn.Module, inputs: torch.Tensor, classes: torch.Tensor,
                        batch_size: int = 64, progress: Progress = None,
                        description: str = "forward", *,
                        probability: str = "softmax") -> torch.Tensor:
    """Probability ``p_c`` of ``classes[i]`` for ``inputs[i]``, ``(N,)``, read by the rule
    ``probability`` (:func:`head_probabilities`: ``"softmax"`` over the classes,
    ``"sigmoid"`` of the class's own logit, or ``"output"`` when the model returns
    probabilities), in batches of ``batch_size`` under ``torch.no_grad()`` with the model in
    eval mode (``progress``: a progress bar or callback, see
    :func:`axiomcam.support.progress_bar`).

    Raises:
        ValueError: a bad ``batch_size`` or ``probability`` rule, a model that does not
            return ``(B, num_classes)`` logits, NaN / inf probabilities.

    Examples:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(2, 2, bias=False))
        >>> _ = nn.init.eye_(model[1].weight)  # its logits are the input's two values
        >>> inputs, classes = torch.tensor([[[[1.0, 2.0]]]]), torch.tensor([1])
        >>> [round(float(class_probabilities(model, inputs, classes, probability=rule)), 4)
        ...  for rule in ("softmax", "sigmoid")]
        [0.7311, 0.8808]
    """
    check_model(model)
    check_inputs(model, inputs)
    check_batch_size(batch_size)
    check_probability_rule(probability)
    classes = classes.to(inputs.device)
    result = torch.empty(inputs.shape[0], dtype=inputs.dtype, device=inputs.device)
    steps = list(chunks(inputs.shape[0], batch_size))
    with (eval_mode(model), torch.no_grad(),
          progress_bar(progress, len(steps), description) as bar):
        for part in steps:
            probabilities = head_probabilities(model(inputs[part]), probability)
            result[part] = probabilities.gather(1, classes[part, None]).squeeze(1)
            bar.update(1)
    if not torch.isfinite(result).all():
        raise ValueError("the model's probabilities contain NaN or inf")
    return result


def check_faithfulness_inputs(model: nn.Module, inputs: torch.Tensor, maps: torch.Tensor,
                              targets: object, batch_size: object, probability: str = "softmax"
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validated ``(inputs, maps, targets)`` of a perturbation metric (faithfulness, ROAD):
    maps moved to the inputs' device and dtype, targets checked against the model's number
    of classes as the rule ``probability`` reads them (:func:`head_probabilities`, on one
    forward pass of the first image: a single-logit model has two).

    Raises:
        TypeError / ValueError: a bad model, inputs that are not ``(B, C, H, W)``, bad maps
            (:func:`check_maps`), targets (:func:`check_class_targets`), batch size or
            probability rule, a model that does not return ``(B, num_classes)`` logits (or
            one logit with ``probability="softmax"``).
    """
    check_model(model)
    check_inputs(model, inputs)
    if inputs.dim() != 4:
        raise ValueError(
            f"the faithfulness metrics need images (B, C, H, W), got shape {tuple(inputs.shape)}"
        )
    maps = check_maps(maps, inputs).to(device=inputs.device, dtype=inputs.dtype)
    check_batch_size(batch_size)
    targets = check_class_targets(targets, inputs.shape[0])
    with eval_mode(model), torch.no_grad():
        probabilities = head_probabilities(model(inputs[:1]), probability)
    targets = check_class_targets(targets, inputs.shape[0], probabilities.shape[1])
    return inputs, maps, targets.to(inputs.device)


def pixel_count(percent: float, pixels: int) -> int:
    """How many of ``pixels`` make ``percent`` %: ``round(percent / 100 * pixels)``, halves up.

    Examples:
        >>> pixel_count(50, 5), pixel_count(10, 64)
        (3, 6)
    """
    return math.floor(percent / 100 * pixels + 0.5)


def saliency_rank(maps: torch.Tensor) -> torch.Tensor:
    """``(B, H*W)`` rank of every pixel in decreasing saliency (0 = most salient); equal
    values keep their row-major order.

    Examples:
        >>> saliency_rank(torch.tensor([[[0.2, 0.9], [0.2, 0.5]]]))
        tensor([[2, 0, 3, 1]])
    """
    flat = maps.flatten(1)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    positions = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    rank.scatter_(1, order, positions)
    return rank


def chunked_probabilities(model: nn.Module, total: int,
                          build: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                          batch_size: int, progress: Progress, description: str,
                          device: torch.device, probability: str = "softmax") -> torch.Tensor:
    """``(total,)`` class probabilities (read by the rule ``probability``, as in
    :func:`class_probabilities`) of perturbed images built ``batch_size`` at a time:
    ``build(indices)`` returns the images and the classes of those flat item indices, so
    that no more than ``batch_size`` perturbed images exist at once."""
    parts = list(chunks(total, batch_size))
    results = []
    with progress_bar(progress, len(parts), description) as bar:
        for part in parts:
            images, classes = build(torch.arange(part.start, part.stop, device=device))
            results.append(class_probabilities(model, images, classes, batch_size=batch_size,
                                               progress=False, probability=probability))
            bar.update(1)
    return torch.cat(results)
