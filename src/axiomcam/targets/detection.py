"""Targets for object detectors: one detected object's score plus its box's overlap
(:class:`DetectionBox`), and the overlap itself (:func:`box_iou`)."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import torch

from ..outputs import describe_output
from ..support import warn
from .common import class_indices, describe_tensor, row_images

__all__ = ["DetectionBox", "box_iou", "checked_boxes", "detection_positions"]


def box_iou(boxes: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """Intersection over union of each of ``boxes`` ``(n, 4)`` with ``box`` ``(4,)`` (or,
    row by row, with ``(n, 4)`` boxes), boxes as ``x0, y0, x1, y1``:
    ``|A ∩ B| / |A ∪ B|``, 0 where the union is empty.  Differentiable in both (the
    detection targets' box-regression agreement).

    Examples:
        >>> import torch
        >>> box_iou(torch.tensor([[0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0]]),
        ...         torch.tensor([1.0, 0.0, 3.0, 2.0]))
        tensor([0.3333, 0.0000])
    """
    width = (torch.minimum(boxes[:, 2], box[..., 2]) - torch.maximum(boxes[:, 0], box[..., 0]))
    height = (torch.minimum(boxes[:, 3], box[..., 3]) - torch.maximum(boxes[:, 1], box[..., 1]))
    intersection = width.clamp_min(0) * height.clamp_min(0)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = areas + (box[..., 2] - box[..., 0]) * (box[..., 3] - box[..., 1]) - intersection
    empty = union <= 0
    return torch.where(empty, torch.zeros_like(intersection),
                       intersection / torch.where(empty, torch.ones_like(union), union))


def checked_boxes(box: object) -> torch.Tensor:
    """``box`` as a float ``(4,)`` or ``(B, 4)`` tensor of ``x0, y0, x1, y1``, detached.

    Raises:
        ValueError: another shape, a box that is not ``x0 <= x1, y0 <= y1`` or not finite.

    Examples:
        >>> checked_boxes([0, 0, 2, 1])
        tensor([0., 0., 2., 1.])
    """
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
    return boxes


def detection_positions(detections: Sequence[Mapping[str, torch.Tensor]],
                        index: object) -> list[int]:
    """Detection ``index`` of every image (an int for all, or one per image), checked
    against how many detections (``"scores"`` entries) each image has.

    Raises:
        ValueError: an index an image does not have (the message says how many it has),
            indices for another number of images.

    Examples:
        >>> import torch
        >>> found = [{"scores": torch.tensor([0.9, 0.5])}, {"scores": torch.tensor([0.7])}]
        >>> detection_positions(found, [1, 0])
        [1, 0]
        >>> detection_positions(found, 1)
        Traceback (most recent call last):
        ...
        ValueError: image 1 has 1 detection (index 0); there is no detection 1
    """
    indices = class_indices(index, "index")
    if indices.dim() == 0:
        indices = indices.expand(len(detections))
    if indices.shape[0] != len(detections):
        raise ValueError(f"{indices.shape[0]} detection indices for {len(detections)} "
                         "images: give one per image, or one int for all")
    for image, (found, position) in enumerate(zip(detections, indices.tolist(), strict=True)):
        count = found["scores"].shape[0]
        if position >= count:
            have = ("no detections" if count == 0 else
                    f"{count} detection{'s' if count > 1 else ''} (index 0"
                    f"{f'..{count - 1}' if count > 1 else ''})")
            raise ValueError(f"image {image} has {have}; there is no detection {position}")
    return indices.tolist()


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

    Examples:
        >>> import torch
        >>> detections = [{"boxes": torch.tensor([[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 4.0, 2.0]]),
        ...                "labels": torch.tensor([1, 2]), "scores": torch.tensor([0.9, 0.6])}]
        >>> DetectionBox([0.0, 0.0, 4.0, 3.0], label=2)(detections)  # 0.6 + IoU 8/12
        tensor([1.2667])
    """

    def __init__(self, box: Sequence[float] | torch.Tensor,
                 label: int | Sequence[int] | torch.Tensor, *,
                 iou_threshold: float = 0.5) -> None:
        boxes = checked_boxes(box)
        self.labels = class_indices(label, "label")
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

        Examples:
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
        positions = detection_positions(detections, index)
        boxes = [found["boxes"][position].detach().cpu()
                 for found, position in zip(detections, positions, strict=True)]
        labels = [int(found["labels"][position])
                  for found, position in zip(detections, positions, strict=True)]
        return cls(torch.stack(boxes), torch.tensor(labels), iou_threshold=iou_threshold)

    def __call__(self, output: object,
                 image_indices: torch.Tensor | None = None) -> torch.Tensor:
        detections = _check_detections(output)
        images = [data.shape[0] for data, dims in ((self.boxes, 2), (self.labels, 1))
                  if data.dim() == dims]
        rows = row_images(image_indices, len(detections), images[0] if images else None,
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
        labels = int(self.labels) if self.labels.dim() == 0 else describe_tensor(self.labels)
        boxes = describe_tensor(self.boxes)
        return f"DetectionBox(box={boxes}, label={labels}, iou_threshold={self.iou_threshold})"
