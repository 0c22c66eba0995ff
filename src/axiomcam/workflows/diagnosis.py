"""What a diagnosis of a classifier's failures holds (:func:`axiomcam.workflows.diagnose`,
``axiomcam diagnose``): each misclassified image with both classes' probabilities and
where their maps' mass lies, the failures grouped by confusion pair, and the summary
written to ``diagnose.json``.

Where the evidence lies (:class:`Evidence`, from
:func:`axiomcam.metrics.evidence_location`): the share of a map's mass on the boxes of
the object the image is labelled with, on the boxes of the image's other objects, and on
the background (outside every box); the three sum to 1. The **verdict** is where the
predicted class's map peaks (its maximum, the spot the eye goes to), as the pointing game
of Zhang et al. (ECCV 2016) decides it: the object whose box is nearest the peak, if
within :data:`PEAK_TOLERANCE` pixels at the network's input (15, the pointing game's;
a 7 x 7 map upsampled to 224 pixels puts its peak at a 32-pixel cell's centre, which
misses a small box it covers), the labelled object on ties; else the background. An
all-zero map has no verdict. The largest mass share would be a poor verdict: the
background covers most of an image (83% of the area of the failures' images on the
composite benchmark), so a blurry map puts most of its mass there wherever it peaks; the
shares are reported beside the verdict, with each region's share of the area (what a
uniform map would give).

Examples:
    >>> first = Misclassification("a.png", None, ClassProbability(0, "cat", 0.2),
    ...                           ClassProbability(1, "dog", 0.7), None, None, None, False, "")
    >>> second = Misclassification("b.png", None, ClassProbability(0, "cat", 0.1),
    ...                            ClassProbability(1, "dog", 0.8), None, None, None, False, "")
    >>> [(p.true.name, p.predicted.name, p.count) for p in confusion_pairs([first, second])]
    [('cat', 'dog', 2)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..evaluation.summary import CONFIDENCE, bootstrap_interval
from ..metrics import EVIDENCE_REGIONS

__all__ = ["DIAGNOSIS_FILE", "PEAK_TOLERANCE", "VERDICT_RULE", "ClassProbability",
           "ConfusionPair", "DiagnoseRun", "Evidence", "Misclassification", "confusion_pairs",
           "diagnosis_json", "summarize_evidence"]

#: the summary's file name in the diagnosis folder
DIAGNOSIS_FILE = "diagnose.json"

#: how a failure's verdict is decided, in words (diagnose.json, the report, the docs)
#: how far (pixels at the network's input) the peak may miss a box and still point at it
PEAK_TOLERANCE = 15.0

VERDICT_RULE = (
    "where the predicted class's map peaks (its first maximum), as the pointing game decides: "
    "the labelled object ('object') or another object ('other object') whose box is nearest "
    "the peak, if within the tolerance (the labelled object on ties), else 'background'")


@dataclass(frozen=True)
class ClassProbability:
    """A class and the probability the model gave it.

    Attributes:
        index: the class index.
        name: its name.
        probability: the model's probability (softmax, or as the model reads its output).
    """

    index: int
    name: str
    probability: float


@dataclass(frozen=True)
class Evidence:
    """Where a map's mass lies on an image (:func:`axiomcam.metrics.evidence_location`).

    Attributes:
        object: share on the labelled object's boxes.
        other_object: share on the other objects' boxes (outside the labelled object's).
        background: share outside every box.
        verdict: the region the map's peak points at (one of
            :data:`axiomcam.metrics.EVIDENCE_REGIONS`), ``None`` for an all-zero map (and
            for the areas of :attr:`Misclassification.area`).
    """

    object: float
    other_object: float
    background: float
    verdict: str | None

    def shares(self) -> dict[str, float]:
        """``{"object": ..., "other object": ..., "background": ...}``.

        Examples:
            >>> Evidence(0.5, 0.25, 0.25, "object").shares()["other object"]
            0.25
        """
        return dict(zip(EVIDENCE_REGIONS, (self.object, self.other_object, self.background),
                        strict=True))


@dataclass(frozen=True)
class Misclassification:
    """One misclassified image.

    Attributes:
        image_id: the image's id in the data set.
        path: the file it came from, if any.
        true: the label, with the probability the model gave it.
        predicted: the top-1 class, with its probability.
        evidence: where the predicted class's map lies, ``None`` when the image has no box.
        true_evidence: the same for the true class's map.
        area: each region's share of the image's area (what a uniform map would give; no
            verdict).
        named_another_object: the predicted class is the class of another of the image's
            boxes (the model named another object that is there).
        picture: the side-by-side PNG, relative to the diagnosis folder.
    """

    image_id: str
    path: str | None
    true: ClassProbability
    predicted: ClassProbability
    evidence: Evidence | None
    true_evidence: Evidence | None
    area: Evidence | None
    named_another_object: bool
    picture: str


@dataclass(frozen=True)
class ConfusionPair:
    """The failures of one confusion: labelled ``true``, predicted ``predicted``.

    Attributes:
        true: the label's index and name (probability: the mean the model gave it).
        predicted: the prediction's index and name (its mean probability).
        count: how many failures.
        image_ids: their images, in the data set's order.
    """

    true: ClassProbability
    predicted: ClassProbability
    count: int
    image_ids: tuple[str, ...]


@dataclass
class DiagnoseRun:
    """What :func:`axiomcam.workflows.diagnose` found and wrote.

    Attributes:
        out_dir: the diagnosis folder.
        model: the model's name; layer, method: what explained the maps.
        data: the data set's description; seed: its seed (and the bootstrap's).
        tolerance: how far the peak may miss a box (pixels at the network's input).
        images: images seen; labelled: those with a label; correct: of those, how many
            the model classified right (top-1).
        failures: the misclassified images, in the data set's order.
        problems: ``(path, reason)`` of the files the data set skipped.
        seconds: wall time.
        files: what was written (``diagnose.json``, ``report.html``, the pictures).
    """

    out_dir: Path
    model: str
    layer: str
    method: str
    data: str
    seed: int
    tolerance: float = PEAK_TOLERANCE
    images: int = 0
    labelled: int = 0
    correct: int = 0
    failures: list[Misclassification] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    files: list[Path] = field(default_factory=list)

    @property
    def pairs(self) -> list[ConfusionPair]:
        """The failures grouped by confusion pair (:func:`confusion_pairs`)."""
        return confusion_pairs(self.failures)


def confusion_pairs(failures: Sequence[Misclassification]) -> list[ConfusionPair]:
    """The failures grouped by (true class, predicted class), most frequent first; pairs
    of equal count in the order their first failure came.

    Each pair's probabilities are the means over its failures.

    Examples:
        >>> cat, dog, fox = (ClassProbability(i, n, 0.5) for i, n in enumerate("cdf"))
        >>> failures = [Misclassification(str(i), None, t, p, None, None, None, False, "")
        ...             for i, (t, p) in enumerate([(cat, fox), (cat, dog), (cat, dog)])]
        >>> [(p.true.name, p.predicted.name, p.count, p.image_ids)
        ...  for p in confusion_pairs(failures)]
        [('c', 'd', 2, ('1', '2')), ('c', 'f', 1, ('0',))]
    """
    groups: dict[tuple[int, int], list[Misclassification]] = {}
    for failure in failures:
        groups.setdefault((failure.true.index, failure.predicted.index), []).append(failure)
    pairs = []
    for members in groups.values():
        first = members[0]
        pairs.append(ConfusionPair(
            true=ClassProbability(first.true.index, first.true.name,
                                  sum(m.true.probability for m in members) / len(members)),
            predicted=ClassProbability(
                first.predicted.index, first.predicted.name,
                sum(m.predicted.probability for m in members) / len(members)),
            count=len(members), image_ids=tuple(m.image_id for m in members)))
    return sorted(pairs, key=lambda pair: -pair.count)  # stable: first seen first on ties


def summarize_evidence(evidence: Sequence[Evidence | None], seed: int = 0) -> dict[str, Any]:
    """Over the failures whose images have boxes: how many got each verdict, and each
    region's mean share with its percentile-bootstrap interval (:data:`CONFIDENCE`,
    :func:`axiomcam.evaluation.summary.bootstrap_interval`).

    Returns:
        ``{"images": n, "verdicts": {region: count, "none": count}, "shares": {region:
        {"mean", "low", "high"}}}``; ``shares`` is empty when no image has boxes.

    Examples:
        >>> summary = summarize_evidence([Evidence(0.2, 0.0, 0.8, "background"),
        ...                               Evidence(0.6, 0.0, 0.4, "object"), None])
        >>> summary["images"], summary["verdicts"], summary["shares"]["object"]["mean"]
        (2, {'object': 1, 'other object': 0, 'background': 1, 'none': 0}, 0.4)
    """
    known = [item for item in evidence if item is not None]
    verdicts = {region: sum(item.verdict == region for item in known)
                for region in EVIDENCE_REGIONS}
    verdicts["none"] = sum(item.verdict is None for item in known)
    shares = {}
    for region in EVIDENCE_REGIONS if known else ():
        values = [item.shares()[region] for item in known]
        low, high = bootstrap_interval(values, seed=seed)
        shares[region] = {"mean": sum(values) / len(values), "low": low, "high": high}
    return {"images": len(known), "verdicts": verdicts, "shares": shares}


def _class_json(item: ClassProbability) -> dict[str, Any]:
    return {"index": item.index, "name": item.name, "probability": item.probability}


def _evidence_json(item: Evidence | None) -> dict[str, Any] | None:
    return None if item is None else {**item.shares(), "verdict": item.verdict}


def diagnosis_json(run: DiagnoseRun) -> dict[str, Any]:
    """The contents of ``diagnose.json``: the run, the summary, the confusion pairs and
    every failure (JSON types only).

    Examples:
        >>> run = DiagnoseRun(Path("out"), "toy", "1", "xgradcam", "two toys", 0,
        ...                   images=2, labelled=2, correct=2)
        >>> text = diagnosis_json(run)
        >>> text["accuracy"], text["failures"], text["pairs"]
        (1.0, [], [])
    """
    failures = run.failures
    return {
        "model": run.model, "layer": run.layer, "method": run.method, "data": run.data,
        "seed": run.seed, "images": run.images, "labelled": run.labelled,
        "correct": run.correct,
        "accuracy": run.correct / run.labelled if run.labelled else None,
        "misclassified": len(failures), "seconds": run.seconds,
        "skipped": [{"path": path, "reason": reason} for path, reason in run.problems],
        "verdict_rule": VERDICT_RULE, "tolerance": run.tolerance, "confidence": CONFIDENCE,
        "evidence": {
            "predicted_class": summarize_evidence([f.evidence for f in failures], run.seed),
            "true_class": summarize_evidence([f.true_evidence for f in failures], run.seed),
            "area": {key: value for key, value in summarize_evidence(
                [f.area for f in failures], run.seed).items() if key != "verdicts"},
            "named_another_object": sum(f.named_another_object for f in failures),
        },
        "pairs": [{"true": _class_json(pair.true), "predicted": _class_json(pair.predicted),
                   "count": pair.count, "images": list(pair.image_ids)}
                  for pair in run.pairs],
        "failures": [{"image": f.image_id, "path": f.path, "true": _class_json(f.true),
                      "predicted": _class_json(f.predicted),
                      "evidence": _evidence_json(f.evidence),
                      "true_evidence": _evidence_json(f.true_evidence),
                      "area": _evidence_json(f.area),
                      "named_another_object": f.named_another_object,
                      "picture": f.picture}
                     for f in failures],
    }
