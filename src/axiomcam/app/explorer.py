"""What the browser app computes, without any HTTP: open an image, classify it, explain one
class with several methods at one layer, and measure each map (XGrad-CAM's conservation and
sensitivity errors, the area under the deletion curve).

The server (:mod:`axiomcam.app.server`) only moves these results to and from the page, so
everything here is tested directly.

Examples:
    >>> import torch, torchvision
    >>> from axiomcam.app.explorer import Explorer
    >>> from axiomcam.models import PretrainedModel
    >>> from PIL import Image
    >>> model = torchvision.models.resnet18(num_classes=3).eval()
    >>> pretrained = PretrainedModel("toy", model, None, None, ["ant", "bee", "cat"],
    ...                              "layer4", input_size=64)
    >>> explorer = Explorer(pretrained)
    >>> opened = explorer.open_image(Image.new("RGB", (80, 60), (90, 140, 30)))
    >>> top = opened.top_classes
    >>> len(top), top[0]["probability"] >= top[1]["probability"] >= top[2]["probability"]
    (3, True)
    >>> results = explorer.explain(opened, "bee", "layer4", ["gradcam", "xgradcam"])
    >>> [(result.method, result.error) for result in results]
    [('gradcam', None), ('xgradcam', None)]
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from PIL import Image

from .. import methods as method_registry
from ..figures import method_title
from ..images import (
    ARRAY_SUFFIX,
    SAMPLE_IMAGES,
    array_from_bytes,
    image_from_bytes,
    overlay,
    sample_image,
)
from ..layers import candidate_layers
from ..methods import AblationCache, has_channel_weights
from ..methods.occlusion import scaled_window
from ..metrics import AxiomProbe, deletion_insertion
from ..models import PretrainedModel
from ..workflows import (
    blank_input,
    check_layer,
    create_explainer,
    network_inputs,
    parse_targets,
    probabilities_and_logits,
    top_classes,
)

__all__ = [
    "DEFAULT_METHODS",
    "MAX_SIDE",
    "MAX_UPLOAD_BYTES",
    "METHODS",
    "Explorer",
    "MethodResult",
    "OpenedImage",
]

#: the methods the app offers: every CAM and every variant (Ablation-CAM's
#: sensitivity-exact form), as the method registry lists them, occlusion (the
#: reference the CAMs are compared with: no layer, 1 + P passes of the whole network) and
#: FullGrad (no layer: the input- and bias-gradients of the whole network)
METHODS: tuple[str, ...] = (*method_registry.CAM_METHODS, *method_registry.VARIANT_NAMES,
                            method_registry.Occlusion.name, method_registry.FullGrad.name)
#: ticked when the page opens: the two the axioms tell apart
DEFAULT_METHODS: tuple[str, ...] = ("gradcam", "xgradcam")
#: an image larger than this on its longer side is downscaled to it (the network sees a few
#: hundred pixels; overlays at this size still show every detail a screen can)
MAX_SIDE = 2048
#: uploads larger than this are refused before decoding
MAX_UPLOAD_BYTES = 50 * 2**20
#: steps of the deletion curve (the evaluation runner's default is 50; 20 keeps a page's
#: answer within seconds)
DELETION_STEPS = 20
#: the time a probe of the layer takes (its K ablations run only the layers after the
#: target), and a gradient method's map, in deletion curves (progress bar)
ABLATION_COST = 1.5
MAP_COST = 0.1
#: perturbed images per forward pass of the curves: small enough for the progress bar to move
DELETION_BATCH_SIZE = 16

# the first bytes of every .npy file
_NUMPY_MAGIC = b"\x93NUMPY"

#: ``(fraction done in [0, 1], what is running)``
ProgressReport = Callable[[float, str], object]


@dataclass
class OpenedImage:
    """An image ready to explain.

    Attributes:
        image: the RGB image, downscaled to at most :data:`MAX_SIDE` on its longer side
            (for an array, the grey picture of its values, which it carries).
        name: where it came from (the file's name or the sample's).
        notice: what was done to it that the user should know (a downscale), or ``None``.
        inputs: ``(1, C, S, S)`` the network's input (the whole image resized).
        probabilities: ``(num_classes,)`` the model's class probabilities (a softmax of
            its output, or as :meth:`axiomcam.models.PretrainedModel.probabilities` says).
        top_classes: the 5 most probable classes: ``{"index", "name", "probability"}``.
    """

    image: Image.Image
    name: str
    notice: str | None
    inputs: torch.Tensor
    probabilities: torch.Tensor
    top_classes: list[dict[str, object]]
    #: ``(layer, class index)`` -> the explanations' axiom probe (the layer's activations,
    #: gradients and ablated scores, computed once)
    probes: dict[tuple[str, int], AxiomProbe] = field(default_factory=dict, repr=False)
    #: the K channel ablations of ``inputs``, per layer and class: one sweep serves the
    #: probe and both Ablation-CAM forms
    ablations: AblationCache = field(default_factory=AblationCache, repr=False)


@dataclass
class MethodResult:
    """One method's map of one class and how good it is.

    Attributes:
        method: the method's name (``"xgradcam"``); ``title`` its display name.
        heatmap: the coloured map alone at the image's size (``None`` when ``error``).
        cam_map: ``(S, S)`` the map in ``[0, 1]`` at the network's input size.
        conservation_error, sensitivity_error: XGrad-CAM's axioms (``None`` for a method
            without channel weights: ``axioms_note`` says so).
        bias_share: the share of the score no map can conserve (the network's biases).
        deletion_auc: area under the deletion curve (lower: the map found what matters).
        seconds: time to compute the map (and its axiom errors from the probe, a few
            arithmetic operations; not the probe nor the deletion curve).
        error: why the method could not explain this (e.g. CAM at a layer that is not
            followed by global pooling and one linear layer); the others still run.
    """

    method: str
    title: str
    heatmap: Image.Image | None = None
    cam_map: torch.Tensor | None = None
    conservation_error: float | None = None
    sensitivity_error: float | None = None
    bias_share: float | None = None
    deletion_auc: float | None = None
    seconds: float = 0.0
    axioms_note: str | None = None
    error: str | None = None


class _StagedProgress:
    """The progress of one explanation: stages of known cost, each stage's own
    ``(step, steps)`` told as its share of the whole ``total``."""

    def __init__(self, report: ProgressReport | None, total: float) -> None:
        self.report: ProgressReport = report or (lambda fraction, text: None)
        self.total = total
        self.done = 0.0

    def tell(self, text: str) -> None:
        """Report what starts now, at the share done so far."""
        self.report(self.done / self.total, text)

    def stage(self, label: str, cost: float) -> Callable[[int, int, str], None]:
        """A progress callable ``(step, steps, description)`` for the stage starting now."""
        start = self.done

        def tell(step: int, steps: int, _description: str) -> None:
            share = step / steps if steps else 1.0
            self.report(min((start + share * cost) / self.total, 1.0),
                        f"{label} ({step}/{steps})" if steps > 1 else label)
        return tell

    def advance(self, cost: float) -> None:
        """A stage of ``cost`` is done."""
        self.done += cost


class Explorer:
    """Explains images for the app with one model.

    Args:
        pretrained: the model (:func:`axiomcam.models.load`).
        deletion_steps: points of the deletion curve, minus one.
    """

    def __init__(self, pretrained: PretrainedModel, *,
                 deletion_steps: int = DELETION_STEPS) -> None:
        self.pretrained = pretrained
        self.deletion_steps = deletion_steps
        blank = blank_input(pretrained)
        #: ``(name, output shape)`` of every layer a CAM can explain, in call order
        self.layers: list[tuple[str, tuple[int, ...]]] = candidate_layers(pretrained.model,
                                                                          blank)
        self.default_layer = pretrained.default_layer
        #: held by every use of the model: an explanation's hooks would otherwise also
        #: catch another request's forward pass (the server answers in several threads)
        self.model_lock = threading.RLock()

    # -- images

    def open_upload(self, data: bytes, name: str) -> OpenedImage:
        """An uploaded file's bytes, checked, decoded and classified: an image (grey for a
        1-channel model), or a ``.npy`` array of the model's channels
        (:func:`axiomcam.images.array_from_bytes`), the only input of a model of other
        than 1 or 3 channels.

        Raises:
            ValueError: empty, larger than :data:`MAX_UPLOAD_BYTES`, not an image or array,
                or an image for a model whose channels an image has not (the message names
                the file and the reason).
        """
        if len(data) > MAX_UPLOAD_BYTES:
            raise ValueError(f"{name!r} is {len(data) / 2**20:.0f} MB; the app takes images "
                             f"up to {MAX_UPLOAD_BYTES // 2**20} MB")
        channels = self.pretrained.channels
        if name.lower().endswith(ARRAY_SUFFIX) or data.startswith(_NUMPY_MAGIC):
            return self.open_image(array_from_bytes(data, channels, name), name)
        self._check_image_channels(name)
        return self.open_image(image_from_bytes(data, name), name)

    def _check_image_channels(self, name: str) -> None:
        """Refuse an image for a model of other than 1 or 3 channels, saying what to give."""
        channels = self.pretrained.channels
        if channels not in (1, 3):
            raise ValueError(f"{name!r} is an image (1 or 3 channels) but the model takes "
                             f"{channels}-channel inputs: upload a {ARRAY_SUFFIX} array "
                             f"({channels}, H, W) or (H, W, {channels})")

    def open_sample(self, name: str) -> OpenedImage:
        """One of the bundled sample photographs (:data:`axiomcam.images.SAMPLE_IMAGES`)."""
        self._check_image_channels(name)
        return self.open_image(sample_image(name), name)

    def open_image(self, image: Image.Image, name: str = "image") -> OpenedImage:
        """Downscale a huge image (with a notice), then classify it."""
        notice = None
        if max(image.size) > MAX_SIDE:
            scale = MAX_SIDE / max(image.size)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            notice = (f"{name} is {image.width}\N{MULTIPLICATION SIGN}{image.height} pixels: "
                      f"downscaled to {size[0]}\N{MULTIPLICATION SIGN}{size[1]} (the network "
                      f"sees {self.pretrained.input_size} pixels a side)")
            # an array's picture keeps its values (PIL copies .info): the network gets them
            image = image.resize(size, Image.Resampling.LANCZOS)
        inputs = network_inputs(self.pretrained, [image])
        with self.model_lock:
            probabilities, _ = probabilities_and_logits(self.pretrained.model, inputs,
                                                        self.pretrained)
        probabilities = probabilities[0].cpu()
        top = top_classes(self.pretrained, probabilities)
        return OpenedImage(image, name, notice, inputs, probabilities, top)

    # -- what to explain

    def resolve_class(self, text: str) -> int:
        """A class typed or picked on the page: an index or a name (case-insensitive).

        Raises:
            ValueError: an unknown name (near matches suggested), a name two classes share,
                an index out of range, or more than one class.
        """
        choice = parse_targets(text, self.pretrained.class_names, offer_top=False)
        if choice.top is not None:
            raise ValueError(f"type one class (an index or a name), not {text!r}")
        if len(choice.classes) != 1:
            raise ValueError(f"explain one class at a time, not {len(choice.classes)} "
                             f"({text!r})")
        return choice.classes[0]

    def resolve_layer(self, layer: str | None) -> str:
        """The layer, checked (near matches on a typo), or the model's default."""
        if not layer:
            return self.default_layer
        if layer in dict(self.layers):
            return layer
        with self.model_lock:  # raises the reason, after a forward pass to find it
            return check_layer(self.pretrained, layer)

    @staticmethod
    def check_methods(methods: Sequence[str]) -> list[str]:
        """The methods, each one the app offers, in the order given, without repeats."""
        chosen = list(dict.fromkeys(methods))
        if not chosen:
            raise ValueError("pick at least one method")
        unknown = [method for method in chosen if method not in METHODS]
        if unknown:
            raise ValueError(f"unknown method {unknown[0]!r}; the app offers "
                             f"{', '.join(METHODS)}")
        return chosen

    # -- explaining

    def explain(self, opened: OpenedImage, target: str | int, layer: str | None,
                methods: Sequence[str], progress: ProgressReport | None = None,
                on_result: Callable[[MethodResult], object] | None = None, *,
                counterfactual: bool = False) -> list[MethodResult]:
        """Each method's map of one class at one layer, with its axiom errors and the area
        under its deletion curve.

        The layer is probed once (activations, gradients, the ``K`` channel-ablated scores)
        and the probe is shared by every method and kept for the next call on the same
        image, layer and class. Methods whose maps are equal to float rounding (CAM,
        Grad-CAM and XGrad-CAM at a layer followed by global pooling and a linear layer)
        share one deletion curve.
        A method that cannot explain this (CAM at an inner layer; with ``counterfactual``, a
        method without a counterfactual form) gets its ``error``; the others still run.

        Args:
            opened: from :meth:`open_upload`, :meth:`open_sample` or :meth:`open_image`.
            target: a class index, or text for :meth:`resolve_class`.
            layer: a layer name (``None`` or ``""``: the model's default).
            methods: names from :data:`METHODS`.
            progress: told ``(fraction done, what is running)`` as the work goes on.
            on_result: given each method's result as soon as it is complete (a page shows
                it while the next method runs).
            counterfactual: each map shows the evidence against the class (the gradient
                negated; titled "(counterfactual)"); its axioms are measured against
                ``-y^c``, and its deletion curve is the class's (removing the evidence
                against a class should *raise* its probability: a high AUC).

        Raises:
            ValueError: an unknown class, layer or method.
        """
        with self.model_lock:
            return self._explain(opened, target, layer, methods, progress, on_result,
                                 counterfactual)

    def _explain(self, opened: OpenedImage, target: str | int, layer: str | None,
                 methods: Sequence[str], progress: ProgressReport | None,
                 on_result: Callable[[MethodResult], object] | None,
                 counterfactual: bool) -> list[MethodResult]:
        class_index = self._class_index(target)
        layer = self.resolve_layer(layer)
        methods = self.check_methods(methods)
        weighted = any(has_channel_weights(method) for method in methods)
        # the bar's stages, in units of one deletion curve (its steps + 1 forward passes):
        # the probe, then per method its map and its curve, so that Score-CAM's K passes
        # of the whole network fill as much of the bar as they take time
        bar = _StagedProgress(progress, (ABLATION_COST if weighted else 0.0)
                              + sum(self._map_cost(method, layer) + 1 for method in methods))
        batch = self._axiom_probe(opened, layer, class_index)
        if weighted:
            if not batch.probed:
                bar.tell("probing the layer")
                batch.progress = bar.stage("axioms: channel ablations", ABLATION_COST)
                _ = batch.probe  # now, so that its share of the bar comes first
            bar.advance(ABLATION_COST)
        results: list[MethodResult] = []
        for method in methods:
            result = self._explain_method(opened, batch, method, layer, bar, results,
                                          counterfactual)
            results.append(result)
            if on_result is not None:
                on_result(result)
        bar.report(1.0, "done")
        return results

    def _class_index(self, target: str | int) -> int:
        """A class index given, or typed (:meth:`resolve_class`), checked."""
        class_index = target if isinstance(target, int) else self.resolve_class(target)
        if not 0 <= class_index < len(self.pretrained.class_names):
            raise ValueError(f"class {class_index} is out of range: the model has "
                             f"{len(self.pretrained.class_names)} classes")
        return class_index

    def _map_cost(self, method: str, layer: str) -> float:
        """What a method's map costs, in deletion curves: Score-CAM runs the whole network
        once per channel; Ablation-CAM reads the probe's ablations (it has channel
        weights, so the probe runs first), as cheap as a gradient method's map; occlusion
        runs it once per window position."""
        cost = method_registry.method_info(method).cost
        if cost == "masking":
            return dict(self.layers)[layer][1] / (self.deletion_steps + 1)
        if cost == "occlusion":
            return method_registry.occlusion_positions(self._input_grid, *scaled_window(
                self._input_grid)) / (self.deletion_steps + 1)
        return MAP_COST

    @property
    def _input_grid(self) -> tuple[int, int]:
        return (self.pretrained.input_size, self.pretrained.input_size)

    def _axiom_probe(self, opened: OpenedImage, layer: str, class_index: int) -> AxiomProbe:
        """The image's explanations of one class at one layer, measured with one probe of
        the layer, kept for the next request (:attr:`OpenedImage.probes`)."""
        key = (layer, class_index)
        if key not in opened.probes:
            classes = torch.tensor([class_index], device=opened.inputs.device)
            opened.probes[key] = AxiomProbe(self.pretrained.model, opened.inputs, classes,
                                            layer, ablation_cache=opened.ablations)
        return opened.probes[key]

    def _explain_method(self, opened: OpenedImage, batch: AxiomProbe, method: str, layer: str,
                        bar: _StagedProgress, earlier: Sequence[MethodResult],
                        counterfactual: bool = False) -> MethodResult:
        """One method's map (or counterfactual map), its axiom errors and its
        deletion-curve area (the curve of an earlier equal map is not run again)."""
        title = method_title(method, counterfactual=counterfactual)
        bar.tell(title)
        result = MethodResult(method, title)
        cost = self._map_cost(method, layer)
        started = time.perf_counter()
        try:
            with create_explainer(self.pretrained, method, layer,
                                  progress=bar.stage(title, cost),
                                  counterfactual=counterfactual) as explainer:
                explanation, errors = batch.explain(explainer)
        except ValueError as error:
            result.error = str(error)
            bar.advance(cost + 1)
            return result
        result.seconds = time.perf_counter() - started
        bar.advance(cost)
        result.cam_map = explanation.maps[0].detach().float().cpu()
        result.heatmap = overlay(opened.image, result.cam_map, alpha=1.0)
        if errors is not None:
            result.conservation_error = float(errors.conservation_error[0])
            result.sensitivity_error = float(errors.sensitivity_error[0])
            result.bias_share = float(errors.bias_share[0])
        else:
            result.axioms_note = "no channel weights: the axioms do not apply"
        # equal maps up to float rounding (1e-6 of the [0, 1] range): one curve
        same = next((other for other in earlier if other.cam_map is not None
                     and torch.allclose(other.cam_map, result.cam_map, rtol=0, atol=1e-6)),
                    None)
        if same is not None:
            result.deletion_auc = same.deletion_auc
        else:
            curve = deletion_insertion(self.pretrained.model, opened.inputs, explanation.maps,
                                       batch.targets, steps=self.deletion_steps,
                                       batch_size=DELETION_BATCH_SIZE,
                                       probability=self.pretrained.probability,
                                       progress=bar.stage(f"{title}: deletion curve", 1.0),
                                       insertion=False)
            result.deletion_auc = float(curve.deletion_auc[0])
        bar.advance(1)
        return result

    def overlay_picture(self, opened: OpenedImage, result: MethodResult,
                        alpha: float) -> Image.Image:
        """The map over the image at ``alpha`` opacity, at the image's size (a download)."""
        if result.cam_map is None:
            raise ValueError(f"{result.title} has no map: {result.error}")
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) \
                or not math.isfinite(alpha) or not 0 <= alpha <= 1:
            raise ValueError(f"opacity must be a number in [0, 1], not {alpha!r}")
        return overlay(opened.image, result.cam_map, alpha=float(alpha))

    @staticmethod
    def samples() -> dict[str, str]:
        """The bundled sample images: name -> what is in it."""
        return dict(SAMPLE_IMAGES)
