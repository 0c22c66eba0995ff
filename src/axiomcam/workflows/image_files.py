"""Image files in, failures out: what ``explain`` and ``compare`` share before and after
explaining.

- :func:`collect_images` turns files, directories and glob patterns into image paths;
  what matches nothing becomes a :class:`Failure`, never an exception.
- :func:`image_batches` reads them (:func:`load_images`) a batch at a time, an
  unreadable file becoming a failure too, and a batch that cannot be explained for a
  reason of its data (:data:`BATCH_ERRORS`) fails its images only
  (:func:`failing_alone`).
- :func:`print_failures` lists the failures at the end of a run.

Examples:
    >>> [list(batch) for batch in in_batches([1, 2, 3, 4, 5], 2)]
    [[1, 2], [3, 4], [5]]
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from PIL import Image
from tqdm.auto import tqdm

from ..data import IMAGE_EXTENSIONS
from ..images import ARRAY_SUFFIX, load_array, load_image

__all__ = [
    "BATCH_ERRORS", "Failure", "collect_images", "failing_alone", "image_batches",
    "in_batches", "load_images", "print_failures",
]

#: what explaining a batch can raise for reasons of the data (NaN scores, a model that
#: rejects the input): the batch's images fail, the run goes on
BATCH_ERRORS = (ValueError, TypeError, RuntimeError)
# more images than this get a progress bar
_PROGRESS_FROM = 4

Item = TypeVar("Item")


@dataclass(frozen=True)
class Failure:
    """An input that could not be explained: the path (or argument) and why."""

    path: str
    reason: str


def collect_images(arguments: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], list[Failure]]:
    """Image paths from files, directories (their image files and ``.npy`` arrays, sorted,
    not recursive) and glob patterns (``photos/**/*.jpg``, recursive), in the order given,
    without repeats.

    A missing file, a directory without image files and a pattern that matches nothing
    are returned as failures, so that the other inputs are still processed.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> folder = Path(tempfile.mkdtemp())
        >>> for name in ("b.png", "a.jpg", "notes.txt"):
        ...     _ = (folder / name).write_bytes(b"")
        >>> paths, failures = collect_images([folder, folder / "missing.png"])
        >>> [path.name for path in paths], failures[0].reason
        (['a.jpg', 'b.png'], 'no such file or directory')
    """
    paths: list[Path] = []
    failures: list[Failure] = []
    for argument in arguments:
        text = os.fspath(argument)
        path = Path(text)
        if path.is_dir():
            found = sorted(child for child in path.iterdir() if child.is_file()
                           and child.suffix.lower() in (*IMAGE_EXTENSIONS, ARRAY_SUFFIX))
            if not found:
                failures.append(Failure(text, "directory has no image files ("
                                        f"{', '.join(IMAGE_EXTENSIONS)}) or {ARRAY_SUFFIX} "
                                        "arrays"))
            paths.extend(found)
        elif path.exists():
            paths.append(path)
        elif glob.has_magic(text):
            matched = sorted(Path(match) for match in glob.glob(text, recursive=True))
            matched = [match for match in matched if match.is_file()]
            if not matched:
                failures.append(Failure(text, "the pattern matches no file"))
            paths.extend(matched)
        else:
            failures.append(Failure(text, "no such file or directory"))
    return list(dict.fromkeys(paths)), failures


def load_images(paths: Sequence[Path], channels: int = 3
                ) -> tuple[list[tuple[Path, Image.Image]], list[Failure]]:
    """``(path, RGB image)`` for each readable file (:func:`axiomcam.images.load_image`),
    and a failure for each other one. A ``.npy`` file is an array for a model of
    ``channels`` channels (:func:`axiomcam.images.load_array`: a picture carrying the
    values); an image file for a model of other than 1 or 3 channels is a failure that
    says to give arrays."""
    loaded, failures = [], []
    for path in paths:
        try:
            if path.suffix.lower() == ARRAY_SUFFIX:
                loaded.append((path, load_array(path, channels)))
            elif channels not in (1, 3):
                failures.append(Failure(str(path), _image_for_channels(path, channels)))
            else:
                loaded.append((path, load_image(path)))
        except (OSError, ValueError) as error:
            failures.append(Failure(str(path), str(error)))
    return loaded, failures


def _image_for_channels(path: Path, channels: int) -> str:
    """Why an image file cannot feed a model of ``channels`` channels."""
    return (f"an image file has 1 (grey) or 3 (RGB) channels, but the model takes {channels}: "
            f"give a {ARRAY_SUFFIX} array ({channels}, H, W) or (H, W, {channels}) instead")


def image_batches(paths: Sequence[Path], batch_size: int, failures: list[Failure], *,
                  progress: bool | None, description: str, channels: int = 3
                  ) -> Iterator[list[tuple[Path, Image.Image]]]:
    """The readable images of ``paths`` as ``(path, RGB image)``, ``batch_size`` files at a
    time (a batch of unreadable files only is skipped); each unreadable file is appended to
    ``failures``. ``channels``: the model's (see :func:`load_images`). A progress bar over
    the files (``progress``; ``None``: when there are more than a few) advances after each
    batch."""
    show = len(paths) > _PROGRESS_FROM if progress is None else progress
    with tqdm(total=len(paths), desc=description, unit="image", disable=not show) as bar:
        for batch_paths in in_batches(list(paths), batch_size):
            loaded, load_failures = load_images(batch_paths, channels)
            failures.extend(load_failures)
            if loaded:
                yield loaded
            bar.update(len(batch_paths))


@contextmanager
def failing_alone(loaded: Sequence[tuple[Path, Image.Image]],
                  failures: list[Failure]) -> Iterator[None]:
    """Explain a batch, whose images all fail if that raises one of :data:`BATCH_ERRORS`
    (the error appended to ``failures`` for each); the run goes on."""
    try:
        yield
    except BATCH_ERRORS as error:
        failures.extend(Failure(str(path), f"{type(error).__name__}: {error}")
                        for path, _ in loaded)


def in_batches(items: Sequence[Item], size: int) -> Iterator[Sequence[Item]]:
    """``items`` in consecutive slices of ``size`` (the last one shorter)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def print_failures(failures: Sequence[Failure], echo: Callable[[str], None]) -> None:
    """One line per failure: ``axiomcam: failed: PATH: reason``."""
    for failure in failures:
        echo(f"axiomcam: failed: {failure.path}: {failure.reason}")
