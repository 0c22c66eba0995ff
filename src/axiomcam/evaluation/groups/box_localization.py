"""The ``box_localization`` group: Quantus's localisation metrics against the union of the
label's boxes (a mask in input pixels, :func:`axiomcam.metrics.boxes_to_masks`: a pixel is
inside when its centre is), on images with a known label and a box of that class, the
most common ground truth (ILSVRC-style folders and CSVs with ``--boxes``).

The scores are the ``mask_localization`` group's, computed by the same function
(:func:`~axiomcam.evaluation.groups.mask_localization.add_localisation_scores`) on the box
mask instead of the silhouette; ``k`` of the top-k intersection is that group's
``top_k_pixels``. There is no relevance mass accuracy of the boxes: it is exactly the
``localization`` group's ``energy_pointing_game`` (the map's mass share inside the boxes).
An image whose boxes hold no pixel centre (boxes thinner than a pixel) has an empty mask,
on which the scores are undefined: it gets no row.
"""

from __future__ import annotations

from ..costs import Passes
from .base import Measurement, Metric, MetricGroup, Needs
from .mask_localization import TOP_K, add_localisation_scores

#: the group's metric of each score kind of ``add_localisation_scores``
BOX_METRICS = {"relevance_rank_accuracy": "box_relevance_rank_accuracy",
               "top_k_intersection": "box_top_k_intersection",
               "attribution_localisation": "box_attribution_localisation",
               "auc": "box_auc"}


def compute(measurement: Measurement) -> None:
    """The four scores of each map against the union of its label's boxes."""
    from ...metrics import boxes_to_masks

    maps = measurement.maps
    truth = boxes_to_masks(measurement.boxes, maps.shape[1], maps.shape[2], maps.device)
    images = truth.flatten(1).any(dim=1).nonzero().flatten().tolist()
    if images:
        add_localisation_scores(measurement, truth[images], BOX_METRICS, images=images)


GROUP = MetricGroup(
    name="box_localization",
    title="box localisation",
    metrics=(
        Metric("box_relevance_rank_accuracy",
               "share of the map's |boxes| highest pixels inside the boxes of the class "
               "(Arras et al. 2022; its relevance mass accuracy is energy_pointing_game)",
               "higher"),
        Metric("box_top_k_intersection",
               f"share of the map's {TOP_K.default} highest pixels inside the boxes of the "
               "class (Theiner et al. 2022)", "higher"),
        Metric("box_attribution_localisation",
               "mass share inside the boxes of the class / their share of the image, 1 = "
               "chance (Kohlbrenner et al. 2020, weighted)", "higher"),
        Metric("box_auc",
               "ROC AUC of the map's values as scores of the pixels inside the boxes of the "
               "class, 0.5 = chance (Fawcett 2006)", "higher"),
    ),
    compute=compute,
    cost="no forward pass: arithmetic on the maps",
    passes=lambda parameters: Passes(),
    needs=Needs(label_boxes=True),
    unavailable="no image has a label and a box of that class (a folder or CSV needs "
                "--boxes voc|coco FILE)",
)
