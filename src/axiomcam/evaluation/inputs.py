"""The evaluation's preprocessing: the *whole* image resized to ``input_size`` squared
(no centre crop), normalised with the model's mean and std, and the ground-truth boxes
scaled with it.

The localization protocols (CAM, Grad-CAM: ILSVRC boxes) resize whole images because a
centre crop cuts objects near the border, and a cut box no longer says where the object
is. The aspect ratio changes; the network copes, and the boxes stay exact.
:func:`axiomcam.evaluation.evaluate`, its gallery, and the CLI's ``explain`` and
``compare`` all see images this way.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision.transforms.functional as TF
from PIL import Image

from ..models import PretrainedModel

__all__ = ["evaluation_inputs"]


def evaluation_inputs(pretrained: PretrainedModel, images: Sequence[Image.Image],
                      boxes: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The evaluation preprocessing: whole images resized to ``input_size`` squared, boxes
    scaled with them.

    ``x' = x * input_size / width``, ``y' = y * input_size / height`` (clamped to the
    image). There is no centre crop: a crop would cut objects near the border and their
    boxes with them, which the localization protocols avoid by resizing whole images.

    Args:
        pretrained: the model (its ``input_size``, ``mean``, ``std``, device).
        images: RGB PIL images at their original sizes.
        boxes: per image, ``(n, 4)`` boxes ``x0, y0, x1, y1`` in the original pixels.

    Returns:
        ``(inputs (B, 3, S, S) normalised, on the model's device; boxes in input pixels)``.

    Example:
        >>> import torch
        >>> from PIL import Image
        >>> from axiomcam.models import PretrainedModel
        >>> pretrained = PretrainedModel("toy", torch.nn.Conv2d(3, 2, 1), None, None, [], "",
        ...                              input_size=8)
        >>> inputs, boxes = evaluation_inputs(pretrained, [Image.new("RGB", (16, 4))],
        ...                                   [torch.tensor([[0.0, 0.0, 8.0, 2.0]])])
        >>> tuple(inputs.shape), boxes[0].tolist()
        ((1, 3, 8, 8), [[0.0, 0.0, 4.0, 4.0]])
    """
    size = pretrained.input_size
    tensors, scaled = [], []
    for image, image_boxes in zip(images, boxes, strict=True):
        width, height = image.size
        resized = TF.resize(image.convert("RGB"), [size, size],
                            interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        tensors.append(TF.normalize(TF.to_tensor(resized), list(pretrained.mean),
                                    list(pretrained.std)))
        factors = torch.tensor([size / width, size / height, size / width, size / height])
        scaled.append((image_boxes.float().reshape(-1, 4) * factors).clamp(0, size))
    return torch.stack(tensors).to(pretrained.device), scaled
