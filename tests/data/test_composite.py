"""The built-in composite localization benchmark: determinism, exact ground truth, the COCO
round trip, and one check with the real pretrained MobileNetV2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import MobileNet_V2_Weights
from torchvision.transforms import functional as TF

from axiomcam import models
from axiomcam.data import OBJECTS, CompositeBenchmark, ImageFolder, class_index, read_coco_boxes
from axiomcam.images import sample_image

NAMES = list(MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])


def _pixels(sample) -> np.ndarray:
    return np.asarray(sample.image, dtype=np.int16)


def _object_reference(obj, width: int, height: int) -> np.ndarray:
    """The object's crop resized to its box, made here from the photograph itself."""
    crop = sample_image(obj.source).crop(obj.crop)
    return np.asarray(crop.resize((width, height), Image.Resampling.LANCZOS), dtype=np.int16)


def _object_of(label: int):
    return next(obj for obj in OBJECTS if class_index(obj.class_name, NAMES) == label)


def test_same_seed_same_images_other_seed_other_images():
    first, again = CompositeBenchmark(6, NAMES, seed=4), CompositeBenchmark(6, NAMES, seed=4)
    other = CompositeBenchmark(6, NAMES, seed=5)
    different = 0
    for a, b, c in zip(first, again, other, strict=True):
        assert a.id == b.id and a.label == b.label
        assert np.array_equal(_pixels(a), _pixels(b))
        assert torch.equal(a.boxes, b.boxes) and torch.equal(a.box_labels, b.box_labels)
        different += not np.array_equal(_pixels(a), _pixels(c))
    assert different == 6


def test_image_i_does_not_depend_on_count_and_random_access_works():
    short, long = CompositeBenchmark(10, NAMES, seed=1), CompositeBenchmark(20, NAMES, seed=1)
    for index in (0, 3, 9):
        a, b = short[index], long[index]
        assert a.id == b.id == f"composite-{index:05d}"
        assert np.array_equal(_pixels(a), _pixels(b)) and torch.equal(a.boxes, b.boxes)
    assert np.array_equal(_pixels(short[-1]), _pixels(short[9]))
    iterated = list(long)
    assert np.array_equal(_pixels(iterated[13]), _pixels(long[13]))
    assert len(long) == 20 and long.problems == []
    with pytest.raises(IndexError):
        short[10]


def test_a_longer_benchmark_knows_a_shorter_one_of_the_same_settings_by_its_description():
    long = CompositeBenchmark(20, NAMES, seed=1)
    assert long.first_images_of(CompositeBenchmark(10, NAMES, seed=1).description) == 10
    assert long.first_images_of(long.description) == 20
    for other in (CompositeBenchmark(21, NAMES, seed=1), CompositeBenchmark(10, NAMES, seed=2),
                  CompositeBenchmark(10, NAMES, seed=1, size=64),
                  CompositeBenchmark(10, NAMES, seed=1, two_object_fraction=0.5)):
        assert long.first_images_of(other.description) is None, other.description
    for text in ("composite:10", "composite:0 (seed 1)", "folder/", "composite:x (seed 1)"):
        assert long.first_images_of(text) is None, text
    # benchmarks that draw other images have other descriptions
    assert CompositeBenchmark(3, NAMES, size=64, two_object_fraction=0.5).description == \
        "composite:3 (seed 0, size 64, two-object fraction 0.5)"


def test_boxes_are_exactly_where_the_objects_are():
    benchmark = CompositeBenchmark(12, NAMES, seed=0, size=160, two_object_fraction=0.5)
    for index in range(len(benchmark)):
        sample = benchmark[index]
        image = _pixels(sample)
        background = np.asarray(benchmark.background(index), dtype=np.int16)
        outside = np.ones(image.shape[:2], dtype=bool)
        for box, label in zip(sample.boxes.tolist(), sample.box_labels.tolist(), strict=True):
            x0, y0, x1, y1 = (int(v) for v in box)
            assert [x0, y0, x1, y1] == box  # whole pixels
            reference = _object_reference(_object_of(label), x1 - x0, y1 - y0)
            inside = image[y0:y1, x0:x1]
            assert np.abs(inside - reference).mean() < 1.0
            # the same comparison two pixels off is far worse: the check can see a shift
            dx = 2 if x1 + 2 <= 160 else -2
            dy = 2 if y1 + 2 <= 160 else -2
            shifted = image[y0 + dy : y1 + dy, x0 + dx : x1 + dx]
            assert np.abs(shifted - reference).mean() > 5.0
            # and the object hides the background there
            assert np.abs(inside - background[y0:y1, x0:x1]).mean() > 10.0
            outside[y0:y1, x0:x1] = False
        assert np.array_equal(image[outside], background[outside])


def test_boxes_fit_and_object_sizes_follow_the_definition():
    size = 224
    single = CompositeBenchmark(30, NAMES, seed=2, size=size, two_object_fraction=0.0)
    double = CompositeBenchmark(30, NAMES, seed=2, size=size, two_object_fraction=1.0)
    for benchmark, (low, high), count in ((single, (0.35, 0.70), 1), (double, (0.25, 0.45), 2)):
        for sample in benchmark:
            boxes = sample.boxes
            assert boxes.shape == (count, 4) and boxes.dtype == torch.float32
            assert sample.box_labels.dtype == torch.long
            assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= size).all()
            assert (boxes[:, 2:] > boxes[:, :2]).all()
            longer = (boxes[:, 2:] - boxes[:, :2]).amax(dim=1)
            assert (longer >= low * size - 1).all() and (longer <= high * size + 1).all()
            assert sample.label == int(sample.box_labels[0])
            assert sample.image.size == (size, size) and sample.image.mode == "RGB"
            assert sample.path is None


def test_two_object_images_have_different_classes_and_separate_boxes():
    benchmark = CompositeBenchmark(40, NAMES, seed=3, two_object_fraction=1.0)
    for sample in benchmark:
        (a, b) = sample.boxes.tolist()
        assert sample.box_labels[0] != sample.box_labels[1]
        apart = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
        assert apart, (sample.id, a, b)


def test_two_object_fraction_is_respected_roughly():
    benchmark = CompositeBenchmark(400, NAMES, seed=0, two_object_fraction=0.25)
    doubles = sum(len(benchmark.layout(i).boxes) == 2 for i in range(len(benchmark)))
    assert 70 <= doubles <= 130  # binomial(400, 0.25): mean 100, sd 8.7


def test_labels_are_the_objects_imagenet_classes():
    expected = {"cat": 285, "espresso": 967, "moped": 665, "tripod": 872, "space shuttle": 812}
    benchmark = CompositeBenchmark(1, NAMES)
    assert benchmark.object_classes == expected
    # names are found by name, so a class list in another order works
    shuffled = NAMES[::-1]
    assert CompositeBenchmark(1, shuffled).object_classes["espresso"] == 999 - 967


def test_coco_export_round_trips_through_the_readers(tmp_path):
    benchmark = CompositeBenchmark(8, NAMES, seed=6, size=64, two_object_fraction=0.5)
    coco = benchmark.to_coco()
    assert [image["file_name"] for image in coco["images"]][:2] == [
        "composite-00000.png",
        "composite-00001.png",
    ]
    first = benchmark[0]
    x0, y0, x1, y1 = first.boxes[0].tolist()
    annotation = coco["annotations"][0]
    assert annotation["bbox"] == [x0, y0, x1 - x0, y1 - y0]
    assert annotation["area"] == (x1 - x0) * (y1 - y0)
    assert annotation["category_id"] == first.label and annotation["iscrowd"] == 0
    assert {c["id"]: c["name"] for c in coco["categories"]}[285] == "Egyptian cat"

    benchmark.write_coco(tmp_path / "gt.json")
    benchmark.save_images(tmp_path / "by_class")
    benchmark.save_images(tmp_path / "flat", class_folders=False)
    table = read_coco_boxes(tmp_path / "gt.json", NAMES)
    originals = {sample.id: sample for sample in benchmark}
    for folder, labelled in (("by_class", True), ("flat", False)):
        read_back = list(ImageFolder(tmp_path / folder, NAMES, table))
        assert len(read_back) == 8
        for sample in read_back:
            original = originals[sample.id.rsplit("/", 1)[-1].removesuffix(".png")]
            assert torch.equal(sample.boxes, original.boxes)
            assert torch.equal(sample.box_labels, original.box_labels)
            assert sample.label == (original.label if labelled else None)
            assert np.array_equal(_pixels(sample), _pixels(original))


def test_bad_arguments():
    with pytest.raises(ValueError, match="count"):
        CompositeBenchmark(0, NAMES)
    with pytest.raises(ValueError, match="seed"):
        CompositeBenchmark(3, NAMES, seed=-1)
    with pytest.raises(ValueError, match="size"):
        CompositeBenchmark(3, NAMES, size=16)
    with pytest.raises(ValueError, match="two_object_fraction"):
        CompositeBenchmark(3, NAMES, two_object_fraction=1.5)
    with pytest.raises(TypeError, match="count"):
        CompositeBenchmark(2.5, NAMES)
    with pytest.raises(ValueError, match="'espresso'"):
        CompositeBenchmark(3, [name for name in NAMES if name != "espresso"])


def test_pretrained_mobilenet_recognises_the_first_single_object_composites():
    pretrained = models.load("mobilenet_v2")
    benchmark = CompositeBenchmark(20, pretrained.class_names, seed=0)
    singles = [s for s in benchmark if len(s.box_labels) == 1][:6]
    inputs = torch.stack(
        [
            TF.normalize(
                TF.to_tensor(TF.resize(s.image, [224, 224])), pretrained.mean, pretrained.std
            )
            for s in singles
        ]
    )
    with torch.no_grad():
        top5 = pretrained.model(inputs).topk(5, dim=1).indices
    hits = 0
    for sample, classes in zip(singles, top5.tolist(), strict=True):
        obj = _object_of(sample.label)
        accepted = {class_index(name, NAMES) for name in obj.related or (obj.class_name,)}
        hits += bool(accepted & set(classes))
    assert hits >= 5, f"only {hits} of 6 composites have their class in the top 5"
