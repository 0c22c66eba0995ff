"""The ``mask_localization`` group: Quantus's localisation metrics against the true mask
of the explained class (the composite benchmark's silhouettes; ``--masks`` for a folder or
CSV), on images with a known label and a true mask of it.

The same scores against the label's boxes are the ``box_localization`` group's (which
shares :func:`add_localisation_scores`); the relevance mass accuracy of the boxes is the
``localization`` group's ``energy_pointing_game``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ...support import check_positive_int
from ..costs import Passes
from .base import Measurement, Metric, MetricGroup, Needs, Parameter

if TYPE_CHECKING:
    import torch

#: the ``k`` of the top-k intersection, in pixels (Quantus's default; at most the map's)
TOP_K = Parameter("top_k_pixels", 1000, check_positive_int, option=False)


#: the mask group's metric of each score kind of :func:`add_localisation_scores`
MASK_METRICS = {"relevance_mass_accuracy": "relevance_mass_accuracy",
                "relevance_rank_accuracy": "relevance_rank_accuracy",
                "top_k_intersection": "top_k_intersection",
                "attribution_localisation": "attribution_localisation",
                "auc": "mask_auc"}


def add_localisation_scores(measurement: Measurement, truth: torch.Tensor,
                            metrics: Mapping[str, str],
                            images: list[int] | None = None) -> None:
    """Add the scores of ``measurement``'s maps against the truth masks ``truth``: for each
    score kind of ``metrics`` (keys of :data:`MASK_METRICS`), its values as the metric it
    names. The box and mask groups share it; ``k`` of the top-k intersection is
    ``top_k_pixels``, at most the map's pixels.

    Args:
        measurement: one method's maps on one batch, where the rows go.
        truth: ``(n, S, S)`` bool, one non-empty mask per image of ``images``.
        metrics: ``{score kind: metric name}``, the scores to compute and their names.
        images: the indices of the measured images the masks are of (``None``: all).
    """
    from ...metrics import (
        attribution_localisation,
        mask_auc,
        relevance_mass_accuracy,
        relevance_rank_accuracy,
        top_k_intersection,
    )

    maps = measurement.maps if images is None else measurement.maps[images]
    truth = truth.to(maps.device)
    k = min(measurement.parameters[TOP_K.name], maps.shape[1] * maps.shape[2])
    scores = {"relevance_mass_accuracy": relevance_mass_accuracy,
              "relevance_rank_accuracy": relevance_rank_accuracy,
              "top_k_intersection": lambda m, t: top_k_intersection(m, t, k=k),
              "attribution_localisation": attribution_localisation,
              "auc": mask_auc}
    for kind, metric in metrics.items():
        measurement.add(metric, scores[kind](maps, truth), images=images)


def compute(measurement: Measurement) -> None:
    """The five scores of each map against the union of its label's true masks."""
    import torch

    add_localisation_scores(measurement, torch.stack(measurement.masks), MASK_METRICS)


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
