"""Image folders and CSV lists of images: labels, a fixed order, boxes attached by file
name, bad files reported and skipped, clear errors at open time."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from disk_files import NAMES, picture, save_picture
from PIL import Image

from axiomcam.data import CsvImages, ImageFolder


def _no_boxes(sample) -> bool:
    return sample.boxes.shape == (0, 4) and sample.box_labels.shape == (0,)


# ------------------------------------------------------------------------- ImageFolder


def test_image_folder_reads_class_folders_of_several_formats(tmp_path):
    expected = {
        "tabby/b.png": (save_picture(tmp_path / "tabby" / "b.png", 8, 6, 1), 1),
        "tabby/a.BMP": (save_picture(tmp_path / "tabby" / "a.BMP", 5, 7, 2), 1),
        "Egyptian_cat/c.tif": (save_picture(tmp_path / "Egyptian_cat" / "c.tif", 9, 4, 3), 2),
        # a class given by its index, an image one level down (lossless WebP)
        "3/deep/d.webp": (picture(6, 6), 3),
        "3/e.jpg": (None, 3),
    }
    (tmp_path / "3" / "deep").mkdir(parents=True)
    Image.fromarray(picture(6, 6)).save(tmp_path / "3" / "deep" / "d.webp", lossless=True)
    Image.fromarray(picture(10, 8)).save(tmp_path / "3" / "e.jpg", quality=95)
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
    assert np.abs(np.asarray(jpeg.image, float) - picture(10, 8)).mean() < 12


def test_flat_folder_has_no_labels_and_a_fixed_order(tmp_path):
    for name in ["b.jpeg", "a.png", "c.tiff"]:
        save_picture(tmp_path / name)
    dataset = ImageFolder(tmp_path, NAMES)
    assert [(s.id, s.label) for s in dataset] == [
        ("a.png", None),
        ("b.jpeg", None),
        ("c.tiff", None),
    ]
    assert dataset.description == str(tmp_path)


def test_unknown_class_folder_is_an_error_at_open_time_with_near_matches(tmp_path):
    save_picture(tmp_path / "tabby" / "a.png")
    save_picture(tmp_path / "Egyptain_cat" / "b.png")
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
    save_picture(tmp_path / "tabby" / "good1.png")
    good = save_picture(tmp_path / "tabby" / "good2.png", shift=5)
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
    save_picture(tmp_path / "a.png", width=8, height=6)
    save_picture(tmp_path / "b.png", width=8, height=6)
    save_picture(tmp_path / "c.png", width=8, height=6)
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
    save_picture(tmp_path / "tabby" / "a.png")
    save_picture(tmp_path / "moped" / "b.png")
    save_picture(tmp_path / "moped" / "c.png")
    one = (torch.tensor([[1.0, 1.0, 4.0, 5.0]]), torch.tensor([1]))
    two = (torch.tensor([[0.0, 0.0, 2.0, 3.0]]), torch.tensor([4]))
    samples = {s.id: s for s in ImageFolder(tmp_path, NAMES, {"tabby/a.png": one, "b.png": two})}
    assert torch.equal(samples["tabby/a.png"].boxes, one[0])
    assert torch.equal(samples["moped/b.png"].box_labels, two[1])
    assert _no_boxes(samples["moped/c.png"])


def test_a_base_name_key_matching_two_images_is_an_error(tmp_path):
    save_picture(tmp_path / "tabby" / "a.png")
    save_picture(tmp_path / "moped" / "a.png")
    entry = (torch.tensor([[1.0, 1.0, 4.0, 5.0]]), torch.tensor([1]))
    with pytest.raises(ValueError, match=r"'a.png'.*'moped/a.png'.*'tabby/a.png'"):
        ImageFolder(tmp_path, NAMES, {"a.png": entry})


# --------------------------------------------------------------------------------- CSV


def test_csv_lists_images_in_file_order_with_labels(tmp_path):
    first = save_picture(tmp_path / "images" / "x.png", shift=1)
    save_picture(tmp_path / "images" / "y.jpg")
    elsewhere = save_picture(tmp_path / "other" / "z.bmp", shift=2)
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
    save_picture(tmp_path / "here.png")
    (tmp_path / "list.csv").write_text("path,label\nhere.png,tabby\ngone.png,tabby\n")
    dataset = CsvImages(tmp_path / "list.csv", NAMES)
    assert [s.id for s in dataset] == ["here.png"]
    assert dataset.problems[0].path == str(tmp_path / "gone.png")
    assert "FileNotFoundError" in dataset.problems[0].reason
