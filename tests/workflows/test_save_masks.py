"""``explain --save-masks``: each map's PNG mask is the map (upsampled to the image) cut at
the threshold, and masks.json is a COCO file whose RLE, area and boxes are those masks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.measure import label, regionprops
from torch import nn

import axiomcam
from axiomcam.data import decode_rle
from axiomcam.evaluation import evaluation_inputs
from axiomcam.models import PretrainedModel
from axiomcam.workflows import TargetChoice, collect_images, explain_files
from axiomcam.workflows.masks import parse_mask_threshold

CLASSES = ["cat", "dog", "car"]


def tiny_model() -> PretrainedModel:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(6, 8, 3, padding=1, stride=2), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, len(CLASSES)))
    return PretrainedModel("tiny", model.eval(), None, None, CLASSES, "3", 32,
                           mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


@pytest.mark.parametrize(("threshold", "cut"), [
    (("fraction", 0.5), lambda m: (m >= 0.5 * m.max()) & (m > 0)),
    (("percentile", 70.0), lambda m: (m >= np.percentile(m, 70)) & (m > 0)),
])
def test_masks_and_coco_file_hold_the_cut_maps(tmp_path, threshold, cut):
    pretrained = tiny_model()
    generator = np.random.default_rng(0)
    images = {"a": Image.fromarray(generator.integers(0, 256, (30, 45, 3), dtype=np.uint8)),
              "b": Image.fromarray(generator.integers(0, 256, (50, 20, 3), dtype=np.uint8))}
    (tmp_path / "in").mkdir()
    for name, image in images.items():
        image.save(tmp_path / "in" / f"{name}.png")
    paths, _ = collect_images([tmp_path / "in"])
    run = explain_files(pretrained, paths, "gradcam", tmp_path / "out",
                        targets=TargetChoice(top=2), masks=threshold)

    inputs, _ = evaluation_inputs(pretrained, list(images.values()), [torch.zeros(0, 4)] * 2)
    top2 = pretrained.model(inputs).topk(2, dim=1).indices
    expected = axiomcam.explain(pretrained.model, inputs, "gradcam", "3", targets=top2)
    results = json.loads(run.results_file.read_text())
    coco = json.loads((tmp_path / "out" / "masks.json").read_text())
    assert coco["method"] == "gradcam" and coco["layer"] == "3"
    assert [(i["file_name"], i["width"], i["height"]) for i in coco["images"]] == [
        ("a.png", 45, 30), ("b.png", 20, 50)]
    annotations = iter(coco["annotations"])
    for row, (name, record) in enumerate(zip("ab", results["images"], strict=True)):
        width, height = images[name].size
        for column, entry in enumerate(record["maps"]):
            upsampled = torch.nn.functional.interpolate(
                expected.maps[row, column][None, None], size=(height, width),
                mode="bilinear", align_corners=False)[0, 0].clamp(0, 1).double().numpy()
            wanted = cut(upsampled)
            written = np.asarray(Image.open(tmp_path / "out" / entry["mask"])) > 0
            assert written.shape == (height, width)
            assert (written == wanted).all()
            assert 0 < wanted.sum() < wanted.size           # a real cut, not all or nothing
            annotation = next(annotations)
            assert annotation["image_id"] == row + 1
            assert annotation["category_id"] == int(top2[row, column])
            assert (decode_rle(annotation["segmentation"]) == wanted).all()
            assert annotation["area"] == int(wanted.sum())
            rows, columns = np.nonzero(wanted)
            assert annotation["bbox"] == [columns.min(), rows.min(),
                                          columns.max() + 1 - columns.min(),
                                          rows.max() + 1 - rows.min()]
            regions = sorted(regionprops(label(wanted, connectivity=2)), key=lambda r: -r.area)
            assert entry["boxes"] == [[r.bbox[1], r.bbox[0], r.bbox[3], r.bbox[2]]
                                      for r in regions]
    assert next(annotations, None) is None
    assert {c["id"] for c in coco["categories"]} == set(top2.flatten().tolist())


def test_mask_thresholds_are_parsed_and_checked():
    assert parse_mask_threshold("fraction") == ("fraction", 0.5)
    assert parse_mask_threshold("fraction:0.3") == ("fraction", 0.3)
    with pytest.raises(ValueError, match="'x' is not a number"):
        parse_mask_threshold("percentile:x")
    with pytest.raises(ValueError, match="unknown threshold method 'mean'"):
        parse_mask_threshold("mean")
    with pytest.raises(ValueError, match="takes no value"):
        parse_mask_threshold("otsu:3")
