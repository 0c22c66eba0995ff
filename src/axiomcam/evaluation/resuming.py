"""Opening and closing a run's databases: a run continued after an interruption, a run
extended to more images of the same data set, the per-process databases of a distributed
run, and their merge at the end.

A run of the same configuration in the same directory skips the batches done
(:func:`open_run` returns them, :func:`check_unchanged` refuses a data set that changed);
a run on more images of the same data set (``composite:64``, then ``composite:200``)
extends the one there (:func:`~axiomcam.evaluation.merging.extend_run`); under
``torchrun`` each process writes ``out_dir/parts/rank-R.sqlite`` and rank 0 merges them
(:func:`finish_run`). See ``docs/scaling.md``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..data import Dataset, Sample
from . import distributed
from .database import DATABASE_NAME, differences, remove_database
from .groups import GROUPS
from .merging import extend_run, merge_runs
from .store import ResultStore, as_if_current, check_resumable

__all__ = ["PARTS_FOLDER", "check_unchanged", "finish_run", "open_run", "part_paths"]

#: where each process of a distributed run keeps its database until rank 0 merges them
PARTS_FOLDER = "parts"

#: the parameters that count a run's first images a group measures (``sanity_images``):
#: an extended run may change them if the images already done keep their rows
FIRST_IMAGE_COUNTS = tuple(f"parameters.{group.needs.first_images}" for group in GROUPS
                           if group.needs.first_images is not None)


def part_paths(out_dir: str | os.PathLike[str]) -> list[Path]:
    """The per-process databases of a distributed run (deleted once merged), sorted."""
    return sorted((Path(out_dir) / PARTS_FOLDER).glob("rank-*.sqlite"))


def _extended_data(old: Mapping[str, Any], config: Mapping[str, Any],
                   dataset: Dataset) -> tuple[str, int] | None:
    """The old run's data description and image count if ``config`` is the stored
    configuration ``old`` on more images of the same data set, else ``None``.

    Only the data set's size may differ, and a count of first images a group measures
    (``sanity_images``) if the images already done keep their rows: the first
    ``min(count, old image count)`` get them either way.
    """
    differing = differences(as_if_current(old, config), config)
    if "data" not in differing or not set(differing) <= {"data", *FIRST_IMAGE_COUNTS}:
        return None
    old_data = old["data"]
    old_count = dataset.first_images_of(old_data) if isinstance(old_data, str) else None
    if old_count is None:
        return None
    for key in FIRST_IMAGE_COUNTS:
        before, after = differing.get(key, (0, 0))
        if not isinstance(before, int) or min(before, old_count) != min(after, old_count):
            return None
    return old_data, old_count


def _databases(out_dir: str | os.PathLike[str]) -> list[Path]:
    """The run's database and its per-process parts, those that exist."""
    return [path for path in (Path(out_dir) / DATABASE_NAME, *part_paths(out_dir))
            if path.exists()]


def _extend_or_check(existing: list[Path], config: dict[str, Any],
                     group: distributed.ProcessGroup, dataset: Dataset) -> str | None:
    """Extend the databases of a shorter run of the same data (rank 0), then check that
    every one may be resumed with ``config``; the data description of the run extended."""
    extended, to_extend = None, []
    for path in existing:
        with ResultStore.open(path.parent, name=path.name) as previous:
            found = _extended_data(previous.config, config, dataset)
        if found is not None:
            extended, old_count = found
            to_extend.append((path, old_count))
    group.barrier()  # every rank has read the old configurations
    if group.is_main:
        for path, old_count in to_extend:
            # the full batches stay; a partial last one is computed again, whole
            extend_run(path, config,
                       kept_batches=old_count // config["parameters"]["batch_size"])
    group.barrier()  # and every database is extended before anyone checks them
    for path in existing:
        check_resumable(path, config)
    return extended


def open_run(out_dir: str | os.PathLike[str], config: dict[str, Any],
             group: distributed.ProcessGroup, dataset: Dataset, *,
             overwrite: bool) -> tuple[ResultStore, dict[int, list[str]], str | None]:
    """This process's database (``results.sqlite`` on one process, ``parts/rank-R.sqlite``
    on several), the batches already done by any earlier run of the configuration, and the
    data description of the run this one extends (``None``: none).

    A run of the same configuration on fewer images of the same data set (``composite:64``
    then ``composite:200``) is extended: its rows stay, it takes the new configuration and
    only the new batches are computed. Every process checks every database of the
    directory before anything is written (so a refusal happens on all ranks alike); rank 0
    deletes them when overwriting, or extends them; the done batches are read before any
    process writes.
    """
    existing = _databases(out_dir)
    extended = None
    if not overwrite:
        extended = _extend_or_check(existing, config, group, dataset)
    elif group.is_main:
        for path in existing:
            remove_database(path)
    group.barrier()
    done: dict[int, list[str]] = {}
    for path in _databases(out_dir):
        with ResultStore.open(path.parent, name=path.name) as previous:
            for batch, ids in previous.done_batches().items():
                done.setdefault(batch, ids)
    group.barrier()  # nobody writes before everybody has read
    name = DATABASE_NAME if group.world_size == 1 else \
        f"{PARTS_FOLDER}/rank-{group.rank:05d}.sqlite"
    return ResultStore.create(out_dir, config, resume=True, name=name), done, extended


def check_unchanged(batch: int, stored: list[str], unique: list[Sample],
                    dataset: Dataset) -> None:
    """Refuse to resume when batch ``batch`` of the data set now holds other images than
    the ``stored`` ones (``unique``: its samples, duplicates left out).

    Raises:
        ValueError: the ids differ; the message names a few of each.
    """
    ids = [sample.id for sample in unique]
    if ids != stored:
        raise ValueError(
            f"{dataset.description} changed since this run started: batch {batch} held "
            f"{len(stored)} images ({', '.join(stored[:3])}...) and now holds {len(ids)} "
            f"({', '.join(ids[:3])}...); resuming would mix two data sets: use another "
            "output directory, or --overwrite")


def finish_run(out_dir: str | os.PathLike[str]) -> Path:
    """Merge the processes' databases into ``results.sqlite`` (if the run had several) and
    mark it finished, with its image count."""
    parts = part_paths(out_dir)
    if parts:
        merge_runs(out_dir, parts)
        folder = Path(out_dir) / PARTS_FOLDER
        for stale in folder.glob("*.lock"):  # left by killed ranks; every rank is done now
            stale.unlink()
        folder.rmdir()
    with ResultStore.open(out_dir) as store:
        if store.finished is None:
            store.finish({**store.details, "images": store.count("images")})
        return store.path
