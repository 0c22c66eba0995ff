"""The report's gallery: each method's map over its best and worst images of a finished
run, drawn again with the model (:func:`build_gallery`).

:func:`axiomcam.evaluation.report.select_gallery` picks the images from the stored
results; this module finds them in the data set, explains them as the run did and draws
the pictures (:class:`~axiomcam.evaluation.report.GalleryItem`), which
:func:`axiomcam.evaluation.report.write_report` inlines.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence

import torch
from PIL import Image
from tqdm.auto import tqdm

from ..data import Dataset, Sample, open_dataset
from ..images import draw_boxes, overlay
from ..methods import Explainer, create
from ..models import PretrainedModel
from ..support import check_positive_int, warning_context
from .inputs import evaluation_inputs
from .report import GALLERY_SIZE, THUMBNAIL_SIZE, GalleryItem, select_gallery
from .store import ImageRow, ResultStore

__all__ = ["build_gallery"]


def build_gallery(pretrained: PretrainedModel, dataset: Dataset | str,
                  out_dir: str | os.PathLike[str], *, k: int = GALLERY_SIZE,
                  explainers: Mapping[str, Explainer] | None = None,
                  batch_size: int = 16,
                  perturbation_batch_size: int | None = None,
                  progress: bool | None = None) -> dict[str, list[GalleryItem]]:
    """The report's gallery of a finished run: each method's map over its ``k`` best and
    ``k`` worst images by the ranking metric.

    The images are chosen from the stored results by
    :func:`axiomcam.evaluation.report.select_gallery` (the ranking metric, per method, is
    the first of insertion - deletion AUC, Average Drop, energy pointing game and
    conservation error that it has values of). Only those images are looked up in the
    data set (iterated again, up to the last one needed) and explained again, as in the
    run: whole image resized to ``input_size``, for the label if known, else the stored
    top-1 class. Each picture is the map (``images.overlay``, jet, alpha 0.5) over the image
    scaled to :data:`~axiomcam.evaluation.report.THUMBNAIL_SIZE` on its longest side,
    with the explained class's ground-truth boxes drawn in white.

    Args:
        pretrained: the run's model.
        dataset: the run's data set (or its spec, opened with the run's seed).
        out_dir: the run's directory (holding ``results.sqlite``).
        k: best (and worst) images per method; 0: an empty gallery.
        explainers: the run's explainers by method (``None``: created for the stored
            methods at the stored layer, and closed again).
        batch_size: images per explainer call.
        perturbation_batch_size: for explainers created here.
        progress: a progress bar over the maps to draw (``None``: on a terminal only);
            worth having for Score-CAM, whose gallery costs minutes.

    Returns:
        ``{method: [GalleryItem, ...]}`` (best first, then worst first); an image the
        data set no longer yields is left out.

    Raises:
        FileNotFoundError: no database in ``out_dir``.
        ValueError: ``k`` or ``batch_size`` out of range.

    Examples:
        >>> import tempfile, torch
        >>> from PIL import Image
        >>> from axiomcam.data import Dataset, Sample
        >>> from axiomcam.evaluation.store import ImageRow, ResultRow, ResultStore
        >>> from axiomcam.models import PretrainedModel
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1, bias=False), torch.nn.ReLU(),
        ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        >>> _ = torch.nn.init.ones_(net[0].weight)  # every class sees the image's brightness
        >>> toy = PretrainedModel("toy", net.eval(), None, None, ["a", "b", "c"], "1",
        ...                       input_size=16)
        >>> ramp = Image.linear_gradient("L").resize((20, 10)).convert("RGB")
        >>> class Wide(Dataset):  # four 20 x 10 images, img0 to img3
        ...     def __iter__(self):
        ...         return (Sample(f"img{i}", ramp, i % 3, torch.zeros(0, 4),
        ...                        torch.zeros(0, dtype=torch.long)) for i in range(4))
        ...     def __len__(self):
        ...         return 4
        >>> with tempfile.TemporaryDirectory() as directory:  # a run's rows: img0 is best
        ...     with ResultStore.create(directory, {"target_layer": "1"}) as store:
        ...         store.write_batch(
        ...             images=[ImageRow(f"img{i}", None, i % 3, i % 3, 0.5, 20, 10)
        ...                     for i in range(4)],
        ...             results=[ResultRow(f"img{i}", "gradcam", "average_drop", 10.0 * i)
        ...                      for i in range(4)])
        ...     items = build_gallery(toy, Wide(toy.class_names, "four toys"), directory, k=1)
        ...     [(item.rank, item.image_id, item.metric, item.picture.size)
        ...      for item in items["gradcam"]]
        [('best', 'img0', 'average_drop', (224, 112)), ('worst', 'img3', 'average_drop', \
(224, 112))]
    """
    k = check_positive_int(k, "k", minimum=0)
    batch_size = check_positive_int(batch_size, "batch_size")
    with ResultStore.open(out_dir) as store:
        selections = select_gallery(store, k)
        rows = {row.image_id: row for row in store.images()}
        config = store.config
    wanted = {ranked.image_id for selection in selections.values()
              for ranked in (*selection.best, *selection.worst)}
    if not wanted:
        return {}
    if isinstance(dataset, str):
        seed = config.get("seed", 0)
        dataset = open_dataset(dataset, pretrained.class_names,
                               seed=seed if isinstance(seed, int) else 0)
    samples = _find_samples(dataset, wanted & set(rows))
    names = pretrained.class_names
    chosen_by_method = {
        method: [(rank, ranked) for rank, ranking in (("best", selection.best),
                                                     ("worst", selection.worst))
                 for ranked in ranking if ranked.image_id in samples]
        for method, selection in selections.items()}
    gallery: dict[str, list[GalleryItem]] = {}
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(tqdm(
            total=sum(map(len, chosen_by_method.values())), unit="map", desc="gallery",
            dynamic_ncols=True, disable=None if progress is None else not progress))
        for method, selection in selections.items():
            chosen = chosen_by_method[method]
            if not chosen:
                continue
            explainer = (explainers or {}).get(method)
            layer = config.get("target_layer") or pretrained.default_layer
            if explainer is None:
                explainer = stack.enter_context(create(
                    method, pretrained.model, layer, batch_size=perturbation_batch_size,
                    progress=False))
            items = gallery.setdefault(method, [])
            for start in range(0, len(chosen), batch_size):
                part = chosen[start:start + batch_size]
                part_samples = [samples[ranked.image_id] for _, ranked in part]
                part_rows = [rows[ranked.image_id] for _, ranked in part]
                targets = [row.predicted if row.label is None else row.label
                           for row in part_rows]
                inputs, _ = evaluation_inputs(pretrained, [s.image for s in part_samples],
                                              [s.boxes for s in part_samples])
                with warning_context(f"{method} at {layer} (gallery)",
                                     [sample.id for sample in part_samples]):
                    maps = explainer(inputs, torch.tensor(targets, dtype=torch.long,
                                                          device=inputs.device)).maps.cpu()
                for (rank, ranked), sample, row, target, cam_map in zip(
                        part, part_samples, part_rows, targets, maps, strict=True):
                    items.append(GalleryItem(
                        image_id=ranked.image_id, rank=rank, metric=selection.metric,
                        value=ranked.value, picture=_gallery_picture(sample, cam_map, target),
                        class_name=_class_name(names, target), note=_gallery_note(row, names)))
                bar.update(len(part))
    return gallery


def _find_samples(dataset: Dataset, wanted: set[str]) -> dict[str, Sample]:
    """The first sample of each wanted id (as the run evaluated the first of duplicates),
    iterating only as far as needed."""
    found: dict[str, Sample] = {}
    if not wanted:
        return found
    for sample in dataset:
        if sample.id in wanted and sample.id not in found:
            found[sample.id] = sample
            if len(found) == len(wanted):
                break
    return found


def _class_name(names: Sequence[str], index: int) -> str:
    return names[index] if 0 <= index < len(names) else f"class {index}"


def _gallery_note(row: ImageRow, names: Sequence[str]) -> str:
    top1 = f"{_class_name(names, row.predicted)} ({row.predicted_probability:.2f})"
    if row.label is None:
        return f"no label: explains the top-1 class, {top1}"
    return f"the label; top-1: {top1}"


def _gallery_picture(sample: Sample, cam_map: torch.Tensor, target: int) -> Image.Image:
    """The map over the whole image at thumbnail size, the target's boxes in white."""
    width, height = sample.image.size
    scale = THUMBNAIL_SIZE / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BILINEAR
    # the run resized the whole image (no crop), so the map covers the whole thumbnail
    picture = overlay(sample.image.convert("RGB").resize(size, resample),
                      cam_map.clamp(0, 1))
    boxes = sample.boxes.reshape(-1, 4)[sample.box_labels.reshape(-1) == target]
    return draw_boxes(picture, boxes, "white", (size[0] / width, size[1] / height))
