""":class:`~axiomcam.targets.TokenLogProbability`: hand values, ignored positions, the
tokens of the image each row copies, clear errors; and embedding and captioning models
explained with :class:`~axiomcam.targets.EmbeddingSimilarity` and
``TokenLogProbability``, checked against a reference computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hand_reference import Captioner, Embedder, assert_relative, hand_cam

import axiomcam
from axiomcam.targets import IGNORE_TOKEN, EmbeddingSimilarity, TokenLogProbability


def test_token_log_probability_hand_values_and_ignored_positions():
    logits = torch.tensor([[[0.0, 1.0, 2.0], [3.0, 0.0, 0.0]],
                           [[1.0, 1.0, 1.0], [0.0, 0.0, 5.0]]])

    def log_p(row: list[float], token: int) -> float:
        return row[token] - math.log(sum(math.exp(v) for v in row))

    expected = [log_p([0, 1, 2], 2) + log_p([3, 0, 0], 0),
                log_p([1, 1, 1], 2) + log_p([0, 0, 5], 0)]
    assert TokenLogProbability([2, 0])(logits).tolist() == pytest.approx(expected)
    per_image = TokenLogProbability(torch.tensor([[1, -100], [-100, 2]]))
    assert per_image(logits).tolist() == pytest.approx([log_p([0, 1, 2], 1),
                                                        log_p([0, 0, 5], 2)])
    assert TokenLogProbability([-100, -100])(logits).tolist() == [0.0, 0.0]
    # an ignored position with a -inf logit must not make NaN
    masked = logits.clone()
    masked[:, 1, 1] = -math.inf
    assert torch.isfinite(TokenLogProbability([2, -100])(masked)).all()


def test_token_log_probability_uses_the_tokens_of_the_image_each_row_copies():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25]], [[0.1, 0.2, 0.7]]]))
    target = TokenLogProbability(torch.tensor([[0], [2]]))
    values = target(logits, torch.tensor([1, 1]))
    assert values.tolist() == pytest.approx([math.log(0.25), math.log(0.7)])


def test_token_log_probability_bad_input():
    with pytest.raises(ValueError, match=r"3 tokens but the output has 2 positions \(shape "
                                         r"\(1, 2, 5\)\)"):
        TokenLogProbability([1, 2, 3])(torch.zeros(1, 2, 5))
    with pytest.raises(ValueError, match="token id 5 is out of range: the vocabulary has 5"):
        TokenLogProbability([1, 5])(torch.zeros(1, 2, 5))
    with pytest.raises(ValueError, match=r"needs a model output of shape \(N, T, vocabulary\) "
                                         r"logits; this output has shape \(1, 5\)"):
        TokenLogProbability([1])(torch.zeros(1, 5))
    with pytest.raises(ValueError, match="token id -3 is negative"):
        TokenLogProbability([1, -3])
    with pytest.raises(TypeError, match=r"integer token ids, got dtype torch\.float32"):
        TokenLogProbability(torch.tensor([1.0]))


@pytest.mark.parametrize("method", ["gradcam", "xgradcam"])
def test_embedding_and_token_targets_equal_the_hand_reference(method):
    torch.manual_seed(0)
    images = torch.rand(2, 3, 8, 8)
    embedder = Embedder().eval()
    references = torch.randn(2, 6)
    target = EmbeddingSimilarity(references)
    exp = axiomcam.explain(embedder, images, method=method, target_layer="features.2",
                           targets=target)
    with torch.no_grad():
        expected = F.cosine_similarity(embedder(images), references, dim=1)
    torch.testing.assert_close(exp.scores, expected)
    weights, raw = hand_cam(embedder, images, embedder.features[2],
                            lambda out: F.cosine_similarity(out, references, dim=1), method)
    assert_relative(exp.channel_weights, weights, 1e-5)
    assert_relative(exp.raw, raw, 1e-5)
    assert exp.maps.shape == (2, 8, 8) and (exp.maps.std(dim=(1, 2)) > 0.05).all()

    captioner = Captioner().eval()
    previous = torch.tensor([[0, 3, 5], [0, 1, 1]])
    caption = torch.tensor([[3, 5, IGNORE_TOKEN], [1, 1, 6]])
    exp = axiomcam.explain(captioner, images, method=method, target_layer="features.2",
                           targets=TokenLogProbability(caption), extra_inputs=(previous,))

    def log_probability(out: dict[str, torch.Tensor]) -> torch.Tensor:
        # by hand: sum_t log softmax(z_t)[w_t], the ignored position left out
        logp = F.log_softmax(out["logits"], dim=-1)
        return logp[0, 0, 3] + logp[0, 1, 5], logp[1, 0, 1] + logp[1, 1, 1] + logp[1, 2, 6]

    with torch.no_grad():
        expected = torch.stack(log_probability(captioner(images, previous)))
    torch.testing.assert_close(exp.scores, expected)
    weights, raw = hand_cam(lambda x: captioner(x, previous), images, captioner.features[2],
                            lambda out: torch.stack(log_probability(out)), method)
    assert_relative(exp.channel_weights, weights, 1e-5)
    assert_relative(exp.raw, raw, 1e-5)
    assert exp.maps.shape == (2, 8, 8) and (exp.maps.std(dim=(1, 2)) > 0.05).all()


@pytest.mark.parametrize("method", ["scorecam", "ablationcam"])
def test_perturbation_methods_use_each_images_reference_and_caption(method):
    """Score-CAM and Ablation-CAM score copies of one image: image 1 of a batch gets what
    image 1 alone gets, with its own reference embedding, caption and previous tokens."""
    torch.manual_seed(0)
    images = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    embedder, captioner = Embedder().double().eval(), Captioner().double().eval()
    references = torch.randn(2, 6, dtype=torch.float64)
    previous = torch.tensor([[0, 3, 5], [0, 1, 1]])
    caption = torch.tensor([[3, 5, 2], [1, 1, 6]])
    cases = [(embedder, lambda rows: EmbeddingSimilarity(references[rows]), lambda rows: ()),
             (captioner, lambda rows: TokenLogProbability(caption[rows]),
              lambda rows: (previous[rows],))]
    for model, target, extra in cases:
        both = axiomcam.explain(model, images, method=method, target_layer="features.2",
                                targets=target([0, 1]), extra_inputs=extra([0, 1]))
        assert (both.raw.flatten(1).std(1) > 0).all()
        for image in range(2):
            alone = axiomcam.explain(model, images[image:image + 1], method=method,
                                     target_layer="features.2", targets=target([image]),
                                     extra_inputs=extra([image]))
            torch.testing.assert_close(both.channel_weights[image], alone.channel_weights[0],
                                       rtol=1e-9, atol=1e-12)
            torch.testing.assert_close(both.raw[image], alone.raw[0], rtol=1e-9, atol=1e-12)
