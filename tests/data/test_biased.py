"""The planted-shortcut data set (:mod:`axiomcam.data.biased`): each pairing puts each class
on the background it promises, swapped images keep the biased images' objects at the same
places (only the background changes), a mismatch shows other objects at the rate asked, and
bad arguments are refused clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from axiomcam.data import OBJECTS
from axiomcam.data.biased import BACKGROUNDS, BackgroundBiasSet

NAMES = ["unrelated"] + [obj.class_name for obj in OBJECTS]


def test_each_pairing_puts_each_class_on_its_promised_background():
    biased = BackgroundBiasSet(20, NAMES, pairing="biased", seed=3, size=48)
    swapped = BackgroundBiasSet(20, NAMES, pairing="swapped", seed=3, size=48)
    balanced = BackgroundBiasSet(60, NAMES, pairing="balanced", seed=3, size=48)
    for index in range(20):
        assert biased.background_of(index) == BACKGROUNDS[index % 5].name
        assert swapped.background_of(index) == BACKGROUNDS[(index + 1) % 5].name
    per_class = [{balanced.background_of(i) for i in range(c, 60, 5)} for c in range(5)]
    assert all(len(seen) >= 3 for seen in per_class)  # not tied to the class
    sample = biased[7]
    assert sample.label == NAMES.index(OBJECTS[2].class_name) == int(sample.box_labels[0])


def test_swapped_images_change_only_the_background():
    torch.manual_seed(0)
    biased = BackgroundBiasSet(5, NAMES, pairing="biased", seed=1, size=64)
    swapped = BackgroundBiasSet(5, NAMES, pairing="swapped", seed=1, size=64)
    for index in range(5):
        one, two = biased[index], swapped[index]
        assert torch.equal(one.boxes, two.boxes) and one.label == two.label
        x0, y0, x1, y1 = (int(v) for v in one.boxes[0])
        first, second = np.asarray(one.image), np.asarray(two.image)
        assert np.array_equal(first[y0:y1, x0:x1], second[y0:y1, x0:x1])
        outside = np.ones(first.shape[:2], dtype=bool)
        outside[y0:y1, x0:x1] = False
        assert np.abs(first[outside].astype(int) - second[outside]).mean() > 10


def test_a_mismatch_shows_other_objects_at_the_rate_asked():
    clean = BackgroundBiasSet(200, NAMES, seed=0, size=32)
    noisy = BackgroundBiasSet(200, NAMES, seed=0, size=32, mismatch=1.0)
    assert all(int(s.box_labels[0]) == s.label for s in clean)
    # a random one of five objects: its class's own with probability 1/5
    other = np.mean([int(s.box_labels[0]) != s.label for s in noisy])
    assert 0.7 < other < 0.9
    assert [clean.background_of(i) for i in range(10)] == \
        [noisy.background_of(i) for i in range(10)]


@pytest.mark.parametrize(("arguments", "message"), [
    ({"pairing": "random"}, "pairing must be one of biased, swapped, balanced"),
    ({"seed": -1}, "seed must be an int >= 0"),
    ({"size": 16}, "size must be an int >= 32"),
    ({"scale": (0.5, 0.2)}, "scale must be"),
    ({"mismatch": 2}, "mismatch must be a probability"),
])
def test_bad_arguments_are_refused_clearly(arguments, message):
    with pytest.raises(ValueError, match=message):
        BackgroundBiasSet(5, NAMES, **arguments)
    with pytest.raises(IndexError, match=r"index must be an int in 0\.\.4"):
        BackgroundBiasSet(5, NAMES)[5]
