"""Explaining image files into a folder: what ``axiomcam explain`` does.

:func:`explain_files` explains each image (in batches), and writes per image and target an
overlay PNG at the image's *original* resolution (class, probability, score, method and
layer in its name and in its PNG text chunks), the guided picture for guided methods, the
raw map as ``.npy``, and ``results.json`` for the whole run, with the failures; with
``masks``, each map's mask as a PNG and all of them in ``masks.json`` (COCO,
:mod:`axiomcam.workflows.masks`).

File names carry the method (:func:`method_slug`, distinct for every method), so runs of
different methods into one folder keep each other's files. A file that a run of another
method, model or layer wrote under the same name (the same image and class at another
layer, say) is replaced with an :class:`~axiomcam.AxiomCamWarning` naming it: what a file
was written for is read from its PNG text chunks, from the PNG written with a ``.npy``,
and from the head of ``results.json``.

Examples:
    >>> method_slug("gradcam++"), method_slug("ablationcam:activation")
    ('gradcampp', 'ablationcam-activation')
    >>> name_slug("tiger cat")
    'tiger-cat'
"""

from __future__ import annotations

import glob
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .. import __version__
from ..explanation import Explanation
from ..images import guided_to_image, overlay
from ..methods import Explainer, method_info
from ..models import PretrainedModel
from ..support import warn
from .classify import (
    TargetChoice,
    check_layer,
    create_explainer,
    network_inputs,
    probabilities_from_logits,
    target_class_names,
    top_classes,
)
from .image_files import Failure, failing_alone, image_batches
from .masks import MASKS_FILE, MaskWriter

__all__ = ["PROVENANCE_KEYS", "ExplainRun", "explain_files", "layer_label", "method_slug",
           "name_slug"]

#: what says which result a file holds, in every PNG's text chunks and ``results.json``
PROVENANCE_KEYS = ("method", "model", "layer")
# replaced files named in a warning; the others are counted
_NAMED_IN_WARNING = 5


def name_slug(text: str) -> str:
    """A file-name-safe form of a name: ``"tiger cat"`` -> ``"tiger-cat"``."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-.") or "class"


def method_slug(method: str) -> str:
    """A method's name as file names carry it, distinct for every name of
    :data:`axiomcam.METHOD_NAMES`: ``+`` becomes ``p`` (``gradcam++`` -> ``gradcampp``), and
    ``:`` a dash (``ablationcam:activation`` -> ``ablationcam-activation``)."""
    return name_slug(method.replace("+", "p"))


def layer_label(layer: str | Sequence[str] | None) -> str:
    """How files and messages name the layer: several layers joined by ``+``.

    Examples:
        >>> layer_label("features.18"), layer_label(("features.17", "features.18"))
        ('features.18', 'features.17+features.18')
    """
    return "+".join(layer) if isinstance(layer, list | tuple) else str(layer)


def _checked_layers(pretrained: PretrainedModel,
                    layer: str | Sequence[str] | None) -> str | list[str]:
    """:func:`~axiomcam.workflows.check_layer` of one layer, or of each of several."""
    if layer is None or isinstance(layer, str):
        return check_layer(pretrained, layer)
    names = [check_layer(pretrained, name) for name in layer]
    return names[0] if len(names) == 1 else names


def _unique_stems(paths: Sequence[Path]) -> dict[Path, str]:
    """Each path's file stem, with ``-2``, ``-3``... when two inputs share a stem."""
    stems: dict[Path, str] = {}
    used: dict[str, int] = {}
    for path in paths:
        stem = name_slug(path.stem)
        used[stem] = used.get(stem, 0) + 1
        stems[path] = stem if used[stem] == 1 else f"{stem}-{used[stem]}"
    return stems


@dataclass
class ExplainRun:
    """What :func:`explain_files` did: the files it wrote, what failed, and the files of
    another result it replaced (``replaced``: path -> what it held; named in a warning)."""

    out_dir: Path
    results_file: Path
    explained: int = 0
    written: list[Path] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    replaced: dict[Path, str] = field(default_factory=dict)


def explain_files(pretrained: PretrainedModel, paths: Sequence[Path], method: str,
                  out_dir: str | os.PathLike[str], *,
                  layer: str | Sequence[str] | None = None,
                  targets: TargetChoice | None = None, batch_size: int = 8,
                  alpha: float = 0.5, colormap: str = "jet",
                  failures: Sequence[Failure] = (), progress: bool | None = None,
                  model_spec: str | None = None, counterfactual: bool = False,
                  masks: tuple[str, float | None] | None = None,
                  eigen_smooth: bool = False, aug_smooth: bool = False,
                  method_options: Mapping[str, object] | None = None) -> ExplainRun:
    """Explain image files and write the pictures, raw maps and ``results.json``.

    Per image ``NAME`` and target class ``c`` (probability ``p``), into ``out_dir``:

    - ``NAME_METHOD_c-CLASS_pP.png``: the map over the image at its original size, with
      PNG text chunks ``class``, ``class_index``, ``probability``, ``score``, ``method``,
      ``layer``, ``model`` and ``source``;
    - ``NAME_METHOD_c-CLASS_guided.png`` for guided methods (the guided-backprop product,
      resized to the original size);
    - ``NAME_METHOD_c-CLASS.npy``: the raw map ``(h, w)`` at the layer's resolution
      (:attr:`axiomcam.Explanation.raw`, before ReLU and scaling; the guided gradient
      ``(3, H, W)`` for ``guided_backprop``, which has no layer); at several layers
      ``NAME_METHOD_c-CLASS.npz`` instead, each layer's raw map under its name, and the
      overlay shows the fused map (:class:`~axiomcam.methods.BaseCAM`).

    ``METHOD`` is :func:`method_slug` of the method (``gradcampp`` for ``gradcam++``),
    followed by ``-counterfactual`` for counterfactual maps (PNG text chunk
    ``counterfactual``). And ``results.json``: the model, method, whether the maps are
    counterfactual (``"counterfactual"``), layer, what the score is (``"score"``:
    :attr:`~axiomcam.models.PretrainedModel.score`, e.g. ``"logits before the graph's final
    Softmax"``), the targets, the head (``"head"``: ``softmax``, ``sigmoid`` or ``output``,
    how probabilities follow from the score) and what each map explains (``"explained"``:
    the ``logit``, or its ``softmax`` or ``sigmoid`` probability), the preprocessing (with
    the channels), the loader's notes, and per image its size, top-5 classes with
    probabilities and each map's class, probability, score (the value ``y^c`` the map
    explains) and files; then the failures (path and reason).  With a threshold
    (``above0.5``), an image gets a map for each of its labels above it, and none if it has
    none.

    Args:
        pretrained: the model and its preprocessing (``axiomcam.models.load``).
        paths: image files (:func:`~axiomcam.workflows.collect_images`).
        method: a name from :data:`axiomcam.METHOD_NAMES`.
        out_dir: created if missing; files of the same names are replaced, with one
            warning per earlier result of another method, model or layer, naming its files.
        layer: the layer (``None``: the model's default), or a list of layers; ignored by
            ``guided_backprop`` and ``occlusion``, which explain the input.
        targets: ``None`` means ``top1``.
        batch_size: images per forward/backward pass.
        alpha: the overlay's opacity (:func:`axiomcam.images.overlay`).
        colormap: the overlay's colour map.
        failures: failures met before (e.g. by ``collect_images``), reported with the
            run's own.
        progress: a progress bar (``None``: when there are more than 4 images).
        model_spec: how the model was asked for, recorded in ``results.json``.
        counterfactual: the maps show the evidence against each class (the gradient
            negated; see :class:`~axiomcam.methods.Explainer`).
        masks: ``(method, value)`` of :func:`axiomcam.metrics.map_to_mask` (e.g.
            ``("otsu", None)``): also write each map's mask, ``NAME_METHOD_c-CLASS_mask.png``
            at the image's size (255 on the mask), its regions' boxes in ``results.json``,
            and ``masks.json``, a COCO file of every mask (RLE) and box
            (:class:`~axiomcam.workflows.masks.MaskWriter`).
        eigen_smooth: each raw map is the first principal component of the method's
            channel terms (:class:`~axiomcam.methods.BaseCAM`; ``"eigen_smooth"`` in
            ``results.json``).
        aug_smooth: test-time augmentation, flips and intensity factors averaged (see
            :class:`~axiomcam.methods.Explainer`); ``"aug_smooth"`` in ``results.json``.
        method_options: keyword options of the method (``window`` for occlusion, ...:
            :func:`axiomcam.methods.method_options`); ``"method_options"`` in
            ``results.json``.

    Raises:
        ValueError: an unknown method or layer, or ``counterfactual`` for a method without
            a counterfactual form (before any image is read).
    """
    started = time.perf_counter()
    targets = targets or TargetChoice(top=1)
    layer_name = _checked_layers(pretrained, layer) if method_info(method).takes_layer else None
    explainer = create_explainer(pretrained, method, layer_name, counterfactual=counterfactual,
                                 aug_smooth=aug_smooth, **dict(method_options or {}),
                                 **({"eigen_smooth": True} if eigen_smooth else {}))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = ExplainRun(out_dir=out, results_file=out / "results.json",
                     failures=list(failures))
    model_name = model_spec or pretrained.name
    provenance = {"method": method, "model": model_name, "layer": layer_label(layer_name)}
    mask_writer = None if masks is None else MaskWriter(out, *masks)
    _note_replaced(run, [run.results_file] + ([out / MASKS_FILE] if masks else []), provenance)
    writer = _MapWriter(pretrained, out, _unique_stems(paths), method, model_name, alpha,
                        colormap, run, mask_writer)
    records: list[dict[str, object]] = []
    with explainer:
        for loaded in image_batches(paths, batch_size, run.failures, progress=progress,
                                    description=f"explain ({method})",
                                    channels=pretrained.channels):
            with failing_alone(loaded, run.failures):
                records.extend(_explain_batch(explainer, loaded, targets, writer))
    run.seconds = time.perf_counter() - started
    report = {
        "axiomcam_version": __version__, "model": model_name, "method": method,
        "counterfactual": counterfactual, "eigen_smooth": eigen_smooth,
        "aug_smooth": aug_smooth, "method_options": dict(method_options or {}),
        "layer": layer_name,
        "score": pretrained.score,
        "targets": targets.describe() or list(targets.classes),
        "head": targets.head or pretrained.probability, "explained": targets.explained,
        "preprocessing": {"resize": [pretrained.input_size, pretrained.input_size],
                          "crop": None, "channels": pretrained.channels,
                          "mean": list(pretrained.mean), "std": list(pretrained.std)},
        "notes": list(pretrained.notes),
        "device": str(pretrained.device), "seconds": round(run.seconds, 3),
        "images": records, "failures": [asdict(failure) for failure in run.failures],
    }
    run.results_file.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    run.written.append(run.results_file)
    if mask_writer is not None:
        run.written.append(mask_writer.finish(
            f"axiomcam explain: {method} at {layer_label(layer_name)}, {model_name}", provenance))
    _warn_replaced(run)
    return run


def _explain_batch(explainer: Explainer, loaded: Sequence[tuple[Path, Image.Image]],
                   targets: TargetChoice, writer: _MapWriter) -> list[dict[str, object]]:
    """Explain one batch and write its files: the batch's records for ``results.json``."""
    images = [image for _, image in loaded]
    inputs = network_inputs(writer.pretrained, images)
    explanation = explainer(inputs, targets.spec(inputs.shape[0], inputs.device))
    probabilities = probabilities_from_logits(explanation.logits, writer.pretrained,
                                              head=targets.head)
    selected = explanation.selected  # a threshold's padding places are not written
    records = []
    for row, (path, image) in enumerate(loaded):
        maps_written = [writer.write(explanation, probabilities, row, column, path, image)
                        for column in range(explanation.targets.shape[1])
                        if selected is None or selected[row, column]]
        records.append({"path": str(path), "size": list(image.size),
                        "top_classes": top_classes(writer.pretrained, probabilities[row]),
                        "maps": maps_written})
        writer.run.explained += 1
    return records


@dataclass
class _MapWriter:
    """Writes one map's files (overlay, guided picture, raw map) for :func:`explain_files`."""

    pretrained: PretrainedModel
    out: Path
    stems: dict[Path, str]
    method: str
    model_name: str
    alpha: float
    colormap: str
    run: ExplainRun
    masks: MaskWriter | None = None

    def write(self, explanation: Explanation, probabilities: torch.Tensor, row: int,
              column: int, path: Path, image: Image.Image) -> dict[str, object]:
        """Write the files of image ``row``'s map ``column``: its ``results.json`` entry."""
        class_index = int(explanation.targets[row, column])
        name = target_class_names(self.pretrained.class_names)[class_index]
        probability = float(probabilities[row, class_index])
        score = float(explanation.scores[row, column])
        # a counterfactual map is another result: its files never replace the plain map's
        method = method_slug(self.method) + ("-counterfactual"
                                             if explanation.counterfactual else "")
        base = f"{self.stems[path]}_{method}_{class_index}-{name_slug(name)}"
        fields = {"class": name, "class_index": class_index,
                  "probability": f"{probability:.6f}", "score": f"{score:.6f}",
                  "method": self.method, "counterfactual": str(explanation.counterfactual),
                  "layer": layer_label(explanation.target_layer),
                  "model": self.model_name, "source": str(path),
                  "Software": f"axiomcam {__version__}"}
        overlay_path = self.out / f"{base}_p{probability:.2f}.png"
        guided_path = self.out / f"{base}_guided.png"
        # several layers: each layer's raw map, by name, in one file
        raw_path = self.out / f"{base}.{'npy' if explanation.layers is None else 'npz'}"
        files = [overlay_path, raw_path]
        if explanation.guided is not None:
            files.append(guided_path)
        if self.masks is not None:
            files.append(self.out / f"{base}_mask.png")
        # before anything is written: a .npy's record is the PNG written with it
        _note_replaced(self.run, files, {key: str(fields[key]) for key in PROVENANCE_KEYS})
        picture = overlay(image, explanation.maps[row, column], alpha=self.alpha,
                          colormap=self.colormap)
        picture.save(overlay_path, pnginfo=_png_text(fields))
        entry: dict[str, object] = {
            "class_index": class_index, "class_name": name, "probability": probability,
            "score": score, "overlay": overlay_path.name}
        if self.masks is not None:
            entry.update(self.masks.write(
                explanation.maps[row, column], image, base=base, source=str(path),
                class_index=class_index, class_name=name, probability=probability,
                text=_png_text(fields)))
            self.run.written.append(self.out / str(entry["mask"]))
        if explanation.guided is not None:
            guided_picture = guided_to_image(explanation.guided[row, column])
            guided_picture.resize(image.size, Image.Resampling.BILINEAR).save(
                guided_path, pnginfo=_png_text(fields))
            entry["guided"] = guided_path.name
            self.run.written.append(guided_path)
        if explanation.layers is not None:
            np.savez(raw_path, **{name: part.raw[row, column].detach().cpu().float().numpy()
                                  for name, part in explanation.layers.items()})
        else:
            raw = explanation.raw if explanation.raw is not None else explanation.guided
            np.save(raw_path, raw[row, column].detach().cpu().float().numpy())
        entry["raw"] = raw_path.name
        self.run.written.extend([overlay_path, raw_path])
        return entry


def _png_text(fields: dict[str, object]) -> PngInfo:
    info = PngInfo()
    for key, value in fields.items():
        info.add_text(key, str(value))
    return info


# ---------------------------------------------------------------- files of another result


def _note_replaced(run: ExplainRun, paths: Sequence[Path], ours: dict[str, str]) -> None:
    """Record in ``run.replaced`` each existing file of ``paths`` that holds another result
    than ``ours`` (method, model and layer), or whose result is unknown."""
    for path in paths:
        if not path.exists() or path in run.replaced:
            continue
        theirs = _written_for(path)
        if theirs != ours:
            run.replaced[path] = _describe(theirs)


def _written_for(path: Path) -> dict[str, str] | None:
    """The method, model and layer an existing file of explain's was written for, or
    ``None`` if it does not say (not explain's, or unreadable): a PNG's text chunks, a
    ``.npy``'s newest PNG of the same name, ``results.json``'s head."""
    try:
        if path.suffix == ".json":
            fields = json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix in (".npy", ".npz"):
            pictures = [Path(match) for pattern in ("_p*.png", "_guided.png") for match in
                        glob.glob(glob.escape(str(path.with_suffix(""))) + pattern)]
            if not pictures:
                return None
            return _written_for(max(pictures, key=lambda picture: picture.stat().st_mtime))
        else:
            with Image.open(path) as picture:
                fields = dict(getattr(picture, "text", {}))
    except (OSError, ValueError):
        return None
    if not isinstance(fields, dict) or not all(key in fields for key in PROVENANCE_KEYS):
        return None
    # results.json holds a list for several layers: named as the PNGs name them
    return {key: layer_label(fields[key]) for key in PROVENANCE_KEYS}


def _describe(written_for: dict[str, str] | None) -> str:
    """What a replaced file held, for the warning."""
    if written_for is None:
        return "a result of unknown origin (not written by explain, or its record is gone)"
    return (f"another result (method {written_for['method']}, model {written_for['model']}, "
            f"layer {written_for['layer']})")


def _warn_replaced(run: ExplainRun) -> None:
    """One warning per result replaced, naming its files (the first few of many)."""
    by_result: dict[str, list[Path]] = {}
    for path, what in run.replaced.items():
        by_result.setdefault(what, []).append(path)
    for what, paths in by_result.items():
        named = ", ".join(path.name for path in paths[:_NAMED_IN_WARNING])
        more = len(paths) - _NAMED_IN_WARNING
        named += f" and {more} more" if more > 0 else ""
        files = f"{len(paths)} file{'' if len(paths) == 1 else 's'}"
        warn(f"replaced {files} in {run.out_dir} that held {what}: {named} (another "
             "output folder keeps both)")
