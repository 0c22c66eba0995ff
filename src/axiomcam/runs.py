"""Explaining image files: what ``axiomcam explain`` and ``axiomcam compare`` do.

- :func:`collect_images` turns files, directories and glob patterns into image paths;
  what matches nothing becomes a :class:`Failure`, never an exception.
- :func:`parse_targets` reads ``top1``, ``top3``, ``281``, ``tabby`` or ``281,tabby``.
- :func:`explain_files` explains each image (in batches), and writes per image and target
  an overlay PNG at the image's *original* resolution (class, probability, score, method
  and layer in its name and in its PNG text chunks), the guided picture for guided
  methods, the raw map as ``.npy``, and ``results.json`` for the whole run, with the
  failures.
- :func:`compare_files` writes one figure: a row per image, a column per method, and
  optionally XGrad-CAM's axiom errors under each map.

Preprocessing: the *whole* image is resized to the model's ``input_size`` squared (no
centre crop, as in :func:`axiomcam.evaluation.inputs.evaluation_inputs`), so the map covers
every pixel of the file and is drawn over the original image by bilinear upsampling.

Example:
    >>> from axiomcam.runs import parse_targets
    >>> parse_targets("top3", ["cat", "dog", "car", "bus"])
    TargetChoice(top=3, classes=())
    >>> parse_targets("1,Car", ["cat", "dog", "car", "bus"])
    TargetChoice(top=None, classes=(1, 2))
"""

from __future__ import annotations

import difflib
import glob
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from tqdm.auto import tqdm

from . import __version__
from . import methods as method_registry
from .data import IMAGE_EXTENSIONS
from .evaluation import evaluation_inputs
from .figures import method_title, save_grid
from .images import guided_to_image, load_image, overlay
from .layers import candidate_layers, resolve_layer
from .methods import has_channel_weights
from .metrics.axioms import axiom_errors, probe_layer
from .models import PretrainedModel
from .targets import TargetSpec, TopClasses

__all__ = [
    "CompareRun", "ExplainRun", "Failure", "TargetChoice", "check_layer",
    "collect_images", "compare_files", "explain_files", "parse_targets", "print_failures",
]

# more images than this get a progress bar
_PROGRESS_FROM = 4
# the largest side of a picture in the comparison figure (the overlay is made at full size)
_THUMBNAIL = 448


@dataclass(frozen=True)
class Failure:
    """An input that could not be explained: the path (or argument) and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class TargetChoice:
    """What each image is explained for: its ``top`` most probable classes, or the given
    ``classes`` (the same for every image)."""

    top: int | None = None
    classes: tuple[int, ...] = ()

    @property
    def count(self) -> int:
        return self.top if self.top is not None else len(self.classes)

    def spec(self, batch: int, device: torch.device) -> TargetSpec:
        """The targets for an explainer: it finds the top classes in its own forward pass,
        so the images are not classified in a pass of their own first."""
        if self.top is not None:
            return TopClasses(self.top)
        return torch.tensor(self.classes, device=device).expand(batch, -1)


def parse_targets(text: str, class_names: Sequence[str]) -> TargetChoice:
    """Read a target spec: ``top1`` / ``top3`` (each image's most probable classes), or a
    comma-separated list of class indices and names (case-insensitive, exact names).

    Raises:
        ValueError: an empty spec, ``top0`` or more than the number of classes, an index out
            of range, an unknown name (near matches listed), a name shared by several classes
            (ImageNet has two ``crane`` classes: their indices are listed), or ``topN`` mixed
            with classes.

    Example:
        >>> parse_targets("Top2", ["a", "b", "c"]).top
        2
        >>> parse_targets("crane", ["crane", "bird", "crane"])
        Traceback (most recent call last):
        ...
        ValueError: class name 'crane' is shared by classes 0, 2: give the index instead
    """
    parts = [part.strip() for part in str(text).split(",") if part.strip()]
    if not parts:
        raise ValueError(f"no target in {text!r}: give top1, top3, a class index or a name")
    num_classes = len(class_names)
    top = re.fullmatch(r"top(\d+)", parts[0], flags=re.IGNORECASE)
    if top:
        if len(parts) > 1:
            raise ValueError(f"target {text!r}: topN cannot be combined with other targets")
        count = int(top.group(1))
        if not 1 <= count <= num_classes:
            raise ValueError(f"target {text!r}: N in topN must be between 1 and {num_classes}")
        return TargetChoice(top=count)
    lowered: dict[str, list[int]] = {}
    for index, name in enumerate(class_names):
        lowered.setdefault(name.lower(), []).append(index)
    classes: list[int] = []
    for part in parts:
        if re.fullmatch(r"[+-]?\d+", part):
            index = int(part)
            if not 0 <= index < num_classes:
                raise ValueError(f"target class {index} is out of range: the model has "
                                 f"{num_classes} classes (0..{num_classes - 1})")
        elif part.lower() in lowered:
            matches = lowered[part.lower()]
            if len(matches) > 1:
                raise ValueError(f"class name {part!r} is shared by classes "
                                 f"{', '.join(map(str, matches))}: give the index instead")
            index = matches[0]
        else:
            near = difflib.get_close_matches(part.lower(), list(lowered), n=3, cutoff=0.6)
            contains = [name for name in lowered if part.lower() in name][:3]
            suggestions = list(dict.fromkeys(near + contains))
            hint = f"; did you mean {', '.join(map(repr, suggestions))}?" if suggestions else ""
            raise ValueError(f"unknown class name {part!r}{hint} (or give top1, top3 or a "
                             "class index)")
        classes.append(index)
    return TargetChoice(classes=tuple(dict.fromkeys(classes)))


def collect_images(arguments: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], list[Failure]]:
    """Image paths from files, directories (their image files, sorted, not recursive) and
    glob patterns (``photos/**/*.jpg``, recursive), in the order given, without repeats.

    A missing file, a directory without image files and a pattern that matches nothing
    are returned as failures, so that the other inputs are still processed.

    Example:
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
            found = sorted(child for child in path.iterdir()
                           if child.is_file() and child.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                failures.append(Failure(text, "directory has no image files ("
                                        f"{', '.join(IMAGE_EXTENSIONS)})"))
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


def check_layer(pretrained: PretrainedModel, layer: str | None) -> str:
    """The layer to explain: ``layer`` checked against the model, or the model's default.

    One forward pass on a blank input finds the layers with a spatial output.

    Raises:
        ValueError: the name does not exist (near matches listed), or the layer's output
            has no spatial dimensions (the usable layers near it are listed).
    """
    if layer is None:
        return pretrained.default_layer
    name, _ = resolve_layer(pretrained.model, layer)
    blank = torch.zeros(1, 3, pretrained.input_size, pretrained.input_size,
                        device=pretrained.device)
    usable = [candidate for candidate, _ in candidate_layers(pretrained.model, blank)]
    if name not in usable:
        near = difflib.get_close_matches(name, usable, n=3, cutoff=0.5)
        hint = f"; layers near it that can: {', '.join(near)}" if near else ""
        raise ValueError(f"layer {name!r} has no (B, C, h, w) output with h*w > 1 (nor "
                         f"transformer tokens on a grid), so a CAM cannot explain it{hint} "
                         "(axiomcam layers lists them all)")
    return name


def _load_all(paths: Sequence[Path]) -> tuple[list[tuple[Path, Image.Image]], list[Failure]]:
    loaded, failures = [], []
    for path in paths:
        try:
            loaded.append((path, load_image(path)))
        except (OSError, ValueError) as error:
            failures.append(Failure(str(path), str(error)))
    return loaded, failures


# what explaining a batch can raise for reasons of the data (NaN scores, a model that
# rejects the input): the batch's images fail, the run goes on
_BATCH_ERRORS = (ValueError, TypeError, RuntimeError)


def _batch_failures(loaded: Sequence[tuple[Path, Image.Image]],
                    error: Exception) -> list[Failure]:
    return [Failure(str(path), f"{type(error).__name__}: {error}") for path, _ in loaded]


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _slug(text: str) -> str:
    """A file-name-safe form of a class name: ``"tiger cat"`` -> ``"tiger-cat"``."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-.") or "class"


def _unique_stems(paths: Sequence[Path]) -> dict[Path, str]:
    """Each path's file stem, with ``-2``, ``-3``... when two inputs share a stem."""
    stems: dict[Path, str] = {}
    used: dict[str, int] = {}
    for path in paths:
        stem = _slug(path.stem)
        used[stem] = used.get(stem, 0) + 1
        stems[path] = stem if used[stem] == 1 else f"{stem}-{used[stem]}"
    return stems


@dataclass
class ExplainRun:
    """What :func:`explain_files` did: the files it wrote and what failed."""

    out_dir: Path
    results_file: Path
    explained: int = 0
    written: list[Path] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0


def _network_inputs(pretrained: PretrainedModel, images: Sequence[Image.Image]
                    ) -> torch.Tensor:
    """The whole images resized to the input size and normalised (no boxes to scale)."""
    inputs, _ = evaluation_inputs(pretrained, images, [torch.zeros(0, 4)] * len(images))
    return inputs


def _probabilities_and_logits(model: torch.nn.Module, inputs: torch.Tensor
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        logits = model(inputs)
    return _probabilities(logits), logits


def _probabilities(logits: object) -> torch.Tensor:
    """Softmax of ``(B, num_classes)`` class scores, which must be finite."""
    if not torch.is_tensor(logits) or logits.dim() != 2:
        shape = tuple(logits.shape) if torch.is_tensor(logits) else type(logits).__name__
        raise ValueError(f"the model returned {shape}, not (B, num_classes) class scores")
    if not torch.isfinite(logits).all():
        raise ValueError("the model's output contains NaN or inf")
    return logits.float().softmax(dim=1)


def _top_classes(pretrained: PretrainedModel, probabilities: torch.Tensor, k: int = 5
                 ) -> list[dict[str, object]]:
    values, indices = probabilities.topk(min(k, probabilities.shape[0]))
    return [{"index": int(i), "name": pretrained.class_names[int(i)], "probability": float(p)}
            for p, i in zip(values.tolist(), indices.tolist(), strict=True)]


def _png_text(fields: dict[str, object]) -> PngInfo:
    info = PngInfo()
    for key, value in fields.items():
        info.add_text(key, str(value))
    return info


def explain_files(pretrained: PretrainedModel, paths: Sequence[Path], method: str,
                  out_dir: str | os.PathLike[str], *, layer: str | None = None,
                  targets: TargetChoice | None = None, batch_size: int = 8,
                  alpha: float = 0.5, colormap: str = "jet",
                  failures: Sequence[Failure] = (), progress: bool | None = None,
                  model_spec: str | None = None) -> ExplainRun:
    """Explain image files and write the pictures, raw maps and ``results.json``.

    Per image ``NAME`` and target class ``c`` (probability ``p``), into ``out_dir``:

    - ``NAME_METHOD_c-CLASS_pP.png``: the map over the image at its original size, with
      PNG text chunks ``class``, ``class_index``, ``probability``, ``score``, ``method``,
      ``layer``, ``model`` and ``source``;
    - ``NAME_METHOD_c-CLASS_guided.png`` for guided methods (the guided-backprop product,
      resized to the original size);
    - ``NAME_METHOD_c-CLASS.npy``: the raw map ``(h, w)`` at the layer's resolution
      (:attr:`axiomcam.Explanation.raw`, before ReLU and scaling; the guided gradient
      ``(3, H, W)`` for ``guided_backprop``, which has no layer).

    and ``results.json``: the model, method, layer, preprocessing, and per image its size,
    top-5 classes with probabilities and each map's class, probability, score (the logit
    ``y^c`` the map explains) and files; then the failures (path and reason).

    Args:
        pretrained: the model and its preprocessing (``axiomcam.models.load``).
        paths: image files (:func:`collect_images`).
        method: a name from :data:`axiomcam.METHOD_NAMES`.
        out_dir: created if missing; files of the same names are replaced.
        layer: the layer (``None``: the model's default); ignored by ``guided_backprop``.
        targets: ``None`` means ``top1``.
        batch_size: images per forward/backward pass.
        alpha, colormap: how the overlay is drawn (:func:`axiomcam.images.overlay`).
        failures: failures met before (e.g. by :func:`collect_images`), reported with the
            run's own.
        progress: a progress bar (``None``: when there are more than 4 images).
        model_spec: how the model was asked for, recorded in ``results.json``.

    Raises:
        ValueError: an unknown method or layer (before any image is read).
    """
    started = time.perf_counter()
    targets = targets or TargetChoice(top=1)
    guided_backprop = method == method_registry.GuidedBackprop.name
    layer_name = None if guided_backprop else check_layer(pretrained, layer)
    explainer = _explainer(pretrained, method, layer_name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = ExplainRun(out_dir=out, results_file=out / "results.json",
                     failures=list(failures))
    stems = _unique_stems(paths)
    records: list[dict[str, object]] = []
    show = len(paths) > _PROGRESS_FROM if progress is None else progress
    with explainer, tqdm(total=len(paths), desc=f"explain ({method})", unit="image",
                         disable=not show) as bar:
        for batch_paths in _batches(list(paths), batch_size):
            loaded, load_failures = _load_all(batch_paths)
            run.failures.extend(load_failures)
            if loaded:
                try:
                    records.extend(_explain_batch(pretrained, explainer, loaded, targets, out,
                                                  stems, method, alpha, colormap, run,
                                                  model_spec))
                except _BATCH_ERRORS as error:
                    run.failures.extend(_batch_failures(loaded, error))
            bar.update(len(batch_paths))
    run.seconds = time.perf_counter() - started
    report = {
        "axiomcam_version": __version__,
        "model": model_spec or pretrained.name,
        "method": method,
        "layer": layer_name,
        "targets": f"top{targets.top}" if targets.top else list(targets.classes),
        "preprocessing": {"resize": [pretrained.input_size, pretrained.input_size],
                          "crop": None, "mean": list(pretrained.mean),
                          "std": list(pretrained.std)},
        "device": str(pretrained.device),
        "seconds": round(run.seconds, 3),
        "images": records,
        "failures": [asdict(failure) for failure in run.failures],
    }
    run.results_file.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    run.written.append(run.results_file)
    return run


def _explainer(pretrained: PretrainedModel, method: str, layer: str
               ) -> method_registry.Explainer:
    if method == method_registry.GuidedBackprop.name:  # it explains the input: no layer
        return method_registry.create(method, pretrained.model)
    return method_registry.create(method, pretrained.model, layer)


def _explain_batch(pretrained: PretrainedModel, explainer: method_registry.Explainer,
                   loaded: Sequence[tuple[Path, Image.Image]], targets: TargetChoice,
                   out: Path, stems: dict[Path, str], method: str, alpha: float,
                   colormap: str, run: ExplainRun, model_spec: str | None
                   ) -> list[dict[str, object]]:
    images = [image for _, image in loaded]
    inputs = _network_inputs(pretrained, images)
    explanation = explainer(inputs, targets.spec(inputs.shape[0], inputs.device))
    probabilities = _probabilities(explanation.logits)
    classes = explanation.targets  # (B, k)
    layer = explanation.target_layer
    records = []
    for row, (path, image) in enumerate(loaded):
        maps_written = []
        for column, class_index in enumerate(classes[row].tolist()):
            name = pretrained.class_names[class_index]
            probability = float(probabilities[row, class_index])
            score = float(explanation.scores[row, column])
            base = f"{stems[path]}_{_slug(method)}_{class_index}-{_slug(name)}"
            fields = {"class": name, "class_index": class_index,
                      "probability": f"{probability:.6f}", "score": f"{score:.6f}",
                      "method": method, "layer": layer, "model": model_spec or pretrained.name,
                      "source": str(path), "Software": f"axiomcam {__version__}"}
            overlay_path = out / f"{base}_p{probability:.2f}.png"
            picture = overlay(image, explanation.maps[row, column], alpha=alpha,
                              colormap=colormap)
            picture.save(overlay_path, pnginfo=_png_text(fields))
            entry: dict[str, object] = {
                "class_index": class_index, "class_name": name, "probability": probability,
                "score": score, "overlay": overlay_path.name}
            if explanation.guided is not None:
                guided_path = out / f"{base}_guided.png"
                guided_picture = guided_to_image(explanation.guided[row, column])
                guided_picture.resize(image.size, Image.Resampling.BILINEAR).save(
                    guided_path, pnginfo=_png_text(fields))
                entry["guided"] = guided_path.name
                run.written.append(guided_path)
            raw = explanation.raw if explanation.raw is not None else explanation.guided
            raw_path = out / f"{base}.npy"
            np.save(raw_path, raw[row, column].detach().cpu().float().numpy())
            entry["raw"] = raw_path.name
            run.written.extend([overlay_path, raw_path])
            maps_written.append(entry)
        records.append({"path": str(path), "size": list(image.size),
                        "top_classes": _top_classes(pretrained, probabilities[row]),
                        "maps": maps_written})
        run.explained += 1
    return records


@dataclass
class CompareRun:
    """What :func:`compare_files` did."""

    figure: Path
    images: int = 0
    failures: list[Failure] = field(default_factory=list)
    axiom_errors: dict[str, list[tuple[float, float] | None]] = field(default_factory=dict)
    seconds: float = 0.0


def compare_files(pretrained: PretrainedModel, paths: Sequence[Path], methods: Sequence[str],
                  figure_path: str | os.PathLike[str], *, layer: str | None = None,
                  target: TargetChoice | None = None, axioms: bool = False,
                  batch_size: int = 8, alpha: float = 0.5, colormap: str = "jet",
                  failures: Sequence[Failure] = (), progress: bool | None = None
                  ) -> CompareRun:
    """One figure: a row per image (the image, titled with the class explained, its
    probability and logit; then each method's map over it), and, with ``axioms=True``, the
    conservation error (CE) and sensitivity error (SE) of XGrad-CAM's axioms under each
    map of a method with channel weights (:mod:`axiomcam.metrics.axioms`; one probe of the
    layer per batch, shared by the methods).

    Args:
        pretrained: the model.
        paths: image files; unreadable ones are failures, the others still drawn.
        methods: method names (guided methods are drawn as their guided map).
        figure_path: the figure to write (``.png``, ``.pdf``, ``.svg``, ``.jpg``).
        layer: the layer (``None``: the model's default).
        target: one class per image (``top1`` by default; ``topN`` with ``N > 1`` is
            refused: a row shows one class).
        axioms: print CE / SE under the maps.
        batch_size: images per forward/backward pass.
        alpha, colormap: how the overlays are drawn.
        failures: failures met before, reported with the run's own.
        progress: a progress bar (``None``: when there are more than 4 images).

    Raises:
        ValueError: no methods, an unknown method or layer, ``topN`` with ``N > 1``, or no
            image could be read.
    """
    started = time.perf_counter()
    target = target or TargetChoice(top=1)
    if target.count != 1:
        raise ValueError(f"compare shows one class per image; got {target.count} targets")
    if not methods:
        raise ValueError("compare needs at least one method")
    layer = check_layer(pretrained, layer)
    run = CompareRun(figure=Path(figure_path), failures=list(failures),
                     axiom_errors={method: [] for method in methods})
    pictures: list[list[Image.Image]] = []
    titles: list[list[str]] = []
    captions: list[list[str]] = []
    show = len(paths) > _PROGRESS_FROM if progress is None else progress
    with ExitStack() as stack:  # the explainers' hooks are removed whatever happens
        explainers = {method: stack.enter_context(_explainer(pretrained, method, layer))
                      for method in methods}
        bar = stack.enter_context(tqdm(total=len(paths), desc="compare", unit="image",
                                       disable=not show))
        for batch_paths in _batches(list(paths), batch_size):
            loaded, load_failures = _load_all(batch_paths)
            run.failures.extend(load_failures)
            bar.update(len(batch_paths))
            if not loaded:
                continue
            try:
                rows = _compare_batch(pretrained, explainers, loaded, target, layer, axioms,
                                      alpha, colormap, run)
            except _BATCH_ERRORS as error:
                run.failures.extend(_batch_failures(loaded, error))
                continue
            for row_pictures, row_titles, row_captions in rows:
                pictures.append(row_pictures)
                titles.append(row_titles)
                captions.append(row_captions)
    if not pictures:
        raise ValueError("no image could be read: " + "; ".join(
            f"{failure.path}: {failure.reason}" for failure in run.failures))
    run.figure.parent.mkdir(parents=True, exist_ok=True)
    save_grid(run.figure, pictures, titles, captions if axioms else None)
    run.seconds = time.perf_counter() - started
    return run


def _compare_batch(pretrained: PretrainedModel,
                   explainers: dict[str, method_registry.Explainer],
                   loaded: Sequence[tuple[Path, Image.Image]], target: TargetChoice, layer: str,
                   axioms: bool, alpha: float, colormap: str, run: CompareRun
                   ) -> list[tuple[list[Image.Image], list[str], list[str]]]:
    """The figure's rows for one batch: (pictures, titles, captions) per image."""
    images = [image for _, image in loaded]
    inputs = _network_inputs(pretrained, images)
    # the first method's forward pass classifies the images too: no pass of its own
    first_method, first_explainer = next(iter(explainers.items()))
    first = first_explainer(inputs, target.spec(inputs.shape[0], inputs.device)).target(0)
    logits = first.logits
    probabilities = _probabilities(logits)
    classes = first.targets
    # one probe (activations, gradients, K ablated scores) serves every method
    probe = (probe_layer(pretrained.model, inputs, classes, layer)
             if axioms and any(map(has_channel_weights, explainers)) else None)
    # the overlays are drawn on the thumbnails: the figure shows nothing finer
    thumbnails = [_thumbnail(image) for image in images]
    rows = [([thumbnail],
             [f"{path.name}\n{pretrained.class_names[c]}: p {float(probabilities[i, c]):.2f}, "
              f"logit {float(logits[i, c]):.2f}"],
             [""])
            for i, ((path, _), c, thumbnail) in enumerate(
                zip(loaded, classes.tolist(), thumbnails, strict=True))]
    for method, explainer in explainers.items():
        explanation = first if method == first_method else explainer(inputs, classes)
        errors = (axiom_errors(probe, explanation)
                  if probe is not None and explanation.channel_weights is not None else None)
        for i, (row_pictures, row_titles, row_captions) in enumerate(rows):
            row_pictures.append(overlay(thumbnails[i], explanation.maps[i], alpha=alpha,
                                        colormap=colormap))
            row_titles.append(method_title(method))
            if errors is None:
                run.axiom_errors[method].append(None)
                row_captions.append("axioms: n/a (no channel weights)" if axioms else "")
            else:
                pair = (float(errors.conservation_error[i]), float(errors.sensitivity_error[i]))
                run.axiom_errors[method].append(pair)
                row_captions.append(f"CE {pair[0]:.3f}   SE {pair[1]:.3f}")
    run.images += len(images)
    return rows


def _thumbnail(image: Image.Image) -> Image.Image:
    """A copy no larger than :data:`_THUMBNAIL` on its longest side (PIL keeps the aspect)."""
    small = image.copy()
    small.thumbnail((_THUMBNAIL, _THUMBNAIL), Image.Resampling.LANCZOS)
    return small


def print_failures(failures: Sequence[Failure], echo: Callable[[str], None]) -> None:
    """One line per failure: ``PATH: reason``."""
    for failure in failures:
        echo(f"axiomcam: failed: {failure.path}: {failure.reason}")
