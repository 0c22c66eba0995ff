"""The ``mask_localization`` group: Quantus's localisation metrics against the true mask
of the explained class (the composite benchmark's silhouettes; ``--masks`` for a folder or
CSV), on images with a known label and a true mask of it.

The same scores against the label's boxes are one call away
(:func:`axiomcam.metrics.boxes_to_masks`); the relevance mass accuracy of the boxes is
the ``localization`` group's ``energy_pointing_game``.
"""

from __future__ import annotations

from ..costs import Passes
from .base import Measurement, Metric, MetricGroup, Needs, Parameter, check_count

#: the ``k`` of the top-k intersection, in pixels (Quantus's default; at most the map's)
TOP_K = Parameter("top_k_pixels", 1000, check_count, option=False)


def compute(measurement: Measurement) -> None:
    """The five scores of each map against the union of its label's true masks."""
    import torch

    from ...metrics import (
        attribution_localisation,
        mask_auc,
        relevance_mass_accuracy,
        relevance_rank_accuracy,
        top_k_intersection,
    )

    maps = measurement.maps
    truth = torch.stack(measurement.masks).to(maps.device)
    k = min(measurement.parameters[TOP_K.name], maps.shape[1] * maps.shape[2])
    measurement.add("relevance_mass_accuracy", relevance_mass_accuracy(maps, truth))
    measurement.add("relevance_rank_accuracy", relevance_rank_accuracy(maps, truth))
    measurement.add("top_k_intersection", top_k_intersection(maps, truth, k=k))
    measurement.add("attribution_localisation", attribution_localisation(maps, truth))
    measurement.add("mask_auc", mask_auc(maps, truth))


GROUP = MetricGroup(
    name="mask_localization",
    title="mask localisation",
    metrics=(
        Metric("relevance_mass_accuracy",
               "share of the map's mass on the true mask of the class (Arras et al. 2022)",
               "higher"),
        Metric("relevance_rank_accuracy",
               "share of the map's |mask| highest pixels on the true mask (Arras et al. 2022)",
               "higher"),
        Metric("top_k_intersection",
               f"share of the map's {TOP_K.default} highest pixels on the true mask "
               "(Theiner et al. 2022)", "higher"),
        Metric("attribution_localisation",
               "mass share on the true mask / the mask's share of the image, 1 = chance "
               "(Kohlbrenner et al. 2020, weighted)", "higher"),
        Metric("mask_auc",
               "ROC AUC of the map's values as scores of the true mask's pixels, 0.5 = "
               "chance (Fawcett 2006)", "higher"),
    ),
    compute=compute,
    cost="no forward pass: arithmetic on the maps",
    passes=lambda parameters: Passes(),
    needs=Needs(label_masks=True),
    parameters=(TOP_K,),
    unavailable="no image has a label and a true mask of that class (the composite benchmark "
                "has them; a folder or CSV needs --masks FILE|FOLDER)",
)
