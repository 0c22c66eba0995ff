"""The results database: rows round-trip, NaN refused, other configurations refused."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pytest
import torch

from axiomcam.evaluation.store import (
    DATABASE_NAME,
    ConfigurationMismatchError,
    CurveRow,
    ImageRow,
    NonFiniteValueError,
    ProblemRow,
    ResultRow,
    ResultStore,
)

CONFIG = {"model": "toy", "methods": ["gradcam", "xgradcam"], "seed": 0,
          "parameters": {"road_percentages": (10.0, 50.0)}}


def _rows():
    images = [ImageRow("a.png", "/data/a.png", 3, 3, 0.75, 640, 480),
              ImageRow("b.png", None, None, 7, 0.5, 32, 16)]
    results = [ResultRow("a.png", "gradcam", "average_drop", 12.5),
               ResultRow("a.png", "xgradcam", "average_drop", 0.0),
               ResultRow("b.png", "gradcam", "average_drop", 100.0),
               ResultRow("b.png", "gradcam", "conservation_error", 1e-9)]
    curves = [CurveRow("a.png", "gradcam", "deletion", step, step / 2, 1.0 - step / 4)
              for step in range(3)]
    problems = [ProblemRow("bad.jpg", "cannot identify image file")]
    return images, results, curves, problems


def test_rows_round_trip(tmp_path):
    images, results, curves, problems = _rows()
    with ResultStore.create(tmp_path, CONFIG) as store:
        assert store.finished is None
        store.write_batch(images=images, results=results, curves=curves, problems=problems)
        store.finish({"seconds": {"total": 1.5}})
    with ResultStore.open(tmp_path) as store:
        assert store.images() == images
        assert store.results() == results
        assert store.curves() == curves
        assert store.problems() == problems
        assert store.results(method="gradcam", metric="average_drop") == [results[0], results[2]]
        assert store.curves("insertion") == []
        assert store.methods() == ["gradcam", "xgradcam"]
        assert store.metrics() == ["average_drop", "conservation_error"]
        # tuples come back as lists (JSON), everything else as given
        assert store.config == {**CONFIG, "parameters": {"road_percentages": [10.0, 50.0]}}
        assert store.details == {"seconds": {"total": 1.5}}
        assert store.finished is not None and store.started <= store.finished
        assert [store.count(t) for t in ("images", "results", "curves", "problems")] == \
            [2, 4, 3, 1]


def test_numpy_and_torch_scalars_are_stored_as_floats(tmp_path):
    with ResultStore.create(tmp_path, CONFIG) as store:
        store.write_batch(results=[ResultRow("a", "m", "x", np.float32(0.25)),
                                   ResultRow("a", "m", "y", torch.tensor(2.0))])
        assert [row.value for row in store.results()] == [0.25, 2.0]


def test_primary_key_is_image_method_metric(tmp_path):
    with ResultStore.create(tmp_path, CONFIG) as store:
        store.write_batch(results=[ResultRow("a", "m", "x", 1.0)])
        with pytest.raises(sqlite3.IntegrityError):
            store.write_batch(results=[ResultRow("a", "m", "x", 2.0)])
        assert store.results() == [ResultRow("a", "m", "x", 1.0)]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, np.float32("nan")])
def test_non_finite_value_is_refused_naming_image_method_metric(tmp_path, bad):
    with ResultStore.create(tmp_path, CONFIG) as store:
        good = ResultRow("a.png", "gradcam", "average_drop", 1.0)
        with pytest.raises(NonFiniteValueError) as caught:
            store.write_batch(images=[_rows()[0][0]],
                              results=[good, ResultRow("b.png", "xgradcam", "deletion_auc", bad)])
        message = str(caught.value)
        assert "'b.png'" in message and "'xgradcam'" in message and "'deletion_auc'" in message
        # the batch is all or nothing: not even its good rows were stored
        assert store.results() == [] and store.images() == []


def test_non_finite_curve_point_is_refused(tmp_path):
    with ResultStore.create(tmp_path, CONFIG) as store:
        with pytest.raises(NonFiniteValueError, match="'sanity' step 4"):
            store.write_batch(curves=[CurveRow("a", "scorecam", "sanity", 4, 5.0, math.nan)])
        assert store.curves() == []


def test_failed_insert_rolls_back_the_whole_batch(tmp_path):
    with ResultStore.create(tmp_path, CONFIG) as store:
        store.write_batch(results=[ResultRow("a", "m", "x", 1.0)])
        with pytest.raises(sqlite3.IntegrityError):
            store.write_batch(results=[ResultRow("b", "m", "x", 1.0),
                                       ResultRow("a", "m", "x", 1.0)])
        assert store.count("results") == 1


def test_different_configuration_is_refused_with_the_differences(tmp_path):
    ResultStore.create(tmp_path, CONFIG).close()
    other = {**CONFIG, "seed": 1}
    with pytest.raises(ConfigurationMismatchError, match=r"seed: 0 -> 1") as caught:
        ResultStore.create(tmp_path, other)
    assert "overwrite" in str(caught.value)


def test_same_configuration_is_refused_too_until_resuming_exists(tmp_path):
    with ResultStore.create(tmp_path, CONFIG) as store:
        store.write_batch(results=[ResultRow("a", "m", "x", 1.0)])
    with pytest.raises(ConfigurationMismatchError, match="unfinished run of this configuration"):
        ResultStore.create(tmp_path, CONFIG)
    with ResultStore.open(tmp_path) as store:  # the refused call touched nothing
        assert store.count("results") == 1


def test_overwrite_deletes_the_old_database(tmp_path):
    with ResultStore.create(tmp_path, CONFIG) as store:
        store.write_batch(results=[ResultRow("a", "m", "x", 1.0)])
    other = {**CONFIG, "seed": 5}
    with ResultStore.create(tmp_path, other, overwrite=True) as store:
        assert store.config["seed"] == 5
        assert store.count("results") == 0


def test_a_foreign_file_is_refused_not_overwritten(tmp_path):
    (tmp_path / DATABASE_NAME).write_text("not a database")
    with pytest.raises(ConfigurationMismatchError, match="not a readable axiomcam database"):
        ResultStore.create(tmp_path, CONFIG)
    assert (tmp_path / DATABASE_NAME).read_text() == "not a database"


def test_open_without_database_and_file_as_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results database"):
        ResultStore.open(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        ResultStore.create(tmp_path / "file", CONFIG)


def test_configuration_must_be_json(tmp_path):
    with pytest.raises(TypeError, match="JSON"):
        ResultStore.create(tmp_path, {"model": object()})
    with pytest.raises(TypeError, match="JSON"):
        ResultStore.create(tmp_path, {"threshold": math.nan})
