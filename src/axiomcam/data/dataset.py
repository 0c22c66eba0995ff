"""What every data set is: :class:`Sample` objects (an 8-bit RGB image at its original
resolution, its class label, its ground-truth boxes) from a :class:`Dataset`, which records
the files it skipped as :class:`Problem` objects; and class labels matched to the model's
class names (:func:`class_index`).

A data set never stops mid-run on a bad file: an unreadable image, or a box that does not
fit its image, is logged as a warning on the ``"axiomcam"`` logger, recorded in
:attr:`Dataset.problems` and skipped. Mistakes that can be seen before any image is read (a
class name the model does not know, a malformed CSV row or annotation file, a missing
folder) raise at once, when the data set is opened.
"""

from __future__ import annotations

import abc
import difflib
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from PIL import Image

__all__ = [
    "Dataset",
    "Problem",
    "Sample",
    "checked_class_names",
    "class_index",
    "normalise_name",
]

logger = logging.getLogger("axiomcam")


@dataclass(frozen=True, eq=False)
class Sample:
    """One image of a data set, with its label and ground-truth boxes.

    Attributes:
        id: unique in its data set (the path relative to the data root, or
            ``"composite-00017"``).
        image: 8-bit RGB PIL image at its original resolution.
        label: the class the image is labelled with (an index into the model's class
            names), or ``None`` if unknown.
        boxes: ``(n, 4)`` float ``x0, y0, x1, y1`` in the image's pixels (``x1``/``y1``
            exclusive); ``(0, 4)`` if the image has none.
        box_labels: ``(n,)`` long class index of each box.
        path: the file the image came from, if any.
        masks: ``(n, H, W)`` bool, the object's pixels of each box (its silhouette: the
            composite benchmark's, or read from a mask file), or ``None`` if unknown.

    Examples:
        >>> import torch
        >>> from PIL import Image
        >>> sample = Sample("a.png", Image.new("RGB", (4, 4)), 3, torch.zeros(0, 4),
        ...                 torch.zeros(0, dtype=torch.long))
        >>> sample.label, tuple(sample.boxes.shape), sample.path
        (3, (0, 4), None)
    """

    id: str
    image: Image.Image
    label: int | None
    boxes: torch.Tensor
    box_labels: torch.Tensor
    path: str | None = None
    masks: torch.Tensor | None = None


@dataclass(frozen=True)
class Problem:
    """A file a data set skipped, and why.

    Examples:
        >>> Problem("cats/broken.jpg", "corrupt or truncated").reason
        'corrupt or truncated'
    """

    path: str
    reason: str


class Dataset(abc.ABC):
    """What the evaluation runner iterates over: samples, the class names, what went wrong.

    Attributes:
        class_names: the model's class names that labels index into.
        problems: the bad entries met so far while iterating (each also logged as a
            warning on the ``"axiomcam"`` logger); an entry is recorded once however many
            times the data set is iterated.
        description: a short text for run configurations (``"composite:200 (seed 0)"``, a
            folder path).

    ``len(dataset)`` counts the entries, bad ones included; iteration skips the bad ones.

    Examples:
        >>> class Empty(Dataset):
        ...     def __len__(self):
        ...         return 0
        ...     def __iter__(self):
        ...         return iter(())
        >>> dataset = Empty(["cat"], "nothing")
        >>> len(dataset), dataset.problems, dataset.description
        (0, [], 'nothing')
    """

    def __init__(self, class_names: Sequence[str], description: str) -> None:
        self.class_names = checked_class_names(class_names)
        self.problems: list[Problem] = []
        self.description = description

    @abc.abstractmethod
    def __len__(self) -> int:
        """The number of entries, before any bad file is skipped."""

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Sample]:
        """The good samples, in a fixed order; bad entries are recorded and skipped."""

    def first_images_of(self, description: str) -> int | None:
        """``N`` if the data set described by ``description`` is this one's first ``N``
        images (a shorter run of the same benchmark and seed), else ``None`` (also when it
        cannot tell). The evaluation runner then extends a run of that data set instead of
        refusing it; this base class knows no such relation.

        Examples:
            >>> Empty = type("Empty", (Dataset,), {"__len__": lambda self: 0,
            ...                                    "__iter__": lambda self: iter(())})
            >>> print(Empty(["cat"], "nothing").first_images_of("nothing"))
            None
        """
        return None

    def _report(self, path: str, reason: str) -> None:
        problem = Problem(path, reason)
        if problem not in self.problems:
            self.problems.append(problem)
            logger.warning("skipping %s: %s", path, reason)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r}, {len(self)} entries)"


def checked_class_names(class_names: Sequence[str]) -> list[str]:
    """``class_names`` as a list, checked to be a non-empty sequence of strings.

    Raises:
        TypeError: not a sequence (or a single string), or an element that is not a str.
        ValueError: an empty sequence.

    Examples:
        >>> checked_class_names(("tabby", "espresso"))
        ['tabby', 'espresso']
    """
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise TypeError(
            f"class_names must be a sequence of strings (the model's class names), not "
            f"{type(class_names).__name__}"
        )
    names = list(class_names)
    if not names:
        raise ValueError("class_names is empty: pass the model's class names")
    for position, name in enumerate(names):
        if not isinstance(name, str):
            raise TypeError(f"class_names[{position}] is a {type(name).__name__}, not a str")
    return names


# ---------------------------------------------------------------------------------------
# class labels


def normalise_name(name: str) -> str:
    """A class name as :func:`class_index` compares it: case-folded, underscores read as
    spaces, runs of white space as one space.

    Examples:
        >>> normalise_name("  Egyptian_cat "), normalise_name("EGYPTIAN   cat")
        ('egyptian cat', 'egyptian cat')
    """
    return " ".join(name.replace("_", " ").split()).casefold()


_INTEGER = re.compile(r"[+-]?\d+")


def class_index(label: str | int, class_names: Sequence[str], source: str | None = None) -> int:
    """The index of a class label among ``class_names``.

    A label is matched against the class names case-insensitively, with underscores read as
    spaces and runs of white space as one space (``"Egyptian_cat"``, ``"egyptian cat"``
    and ``"Egyptian cat"`` are the same); a string of digits (or an int) is an index.

    Args:
        label: a class name, or an index as an int or a string of digits.
        class_names: the model's class names.
        source: where the label was read (a file, a line), named in error messages.

    Returns:
        the class index, ``0 <= index < len(class_names)``.

    Raises:
        ValueError: the label is not a class name (the message names it, its source and the
            nearest class names), names two classes (give the index instead), or is an
            index out of range.
        TypeError: the label is neither a str nor an int.

    Examples:
        >>> names = ["tabby", "Egyptian cat", "espresso"]
        >>> class_index("egyptian_cat", names), class_index("2", names), class_index(0, names)
        (1, 2, 0)
    """
    where = f" (in {source})" if source else ""
    if isinstance(label, bool) or not isinstance(label, (str, int)):
        raise TypeError(f"a class label must be a str or int, not {type(label).__name__}{where}")
    if isinstance(label, int) or _INTEGER.fullmatch(label.strip()):
        index = int(label)
        if not 0 <= index < len(class_names):
            raise ValueError(
                f"class index {label!r}{where} is out of range: the model has "
                f"{len(class_names)} classes (0..{len(class_names) - 1})"
            )
        return index
    wanted = normalise_name(label)
    matches = [i for i, name in enumerate(class_names) if normalise_name(name) == wanted]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ValueError(
            f"class label {label!r}{where} names {len(matches)} classes "
            f"({', '.join(f'{i}: {class_names[i]!r}' for i in matches)}): use the index"
        )
    by_normalised = {normalise_name(name): name for name in class_names}
    near = difflib.get_close_matches(wanted, list(by_normalised), n=5, cutoff=0.6)
    hint = (
        "near matches: " + ", ".join(repr(by_normalised[name]) for name in near)
        if near
        else "no near match"
    )
    raise ValueError(
        f"unknown class label {label!r}{where}: not one of the model's {len(class_names)} "
        f"class names ({hint})"
    )
