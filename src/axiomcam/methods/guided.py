"""Guided Backpropagation and the guided form of any CAM (e.g. Guided Grad-CAM)."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from ..support import check_scores, warn
from ..targets import ResolvedTargets, TargetSpec, resolve_targets
from .base import BaseCAM, Explainer, PartialResult
from .context import score_gradients
from .maps import minmax_scale


class _PositiveGradient(torch.autograd.Function):
    """Identity forward; backward lets only positive gradients through."""

    @staticmethod
    def forward(ctx: object, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.clone()  # a new tensor: in-place ops after it must not reach the ReLU's

    @staticmethod
    def backward(ctx: object, gradient: torch.Tensor) -> torch.Tensor:
        return gradient.clamp(min=0)


def _guide(module: nn.Module, args: object, output: torch.Tensor) -> torch.Tensor:
    return _PositiveGradient.apply(output)


class GuidedBackprop(Explainer):
    """Guided Backpropagation (Springenberg et al., ICLR workshops 2015).

    The gradient of ``y^c`` with respect to the input, where every ``nn.ReLU`` /
    ``nn.ReLU6`` module passes back only positive gradient at positive input:
    ``grad_in = ReLU(grad_out) * 1[input > 0]``.  ReLUs applied as functions
    (``F.relu`` in a model's ``forward``) are not guided.

    ``guided`` is the signed gradient ``(B, C, H, W)``; ``maps`` is ``max_c |guided|``
    min-max scaled; there is no layer, ``raw`` or channel weights.  The whole batch takes one
    forward and one backward pass per target.

    Examples:
        >>> import torch, torchvision
        >>> from axiomcam.methods import GuidedBackprop
        >>> model = torchvision.models.resnet18(num_classes=10)
        >>> GuidedBackprop(model)(torch.rand(2, 3, 64, 64)).guided.shape
        torch.Size([2, 3, 64, 64])
    """

    name = "guided_backprop"
    title = "Guided Backprop"
    cost = "input gradient"
    aliases = ("guidedbackprop",)

    def explain_batch(self, inputs: torch.Tensor,
                      targets: TargetSpec | ResolvedTargets) -> PartialResult:
        relus = [m for m in self.model.modules() if isinstance(m, nn.ReLU | nn.ReLU6)]
        if not relus:
            warn(
                f"{type(self.model).__name__} has no nn.ReLU/nn.ReLU6 modules: guided "
                "backprop is the plain input gradient here"
            )
        handles = [module.register_forward_hook(_guide) for module in relus]
        leaf = inputs.detach().clone().requires_grad_(True)
        try:
            with torch.enable_grad():
                output = self.forward(leaf)
                if not isinstance(targets, ResolvedTargets):
                    targets = resolve_targets(targets, output, inputs.shape[0],
                                              select=self.output)
                rows = torch.arange(inputs.shape[0], device=inputs.device)
                scores = check_scores(targets.scores(output, rows))
        finally:
            for handle in handles:
                handle.remove()
        if not scores.requires_grad:
            raise ValueError("the target score is not differentiable with respect to the input")
        gradients = [gradient for (gradient,) in
                     score_gradients(scores, [leaf], counterfactual=self.counterfactual)]
        return PartialResult(raw=None, channel_weights=None, scores=scores.detach(),
                             targets=targets, target_layer=None,
                             guided=torch.stack(gradients, dim=1))

    def final_maps(self, partial: PartialResult,
                   inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # (B, n, C, *spatial): strongest colour channel per pixel
        return minmax_scale(partial.guided.abs().amax(2), "guided map"), partial.guided


class Guided(GuidedBackprop):
    """The guided form of a CAM: ``guided = GuidedBackprop(x) * upsample(L^c)``.

    Selvaraju et al. (2017) combine the class-discriminative, coarse CAM with the
    high-resolution guided-backprop gradient.  ``guided`` is the signed product
    ``(B, C, H, W)``; ``maps`` is ``max_c |guided|`` min-max scaled; ``raw``,
    ``channel_weights`` and ``target_layer`` are the CAM's.  A CAM at several layers gives
    the guided product of its fused map, and each layer's guided explanation in
    ``layers``.

    A counterfactual CAM (``counterfactual=True``) gives the counterfactual guided form:
    guided backprop of ``-y^c`` (the negated gradient sent back through the guided ReLUs,
    which keep its positive part: the pixels whose increase would lower the score) times
    the counterfactual map.  Guided Backpropagation alone has no counterfactual form.

    Examples:
        >>> import torch, torchvision
        >>> from axiomcam.methods import Guided, XGradCAM
        >>> model = torchvision.models.resnet18(num_classes=10)
        >>> exp = Guided(XGradCAM(model, "layer4"))(torch.rand(1, 3, 64, 64))
        >>> exp.method, exp.guided.shape
        ('guided_xgradcam', torch.Size([1, 3, 64, 64]))
    """

    def __init__(self, cam: BaseCAM, **options: object) -> None:
        if not isinstance(cam, BaseCAM):
            raise TypeError(f"Guided wraps a CAM method object, not {type(cam).__name__}")
        counterfactual = options.pop("counterfactual", cam.counterfactual)
        if counterfactual != cam.counterfactual:
            raise ValueError(f"counterfactual={counterfactual!r} but the wrapped CAM has "
                             f"counterfactual={cam.counterfactual!r}: set it on the CAM")
        super().__init__(cam.model, **options)
        #: the guided-backprop pass negates the gradient too (checked on the CAM)
        self.counterfactual = cam.counterfactual
        self.cam = cam
        self.name = f"guided_{cam.name}"

    @property
    def target_layer(self) -> str | tuple[str, ...] | None:
        return self.cam.target_layer

    def explain_batch(self, inputs: torch.Tensor,
                      targets: TargetSpec | ResolvedTargets) -> PartialResult:
        cam = self.cam.explain_batch(inputs, targets)
        backprop = super().explain_batch(inputs, cam.targets)
        return self._guide(cam, backprop.guided, inputs)

    def _guide(self, cam: PartialResult, gradient: torch.Tensor,
               inputs: torch.Tensor) -> PartialResult:
        """``cam`` with its guided product (and each layer's, at several layers: the guided
        form of every layer's map from the one guided-backprop gradient)."""
        cam_maps, _ = self.cam.final_maps(cam, inputs)
        layers = None if cam.layers is None else {
            name: self._guide(part, gradient, inputs) for name, part in cam.layers.items()}
        return replace(cam, guided=gradient * cam_maps[:, :, None], layers=layers)
