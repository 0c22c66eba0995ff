"""Targets for Ultralytics YOLO detectors, read from the raw output of their detection head:
one detection's class probability plus its box's agreement (:class:`YoloBox`), and the
detections ultralytics' non-maximum suppression keeps, each with its anchor
(:func:`yolo_detections`).

A YOLO ``DetectionModel`` (YOLOv3u, v5u, v8, v9, v10, 11, 12, 26) in eval mode returns the
tuple ``(predictions, raw maps)``; ``predictions`` is ``(N, 4 + nc, A)``: one column per
anchor (a cell of one of the head's feature maps, strides 8, 16 and 32, always in the same
order), rows 0-3 the box as centre x, centre y, width and height in input pixels, rows
``4 .. 4 + nc`` the class probabilities (sigmoids).  Nothing here imports ultralytics.

Examples:
    >>> import torch
    >>> predictions = torch.zeros(1, 4 + 2, 3)  # one image, 2 classes, 3 anchors
    >>> predictions[0, :4, 1] = torch.tensor([5.0, 5.0, 4.0, 4.0])  # box (3, 3)-(7, 7)
    >>> predictions[0, 4:, 1] = torch.tensor([0.2, 0.9])
    >>> detections = yolo_detections(predictions)
    >>> detections[0]["anchors"], detections[0]["labels"], detections[0]["boxes"]
    (tensor([1]), tensor([1]), tensor([[3., 3., 7., 7.]]))
    >>> YoloBox.from_detection(detections, 0)(predictions)  # 0.9 + IoU 1
    tensor([1.9000])
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import torch

from ..outputs import describe_output
from .common import class_indices, describe_tensor, pick, row_classes, row_images
from .detection import box_iou, checked_boxes, detection_positions

__all__ = ["YoloBox", "xywh_to_xyxy", "yolo_detections", "yolo_predictions"]

#: what the YOLO targets read, for their error messages
YOLO_OUTPUT = ("the raw output of an Ultralytics YOLO detection model in eval mode: the "
               "tuple (predictions (N, 4 + classes, anchors), raw maps) it returns, or the "
               "predictions tensor")


def xywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes ``(..., 4)`` as centre x, centre y, width, height -> ``x0, y0, x1, y1``.

    Examples:
        >>> xywh_to_xyxy(torch.tensor([5.0, 5.0, 4.0, 2.0]))
        tensor([3., 4., 7., 6.])
    """
    centre, size = boxes[..., :2], boxes[..., 2:4]
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1)


def _end_to_end_error(prediction: torch.Tensor, classes: int, anchors: int) -> ValueError:
    return ValueError(
        f"this YOLO output holds predictions {tuple(prediction.shape)}, not (N, 4 + "
        f"{classes}, {anchors}) for {classes} classes and {anchors} anchors: an end-to-end "
        "head's rows of (x0, y0, x1, y1, score, class) after its top-k selection. Set "
        "model.model[-1].end2end = False to get the per-anchor predictions the YOLO "
        "targets read")


def yolo_predictions(output: object, owner: str = "YoloBox") -> tuple[torch.Tensor, int]:
    """The ``(N, 4 + nc + extra, A)`` predictions in a YOLO output, and the number of
    classes ``nc`` (from the raw maps of the tuple when present, else every row after the
    box; ``extra`` rows are the mask coefficients or keypoints of segmentation and pose
    heads, which return ``((predictions, prototypes), raw maps)``).

    Raises:
        TypeError: an output that is not a YOLO output (the message describes it).
        ValueError: an end-to-end head's top-k rows, an oriented-box (OBB) head, fewer than
            5 rows; the messages say what to do.

    Examples:
        >>> prediction, classes = yolo_predictions((torch.zeros(2, 7, 21), {}))
        >>> tuple(prediction.shape), classes
        ((2, 7, 21), 3)
    """
    prediction, maps = output, None
    if isinstance(output, tuple | list) and len(output) == 2 and isinstance(output[1], Mapping):
        prediction, maps = output
    if isinstance(prediction, tuple | list) and prediction and torch.is_tensor(prediction[0]):
        prediction = prediction[0]  # segmentation and pose heads add their prototypes
    if not torch.is_tensor(prediction) or prediction.dim() != 3:
        raise TypeError(f"{owner} needs {YOLO_OUTPUT}; this output is a "
                        f"{describe_output(output)}")
    classes = prediction.shape[1] - 4
    maps = maps.get("one2many", maps) if maps else {}  # end-to-end heads keep two branches
    if "angle" in maps:
        raise ValueError(f"{owner} reads axis-aligned boxes; this YOLO head predicts oriented "
                         "boxes (OBB), whose overlap it cannot compute")
    scores = maps.get("scores")
    if torch.is_tensor(scores) and scores.dim() == 3:
        classes = scores.shape[1]
        if prediction.shape[2] != scores.shape[2] or prediction.shape[1] < 4 + classes:
            raise _end_to_end_error(prediction, classes, scores.shape[2])
    if classes < 1:
        raise ValueError(f"{owner} needs predictions (N, 4 + classes, anchors) with at "
                         f"least one class; got shape {tuple(prediction.shape)}")
    return prediction, classes


def _checked_threshold(value: object, name: str, low_open: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            (0 < value <= 1) if low_open else (0 <= value < 1)):
        interval = "(0, 1]" if low_open else "[0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return float(value)


def yolo_detections(output: object, *, conf_threshold: float = 0.25,
                    iou_threshold: float = 0.7,
                    max_detections: int = 300) -> list[dict[str, torch.Tensor]]:
    """The detections of a YOLO output as ultralytics' ``predict`` keeps them: each anchor
    takes its most probable class; anchors with a probability above ``conf_threshold``
    go through non-maximum suppression per class (boxes of one class overlapping a
    more probable one with ``IoU > iou_threshold`` are dropped); at most
    ``max_detections`` per image, most probable first.

    Returns one dict per image, like torchvision's detectors: ``boxes`` ``(n, 4)`` as
    ``x0, y0, x1, y1`` in input pixels, ``labels`` ``(n,)`` (classes from 0), ``scores``
    ``(n,)`` and ``anchors`` ``(n,)``, the column of the output each detection comes from
    (what :meth:`YoloBox.from_detection` needs); all detached.

    A random-weight network gives every class a small probability: lower
    ``conf_threshold`` (to 0, say) to get detections from it.

    Raises:
        TypeError, ValueError: an output that is not a YOLO output (see
            :func:`yolo_predictions`), thresholds outside ``[0, 1)`` / ``(0, 1]``, a
            ``max_detections`` that is not a positive int.
    """
    prediction, classes = yolo_predictions(output, "yolo_detections")
    conf_threshold = _checked_threshold(conf_threshold, "conf_threshold", low_open=False)
    iou_threshold = _checked_threshold(iou_threshold, "iou_threshold", low_open=True)
    if isinstance(max_detections, bool) or not isinstance(max_detections, numbers.Integral) \
            or max_detections < 1:
        raise ValueError(f"max_detections must be a positive int, got {max_detections!r}")
    # Imported here: importing torchvision costs about a second, and the targets package is
    # imported by code (the evaluation summary and report) that never runs a model.
    import torchvision

    found = []
    for image in prediction.detach():
        boxes = xywh_to_xyxy(image[:4].T)
        scores, labels = image[4:4 + classes].max(dim=0)
        candidates = (scores > conf_threshold).nonzero()[:, 0]
        kept = torchvision.ops.batched_nms(boxes[candidates].float(),
                                           scores[candidates].float(), labels[candidates],
                                           iou_threshold)
        anchors = candidates[kept[:max_detections]]
        found.append({"boxes": boxes[anchors], "labels": labels[anchors],
                      "scores": scores[anchors], "anchors": anchors})
    return found


class YoloBox:
    """One detection of a YOLO detector: ``y^c = p_{a,l} + IoU(b_a, b)``, the probability
    of class ``l`` at the detection's anchor ``a`` plus the overlap of the box that anchor
    predicts, ``b_a``, with the detection's box ``b`` (the box-regression agreement, as in
    :class:`~axiomcam.targets.DetectionBox`).  ``box=None`` leaves the overlap out:
    ``y^c = p_{a,l}``.

    The anchor is the detection's identity: a YOLO output has one column per anchor in a
    fixed order, so every pass reads the same one, the perturbed copies of Score-CAM and
    Ablation-CAM too (there its box may move away and its probability fall; no matching,
    no threshold).  Build the target with :meth:`from_detection`.  On the output the
    detection came from, ``IoU = 1``, the overlap's maximum, where its gradient is 0: the
    gradient methods then explain the class probability, and the overlap counts in the
    perturbed copies, where the box moves (as with ``DetectionBox``).  A probability near 1
    has no gradient either (a saturated sigmoid): explain a less certain detection, or use
    Eigen-CAM, Score-CAM or Ablation-CAM.

    The default target layer of a YOLO model is the last layer that all the head's inputs
    depend on (``model.15`` in YOLOv8, ``model.16`` in YOLO11; see
    :func:`axiomcam.layers.find_default_layer`).

    Args:
        anchor: the column of the output, an int for every image or one per image.
        label: the class (from 0), an int or one per image.
        box: ``x0, y0, x1, y1`` in input pixels, ``(4,)`` or ``(B, 4)``; ``None``: no
            overlap term.

    Call: ``target(output, image_indices=None) -> (N,)``, ``output`` the model's tuple
    ``(predictions (N, 4 + nc, A), raw maps)`` or the predictions (see
    :func:`yolo_predictions`).

    Raises:
        ValueError: per-image values for different numbers of images, a bad box; when
            called, an anchor or class the output does not have, an end-to-end head's
            output (the message says how to switch it off).
        TypeError: an output that is not a YOLO output.

    Examples:
        >>> import torch
        >>> predictions = torch.zeros(1, 6, 3)
        >>> predictions[0, :, 2] = torch.tensor([5.0, 5.0, 4.0, 4.0, 0.2, 0.7])
        >>> YoloBox(2, 1, box=[3.0, 3.0, 7.0, 9.0])(predictions)  # 0.7 + IoU 16/24
        tensor([1.3667])
    """

    def __init__(self, anchor: int | Sequence[int] | torch.Tensor,
                 label: int | Sequence[int] | torch.Tensor, *,
                 box: Sequence[float] | torch.Tensor | None = None) -> None:
        self.anchors = class_indices(anchor, "anchor")
        self.labels = class_indices(label, "label")
        self.boxes = None if box is None else checked_boxes(box)
        counts = {name: values.shape[0] for name, values, dims in (
            ("anchors", self.anchors, 1), ("labels", self.labels, 1), ("boxes", self.boxes, 2))
            if values is not None and values.dim() == dims}
        if len(set(counts.values())) > 1:
            given = ", ".join(f"{count} {name}" for name, count in counts.items())
            raise ValueError(f"YoloBox got {given}: give one of each per image, or one for all")
        #: how many images the per-image values are for (``None``: one value for all)
        self.images = next(iter(counts.values()), None)

    @classmethod
    def from_detection(cls, detections: object, index: int | Sequence[int], *,
                       overlap: bool = True, conf_threshold: float = 0.25,
                       iou_threshold: float = 0.7) -> YoloBox:
        """The target for detection number ``index`` of each image: its anchor, class and
        box.

        Args:
            detections: the model's output for the batch (its detections are found with
                :func:`yolo_detections`, with ``conf_threshold`` and ``iou_threshold``), or
                what :func:`yolo_detections` returned.
            index: the detection's position in its image's list (most probable first), an
                int for every image or one per image.
            overlap: add the IoU term (``False``: the class probability alone).

        Raises:
            ValueError: an index that an image's detections do not have (the message says
                how many it has; with random weights, lower ``conf_threshold``), indices
                for another number of images.
            TypeError: detections without ``anchors`` (not from :func:`yolo_detections`).
        """
        if not (isinstance(detections, list) and detections
                and all(isinstance(found, Mapping) for found in detections)):
            detections = yolo_detections(detections, conf_threshold=conf_threshold,
                                         iou_threshold=iou_threshold)
        missing = [image for image, found in enumerate(detections)
                   if not all(key in found for key in ("anchors", "labels", "boxes", "scores"))]
        if missing:
            raise TypeError(f"YoloBox.from_detection needs the model's output or the result "
                            f"of yolo_detections (dicts with 'anchors', 'labels', 'boxes', "
                            f"'scores'); element {missing[0]} is a "
                            f"{describe_output(detections[missing[0]])}")
        positions = detection_positions(detections, index)
        chosen = list(zip(detections, positions, strict=True))
        boxes = torch.stack([found["boxes"][at].detach().cpu() for found, at in chosen])
        return cls(torch.tensor([int(found["anchors"][at]) for found, at in chosen]),
                   torch.tensor([int(found["labels"][at]) for found, at in chosen]),
                   box=boxes if overlap else None)

    def __call__(self, output: object,
                 image_indices: torch.Tensor | None = None) -> torch.Tensor:
        prediction, classes = yolo_predictions(output)
        rows = row_images(image_indices, prediction.shape[0], self.images, "YoloBox").cpu()
        anchors = pick(self.anchors, rows)
        if prediction.shape[0] and int(anchors.max()) >= prediction.shape[2]:
            raise ValueError(f"YoloBox: anchor {int(anchors.max())} is out of range: the "
                             f"output has {prediction.shape[2]} anchors (0.."
                             f"{prediction.shape[2] - 1}); was it made for another input size?")
        labels = row_classes(self.labels, rows, classes, "YoloBox", prediction.device)
        # (N, 4 + nc + extra): each row's anchor column
        cells = prediction[torch.arange(prediction.shape[0], device=prediction.device), :,
                           anchors.to(prediction.device)]
        values = cells.gather(1, 4 + labels[:, None])[:, 0]
        if self.boxes is None:
            return values
        reference = self.boxes.to(cells)
        reference = reference if reference.dim() == 1 else reference[rows.to(cells.device)]
        return values + box_iou(xywh_to_xyxy(cells[:, :4]), reference)

    def __repr__(self) -> str:
        def shown(values: torch.Tensor | None) -> object:
            return None if values is None else (
                int(values) if values.dim() == 0 else describe_tensor(values))

        return (f"YoloBox(anchor={shown(self.anchors)}, label={shown(self.labels)}, "
                f"box={describe_tensor(self.boxes) if self.boxes is not None else None})")
