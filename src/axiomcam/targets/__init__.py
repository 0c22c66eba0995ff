"""What a map explains: target specs and their resolution, and ready-made targets for
models beyond classifiers.

A target says which scalar ``y^c`` a map explains: ``None`` (each image's top class), a
class, one class per image, a ``(B, k)`` tensor (or equal-length rows) of classes,
:class:`TopClasses`, :class:`LabelsAbove` (each image's labels above a sigmoid threshold),
:class:`ClassScore`, or a callable ``output -> (B,)`` (:mod:`.resolution`, which checks
them against a batch).  A single-logit (binary) model's output ``z`` has two classes:
:data:`NEGATIVE` (``0``, scored ``-z``) and :data:`POSITIVE` (``1``, scored ``z``).

The ready-made targets are small callable objects ``target(output, image_indices) -> (N,)``
that ``axiomcam.explain(..., targets=target)`` accepts.  Row ``i`` of ``output`` is a
(possibly perturbed) copy of image ``image_indices[i]``: Score-CAM and Ablation-CAM call a
target on batches of copies of *one* image, so every target that holds per-image data (one
class, mask, box, reference embedding or token sequence per image) picks that data with
``image_indices``.  Called as ``target(output)``, row ``i`` is image ``i``.

- :class:`ClassScore` (:mod:`.classes`): the logit ``z_c``, the softmax probability
  ``p_c`` or the sigmoid probability ``sigmoid(z_c)`` of class ``c_i`` (or of ``k`` classes
  per image), for ``(N, C)`` outputs and single-logit ``(N,)`` / ``(N, 1)`` ones;
- :class:`ClassContrast` (:mod:`.contrast`): ``z_c - alpha sum_d w_d z_d``, a class against
  its most similar classes (Finer-CAM's target, for any method);
- :class:`SegmentationRegion` (:mod:`.segmentation`): ``sum_{(u,v) in M_i} S[c, u, v]``, a
  class's scores summed over a region, for ``(N, C, H, W)`` segmentation outputs;
- :class:`DetectionBox` (:mod:`.detection`): ``s_d + IoU(b_d, b_i)``, the score of the
  detection ``d`` matching a box plus its overlap, for detectors returning a list of dicts;
- :class:`YoloBox` (:mod:`.yolo`): ``p_{a,l} + IoU(b_a, b_i)``, one detection of an
  Ultralytics YOLO detector read at its anchor ``a`` in the raw ``(N, 4 + nc, A)`` output
  (:func:`yolo_detections`: the detections and their anchors);
- :class:`EmbeddingSimilarity` (:mod:`.embeddings`): ``cos(e, r_i)`` for ``(N, D)``
  embeddings; :class:`TextSimilarity`, the same with a CLIP model's text embedding
  (:func:`encode_texts`): the image regions that match a text;
- :class:`TokenLogProbability` (:mod:`.tokens`): ``sum_t log softmax(z_t)[w_t]`` for
  ``(N, T, V)`` logits.

Tensor outputs are found in dicts, tuples and ``ModelOutput`` objects with
:func:`axiomcam.outputs.select_output` (torchvision segmentation's ``{"out": ...}``, Hugging
Face's ``.logits``).  Bad input is a ``ValueError`` / ``TypeError`` naming the value: an
output of the wrong shape for the target (with the shape it has and the one it needs), a
class, token or box index out of range, a mask or reference that does not fit the output.

Examples:
    >>> import torch
    >>> logits = torch.tensor([[1.0, 3.0, 0.0], [2.0, 0.0, 5.0]])
    >>> ClassScore([1, 2])(logits)
    tensor([3., 5.])
    >>> ClassScore([1, 2])(logits[[1, 1]], torch.tensor([1, 1]))  # two copies of image 1
    tensor([5., 5.])
"""

from .classes import ClassScore
from .common import NEGATIVE, POSITIVE
from .contrast import ClassContrast, ContrastScore
from .detection import DetectionBox, box_iou
from .embeddings import EmbeddingSimilarity, TextSimilarity, encode_texts
from .resolution import ResolvedTargets, TargetSpec, resolve_targets
from .segmentation import SegmentationRegion, predicted_mask
from .selection import LabelsAbove, TopClasses
from .tokens import IGNORE_TOKEN, TokenLogProbability
from .yolo import YoloBox, yolo_detections

__all__ = [
    "IGNORE_TOKEN",
    "NEGATIVE",
    "POSITIVE",
    "ClassContrast",
    "ClassScore",
    "ContrastScore",
    "DetectionBox",
    "EmbeddingSimilarity",
    "LabelsAbove",
    "ResolvedTargets",
    "SegmentationRegion",
    "TargetSpec",
    "TextSimilarity",
    "TokenLogProbability",
    "TopClasses",
    "YoloBox",
    "box_iou",
    "encode_texts",
    "predicted_mask",
    "resolve_targets",
    "yolo_detections",
]
