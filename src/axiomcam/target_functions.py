"""Ready-made targets for models beyond classifiers: what scalar ``y^c`` a map explains.

Each target is a small callable object ``target(output, image_indices) -> (N,)`` that
``axiomcam.explain(..., targets=target)`` accepts.  Row ``i`` of ``output`` is a (possibly
perturbed) copy of image ``image_indices[i]``: Score-CAM and Ablation-CAM call a target on
batches of copies of *one* image, so every target that holds per-image data (one class,
mask, box, reference embedding or token sequence per image) picks that data with
``image_indices``.  Called as ``target(output)``, row ``i`` is image ``i``.

- :class:`ClassScore`: the logit ``z_c`` (or softmax probability ``p_c``) of class ``c_i``,
  for ``(N, C)`` outputs;
- :class:`SegmentationRegion`: ``sum_{(u,v) in M_i} S[c, u, v]``, a class's scores summed
  over a region, for ``(N, C, H, W)`` segmentation outputs;
- :class:`DetectionBox`: ``s_d + IoU(b_d, b_i)``, the score of the detection ``d`` matching
  a box plus its overlap, for detectors returning a list of dicts;
- :class:`EmbeddingSimilarity`: ``cos(e, r_i)`` for ``(N, D)`` embeddings;
- :class:`TokenLogProbability`: ``sum_t log softmax(z_t)[w_t]`` for ``(N, T, V)`` logits.

Tensor outputs are found in dicts, tuples and ``ModelOutput`` objects with
:func:`axiomcam.outputs.select_output` (torchvision segmentation's ``{"out": ...}``, Hugging
Face's ``.logits``).  Bad input is a ``ValueError`` / ``TypeError`` naming the value: an
output of the wrong shape for the target (with the shape it has and the one it needs), a
class, token or box index out of range, a mask or reference that does not fit the output.

Example:
    >>> import torch
    >>> logits = torch.tensor([[1.0, 3.0, 0.0], [2.0, 0.0, 5.0]])
    >>> ClassScore([1, 2])(logits)
    tensor([3., 5.])
    >>> ClassScore([1, 2])(logits[[1, 1]], torch.tensor([1, 1]))  # two copies of image 1
    tensor([5., 5.])
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from .outputs import describe_output, select_output
from .support import warn

__all__ = [
    "IGNORE_TOKEN",
    "ClassScore",
    "DetectionBox",
    "EmbeddingSimilarity",
    "SegmentationRegion",
    "TokenLogProbability",
    "box_iou",
    "predicted_mask",
]

#: token id that :class:`TokenLogProbability` skips (the ``ignore_index`` of PyTorch's
#: cross-entropy and of Hugging Face labels: padding, prompt tokens)
IGNORE_TOKEN = -100


# ----------------------------------------------------------------------------- helpers


def _describe_tensor(value: torch.Tensor) -> str:
    if value.numel() <= 8:
        return repr(value.tolist())
    return f"{tuple(value.shape)} tensor"


def _row_images(image_indices: object, rows: int, per_image: int | None,
                owner: str) -> torch.Tensor:
    """Which image each of ``rows`` output rows belongs to, checked against the number of
    images the target has data for (``per_image``; ``None``: one value for every image)."""
    if image_indices is None:
        if per_image is not None and rows != per_image:
            raise ValueError(
                f"{owner} holds data for {per_image} images but the output has {rows} rows: "
                "pass image_indices (which image each row is a copy of)"
            )
        return torch.arange(rows)
    if not torch.is_tensor(image_indices):
        image_indices = torch.as_tensor(image_indices)
    if image_indices.dim() != 1 or image_indices.shape[0] != rows or (
            image_indices.is_floating_point() or image_indices.dtype == torch.bool):
        raise ValueError(
            f"image_indices must be ({rows},) integers, one per output row; got "
            f"{image_indices.dtype} of shape {tuple(image_indices.shape)}"
        )
    if per_image is not None and rows and (
            int(image_indices.min()) < 0 or int(image_indices.max()) >= per_image):
        bad = image_indices[(image_indices < 0) | (image_indices >= per_image)][0]
        raise ValueError(
            f"{owner} holds data for {per_image} images (0..{per_image - 1}); it was asked "
            f"about image {int(bad)}"
        )
    return image_indices.long()


def _class_indices(classes: object, what: str) -> torch.Tensor:
    """An int -> a 0-D long tensor; a sequence / 1-D tensor -> ``(B,)`` long."""
    if isinstance(classes, bool):
        raise TypeError(f"{what} must be an int or one int per image, not a bool: {classes!r}")
    if isinstance(classes, numbers.Integral):
        tensor = torch.tensor(int(classes))
    elif torch.is_tensor(classes):
        tensor = classes.detach().cpu()
    elif isinstance(classes, Sequence) and not isinstance(classes, str) and all(
            isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in classes):
        tensor = torch.tensor([int(c) for c in classes], dtype=torch.long)
    else:
        raise TypeError(f"{what} must be an int or one int per image (a sequence or 1-D "
                        f"tensor), not {type(classes).__name__}: {classes!r}")
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"{what} must be integer indices, got dtype {tensor.dtype}")
    if tensor.dim() > 1 or tensor.numel() == 0:
        raise ValueError(f"{what} must be an int or a (B,) sequence, got shape "
                         f"{tuple(tensor.shape)}")
    if (tensor < 0).any():
        raise ValueError(f"{what} must be >= 0, got {int(tensor[tensor < 0][0])}")
    return tensor.long()


def _check_class_range(classes: torch.Tensor, num_classes: int, owner: str) -> None:
    too_large = classes >= num_classes
    if too_large.any():
        raise ValueError(
            f"{owner}: class {int(classes[too_large].flatten()[0])} is out of range: the "
            f"output has {num_classes} classes (0..{num_classes - 1})"
        )


def _pick(values: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Per-row values: a 0-D (or one-for-all) tensor is expanded, a per-image one indexed."""
    return values.expand(rows.shape[0]) if values.dim() == 0 else values[rows]


def _tensor_output(output: object, owner: str, dims: int, expected: str) -> torch.Tensor:
    tensor = select_output(output)
    if not torch.is_tensor(tensor) or tensor.dim() != dims:
        found = (f"shape {tuple(tensor.shape)}" if torch.is_tensor(tensor)
                 else describe_output(output))
        raise ValueError(f"{owner} needs a model output of shape {expected}; this output "
                         f"has {found}")
    return tensor


# ----------------------------------------------------------------------------- classes


class ClassScore:
    """The score of one class: its logit ``y^c = z_c``, or its softmax probability
    ``y^c = p_c = exp(z_c) / sum_j exp(z_j)`` with ``softmax=True``.

    Grad-CAM (Selvaraju et al., ICCV 2017) explains the pre-softmax logit, the default
    here and the same as ``targets=c``; the probability also depends on every other class's
    logit, so its map shows what speaks for ``c`` *against* the other classes.

    Args:
        classes: an int (the same class in every image) or one class per image (a
            sequence or 1-D integer tensor of length ``B``, indexed with
            ``image_indices``).
        softmax: explain the probability instead of the logit.

    Call: ``target(output, image_indices=None) -> (N,)``, ``output`` a ``(N, C)`` tensor
    or a dict / tuple / ``ModelOutput`` holding one (found by
    :func:`~axiomcam.outputs.select_output`).

    Raises:
        TypeError: classes that are not integers.
        ValueError: a negative class; when called, a class ``>= C``, an output that is not
            ``(N, C)``, an image without a class.

    Example:
        >>> import torch
        >>> logits = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
        >>> ClassScore(1, softmax=True)(logits)
        tensor([0.5000, 0.5000])
        >>> ClassScore(2)(logits)
        Traceback (most recent call last):
        ...
        ValueError: ClassScore: class 2 is out of range: the output has 2 classes (0..1)
    """

    def __init__(self, classes: int | Sequence[int] | torch.Tensor, *,
                 softmax: bool = False) -> None:
        self.classes = _class_indices(classes, "classes")
        self.softmax = bool(softmax)

    def __call__(self, output: object,
                 image_indices: torch.Tensor | None = None) -> torch.Tensor:
        logits = _tensor_output(output, "ClassScore", 2, "(N, num_classes)")
        per_image = None if self.classes.dim() == 0 else self.classes.shape[0]
        rows = _row_images(image_indices, logits.shape[0], per_image, "ClassScore")
        classes = _pick(self.classes, rows.cpu()).to(logits.device)
        _check_class_range(classes, logits.shape[1], "ClassScore")
        scores = torch.softmax(logits, dim=1) if self.softmax else logits
        return scores.gather(1, classes[:, None])[:, 0]

    def __repr__(self) -> str:
        classes = (int(self.classes) if self.classes.dim() == 0
                   else _describe_tensor(self.classes))
        return f"ClassScore(classes={classes}, softmax={self.softmax})"


def predicted_mask(output: object, class_index: int | Sequence[int] | torch.Tensor
                   ) -> torch.Tensor:
    """The pixels a segmentation model labels as ``class_index``:
    ``M[n, u, v] = (argmax_j S[n, j, u, v] == c)``, detached.

    Compute it once on the clean output and pass it to :class:`SegmentationRegion` so
    that every method, Score-CAM and Ablation-CAM included, explains the same region.

    Args:
        output: the model's output, ``(B, C, H, W)`` scores or a dict / tuple holding them
            (torchvision's ``{"out": ..., "aux": ...}``).
        class_index: an int, or one class per image.

    Returns:
        ``(B, H, W)`` bool.

    Raises:
        ValueError: an output that is not ``(B, C, H, W)``, a class out of range.

    Example:
        >>> import torch
        >>> scores = torch.zeros(1, 3, 2, 2)
        >>> scores[0, 2, 0, 1] = 1.0
        >>> predicted_mask({"out": scores}, 2)
        tensor([[[False,  True],
                 [False, False]]])
    """
    scores = _tensor_output(output, "predicted_mask", 4, "(B, num_classes, H, W)")
    classes = _class_indices(class_index, "class_index")
    _check_class_range(classes, scores.shape[1], "predicted_mask")
    if classes.dim() == 1 and classes.shape[0] != scores.shape[0]:
        raise ValueError(f"predicted_mask: {classes.shape[0]} classes for an output of "
                         f"{scores.shape[0]} images")
    classes = classes.to(scores.device).reshape(-1, 1, 1)
    return scores.detach().argmax(dim=1) == classes


class SegmentationRegion:
    """The total score of one class over a region of a segmentation map:
    ``y^c = sum_{(u, v)} M[u, v] S[c, u, v]`` for ``(N, C, H, W)`` class scores ``S``
    (pre-softmax, as the model returns them) and a 0/1 mask ``M``.

    The semantic-segmentation use of Grad-CAM (Vinogradova et al., "Towards
    interpretable semantic segmentation via gradient-weighted class activation mapping",
    AAAI 2020): the region's score is a scalar, so every CAM explains it as it explains
    a class logit.  A one-pixel mask gives exactly that pixel's class score.

    ``mask=None`` takes the pixels predicted as the class in the output being scored
    (``argmax`` over classes, detached, so the region is a constant of the gradient).
    For gradient methods that is the clean prediction.  Perturbation methods (Score-CAM,
    Ablation-CAM) score perturbed copies whose predicted region moves or vanishes; give
    them a fixed mask, usually ``predicted_mask(clean_output, c)`` (pytorch-grad-cam's
    ``SemanticSegmentationTarget`` does the same).  An empty region scores 0.

    Args:
        class_index: the class, an int, or one per image (indexed with
            ``image_indices``).
        mask: ``None``, an ``(H, W)`` mask for every image or ``(B, H, W)`` one per image;
            bool or 0/1 numbers, at the resolution of the model's *output* (torchvision's
            FCN / DeepLabV3 upsample theirs to the input's).

    Call: ``target(output, image_indices=None) -> (N,)``, ``output`` ``(N, C, H, W)`` or a
    dict / tuple holding it.

    Raises:
        TypeError: a class that is not an int, a mask that is not a tensor / array.
        ValueError: a mask with values other than 0 and 1 or of the wrong rank; when
            called, an output that is not ``(N, C, H, W)``, a mask whose ``(H, W)`` differs
            from the output's, a class out of range.

    Example:
        >>> import torch
        >>> scores = torch.arange(8.0).reshape(1, 2, 2, 2)  # class 1: [[4, 5], [6, 7]]
        >>> SegmentationRegion(1, mask=torch.tensor([[True, False], [False, True]]))(scores)
        tensor([11.])
        >>> SegmentationRegion(1)(scores)  # class 1 wins everywhere: 4 + 5 + 6 + 7
        tensor([22.])
    """

    def __init__(self, class_index: int | Sequence[int] | torch.Tensor,
                 mask: torch.Tensor | None = None) -> None:
        self.classes = _class_indices(class_index, "class_index")
        if mask is not None:
            if not torch.is_tensor(mask):
                if not hasattr(mask, "__array__"):
                    raise TypeError("mask must be None or an (H, W) / (B, H, W) tensor, not "
                                    f"{type(mask).__name__}")
                mask = torch.as_tensor(mask)
            if mask.dim() not in (2, 3):
                raise ValueError(f"mask must be (H, W) or (B, H, W), got shape "
                                 f"{tuple(mask.shape)}")
            if mask.dtype != torch.bool:
                values = mask.detach()
                not_binary = (values != 0) & (values != 1)
                if not_binary.any():
                    raise ValueError(f"mask must be bool or 0/1, got the value "
                                     f"{values[not_binary].flatten()[0].item()}")
                mask = values != 0
            mask = mask.detach()
            if (self.classes.dim() == 1 and mask.dim() == 3
                    and mask.shape[0] != self.classes.shape[0]):
                raise ValueError(f"{self.classes.shape[0]} classes but {mask.shape[0]} masks: "
                                 "give one of each per image, or one for all")
        self.mask = mask

    def __call__(self, output: object,
                 image_indices: torch.Tensor | None = None) -> torch.Tensor:
        scores = _tensor_output(output, "SegmentationRegion", 4, "(N, num_classes, H, W)")
        images = [data.shape[0] for data in (self.classes, self.mask)
                  if data is not None and data.dim() in (1, 3)]
        rows = _row_images(image_indices, scores.shape[0], images[0] if images else None,
                           "SegmentationRegion")
        rows_cpu = rows.cpu()
        classes = _pick(self.classes, rows_cpu).to(scores.device)
        _check_class_range(classes, scores.shape[1], "SegmentationRegion")
        class_scores = scores[torch.arange(scores.shape[0], device=scores.device), classes]
        if self.mask is None:
            region = scores.detach().argmax(dim=1) == classes[:, None, None]
        else:
            if tuple(self.mask.shape[-2:]) != tuple(scores.shape[-2:]):
                raise ValueError(
                    f"SegmentationRegion: the mask is {tuple(self.mask.shape[-2:])} but the "
                    f"output's maps are {tuple(scores.shape[-2:])} (output shape "
                    f"{tuple(scores.shape)}): give the mask at the output's resolution"
                )
            mask = self.mask.to(scores.device)
            region = mask.expand(scores.shape[0], -1, -1) if mask.dim() == 2 else mask[rows]
        # a product, not indexing: an empty region is a 0 that still has a graph
        return (class_scores * region.to(class_scores.dtype)).flatten(1).sum(dim=1)

    def __repr__(self) -> str:
        classes = (int(self.classes) if self.classes.dim() == 0
                   else _describe_tensor(self.classes))
        if self.mask is None:
            mask = "predicted"
        else:
            mask = f"{tuple(self.mask.shape)} mask of {int(self.mask.sum())} pixels"
        return f"SegmentationRegion(class_index={classes}, mask={mask})"


def box_iou(boxes: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """Intersection over union of each of ``boxes`` ``(n, 4)`` with ``box`` ``(4,)``, boxes
    as ``x0, y0, x1, y1``: ``|A ∩ B| / |A ∪ B|``, 0 where the union is empty.
    Differentiable in both (the detection target's box-regression agreement).

    Example:
        >>> import torch
        >>> box_iou(torch.tensor([[0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0]]),
        ...         torch.tensor([1.0, 0.0, 3.0, 2.0]))
        tensor([0.3333, 0.0000])
    """
    width = (torch.minimum(boxes[:, 2], box[2]) - torch.maximum(boxes[:, 0], box[0]))
    height = (torch.minimum(boxes[:, 3], box[3]) - torch.maximum(boxes[:, 1], box[1]))
    intersection = width.clamp_min(0) * height.clamp_min(0)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = areas + (box[2] - box[0]) * (box[3] - box[1]) - intersection
    empty = union <= 0
    return torch.where(empty, torch.zeros_like(intersection),
                       intersection / torch.where(empty, torch.ones_like(union), union))


def _check_detections(output: object, rows: int | None = None) -> Sequence[Mapping]:
    expected = ("a list of dicts with 'boxes' (n, 4), 'labels' (n,) and 'scores' (n,), one "
                "per image (torchvision Faster R-CNN / RetinaNet / FCOS in eval mode)")
    if (isinstance(output, Mapping) or not isinstance(output, Sequence)
            or isinstance(output, str)):
        raise TypeError(f"DetectionBox needs {expected}; this output is a "
                        f"{describe_output(output)}")
    for position, detections in enumerate(output):
        missing = ([key for key in ("boxes", "labels", "scores") if key not in detections]
                   if isinstance(detections, Mapping) else None)
        if missing is None or missing:
            raise TypeError(f"DetectionBox needs {expected}; element {position} of this "
                            f"output is a {describe_output(detections)}")
        boxes = detections["boxes"]
        count = detections["scores"].shape[0]
        if boxes.dim() != 2 or boxes.shape[1] != 4 or boxes.shape[0] != count \
                or detections["labels"].shape != (count,):
            raise ValueError(f"DetectionBox: element {position} of the output has boxes "
                             f"{tuple(boxes.shape)}, labels {tuple(detections['labels'].shape)}"
                             f" and scores {tuple(detections['scores'].shape)}; expected "
                             "(n, 4), (n,) and (n,)")
    if rows is not None and len(output) != rows:
        raise ValueError(f"the detections hold {len(output)} images, expected {rows}")
    return output


class DetectionBox:
    """One detected object of a detector: ``y^c = s_d + IoU(b_d, b)``, where ``d`` is the
    detection of label ``l`` whose box ``b_d`` best overlaps the reference box ``b`` (with
    ``IoU >= iou_threshold``) and ``s_d`` its classification score.

    The IoU term is the box-regression agreement: its gradient says what moves the
    predicted box, the score's gradient what makes it that class (the target of
    pytorch-grad-cam's ``FasterRCNNBoxScoreTarget``).  ``y^c`` lies in
    ``[threshold, 2]`` for a match.  Matching uses detached values; both terms keep their
    graph.

    **No match** (no detection of that label reaches the threshold, or none at all) scores
    0 and warns (an ``AxiomCamWarning``, once per image index and target object).  The
    zero is built from the output's scores so that it keeps their graph: a gradient method
    then returns an all-zero map (with the core's "constant map" warning) instead of
    failing; if the output has no graph at all, the core's "does not depend
    differentiably" error is raised.  A missing detection is normal for the perturbed
    copies that Score-CAM and Ablation-CAM score; on the image itself it means the box or
    label is wrong: build the target with :meth:`from_detection`, which always matches on
    that output.

    Name the target layer: a torchvision detector's automatic layer is its RoI pooling,
    whose rows are proposals, not images.  A backbone layer works, e.g.
    ``"backbone.body.16"`` (Faster R-CNN MobileNetV3 FPN) or ``"backbone.body.layer4"``
    (ResNet-50 FPN), or an FPN block that feeds the RoI heads.  The RPN's layers do not:
    its proposals are detached.

    Args:
        box: ``x0, y0, x1, y1`` in input pixels, one ``(4,)`` box for every image or a
            ``(B, 4)`` tensor, one per image (indexed with ``image_indices``).
        label: the class of the detection (torchvision labels count from 1; 0 is the
            background), an int or one per image.
        iou_threshold: the smallest IoU that counts as the same object, in ``(0, 1]``.

    Call: ``target(output, image_indices=None) -> (N,)``, ``output`` a list of ``N`` dicts
    with ``boxes`` ``(n, 4)``, ``labels`` ``(n,)`` and ``scores`` ``(n,)`` (torchvision
    Faster R-CNN / RetinaNet / FCOS / Mask R-CNN in eval mode).

    Raises:
        TypeError: an output that is not a list of such dicts.
        ValueError: a box that is not ``x0 <= x1, y0 <= y1`` or not finite, a threshold
            outside ``(0, 1]``, boxes and labels for different numbers of images.

    Example:
        >>> import torch
        >>> detections = [{"boxes": torch.tensor([[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 4.0, 2.0]]),
        ...                "labels": torch.tensor([1, 2]), "scores": torch.tensor([0.9, 0.6])}]
        >>> DetectionBox([0.0, 0.0, 4.0, 3.0], label=2)(detections)  # 0.6 + IoU 8/12
        tensor([1.2667])
    """

    def __init__(self, box: Sequence[float] | torch.Tensor,
                 label: int | Sequence[int] | torch.Tensor, *,
                 iou_threshold: float = 0.5) -> None:
        boxes = torch.as_tensor(box.detach() if torch.is_tensor(box) else box)
        if boxes.is_complex() or boxes.dtype == torch.bool or boxes.dim() not in (1, 2) \
                or boxes.shape[-1] != 4:
            raise ValueError(f"box must be x0, y0, x1, y1 (a (4,) box or (B, 4) boxes), got "
                             f"{boxes.dtype} of shape {tuple(boxes.shape)}")
        boxes = boxes.float() if not boxes.is_floating_point() else boxes
        flat = boxes.reshape(-1, 4)
        bad = ~torch.isfinite(flat).all(1) | (flat[:, 2] < flat[:, 0]) | (flat[:, 3] < flat[:, 1])
        if bad.any():
            raise ValueError(f"box {flat[bad][0].tolist()} is not x0 <= x1, y0 <= y1 "
                             "(finite, in input pixels)")
        self.labels = _class_indices(label, "label")
        if boxes.dim() == 2 and self.labels.dim() == 1 and boxes.shape[0] != self.labels.shape[0]:
            raise ValueError(f"{boxes.shape[0]} boxes but {self.labels.shape[0]} labels: give "
                             "one of each per image, or one for all")
        if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, numbers.Real) \
                or not 0 < iou_threshold <= 1:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
        self.boxes = boxes
        self.iou_threshold = float(iou_threshold)
        self._warned: set[int] = set()

    @classmethod
    def from_detection(cls, detections: Sequence[Mapping[str, torch.Tensor]],
                       index: int | Sequence[int], *,
                       iou_threshold: float = 0.5) -> DetectionBox:
        """The target for detection number ``index`` of each image of a (clean) output:
        its box and label, one per image.

        Args:
            detections: the detector's output for the batch (a list of ``B`` dicts).
            index: the detection's position in its image's list (torchvision sorts them by
                decreasing score), an int for every image or one per image.
            iou_threshold: as in the constructor.

        Raises:
            ValueError: an index that the image's detections do not have (the message says
                how many it has), indices for another number of images.
            TypeError: detections that are not a list of dicts.

        Example:
            >>> import torch
            >>> out = [{"boxes": torch.tensor([[1.0, 2.0, 5.0, 6.0]]),
            ...         "labels": torch.tensor([3]), "scores": torch.tensor([0.8])}]
            >>> DetectionBox.from_detection(out, 0)
            DetectionBox(box=[[1.0, 2.0, 5.0, 6.0]], label=[3], iou_threshold=0.5)
            >>> DetectionBox.from_detection(out, 1)
            Traceback (most recent call last):
            ...
            ValueError: image 0 has 1 detection (index 0); there is no detection 1
        """
        _check_detections(detections)
        indices = _class_indices(index, "index")
        if indices.dim() == 0:
            indices = indices.expand(len(detections))
        if indices.shape[0] != len(detections):
            raise ValueError(f"{indices.shape[0]} detection indices for {len(detections)} "
                             "images: give one per image, or one int for all")
        boxes, labels = [], []
        for image, (found, position) in enumerate(zip(detections, indices.tolist(),
                                                      strict=True)):
            count = found["scores"].shape[0]
            if position >= count:
                have = ("no detections" if count == 0 else
                        f"{count} detection{'s' if count > 1 else ''} (index 0"
                        f"{f'..{count - 1}' if count > 1 else ''})")
                raise ValueError(f"image {image} has {have}; there is no detection {position}")
            boxes.append(found["boxes"][position].detach().cpu())
            labels.append(int(found["labels"][position]))
        return cls(torch.stack(boxes), torch.tensor(labels), iou_threshold=iou_threshold)

    def __call__(self, output: object,
                 image_indices: torch.Tensor | None = None) -> torch.Tensor:
        detections = _check_detections(output)
        images = [data.shape[0] for data, dims in ((self.boxes, 2), (self.labels, 1))
                  if data.dim() == dims]
        rows = _row_images(image_indices, len(detections), images[0] if images else None,
                           "DetectionBox").cpu()
        values = []
        for row, image in enumerate(rows.tolist()):
            found = detections[row]
            scores, boxes = found["scores"], found["boxes"]
            box = (self.boxes if self.boxes.dim() == 1 else self.boxes[image]).to(boxes)
            label = int(self.labels if self.labels.dim() == 0 else self.labels[image])
            overlap = box_iou(boxes, box)
            candidates = torch.where(found["labels"].to(boxes.device) == label,
                                     overlap.detach(), torch.full_like(overlap, -1.0))
            best = int(candidates.argmax()) if candidates.numel() else -1
            if best >= 0 and float(candidates[best]) >= self.iou_threshold:
                values.append(scores[best] + overlap[best].to(scores.dtype))
                continue
            if image not in self._warned:
                self._warned.add(image)
                warn(
                    f"DetectionBox: no detection of label {label} overlaps the box "
                    f"{[round(v, 2) for v in box.tolist()]} with IoU >= {self.iou_threshold} "
                    f"in an output of image {image} ({scores.shape[0]} detections): its score "
                    "is 0. Normal for the perturbed copies of Score-CAM and Ablation-CAM; for "
                    "the image itself check the box and label, or use "
                    "DetectionBox.from_detection"
                )
            values.append(scores.sum() * 0)  # a zero that keeps the output's graph
        if not values:
            return torch.zeros(0)
        return torch.stack(values)

    def __repr__(self) -> str:
        labels = int(self.labels) if self.labels.dim() == 0 else _describe_tensor(self.labels)
        boxes = _describe_tensor(self.boxes)
        return f"DetectionBox(box={boxes}, label={labels}, iou_threshold={self.iou_threshold})"


class EmbeddingSimilarity:
    """Cosine similarity of the output embedding ``e`` to a reference ``r``:
    ``y^c = e . r / (|e| |r|)``, in ``[-1, 1]``.

    Explains what in the image makes its embedding close to another one (image retrieval,
    face verification, CLIP-style image-text matching with ``r`` a text embedding): the
    reference is usually the embedding of another image, computed beforehand and detached.
    An all-zero embedding has no direction: it scores 0, with zero gradient.

    Args:
        reference: ``(D,)`` for every image or ``(B, D)`` one per image (indexed with
            ``image_indices``); detached and stored as given.

    Call: ``target(output, image_indices=None) -> (N,)``, ``output`` ``(N, D)`` or a dict /
    tuple holding it.

    Raises:
        TypeError: a reference that is not a tensor / array of floats.
        ValueError: a reference of another rank, an all-zero or non-finite reference; when
            called, an output that is not ``(N, D)`` with the reference's ``D``.

    Example:
        >>> import torch
        >>> target = EmbeddingSimilarity(torch.tensor([1.0, 0.0]))
        >>> target(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
        tensor([0.6000, 0.0000])
    """

    def __init__(self, reference: torch.Tensor) -> None:
        if not torch.is_tensor(reference):
            if not hasattr(reference, "__array__") and not isinstance(reference, Sequence):
                raise TypeError(f"reference must be a (D,) or (B, D) tensor, not "
                                f"{type(reference).__name__}")
            reference = torch.as_tensor(reference)
        reference = reference.detach()
        if not reference.is_floating_point():
            raise TypeError(f"reference must be a float tensor, got dtype {reference.dtype}")
        if reference.dim() not in (1, 2) or reference.shape[-1] == 0:
            raise ValueError(f"reference must be (D,) or (B, D), got shape "
                             f"{tuple(reference.shape)}")
        norms = torch.linalg.vector_norm(reference, dim=-1).reshape(-1)
        if not torch.isfinite(reference).all() or (norms == 0).any():
            bad = int(((norms == 0) | ~torch.isfinite(norms)).nonzero()[0])
            which = "the reference" if reference.dim() == 1 else f"reference {bad}"
            raise ValueError(f"{which} is all zero or not finite: a cosine similarity needs "
                             "a direction")
        self.reference = reference

    def __call__(self, output: object,
                 image_indices: torch.Tensor | None = None) -> torch.Tensor:
        embeddings = _tensor_output(output, "EmbeddingSimilarity", 2, "(N, D)")
        if embeddings.shape[1] != self.reference.shape[-1]:
            raise ValueError(
                f"EmbeddingSimilarity: the output embeddings have dimension "
                f"{embeddings.shape[1]} (shape {tuple(embeddings.shape)}) but the reference "
                f"has {self.reference.shape[-1]}"
            )
        per_image = self.reference.shape[0] if self.reference.dim() == 2 else None
        rows = _row_images(image_indices, embeddings.shape[0], per_image,
                           "EmbeddingSimilarity")
        reference = self.reference.to(embeddings)
        reference = reference.expand_as(embeddings) if reference.dim() == 1 \
            else reference[rows.to(reference.device)]
        unit = reference / torch.linalg.vector_norm(reference, dim=1, keepdim=True)
        norms = torch.linalg.vector_norm(embeddings, dim=1)
        zero = norms == 0
        # where() on both sides keeps a zero embedding's value and gradient at 0, not NaN
        return torch.where(zero, torch.zeros_like(norms),
                           (embeddings * unit).sum(dim=1)
                           / torch.where(zero, torch.ones_like(norms), norms))

    def __repr__(self) -> str:
        return f"EmbeddingSimilarity(reference={tuple(self.reference.shape)} tensor)"


class TokenLogProbability:
    """The log-probability of a token sequence under a captioning-style model's logits
    ``z`` ``(N, T, V)``: ``y^c = sum_{t: w_t != -100} log softmax(z_t)[w_t]``.

    The Grad-CAM paper explains image captions this way (Selvaraju et al., ICCV 2017, its
    image captioning experiments): the score of a whole caption given the image, or of one
    word (set the others to -100).  Positions whose token id is ``-100``
    (:data:`IGNORE_TOKEN`, the ignore index of PyTorch's cross-entropy and of Hugging Face
    labels: padding, prompt) are left out; a sequence of only ``-100`` scores 0.  Row ``t``
    of the logits must be the prediction of token ``t`` (teacher forcing: shift the labels
    yourself if the model predicts the next token).

    Args:
        tokens: ``(T,)`` ids for every image or ``(B, T)`` one sequence per image (indexed
            with ``image_indices``).

    Call: ``target(output, image_indices=None) -> (N,)``, ``output`` ``(N, T, V)`` logits
    or a dict / ``ModelOutput`` holding them (``.logits``).

    Raises:
        TypeError: tokens that are not integers.
        ValueError: tokens of another rank or below -100 / negative other than -100; when
            called, an output that is not ``(N, T, V)``, a length ``T`` other than the
            output's, an id ``>= V``.

    Example:
        >>> import torch
        >>> logits = torch.zeros(1, 3, 4)  # uniform: each token has log-probability log(1/4)
        >>> TokenLogProbability(torch.tensor([2, 0, -100]))(logits)  # 2 log(1/4)
        tensor([-2.7726])
    """

    def __init__(self, tokens: Sequence[int] | torch.Tensor) -> None:
        tokens = torch.as_tensor(tokens.detach() if torch.is_tensor(tokens) else tokens)
        if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
            raise TypeError(f"tokens must be integer token ids, got dtype {tokens.dtype}")
        if tokens.dim() not in (1, 2) or tokens.shape[-1] == 0:
            raise ValueError(f"tokens must be (T,) or (B, T) ids, got shape "
                             f"{tuple(tokens.shape)}")
        bad = (tokens < 0) & (tokens != IGNORE_TOKEN)
        if bad.any():
            raise ValueError(f"token id {int(tokens[bad][0])} is negative (only "
                             f"{IGNORE_TOKEN} is allowed: an ignored position)")
        self.tokens = tokens.long()

    def __call__(self, output: object,
                 image_indices: torch.Tensor | None = None) -> torch.Tensor:
        logits = _tensor_output(output, "TokenLogProbability", 3,
                                "(N, T, vocabulary) logits")
        length, vocabulary = logits.shape[1:]
        if self.tokens.shape[-1] != length:
            raise ValueError(
                f"TokenLogProbability: {self.tokens.shape[-1]} tokens but the output has "
                f"{length} positions (shape {tuple(logits.shape)})"
            )
        too_large = self.tokens >= vocabulary
        if too_large.any():
            raise ValueError(f"TokenLogProbability: token id {int(self.tokens[too_large][0])} "
                             f"is out of range: the vocabulary has {vocabulary} tokens")
        per_image = self.tokens.shape[0] if self.tokens.dim() == 2 else None
        rows = _row_images(image_indices, logits.shape[0], per_image, "TokenLogProbability")
        tokens = self.tokens.to(logits.device)
        tokens = tokens.expand(logits.shape[0], -1) if tokens.dim() == 1 \
            else tokens[rows.to(tokens.device)]
        kept = tokens != IGNORE_TOKEN
        picked = F.log_softmax(logits, dim=-1).gather(
            2, torch.where(kept, tokens, torch.zeros_like(tokens))[..., None])[..., 0]
        # where(), not a product: an ignored position whose logit is -inf must not give NaN
        return torch.where(kept, picked, torch.zeros_like(picked)).sum(dim=1)

    def __repr__(self) -> str:
        ignored = int((self.tokens == IGNORE_TOKEN).sum())
        return (f"TokenLogProbability(tokens={_describe_tensor(self.tokens)}"
                f"{f', {ignored} ignored' if ignored else ''})")
