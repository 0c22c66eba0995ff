"""A target for captioning-style models: the log-probability of a token sequence
(:class:`TokenLogProbability`), skipping the positions marked :data:`IGNORE_TOKEN`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .common import TensorTarget, describe_tensor, row_images

__all__ = ["IGNORE_TOKEN", "TokenLogProbability"]

#: token id that :class:`TokenLogProbability` skips (the ``ignore_index`` of PyTorch's
#: cross-entropy and of Hugging Face labels: padding, prompt tokens)
IGNORE_TOKEN = -100


class TokenLogProbability(TensorTarget):
    """The log-probability of a token sequence under a captioning-style model's logits
    ``z`` ``(N, T, V)``: ``y^c = sum_{t: w_t != -100} log softmax(z_t)[w_t]``.

    The Grad-CAM paper explains image captions this way (Selvaraju et al., ICCV 2017, its
    image captioning experiments): the score of a whole caption given the image, or of one
    word (set the others to -100).  Positions whose token id is ``-100``
    (:data:`IGNORE_TOKEN`, the ignore index of PyTorch's cross-entropy and of Hugging Face
    labels: padding, prompt) are left out; a sequence of only ``-100`` scores 0.  Row ``t``
    of the logits must be the prediction of token ``t`` (teacher forcing: shift the labels
    yourself if the model predicts the next token).

    Args:
        tokens: ``(T,)`` ids for every image or ``(B, T)`` one sequence per image (indexed
            with ``image_indices``).

    Call: ``target(output, image_indices=None) -> (N,)``, ``output`` ``(N, T, V)`` logits
    or a dict / ``ModelOutput`` holding them (``.logits``).

    Raises:
        TypeError: tokens that are not integers.
        ValueError: tokens of another rank or below -100 / negative other than -100; when
            called, an output that is not ``(N, T, V)``, a length ``T`` other than the
            output's, an id ``>= V``.

    Examples:
        >>> import torch
        >>> logits = torch.zeros(1, 3, 4)  # uniform: each token has log-probability log(1/4)
        >>> TokenLogProbability(torch.tensor([2, 0, -100]))(logits)  # 2 log(1/4)
        tensor([-2.7726])
    """

    output_rank = 3
    output_shape = "(N, T, vocabulary) logits"

    def __init__(self, tokens: Sequence[int] | torch.Tensor) -> None:
        tokens = torch.as_tensor(tokens.detach() if torch.is_tensor(tokens) else tokens)
        if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
            raise TypeError(f"tokens must be integer token ids, got dtype {tokens.dtype}")
        if tokens.dim() not in (1, 2) or tokens.shape[-1] == 0:
            raise ValueError(f"tokens must be (T,) or (B, T) ids, got shape "
                             f"{tuple(tokens.shape)}")
        bad = (tokens < 0) & (tokens != IGNORE_TOKEN)
        if bad.any():
            raise ValueError(f"token id {int(tokens[bad][0])} is negative (only "
                             f"{IGNORE_TOKEN} is allowed: an ignored position)")
        self.tokens = tokens.long()

    def score(self, logits: torch.Tensor,
              image_indices: torch.Tensor | None) -> torch.Tensor:
        """The log-probability of each row's token sequence, ``(N,)``."""
        length, vocabulary = logits.shape[1:]
        if self.tokens.shape[-1] != length:
            raise ValueError(
                f"TokenLogProbability: {self.tokens.shape[-1]} tokens but the output has "
                f"{length} positions (shape {tuple(logits.shape)})"
            )
        too_large = self.tokens >= vocabulary
        if too_large.any():
            raise ValueError(f"TokenLogProbability: token id {int(self.tokens[too_large][0])} "
                             f"is out of range: the vocabulary has {vocabulary} tokens")
        per_image = self.tokens.shape[0] if self.tokens.dim() == 2 else None
        rows = row_images(image_indices, logits.shape[0], per_image, "TokenLogProbability")
        tokens = self.tokens.to(logits.device)
        tokens = tokens.expand(logits.shape[0], -1) if tokens.dim() == 1 \
            else tokens[rows.to(tokens.device)]
        kept = tokens != IGNORE_TOKEN
        picked = F.log_softmax(logits, dim=-1).gather(
            2, torch.where(kept, tokens, torch.zeros_like(tokens))[..., None])[..., 0]
        # where(), not a product: an ignored position whose logit is -inf must not give NaN
        return torch.where(kept, picked, torch.zeros_like(picked)).sum(dim=1)

    def __repr__(self) -> str:
        ignored = int((self.tokens == IGNORE_TOKEN).sum())
        return (f"TokenLogProbability(tokens={describe_tensor(self.tokens)}"
                f"{f', {ignored} ignored' if ignored else ''})")
