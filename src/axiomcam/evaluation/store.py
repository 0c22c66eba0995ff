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
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

try:
    import fcntl
except ImportError:  # Windows: no advisory locks
    fcntl = None  # type: ignore[assignment]

__all__ = [
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
    "check_resumable",
    "differences",
    "extend_run",
    "merge_details",
    "merge_runs",
    "remove_database",
    "rows_by",
]

#: the database's file name inside the output directory
DATABASE_NAME = "results.sqlite"
#: the layout version of the database (``PRAGMA user_version``); 0 and 1: before resuming
SCHEMA_VERSION = 2

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
    height INTEGER NOT NULL,
    batch INTEGER NOT NULL
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
    reason TEXT NOT NULL,
    batch INTEGER NOT NULL
);
CREATE TABLE batches (
    batch INTEGER PRIMARY KEY,
    images INTEGER NOT NULL,
    finished TEXT NOT NULL
);
CREATE INDEX images_by_batch ON images (batch);
"""
_TABLES = ("run", "images", "results", "curves", "problems", "batches")
_IMAGE_COLUMNS = "image_id, path, label, predicted, predicted_probability, width, height, batch"


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

    Example:
        >>> issubclass(NonFiniteValueError, ValueError)
        True
    """


class RunInProgressError(RuntimeError):
    """Another process is writing the same database (a second ``evaluate`` of the same run
    started while the first still runs).

    Example:
        >>> issubclass(RunInProgressError, RuntimeError)
        True
    """


class ConfigurationMismatchError(ValueError):
    """The output directory already holds a run (of another configuration, or an unfinished
    or finished run of this one) and overwriting was not asked for.

    Example:
        >>> issubclass(ConfigurationMismatchError, ValueError)
        True
    """


#: how long a connection waits for another process's write lock before giving up
_BUSY_SECONDS = 60.0


class _WriterLock:
    """An exclusive ``flock`` on ``DATABASE.lock`` while a process writes ``DATABASE``, so a
    second writer is refused at once instead of failing later on a batch the first one
    stored (no locking where ``fcntl`` does not exist)."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".lock")
        self._file = None
        if fcntl is None:
            return
        handle = open(self.path, "a+")  # noqa: SIM115  (held until release)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunInProgressError(
                f"another process (pid {holder}) is writing {str(database)!r}: wait for it "
                "to finish or stop it; two runs of one configuration in one directory would "
                "compute the same batches") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self.path.unlink(missing_ok=True)
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def _connect(path: Path) -> sqlite3.Connection:
    """A connection for writing, in write-ahead-log mode: a killed writer leaves the
    database consistent (its last transaction is either whole or absent)."""
    connection = sqlite3.connect(path, timeout=_BUSY_SECONDS)
    connection.execute("PRAGMA journal_mode = WAL")
    return connection


def _write_schema(connection: sqlite3.Connection, config: Mapping[str, Any],
                  details: Mapping[str, Any], started: str) -> None:
    """The tables, the schema version and the ``run`` row of a new database."""
    connection.executescript(_SCHEMA)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    connection.execute(
        "INSERT INTO run (id, config, details, started) VALUES (1, ?, ?, ?)",
        (json.dumps(config, sort_keys=True), json.dumps(details, sort_keys=True), started))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _canonical(config: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration as it reads back from JSON (tuples become lists, keys strings)."""
    try:
        return json.loads(json.dumps(config, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise TypeError(f"the run configuration must be JSON data: {error}") from error


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (old value, new value)}`` per value that differs between two configurations
    as they read back from JSON (a tuple equals a list), nested keys spelled
    ``parameters.seed``.

    Example:
        >>> differences({"seed": 0, "parameters": {"steps": 5, "p": (1, 2)}},
        ...             {"seed": 0, "parameters": {"steps": 6, "p": [1, 2]}})
        {'parameters.steps': (5, 6)}
    """
    def walk(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str) -> None:
        for key in sorted(set(old) | set(new)):
            before, after = old.get(key), new.get(key)
            if isinstance(before, Mapping) and isinstance(after, Mapping):
                walk(before, after, f"{prefix}{key}.")
            elif before != after:
                found[f"{prefix}{key}"] = (before, after)

    found: dict[str, tuple[Any, Any]] = {}
    walk(_canonical(old), _canonical(new), "")
    return found


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


def remove_database(path: str | os.PathLike[str]) -> None:
    """Delete an SQLite database and its journal / write-ahead-log files, if present."""
    path = Path(path)
    for suffix in ("", "-journal", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def _read_header(path: Path) -> tuple[int, dict[str, Any], bool]:
    """``(schema version, configuration, finished)`` of an existing database, or
    :class:`ConfigurationMismatchError` when it is not a readable axiomcam database."""
    try:
        with ResultStore.open(path.parent, name=path.name) as existing:
            return existing.schema_version, existing.config, existing.finished is not None
    except (sqlite3.DatabaseError, ValueError) as error:
        raise ConfigurationMismatchError(
            f"{str(path)!r} exists but is not a readable axiomcam database ({error}); "
            "use another output directory or overwrite=True (--overwrite) to replace it"
        ) from error


def _check_schema(path: Path, version: int, action: str) -> None:
    if version != SCHEMA_VERSION:
        raise ConfigurationMismatchError(
            f"{str(path)!r} was written by another axiomcam version (database schema "
            f"{version}; this version writes schema {SCHEMA_VERSION}), so its run cannot be "
            f"{action}: use another output directory, or overwrite=True (--overwrite) to "
            "delete the old results")


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

    Example:
        >>> import tempfile
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
    version, _, _ = _read_header(path)
    _check_schema(path, version, "extended")
    text = json.dumps(_canonical(config), sort_keys=True)
    lock = _WriterLock(path)
    try:
        connection = _connect(path)
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


def check_resumable(path: str | os.PathLike[str], config: Mapping[str, Any]) -> bool:
    """Check that the database at ``path`` holds a run of ``config`` that can be continued.

    Returns:
        whether that run had finished.

    Raises:
        ConfigurationMismatchError: not an axiomcam database, one of another schema
            version (written by another axiomcam version), or of another configuration
            (the message lists the differences: model, methods, versions, ...).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     ResultStore.create(directory, {"seed": 0}).close()
        ...     check_resumable(Path(directory) / DATABASE_NAME, {"seed": 0})
        False
    """
    path = Path(path)
    config = _canonical(config)
    version, old, finished = _read_header(path)
    _check_schema(path, version, "continued")
    differing = differences(old, config)
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
                 resumed: bool = False, lock: _WriterLock | None = None) -> None:
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

        Example:
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
        config = _canonical(config)
        directory = _run_directory(out_dir, name)
        path = directory / name
        lock = _WriterLock(path)
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
                    return cls(_connect(path), path, resumed=True, lock=lock)
            connection = _connect(path)
            try:
                with connection:
                    _write_schema(connection, config, {}, _now())
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

        Example:
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
        connection = sqlite3.connect(path, timeout=_BUSY_SECONDS)
        try:
            tables = {table for (table,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as error:
            connection.close()
            raise ValueError(f"{str(path)!r} is not an SQLite database: {error}") from error
        missing = set(_TABLES[:5]) - tables
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
            images, results, curves, problems: the batch's rows.
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
        details_text = None if details is None else json.dumps(_canonical(details),
                                                               sort_keys=True)
        with self._connection:  # one transaction; rolled back if anything raises
            self._connection.executemany(
                f"INSERT INTO images ({_IMAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                image_rows)
            self._connection.executemany(
                "INSERT INTO results VALUES (?, ?, ?, ?)", result_rows)
            self._connection.executemany(
                "INSERT INTO curves VALUES (?, ?, ?, ?, ?, ?)", curve_rows)
            self._connection.executemany(
                "INSERT INTO problems (path, reason, batch) VALUES (?, ?, ?)", problem_rows)
            if batch is not None:
                self._connection.execute("INSERT INTO batches VALUES (?, ?, ?)",
                                         (batch, len(image_rows), _now()))
            if details_text is not None:
                self._connection.execute("UPDATE run SET details = ? WHERE id = 1",
                                         (details_text,))

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
        columns = _IMAGE_COLUMNS if self.schema_version >= 2 else \
            _IMAGE_COLUMNS.replace("batch", "0")
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


def merge_details(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The details of several parts of one run combined: numbers summed (seconds, image
    counts), mappings merged key by key the same way, anything else taken from the first
    part that has it.

    Example:
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
    lock = _WriterLock(target)
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
            _write_schema(connection, config, merge_details(details), min(started))
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
    f"INSERT INTO main.images SELECT {_IMAGE_COLUMNS} FROM temp.staged_images "
    "ORDER BY batch, position",
    "INSERT INTO main.results SELECT image_id, method, metric, value "
    "FROM temp.staged_results ORDER BY batch, position",
    "INSERT INTO main.curves SELECT image_id, method, curve, step, x, value "
    "FROM temp.staged_curves ORDER BY batch, position",
    "INSERT INTO main.problems SELECT path, reason, batch FROM temp.staged_problems "
    "ORDER BY batch, position",
    "INSERT INTO main.batches SELECT * FROM temp.staged_batches ORDER BY batch",
)


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
