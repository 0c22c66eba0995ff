"""Changing a finished or partial run's database as a whole: extending it to more images
of the same data set (:func:`extend_run`) and merging the databases of a distributed run's
processes into one (:func:`merge_runs`, :func:`merge_details`).

Both work on whole batches, in one transaction or by writing a new file and moving it into
place, so that a crash leaves every database as it was. The tables are described in
:mod:`axiomcam.evaluation.store`.

Examples:
    >>> merge_details([{"images": 2, "seconds": {"road": 1.0}}, {"images": 3}])
    {'images': 5, 'seconds': {'road': 1.0}}
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .database import (
    DATABASE_NAME,
    IMAGE_COLUMNS,
    WriterLock,
    canonical_config,
    check_schema_version,
    connect,
    remove_database,
    write_schema,
)
from .store import ResultStore, check_resumable, read_header

__all__ = ["extend_run", "merge_details", "merge_runs"]


def extend_run(path: str | os.PathLike[str], config: Mapping[str, Any], *,
               kept_batches: int) -> None:
    """Store ``config`` as the configuration of the run in the database at ``path``, to
    continue it on more images of the same data set (the caller checks that it is one:
    :func:`~axiomcam.evaluation.runner.evaluate` does).

    Batches ``0 .. kept_batches - 1`` keep their rows; later ones are forgotten with all
    their rows, as if never computed: a last batch that was partial holds more images in
    the longer data set, and the problems-only batch that ends a run is no longer last.
    The run is marked unfinished, and the count of images computed in its details
    (``images``) loses the forgotten ones. One transaction: all of it happens or none.

    Raises:
        RunInProgressError: another process is writing the database.
        ConfigurationMismatchError: ``path`` is not a readable axiomcam database, or one
            of another schema version.

    Examples:
        >>> import tempfile
        >>> from axiomcam.evaluation.store import ProblemRow, ResultRow
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     with ResultStore.create(directory, {"data": "composite:2"}) as store:
        ...         store.write_batch(results=[ResultRow("a", "xgradcam", "x", 1.0)], batch=0)
        ...         store.write_batch(problems=[ProblemRow("x.png", "corrupt")], batch=1)
        ...         store.finish()
        ...     extend_run(Path(directory) / DATABASE_NAME, {"data": "composite:4"},
        ...                kept_batches=1)
        ...     with ResultStore.open(directory) as store:
        ...         store.config, store.finished, store.done_batches(), store.problems()
        ({'data': 'composite:4'}, None, {0: []}, [])
    """
    path = Path(path)
    version, _, _ = read_header(path)
    check_schema_version(path, version, "extended")
    text = json.dumps(canonical_config(config), sort_keys=True)
    lock = WriterLock(path)
    try:
        connection = connect(path)
        try:
            with connection:  # one transaction
                (count,), (details_text,) = (
                    connection.execute("SELECT COUNT(*) FROM images WHERE batch >= ?",
                                       (kept_batches,)).fetchone(),
                    connection.execute("SELECT details FROM run WHERE id = 1").fetchone())
                details = json.loads(details_text)
                if isinstance(details.get("images"), int):
                    details["images"] -= count
                forgotten = "SELECT image_id FROM images WHERE batch >= ?"
                for table in ("results", "curves"):
                    connection.execute(
                        f"DELETE FROM {table} WHERE image_id IN ({forgotten})",
                        (kept_batches,))
                for table in ("images", "problems", "batches"):
                    connection.execute(f"DELETE FROM {table} WHERE batch >= ?",
                                       (kept_batches,))
                connection.execute(
                    "UPDATE run SET config = ?, details = ?, finished = NULL WHERE id = 1",
                    (text, json.dumps(details, sort_keys=True)))
        finally:
            connection.close()
    finally:
        lock.release()


def merge_details(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The details of several parts of one run combined: numbers summed (seconds, image
    counts), mappings merged key by key the same way, anything else taken from the first
    part that has it.

    Examples:
        >>> merge_details([{"seconds": {"explain": 1.5}, "layers": {"a": ["x"]}},
        ...                {"seconds": {"explain": 2.0, "road": 1.0}, "layers": {"b": ["y"]}}])
        {'seconds': {'explain': 3.5, 'road': 1.0}, 'layers': {'a': ['x'], 'b': ['y']}}
    """
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key not in merged:
                merged[key] = merge_details([value]) if isinstance(value, Mapping) else value
            elif isinstance(value, Mapping) and isinstance(merged[key], Mapping):
                merged[key] = merge_details([merged[key], value])
            elif (isinstance(value, int | float) and not isinstance(value, bool)
                  and isinstance(merged[key], int | float)):
                merged[key] = merged[key] + value
    return merged


def merge_runs(out_dir: str | os.PathLike[str],
               parts: Sequence[str | os.PathLike[str]]) -> Path:
    """Merge the databases of a run's parts (one per process of a distributed run) into
    ``out_dir/results.sqlite``, in batch order, and delete the parts.

    The result is the database one process would have written: rows ordered by batch,
    and within a batch in the order the part stored them (summaries that depend on the
    order, such as the bootstrap intervals, come out identical). A batch stored in several
    parts (it cannot happen in a run, whose batches each belong to one process) is taken
    from the first. ``out_dir/results.sqlite`` itself, when it exists, is the first part:
    batches of an earlier one-process run of the same configuration are kept.

    The merged database is written beside it and moved into place (:func:`os.replace`), so
    a crash while merging leaves every part as it was; the parts are deleted after.

    Args:
        out_dir: the run's directory.
        parts: the other databases (schema :data:`SCHEMA_VERSION`, same configuration).

    Returns:
        the merged database's path.

    Raises:
        ConfigurationMismatchError: a part of another configuration or schema version.
        FileNotFoundError: a part that does not exist.
    """
    directory = Path(out_dir)
    target = directory / DATABASE_NAME
    sources = ([target] if target.exists() else []) + [Path(part) for part in parts]
    for source in sources:
        if not source.is_file():
            raise FileNotFoundError(f"no results database {str(source)!r} to merge")
    with ResultStore.open(sources[0].parent, name=sources[0].name) as first:
        config = first.config
    details, started, owners = [], [], {}
    for index, source in enumerate(sources):
        check_resumable(source, config)
        with ResultStore.open(source.parent, name=source.name) as store:
            details.append(store.details)
            started.append(store.started)
            for batch in store.done_batches():
                owners.setdefault(batch, index)
    lock = WriterLock(target)
    try:
        return _merge_into(target, sources, config, details, started, owners)
    finally:
        lock.release()


def _merge_into(target: Path, sources: list[Path], config: dict[str, Any],
                details: list[dict[str, Any]], started: list[str],
                owners: dict[int, int]) -> Path:
    merging = target.with_name(DATABASE_NAME + ".merging")
    remove_database(merging)
    connection = sqlite3.connect(merging)
    try:
        with connection:
            write_schema(connection, config, merge_details(details), min(started))
            connection.executescript(_STAGING)
            connection.executemany("INSERT INTO temp.owners VALUES (?, ?)",
                                   [(batch, index) for batch, index in owners.items()])
        # sources one at a time (SQLite attaches at most 10 databases at once)
        for index, source in enumerate(sources):
            connection.execute("ATTACH DATABASE ? AS part", (str(source),))
            with connection:
                for statement in _STAGE_PART:
                    connection.execute(statement, (index,))
            connection.execute("DETACH DATABASE part")
        with connection:
            for statement in _FROM_STAGING:
                connection.execute(statement)
    except BaseException:
        connection.close()
        remove_database(merging)
        raise
    connection.close()
    os.replace(merging, target)
    for source in sources[1:] if sources[0] == target else sources:
        remove_database(source)
    return target


# merge_runs' staging tables: each row with its batch and its rowid in its part, so that
# the merged tables can be filled in (batch, rowid) order
_STAGING = """
CREATE TEMP TABLE owners (batch INTEGER PRIMARY KEY, part INTEGER NOT NULL);
CREATE TEMP TABLE staged_images AS SELECT *, 0 AS position FROM images WHERE 0;
CREATE TEMP TABLE staged_results AS SELECT *, 0 AS batch, 0 AS position FROM results WHERE 0;
CREATE TEMP TABLE staged_curves AS SELECT *, 0 AS batch, 0 AS position FROM curves WHERE 0;
CREATE TEMP TABLE staged_problems AS SELECT *, 0 AS position FROM problems WHERE 0;
CREATE TEMP TABLE staged_batches AS SELECT * FROM batches WHERE 0;
"""
_OWNED = "batch IN (SELECT batch FROM temp.owners WHERE part = ?)"
_STAGE_PART = (
    f"INSERT INTO temp.staged_images SELECT *, rowid FROM part.images WHERE {_OWNED}",
    "INSERT INTO temp.staged_results SELECT r.*, i.batch, r.rowid FROM part.results r "
    f"JOIN part.images i ON i.image_id = r.image_id WHERE i.{_OWNED}",
    "INSERT INTO temp.staged_curves SELECT c.*, i.batch, c.rowid FROM part.curves c "
    f"JOIN part.images i ON i.image_id = c.image_id WHERE i.{_OWNED}",
    f"INSERT INTO temp.staged_problems SELECT *, rowid FROM part.problems WHERE {_OWNED}",
    f"INSERT INTO temp.staged_batches SELECT * FROM part.batches WHERE {_OWNED}",
)
_FROM_STAGING = (
    f"INSERT INTO main.images SELECT {IMAGE_COLUMNS} FROM temp.staged_images "
    "ORDER BY batch, position",
    "INSERT INTO main.results SELECT image_id, method, metric, value "
    "FROM temp.staged_results ORDER BY batch, position",
    "INSERT INTO main.curves SELECT image_id, method, curve, step, x, value "
    "FROM temp.staged_curves ORDER BY batch, position",
    "INSERT INTO main.problems SELECT path, reason, batch FROM temp.staged_problems "
    "ORDER BY batch, position",
    "INSERT INTO main.batches SELECT * FROM temp.staged_batches ORDER BY batch",
)
