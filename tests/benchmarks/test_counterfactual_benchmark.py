"""The counterfactual measurement (``benchmarks/counterfactual.py``, docs/applications.md):
its per-map shares on maps whose answer is known by hand, and a tiny real run whose rows
hold together."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: benchmarks/

from benchmarks import counterfactual


def test_the_shares_of_maps_known_by_hand():
    torch.manual_seed(0)
    maps = torch.zeros(1, 2, 10, 10)
    maps[0, 0, 0:2, 0:5] = 1.0  # target 0: 10 pixels in its own box (rows 0-1, cols 0-4)
    maps[0, 0, 5:10, 5:7] = 1.0  # and 10 in the other's box (rows 5-9, cols 5-9): 10 there
    maps[0, 0, 8:9, 0:4] = 0.5  # and mass 2 outside both
    # target 1 (own box = the second one): nothing anywhere, an all-zero map
    boxes = [torch.tensor([[0.0, 0.0, 5.0, 2.0], [5.0, 5.0, 10.0, 10.0]])]
    measures = counterfactual.map_measures(maps, boxes)
    assert measures["own"][0, 0] == pytest.approx(10 / 22)
    assert measures["other"][0, 0] == pytest.approx(10 / 22)
    assert measures["background"][0, 0] == pytest.approx(2 / 22)
    assert measures["other_wins"][0, 0] == 0.0  # equal is not more
    assert measures["other_area"][0, 0] == pytest.approx(25 / 100)
    assert measures["enrichment"][0, 0] == pytest.approx((10 / 22) / 0.25)
    assert all(math.isnan(measures[name][0, 1]) for name in measures)


def test_the_summary_drops_empty_maps_and_images_with_no_map_left():
    values = {name: np.array([[0.2, np.nan], [np.nan, np.nan], [0.4, 0.6]])
              for name in counterfactual.MEASURES}
    row = counterfactual.summary_row(values, seed=0)
    assert (row["images"], row["empty_maps"], row["maps"]) == (2, 3, 6)
    assert row["own"]["mean"] == pytest.approx((0.2 + 0.5) / 2)
    assert row["own"]["low"] <= row["own"]["mean"] <= row["own"]["high"]


def test_a_tiny_real_run_on_the_pretrained_model(capsys):
    torch.manual_seed(0)
    result = counterfactual.main(["--images", "2", "--batch-size", "2",
                                  "--layers", "features.18"])
    rows = {row["map"]: row for row in result["rows"]}
    assert set(rows) == {"plain", "counterfactual"} and rows["plain"]["images"] == 2
    for row in rows.values():
        total = sum(row[name]["mean"] for name in ("own", "other", "background"))
        assert total == pytest.approx(1.0, abs=1e-6)
    # the evidence against a class is not on its own object, and removing the plain map's
    # top pixels lowers the class's probability more than removing the counterfactual's
    assert rows["counterfactual"]["own"]["mean"] < rows["plain"]["own"]["mean"]
    assert rows["counterfactual"]["removal_drop"]["mean"] < rows["plain"]["removal_drop"]["mean"]
    assert "| features.18 | counterfactual |" in capsys.readouterr().out
