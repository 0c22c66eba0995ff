"""Thin adapters around the peer libraries, each used the way its own documentation shows.

Every ``*_call`` function returns a zero-argument callable that makes ONE complete
explanation of ``inputs`` for ``classes`` (one class per image) and returns ``(B, H, W)``
maps at input resolution, or ``None`` when the peer is not installed or has no such
method (torchcam has no Ablation-CAM).  The explainer object is built inside the call and
its hooks are removed on exit, so the peers never leave hooks on the model the other
libraries share.

The zoo comparison (``benchmarks.zoo_peers``, ``docs/peers.md``) also uses HiResCAM and
Eigen-CAM of pytorch-grad-cam and torchcam's CAM, and passes a ``reshape_transform`` for
transformers (and torchcam's CAM the name of the classifier, ``fc_layer``).

- pytorch-grad-cam (``grad-cam`` 1.5.7): ``Method(model=..., target_layers=[module])``,
  ``cam(input_tensor=x, targets=[ClassifierOutputTarget(c), ...])`` -> NumPy maps,
  already upsampled (OpenCV, bilinear) and min-max scaled.  Its gradient methods call
  ``loss.backward()``, which fills ``.grad`` of every parameter; the adapter clears them
  afterwards so the shared model stays as it was.
- torchcam 0.5.0: ``Method(model, target_layer=name)``, then ``scores = model(x)`` and
  ``cam(class_idx=[...], scores=scores)`` -> a list (one per layer) of ``(B, h, w)`` maps
  at the *layer's* resolution; the adapter upsamples them (bilinear, as torchcam's own
  ``fuse_cams`` does) so all three libraries deliver the same thing.

What the peers compute, read from their installed sources (it matters when comparing):

- pytorch-grad-cam's Ablation-CAM swaps the target layer for a module returning the
  ablated copies, but the layers *before* it still run on ``batch_size`` (32) copies of
  the image: a whole network pass per channel.  Its weights ``(y - y_k) / y`` with the
  channel set to 0 (when the layer's minimum is 0) are axiomcam's default Ablation-CAM.
- Score-CAM differs in all three libraries.  pytorch-grad-cam: softmax over channels of
  the masked images' *logits*, no baseline, masks upsampled with ``align_corners=True``,
  and all ``K`` masked images built at once before batching (``K x C x H x W`` floats).
  torchcam: masks min-max scaled at the layer's resolution then upsampled; it subtracts
  the score of the *unmasked* input as "baseline" (a per-image constant, which the
  softmax over channels then cancels).  axiomcam: softmax probability of the masked
  image minus that of an all-zero image, no softmax over channels.  Only the times are
  comparable.
- torchcam 0.5.0's ``GradCAMpp`` computes ``w_k = sum_ij G^2 ReLU(G)``: its
  ``alpha[idx][mask].div_(...)`` divides a copy made by the boolean-mask indexing, so the
  Grad-CAM++ denominator is never applied.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

try:
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
except ImportError:  # the `bench` extra is not installed
    pytorch_grad_cam = None
try:
    import torchcam.methods as torchcam_methods
except ImportError:
    torchcam_methods = None

GRAD_CAM = "pytorch-grad-cam"
TORCHCAM = "torchcam"
PEERS = (GRAD_CAM, TORCHCAM)

# axiomcam's method names -> the peers' class names
_GRAD_CAM_CLASSES = {
    "gradcam": "GradCAM", "xgradcam": "XGradCAM", "gradcam++": "GradCAMPlusPlus",
    "layercam": "LayerCAM", "ablationcam": "AblationCAM", "scorecam": "ScoreCAM",
    "hirescam": "HiResCAM", "eigencam": "EigenCAM",
}
_TORCHCAM_CLASSES = {
    "cam": "CAM", "gradcam": "GradCAM", "xgradcam": "XGradCAM", "gradcam++": "GradCAMpp",
    "layercam": "LayerCAM", "scorecam": "ScoreCAM",
}

Call = Callable[[], object]


def peer_versions() -> dict[str, str]:
    """Installed version of each peer (``"not installed"`` if missing)."""
    versions = {}
    for peer, distribution in ((GRAD_CAM, "grad-cam"), (TORCHCAM, "torchcam")):
        try:
            versions[peer] = version(distribution)
        except PackageNotFoundError:
            versions[peer] = "not installed"
    return versions


def grad_cam_call(method: str, model: nn.Module, layer: str, inputs: torch.Tensor,
                  classes: list[int], *,
                  reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  ) -> Call | None:
    """One pytorch-grad-cam explanation (``None`` if not installed / no such method);
    ``reshape_transform`` lays a transformer's output on a ``(B, C, h, w)`` grid."""
    if pytorch_grad_cam is None or method not in _GRAD_CAM_CLASSES:
        return None
    method_class = getattr(pytorch_grad_cam, _GRAD_CAM_CLASSES[method])
    module = model.get_submodule(layer)
    targets = [ClassifierOutputTarget(c) for c in classes]

    def call() -> np.ndarray:
        # its Ablation-CAM and Score-CAM draw tqdm bars on stderr: keep the table readable
        with method_class(model=model, target_layers=[module],
                          reshape_transform=reshape_transform) as cam, \
                contextlib.redirect_stderr(io.StringIO()):
            maps = cam(input_tensor=inputs, targets=targets)
        model.zero_grad(set_to_none=True)  # it back-propagates into every parameter
        return maps

    return call


def grad_cam_multi_target_call(model: nn.Module, layer: str, inputs: torch.Tensor,
                               classes: torch.Tensor) -> Call | None:
    """Grad-CAM for ``(B, k)`` classes: pytorch-grad-cam takes one target per image, so
    ``k`` calls (each a forward and a backward pass)."""
    calls = [grad_cam_call("gradcam", model, layer, inputs, column.tolist())
             for column in classes.T]
    if None in calls:
        return None
    return lambda: [call() for call in calls]


def _upsampled(maps: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def torchcam_call(method: str, model: nn.Module, layer: str, inputs: torch.Tensor,
                  classes: list[int], batch_size: int | None = None, *,
                  reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  fc_layer: str | None = None) -> Call | None:
    """One torchcam explanation (``None`` if not installed / no such method);
    ``reshape_transform`` lays a transformer's output on a grid, ``fc_layer`` names CAM's
    classifier (needed when the model has several linear layers)."""
    if torchcam_methods is None or method not in _TORCHCAM_CLASSES:
        return None
    method_class = getattr(torchcam_methods, _TORCHCAM_CLASSES[method])
    options: dict[str, object] = {} if batch_size is None else {"batch_size": batch_size}
    if reshape_transform is not None:
        options["reshape_transform"] = reshape_transform
    if fc_layer is not None:
        options["fc_layer"] = fc_layer
    size = tuple(inputs.shape[2:])

    def call() -> torch.Tensor:
        with method_class(model, target_layer=layer, **options) as cam:
            if method in ("scorecam", "cam"):
                # its documented use: the forward pass only fills the hooks
                with torch.inference_mode():
                    model(inputs)
                maps = cam(class_idx=classes)
            else:
                maps = cam(class_idx=classes, scores=model(inputs))
        return _upsampled(maps[0], size)

    return call


def torchcam_multi_target_call(model: nn.Module, layer: str, inputs: torch.Tensor,
                               classes: torch.Tensor) -> Call | None:
    """Grad-CAM for ``(B, k)`` classes with torchcam: one forward pass, then ``k``
    extractor calls, each back-propagating from the kept graph (``retain_graph``)."""
    if torchcam_methods is None:
        return None
    size = tuple(inputs.shape[2:])
    columns = [column.tolist() for column in classes.T]

    def call() -> list[torch.Tensor]:
        with torchcam_methods.GradCAM(model, target_layer=layer) as cam:
            scores = model(inputs)
            return [_upsampled(cam(class_idx=column, scores=scores,
                                   retain_graph=index < len(columns) - 1)[0], size)
                    for index, column in enumerate(columns)]

    return call
