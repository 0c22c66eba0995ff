"""The result of explaining a batch: maps, raw maps, channel weights, scores and targets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch


@dataclass(frozen=True, eq=False)
class Explanation:
    """What a CAM method computed for a batch of ``B`` images.

    With one target per image the shapes are the ones below; with ``k`` targets per image
    (a ``(B, k)`` target tensor) every per-target field gains a ``k`` axis after the batch
    axis: ``maps`` is ``(B, k, H, W)``, ``raw`` ``(B, k, h, w)``, ``channel_weights``
    ``(B, k, K)``, ``scores`` and ``targets`` ``(B, k)``.  For 3D (video) networks every
    spatial ``(h, w)`` becomes ``(t, h, w)``; for 1D signals ``(B, C, L)`` it becomes
    ``(L,)`` at the input (``maps`` ``(B, L)``) and ``(l,)`` at the layer (``raw``
    ``(B, l)``).

    Explained at several layers (``target_layer=[...]``), ``layers`` holds each layer's
    own explanation (by layer name, in the order given), ``maps`` is the fused map
    ``minmax(mean_l layers[l].maps)`` (the guided product of that map for guided
    methods), ``raw`` and ``channel_weights`` are ``None`` (they live in ``layers``), and
    ``target_layer`` is the tuple of the layers' names.

    Attributes:
        maps: ``(B, H, W)`` at the input's resolution, ReLU applied, each map min-max
            scaled to ``[0, 1]`` (an all-constant map is all zeros).  For guided methods,
            the high-resolution guided product reduced over colour channels
            (``max_c |guided|``) and scaled the same way.
        raw: ``(B, h, w)`` the map at the target layer's resolution *before* ReLU and
            scaling: ``sum_k w_k A^k`` for channel-weight methods.  ``None`` for guided
            backprop, which has no layer; for occlusion, which has none either, the signed
            score drop at the input's resolution ``(B, H, W)``.
        channel_weights: ``(B, K)`` the ``w_k`` of methods that have channel weights
            (CAM, Grad-CAM, Grad-CAM++, XGrad-CAM, Ablation-CAM, Score-CAM), else ``None``.
        scores: ``(B,)`` the target scores ``y^c`` the maps explain (the logit for class
            targets, the callable's value for callable targets).  With ``smooth=n``, the
            mean over the noisy copies.
        targets: ``(B,)`` the class indices explained, or ``None`` for callable targets.
        target_layer: qualified name of the layer used (``None`` for guided backprop and
            occlusion; the tuple of names for several layers).
        method: the method's name, e.g. ``"xgradcam"``.
        guided: ``(B, C, H, W)`` the signed guided-backprop product for guided methods,
            else ``None``.
        logits: ``(B, num_classes)`` the model's class scores for the inputs, from the
            forward pass the explanation ran (no extra pass): the image's probabilities are
            ``logits.softmax(1)`` (``logits.sigmoid()`` for a multi-label head).  For a
            single-logit (binary) model, the two classes' scores ``(B, 2)`` ``[-z, z]``
            (negative, positive), whose probabilities are ``logits.sigmoid()``.  ``None``
            for callable targets.  With ``smooth=n``, the scores of the clean inputs.
        selected: ``(B, k)`` bool for :class:`~axiomcam.targets.LabelsAbove` targets: which
            of each image's ``k`` classes pass the threshold (the others pad the image to
            ``k`` with its next-highest labels); ``None`` for other targets.
        layers: ``{layer name: Explanation}`` when explained at several layers, else
            ``None``.
        counterfactual: the maps show the evidence *against* each target: the method's
            formula of the negated gradient ``-dy^c/dA`` (``raw`` then explains
            ``-y^c``; ``scores`` stay ``y^c``). Figures title such maps "counterfactual".

    Examples:
        >>> import torch, torchvision, axiomcam
        >>> model = torchvision.models.resnet18(num_classes=10)
        >>> exp = axiomcam.explain(model, torch.rand(2, 3, 64, 64), method="gradcam")
        >>> exp.maps.shape, exp.raw.shape, exp.channel_weights.shape
        (torch.Size([2, 64, 64]), torch.Size([2, 2, 2]), torch.Size([2, 512]))
        >>> both = axiomcam.explain(model, torch.rand(2, 3, 64, 64), "gradcam",
        ...                         target_layer=["layer3", "layer4"])
        >>> both.target_layer, both.maps.shape, both.layers["layer3"].raw.shape
        (('layer3', 'layer4'), torch.Size([2, 64, 64]), torch.Size([2, 4, 4]))
    """

    maps: torch.Tensor
    raw: torch.Tensor | None
    channel_weights: torch.Tensor | None
    scores: torch.Tensor
    targets: torch.Tensor | None
    target_layer: str | tuple[str, ...] | None
    method: str
    guided: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    layers: dict[str, Explanation] | None = None
    selected: torch.Tensor | None = None
    counterfactual: bool = False

    def __len__(self) -> int:
        return self.maps.shape[0]

    def target(self, index: int) -> Explanation:
        """The explanation of each image's ``index``-th target, out of one made for ``k``
        targets per image: every per-target field loses its ``k`` axis (``maps`` becomes
        ``(B, H, W)``), in each layer's explanation too; ``logits`` stay.

        Raises:
            ValueError: the explanation has one target per image already.
            IndexError: ``index`` is not in ``[-k, k)``.

        Examples:
            >>> import torch, torchvision, axiomcam
            >>> model = torchvision.models.resnet18(num_classes=10)
            >>> exp = axiomcam.explain(model, torch.rand(2, 3, 64, 64), method="gradcam",
            ...                        targets=axiomcam.TopClasses(3))
            >>> exp.maps.shape, exp.target(0).maps.shape, exp.target(0).targets.shape
            (torch.Size([2, 3, 64, 64]), torch.Size([2, 64, 64]), torch.Size([2]))
        """
        if self.scores.dim() != 2:
            raise ValueError("this explanation has one target per image (scores of shape "
                             f"{tuple(self.scores.shape)}): there is no target to pick")
        count = self.scores.shape[1]
        if not -count <= index < count:
            raise IndexError(f"target index {index} out of range for {count} targets per image")

        def pick(field: torch.Tensor | None) -> torch.Tensor | None:
            return None if field is None else field[:, index]

        layers = None if self.layers is None else {
            name: explanation.target(index) for name, explanation in self.layers.items()}
        return dataclasses.replace(
            self, maps=pick(self.maps), raw=pick(self.raw),
            channel_weights=pick(self.channel_weights), scores=pick(self.scores),
            targets=pick(self.targets), guided=pick(self.guided), layers=layers,
            selected=pick(self.selected))

    def __repr__(self) -> str:
        def shape(tensor: torch.Tensor | None) -> str:
            return "None" if tensor is None else str(tuple(tensor.shape))

        return (
            f"Explanation(method={self.method!r}"
            + (", counterfactual=True" if self.counterfactual else "")
            + f", target_layer={self.target_layer!r}, "
            f"maps={shape(self.maps)}, raw={shape(self.raw)}, "
            f"channel_weights={shape(self.channel_weights)}, scores={shape(self.scores)}, "
            f"guided={shape(self.guided)}, logits={shape(self.logits)}"
            + ("" if self.layers is None else f", layers={list(self.layers)}") + ")"
        )
