"""The results database of an evaluation run: ``DIR/results.sqlite`` (stdlib :mod:`sqlite3`).

Tables:

- ``run``: one row: ``config`` (the run's configuration, JSON), ``details`` (what the run
  learned on the way, JSON: layers randomised by the sanity check, seconds per metric
  group, ...), ``started`` and ``finished`` (ISO 8601 UTC times; ``finished`` is ``NULL``
  until the run ends).
- ``images``: ``image_id, path, label, predicted, predicted_probability, width, height``
  (``label`` is ``NULL`` when unknown; width and height of the original image).
- ``results``: ``image_id, method, metric, value``: one row per image x method x metric,
  primary key ``(image_id, method, metric)``.
- ``curves``: ``image_id, method, curve, step, x, value``: the per-image curves (deletion,
  insertion, ROAD, sanity), primary key ``(image_id, method, curve, step)``.
- ``problems``: ``path, reason``: the files the data set skipped.

Every value is checked before it is written: a NaN or infinite value is a bug upstream,
and :class:`NonFiniteValueError` names the image, method and metric instead of storing it.

Example:
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as directory:
    ...     with ResultStore.create(directory, {"methods": ["gradcam"]}) as store:
    ...         store.write_batch(
    ...             images=[ImageRow("img0", "a.png", 3, 3, 0.9, 64, 48)],
    ...             results=[ResultRow("img0", "gradcam", "average_drop", 12.5)],
    ...         )
    ...         store.results()
    [ResultRow(image_id='img0', method='gradcam', metric='average_drop', value=12.5)]
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

__all__ = [
    "DATABASE_NAME",
    "ConfigurationMismatchError",
    "CurveRow",
    "ImageRow",
    "NonFiniteValueError",
    "ProblemRow",
    "ResultRow",
    "ResultStore",
    "rows_by",
]

#: the database's file name inside the output directory
DATABASE_NAME = "results.sqlite"

_SCHEMA = """
CREATE TABLE run (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    config TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}',
    started TEXT NOT NULL,
    finished TEXT
);
CREATE TABLE images (
    image_id TEXT PRIMARY KEY,
    path TEXT,
    label INTEGER,
    predicted INTEGER NOT NULL,
    predicted_probability REAL NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL
);
CREATE TABLE results (
    image_id TEXT NOT NULL,
    method TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (image_id, method, metric)
);
CREATE TABLE curves (
    image_id TEXT NOT NULL,
    method TEXT NOT NULL,
    curve TEXT NOT NULL,
    step INTEGER NOT NULL,
    x REAL NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (image_id, method, curve, step)
);
CREATE TABLE problems (
    path TEXT NOT NULL,
    reason TEXT NOT NULL
);
"""


class ImageRow(NamedTuple):
    """One evaluated image (``label`` is ``None`` when the data set does not know it)."""

    image_id: str
    path: str | None
    label: int | None
    predicted: int
    predicted_probability: float
    width: int
    height: int


class ResultRow(NamedTuple):
    """One per-image value of one metric for one method."""

    image_id: str
    method: str
    metric: str
    value: float


class CurveRow(NamedTuple):
    """One point of a per-image curve: ``step`` counts from 0, ``x`` is the abscissa
    (fraction of pixels, percentage, randomisation step)."""

    image_id: str
    method: str
    curve: str
    step: int
    x: float
    value: float


class ProblemRow(NamedTuple):
    """A file the data set skipped, and why."""

    path: str
    reason: str


class NonFiniteValueError(ValueError):
    """A metric produced NaN or infinity: a bug upstream, never stored.

    Example:
        >>> issubclass(NonFiniteValueError, ValueError)
        True
    """


class ConfigurationMismatchError(ValueError):
    """The output directory already holds a run (of another configuration, or an unfinished
    or finished run of this one) and overwriting was not asked for.

    Example:
        >>> issubclass(ConfigurationMismatchError, ValueError)
        True
    """


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _canonical(config: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration as it reads back from JSON (tuples become lists, keys strings)."""
    try:
        return json.loads(json.dumps(config, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise TypeError(f"the run configuration must be JSON data: {error}") from error


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{key}: {old.get(key)!r} -> {new.get(key)!r}"
            for key in keys if old.get(key) != new.get(key)]


def _check_finite(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        # numpy / torch scalars convert; anything else is a programming error
        try:
            value = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError) as error:
            raise TypeError(f"{where}: value {value!r} is not a number") from error
    value = float(value)
    if not math.isfinite(value):
        raise NonFiniteValueError(
            f"{where} is {value}: a non-finite result is a bug upstream and is not stored"
        )
    return value


class ResultStore:
    """An open results database (use :meth:`create` or :meth:`open`, not the constructor).

    Each :meth:`write_batch` is one transaction: either every row of the batch is stored or
    none is. Use it as a context manager (``with ResultStore.create(...) as store``) so the
    connection is closed.
    """

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._connection = connection
        self.path = path

    # ---------------------------------------------------------------- opening
    @classmethod
    def create(cls, out_dir: str | os.PathLike[str], config: Mapping[str, Any], *,
               overwrite: bool = False) -> ResultStore:
        """Create ``out_dir/results.sqlite`` for a new run of ``config``.

        Args:
            out_dir: the run's directory (created if missing).
            config: the run's configuration (JSON data: model, data, methods, layer,
                metric groups, parameters, seed, versions), stored in the ``run`` table.
            overwrite: delete an existing database first.

        Returns:
            the open store, with the ``run`` row written (``started`` = now).

        Raises:
            ConfigurationMismatchError: the directory already holds a database and
                ``overwrite`` is false; the message lists how the configurations differ
                (resuming a run is not supported yet).
            NotADirectoryError: ``out_dir`` exists and is a file.

        Example:
            >>> import tempfile
            >>> with tempfile.TemporaryDirectory() as directory:
            ...     ResultStore.create(directory, {"seed": 0}).close()
            ...     try:
            ...         ResultStore.create(directory, {"seed": 1})
            ...     except ConfigurationMismatchError as error:
            ...         print(str(error).splitlines()[1])
            seed: 0 -> 1
        """
        directory = Path(out_dir)
        if directory.exists() and not directory.is_dir():
            raise NotADirectoryError(f"output directory {str(directory)!r} is a file")
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / DATABASE_NAME
        config = _canonical(config)
        if path.exists():
            if not overwrite:
                cls._refuse_existing(path, config)
            path.unlink()
            for suffix in ("-journal", "-wal", "-shm"):
                leftover = path.with_name(path.name + suffix)
                if leftover.exists():
                    leftover.unlink()
        connection = sqlite3.connect(path)
        try:
            with connection:
                connection.executescript(_SCHEMA)
                connection.execute(
                    "INSERT INTO run (id, config, started) VALUES (1, ?, ?)",
                    (json.dumps(config, sort_keys=True), _now()),
                )
        except BaseException:
            connection.close()
            raise
        return cls(connection, path)

    @staticmethod
    def _refuse_existing(path: Path, config: Mapping[str, Any]) -> None:
        try:
            with ResultStore.open(path.parent) as existing:
                old = existing.config
                finished = existing.finished
        except (sqlite3.DatabaseError, ValueError) as error:
            raise ConfigurationMismatchError(
                f"{str(path)!r} exists but is not a readable axiomcam database ({error}); "
                "use another output directory or overwrite=True (--overwrite) to replace it"
            ) from error
        differences = _differences(old, config)
        if differences:
            raise ConfigurationMismatchError(
                f"{str(path)!r} holds a run with a different configuration:\n"
                + "\n".join(differences)
                + "\nuse another output directory, or overwrite=True (--overwrite) to "
                "delete the old results"
            )
        state = "a finished" if finished else "an unfinished"
        raise ConfigurationMismatchError(
            f"{str(path)!r} already holds {state} run of this configuration; resuming is "
            "not supported yet: use overwrite=True (--overwrite) to run it again from scratch"
        )

    @classmethod
    def open(cls, out_dir: str | os.PathLike[str]) -> ResultStore:
        """Open the database of an existing run for reading (and writing).

        Raises:
            FileNotFoundError: ``out_dir`` holds no ``results.sqlite``.
            ValueError: the file is not an axiomcam results database.

        Example:
            >>> import tempfile
            >>> with tempfile.TemporaryDirectory() as directory:
            ...     ResultStore.create(directory, {"seed": 3}).close()
            ...     with ResultStore.open(directory) as store:
            ...         store.config
            {'seed': 3}
        """
        path = Path(out_dir) / DATABASE_NAME
        if not path.is_file():
            raise FileNotFoundError(f"no results database {str(path)!r}: run evaluate first")
        connection = sqlite3.connect(path)
        try:
            tables = {name for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as error:
            connection.close()
            raise ValueError(f"{str(path)!r} is not an SQLite database: {error}") from error
        missing = {"run", "images", "results", "curves", "problems"} - tables
        if missing:
            connection.close()
            raise ValueError(
                f"{str(path)!r} is not an axiomcam results database "
                f"(tables {sorted(missing)} missing)"
            )
        return cls(connection, path)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._connection.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # ---------------------------------------------------------------- writing
    def write_batch(self, images: Iterable[ImageRow] = (), results: Iterable[ResultRow] = (),
                    curves: Iterable[CurveRow] = (),
                    problems: Iterable[ProblemRow] = ()) -> None:
        """Store one batch's rows in one transaction (all or nothing).

        Raises:
            NonFiniteValueError: a value (or curve abscissa, or probability) is NaN or
                infinite; the message names the image, method and metric, nothing of the
                batch is stored.
            sqlite3.IntegrityError: a row repeats an ``(image_id, method, metric)`` already
                stored (a bug in the caller).

        Example:
            >>> import math, tempfile
            >>> with tempfile.TemporaryDirectory() as directory:
            ...     with ResultStore.create(directory, {}) as store:
            ...         store.write_batch(results=[ResultRow("img7", "xgradcam", "x", math.nan)])
            Traceback (most recent call last):
            ...
            axiomcam.evaluation.store.NonFiniteValueError: image 'img7', method 'xgradcam', \
metric 'x' is nan: a non-finite result is a bug upstream and is not stored
        """
        image_rows = []
        for row in images:
            where = f"image {row.image_id!r}, predicted_probability"
            image_rows.append(row._replace(
                predicted_probability=_check_finite(row.predicted_probability, where)))
        result_rows = [
            row._replace(value=_check_finite(
                row.value,
                f"image {row.image_id!r}, method {row.method!r}, metric {row.metric!r}"))
            for row in results
        ]
        curve_rows = []
        for row in curves:
            where = (f"image {row.image_id!r}, method {row.method!r}, curve {row.curve!r} "
                     f"step {row.step}")
            curve_rows.append(row._replace(x=_check_finite(row.x, where + " x"),
                                           value=_check_finite(row.value, where)))
        problem_rows = [ProblemRow(str(row.path), str(row.reason)) for row in problems]
        with self._connection:  # one transaction; rolled back if anything raises
            self._connection.executemany(
                "INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?)", image_rows)
            self._connection.executemany(
                "INSERT INTO results VALUES (?, ?, ?, ?)", result_rows)
            self._connection.executemany(
                "INSERT INTO curves VALUES (?, ?, ?, ?, ?, ?)", curve_rows)
            self._connection.executemany("INSERT INTO problems VALUES (?, ?)", problem_rows)

    def finish(self, details: Mapping[str, Any] | None = None) -> None:
        """Mark the run finished (now) and store ``details`` (JSON data) with it."""
        with self._connection:
            self._connection.execute(
                "UPDATE run SET finished = ?, details = ? WHERE id = 1",
                (_now(), json.dumps(_canonical(details or {}), sort_keys=True)),
            )

    # ---------------------------------------------------------------- reading
    def _run_field(self, field: str) -> Any:
        row = self._connection.execute(f"SELECT {field} FROM run WHERE id = 1").fetchone()
        if row is None:
            raise ValueError(f"{str(self.path)!r} has no run row")
        return row[0]

    @property
    def config(self) -> dict[str, Any]:
        """The run's configuration, as stored."""
        return json.loads(self._run_field("config"))

    @property
    def details(self) -> dict[str, Any]:
        """What the run recorded when it finished (``{}`` before)."""
        return json.loads(self._run_field("details"))

    @property
    def started(self) -> str:
        """When the run started (ISO 8601, UTC)."""
        return self._run_field("started")

    @property
    def finished(self) -> str | None:
        """When the run finished (ISO 8601, UTC), ``None`` if it did not."""
        return self._run_field("finished")

    def images(self) -> list[ImageRow]:
        """Every image row, in the order stored."""
        return [ImageRow(*row) for row in self._connection.execute(
            "SELECT * FROM images ORDER BY rowid")]

    def results(self, method: str | None = None, metric: str | None = None) -> list[ResultRow]:
        """The result rows (of one method and/or metric if given), in the order stored."""
        query, parameters = "SELECT image_id, method, metric, value FROM results", []
        conditions = []
        if method is not None:
            conditions.append("method = ?")
            parameters.append(method)
        if metric is not None:
            conditions.append("metric = ?")
            parameters.append(metric)
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        return [ResultRow(*row) for row in self._connection.execute(
            query + " ORDER BY rowid", parameters)]

    def curves(self, curve: str | None = None) -> list[CurveRow]:
        """The curve rows (of one curve if given), in the order stored."""
        query, parameters = "SELECT * FROM curves", []
        if curve is not None:
            query, parameters = query + " WHERE curve = ?", [curve]
        return [CurveRow(*row) for row in self._connection.execute(
            query + " ORDER BY rowid", parameters)]

    def problems(self) -> list[ProblemRow]:
        """The files the data set skipped, in the order met."""
        return [ProblemRow(*row) for row in self._connection.execute(
            "SELECT path, reason FROM problems ORDER BY rowid")]

    def methods(self) -> list[str]:
        """The methods with results, in the order first stored."""
        return self._first_seen("method")

    def metrics(self) -> list[str]:
        """The metrics with results, in the order first stored."""
        return self._first_seen("metric")

    def _first_seen(self, column: str) -> list[str]:
        return [name for (name, _) in self._connection.execute(
            f"SELECT {column}, MIN(rowid) AS first FROM results GROUP BY {column} "
            "ORDER BY first")]

    def count(self, table: str) -> int:
        """The number of rows of ``table`` (``images``, ``results``, ``curves``,
        ``problems``)."""
        if table not in {"images", "results", "curves", "problems"}:
            raise ValueError(f"unknown table {table!r}")
        return self._connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def rows_by(rows: Sequence[ResultRow], *keys: str) -> dict[tuple, list[float]]:
    """Group result values by the named fields (``"method"``, ``"metric"``, ...).

    Example:
        >>> rows = [ResultRow("a", "m", "x", 1.0), ResultRow("b", "m", "x", 3.0)]
        >>> rows_by(rows, "method", "metric")
        {('m', 'x'): [1.0, 3.0]}
    """
    grouped: dict[tuple, list[float]] = {}
    for row in rows:
        grouped.setdefault(tuple(getattr(row, key) for key in keys), []).append(row.value)
    return grouped
