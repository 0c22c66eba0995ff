"""Readers of image folders, CSV lists and VOC/COCO box files; class-name matching;
bad files reported and skipped; open_dataset."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import MobileNet_V2_Weights

from axiomcam.data import (
    CompositeBenchmark,
    CsvImages,
    ImageFolder,
    class_index,
    open_dataset,
    read_coco_boxes,
    read_voc_boxes,
)

# a small class list with the traps of the real one: spaces, capitals, a duplicate name
NAMES = ["goldfish", "tabby", "Egyptian cat", "espresso", "moped", "cardigan", "cardigan"]


def _pixels(width: int, height: int, shift: int = 0) -> np.ndarray:
    """A deterministic 8-bit RGB picture, different for each (size, shift)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack(
        [(x * 17 + shift) % 256, (y * 29 + shift) % 256, (x * y + 3 * shift) % 256], axis=-1
    ).astype(np.uint8)


def _save(path, width: int = 8, height: int = 6, shift: int = 0) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = _pixels(width, height, shift)
    Image.fromarray(pixels).save(path)
    return pixels


def _no_boxes(sample) -> bool:
    return sample.boxes.shape == (0, 4) and sample.box_labels.shape == (0,)


# ------------------------------------------------------------------------- class_index


def test_class_index_matches_names_loosely_and_reads_indices():
    assert class_index("Egyptian cat", NAMES) == 2
    assert class_index("egyptian_cat", NAMES) == 2
    assert class_index("  EGYPTIAN   Cat ", NAMES) == 2
    assert class_index("3", NAMES) == 3
    assert class_index(4, NAMES) == 4


def test_class_index_rejects_unknown_out_of_range_and_ambiguous():
    with pytest.raises(ValueError, match=r"'egyptain cat'.*labels\.csv.*'Egyptian cat'"):
        class_index("egyptain cat", NAMES, "labels.csv")
    with pytest.raises(ValueError, match=r"out of range.*7 classes"):
        class_index("7", NAMES)
    with pytest.raises(ValueError, match=r"'cardigan'.*2 classes.*5.*6.*use the index"):
        class_index("cardigan", NAMES)
    with pytest.raises(TypeError):
        class_index(2.0, NAMES)


# ------------------------------------------------------------------------- ImageFolder


def test_image_folder_reads_class_folders_of_several_formats(tmp_path):
    expected = {
        "tabby/b.png": (_save(tmp_path / "tabby" / "b.png", 8, 6, 1), 1),
        "tabby/a.BMP": (_save(tmp_path / "tabby" / "a.BMP", 5, 7, 2), 1),
        "Egyptian_cat/c.tif": (_save(tmp_path / "Egyptian_cat" / "c.tif", 9, 4, 3), 2),
        # a class given by its index, an image one level down (lossless WebP)
        "3/deep/d.webp": (_pixels(6, 6), 3),
        "3/e.jpg": (None, 3),
    }
    (tmp_path / "3" / "deep").mkdir(parents=True)
    Image.fromarray(_pixels(6, 6)).save(tmp_path / "3" / "deep" / "d.webp", lossless=True)
    Image.fromarray(_pixels(10, 8)).save(tmp_path / "3" / "e.jpg", quality=95)
    (tmp_path / "tabby" / "notes.txt").write_text("not an image, not listed")
    (tmp_path / "annotations").mkdir()  # a folder with no image is not a class
    (tmp_path / "annotations" / "x.xml").write_text("<annotation/>")

    dataset = ImageFolder(tmp_path, NAMES)
    samples = list(dataset)

    assert [s.id for s in samples] == sorted(expected)
    assert len(dataset) == 5 and dataset.problems == []
    for sample in samples:
        pixels, label = expected[sample.id]
        assert sample.label == label
        assert sample.image.mode == "RGB"
        assert sample.path == str(tmp_path / sample.id)
        assert _no_boxes(sample)
        if pixels is not None:  # the lossless ones come back exactly
            assert np.array_equal(np.asarray(sample.image), pixels)
    jpeg = next(s for s in samples if s.id == "3/e.jpg")
    assert jpeg.image.size == (10, 8)
    assert np.abs(np.asarray(jpeg.image, float) - _pixels(10, 8)).mean() < 12


def test_flat_folder_has_no_labels_and_a_fixed_order(tmp_path):
    for name in ["b.jpeg", "a.png", "c.tiff"]:
        _save(tmp_path / name)
    dataset = ImageFolder(tmp_path, NAMES)
    assert [(s.id, s.label) for s in dataset] == [
        ("a.png", None),
        ("b.jpeg", None),
        ("c.tiff", None),
    ]
    assert dataset.description == str(tmp_path)


def test_unknown_class_folder_is_an_error_at_open_time_with_near_matches(tmp_path):
    _save(tmp_path / "tabby" / "a.png")
    _save(tmp_path / "Egyptain_cat" / "b.png")
    with pytest.raises(ValueError) as caught:
        ImageFolder(tmp_path, NAMES)
    message = str(caught.value)
    assert "'Egyptain_cat'" in message and str(tmp_path / "Egyptain_cat") in message
    assert "'Egyptian cat'" in message


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path)):
        ImageFolder(tmp_path, NAMES)
    (tmp_path / "readme.txt").write_text("no images here")
    (tmp_path / "tabby").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        ImageFolder(tmp_path, NAMES)
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ImageFolder(missing, NAMES)


def test_corrupt_and_fake_images_are_reported_and_skipped(tmp_path, caplog):
    _save(tmp_path / "tabby" / "good1.png")
    good = _save(tmp_path / "tabby" / "good2.png", shift=5)
    whole = (tmp_path / "tabby" / "good1.png").read_bytes()
    (tmp_path / "tabby" / "broken.png").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "tabby" / "text.png").write_text("this is a text file, not a PNG")

    dataset = ImageFolder(tmp_path, NAMES)
    with caplog.at_level(logging.WARNING, logger="axiomcam"):
        samples = list(dataset)

    assert len(dataset) == 4
    assert [s.id for s in samples] == ["tabby/good1.png", "tabby/good2.png"]
    assert np.array_equal(np.asarray(samples[1].image), good)
    paths = [problem.path for problem in dataset.problems]
    assert paths == [str(tmp_path / "tabby" / "broken.png"), str(tmp_path / "tabby" / "text.png")]
    assert "corrupt or truncated" in dataset.problems[0].reason
    assert "not an image" in dataset.problems[1].reason
    assert sum("broken.png" in record.getMessage() for record in caplog.records) == 1
    list(dataset)  # a second pass finds the same problems: recorded once
    assert len(dataset.problems) == 2


def test_a_box_outside_its_image_is_a_problem_and_only_that_image_is_skipped(tmp_path):
    _save(tmp_path / "a.png", width=8, height=6)
    _save(tmp_path / "b.png", width=8, height=6)
    _save(tmp_path / "c.png", width=8, height=6)
    labels = torch.tensor([1, 3])
    boxes = {
        # inside: touching the right and bottom edges is allowed (x1 = width, y1 = height)
        "a.png": (torch.tensor([[0.0, 0.0, 8.0, 6.0], [2.0, 1.0, 3.0, 2.0]]), labels),
        "b.png": (torch.tensor([[0.0, 0.0, 2.0, 2.0], [4.0, 2.0, 8.5, 6.0]]), labels),
        "c.png": (torch.tensor([[3.0, 1.0, 3.0, 4.0]]), torch.tensor([1])),  # empty
    }
    dataset = ImageFolder(tmp_path, NAMES, boxes)
    samples = list(dataset)
    assert [s.id for s in samples] == ["a.png"]
    assert torch.equal(samples[0].boxes, boxes["a.png"][0])
    assert torch.equal(samples[0].box_labels, labels)
    assert [p.path for p in dataset.problems] == [str(tmp_path / "b.png"), str(tmp_path / "c.png")]
    assert "box 1" in dataset.problems[0].reason and "8x6" in dataset.problems[0].reason
    assert "box 0" in dataset.problems[1].reason and "empty" in dataset.problems[1].reason


def test_boxes_attach_by_relative_path_then_base_name(tmp_path):
    _save(tmp_path / "tabby" / "a.png")
    _save(tmp_path / "moped" / "b.png")
    _save(tmp_path / "moped" / "c.png")
    one = (torch.tensor([[1.0, 1.0, 4.0, 5.0]]), torch.tensor([1]))
    two = (torch.tensor([[0.0, 0.0, 2.0, 3.0]]), torch.tensor([4]))
    samples = {s.id: s for s in ImageFolder(tmp_path, NAMES, {"tabby/a.png": one, "b.png": two})}
    assert torch.equal(samples["tabby/a.png"].boxes, one[0])
    assert torch.equal(samples["moped/b.png"].box_labels, two[1])
    assert _no_boxes(samples["moped/c.png"])


def test_a_base_name_key_matching_two_images_is_an_error(tmp_path):
    _save(tmp_path / "tabby" / "a.png")
    _save(tmp_path / "moped" / "a.png")
    entry = (torch.tensor([[1.0, 1.0, 4.0, 5.0]]), torch.tensor([1]))
    with pytest.raises(ValueError, match=r"'a.png'.*'moped/a.png'.*'tabby/a.png'"):
        ImageFolder(tmp_path, NAMES, {"a.png": entry})


# --------------------------------------------------------------------------------- CSV


def test_csv_lists_images_in_file_order_with_labels(tmp_path):
    first = _save(tmp_path / "images" / "x.png", shift=1)
    _save(tmp_path / "images" / "y.jpg")
    elsewhere = _save(tmp_path / "other" / "z.bmp", shift=2)
    csv_file = tmp_path / "lists" / "list.csv"
    csv_file.parent.mkdir()
    csv_file.write_text(
        "path,label,comment\n"
        "../images/x.png,Egyptian_cat,first\n"
        "\n"
        f"{tmp_path / 'other' / 'z.bmp'},,absolute path and no label\n"
        "../images/y.jpg,4,by index\n",
        encoding="utf-8-sig",  # a byte-order mark, as spreadsheet programs write
    )
    dataset = CsvImages(csv_file, NAMES)
    samples = list(dataset)
    assert [s.label for s in samples] == [2, None, 4]
    assert samples[0].id == "../images/x.png"
    assert np.array_equal(np.asarray(samples[0].image), first)
    assert np.array_equal(np.asarray(samples[1].image), elsewhere)
    assert len(dataset) == 3 and dataset.description == str(csv_file)


@pytest.mark.parametrize(
    ("rows", "pattern"),
    [
        ("path,label\na.png,tabby\nb.png\n", "line 3"),  # too few fields
        ("path,label\na.png,tabby\n\n ,tabby\n", "line 4: the path is empty"),
        ("path,label\na.png,tabby\na.png,moped\n", r"line 3.*already listed on line 2"),
        ("path,label\na.png,tabbby\n", r"'tabbby'.*line 2.*'tabby'"),
        ("file,label\na.png,tabby\n", r"line 1.*header"),
        ("path,label\n", "no images"),
    ],
)
def test_malformed_csv_rows_name_the_line(tmp_path, rows, pattern):
    csv_file = tmp_path / "list.csv"
    csv_file.write_text(rows)
    with pytest.raises(ValueError, match=pattern):
        CsvImages(csv_file, NAMES)


def test_csv_missing_file_and_missing_image(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent\.csv"):
        CsvImages(tmp_path / "absent.csv", NAMES)
    _save(tmp_path / "here.png")
    (tmp_path / "list.csv").write_text("path,label\nhere.png,tabby\ngone.png,tabby\n")
    dataset = CsvImages(tmp_path / "list.csv", NAMES)
    assert [s.id for s in dataset] == ["here.png"]
    assert dataset.problems[0].path == str(tmp_path / "gone.png")
    assert "FileNotFoundError" in dataset.problems[0].reason


# --------------------------------------------------------------------------- VOC, COCO


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


def _coco(path, **changes) -> None:
    document = {
        "images": [
            {"id": 10, "file_name": "a.png", "width": 20, "height": 10},
            {"id": 11, "file_name": "b.png", "width": 20, "height": 10},
        ],
        # category ids are not the model's indices: names decide
        "categories": [{"id": 1, "name": "espresso"}, {"id": 2, "name": "Egyptian_cat"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 2, "bbox": [2, 3, 4.5, 5]},
            {"id": 2, "image_id": 10, "category_id": 1, "bbox": [0, 0, 20, 10]},
        ],
    }
    document.update(changes)
    path.write_text(json.dumps(document))


def test_coco_boxes_convert_xywh(tmp_path):
    _coco(tmp_path / "gt.json")
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
    _coco(tmp_path / "gt.json", **changes)
    with pytest.raises(ValueError, match=pattern):
        read_coco_boxes(tmp_path / "gt.json", NAMES)


def test_coco_not_json_and_missing(tmp_path):
    (tmp_path / "gt.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a JSON"):
        read_coco_boxes(tmp_path / "gt.json", NAMES)
    with pytest.raises(FileNotFoundError):
        read_coco_boxes(tmp_path / "absent.json", NAMES)


# ------------------------------------------------------------------------ open_dataset


def test_open_dataset_folder_csv_with_boxes(tmp_path):
    _save(tmp_path / "images" / "tabby" / "a.png", width=20, height=10)
    _coco(tmp_path / "gt.json")
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
