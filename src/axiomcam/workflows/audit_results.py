"""What a data-set bias audit holds (:func:`axiomcam.workflows.audit`, ``axiomcam audit``):
each labelled image's background share, the per-class results with the flag
(:func:`class_audits`), and the summary written to ``results.json`` (:func:`audit_json`).
The measure and the flag's rule are explained in :mod:`~axiomcam.workflows.auditing`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..evaluation.summary import CONFIDENCE, bootstrap_interval

__all__ = ["AUDIT_FILE", "UNIFORM", "AuditImage", "AuditRun", "ClassAudit", "Worst",
           "audit_json", "check_threshold", "class_audits", "flag_rule"]

#: the summary's file name in the audit folder
AUDIT_FILE = "results.json"

#: the default threshold: a class is flagged when its background share exceeds a uniform map's
UNIFORM = "uniform"


@dataclass(frozen=True)
class AuditImage:
    """One labelled image of the audit.

    Attributes:
        image_id: its id in the data set.
        label: the class it is labelled with (the class explained).
        correct: whether the model's top-1 class is the label.
        probability: the probability the model gave the label.
        background: the explained class's map's share outside every box (``None``: the
            image has no box of its class).
        area: the background's share of the image's area (a uniform map's share).
    """

    image_id: str
    label: int
    correct: bool
    probability: float
    background: float | None
    area: float | None


@dataclass(frozen=True)
class Worst:
    """An image kept for the pictures: the image, its map, its boxes (input pixels)."""

    record: AuditImage
    image: Any
    cam_map: torch.Tensor
    object_boxes: torch.Tensor
    other_boxes: torch.Tensor


@dataclass(frozen=True)
class ClassAudit:
    """One class's audit (:func:`class_audits`).

    Attributes:
        index, name: the class.
        images: labelled images of the class; correct: of those, classified right.
        located: images with a box of the class (the shares are over these).
        background: mean background share and its interval ``(mean, low, high)``, ``None``
            when no image is located.
        area: mean area share of the background (what a uniform map would give).
        flagged: the background holds the class's evidence (see the module's rule).
        worst: ids of the images with the largest background shares, largest first.
    """

    index: int
    name: str
    images: int
    correct: int
    located: int
    background: tuple[float, float, float] | None
    area: float | None
    flagged: bool
    worst: tuple[str, ...]

    @property
    def accuracy(self) -> float:
        """Top-1 accuracy on the class's images."""
        return self.correct / self.images if self.images else math.nan


@dataclass
class AuditRun:
    """What :func:`audit` found and wrote.

    Attributes:
        out_dir: the audit folder; model, layer, method, data, seed: the run.
        threshold: :data:`UNIFORM` or a share in ``[0, 1]`` (the flag's rule).
        worst_count: how many worst images are drawn per flagged class.
        class_names: the model's classes; score: what the maps explain ("contrast": the
            class's logit minus the mean logit; "logit").
        images: images seen; records: the labelled ones.
        worst: per class index, the kept images with the largest background shares.
        pictures: per flagged class index, its figure relative to ``out_dir``.
        problems: ``(path, reason)`` of skipped files; seconds: wall time; files: written.
    """

    out_dir: Path
    model: str
    layer: str
    method: str
    data: str
    seed: int
    threshold: float | str
    worst_count: int
    class_names: list[str]
    score: str = "contrast"
    images: int = 0
    records: list[AuditImage] = field(default_factory=list)
    worst: dict[int, list[Worst]] = field(default_factory=dict)
    pictures: dict[int, str] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    files: list[Path] = field(default_factory=list)

    @property
    def classes(self) -> list[ClassAudit]:
        """Each labelled class's audit (:func:`class_audits`)."""
        return class_audits(self)


def check_threshold(threshold: object) -> float | str:
    """``"uniform"`` or a number in ``[0, 1]`` (a string such as ``"0.5"`` is read).

    Examples:
        >>> check_threshold("0.5"), check_threshold("uniform")
        (0.5, 'uniform')
    """
    if threshold == UNIFORM:
        return UNIFORM
    value = threshold
    if isinstance(threshold, str):
        try:
            value = float(threshold)
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0 <= value <= 1:
        raise ValueError(f"threshold must be {UNIFORM!r} or a background share in [0, 1], "
                         f"got {threshold!r}")
    return float(value)


def flag_rule(threshold: float | str) -> str:
    """The flag's rule in words (results.json, the report, the command's output).

    Examples:
        >>> flag_rule(0.5)
        'mean background share > 0.5'
    """
    if threshold == UNIFORM:
        return ("mean background share > mean background area share (a uniform map's): the "
                "class's evidence is denser on the background than on the objects")
    return f"mean background share > {threshold:g}"


def class_audits(run: AuditRun) -> list[ClassAudit]:
    """Each class with labelled images, in class order: counts, shares, flag, worst images.

    Examples:
        >>> run = AuditRun(Path("out"), "toy", "1", "gradcam", "toys", 0, UNIFORM, 2, ["a"])
        >>> run.records = [AuditImage("x", 0, True, 0.9, 0.8, 0.6),
        ...                AuditImage("y", 0, False, 0.2, 0.7, 0.6)]
        >>> audit = class_audits(run)[0]
        >>> audit.accuracy, audit.background[0], audit.flagged
        (0.5, 0.75, True)
    """
    audits = []
    for index in sorted({record.label for record in run.records}):
        records = [record for record in run.records if record.label == index]
        located = [record for record in records if record.background is not None]
        background = area = None
        flagged = False
        if located:
            shares = [record.background for record in located]
            mean = sum(shares) / len(shares)
            background = (mean, *bootstrap_interval(shares, seed=run.seed))
            area = sum(record.area for record in located) / len(located)
            flagged = mean > (area if run.threshold == UNIFORM else run.threshold)
        worst = sorted(located, key=lambda record: -record.background)[:run.worst_count]
        audits.append(ClassAudit(
            index=index, name=run.class_names[index], images=len(records),
            correct=sum(record.correct for record in records), located=len(located),
            background=background, area=area, flagged=flagged,
            worst=tuple(record.image_id for record in worst)))
    return audits


def _class_json(item: ClassAudit) -> dict[str, Any]:
    mean, low, high = item.background if item.background is not None else (None,) * 3
    return {"index": item.index, "name": item.name, "images": item.images,
            "correct": item.correct, "accuracy": item.accuracy, "located": item.located,
            "background_share": {"mean": mean, "low": low, "high": high},
            "area_share": item.area, "flagged": item.flagged, "worst": list(item.worst)}


def audit_json(run: AuditRun) -> dict[str, Any]:
    """The contents of ``results.json``: the run, the rule, every class and every image.

    Examples:
        >>> run = AuditRun(Path("out"), "toy", "1", "gradcam", "toys", 0, 0.5, 2, ["a"])
        >>> run.records = [AuditImage("x", 0, True, 0.9, 0.25, 0.5)]
        >>> text = audit_json(run)
        >>> text["flagged"], text["classes"][0]["background_share"]["mean"]
        ([], 0.25)
    """
    classes = class_audits(run)
    return {
        "model": run.model, "layer": run.layer, "method": run.method, "data": run.data,
        "score": run.score, "seed": run.seed, "images": run.images, "labelled": len(run.records),
        "threshold": run.threshold, "rule": flag_rule(run.threshold),
        "confidence": CONFIDENCE, "seconds": run.seconds,
        "flagged": [item.name for item in classes if item.flagged],
        "classes": [_class_json(item) for item in classes],
        "pictures": {run.class_names[index]: path for index, path in run.pictures.items()},
        "skipped": [{"path": path, "reason": reason} for path, reason in run.problems],
        "images_audited": [{"image": r.image_id, "label": r.label, "correct": r.correct,
                            "probability": r.probability, "background_share": r.background,
                            "area_share": r.area} for r in run.records],
    }
