"""``axiomcam explain --save-masks``: mask PNGs next to the overlays and a COCO file that
holds the same masks; a bad --mask-threshold is a one-line usage error."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

from axiomcam.cli import main
from axiomcam.data import decode_rle
from axiomcam.images import sample_image


def test_explain_save_masks_writes_pngs_and_a_coco_file(tmp_path):
    sample_image("coffee").resize((200, 150)).save(tmp_path / "coffee.png")
    out = tmp_path / "seeds"
    result = CliRunner().invoke(main, ["explain", str(tmp_path / "coffee.png"), "--target",
                                       "top2", "--save-masks", "--mask-threshold", "otsu",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    results = json.loads((out / "results.json").read_text())
    coco = json.loads((out / "masks.json").read_text())
    assert coco["info"]["threshold"] == {"method": "otsu", "value": None}
    assert coco["images"] == [{"id": 1, "file_name": "coffee.png",
                               "path": str(tmp_path / "coffee.png"), "width": 200,
                               "height": 150}]
    entries = results["images"][0]["maps"]
    assert len(entries) == len(coco["annotations"]) == 2
    for entry, annotation in zip(entries, coco["annotations"], strict=True):
        mask = np.asarray(Image.open(out / entry["mask"])) > 0
        assert mask.shape == (150, 200)
        assert (decode_rle(annotation["segmentation"]) == mask).all()
        assert annotation["category_id"] == entry["class_index"]
        assert annotation["score"] == entry["probability"]
        assert 0 < mask.mean() < 1
        x, y, width, height = annotation["component_boxes"][0]
        assert [x, y, x + width, y + height] == entry["boxes"][0]


def test_a_bad_mask_threshold_is_a_usage_error(tmp_path):
    sample_image("coffee").save(tmp_path / "coffee.png")
    result = CliRunner().invoke(main, ["explain", str(tmp_path / "coffee.png"), "--save-masks",
                                       "--mask-threshold", "fraction:2", "--out",
                                       str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["axiomcam: error: --mask-threshold: a 'fraction' threshold must be a "
                     "number in [0, 1], got 2.0 (see 'axiomcam explain --help')"]
    assert not (tmp_path / "out").exists()


def test_evaluate_masks_for_a_folder_and_not_for_the_composite(tmp_path):
    result = CliRunner().invoke(main, ["evaluate", "--data", "composite:2", "--masks",
                                       str(tmp_path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "the composite benchmark has its own boxes and masks" in result.stderr
    (tmp_path / "photos").mkdir()
    result = CliRunner().invoke(main, ["evaluate", "--data", str(tmp_path / "photos"),
                                       "--masks", str(tmp_path / "none.json"), "--out",
                                       str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "no COCO annotation file at" in result.stderr
