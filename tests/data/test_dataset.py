"""Class labels matched to the model's class names: loosely by name, or by index; clear
errors for unknown, out-of-range and ambiguous labels."""

from __future__ import annotations

import pytest
from disk_files import NAMES

from axiomcam.data import class_index


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
