"""Targets for embedding models: the cosine similarity of the output embedding to a
reference (:class:`EmbeddingSimilarity`), and to a text's embedding in a CLIP model
(:class:`TextSimilarity`, :func:`encode_texts`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from ..support import eval_mode
from .common import TensorTarget, row_images

__all__ = ["CLIP_INSTALL", "EmbeddingSimilarity", "TextSimilarity", "encode_texts"]

#: what installs open_clip, whose tokenizer :func:`encode_texts` uses by default
CLIP_INSTALL = "pip install 'axiomcam[clip]'"
#: the vocabulary size of open_clip's default tokenizer (OpenAI CLIP's byte-pair encoding)
CLIP_VOCABULARY = 49408


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

    Examples:
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
        owner = type(self).__name__
        if embeddings.shape[1] != self.reference.shape[-1]:
            raise ValueError(
                f"{owner}: the output embeddings have dimension "
                f"{embeddings.shape[1]} (shape {tuple(embeddings.shape)}) but the reference "
                f"has {self.reference.shape[-1]}"
            )
        per_image = self.reference.shape[0] if self.reference.dim() == 2 else None
        rows = row_images(image_indices, embeddings.shape[0], per_image, owner)
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
        return f"{type(self).__name__}(reference={tuple(self.reference.shape)} tensor)"



def _token_ids(model: nn.Module, texts: object,
               tokenizer: Callable[[list[str]], torch.Tensor] | None) -> torch.Tensor:
    """``(T, L)`` token ids of ``texts`` (strings, or ids already)."""
    if torch.is_tensor(texts):
        ids = texts[None] if texts.dim() == 1 else texts
        if ids.dim() != 2 or ids.is_floating_point() or ids.dtype == torch.bool \
                or ids.shape[0] == 0:
            raise ValueError(f"token ids must be a (T, L) integer tensor, got {ids.dtype} of "
                             f"shape {tuple(texts.shape)}")
        return ids.long()
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, Sequence) or not texts or not all(
            isinstance(text, str) for text in texts):
        raise TypeError(f"texts must be a string, a non-empty list of strings or a (T, L) "
                        f"tensor of token ids, not {texts!r}")
    if tokenizer is None:
        vocabulary = getattr(model, "vocab_size", CLIP_VOCABULARY)
        if vocabulary != CLIP_VOCABULARY:
            raise ValueError(
                f"this model's text tower has {vocabulary} tokens, not the {CLIP_VOCABULARY} "
                "of open_clip's default tokenizer: pass its own, "
                "tokenizer=open_clip.get_tokenizer(model_name)")
        try:
            from open_clip.tokenizer import SimpleTokenizer
        except ImportError as error:
            raise ModuleNotFoundError(
                f"encoding texts without a tokenizer needs open_clip's: run `{CLIP_INSTALL}`, "
                "or pass tokenizer= or token ids") from error
        # its byte-pair vocabulary ships in the open_clip wheel: nothing is downloaded
        tokenizer = SimpleTokenizer(context_length=getattr(model, "context_length", 77))
    return _token_ids(model, torch.as_tensor(tokenizer(list(texts))), None)


def encode_texts(model: nn.Module, texts: str | Sequence[str] | torch.Tensor,
                 tokenizer: Callable[[list[str]], torch.Tensor] | None = None) -> torch.Tensor:
    """The embeddings ``(T, D)`` of ``texts`` by a CLIP model's text tower
    (``model.encode_text``: open_clip's ``CLIP`` and ``CustomTextCLIP``), detached, computed
    in eval mode without autograd, on the model's device.

    Args:
        model: the CLIP model (not only its ``visual`` tower).
        texts: a string, a list of strings, or ``(T, L)`` token ids.
        tokenizer: strings -> ``(T, L)`` token ids.  ``None``: open_clip's
            ``SimpleTokenizer`` (OpenAI CLIP's vocabulary, which ships in the open_clip
            wheel: nothing is downloaded) at the model's context length; models with
            another vocabulary (SigLIP, Hugging Face text towers) need their own,
            ``open_clip.get_tokenizer(model_name)``.

    Raises:
        TypeError: a model without ``encode_text``, texts that are not strings or ids.
        ValueError: no texts, a model whose vocabulary is not the default tokenizer's.
        ModuleNotFoundError: no tokenizer given and open_clip is not installed (the
            ``clip`` extra).
    """
    encode = getattr(model, "encode_text", None)
    if not isinstance(model, nn.Module) or not callable(encode):
        raise TypeError(f"encode_texts needs a CLIP model with encode_text (open_clip's "
                        f"CLIP), not {type(model).__name__}")
    ids = _token_ids(model, texts, tokenizer)
    parameter = next(model.parameters(), None)
    with torch.no_grad(), eval_mode(model):
        embeddings = encode(ids if parameter is None else ids.to(parameter.device))
    return embeddings.detach()


class TextSimilarity(EmbeddingSimilarity):
    """How well an image matches a text in a CLIP-style model: the cosine similarity of
    the image embedding ``e`` with the text embedding ``t``, ``y^c = e . t / (|e| |t|)``
    (CLIP's image-text logit before its temperature: ``logit = scale * y^c``).  The maps
    show the image regions that make it match the text.

    Explain the image tower (``clip.visual``: output ``(N, D)``) or the whole open_clip
    model (called with the images only, it returns ``(image features, None, scale)``;
    its ``output_dict`` form's ``image_features`` are found too).  The default layers:
    ``layer4`` of a ModifiedResNet tower (RN50, ...), the last block's first norm of a
    ViT tower (``transformer.resblocks.11.ln_1`` in ViT-B/32; ``visual.`` in front when
    the whole model is explained).

    Args:
        reference: the text embeddings, ``(D,)`` for every image or ``(B, D)``, text
            ``i`` for image ``i``; :meth:`from_texts` computes them.

    Call: ``target(output, image_indices=None) -> (N,)``, as :class:`EmbeddingSimilarity`.

    Raises:
        ValueError: as :class:`EmbeddingSimilarity` (an embedding dimension that is not the
            image's, texts for another number of images than the batch's).

    Examples:
        >>> import torch
        >>> target = TextSimilarity(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))  # two texts
        >>> target(torch.tensor([[3.0, 4.0], [3.0, 4.0]]))  # image i against text i
        tensor([0.6000, 0.8000])
    """

    @classmethod
    def from_texts(cls, model: nn.Module, texts: str | Sequence[str] | torch.Tensor,
                   tokenizer: Callable[[list[str]], torch.Tensor] | None = None
                   ) -> TextSimilarity:
        """The target for ``texts`` embedded by ``model`` (:func:`encode_texts`): a string
        (or a list of one) for every image, or a list of ``B`` strings, text ``i`` for
        image ``i``."""
        embeddings = encode_texts(model, texts, tokenizer)
        return cls(embeddings[0] if embeddings.shape[0] == 1 else embeddings)

    def __call__(self, output: object,
                 image_indices: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(output, Mapping) and "image_features" in output:
            output = output["image_features"]  # open_clip's output_dict form
        return super().__call__(output, image_indices)
