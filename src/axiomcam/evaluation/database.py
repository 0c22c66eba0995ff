"""The SQLite layer under :mod:`axiomcam.evaluation.store`: the schema, one writer at a
time, configurations as JSON, and the errors a database can refuse a run with.

The tables are described in :mod:`axiomcam.evaluation.store`; this module writes them
(:func:`write_schema`), opens connections in write-ahead-log mode (:func:`connect`), locks
a database for its one writer (:class:`WriterLock`) and compares configurations as they
read back from JSON (:func:`canonical_config`, :func:`differences`).

Examples:
    >>> differences({"seed": 0, "methods": ("gradcam",)}, {"seed": 1, "methods": ["gradcam"]})
    {'seed': (0, 1)}
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no advisory locks
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "BUSY_SECONDS",
    "DATABASE_NAME",
    "IMAGE_COLUMNS",
    "SCHEMA_VERSION",
    "TABLES",
    "ConfigurationMismatchError",
    "RunInProgressError",
    "WriterLock",
    "canonical_config",
    "check_schema_version",
    "connect",
    "differences",
    "now",
    "remove_database",
    "write_schema",
]

#: the database's file name inside the output directory
DATABASE_NAME = "results.sqlite"
#: the layout version of the database (``PRAGMA user_version``); 0 and 1: before resuming
SCHEMA_VERSION = 2

SCHEMA = """
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
#: the tables of a database, in the order of :data:`SCHEMA` (``batches`` came with schema 2)
TABLES = ("run", "images", "results", "curves", "problems", "batches")
#: the columns of the ``images`` table, in order
IMAGE_COLUMNS = "image_id, path, label, predicted, predicted_probability, width, height, batch"

#: how long a connection waits for another process's write lock before giving up
BUSY_SECONDS = 60.0


class RunInProgressError(RuntimeError):
    """Another process is writing the same database (a second ``evaluate`` of the same run
    started while the first still runs).

    Examples:
        >>> issubclass(RunInProgressError, RuntimeError)
        True
    """


class ConfigurationMismatchError(ValueError):
    """The output directory already holds a run (of another configuration, or an unfinished
    or finished run of this one) and overwriting was not asked for.

    Examples:
        >>> issubclass(ConfigurationMismatchError, ValueError)
        True
    """


class WriterLock:
    """An exclusive ``flock`` on ``DATABASE.lock`` while a process writes ``DATABASE``, so a
    second writer is refused at once instead of failing later on a batch the first one
    stored (no locking where ``fcntl`` does not exist).

    Raises:
        RunInProgressError: another process holds the lock (its pid is named).
    """

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
        """Remove the lock file and release the lock (idempotent)."""
        if self._file is not None:
            self.path.unlink(missing_ok=True)
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def connect(path: Path) -> sqlite3.Connection:
    """A connection for writing, in write-ahead-log mode: a killed writer leaves the
    database consistent (its last transaction is either whole or absent)."""
    connection = sqlite3.connect(path, timeout=BUSY_SECONDS)
    connection.execute("PRAGMA journal_mode = WAL")
    return connection


def write_schema(connection: sqlite3.Connection, config: Mapping[str, Any],
                 details: Mapping[str, Any], started: str) -> None:
    """The tables, the schema version and the ``run`` row of a new database."""
    connection.executescript(SCHEMA)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    connection.execute(
        "INSERT INTO run (id, config, details, started) VALUES (1, ?, ?, ?)",
        (json.dumps(config, sort_keys=True), json.dumps(details, sort_keys=True), started))


def now() -> str:
    """The current UTC time, ISO 8601 to the second (how the database writes times)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def canonical_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration as it reads back from JSON (tuples become lists, keys strings).

    Raises:
        TypeError: ``config`` is not JSON data (or holds NaN or infinity).

    Examples:
        >>> canonical_config({"p": (1, 2), "q": {"r": None}})
        {'p': [1, 2], 'q': {'r': None}}
    """
    try:
        return json.loads(json.dumps(config, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise TypeError(f"the run configuration must be JSON data: {error}") from error


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (old value, new value)}`` per value that differs between two configurations
    as they read back from JSON (a tuple equals a list), nested keys spelled
    ``parameters.seed``.

    Examples:
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
    walk(canonical_config(old), canonical_config(new), "")
    return found


def check_schema_version(path: Path, version: int, action: str) -> None:
    """Refuse to continue (``action``: "continued", "extended") a run whose database has
    another schema version than this axiomcam writes.

    Raises:
        ConfigurationMismatchError: ``version`` is not :data:`SCHEMA_VERSION`.
    """
    if version == SCHEMA_VERSION:
        return
    written_by = f"another axiomcam version (database schema {version}; this version " \
        f"writes schema {SCHEMA_VERSION})"
    raise ConfigurationMismatchError(
        f"{str(path)!r} was written by {written_by}, so its run cannot be {action}: use "
        "another output directory, or overwrite=True (--overwrite) to delete the old results")


def remove_database(path: str | os.PathLike[str]) -> None:
    """Delete an SQLite database and its journal / write-ahead-log files, if present."""
    path = Path(path)
    for suffix in ("", "-journal", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
