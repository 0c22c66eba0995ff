"""Does an explanation survive an adversarial attack? :func:`robustness` (``axiomcam
robustness``) attacks every image of a labelled data set with boxes and compares, on the
images whose prediction the attack flips, the original class's map on the attacked image
with its map on the clean one.

The Grad-CAM paper (Selvaraju et al., 2017, "Adversarial noise") reports that after an
attack that changes the prediction, the Grad-CAM map of the original class still localizes
the object. Here, per image:

1. the clean prediction; only images whose top-1 class is their label and that have a box
   of the label are attacked (the **original class** is then the label, and its boxes say
   where the object is);
2. the attack (:func:`axiomcam.workflows.attacks.attack`, in pixel space within an L-inf
   budget ``epsilon``): untargeted, away from the original class; or targeted, toward a
   class drawn at random (seeded) among those not on the image; the image is **flipped**
   when the attacked image's top-1 class is no longer the original class;
3. for each flipped image and each method, the original class's map on the clean and on
   the attacked image: pointing game and energy in the labelled object's boxes
   (:func:`axiomcam.metrics.pointing_game`, :func:`axiomcam.metrics.energy_pointing_game`),
   and Spearman's rank correlation of the two maps over pixels
   (:func:`axiomcam.metrics.spearman_correlation`).

Images are seen as ``axiomcam evaluate`` sees them
(:func:`axiomcam.evaluation.evaluation_inputs`: the whole image resized, boxes scaled).
The summary (:mod:`~axiomcam.workflows.robustness_report`) gives means with 95% bootstrap
intervals (:func:`axiomcam.evaluation.summary.bootstrap_interval`), including the paired
change attacked minus clean.

Cost: per image one forward pass, the attack (FGSM: one forward and backward pass; PGD: one
per step, plus one), one more forward pass; per flipped image and method two explanations.
Before the work starts, ``announce`` is told the cost measured on the first image.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data import Dataset, Sample, open_dataset
from ..evaluation.inputs import evaluation_inputs
from ..methods import Explainer, create, method_info, normalise_method_name
from ..metrics import energy_pointing_game, pointing_game, spearman_correlation
from ..models import PretrainedModel
from ..support import Progress, check_positive_int, eval_mode, progress_bar
from .attacks import ATTACKS, attack, parse_epsilon, pixels_of
from .classify import check_layer, probabilities_from_logits

__all__ = ["DEFAULT_METHODS", "AttackSettings", "AttackedImage", "MapChange",
           "RobustnessRun", "picture_of", "robustness"]

#: the methods that explain the original class unless others are asked for
DEFAULT_METHODS = ("gradcam",)


@dataclass(frozen=True)
class AttackSettings:
    """The attack: ``kind`` (``fgsm`` or ``pgd``), ``epsilon`` (pixel units), ``targeted``,
    PGD's ``steps`` and ``step_size`` (``None``: ``2.5 epsilon / steps``)."""

    kind: str = "pgd"
    epsilon: float = 2 / 255
    targeted: bool = False
    steps: int = 10
    step_size: float | None = None

    def describe(self) -> str:
        """In words, e.g. ``'untargeted PGD, epsilon 0.00784 (2/255), 10 steps'``.

        Examples:
            >>> AttackSettings("fgsm", 1 / 255, True).describe()
            'targeted FGSM, epsilon 0.00392 (1/255)'
        """
        steps = f", {self.steps} steps" if self.kind == "pgd" else ""
        return (f"{'targeted' if self.targeted else 'untargeted'} {self.kind.upper()}, epsilon "
                f"{self.epsilon:.3g} ({self.epsilon * 255:.3g}/255){steps}")


@dataclass(frozen=True)
class MapChange:
    """One method's original-class map, clean vs attacked, on one flipped image.

    Attributes:
        pointing: pointing-game hits ``(clean, attacked)`` on the labelled object's boxes.
        energy: shares of the map's mass in those boxes ``(clean, attacked)``.
        correlation: Spearman's rank correlation of the two maps over pixels.
    """

    pointing: tuple[bool, bool]
    energy: tuple[float, float]
    correlation: float


@dataclass(frozen=True)
class AttackedImage:
    """One attacked image.

    Attributes:
        image_id: its id in the data set.
        original: the original class (the label, which the clean image is classified as).
        target: the targeted attack's class (``None`` untargeted).
        predicted: the attacked image's top-1 class.
        probabilities: the original class's probability ``(clean, attacked)``.
        flipped: the attacked image's top-1 class is not the original class.
        maps: per method, the maps' change (flipped images only; empty otherwise).
    """

    image_id: str
    original: int
    target: int | None
    predicted: int
    probabilities: tuple[float, float]
    flipped: bool
    maps: dict[str, MapChange] = field(default_factory=dict)


@dataclass
class RobustnessRun:
    """What :func:`robustness` found.

    Attributes:
        out_dir: the output folder (``None``: nothing written).
        model, layer, methods, data, settings, seed: what was run.
        images: images seen; skipped: those not attacked (no label, no box of the label,
            or misclassified clean).
        attacked: the attacked images, in the data set's order.
        examples: up to ``figures`` flipped images' pictures for the figure: ``(image id,
            clean pixels (C, S, S), attacked pixels, {method: (clean map, attacked map)})``.
        seconds: wall time; files: what was written.
    """

    out_dir: Path | None
    model: str
    layer: str
    methods: tuple[str, ...]
    data: str
    settings: AttackSettings
    seed: int
    images: int = 0
    skipped: int = 0
    attacked: list[AttackedImage] = field(default_factory=list)
    examples: list[tuple[str, torch.Tensor, torch.Tensor, dict[str, tuple[torch.Tensor,
                                                                         torch.Tensor]]]] = \
        field(default_factory=list)
    seconds: float = 0.0
    files: list[Path] = field(default_factory=list)

    @property
    def flipped(self) -> list[AttackedImage]:
        """The attacked images whose prediction the attack flipped."""
        return [image for image in self.attacked if image.flipped]


@dataclass
class _State:
    pretrained: PretrainedModel
    explainers: dict[str, Explainer]
    run: RobustnessRun
    figures: int
    tolerance: float
    random: np.random.Generator


def _checked_methods(methods: str | Sequence[str]) -> tuple[str, ...]:
    names = (methods,) if isinstance(methods, str) else tuple(methods)
    if not names:
        raise ValueError("give at least one CAM method, such as gradcam")
    checked = tuple(dict.fromkeys(normalise_method_name(name) for name in names))
    for name in checked:
        if not method_info(name).cam:
            raise ValueError(f"robustness compares class activation maps: {name!r} is not "
                             "one; use a CAM method such as gradcam or xgradcam")
    return checked


def _checked_settings(settings: AttackSettings) -> AttackSettings:
    if settings.kind not in ATTACKS:
        raise ValueError(f"unknown attack {settings.kind!r}: use one of {', '.join(ATTACKS)}")
    parse_epsilon(settings.epsilon)
    check_positive_int(settings.steps, "steps")
    return settings


def robustness(pretrained: PretrainedModel, dataset: Dataset | str,
               settings: AttackSettings = AttackSettings(), *,
               methods: str | Sequence[str] = DEFAULT_METHODS, layer: str | None = None,
               batch_size: int = 16, figures: int = 4, tolerance: float = 15.0, seed: int = 0,
               progress: Progress = None, announce: Callable[[str], object] | None = None
               ) -> RobustnessRun:
    """Attack every labelled image of a data set with boxes and compare the original
    class's maps, clean vs attacked, on the images the attack flips.

    See the module's documentation for what is computed; write the results with
    :func:`axiomcam.workflows.robustness_report.write_robustness`.

    Args:
        pretrained: the model (:func:`axiomcam.models.load`).
        dataset: a :class:`axiomcam.data.Dataset` with labels and boxes, or a spec for
            :func:`axiomcam.data.open_dataset` (``"composite:100"``).
        settings: the attack (:class:`AttackSettings`).
        methods: CAM methods that explain the original class.
        layer: the layer to explain (``None``: the model's default).
        batch_size: images per attack and per explanation.
        figures: how many flipped images to keep pictures of (the figure).
        tolerance: the pointing game's tolerance, pixels at the network's input (15, the
            pointing game's at 224 pixels).
        seed: the composite benchmark's seed (for a spec) and the targets' draw.
        progress: a bar over the images (``None``: on a terminal).
        announce: told the cost line before the work starts.

    Returns:
        a :class:`RobustnessRun` (``out_dir`` ``None``).

    Raises:
        ImportError: captum is missing (``pip install 'axiomcam[attacks]'``).
        ValueError: a method that is not a CAM, an unknown attack or layer, a bad budget.

    Examples:
        >>> import torch
        >>> from PIL import Image
        >>> from axiomcam.data import Dataset, Sample
        >>> from axiomcam.models import PretrainedModel
        >>> _ = torch.manual_seed(0)
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.ReLU(),
        ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        >>> toy = PretrainedModel("toy", net.eval(), None, None, ["a", "b"], "1",
        ...                       input_size=8, mean=(0, 0, 0), std=(1, 1, 1))
        >>> class One(Dataset):
        ...     def __len__(self):
        ...         return 1
        ...     def __iter__(self):
        ...         yield Sample("x", Image.new("RGB", (8, 8), "red"), None,
        ...                      torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
        >>> run = robustness(toy, One(toy.class_names, "one"), progress=False)
        >>> run.images, run.skipped, run.attacked
        (1, 1, [])
    """
    methods = _checked_methods(methods)
    settings = _checked_settings(settings)
    batch_size = check_positive_int(batch_size, "batch_size")
    figures = check_positive_int(figures, "figures", minimum=0)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) \
            or not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a finite number of pixels >= 0, got {tolerance!r}")
    layer = check_layer(pretrained, layer)
    if isinstance(dataset, str):
        dataset = open_dataset(dataset, pretrained.class_names, seed=seed)
    start = time.perf_counter()
    run = RobustnessRun(None, pretrained.name, layer, methods, dataset.description, settings,
                        seed)
    with contextlib.ExitStack() as stack:
        explainers = {name: stack.enter_context(create(name, pretrained.model, layer,
                                                       progress=False)) for name in methods}
        state = _State(pretrained, explainers, run, figures, float(tolerance),
                       np.random.default_rng(seed))
        samples = iter(dataset)
        batch = list(islice(samples, batch_size))
        if announce is not None and batch:
            announce(_cost_line(state, batch[0], len(dataset)))
        with progress_bar(progress, len(dataset), "robustness", unit="image") as bar:
            while batch:
                _robustness_batch(state, batch)
                bar.update(len(batch))
                batch = list(islice(samples, batch_size))
    run.seconds = time.perf_counter() - start
    return run


def _cost_line(state: _State, sample: Sample, total: int) -> str:
    """The cost measured on the first image: its attack, and its explanations if flipped."""
    pretrained, settings = state.pretrained, state.run.settings
    inputs, _ = evaluation_inputs(pretrained, [sample.image], [sample.boxes])
    started = time.perf_counter()
    attack(pretrained.model, inputs, torch.zeros(1, dtype=torch.long, device=inputs.device),
           epsilon=settings.epsilon, mean=pretrained.mean, std=pretrained.std,
           kind=settings.kind, targeted=settings.targeted, steps=settings.steps,
           step_size=settings.step_size)
    attacked = time.perf_counter() - started
    started = time.perf_counter()
    for explainer in state.explainers.values():
        explainer(inputs, torch.zeros(1, dtype=torch.long, device=inputs.device))
    explained = 2 * (time.perf_counter() - started)
    return (f"robustness: {total} images of {state.run.data}, {settings.describe()}, "
            f"{', '.join(state.run.methods)} at {state.run.layer}; measured on the first "
            f"image, {attacked:.2f} s per attacked image and {explained:.2f} s more per "
            f"flipped one: at most {(attacked + explained) * total:.0f} s")


def _pick_targets(state: _State, samples: list[Sample], originals: list[int]) -> list[int]:
    """Per image a class drawn at random among those not on it (not its label, no box)."""
    classes = len(state.pretrained.class_names)
    targets = []
    for sample, original in zip(samples, originals, strict=True):
        present = {original, *(int(v) for v in sample.box_labels.reshape(-1))}
        allowed = [c for c in range(classes) if c not in present]
        if not allowed:
            raise ValueError(f"image {sample.id!r} holds every class: a targeted attack "
                             "needs a class that is not on the image")
        targets.append(int(state.random.choice(allowed)))
    return targets


def _robustness_batch(state: _State, samples: list[Sample]) -> None:
    """One batch: classify, attack the right ones, compare the flipped ones' maps."""
    pretrained, run, settings = state.pretrained, state.run, state.run.settings
    inputs, boxes = evaluation_inputs(pretrained, [s.image for s in samples],
                                      [s.boxes for s in samples])
    with eval_mode(pretrained.model), torch.no_grad():
        clean = probabilities_from_logits(pretrained.model(inputs), pretrained)
    run.images += len(samples)
    keep = [i for i, s in enumerate(samples) if s.label is not None
            and int(clean[i].argmax()) == int(s.label)
            and bool((s.box_labels.reshape(-1) == int(s.label)).any())]
    run.skipped += len(samples) - len(keep)
    if not keep:
        return
    originals = [int(samples[i].label) for i in keep]
    targets = _pick_targets(state, [samples[i] for i in keep], originals) \
        if settings.targeted else None
    device = inputs.device
    attacked = attack(pretrained.model, inputs[keep],
                      torch.tensor(targets or originals, device=device),
                      epsilon=settings.epsilon, mean=pretrained.mean, std=pretrained.std,
                      kind=settings.kind, targeted=settings.targeted, steps=settings.steps,
                      step_size=settings.step_size)
    with eval_mode(pretrained.model), torch.no_grad():
        after = probabilities_from_logits(pretrained.model(attacked), pretrained)
    predicted = after.argmax(dim=1).tolist()
    flipped = [p for p, original in enumerate(originals) if predicted[p] != original]
    changes = _map_changes(state, inputs[keep], attacked, originals, flipped,
                           [_label_boxes(samples[i], boxes[i]) for i in keep],
                           [samples[i].id for i in keep])
    for position, index in enumerate(keep):
        original = originals[position]
        run.attacked.append(AttackedImage(
            image_id=samples[index].id, original=original,
            target=None if targets is None else targets[position],
            predicted=predicted[position],
            probabilities=(float(clean[index, original]), float(after[position, original])),
            flipped=position in flipped, maps=changes.get(position, {})))


def _label_boxes(sample: Sample, boxes: torch.Tensor) -> torch.Tensor:
    """The boxes of the sample's label, in input pixels."""
    return boxes[sample.box_labels.reshape(-1).to(boxes.device) == int(sample.label)]


def _map_changes(state: _State, inputs: torch.Tensor, attacked: torch.Tensor,
                 originals: list[int], flipped: list[int], label_boxes: list[torch.Tensor],
                 ids: list[str]) -> dict[int, dict[str, MapChange]]:
    """Per flipped position, per method, the original class's maps clean vs attacked."""
    if not flipped:
        return {}
    classes = torch.tensor([originals[p] for p in flipped], device=inputs.device)
    boxes = [label_boxes[p] for p in flipped]
    changes: dict[int, dict[str, MapChange]] = {p: {} for p in flipped}
    drawn: dict[int, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {p: {} for p in flipped}
    for name, explainer in state.explainers.items():
        clean = explainer(inputs[flipped], classes).maps.detach().clamp(0, 1)
        moved = explainer(attacked[flipped], classes).maps.detach().clamp(0, 1)
        hits = (pointing_game(clean, boxes, tolerance=state.tolerance),
                pointing_game(moved, boxes, tolerance=state.tolerance))
        energy = (energy_pointing_game(clean, boxes), energy_pointing_game(moved, boxes))
        correlation = spearman_correlation(clean.flatten(1), moved.flatten(1))
        for row, position in enumerate(flipped):
            changes[position][name] = MapChange(
                (bool(hits[0][row]), bool(hits[1][row])),
                (float(energy[0][row]), float(energy[1][row])), float(correlation[row]))
            drawn[position][name] = (clean[row].cpu(), moved[row].cpu())
    mean, std = state.pretrained.mean, state.pretrained.std
    for position in flipped:
        if len(state.run.examples) < state.figures:
            state.run.examples.append((
                ids[position], pixels_of(inputs[position:position + 1], mean, std)[0].cpu(),
                pixels_of(attacked[position:position + 1], mean, std)[0].cpu(),
                drawn[position]))
    return changes


def picture_of(pixels: torch.Tensor) -> Image.Image:
    """A ``(C, H, W)`` tensor of pixels in ``[0, 1]`` as an 8-bit RGB picture (one channel:
    grey).

    Examples:
        >>> import torch
        >>> picture_of(torch.ones(3, 2, 4)).size
        (4, 2)
    """
    values = (pixels.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    if values.shape[0] == 1:
        values = values.expand(3, -1, -1)
    return Image.fromarray(values[:3].permute(1, 2, 0).contiguous().numpy(), "RGB")
