"""``open_dataset``: folders, CSV lists with boxes, the composite benchmark, and bad specs
that show the valid ones."""

from __future__ import annotations

import pytest
from disk_files import NAMES, save_picture, write_coco
from torchvision.models import MobileNet_V2_Weights

from axiomcam.data import CompositeBenchmark, CsvImages, ImageFolder, open_dataset


def test_open_dataset_folder_csv_with_boxes(tmp_path):
    save_picture(tmp_path / "images" / "tabby" / "a.png", width=20, height=10)
    write_coco(tmp_path / "gt.json")
    folder = open_dataset(
        str(tmp_path / "images"), NAMES, boxes_format="coco", boxes_file=tmp_path / "gt.json"
    )
    assert isinstance(folder, ImageFolder)
    (sample,) = list(folder)
    assert sample.label == 1 and sample.box_labels.tolist() == [2, 3]
    assert "coco" in folder.description
    (tmp_path / "list.csv").write_text("path,label\nimages/tabby/a.png,tabby\n")
    listed = open_dataset(str(tmp_path / "list.csv"), NAMES)
    assert isinstance(listed, CsvImages) and [s.label for s in listed] == [1]


def test_open_dataset_composite_specs():
    names = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
    small = open_dataset("composite:7", names, seed=3)
    assert isinstance(small, CompositeBenchmark)
    assert (len(small), small.seed, small.description) == (7, 3, "composite:7 (seed 3)")
    assert len(open_dataset("composite", names)) == 200


@pytest.mark.parametrize("spec", ["composite:0", "composite:-5", "composite:many", "imagenet:val"])
def test_open_dataset_bad_specs_show_valid_ones(spec):
    with pytest.raises(ValueError, match="composite:200"):
        open_dataset(spec, NAMES)


def test_open_dataset_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="together"):
        open_dataset(str(tmp_path), NAMES, boxes_format="voc")
    with pytest.raises(ValueError, match="unknown boxes_format"):
        open_dataset(str(tmp_path), NAMES, boxes_format="yolo", boxes_file="x.txt")
    with pytest.raises(FileNotFoundError, match="absent"):
        open_dataset(str(tmp_path / "absent"), NAMES)
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"not a \.csv"):
        open_dataset(str(tmp_path / "x.txt"), NAMES)
