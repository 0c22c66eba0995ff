"""A target for embedding models: the cosine similarity of the output embedding to a
reference (:class:`EmbeddingSimilarity`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .common import TensorTarget, row_images

__all__ = ["EmbeddingSimilarity"]


class EmbeddingSimilarity(TensorTarget):
    """Cosine similarity of the output embedding ``e`` to a reference ``r``:
    ``y^c = e . r / (|e| |r|)``, in ``[-1, 1]``.

    Explains what in the image makes its embedding close to another one (image retrieval,
    face verification, CLIP-style image-text matching with ``r`` a text embedding): the
    reference is usually the embedding of another image, computed beforehand and detached.
    An all-zero embedding has no direction: it scores 0, with zero gradient.

    Args:
        reference: ``(D,)`` for every image or ``(B, D)`` one per image (indexed with
            ``image_indices``); detached and stored as given.

    Call: ``target(output, image_indices=None) -> (N,)``, ``output`` ``(N, D)`` or a dict /
    tuple holding it.

    Raises:
        TypeError: a reference that is not a tensor / array of floats.
        ValueError: a reference of another rank, an all-zero or non-finite reference; when
            called, an output that is not ``(N, D)`` with the reference's ``D``.

    Example:
        >>> import torch
        >>> target = EmbeddingSimilarity(torch.tensor([1.0, 0.0]))
        >>> target(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
        tensor([0.6000, 0.0000])
    """

    output_rank = 2
    output_shape = "(N, D)"

    def __init__(self, reference: torch.Tensor) -> None:
        if not torch.is_tensor(reference):
            if not hasattr(reference, "__array__") and not isinstance(reference, Sequence):
                raise TypeError(f"reference must be a (D,) or (B, D) tensor, not "
                                f"{type(reference).__name__}")
            reference = torch.as_tensor(reference)
        reference = reference.detach()
        if not reference.is_floating_point():
            raise TypeError(f"reference must be a float tensor, got dtype {reference.dtype}")
        if reference.dim() not in (1, 2) or reference.shape[-1] == 0:
            raise ValueError(f"reference must be (D,) or (B, D), got shape "
                             f"{tuple(reference.shape)}")
        norms = torch.linalg.vector_norm(reference, dim=-1).reshape(-1)
        if not torch.isfinite(reference).all() or (norms == 0).any():
            bad = int(((norms == 0) | ~torch.isfinite(norms)).nonzero()[0])
            which = "the reference" if reference.dim() == 1 else f"reference {bad}"
            raise ValueError(f"{which} is all zero or not finite: a cosine similarity needs "
                             "a direction")
        self.reference = reference

    def score(self, embeddings: torch.Tensor,
              image_indices: torch.Tensor | None) -> torch.Tensor:
        """The cosine similarity of each row to its reference, ``(N,)``."""
        if embeddings.shape[1] != self.reference.shape[-1]:
            raise ValueError(
                f"EmbeddingSimilarity: the output embeddings have dimension "
                f"{embeddings.shape[1]} (shape {tuple(embeddings.shape)}) but the reference "
                f"has {self.reference.shape[-1]}"
            )
        per_image = self.reference.shape[0] if self.reference.dim() == 2 else None
        rows = row_images(image_indices, embeddings.shape[0], per_image,
                          "EmbeddingSimilarity")
        reference = self.reference.to(embeddings)
        reference = reference.expand_as(embeddings) if reference.dim() == 1 \
            else reference[rows.to(reference.device)]
        unit = reference / torch.linalg.vector_norm(reference, dim=1, keepdim=True)
        norms = torch.linalg.vector_norm(embeddings, dim=1)
        zero = norms == 0
        # where() on both sides keeps a zero embedding's value and gradient at 0, not NaN
        return torch.where(zero, torch.zeros_like(norms),
                           (embeddings * unit).sum(dim=1)
                           / torch.where(zero, torch.ones_like(norms), norms))

    def __repr__(self) -> str:
        return f"EmbeddingSimilarity(reference={tuple(self.reference.shape)} tensor)"

