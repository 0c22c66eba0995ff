"""The library code behind the commands: what ``axiomcam explain``, ``compare`` and
``demo`` do, and what the app shares with them.

- :mod:`~axiomcam.workflows.classify`: the network's input for an image file, its classes
  and their probabilities, which classes to explain (:func:`parse_targets`) and at which
  layer (:func:`check_layer`);
- :mod:`~axiomcam.workflows.image_files`: image paths from files, folders and patterns,
  reading them, and the failures that do not stop a run;
- :mod:`~axiomcam.workflows.explaining`: overlays, raw maps and ``results.json``
  (:func:`explain_files`);
- :mod:`~axiomcam.workflows.comparing`: one figure, a row per image and a column per
  method, with the axiom errors (:func:`compare_files`);
- :mod:`~axiomcam.workflows.demo`: the quick start on two photographs (:func:`run_demo`)
  and its counterfactual figure (:func:`run_counterfactual`);
- :mod:`~axiomcam.workflows.diagnosing`: every misclassified image of a labelled data set
  explained, grouped by confusion pair, its evidence located (:func:`diagnose`, with
  :mod:`~axiomcam.workflows.diagnosis` and :mod:`~axiomcam.workflows.diagnosis_page`);
- :mod:`~axiomcam.workflows.auditing`: the data-set bias audit, per class the share of its
  evidence on the background, flagged where it dominates (:func:`audit`, with
  :mod:`~axiomcam.workflows.audit_results` and :mod:`~axiomcam.workflows.audit_page`).

Examples:
    >>> from axiomcam.workflows import parse_targets
    >>> parse_targets("tabby,3", ["cat", "dog", "tabby", "car"]).classes
    (2, 3)
"""

from __future__ import annotations

from .audit_results import AuditRun, ClassAudit
from .auditing import audit
from .classify import (
    HEADS,
    SCORES,
    TargetChoice,
    blank_input,
    check_layer,
    choose_head,
    create_explainer,
    network_inputs,
    parse_targets,
    probabilities_and_logits,
    probabilities_from_logits,
    target_class_names,
    top_classes,
)
from .comparing import CompareRun, compare_files
from .demo import parse_methods, run_counterfactual, run_demo
from .diagnosing import diagnose
from .diagnosis import (
    ClassProbability,
    ConfusionPair,
    DiagnoseRun,
    Evidence,
    Misclassification,
    confusion_pairs,
)
from .explaining import ExplainRun, explain_files, layer_label, method_slug, name_slug
from .image_files import Failure, collect_images, load_images, print_failures

__all__ = [
    "HEADS",
    "SCORES",
    "AuditRun",
    "ClassAudit",
    "ClassProbability",
    "CompareRun",
    "ConfusionPair",
    "DiagnoseRun",
    "Evidence",
    "ExplainRun",
    "Failure",
    "Misclassification",
    "TargetChoice",
    "audit",
    "blank_input",
    "check_layer",
    "choose_head",
    "collect_images",
    "compare_files",
    "confusion_pairs",
    "create_explainer",
    "diagnose",
    "explain_files",
    "layer_label",
    "load_images",
    "method_slug",
    "name_slug",
    "network_inputs",
    "parse_methods",
    "parse_targets",
    "print_failures",
    "probabilities_and_logits",
    "probabilities_from_logits",
    "run_counterfactual",
    "run_demo",
    "target_class_names",
    "top_classes",
]
