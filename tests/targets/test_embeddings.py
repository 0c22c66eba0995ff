""":class:`~axiomcam.targets.EmbeddingSimilarity`: hand values, a zero embedding, the
reference of the image each row copies, clear errors."""

from __future__ import annotations

import math

import pytest
import torch

from axiomcam.targets import EmbeddingSimilarity


def test_embedding_similarity_hand_values_and_zero_embedding():
    embeddings = torch.tensor([[3.0, 4.0], [0.0, 0.0], [-2.0, 0.0]], requires_grad=True)
    values = EmbeddingSimilarity(torch.tensor([1.0, 0.0]))(embeddings)
    assert values.tolist() == pytest.approx([0.6, 0.0, -1.0])
    values.sum().backward()
    assert torch.isfinite(embeddings.grad).all()
    assert embeddings.grad[1].tolist() == [0.0, 0.0]  # no direction, no gradient
    # d cos / d e at e = (3, 4), r = (1, 0): (r - cos * e/|e|) / |e| = ((1, 0) - 0.6 (0.6, 0.8)) / 5
    assert embeddings.grad[0].tolist() == pytest.approx([0.64 / 5, -0.48 / 5])
    per_image = EmbeddingSimilarity(torch.tensor([[0.0, 2.0], [1.0, 1.0]]))
    assert per_image({"logits": torch.tensor([[3.0, 4.0], [1.0, 0.0]])}).tolist() == \
        pytest.approx([0.8, 1 / math.sqrt(2)])


def test_embedding_similarity_uses_the_reference_of_the_image_each_row_copies():
    target = EmbeddingSimilarity(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    copies = torch.tensor([[3.0, 4.0], [0.0, 5.0], [2.0, 0.0]])
    assert target(copies, torch.tensor([1, 1, 1])).tolist() == pytest.approx([0.6, 0.0, 1.0])


def test_embedding_similarity_bad_input():
    with pytest.raises(ValueError, match=r"the output embeddings have dimension 3 \(shape "
                                         r"\(2, 3\)\) but the reference has 2"):
        EmbeddingSimilarity(torch.tensor([1.0, 0.0]))(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"EmbeddingSimilarity needs a model output of shape "
                                         r"\(N, D\); this output has shape \(2, 3, 4\)"):
        EmbeddingSimilarity(torch.ones(4))(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="reference 1 is all zero"):
        EmbeddingSimilarity(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(TypeError, match=r"must be a float tensor, got dtype torch\.int64"):
        EmbeddingSimilarity(torch.tensor([1, 0]))
    with pytest.raises(ValueError, match=r"got shape \(1, 2, 3\)"):
        EmbeddingSimilarity(torch.ones(1, 2, 3))
