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

from ..images import array_values, to_channels
from ..models import PretrainedModel

__all__ = ["evaluation_inputs", "evaluation_masks"]


def evaluation_inputs(pretrained: PretrainedModel, images: Sequence[Image.Image],
                      boxes: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The evaluation preprocessing: whole images resized to ``input_size`` squared, boxes
    scaled with them.

    The image becomes the model's channels: RGB, grey for a 1-channel model
    (:func:`axiomcam.images.to_channels`), or the values an array picture carries
    (:func:`axiomcam.images.array_values`, resized as a tensor, bilinear with antialias).

    ``x' = x * input_size / width``, ``y' = y * input_size / height`` (clamped to the
    image). There is no centre crop: a crop would cut objects near the border and their
    boxes with them, which the localization protocols avoid by resizing whole images.

    Args:
        pretrained: the model (its ``input_size``, ``mean``, ``std``, device).
        images: RGB PIL images at their original sizes.
        boxes: per image, ``(n, 4)`` boxes ``x0, y0, x1, y1`` in the original pixels.

    Returns:
        ``(inputs (B, C, S, S) normalised, on the model's device; boxes in input pixels)``.

    Raises:
        ValueError: an image that cannot give the model's channels (an RGB file for a
            5-channel model, an array of other channels).

    Examples:
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
        tensors.append(TF.normalize(_resized_values(image, pretrained), list(pretrained.mean),
                                    list(pretrained.std)))
        factors = torch.tensor([size / width, size / height, size / width, size / height])
        scaled.append((image_boxes.float().reshape(-1, 4) * factors).clamp(0, size))
    return torch.stack(tensors).to(pretrained.device), scaled


def _resized_values(image: Image.Image, pretrained: PretrainedModel) -> torch.Tensor:
    """``(C, S, S)`` pixel values in [0, 1] units, not normalised."""
    size, channels = pretrained.input_size, pretrained.channels
    values = array_values(image)
    if values is None:  # a picture: PIL resizes it, as it always has
        resized = TF.resize(to_channels(image, channels), [size, size],
                            interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        return TF.to_tensor(resized)
    if values.shape[0] != channels:
        raise ValueError(f"an array of {values.shape[0]} channels for a model of {channels} "
                         f"(mean and std: {len(pretrained.mean)} values each)")
    return TF.resize(values, [size, size], interpolation=TF.InterpolationMode.BILINEAR,
                     antialias=True)


def evaluation_masks(masks: torch.Tensor, size: int) -> torch.Tensor:
    """True masks ``(n, H, W)`` resized with their image to ``size`` squared: bilinear
    (antialiased) on 0/1 values, a pixel in where the result is at least 0.5.

    Examples:
        >>> import torch
        >>> masks = torch.zeros(1, 4, 8, dtype=torch.bool)
        >>> masks[0, :, :4] = True                       # the left half
        >>> evaluation_masks(masks, 2).tolist()
        [[[True, False], [True, False]]]
    """
    if masks.shape[0] == 0:
        return torch.zeros(0, size, size, dtype=torch.bool)
    resized = TF.resize(masks.float()[:, None], [size, size],
                        interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return resized[:, 0] >= 0.5
