"""XGrad-CAM's axioms as measures: conservation, sensitivity, and the network's bias share.

Fu et al., "Axiom-based Grad-CAM: Towards Accurate Visualization and Explanation of CNNs"
(BMVC 2020, arXiv 2008.02312) ask of a map ``L^c = sum_k w_k A^k`` (before its ReLU):

- **conservation**: ``sum_ij L^c_ij = y^c(A)``, the map redistributes the score;
- **sensitivity**: for every channel ``k``, ``w_k sum_ij A^k_ij = y^c(A) - y^c(A without k)``,
  each channel's share of the map is the score it is responsible for.

This module measures how far a map is from each, per image:

- ``conservation_error = |y^c - sum_ij L^c_ij| / |y^c|``;
- ``sensitivity_error = sum_k |dS_k - w_k sum_ij A^k_ij| / sum_k |dS_k|`` with
  ``dS_k = y^c(A) - y^c(A without channel k)``, and ``sensitivity_correlation``, the Pearson
  correlation over ``k`` of ``dS_k`` and ``w_k sum_ij A^k_ij``;
- ``bias_share = |y^c - sum_k sum_ij G^k_ij A^k_ij| / |y^c|`` (``G = dy^c/dA``): the part of
  the score that comes from bias terms (BatchNorm shifts, linear biases) after the layer.
  When the layers after the target are ReLU / max-pool / linear without bias, ``y^c`` is
  positively homogeneous of degree 1 in ``A`` and Euler's theorem gives ``y^c = sum G A``;
  XGrad-CAM's maps have ``sum_ij L = sum G A`` exactly, so their conservation error *is*
  the bias share. No map of the form ``sum_k w_k A^k`` can conserve the bias part: report
  the bias share beside the conservation error to tell a method's fault from the network's.

Degenerate cases are defined, never NaN: a zero score makes the conservation error and the
bias share absolute (``|sum L|``, ``|sum G A|``); when no channel changes the score
(``sum_k |dS_k| = 0``) the sensitivity error is ``sum_k |w_k sum_ij A^k_ij|``; a constant
``dS`` or contribution vector has correlation 0.

The axioms are meaningful at layers with non-negative activations (after a ReLU) that no
skip connection bypasses, so that the score is a function of ``A`` alone; see
``docs/evaluation.md``.

Examples:
    >>> import torch
    >>> from axiomcam.metrics.axioms import measure_axioms
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1), nn.ReLU(),
    ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    >>> errors = measure_axioms(model, torch.rand(2, 3, 16, 16), ["gradcam", "xgradcam"],
    ...                         target_layer="1")  # the first ReLU's output
    >>> errors["xgradcam"].conservation_error.shape
    torch.Size([2])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..explanation import Explanation
from ..methods import (
    CHANNEL_WEIGHT_METHODS,
    AblationCache,
    Explainer,
    capture_layer,
    create,
    method_info,
)
from ..methods.maps import safe_divide
from ..support import Progress
from ..targets import TargetSpec

__all__ = [
    "AxiomErrors",
    "AxiomProbe",
    "LayerProbe",
    "axiom_errors",
    "conservation_error",
    "measure_axioms",
    "probe_layer",
    "sensitivity_correlation",
    "sensitivity_error",
]


@dataclass(frozen=True, eq=False)
class LayerProbe:
    """What the axioms need to know about a batch at one layer, shared by every method.

    Attributes:
        target_layer: qualified name of the layer.
        targets: ``(B,)`` the classes explained (``None`` for a callable target).
        activations: ``(B, K, h, w)`` the layer's output ``A``.
        gradients: ``(B, K, h, w)`` ``G = dy^c/dA``.
        scores: ``(B,)`` the target scores ``y^c(A)``.
        ablated_scores: ``(B, K)`` ``y^c(A without channel k)``: channel ``k`` set to 0 and
            the network after the layer re-run (``K`` passes per image, in batches).
    """

    target_layer: str
    targets: torch.Tensor | None
    activations: torch.Tensor
    gradients: torch.Tensor
    scores: torch.Tensor
    ablated_scores: torch.Tensor

    @property
    def score_drops(self) -> torch.Tensor:
        """``(B, K)`` ``dS_k = y^c(A) - y^c(A without channel k)``."""
        return self.scores[:, None] - self.ablated_scores

    @property
    def gradient_activation_sum(self) -> torch.Tensor:
        """``(B,)`` ``sum_k sum_ij G^k_ij A^k_ij`` (equal to ``y^c`` without biases after
        the layer, by Euler's theorem)."""
        return (self.gradients * self.activations).flatten(1).sum(1)

    @property
    def bias_share(self) -> torch.Tensor:
        """``(B,)`` ``|y^c - sum G A| / |y^c|``: the share of the score due to bias terms."""
        return _relative(self.scores - self.gradient_activation_sum, self.scores)


@dataclass(frozen=True, eq=False)
class AxiomErrors:
    """How far one method's maps are from XGrad-CAM's axioms, per image (all ``(B,)``).

    Attributes:
        conservation_error: ``|y^c - sum_ij L_ij| / |y^c|``.
        sensitivity_error: ``sum_k |dS_k - w_k sum_ij A^k_ij| / sum_k |dS_k|``.
        sensitivity_correlation: Pearson correlation over channels of ``dS_k`` and
            ``w_k sum_ij A^k_ij``.
        bias_share: ``|y^c - sum G A| / |y^c|``, the network's share (same for every method).
        map_sum: ``sum_ij L_ij`` of the map before its ReLU.
        score: ``y^c`` (``-y^c`` for a counterfactual map, which explains it).
    """

    conservation_error: torch.Tensor
    sensitivity_error: torch.Tensor
    sensitivity_correlation: torch.Tensor
    bias_share: torch.Tensor
    map_sum: torch.Tensor
    score: torch.Tensor


def probe_layer(model: nn.Module, inputs: torch.Tensor, targets: TargetSpec = None,
                target_layer: str | nn.Module | None = None, *, batch_size: int | None = None,
                progress: Progress = None,
                ablation_cache: AblationCache | None = None) -> LayerProbe:
    """Activations, gradients, scores and channel-ablated scores of a batch at a layer.

    One forward pass (autograd only after the layer), one backward pass that stops at the
    layer, and ``K`` ablated copies per image run through the network *after* the layer
    only, in chunks (the whole network for models that reshape with the input's batch
    size, with a warning).

    Args:
        model: the network.
        inputs: ``(B, C, H, W)`` preprocessed images.
        targets: one target per image, as for :func:`axiomcam.explain` (``None``: the top
            class; an int; ``B`` classes; a callable ``output -> (B,)``).
        target_layer: as for :func:`axiomcam.explain` (``None``: the default layer).
        batch_size: ablated copies per forward pass (``None``: as many as fit in
            :data:`axiomcam.methods.ABLATION_COPY_BYTES`, as for Ablation-CAM).
        progress: progress bar over the ablation passes (``None``: on a terminal, when long).
        ablation_cache: shares the channel-ablated scores with Ablation-CAM explainers of
            the same batch (:class:`axiomcam.methods.AblationCache`).

    Raises:
        ValueError: ``(B, k)`` targets (one target per image is measured at a time), and
            everything :func:`axiomcam.explain` rejects.

    Examples:
        >>> import torch
        >>> from axiomcam.metrics.axioms import probe_layer
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
        >>> probe = probe_layer(model, torch.rand(1, 3, 16, 16), targets=3, target_layer="1")
        >>> probe.ablated_scores.shape, probe.targets.tolist()
        (torch.Size([1, 8]), [3])
    """
    if torch.is_tensor(targets) and targets.dim() == 2 and targets.shape[1] != 1:
        raise ValueError(
            f"the axioms are measured for one target per image; got targets of shape "
            f"{tuple(targets.shape)}: measure each column separately"
        )
    context = capture_layer(model, inputs, targets, target_layer, batch_size=batch_size,
                            progress=progress, ablation_cache=ablation_cache)
    gradients = context.gradients()  # first: frees the graph before the ablation passes
    ablated = context.channel_ablation_scores()
    batch, channels = context.batch_size, context.num_channels
    classes = context.targets.classes
    return LayerProbe(
        target_layer=context.target_layer,
        targets=None if classes is None else classes[:, 0],
        activations=context.activations.view(batch, channels, *context.spatial_shape),
        gradients=gradients[:, 0].reshape(batch, channels, *context.spatial_shape),
        scores=context.scores[:, 0],
        ablated_scores=ablated[:, 0],
    )


def _relative(difference: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``|difference| / |reference|``, and ``|difference|`` where the reference is 0."""
    reference = reference.abs()
    return difference.abs() / torch.where(reference == 0, torch.ones_like(reference), reference)


def conservation_error(scores: torch.Tensor, map_sums: torch.Tensor) -> torch.Tensor:
    """``|y^c - sum_ij L_ij| / |y^c|`` per image (``|sum_ij L_ij|`` where ``y^c = 0``).

    Args:
        scores: ``(B,)`` the target scores ``y^c``.
        map_sums: ``(B,)`` the sums of the maps before their ReLU (``raw.sum((1, 2))``).

    Examples:
        >>> import torch
        >>> from axiomcam.metrics.axioms import conservation_error
        >>> conservation_error(torch.tensor([4.0, 0.0]), torch.tensor([3.0, 0.5]))
        tensor([0.2500, 0.5000])
    """
    return _relative(scores - map_sums, scores)


def sensitivity_error(score_drops: torch.Tensor, contributions: torch.Tensor) -> torch.Tensor:
    """``sum_k |dS_k - c_k| / sum_k |dS_k|`` per image, ``c_k = w_k sum_ij A^k_ij``.

    Where no channel changes the score (``sum_k |dS_k| = 0``) the error is ``sum_k |c_k|``.

    Args:
        score_drops: ``(B, K)`` ``dS_k = y^c(A) - y^c(A without channel k)``.
        contributions: ``(B, K)`` each channel's share of the map, ``w_k sum_ij A^k_ij``.

    Examples:
        >>> import torch
        >>> from axiomcam.metrics.axioms import sensitivity_error
        >>> sensitivity_error(torch.tensor([[2.0, -1.0, 1.0]]), torch.tensor([[1.0, -1.0, 1.0]]))
        tensor([0.2500])
    """
    return _relative((score_drops - contributions).abs().sum(-1), score_drops.abs().sum(-1))


def sensitivity_correlation(score_drops: torch.Tensor,
                            contributions: torch.Tensor) -> torch.Tensor:
    """Pearson correlation over channels of ``dS_k`` and ``c_k``, per image (0 where either
    is constant).

    Examples:
        >>> import torch
        >>> from axiomcam.metrics.axioms import sensitivity_correlation
        >>> drops, contributions = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[2.0, 4.0, 6.0]])
        >>> sensitivity_correlation(drops, contributions)
        tensor([1.])
    """
    first = score_drops - score_drops.mean(-1, keepdim=True)
    second = contributions - contributions.mean(-1, keepdim=True)
    scale = first.norm(dim=-1) * second.norm(dim=-1)
    return safe_divide((first * second).sum(-1), scale).clamp(-1.0, 1.0)


def _refuse_several_layers(explanation: Explanation) -> None:
    if explanation.layers is not None:
        first = next(iter(explanation.layers))
        raise ValueError(
            f"the explanation is at several layers {list(explanation.layers)}: the axioms "
            f"are measured per layer, on each layer's own explanation and probe, e.g. "
            f"axiom_errors(probe_layer(model, inputs, targets, {first!r}), "
            f"explanation.layers[{first!r}])")


def axiom_errors(probe: LayerProbe, explanation: Explanation) -> AxiomErrors:
    """Conservation and sensitivity errors of one method's explanation of the probed batch.

    Args:
        probe: :func:`probe_layer` of the same batch, targets and layer.
        explanation: the method's :class:`~axiomcam.Explanation` (one target per image,
            from a method with channel weights: CAM, Grad-CAM, Grad-CAM++, XGrad-CAM,
            Ablation-CAM, Score-CAM).  A counterfactual explanation explains ``-y^c``:
            its errors are measured against ``-y^c`` and the drops ``-dS_k`` (``score``
            is then ``-y^c``); the bias share is the network's and does not change.

    Raises:
        ValueError: a method without channel weights, another layer, an explanation at
            several layers (measure ``explanation.layers[name]`` instead), other targets,
            or shapes that do not match the probe.

    Examples:
        >>> import torch, axiomcam
        >>> from axiomcam.metrics.axioms import axiom_errors, probe_layer
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
        >>> inputs = torch.rand(2, 3, 16, 16)
        >>> probe = probe_layer(model, inputs, target_layer="3")  # feeds GAP + linear
        >>> exp = axiomcam.explain(model, inputs, "gradcam", "3", targets=probe.targets)
        >>> errors = axiom_errors(probe, exp)
        >>> bool((errors.sensitivity_error < 1e-4).all())  # exact on GAP + linear heads
        True
    """
    if not isinstance(explanation, Explanation):
        raise TypeError(f"explanation must be an Explanation, not {type(explanation).__name__}")
    _refuse_several_layers(explanation)
    if explanation.channel_weights is None:
        raise ValueError(
            f"{explanation.method!r} has no channel weights: the conservation and sensitivity "
            f"axioms are defined for maps sum_k w_k A^k ({', '.join(CHANNEL_WEIGHT_METHODS)})"
        )
    if explanation.target_layer != probe.target_layer:
        raise ValueError(
            f"the explanation is at layer {explanation.target_layer!r} but the probe at "
            f"{probe.target_layer!r}: probe the layer the method explains"
        )
    batch, channels = probe.activations.shape[:2]
    weights = explanation.channel_weights
    if weights.shape != (batch, channels):
        raise ValueError(
            f"channel weights of shape {tuple(weights.shape)} do not match the probe's "
            f"(B, K) = {(batch, channels)} (one target per image is measured at a time)"
        )
    if (probe.targets is not None and explanation.targets is not None
            and not torch.equal(probe.targets.to(explanation.targets.device),
                                explanation.targets)):
        raise ValueError(
            f"the explanation explains classes {explanation.targets.tolist()} but the probe "
            f"{probe.targets.tolist()}: pass the probe's targets to the method"
        )
    weights = weights.to(probe.activations.device)
    map_sums = explanation.raw.to(probe.activations.device).flatten(1).sum(1)
    contributions = weights * probe.activations.flatten(2).sum(-1)
    # a counterfactual map explains -y^c: its score and channel drops are negated
    sign = -1.0 if explanation.counterfactual else 1.0
    scores, drops = sign * probe.scores, sign * probe.score_drops
    return AxiomErrors(
        conservation_error=conservation_error(scores, map_sums),
        sensitivity_error=sensitivity_error(drops, contributions),
        sensitivity_correlation=sensitivity_correlation(drops, contributions),
        bias_share=probe.bias_share,
        map_sum=map_sums,
        score=scores,
    )


class AxiomProbe:
    """Explain and measure one batch at one layer: the one workflow the CLI's ``compare``,
    the app and ``evaluate`` share.

    The layer is probed (:func:`probe_layer`: activations, gradients and the ``K``
    channel-ablated scores) the first time an explanation with channel weights is
    measured, and that probe serves every later method; its channel ablations are shared
    with Ablation-CAM explainers through one :class:`~axiomcam.methods.AblationCache`.

    Args:
        model: the network.
        inputs: ``(B, C, H, W)`` preprocessed images.
        targets: one class per image (``(B,)``), or a callable target; every explanation
            measured must explain these.
        target_layer: the layer the methods explain.
        batch_size: ablated copies per forward pass (``None``: as for Ablation-CAM).
        progress: progress over the probe's ablation passes.
        ablation_cache: the cache to share (``None``: a new one for this batch).

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from axiomcam.methods import create
        >>> from axiomcam.metrics.axioms import AxiomProbe
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
        >>> batch = AxiomProbe(model, torch.rand(2, 3, 16, 16), torch.tensor([1, 2]), "3")
        >>> explanation, errors = batch.explain(create("xgradcam", model, "3"))
        >>> bool((errors.sensitivity_error < 1e-4).all())  # exact on GAP + linear heads
        True
        >>> batch.explain(create("layercam", model, "3"))[1] is None  # no channel weights
        True
    """

    def __init__(self, model: nn.Module, inputs: torch.Tensor, targets: TargetSpec,
                 target_layer: str | nn.Module | None, *, batch_size: int | None = None,
                 progress: Progress = None, ablation_cache: AblationCache | None = None
                 ) -> None:
        self.model = model
        self.inputs = inputs
        self.targets = targets
        self.target_layer = target_layer
        self.batch_size = batch_size
        self.progress = progress
        self.ablation_cache = AblationCache() if ablation_cache is None else ablation_cache
        self._probe: LayerProbe | None = None

    @property
    def probed(self) -> bool:
        """Whether the layer has been probed yet."""
        return self._probe is not None

    @property
    def probe(self) -> LayerProbe:
        """The :class:`LayerProbe` of the batch, computed on first use."""
        if self._probe is None:
            self._probe = probe_layer(self.model, self.inputs, self.targets, self.target_layer,
                                      batch_size=self.batch_size, progress=self.progress,
                                      ablation_cache=self.ablation_cache)
        return self._probe

    def errors(self, explanation: Explanation) -> AxiomErrors | None:
        """The axiom errors of ``explanation`` (of this batch, layer and targets), or
        ``None`` for a method without channel weights (the axioms do not apply).

        Raises:
            ValueError: an explanation at several layers (the axioms are per layer).
        """
        _refuse_several_layers(explanation)
        if explanation.channel_weights is None:
            return None
        return axiom_errors(self.probe, explanation)

    def explain(self, explainer: Explainer) -> tuple[Explanation, AxiomErrors | None]:
        """``explainer``'s explanation of the batch and its axiom errors (see
        :meth:`errors`); the explainer shares the probe's channel ablations."""
        explainer.ablation_cache = self.ablation_cache
        targets = self.targets
        if self._probe is not None and self._probe.targets is not None:
            targets = self._probe.targets  # the classes the probe resolved (top-1 for None)
        explanation = explainer(self.inputs, targets)
        return explanation, self.errors(explanation)


def measure_axioms(model: nn.Module, inputs: torch.Tensor, methods: Sequence[str],
                   target_layer: str | nn.Module | None = None, targets: TargetSpec = None,
                   *, batch_size: int | None = None, progress: Progress = None,
                   **method_options: object) -> dict[str, AxiomErrors]:
    """The axiom errors of several methods on one batch, sharing one :func:`probe_layer`.

    Args:
        model: the network.
        inputs: ``(B, C, H, W)`` preprocessed images.
        methods: names of methods with channel weights (``"gradcam"``, ``"xgradcam"``, ...).
        target_layer: the layer (``None``: the default layer).
        targets: one target per image (``None``: each image's top class).
        batch_size: perturbed copies per forward pass (ablation, Score-CAM; ``None``: each
            method's default).
        progress: progress bars on long perturbation work.
        **method_options: passed to every method (e.g. Ablation-CAM's ``weights``).

    Returns:
        ``{method name: AxiomErrors}``.

    Raises:
        ValueError: a method without channel weights or an unknown method (before any
            computation).

    Examples:
        >>> import torch
        >>> from axiomcam.metrics.axioms import measure_axioms
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
        >>> errors = measure_axioms(model, torch.rand(2, 3, 16, 16), ["xgradcam", "gradcam"], "1")
        >>> errors["xgradcam"].conservation_error.shape
        torch.Size([2])
    """
    if isinstance(methods, str):
        methods = [methods]
    for name in methods:
        info = method_info(name)  # unknown names fail here, with the known ones listed
        if not (info.cam and info.has_channel_weights):
            raise ValueError(
                f"{name!r} has no channel weights: the axioms are defined for "
                f"{', '.join(CHANNEL_WEIGHT_METHODS)}"
            )
    batch = AxiomProbe(model, inputs, targets, target_layer, batch_size=batch_size,
                       progress=progress)
    probe = batch.probe  # first: it resolves the default layer and the top classes
    results = {}
    for name in methods:
        explainer = create(name, model, probe.target_layer, batch_size=batch_size,
                           progress=progress, **method_options)
        results[name] = batch.explain(explainer)[1]
    return results
