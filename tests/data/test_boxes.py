"""Pascal VOC and COCO box files: coordinates converted to ``x0, y0, x1, y1``, errors that
name the file."""

from __future__ import annotations

import pytest
import torch
from disk_files import NAMES, write_coco

from axiomcam.data import read_coco_boxes, read_voc_boxes


def _voc_xml(filename: str, objects: list[tuple[str, int, int, int, int]]) -> str:
    parts = [f"<annotation><folder>VOC</folder><filename>{filename}</filename>"]
    parts.append("<size><width>20</width><height>10</height><depth>3</depth></size>")
    for name, xmin, ymin, xmax, ymax in objects:
        parts.append(
            f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{xmin}</xmin>"
            f"<ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>"
        )
    return "".join(parts) + "</annotation>"


def test_voc_boxes_are_converted_from_one_based_inclusive(tmp_path):
    # VOC xmin=1..xmax=20 is every column of a 20-pixel-wide image: x0 = 0, x1 = 20;
    # xmin=3..xmax=5 is columns 2, 3, 4 (0-based): x0 = 2, x1 = 5
    (tmp_path / "one.xml").write_text(
        _voc_xml("one.jpg", [("tabby", 1, 1, 20, 10), ("moped", 3, 4, 5, 9)])
    )
    (tmp_path / "two.XML").write_text(_voc_xml("two.jpg", []))
    (tmp_path / "readme.txt").write_text("ignored")
    table = read_voc_boxes(tmp_path, NAMES)
    assert sorted(table) == ["one.jpg", "two.jpg"]
    boxes, labels = table["one.jpg"]
    assert boxes.dtype == torch.float32 and labels.dtype == torch.long
    assert boxes.tolist() == [[0.0, 0.0, 20.0, 10.0], [2.0, 3.0, 5.0, 9.0]]
    assert labels.tolist() == [1, 4]
    assert table["two.jpg"][0].shape == (0, 4)
    # a single file works too
    assert read_voc_boxes(tmp_path / "one.xml", NAMES)["one.jpg"][1].tolist() == [1, 4]


def test_voc_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text(_voc_xml("a.jpg", [("tabby", 1, 1, 5, 5)]).replace("<ymax>5</ymax>", ""))
    with pytest.raises(ValueError, match=r"bad\.xml, object 0: missing <ymax>"):
        read_voc_boxes(bad, NAMES)
    bad.write_text(_voc_xml("a.jpg", [("tabbie", 1, 1, 5, 5)]))
    with pytest.raises(ValueError, match=r"'tabbie'.*bad\.xml.*'tabby'"):
        read_voc_boxes(bad, NAMES)
    bad.write_text("<annotation><filename>a.jpg")
    with pytest.raises(ValueError, match="not a readable XML"):
        read_voc_boxes(bad, NAMES)
    with pytest.raises(FileNotFoundError):
        read_voc_boxes(tmp_path / "absent", NAMES)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"no \.xml"):
        read_voc_boxes(empty, NAMES)


def test_coco_boxes_convert_xywh(tmp_path):
    write_coco(tmp_path / "gt.json")
    table = read_coco_boxes(tmp_path / "gt.json", NAMES)
    assert sorted(table) == ["a.png", "b.png"]
    boxes, labels = table["a.png"]
    assert boxes.tolist() == [[2.0, 3.0, 6.5, 8.0], [0.0, 0.0, 20.0, 10.0]]
    assert labels.tolist() == [2, 3]
    assert table["b.png"][0].shape == (0, 4) and table["b.png"][1].shape == (0,)


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"annotations": [{"image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1]}]}, "99"),
        ({"annotations": [{"image_id": 10, "category_id": 7, "bbox": [0, 0, 1, 1]}]}, "7"),
        ({"annotations": [{"image_id": 10, "category_id": 1, "bbox": [0, 0, 1]}]}, "bbox"),
        ({"categories": [{"id": 1, "name": "expresso"}]}, r"'expresso'.*'espresso'"),
        ({"images": [{"id": 10}]}, r"images\[0\]: missing 'file_name'"),
    ],
)
def test_coco_errors(tmp_path, changes, pattern):
    write_coco(tmp_path / "gt.json", **changes)
    with pytest.raises(ValueError, match=pattern):
        read_coco_boxes(tmp_path / "gt.json", NAMES)


def test_coco_not_json_and_missing(tmp_path):
    (tmp_path / "gt.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a JSON"):
        read_coco_boxes(tmp_path / "gt.json", NAMES)
    with pytest.raises(FileNotFoundError):
        read_coco_boxes(tmp_path / "absent.json", NAMES)
