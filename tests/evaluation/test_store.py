"""The results database: rows round-trip, NaN refused, other configurations refused."""

from __future__ import annotations

import math
import os
import sqlite3

import numpy as np
import pytest
import torch

from axiomcam.evaluation.merging import merge_runs
from axiomcam.evaluation.store import (
    DATABASE_NAME,
    SCHEMA_VERSION,
    ConfigurationMismatchError,
    CurveRow,
    ImageRow,
    NonFiniteValueError,
    ProblemRow,
    ResultRow,
    ResultStore,
    RunInProgressError,
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


def test_same_configuration_is_resumed_only_when_asked(tmp_path):
    with ResultStore.create(tmp_path, CONFIG) as store:
        store.write_batch(results=[ResultRow("a", "m", "x", 1.0)], batch=0)
    with pytest.raises(ConfigurationMismatchError, match="unfinished run of this configuration"):
        ResultStore.create(tmp_path, CONFIG)
    with ResultStore.create(tmp_path, CONFIG, resume=True) as store:
        assert store.resumed and store.count("results") == 1
        assert store.done_batches() == {0: []}


def test_batches_are_recorded_with_their_rows_and_details(tmp_path):
    images, results, _, problems = _rows()
    with ResultStore.create(tmp_path, CONFIG) as store:
        assert store.schema_version == SCHEMA_VERSION
        store.write_batch(images=images[:1], results=results[:2], problems=problems,
                          batch=4, details={"seconds": {"explain": 1.0}})
        store.write_batch(images=images[1:], results=results[2:], batch=9)
        # a batch's rows and its record are one transaction: a failing batch leaves none
        with pytest.raises(NonFiniteValueError):
            store.write_batch(images=[images[0]._replace(image_id="c")],
                              results=[ResultRow("c", "m", "x", math.nan)], batch=11)
        with pytest.raises(sqlite3.IntegrityError):
            store.write_batch(batch=9)  # recorded once only
        assert store.done_batches() == {4: ["a.png"], 9: ["b.png"]}
        assert [row.batch for row in store.images()] == [4, 9]
        assert store.problems() == [problems[0]._replace(batch=4)]
        assert store.details == {"seconds": {"explain": 1.0}}
        assert store.count("batches") == 2


def test_a_database_of_another_schema_version_is_readable_but_not_resumed(tmp_path):
    with ResultStore.create(tmp_path, CONFIG) as store:
        store.write_batch(images=_rows()[0], batch=0)
    connection = sqlite3.connect(tmp_path / DATABASE_NAME)
    connection.execute("PRAGMA user_version = 1")
    connection.close()
    with ResultStore.open(tmp_path) as store:
        assert store.schema_version == 1 and len(store.images()) == 2
    with pytest.raises(ConfigurationMismatchError,
                       match=r"another axiomcam version \(database schema 1; this version"):
        ResultStore.create(tmp_path, CONFIG, resume=True)


def test_an_unwritable_directory_is_refused_before_anything_is_written():
    with pytest.raises(PermissionError, match="cannot write to output directory '/sys/x-y'"):
        ResultStore.create("/sys/x-y", CONFIG)  # refused even to root


def _part(directory, name, batches):
    """A part database holding ``batches``: {batch: [(image id, value)]}."""
    with ResultStore.create(directory, CONFIG, name=name) as store:
        for batch, entries in batches.items():
            store.write_batch(
                images=[ImageRow(i, None, None, 0, 0.5, 8, 8) for i, _ in entries],
                results=[row for i, v in entries for row in (
                    ResultRow(i, "gradcam", "x", v), ResultRow(i, "xgradcam", "x", -v))],
                curves=[CurveRow(i, "gradcam", "deletion", 0, 0.0, v) for i, v in entries],
                problems=[ProblemRow(f"bad{batch}.png", "corrupt")], batch=batch,
                details={"seconds": {"explain": float(batch)}, "images": len(entries)})


def test_merge_orders_every_table_by_batch_and_deletes_the_parts(tmp_path):
    _part(tmp_path, "parts/rank-0.sqlite", {0: [("a", 1.0), ("b", 2.0)], 2: [("e", 5.0)]})
    _part(tmp_path, "parts/rank-1.sqlite", {1: [("c", 3.0), ("d", 4.0)], 3: []})
    # an earlier one-process run's results.sqlite counts too (its batch 0 is a duplicate)
    _part(tmp_path, DATABASE_NAME, {0: [("a", 1.0), ("b", 2.0)], 4: [("f", 6.0)]})
    parts = sorted((tmp_path / "parts").glob("*.sqlite"))
    merge_runs(tmp_path, parts)
    assert not any(path.exists() for path in parts)
    assert sorted(tmp_path.glob("*.merging*")) == []
    with ResultStore.open(tmp_path) as store:
        assert [(row.image_id, row.batch) for row in store.images()] == [
            ("a", 0), ("b", 0), ("c", 1), ("d", 1), ("e", 2), ("f", 4)]
        assert [(row.image_id, row.method, row.value) for row in store.results()][:4] == [
            ("a", "gradcam", 1.0), ("a", "xgradcam", -1.0), ("b", "gradcam", 2.0),
            ("b", "xgradcam", -2.0)]
        assert [row.value for row in store.results(method="gradcam")] == [1, 2, 3, 4, 5, 6]
        assert [row.value for row in store.curves()] == [1, 2, 3, 4, 5, 6]
        assert [row.path for row in store.problems()] == [f"bad{b}.png" for b in range(5)]
        assert sorted(store.done_batches()) == [0, 1, 2, 3, 4]
        # details: each part's last (write_batch replaces them), numbers summed
        assert store.details["seconds"]["explain"] == 2 + 3 + 4
        assert store.config == CONFIG | {"parameters": {"road_percentages": [10.0, 50.0]}}
        assert store.schema_version == SCHEMA_VERSION


def test_merge_refuses_a_part_of_another_configuration(tmp_path):
    _part(tmp_path, "parts/rank-0.sqlite", {0: [("a", 1.0)]})
    with ResultStore.create(tmp_path, {**CONFIG, "seed": 9}, name="parts/rank-1.sqlite"):
        pass
    parts = sorted((tmp_path / "parts").glob("*.sqlite"))
    with pytest.raises(ConfigurationMismatchError, match="seed: 9 -> 0"):
        merge_runs(tmp_path, parts)
    assert all(path.exists() for path in parts) and not (tmp_path / DATABASE_NAME).exists()


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


def test_a_second_writer_of_the_same_database_is_refused(tmp_path):
    first = ResultStore.create(tmp_path, CONFIG)
    try:
        with pytest.raises(RunInProgressError, match=rf"another process \(pid {os.getpid()}\) "
                                                     "is writing"):
            ResultStore.create(tmp_path, CONFIG, resume=True)
        with pytest.raises(RunInProgressError):
            merge_runs(tmp_path, [])
    finally:
        first.close()
    assert not (tmp_path / (DATABASE_NAME + ".lock")).exists()
    ResultStore.create(tmp_path, CONFIG, resume=True).close()  # free again
