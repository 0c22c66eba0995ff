"""Model files: state dicts (weights), whole pickled or TorchScript models, and class-name
files.

**Trust.** A pickled model file is read with ``torch.load(weights_only=False)``, which runs
code stored in the file: give only files you trust. Weights files are read with
``weights_only=True``, which cannot run code.

Example (a checkpoint read as a state dict, then loaded into a model it does not fit):
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from axiomcam.models import load_state_dict_file, read_state_dict
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder, "w.pth")
    ...     torch.save({"epoch": 3, "state_dict": {"module.fc.bias": torch.ones(2)}}, path)
    ...     read_state_dict(path)
    ...     torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    ...     try:
    ...         load_state_dict_file(torch.nn.Linear(4, 2), path, architecture="linear")
    ...     except ValueError as error:
    ...         print(str(error).split(": ", 1)[1])
    {'fc.bias': tensor([1., 1.])}
    1 key with another shape: weight (file (2, 3), model (2, 4))
"""

from __future__ import annotations

import json
import os
import sys
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from .checks import checked_file, first_line

__all__ = [
    "cwd_importable", "fit_state_dict", "load_state_dict_file", "read_class_names",
    "read_model_file", "read_state_dict",
]

# keys under which training scripts commonly nest the real state dict
_NESTED_STATE_KEYS = ("state_dict", "model", "model_state_dict")
_SHOWN = 5  # how many keys of each kind a weights-mismatch message lists


# ----------------------------------------------------------------------------- weights


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state-dict file safely (``torch.load(weights_only=True)``, on the CPU).

    A checkpoint dict holding the state dict under ``"state_dict"``, ``"model"`` or
    ``"model_state_dict"`` is unwrapped, and a ``module.`` prefix on every key (from
    ``nn.DataParallel``) is removed. Example: in the module docstring.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IsADirectoryError: ``path`` is a directory.
        ValueError: the file cannot be read with ``weights_only=True`` (corrupt, or a
            pickled full model) or holds no dict of tensors; the path is named.
    """
    path = checked_file(path, "weights file")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"cannot read the weights file {str(path)!r} as a state dict: {first_line(error)} "
            "(a whole pickled or TorchScript model goes to --model FILE, not --weights)"
        ) from error
    state = _unwrap_state_dict(loaded)
    if state is None:
        raise ValueError(
            f"the weights file {str(path)!r} holds a {type(loaded).__name__}, not a state "
            "dict (a dict of parameter names to tensors)"
        )
    return state


def load_state_dict_file(model: nn.Module, path: str | os.PathLike[str], *,
                         architecture: str) -> None:
    """Load a state-dict file into ``model`` (in place), checking that it fits first.
    Example: in the module docstring.

    Raises:
        FileNotFoundError, IsADirectoryError, ValueError: as :func:`read_state_dict`.
        ValueError: the file does not fit ``model``: as :func:`fit_state_dict`.
    """
    fit_state_dict(model, read_state_dict(path), Path(path), architecture)


def fit_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path | None,
                   architecture: str) -> None:
    """Load ``state`` (read from ``path``) into ``model`` (in place) when it fits exactly.

    Raises:
        ValueError: it does not fit: the message names ``path`` and ``architecture`` and
            lists the first 5 missing keys (in the model, not in the file), unexpected keys
            (in the file only) and keys whose shapes differ, with their counts.

    Examples:
        >>> import torch
        >>> model = torch.nn.Linear(2, 1)
        >>> fit_state_dict(model, {"weight": torch.ones(1, 2), "bias": torch.zeros(1)},
        ...                None, "linear")
        >>> model.weight.tolist()
        [[1.0, 1.0]]
    """
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mismatched = [
        f"{key} (file {tuple(state[key].shape)}, model {tuple(value.shape)})"
        for key, value in expected.items()
        if key in state and state[key].shape != value.shape
    ]
    problems = [
        _listing(keys, what)
        for keys, what in ((missing, "missing (in the model, not in the file)"),
                           (unexpected, "unexpected (in the file, not in the model)"),
                           (mismatched, "with another shape"))
        if keys
    ]
    if problems:
        raise ValueError(
            f"the weights file {str(path)!r} does not fit {architecture}: "
            + "; ".join(problems)
        )
    model.load_state_dict(state)


def _listing(keys: list[str], what: str) -> str:
    noun = "key" if len(keys) == 1 else "keys"
    shown = ", ".join(keys[:_SHOWN]) + (", ..." if len(keys) > _SHOWN else "")
    return f"{len(keys)} {noun} {what}: {shown}"


def _unwrap_state_dict(loaded: object) -> dict[str, torch.Tensor] | None:
    """The dict of tensors inside ``loaded`` (see :func:`read_state_dict`), or None."""
    for _ in range(3):  # checkpoints nest the state dict one level deep, rarely two
        if not isinstance(loaded, Mapping) or not loaded:
            return None
        if all(isinstance(key, str) and torch.is_tensor(value) for key, value in loaded.items()):
            state = dict(loaded)
            if all(key.startswith("module.") for key in state):
                state = {key.removeprefix("module."): value for key, value in state.items()}
            return state
        loaded = next((loaded[key] for key in _NESTED_STATE_KEYS
                       if isinstance(loaded.get(key), Mapping)), None)
    return None


# ----------------------------------------------------------------------------- whole models


def read_model_file(path: Path) -> nn.Module:
    """The model in a TorchScript archive or a full pickled model file (which runs code
    from the file: see the module docstring), on the CPU.

    A checkpoint dict that stores the whole model under ``"model"`` and a DataParallel
    wrapper are unwrapped.

    Raises:
        ValueError: the file cannot be read, is a torch.export archive, holds a state dict
            (then the architecture and ``--weights`` are asked for) or something else than
            a model; the path is named.

    Examples:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     torch.save(torch.nn.Linear(3, 2), Path(folder, "net.pt"))
        ...     read_model_file(Path(folder, "net.pt"))
        Linear(in_features=3, out_features=2, bias=True)
    """
    layout = _zip_layout(path)
    if "code" in layout:
        with warnings.catch_warnings():  # torch 2.x deprecates TorchScript with a FutureWarning
            warnings.simplefilter("ignore", FutureWarning)
            try:
                return torch.jit.load(str(path), map_location="cpu")
            except Exception as error:
                raise ValueError(
                    f"cannot read the TorchScript model {str(path)!r}: {first_line(error)}"
                ) from error
    if "archive_format" in layout:
        raise ValueError(
            f"{str(path)!r} is a torch.export archive, which axiomcam cannot hook: save the "
            "eager model instead (torch.save(model, FILE), or its state_dict with --weights)"
        )
    try:  # data only first: a state dict needs no code to read, and is the common mistake
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        loaded = _unpickle_model(path)
    if isinstance(loaded, Mapping) and isinstance(loaded.get("model"), nn.Module):
        loaded = loaded["model"]  # a checkpoint that stores the whole model
    if isinstance(loaded, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        loaded = loaded.module
    if isinstance(loaded, nn.Module):
        return loaded
    if _unwrap_state_dict(loaded) is not None:
        raise ValueError(
            f"{str(path)!r} is a state dict, not a model: give the architecture with "
            "--model NAME and this file with --weights"
        )
    raise ValueError(f"{str(path)!r} holds a {type(loaded).__name__}, not a model")


def _unpickle_model(path: Path) -> object:
    """``torch.load(weights_only=False)``: runs code from the file, so only for files the
    user trusts (see the module docstring)."""
    with cwd_importable():
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except (AttributeError, ImportError) as error:
            raise ValueError(
                f"cannot unpickle the model in {str(path)!r}: {error}. A pickled model needs "
                "its class importable under the module name it was saved from (not "
                "__main__); or save a state dict and use --model NAME --weights FILE"
            ) from error
        except Exception as error:
            raise ValueError(
                f"cannot read the model file {str(path)!r}: {first_line(error)}"
            ) from error


def _zip_layout(path: Path) -> set[str]:
    """The top entries inside a zip archive's root folder (empty for other files):
    TorchScript archives have ``code``, torch.save ones ``data.pkl``, torch.export ones
    ``archive_format``."""
    try:
        if not zipfile.is_zipfile(path):
            return set()
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return set()
    return {name.split("/")[1] for name in names if name.count("/") >= 1}


@contextmanager
def cwd_importable() -> Iterator[None]:
    """The current directory on ``sys.path`` (first, as ``python -m`` has it) while inside,
    so that a user's own module (a factory, a pickled model's class) imports.

    Examples:
        >>> import os, sys
        >>> with cwd_importable():
        ...     os.getcwd() in sys.path or "" in sys.path
        True
    """
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


# ----------------------------------------------------------------------------- classes


def read_class_names(path: str | os.PathLike[str]) -> list[str]:
    """Class names from a file, by output index.

    Formats: a JSON list of names; a JSON object ``{"0": name, "1": name, ...}`` whose keys
    are exactly ``0..N-1`` (values may be ``[wnid, name]`` pairs, as in
    ``imagenet_class_index.json``: the last item is the name); otherwise plain text with one
    name per line, surrounding whitespace stripped and blank lines skipped. A file is read
    as JSON when its first non-blank character is ``[`` or ``{``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IsADirectoryError: ``path`` is a directory.
        ValueError: not UTF-8, invalid JSON, a name that is not a string, JSON keys that
            are not ``0..N-1``, or no names at all; the path is named.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from axiomcam.models import read_class_names
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder, "classes.json")
        ...     _ = path.write_text('{"1": ["n02", "dog"], "0": ["n01", "cat"]}')
        ...     read_class_names(path)
        ['cat', 'dog']
    """
    path = checked_file(path, "classes file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"the classes file {str(path)!r} is not UTF-8 text: {error}") from error
    if text.lstrip()[:1] in ("[", "{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"the classes file {str(path)!r} is not valid JSON: {error}"
            ) from error
        names = _json_class_names(parsed, path)
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ValueError(f"the classes file {str(path)!r} has no class names")
    return names


def _json_class_names(parsed: object, path: Path) -> list[str]:
    if isinstance(parsed, dict):
        try:
            indices = {int(key): value for key, value in parsed.items()}
        except ValueError as error:
            raise ValueError(
                f"the classes file {str(path)!r} has a key that is not a class index: {error}"
            ) from error
        if sorted(indices) != list(range(len(indices))):
            raise ValueError(
                f"the keys of the classes file {str(path)!r} must be the indices 0 to "
                f"{len(indices) - 1}, each once"
            )
        values = [indices[index] for index in range(len(indices))]
    elif isinstance(parsed, list):
        values = parsed
    else:
        raise ValueError(
            f"the classes file {str(path)!r} holds a JSON {type(parsed).__name__}, not a list "
            "of names or an object {\"0\": name, ...}"
        )
    names = []
    for index, value in enumerate(values):
        if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
            value = value[-1]  # [wnid, name]
        if not isinstance(value, str):
            raise ValueError(
                f"class {index} in the classes file {str(path)!r} is not a name: {value!r}"
            )
        names.append(value.strip())
    return names
