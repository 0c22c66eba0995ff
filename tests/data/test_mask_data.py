"""Ground-truth masks: COCO RLE both ways, COCO segmentations and PNG folders read back,
masks attached to a data set, and the composite benchmark's silhouettes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from axiomcam.data import (
    OBJECTS,
    CompositeBenchmark,
    Dataset,
    MaskedDataset,
    Sample,
    decode_rle,
    encode_rle,
    open_dataset,
    read_coco_masks,
    read_mask_folder,
)
from axiomcam.data.masks import run_lengths
from axiomcam.data.silhouettes import silhouette

NAMES = ["goldfish", "tabby", "espresso"]


def slow_decode(counts: list[int], height: int, width: int) -> np.ndarray:
    """The COCO definition, pixel by pixel: runs of 0, 1, 0, ... down the columns."""
    flat, value = [], False
    for count in counts:
        flat += [value] * count
        value = not value
    mask = np.zeros((height, width), dtype=bool)
    for position, pixel in enumerate(flat):
        mask[position % height, position // height] = pixel
    return mask


@pytest.mark.parametrize(("counts", "text"), [
    ([2, 3, 1], "231"),            # small runs: one character each, chr(48 + run)
    ([0, 5], "05"),                # a mask starting with 1 starts with an empty run of 0
    ([1, 1, 20, 2], "11d01"),      # 20 = 0b10100: bit 4 set, so a second group '0' follows
    ([5, 10, 1, 1], "5:1G"),       # the 4th run is 1 - 10 = -9: one group 23 -> 'G'
])
def test_rle_strings_computed_by_hand(counts, text):
    height = 1
    mask = slow_decode(counts, height, sum(counts))
    assert run_lengths(mask) == counts
    assert encode_rle(mask) == {"size": [1, sum(counts)], "counts": text}
    assert (decode_rle({"size": [1, sum(counts)], "counts": text}) == mask).all()


def test_rle_round_trip_on_random_masks_matches_the_slow_definition():
    torch.manual_seed(0)
    for height, width in [(7, 5), (32, 40), (1, 1), (64, 3)]:
        mask = (torch.rand(height, width) > 0.6).numpy()
        mask[height // 2:, : width // 2] = True  # long runs: multi-group numbers
        rle = encode_rle(torch.from_numpy(mask))
        assert (decode_rle(rle) == mask).all()
        counts = run_lengths(mask)
        assert (slow_decode(counts, height, width) == mask).all()
        # uncompressed counts (a list) decode to the same mask
        assert (decode_rle({"size": [height, width], "counts": counts}) == mask).all()


def test_bad_rle_is_refused():
    with pytest.raises(ValueError, match="add up to 5 pixels, not 2 x 3"):
        decode_rle({"size": [2, 3], "counts": [2, 3]})
    with pytest.raises(ValueError, match="'size' and 'counts'"):
        decode_rle({"counts": "23"})
    with pytest.raises(ValueError, match=r"must be \(H, W\)"):
        encode_rle(np.zeros((1, 2, 3), dtype=bool))


def write_coco(path, segmentations):
    document = {
        "images": [{"id": 1, "file_name": "a.png", "width": 6, "height": 4}],
        "categories": [{"id": 9, "name": "tabby"}, {"id": 3, "name": "espresso"}],
        "annotations": [{"id": i + 1, "image_id": 1, "category_id": category,
                         "segmentation": segmentation, "bbox": [0, 0, 1, 1]}
                        for i, (category, segmentation) in enumerate(segmentations)],
    }
    path.write_text(json.dumps(document))


def test_coco_masks_from_rle_and_polygons(tmp_path):
    rle_mask = np.zeros((4, 6), dtype=bool)
    rle_mask[1:3, 0:2] = True
    polygon = [3, 0, 5, 0, 5, 3, 3, 3]        # PIL fills columns 3..5, rows 0..3 (edges in)
    write_coco(tmp_path / "masks.json", [(9, encode_rle(rle_mask)), (3, [polygon])])
    masks, labels = read_coco_masks(tmp_path / "masks.json", NAMES)["a.png"]
    assert labels.tolist() == [1, 2]
    assert (masks[0].numpy() == rle_mask).all()
    expected = np.zeros((4, 6), dtype=bool)
    expected[0:4, 3:6] = True
    assert (masks[1].numpy() == expected).all()


def test_png_mask_folder_attached_to_an_image_folder(tmp_path):
    images, masks = tmp_path / "images" / "tabby", tmp_path / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    Image.new("RGB", (5, 4), (90, 60, 30)).save(images / "cat1.jpg")
    Image.new("RGB", (5, 4), (90, 60, 30)).save(images / "cat2.jpg")
    drawn = np.zeros((4, 5), dtype=np.uint8)
    drawn[1:3, 2:5] = 255
    Image.fromarray(drawn).save(masks / "cat1.png")
    Image.fromarray(np.zeros((3, 3), dtype=np.uint8) + 255).save(masks / "cat2.png")  # wrong size
    assert set(read_mask_folder(masks)) == {"cat1", "cat2"}
    dataset = open_dataset(str(tmp_path / "images"), NAMES, masks=masks)
    samples = list(dataset)
    assert [sample.id for sample in samples] == ["tabby/cat1.jpg"]
    sample = samples[0]
    assert sample.boxes.tolist() == [[2.0, 1.0, 5.0, 3.0]]
    assert sample.box_labels.tolist() == [1]
    assert (sample.masks[0].numpy() == (drawn > 0)).all()
    assert "3x3" in dataset.problems[0].reason and "5x4" in dataset.problems[0].reason


def test_bad_mask_sources_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no COCO annotation file"):
        open_dataset(str(tmp_path), NAMES, masks=tmp_path / "missing.json")
    with pytest.raises(FileNotFoundError, match="no mask folder or COCO"):
        open_dataset(str(tmp_path), NAMES, masks=tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"COCO \.json file or a folder"):
        open_dataset(str(tmp_path), NAMES, masks=tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="has its own boxes and masks"):
        open_dataset("composite:2", [*NAMES, "moped", "tripod", "space shuttle",
                                     "Egyptian cat"], masks=tmp_path)


def test_an_unlabelled_image_gets_no_png_mask():
    class One(Dataset):
        def __len__(self):
            return 1

        def __iter__(self):
            yield Sample("x.png", Image.new("RGB", (2, 2)), None, torch.zeros(0, 4),
                         torch.zeros(0, dtype=torch.long))

    mask = torch.ones(1, 2, 2, dtype=torch.bool)
    sample = next(iter(MaskedDataset(One(NAMES, "one"), {"x": (mask, torch.tensor([-1]))})))
    assert sample.masks.shape == (0, 2, 2) and sample.boxes.shape == (0, 4)


def test_composite_masks_are_the_silhouettes_pasted_at_the_boxes():
    names = ["tabby", "Egyptian cat", "espresso", "moped", "tripod", "space shuttle"]
    benchmark = CompositeBenchmark(12, names, seed=3, two_object_fraction=0.5)
    for sample in benchmark:
        layout = benchmark.layout(int(sample.id.split("-")[1]))
        assert sample.masks.shape == (len(layout.boxes), 224, 224)
        for mask, obj, (x0, y0, x1, y1) in zip(sample.masks, layout.objects, layout.boxes,
                                                strict=True):
            outside = mask.clone()
            outside[y0:y1, x0:x1] = False
            assert not outside.any()                       # nothing outside the box
            # the share of the box it covers is the silhouette's share of the crop
            share = mask[y0:y1, x0:x1].float().mean().item()
            assert share == pytest.approx(silhouette(obj.key).mean(), abs=0.06)


def test_every_object_has_a_silhouette_of_its_crop_size():
    for obj in OBJECTS:
        mask = silhouette(obj.key)
        width, height = obj.crop[2] - obj.crop[0], obj.crop[3] - obj.crop[1]
        assert mask.shape == (height, width)
        assert 0.05 < mask.mean() < 0.95       # an object, not the whole crop or nothing


def test_pycocotools_reads_our_rle_when_installed():
    """The reference decoder, where it is installed (not a dependency: skipped otherwise;
    the hand-computed strings above check the same format)."""
    mask_api = pytest.importorskip("pycocotools.mask")
    torch.manual_seed(3)
    mask = (torch.rand(37, 29) > 0.5).numpy()
    mask[5:30, 3:20] = True
    rle = encode_rle(mask)
    decoded = mask_api.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    assert (decoded.astype(bool) == mask).all()
    theirs = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert theirs["counts"].decode() == rle["counts"]
