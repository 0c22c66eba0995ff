"""A loaded classifier with everything needed to feed it and read its answers
(:class:`PretrainedModel`), and the ImageNet preprocessing shared by every way of loading
one."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn
from torchvision import transforms
from torchvision.models import MobileNet_V2_Weights

from ..images import ARRAY_SUFFIX, array_values, to_channels
from ..outputs import PROBABILITY_RULES, output_probabilities
from .checks import ModelSpecError, fit_channels

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "INPUT_SIZE", "PREPROCESS_PRESETS", "PROBABILITY_RULES",
    "RESIZE_TO", "PretrainedModel", "channel_note", "chosen_normalisation",
    "default_class_names", "imagenet_transforms", "preset_mean_std", "resize_for",
]

#: ImageNet mean and standard deviation (RGB, for pixel values in [0, 1])
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: the shorter side before the centre crop, and the side of the crop the network sees
RESIZE_TO = 256
INPUT_SIZE = 224

#: named preprocessing (``--preprocess``): ``(mean, std)`` for pixels in [0, 1], and what the
#: network then gets. One number stands for every channel.
PREPROCESS_PRESETS: dict[str, tuple[tuple[float, ...], tuple[float, ...], str]] = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD, "ImageNet's mean and std (torchvision, timm)"),
    "unit": ((0.0,), (1.0,), "pixels in [0, 1], not normalised"),
    "raw255": ((0.0,), (1 / 255,), "pixels in [0, 255] (the graph normalises them itself)"),
    "tf": ((0.5,), (0.5,), "pixels in [-1, 1] (TensorFlow/Keras 'tf' mode: x / 127.5 - 1)"),
}

@dataclass(frozen=True, eq=False)
class PretrainedModel:
    """A pretrained classifier with everything needed to feed it and read its answers.

    Attributes:
        name: the name it was loaded by (``"mobilenet_v2"``).
        model: the network, in eval mode, on its device.
        preprocess: PIL image -> ``(3, input_size, input_size)`` float tensor, as the network
            was trained on (resize, centre crop, normalise).
        display: PIL image -> the RGB PIL image the network sees (resized and cropped, not
            normalised), so that a map at input resolution lines up when overlaid on it.
        class_names: the 1000 ImageNet class names, by output index.
        default_layer: the qualified name of the layer to explain by default.
        input_size: the side of the square input, in pixels.
        mean: the per-channel mean the inputs are normalised with (for pixels in [0, 1]).
        std: the per-channel standard deviation the inputs are normalised with.
        channels: how many channels the network takes (1: image files are converted to
            grey; other than 1 and 3: ``.npy`` arrays, see :mod:`axiomcam.images`).
        score: what the model's output, hence a class's explained score, is, in words
            (``"logits before the graph's final Softmax"`` for an ONNX classifier whose
            Softmax was left out); ``results.json`` and the command line show it.
        probability: how class probabilities follow from the output (one of
            :data:`PROBABILITY_RULES`): ``"softmax"`` of logits, ``"sigmoid"`` of
            independent logits, or ``"output"`` when the output already is probabilities.
        notes: what the loader decided that a user should know (an input layout, a
            Softmax left out, a preprocessing chosen), one sentence each.

    Examples:
        >>> from axiomcam import models
        >>> from axiomcam.images import sample_image
        >>> pretrained = models.load("mobilenet_v2")
        >>> image = sample_image("chelsea")
        >>> pretrained.prepare([image, image]).shape
        torch.Size([2, 3, 224, 224])
        >>> pretrained.display(image).size
        (224, 224)
    """

    name: str
    model: nn.Module
    preprocess: Callable[[Image.Image], torch.Tensor]
    display: Callable[[Image.Image], Image.Image]
    class_names: list[str]
    default_layer: str
    input_size: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channels: int = 3
    score: str = "the model's output"
    probability: str = "softmax"
    notes: tuple[str, ...] = ()

    @classmethod
    def with_imagenet_crop(cls, name: str, model: nn.Module, class_names: list[str],
                           default_layer: str, input_size: int, mean: tuple[float, ...],
                           std: tuple[float, ...], *, channels: int = 3,
                           score: str = "the model's output", probability: str = "softmax",
                           notes: tuple[str, ...] = ()) -> PretrainedModel:
        """A classifier whose preprocessing is the ImageNet evaluation crop at
        ``input_size``, normalised with ``mean`` and ``std`` (see
        :func:`imagenet_transforms`); the other fields as the class says.

        Examples:
            >>> from torch import nn
            >>> net = nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
            >>> tiny = PretrainedModel.with_imagenet_crop(
            ...     "tiny", net, ["cat", "dog"], "0", 32, IMAGENET_MEAN, IMAGENET_STD)
            >>> from PIL import Image
            >>> tiny.prepare(Image.new("RGB", (60, 40))).shape
            torch.Size([1, 3, 32, 32])
        """
        display, preprocess = imagenet_transforms(mean, std, input_size, channels=channels)
        return cls(name=name, model=model, preprocess=preprocess, display=display,
                   class_names=class_names, default_layer=default_layer,
                   input_size=input_size, mean=mean, std=std, channels=channels,
                   score=score, probability=probability, notes=notes)

    @property
    def device(self) -> torch.device:
        """The device the model's parameters are on."""
        return next(self.model.parameters()).device

    def prepare(self, images: Image.Image | Sequence[Image.Image]) -> torch.Tensor:
        """Preprocess one image or a sequence of images into a batch on the model's device.

        Returns:
            a ``(B, channels, input_size, input_size)`` float tensor (``B = 1`` for one
            image).

        Raises:
            TypeError: an item is not a PIL image.
            ValueError: the sequence is empty.

        Examples:
            >>> from axiomcam import models
            >>> from axiomcam.images import sample_image
            >>> models.load("mobilenet_v2").prepare(sample_image("coffee")).shape
            torch.Size([1, 3, 224, 224])
        """
        batch = [images] if isinstance(images, Image.Image) else images
        if isinstance(batch, (str, bytes, os.PathLike)) or not isinstance(batch, Sequence):
            raise TypeError(
                "images must be a PIL image or a sequence of PIL images, not "
                f"{type(images).__name__}: load files with axiomcam.images.load_image"
            )
        if len(batch) == 0:
            raise ValueError("images is an empty sequence: nothing to prepare")
        for position, image in enumerate(batch):
            if not isinstance(image, Image.Image):
                raise TypeError(f"images[{position}] is a {type(image).__name__}, not a PIL image")
        return torch.stack([self.preprocess(image) for image in batch]).to(self.device)

    def probabilities(self, outputs: torch.Tensor) -> torch.Tensor:
        """Class probabilities from the model's ``(B, num_classes)`` output, by the rule
        :attr:`probability` names: ``softmax(z)`` over the classes, ``sigmoid(z)`` per
        class, or the output itself (already probabilities), as float32
        (:func:`axiomcam.outputs.output_probabilities`, the rule every metric reads too).

        Examples:
            >>> import dataclasses, torch
            >>> from torch import nn
            >>> net = PretrainedModel("net", nn.Identity(), None, None, ["a", "b"], "", 8)
            >>> net.probabilities(torch.tensor([[0.0, 0.0]])).tolist()
            [[0.5, 0.5]]
            >>> dataclasses.replace(net, probability="sigmoid").probabilities(
            ...     torch.tensor([[0.0, 0.0]])).tolist()
            [[0.5, 0.5]]
        """
        return output_probabilities(outputs.detach().float(), self.probability)

    def top_classes(self, logits: torch.Tensor, k: int = 5) -> list[list[tuple[int, str, float]]]:
        """The ``k`` most probable classes of each image, most probable first.

        Args:
            logits: ``(B, num_classes)`` (or ``(num_classes,)`` for one image) raw outputs.
            k: how many classes per image, ``1 <= k <= num_classes``.

        Returns:
            one list per image of ``(class_index, class_name, probability)``, the
            probability by :meth:`probabilities` (a softmax of logits by default).

        Raises:
            TypeError: ``logits`` is not a tensor or ``k`` not an int.
            ValueError: ``logits`` has the wrong shape or ``k`` is out of range.

        Examples:
            >>> import torch
            >>> from axiomcam import models
            >>> pretrained = models.load("mobilenet_v2")
            >>> logits = torch.zeros(1, 1000)
            >>> logits[0, 967] = 10.0
            >>> index, name, probability = pretrained.top_classes(logits, k=1)[0][0]
            >>> index, name, round(probability, 3)
            (967, 'espresso', 0.957)
        """
        if not torch.is_tensor(logits):
            raise TypeError(f"logits must be a torch.Tensor, not {type(logits).__name__}")
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"k must be an int, not {type(k).__name__}: {k!r}")
        num_classes = len(self.class_names)
        if logits.dim() == 1:
            logits = logits.unsqueeze(0)
        if logits.dim() != 2 or logits.shape[1] != num_classes:
            raise ValueError(
                f"logits must have shape (B, {num_classes}) or ({num_classes},), "
                f"not {tuple(logits.shape)}"
            )
        if not 1 <= k <= num_classes:
            raise ValueError(f"k must be between 1 and {num_classes}, not {k}")
        probabilities = self.probabilities(logits).cpu()
        values, indices = probabilities.topk(k, dim=1)
        return [
            [
                (index, self.class_names[index], probability)
                for index, probability in zip(
                    row_indices.tolist(), row_values.tolist(), strict=True
                )
            ]
            for row_values, row_indices in zip(values, indices, strict=True)
        ]


def resize_for(size: int) -> int:
    """The shorter side before the centre crop: ImageNet's 256 for 224, in proportion.

    Examples:
        >>> resize_for(224), resize_for(64)
        (256, 73)
    """
    return round(size * RESIZE_TO / INPUT_SIZE)


def imagenet_transforms(
    mean: Sequence[float],
    std: Sequence[float],
    input_size: int = INPUT_SIZE,
    *,
    channels: int = 3,
) -> tuple[Callable[[Image.Image], Image.Image], Callable[[Image.Image], torch.Tensor]]:
    """``(display, preprocess)`` for the usual ImageNet evaluation crop: the shorter side
    resized to :func:`resize_for` ``(input_size)`` (256 for 224), then a centre crop of
    ``input_size`` x ``input_size``.

    ``preprocess`` is ``display`` followed by ToTensor and Normalize with ``mean`` and
    ``std``, so the two can never disagree about which pixels the network saw. With
    ``channels=1`` both give the grey image (:func:`axiomcam.images.to_channels`); for a
    picture made from an array (:func:`axiomcam.images.array_image`), ``preprocess`` crops
    its values and ``display`` its picture.

    Examples:
        >>> from PIL import Image
        >>> display, preprocess = imagenet_transforms(IMAGENET_MEAN, IMAGENET_STD)
        >>> image = Image.new("RGB", (640, 480))
        >>> display(image).size, tuple(preprocess(image).shape)
        ((224, 224), (3, 224, 224))
        >>> import numpy as np
        >>> from axiomcam.images import array_image
        >>> _, bands = imagenet_transforms((0.0,) * 5, (1.0,) * 5, 32, channels=5)
        >>> tuple(bands(array_image(np.ones((5, 40, 60), dtype=np.float32), 5)).shape)
        (5, 32, 32)
    """
    crop = transforms.Compose(
        [transforms.Resize(resize_for(input_size)), transforms.CenterCrop(input_size)]
    )
    to_normalized_tensor = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize(mean, std)]
    )

    def display(image: Image.Image) -> Image.Image:
        """The image resized and centre-cropped exactly as the network sees it (RGB, or
        grey for a 1-channel network; an array's own picture)."""
        if array_values(image) is not None:
            return crop(image)
        return crop(to_channels(image, channels))

    def preprocess(image: Image.Image) -> torch.Tensor:
        """The image as the network's ``(C, H, W)`` normalised input (an array picture's
        values, resized and cropped as tensors)."""
        values = array_values(image)
        if values is not None:
            return transforms.Normalize(mean, std)(crop(values))
        return to_normalized_tensor(display(image))

    return display, preprocess


def default_class_names(num_outputs: int) -> list[str]:
    """The names a model's outputs get when no classes file is given: the 1000 ImageNet
    names for 1000 outputs (torchvision keeps them in its code: no download), else
    ``"class 0"``, ``"class 1"``, ...

    Examples:
        >>> default_class_names(2), default_class_names(1000)[967]
        (['class 0', 'class 1'], 'espresso')
    """
    if num_outputs == 1000:
        return list(MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])
    return [f"class {index}" for index in range(num_outputs)]


def preset_mean_std(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The ``(mean, std)`` of a preprocessing preset of :data:`PREPROCESS_PRESETS`.

    Raises:
        ModelSpecError: an unknown name (the presets are listed).

    Examples:
        >>> preset_mean_std("tf")
        ((0.5,), (0.5,))
    """
    if name not in PREPROCESS_PRESETS:
        raise ModelSpecError(f"unknown preprocessing preset {name!r}; the presets: "
                         + "; ".join(f"{key}: {text}"
                                     for key, (_, _, text) in PREPROCESS_PRESETS.items()))
    mean, std, _ = PREPROCESS_PRESETS[name]
    return mean, std


def chosen_normalisation(mean: Sequence[float] | None, std: Sequence[float] | None,
                         preset: str | None, channels: int | None, default: str, subject: str
                         ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean and std a model's inputs are normalised with, ``channels`` values each:
    ``preset``'s (:data:`PREPROCESS_PRESETS`), or ``mean`` and ``std``, each given one
    replacing only its own part of the ``default`` preset's. ``channels=None``: the
    values as they are, not fitted to a channel count yet.

    Raises:
        ModelSpecError: ``preset`` together with ``mean`` or ``std``, an unknown preset, or
            values that do not fit the channels (:func:`~axiomcam.models.checks.fit_channels`
            names the model ``subject``, its channels and both counts).

    Examples:
        >>> chosen_normalisation(None, [0.25], None, 1, "tf", "net")
        ((0.5,), (0.25,))
    """
    if preset is not None and (mean is not None or std is not None):
        raise ModelSpecError(
            f"give a preprocessing preset ({preset!r}) or a mean and std, not both: the "
            "preset is a mean and a std"
        )
    base_mean, base_std = preset_mean_std(preset or default)
    mean, std = (base_mean if mean is None else tuple(mean),
                 base_std if std is None else tuple(std))
    return (mean, std) if channels is None else fit_channels(mean, std, channels, subject)


def channel_note(channels: int) -> str | None:
    """What a user should know about a model of ``channels`` input channels (nothing for
    RGB): how image files are fed to it.

    Examples:
        >>> channel_note(3) is None, channel_note(1)[:26]
        (True, 'it takes 1-channel inputs:')
    """
    if channels == 3:
        return None
    if channels == 1:
        return ("it takes 1-channel inputs: image files are converted to grey (ITU-R 601-2 "
                "luma, 0.299 R + 0.587 G + 0.114 B)")
    return (f"it takes {channels}-channel inputs: give {ARRAY_SUFFIX} arrays ({channels}, H, W) "
            f"or (H, W, {channels}), uint8 or float (image files have 1 or 3 channels)")
