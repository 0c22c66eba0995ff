"""What every ready-made target shares: a ``repr`` that names its data."""

from __future__ import annotations

import torch

from axiomcam.targets import (
    ClassScore,
    DetectionBox,
    EmbeddingSimilarity,
    SegmentationRegion,
    TokenLogProbability,
)


def test_reprs_name_their_data():
    assert repr(ClassScore(3)) == "ClassScore(classes=3, softmax=False, sigmoid=False)"
    assert repr(ClassScore([1, 2], softmax=True)) == \
        "ClassScore(classes=[1, 2], softmax=True, sigmoid=False)"
    assert repr(ClassScore([[1, 2], [0, 3]], sigmoid=True)) == \
        "ClassScore(classes=[[1, 2], [0, 3]], softmax=False, sigmoid=True)"
    assert repr(SegmentationRegion(1)) == "SegmentationRegion(class_index=1, mask=predicted)"
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[0, :3] = True
    assert repr(SegmentationRegion(1, mask)) == \
        "SegmentationRegion(class_index=1, mask=(4, 4) mask of 3 pixels)"
    assert repr(DetectionBox([0.0, 1.0, 2.0, 3.0], 4)) == \
        "DetectionBox(box=[0.0, 1.0, 2.0, 3.0], label=4, iou_threshold=0.5)"
    assert repr(EmbeddingSimilarity(torch.ones(2, 512))) == \
        "EmbeddingSimilarity(reference=(2, 512) tensor)"
    assert repr(TokenLogProbability([5, -100, -100])) == \
        "TokenLogProbability(tokens=[5, -100, -100], 2 ignored)"
