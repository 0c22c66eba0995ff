"""The box_localization group: Quantus's localisation scores against the union of the
label's boxes. By hand on a 4 x 4 map; the same numbers as the mask group's on a mask
equal to the boxes (one shared computation); no row without a box of the label (or with
boxes thinner than a pixel); rows in an evaluate run, its summary and its report."""

from __future__ import annotations

import pytest
import torch
from test_mask_iou_group import square_mask
from test_runner import BLUE, GREEN, Listed, colour_classifier, painted, values

import axiomcam
from axiomcam.data import Sample
from axiomcam.evaluation.groups import box_localization, check_parameters
from axiomcam.evaluation.groups.base import Measurement
from axiomcam.evaluation.inputs import evaluation_inputs
from axiomcam.evaluation.runner import evaluate
from axiomcam.evaluation.store import ResultStore
from axiomcam.metrics import (
    attribution_localisation,
    boxes_to_masks,
    energy_pointing_game,
    mask_auc,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    top_k_intersection,
)

BOX_METRICS = ("box_relevance_rank_accuracy", "box_top_k_intersection",
               "box_attribution_localisation", "box_auc")
#: each box metric and the mask group's metric of the same score
MASK_TWINS = {"box_relevance_rank_accuracy": "relevance_rank_accuracy",
              "box_top_k_intersection": "top_k_intersection",
              "box_attribution_localisation": "attribution_localisation",
              "box_auc": "mask_auc"}


def measured(maps: torch.Tensor, boxes: list[torch.Tensor], **parameters: object
             ) -> dict[tuple[str, str], float]:
    """The box group's rows on ``maps`` and ``boxes``, ``{(image id, metric): value}``
    (only what its compute reads is filled in)."""
    count = len(maps)
    measurement = Measurement(
        group=box_localization.GROUP, method="hand", model=None, target_layer="",
        ids=[f"image-{index}" for index in range(count)], inputs=torch.zeros(count, 3, 4, 4),
        targets=torch.zeros(count, dtype=torch.long),
        predicted=torch.zeros(count, dtype=torch.long), maps=maps, explanation=None,
        probe=None, parameters={**check_parameters({}), **parameters}, seed=0,
        batch_size=None, forward_options={}, results=[], curves=[], details={},
        boxes=boxes)
    box_localization.compute(measurement)
    return {(row.image_id, row.metric): row.value for row in measurement.results}


#: 4 x 4 map of distinct values (ranks 0..15); the box [0, 0, 2, 2] holds 15, 14, 12, 3
HAND_MAP = torch.tensor([[15.0, 14.0, 13.0, 4.0],
                         [12.0, 3.0, 2.0, 1.0],
                         [11.0, 10.0, 9.0, 8.0],
                         [7.0, 6.0, 5.0, 0.0]]) / 15


def test_hand_values_on_a_four_by_four_map_and_one_box():
    torch.manual_seed(0)
    rows = measured(HAND_MAP[None], [torch.tensor([[0.0, 0.0, 2.0, 2.0]])], top_k_pixels=5)
    # the 4 highest pixels are 15, 14, 13, 12: three of them in the box
    assert rows[("image-0", "box_relevance_rank_accuracy")] == pytest.approx(3 / 4)
    # the 5 highest add 11 (outside): still three
    assert rows[("image-0", "box_top_k_intersection")] == pytest.approx(3 / 5)
    # mass 44 / 120 inside, on 4 of the 16 pixels
    assert rows[("image-0", "box_attribution_localisation")] == pytest.approx(44 / 120 * 16 / 4)
    # pairs (inside, outside) won: 15 and 14 beat the 12 outside values, 12 beats all but
    # 13, 3 beats 2, 1 and 0
    assert rows[("image-0", "box_auc")] == pytest.approx((12 + 12 + 11 + 3) / (4 * 12))
    assert len(rows) == len(BOX_METRICS)  # no relevance mass accuracy: energy_pointing_game


def test_k_is_at_most_the_maps_pixels():
    torch.manual_seed(0)
    rows = measured(HAND_MAP[None], [torch.tensor([[0.0, 0.0, 2.0, 2.0]])])  # k = 1000
    assert rows[("image-0", "box_top_k_intersection")] == pytest.approx(4 / 16)


def test_the_scores_are_the_mask_scores_of_the_boxes_mask():
    torch.manual_seed(1)
    maps = torch.rand(3, 12, 12)
    maps[2, :6] = 0.5  # ties across the box's edge
    boxes = [torch.tensor([[1.0, 2.0, 6.0, 5.0], [4.0, 4.0, 9.5, 10.0]]),  # overlapping
             torch.tensor([[0.0, 0.0, 12.0, 3.2]]),
             torch.tensor([[2.6, 3.0, 8.4, 8.0]])]                         # fractional
    rows = measured(maps, boxes, top_k_pixels=30)
    masks = boxes_to_masks(boxes, 12, 12)
    expected = {"box_relevance_rank_accuracy": relevance_rank_accuracy(maps, masks),
                "box_top_k_intersection": top_k_intersection(maps, masks, k=30),
                "box_attribution_localisation": attribution_localisation(maps, masks),
                "box_auc": mask_auc(maps, masks)}
    for metric, tensor in expected.items():
        assert [rows[(f"image-{index}", metric)] for index in range(3)] == pytest.approx(
            tensor.tolist(), abs=1e-6), metric
    # the relevance mass accuracy the group leaves out is the energy pointing game
    assert torch.allclose(relevance_mass_accuracy(maps, masks),
                          energy_pointing_game(maps, boxes))


def test_boxes_holding_no_pixel_centre_give_no_row():
    torch.manual_seed(0)
    # image 1's box lies between the centres 0.5 and 1.5 of its columns: an empty mask
    boxes = [torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([[0.6, 0.0, 1.4, 4.0]])]
    rows = measured(torch.stack([HAND_MAP, HAND_MAP]), boxes)
    assert {image for image, _ in rows} == {"image-0"}
    assert rows == measured(HAND_MAP[None], boxes[:1])
    assert not measured(HAND_MAP[None], boxes[1:])


def test_a_run_gives_the_mask_groups_numbers_on_box_masks_and_reports_them(tmp_path):
    torch.manual_seed(0)
    image = painted((0, 0, 0), [(GREEN, 0, 0, 16, 16), (BLUE, 16, 16, 32, 32)])
    boxes = torch.tensor([[0.0, 0.0, 16.0, 16.0], [16.0, 16.0, 32.0, 32.0]])
    big_green = torch.tensor([[0.0, 0.0, 24.0, 24.0], [16.0, 16.0, 32.0, 32.0]])
    labels = torch.tensor([1, 2])
    green, blue = square_mask(0, 0, 16, 16), square_mask(16, 16, 32, 32)
    samples = [
        # masks equal to the boxes: the two groups measure the same thing
        Sample("masks-are-boxes", image, 1, boxes, labels, masks=torch.stack([green, blue])),
        # the green box larger than the green square (its silhouette)
        Sample("loose-box", image, 1, big_green, labels, masks=torch.stack([green, blue])),
        Sample("no-box-of-label", image, 1, boxes[1:], labels[1:]),
        Sample("unlabelled", image, None, boxes, labels),
    ]
    run = evaluate(colour_classifier(), Listed(samples), "gradcam", out_dir=tmp_path,
                   metrics="box_localization,mask_localization,localization",
                   progress=False, gallery_images=0)
    with ResultStore.open(run.out_dir) as store:
        got = values(store)
    box_rows = {image for image, _, metric in got if metric in BOX_METRICS}
    assert box_rows == {"masks-are-boxes", "loose-box"}
    for metric, twin in MASK_TWINS.items():
        assert got[("masks-are-boxes", "gradcam", metric)] == pytest.approx(
            got[("masks-are-boxes", "gradcam", twin)], abs=1e-9), metric
    assert got[("masks-are-boxes", "gradcam", "energy_pointing_game")] == pytest.approx(
        got[("masks-are-boxes", "gradcam", "relevance_mass_accuracy")], abs=1e-6)
    # the rows are the metric functions of the run's own maps on the boxes (input pixels)
    pretrained = colour_classifier()
    inputs, scaled = evaluation_inputs(pretrained, [image, image], [boxes[:1], big_green[:1]])
    maps = axiomcam.explain(pretrained.model, inputs, "gradcam", targets=torch.tensor([1, 1]),
                            target_layer="1").maps
    masks = boxes_to_masks(scaled, maps.shape[1], maps.shape[2])
    expected = {"box_relevance_rank_accuracy": relevance_rank_accuracy(maps, masks),
                "box_attribution_localisation": attribution_localisation(maps, masks),
                "box_auc": mask_auc(maps, masks)}
    for metric, tensor in expected.items():
        for index, image_id in enumerate(["masks-are-boxes", "loose-box"]):
            assert got[(image_id, "gradcam", metric)] == pytest.approx(
                tensor[index].item(), abs=1e-6), (image_id, metric)
    # the loose box is 9/4 of the square (input pixels: 12 x 12 against 8 x 8): the
    # attribution localisations are the mass shares (energy pointing game, relevance mass
    # accuracy) over the areas
    loose = {metric: got[("loose-box", "gradcam", metric)] for metric in (
        "box_attribution_localisation", "attribution_localisation", "energy_pointing_game",
        "relevance_mass_accuracy")}
    assert loose["box_attribution_localisation"] == pytest.approx(
        loose["attribution_localisation"] * loose["energy_pointing_game"]
        / loose["relevance_mass_accuracy"] * 4 / 9, rel=1e-6)
    assert loose["box_attribution_localisation"] < loose["attribution_localisation"]
    assert got[("loose-box", "gradcam", "box_relevance_rank_accuracy")] < \
        got[("loose-box", "gradcam", "relevance_rank_accuracy")]
    summary = (run.out_dir / "summary.md").read_text()
    report = run.report.read_text(encoding="utf-8")
    for metric in BOX_METRICS:
        assert f"## {metric}\n" in summary
        assert f'id="metric-{metric}"' in report
