"""Measures of how good an explanation is, per image, in torch.

- :mod:`~axiomcam.metrics.axioms`: XGrad-CAM's conservation and sensitivity axioms as
  errors, with the network's bias share (Fu et al., BMVC 2020);
- :mod:`~axiomcam.metrics.faithfulness`: Average Drop / Increase in Confidence
  (Chattopadhay et al., WACV 2018), deletion / insertion (Petsiuk et al., BMVC 2018),
  top-p% removal drop;
- :mod:`~axiomcam.metrics.correlation`: faithfulness correlation (Bhatt et al., IJCAI
  2020), monotonicity correlation (Nguyen & Martinez, 2020), IROF (Rieger & Hansen, 2020);
- :mod:`~axiomcam.metrics.removal`: ROAD, removal by noisy linear imputation (Rong et al.,
  ICML 2022);
- :mod:`~axiomcam.metrics.localization`: the ILSVRC box protocol, the pointing game and
  its energy form, class discrimination on two-object images, where a map's mass and peak
  lie (``evidence_location``);
- :mod:`~axiomcam.metrics.regions`: maps cut into masks (a fraction of the maximum, a
  percentile, Otsu), masks into boxes, mask IoU (weakly supervised segmentation seeds);
- :mod:`~axiomcam.metrics.sanity`: cascading randomisation (Adebayo et al., NeurIPS 2018);
- :mod:`~axiomcam.metrics.complexity`: sparseness (Gini), complexity (entropy), effective
  complexity; :mod:`~axiomcam.metrics.random_logit`: the random-logit test (SSIM);
  :mod:`~axiomcam.metrics.mask_scores`: relevance mass / rank accuracy, top-k intersection,
  attribution localisation, ROC AUC against a true mask (Quantus 0.6's definitions);
- :mod:`~axiomcam.metrics.common`: the checks and batched forward passes they share.

Every function takes a batch and returns per-image values (``(B,)`` tensors or ``(B, S)``
curves); data-set means, medians and bootstrap intervals are taken over those values by
:func:`axiomcam.evaluation.evaluate`, which stores every per-image value, so a data-set
figure can always be traced to its images.  The formulas, sources and the definitions of
degenerate cases are in each function's docstring and in ``docs/evaluation.md``.

Examples:
    >>> import torch
    >>> from axiomcam.metrics import energy_pointing_game
    >>> maps = torch.zeros(1, 4, 4)
    >>> maps[0, :2, :2] = 1.0                # all the mass in the top-left 2x2 block
    >>> energy_pointing_game(maps, [torch.tensor([[0.0, 0.0, 2.0, 4.0]])])
    tensor([1.])
"""

from __future__ import annotations

from .axioms import (
    AxiomErrors,
    AxiomProbe,
    LayerProbe,
    axiom_errors,
    conservation_error,
    measure_axioms,
    probe_layer,
    sensitivity_correlation,
    sensitivity_error,
)
from .complexity import complexity, effective_complexity, sparseness
from .correlation import (
    IrofResult,
    faithfulness_correlation,
    irof,
    monotonicity_correlation,
    pearson_correlation,
    superpixels,
)
from .faithfulness import (
    ConfidenceChange,
    DeletionInsertion,
    confidence_change,
    deletion_insertion,
    top_removal_drop,
)
from .localization import (
    EVIDENCE_REGIONS,
    BoxLocalization,
    ClassDiscrimination,
    EvidenceLocation,
    box_localization,
    boxes_to_masks,
    class_discrimination,
    energy_pointing_game,
    evidence_location,
    map_to_box,
    pointing_game,
)
from .mask_scores import (
    attribution_localisation,
    mask_auc,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    top_k_intersection,
)
from .random_logit import RandomLogit, random_logit, random_other_classes, structural_similarity
from .regions import (
    THRESHOLD_METHODS,
    check_threshold,
    map_to_mask,
    mask_iou,
    mask_thresholds,
    mask_to_boxes,
    otsu_thresholds,
)
from .removal import RoadResult, check_percentages, noisy_linear_imputation, road
from .sanity import SanityCheck, cascading_randomization, spearman_correlation

__all__ = [
    "EVIDENCE_REGIONS",
    "THRESHOLD_METHODS",
    "AxiomErrors",
    "AxiomProbe",
    "BoxLocalization",
    "ClassDiscrimination",
    "ConfidenceChange",
    "DeletionInsertion",
    "EvidenceLocation",
    "IrofResult",
    "LayerProbe",
    "RandomLogit",
    "RoadResult",
    "SanityCheck",
    "attribution_localisation",
    "axiom_errors",
    "box_localization",
    "boxes_to_masks",
    "cascading_randomization",
    "check_percentages",
    "check_threshold",
    "class_discrimination",
    "complexity",
    "confidence_change",
    "conservation_error",
    "deletion_insertion",
    "effective_complexity",
    "energy_pointing_game",
    "evidence_location",
    "faithfulness_correlation",
    "irof",
    "map_to_box",
    "map_to_mask",
    "mask_auc",
    "mask_iou",
    "mask_thresholds",
    "mask_to_boxes",
    "measure_axioms",
    "monotonicity_correlation",
    "noisy_linear_imputation",
    "otsu_thresholds",
    "pearson_correlation",
    "pointing_game",
    "probe_layer",
    "random_logit",
    "random_other_classes",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "road",
    "sensitivity_correlation",
    "sensitivity_error",
    "sparseness",
    "spearman_correlation",
    "structural_similarity",
    "superpixels",
    "top_k_intersection",
    "top_removal_drop",
]
