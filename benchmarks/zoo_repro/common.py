"""What the reproductions share: the peers' calls on a small model, and Pearson's r."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch
from torch import nn

import axiomcam

from ..zoo_peers import pearson


def r(first: object, second: object) -> float:
    """Pearson r of two maps of one image (any shape, NumPy or torch)."""
    return pearson(np.asarray(first, dtype=np.float64)[None],
                   np.asarray(second, dtype=np.float64)[None])[0]


def input_size_map(raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``ReLU(raw)`` ``(h, w)`` upsampled bilinearly to ``size``, as every library shows it."""
    return torch.nn.functional.interpolate(raw.clamp_min(0)[None, None], size=size,
                                           mode="bilinear", align_corners=False)[0, 0]


def axiomcam_map(model: nn.Module, image: torch.Tensor, method: str, layer: str,
                 target: int) -> torch.Tensor:
    return axiomcam.explain(model, image[None], method, layer, targets=[target],
                            progress=False).maps[0]


def grad_cam_map(model: nn.Module, image: torch.Tensor, class_name: str, layer: nn.Module,
                 target: int, **options: object) -> np.ndarray:
    """pytorch-grad-cam's map, called the way its README shows."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    method = getattr(pytorch_grad_cam, class_name)
    with method(model=model, target_layers=[layer], **options) as cam, \
            contextlib.redirect_stderr(io.StringIO()):  # its tqdm bars
        maps = cam(input_tensor=image[None], targets=[ClassifierOutputTarget(target)])
    model.zero_grad(set_to_none=True)
    return maps[0]


def torchcam_map(model: nn.Module, image: torch.Tensor, class_name: str, layer: str,
                 target: int) -> torch.Tensor:
    """torchcam's map, called the way its README shows, upsampled to the image (bilinear,
    as its ``fuse_cams`` does)."""
    import torchcam.methods

    with getattr(torchcam.methods, class_name)(model, target_layer=layer) as cam:
        low = cam(class_idx=target, scores=model(image[None]))[0][0]
    return torch.nn.functional.interpolate(low[None, None], size=tuple(image.shape[1:]),
                                           mode="bilinear", align_corners=False)[0, 0]
