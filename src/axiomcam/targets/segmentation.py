"""Targets for semantic segmentation: a class's score summed over a region
(:class:`SegmentationRegion`), and the region a model predicts for a class
(:func:`predicted_mask`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .common import (
    TensorTarget,
    check_class_range,
    class_indices,
    describe_tensor,
    row_classes,
    row_images,
    tensor_output,
)

__all__ = ["SegmentationRegion", "predicted_mask"]


def predicted_mask(output: object, class_index: int | Sequence[int] | torch.Tensor
                   ) -> torch.Tensor:
    """The pixels a segmentation model labels as ``class_index``:
    ``M[n, u, v] = (argmax_j S[n, j, u, v] == c)``, detached.

    Compute it once on the clean output and pass it to :class:`SegmentationRegion` so
    that every method, Score-CAM and Ablation-CAM included, explains the same region.

    Args:
        output: the model's output, ``(B, C, H, W)`` scores or a dict / tuple holding them
            (torchvision's ``{"out": ..., "aux": ...}``).
        class_index: an int, or one class per image.

    Returns:
        ``(B, H, W)`` bool.

    Raises:
        ValueError: an output that is not ``(B, C, H, W)``, a class out of range.

    Examples:
        >>> import torch
        >>> scores = torch.zeros(1, 3, 2, 2)
        >>> scores[0, 2, 0, 1] = 1.0
        >>> predicted_mask({"out": scores}, 2)
        tensor([[[False,  True],
                 [False, False]]])
    """
    scores = tensor_output(output, "predicted_mask", 4, "(B, num_classes, H, W)")
    classes = class_indices(class_index, "class_index")
    check_class_range(classes, scores.shape[1], "predicted_mask")
    if classes.dim() == 1 and classes.shape[0] != scores.shape[0]:
        raise ValueError(f"predicted_mask: {classes.shape[0]} classes for an output of "
                         f"{scores.shape[0]} images")
    classes = classes.to(scores.device).reshape(-1, 1, 1)
    return scores.detach().argmax(dim=1) == classes


class SegmentationRegion(TensorTarget):
    """The total score of one class over a region of a segmentation map:
    ``y^c = sum_{(u, v)} M[u, v] S[c, u, v]`` for ``(N, C, H, W)`` class scores ``S``
    (pre-softmax, as the model returns them) and a 0/1 mask ``M``.

    The semantic-segmentation use of Grad-CAM (Vinogradova et al., "Towards
    interpretable semantic segmentation via gradient-weighted class activation mapping",
    AAAI 2020): the region's score is a scalar, so every CAM explains it as it explains
    a class logit.  A one-pixel mask gives exactly that pixel's class score.

    ``mask=None`` takes the pixels predicted as the class in the output being scored
    (``argmax`` over classes, detached, so the region is a constant of the gradient).
    For gradient methods that is the clean prediction.  Perturbation methods (Score-CAM,
    Ablation-CAM) score perturbed copies whose predicted region moves or vanishes; give
    them a fixed mask, usually ``predicted_mask(clean_output, c)`` (pytorch-grad-cam's
    ``SemanticSegmentationTarget`` does the same).  An empty region scores 0.

    Args:
        class_index: the class, an int, or one per image (indexed with
            ``image_indices``).
        mask: ``None``, an ``(H, W)`` mask for every image or ``(B, H, W)`` one per image;
            bool or 0/1 numbers, at the resolution of the model's *output* (torchvision's
            FCN / DeepLabV3 upsample theirs to the input's).

    Call: ``target(output, image_indices=None) -> (N,)``, ``output`` ``(N, C, H, W)`` or a
    dict / tuple holding it.

    Raises:
        TypeError: a class that is not an int, a mask that is not a tensor / array.
        ValueError: a mask with values other than 0 and 1 or of the wrong rank; when
            called, an output that is not ``(N, C, H, W)``, a mask whose ``(H, W)`` differs
            from the output's, a class out of range.

    Examples:
        >>> import torch
        >>> scores = torch.arange(8.0).reshape(1, 2, 2, 2)  # class 1: [[4, 5], [6, 7]]
        >>> SegmentationRegion(1, mask=torch.tensor([[True, False], [False, True]]))(scores)
        tensor([11.])
        >>> SegmentationRegion(1)(scores)  # class 1 wins everywhere: 4 + 5 + 6 + 7
        tensor([22.])
    """

    output_rank = 4
    output_shape = "(N, num_classes, H, W)"

    def __init__(self, class_index: int | Sequence[int] | torch.Tensor,
                 mask: torch.Tensor | None = None) -> None:
        self.classes = class_indices(class_index, "class_index")
        if mask is not None:
            if not torch.is_tensor(mask):
                if not hasattr(mask, "__array__"):
                    raise TypeError("mask must be None or an (H, W) / (B, H, W) tensor, not "
                                    f"{type(mask).__name__}")
                mask = torch.as_tensor(mask)
            if mask.dim() not in (2, 3):
                raise ValueError(f"mask must be (H, W) or (B, H, W), got shape "
                                 f"{tuple(mask.shape)}")
            if mask.dtype != torch.bool:
                values = mask.detach()
                not_binary = (values != 0) & (values != 1)
                if not_binary.any():
                    raise ValueError(f"mask must be bool or 0/1, got the value "
                                     f"{values[not_binary].flatten()[0].item()}")
                mask = values != 0
            mask = mask.detach()
            if (self.classes.dim() == 1 and mask.dim() == 3
                    and mask.shape[0] != self.classes.shape[0]):
                raise ValueError(f"{self.classes.shape[0]} classes but {mask.shape[0]} masks: "
                                 "give one of each per image, or one for all")
        self.mask = mask

    def score(self, scores: torch.Tensor,
              image_indices: torch.Tensor | None) -> torch.Tensor:
        """The class's scores summed over each row's region, ``(N,)``."""
        images = [data.shape[0] for data in (self.classes, self.mask)
                  if data is not None and data.dim() in (1, 3)]
        rows = row_images(image_indices, scores.shape[0], images[0] if images else None,
                          "SegmentationRegion")
        classes = row_classes(self.classes, rows, scores.shape[1], "SegmentationRegion",
                              scores.device)
        class_scores = scores[torch.arange(scores.shape[0], device=scores.device), classes]
        if self.mask is None:
            region = scores.detach().argmax(dim=1) == classes[:, None, None]
        else:
            if tuple(self.mask.shape[-2:]) != tuple(scores.shape[-2:]):
                raise ValueError(
                    f"SegmentationRegion: the mask is {tuple(self.mask.shape[-2:])} but the "
                    f"output's maps are {tuple(scores.shape[-2:])} (output shape "
                    f"{tuple(scores.shape)}): give the mask at the output's resolution"
                )
            mask = self.mask.to(scores.device)
            region = mask.expand(scores.shape[0], -1, -1) if mask.dim() == 2 else mask[rows]
        # a product, not indexing: an empty region is a 0 that still has a graph
        return (class_scores * region.to(class_scores.dtype)).flatten(1).sum(dim=1)

    def __repr__(self) -> str:
        classes = (int(self.classes) if self.classes.dim() == 0
                   else describe_tensor(self.classes))
        if self.mask is None:
            mask = "predicted"
        else:
            mask = f"{tuple(self.mask.shape)} mask of {int(self.mask.sum())} pixels"
        return f"SegmentationRegion(class_index={classes}, mask={mask})"
