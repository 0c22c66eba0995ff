"""The results database of an evaluation run: ``DIR/results.sqlite`` (stdlib :mod:`sqlite3`).

Tables:

- ``run``: one row: ``config`` (the run's configuration, JSON), ``details`` (what the run
  learned on the way, JSON: layers randomised by the sanity check, seconds per metric
  group, ...), ``started`` and ``finished`` (ISO 8601 UTC times; ``finished`` is ``NULL``
  until the run ends).
- ``images``: ``image_id, path, label, predicted, predicted_probability, width, height,
  batch`` (``label`` is ``NULL`` when unknown; width and height of the original image;
  ``batch``: the index of the run's batch that held the image).
- ``results``: ``image_id, method, metric, value``: one row per image x method x metric,
  primary key ``(image_id, method, metric)``.
- ``curves``: ``image_id, method, curve, step, x, value``: the per-image curves (deletion,
  insertion, ROAD, sanity), primary key ``(image_id, method, curve, step)``.
- ``problems``: ``path, reason, batch``: the files the data set skipped (while reading
  that batch).
- ``batches``: ``batch, images, finished``: one row per batch whose rows are all stored.
  A batch's rows and its ``batches`` row are written in one transaction, so a run killed
  at any moment (even ``kill -9``) leaves whole batches only, and :meth:`ResultStore.
  done_batches` tells a resumed run what not to compute again.

The database runs in SQLite's write-ahead-log mode (``PRAGMA journal_mode=WAL``): a crash
never corrupts it, and readers do not block the writer. Its schema version is
``PRAGMA user_version`` (:data:`SCHEMA_VERSION`); a run is resumed only from a database of
the same version and configuration.

Every value is checked before it is written: a NaN or infinite value is a bug upstream,
and :class:`NonFiniteValueError` names the image, method and metric instead of storing it.

The SQL schema, the writer's lock and the comparison of configurations are in
:mod:`axiomcam.evaluation.database`; extending a run to more images and merging the parts
of a distributed run in :mod:`axiomcam.evaluation.merging`.

Examples:
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
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from .database import (
    BUSY_SECONDS,
    DATABASE_NAME,
    IMAGE_COLUMNS,
    SCHEMA_VERSION,
    TABLES,
    ConfigurationMismatchError,
    RunInProgressError,
    WriterLock,
    canonical_config,
    check_schema_version,
    connect,
    differences,
    now,
    remove_database,
    write_schema,
)

__all__ = [
    "ADDED_CONFIG_KEYS",
    "DATABASE_NAME",
    "SCHEMA_VERSION",
    "ConfigurationMismatchError",
    "CurveRow",
    "ImageRow",
    "NonFiniteValueError",
    "ProblemRow",
    "ResultRow",
    "ResultStore",
    "RunInProgressError",
    "as_if_current",
    "check_resumable",
    "read_header",
    "rows_by",
]


class ImageRow(NamedTuple):
    """One evaluated image (``label`` is ``None`` when the data set does not know it;
    ``batch`` is the run's batch index)."""

    image_id: str
    path: str | None
    label: int | None
    predicted: int
    predicted_probability: float
    width: int
    height: int
    batch: int = 0


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
    """A file the data set skipped, and why (met while reading batch ``batch``)."""

    path: str
    reason: str
    batch: int = 0


class NonFiniteValueError(ValueError):
    """A metric produced NaN or infinity: a bug upstream, never stored.

    Examples:
        >>> issubclass(NonFiniteValueError, ValueError)
        True
    """


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


def _run_directory(out_dir: str | os.PathLike[str], name: str) -> Path:
    """``out_dir`` (and the database's sub-folder), created if missing and checked to be
    writable before anything is written: root passes every permission bit, so the check
    writes and removes a probe file."""
    directory = Path(out_dir)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"output directory {str(directory)!r} is a file")
    folder = (directory / name).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(prefix=".axiomcam-write-test-", dir=folder)
        os.close(descriptor)
        os.unlink(probe)
    except OSError as error:
        raise PermissionError(
            f"cannot write to output directory {str(folder)!r}: "
            f"{error.strerror or error}") from error
    return directory


#: configuration keys newer than some databases, with the value the runs written before
#: them had: every metric read the softmax before ``probability`` (the head's rule) was stored
ADDED_CONFIG_KEYS: dict[str, Any] = {"probability": "softmax"}


def as_if_current(old: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """The stored configuration ``old`` with each key of :data:`ADDED_CONFIG_KEYS` that
    ``config`` has and ``old`` lacks set to the value older runs had, so that a run
    written before the key existed can be continued.

    Examples:
        >>> as_if_current({"seed": 0}, {"seed": 0, "probability": "sigmoid"})
        {'seed': 0, 'probability': 'softmax'}
    """
    return {**old, **{key: value for key, value in ADDED_CONFIG_KEYS.items()
                      if key in config and key not in old}}


def read_header(path: Path) -> tuple[int, dict[str, Any], bool]:
    """``(schema version, configuration, finished)`` of an existing database.

    Raises:
        ConfigurationMismatchError: ``path`` is not a readable axiomcam database.
    """
    try:
        with ResultStore.open(path.parent, name=path.name) as existing:
            return existing.schema_version, existing.config, existing.finished is not None
    except (sqlite3.DatabaseError, ValueError) as error:
        raise ConfigurationMismatchError(
            f"{str(path)!r} exists but is not a readable axiomcam database ({error}); "
            "use another output directory or overwrite=True (--overwrite) to replace it"
        ) from error


def check_resumable(path: str | os.PathLike[str], config: Mapping[str, Any]) -> bool:
    """Check that the database at ``path`` holds a run of ``config`` that can be continued.

    Returns:
        whether that run had finished.

    Raises:
        ConfigurationMismatchError: not an axiomcam database, one of another schema
            version (written by another axiomcam version), or of another configuration
            (the message lists the differences: model, methods, versions, ...).

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     ResultStore.create(directory, {"seed": 0}).close()
        ...     check_resumable(Path(directory) / DATABASE_NAME, {"seed": 0})
        False
    """
    path = Path(path)
    config = canonical_config(config)
    version, old, finished = read_header(path)
    check_schema_version(path, version, "continued")
    differing = differences(as_if_current(old, config), config)
    if differing:
        raise ConfigurationMismatchError(
            f"{str(path)!r} holds a run with a different configuration:\n"
            + "\n".join(f"{key}: {before!r} -> {after!r}"
                        for key, (before, after) in differing.items())
            + "\nuse another output directory, or overwrite=True (--overwrite) to "
            "delete the old results"
        )
    return finished


class ResultStore:
    """An open results database (use :meth:`create` or :meth:`open`, not the constructor).

    Each :meth:`write_batch` is one transaction: either every row of the batch is stored or
    none is. Use it as a context manager (``with ResultStore.create(...) as store``) so the
    connection is closed.

    Attributes:
        path: the database file.
        resumed: whether :meth:`create` continued an existing run instead of starting one.
        schema_version: the database's layout version (:data:`SCHEMA_VERSION` for new ones).
    """

    def __init__(self, connection: sqlite3.Connection, path: Path, *,
                 resumed: bool = False, lock: WriterLock | None = None) -> None:
        self._connection = connection
        self._lock = lock
        self.path = path
        self.resumed = resumed
        self.schema_version = connection.execute("PRAGMA user_version").fetchone()[0]

    # ---------------------------------------------------------------- opening
    @classmethod
    def create(cls, out_dir: str | os.PathLike[str], config: Mapping[str, Any], *,
               overwrite: bool = False, resume: bool = False,
               name: str = DATABASE_NAME) -> ResultStore:
        """Create ``out_dir/name`` for a run of ``config``, or continue the one there.

        Args:
            out_dir: the run's directory (created if missing).
            config: the run's configuration (JSON data: model, data, methods, layer,
                metric groups, parameters, seed, versions), stored in the ``run`` table.
            overwrite: delete an existing database first.
            resume: an existing database of the same configuration and schema version is
                opened to be continued (:attr:`resumed` is then true; its rows stay).
            name: the database's file name (or path) inside ``out_dir``.

        Returns:
            the open store, in WAL mode, with the ``run`` row written (``started`` = now)
            unless resumed.

        Raises:
            ConfigurationMismatchError: the directory already holds a database and
                ``overwrite`` is false: one of another configuration (the message lists
                how the configurations differ) or schema version, not a database at all,
                or (without ``resume``) any run.
            NotADirectoryError: ``out_dir`` exists and is a file.
            PermissionError: ``out_dir`` cannot be created or written to (checked before
                anything is written).
            RunInProgressError: another process has this database open for writing.

        Examples:
            >>> import tempfile
            >>> with tempfile.TemporaryDirectory() as directory:
            ...     ResultStore.create(directory, {"seed": 0}).close()
            ...     try:
            ...         ResultStore.create(directory, {"seed": 1}, resume=True)
            ...     except ConfigurationMismatchError as error:
            ...         print(str(error).splitlines()[1])
            ...     ResultStore.create(directory, {"seed": 0}, resume=True).resumed
            seed: 0 -> 1
            True
        """
        config = canonical_config(config)
        directory = _run_directory(out_dir, name)
        path = directory / name
        lock = WriterLock(path)
        try:
            if path.exists():
                if overwrite:
                    remove_database(path)
                else:
                    finished = check_resumable(path, config)
                    if not resume:
                        state = "a finished" if finished else "an unfinished"
                        raise ConfigurationMismatchError(
                            f"{str(path)!r} already holds {state} run of this configuration: "
                            "use resume=True to continue it, or overwrite=True (--overwrite) "
                            "to run it again from scratch")
                    return cls(connect(path), path, resumed=True, lock=lock)
            connection = connect(path)
            try:
                with connection:
                    write_schema(connection, config, {}, now())
            except BaseException:
                connection.close()
                raise
        except BaseException:
            lock.release()
            raise
        return cls(connection, path, lock=lock)

    @classmethod
    def open(cls, out_dir: str | os.PathLike[str], *,
             name: str = DATABASE_NAME) -> ResultStore:
        """Open the database of an existing run for reading (and writing).

        Databases of earlier schema versions open too (for reading their results).

        Raises:
            FileNotFoundError: ``out_dir`` holds no ``results.sqlite`` (or ``name``).
            ValueError: the file is not an axiomcam results database.

        Examples:
            >>> import tempfile
            >>> with tempfile.TemporaryDirectory() as directory:
            ...     ResultStore.create(directory, {"seed": 3}).close()
            ...     with ResultStore.open(directory) as store:
            ...         store.config
            {'seed': 3}
        """
        path = Path(out_dir) / name
        if not path.is_file():
            raise FileNotFoundError(f"no results database {str(path)!r}: run evaluate first")
        connection = sqlite3.connect(path, timeout=BUSY_SECONDS)
        try:
            tables = {table for (table,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as error:
            connection.close()
            raise ValueError(f"{str(path)!r} is not an SQLite database: {error}") from error
        missing = set(TABLES[:5]) - tables
        if missing:
            connection.close()
            raise ValueError(
                f"{str(path)!r} is not an axiomcam results database "
                f"(tables {sorted(missing)} missing)"
            )
        return cls(connection, path)

    def close(self) -> None:
        """Close the connection and release the writer's lock (idempotent)."""
        self._connection.close()
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # ---------------------------------------------------------------- writing
    def write_batch(self, images: Iterable[ImageRow] = (), results: Iterable[ResultRow] = (),
                    curves: Iterable[CurveRow] = (),
                    problems: Iterable[ProblemRow] = (), *, batch: int | None = None,
                    details: Mapping[str, Any] | None = None) -> None:
        """Store one batch's rows in one transaction (all or nothing).

        Args:
            images: the batch's image rows.
            results: its result rows.
            curves: its curve rows.
            problems: its problem rows.
            batch: the batch's index in the run: the image and problem rows are stored
                with it and the batch is recorded as done (:meth:`done_batches`) in the
                same transaction. ``None``: rows as given, no batch recorded.
            details: the run's details so far (JSON data), replaced in the same
                transaction, so that they survive a crash with the rows they describe.

        Raises:
            NonFiniteValueError: a value (or curve abscissa, or probability) is NaN or
                infinite; the message names the image, method and metric, nothing of the
                batch is stored.
            sqlite3.IntegrityError: a row repeats an ``(image_id, method, metric)`` already
                stored, or the batch is already recorded (a bug in the caller).

        Examples:
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
            row = row._replace(
                predicted_probability=_check_finite(row.predicted_probability, where))
            image_rows.append(row if batch is None else row._replace(batch=batch))
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
        problem_rows = [ProblemRow(str(row.path), str(row.reason),
                                   row.batch if batch is None else batch) for row in problems]
        details_text = None if details is None else json.dumps(canonical_config(details),
                                                               sort_keys=True)
        with self._connection:  # one transaction; rolled back if anything raises
            self._connection.executemany(
                f"INSERT INTO images ({IMAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                image_rows)
            self._connection.executemany(
                "INSERT INTO results VALUES (?, ?, ?, ?)", result_rows)
            self._connection.executemany(
                "INSERT INTO curves VALUES (?, ?, ?, ?, ?, ?)", curve_rows)
            self._connection.executemany(
                "INSERT INTO problems (path, reason, batch) VALUES (?, ?, ?)", problem_rows)
            if batch is not None:
                self._connection.execute("INSERT INTO batches VALUES (?, ?, ?)",
                                         (batch, len(image_rows), now()))
            if details_text is not None:
                self._connection.execute("UPDATE run SET details = ? WHERE id = 1",
                                         (details_text,))

    def finish(self, details: Mapping[str, Any] | None = None) -> None:
        """Mark the run finished (now) and store ``details`` (JSON data) with it."""
        with self._connection:
            self._connection.execute(
                "UPDATE run SET finished = ?, details = ? WHERE id = 1",
                (now(), json.dumps(canonical_config(details or {}), sort_keys=True)),
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
        """What the run recorded: updated with every batch, completed when it finished."""
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
        columns = IMAGE_COLUMNS if self.schema_version >= 2 else \
            IMAGE_COLUMNS.replace("batch", "0")
        return [ImageRow(*row) for row in self._connection.execute(
            f"SELECT {columns} FROM images ORDER BY rowid")]

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
        batch = "batch" if self.schema_version >= 2 else "0"
        return [ProblemRow(*row) for row in self._connection.execute(
            f"SELECT path, reason, {batch} FROM problems ORDER BY rowid")]

    def done_batches(self) -> dict[int, list[str]]:
        """The batches whose rows are all stored: ``{batch: [image ids in order]}``
        (empty for databases of schema versions before 2, which did not record them)."""
        if self.schema_version < 2:
            return {}
        done: dict[int, list[str]] = {batch: [] for (batch,) in self._connection.execute(
            "SELECT batch FROM batches ORDER BY batch")}
        for image_id, batch in self._connection.execute(
                "SELECT image_id, batch FROM images ORDER BY rowid"):
            done.setdefault(batch, []).append(image_id)
        return done

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
        ``problems``, ``batches``)."""
        if table not in {"images", "results", "curves", "problems", "batches"}:
            raise ValueError(f"unknown table {table!r}")
        return self._connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def rows_by(rows: Sequence[ResultRow], *keys: str) -> dict[tuple, list[float]]:
    """Group result values by the named fields (``"method"``, ``"metric"``, ...).

    Examples:
        >>> rows = [ResultRow("a", "m", "x", 1.0), ResultRow("b", "m", "x", 3.0)]
        >>> rows_by(rows, "method", "metric")
        {('m', 'x'): [1.0, 3.0]}
    """
    grouped: dict[tuple, list[float]] = {}
    for row in rows:
        grouped.setdefault(tuple(getattr(row, key) for key in keys), []).append(row.value)
    return grouped
