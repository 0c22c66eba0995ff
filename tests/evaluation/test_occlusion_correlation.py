"""The ``occlusion_correlation`` group in a tiny evaluate run: each stored value is
scipy's Spearman correlation of the method's map with an occlusion map made by a slow
loop, the occlusion map is computed once per batch for every method, and the summary and
the report carry the metric."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch import nn

import axiomcam
from axiomcam.data import Dataset, Sample
from axiomcam.evaluation import evaluate
from axiomcam.evaluation.groups import (
    METRICS,
    check_metric_groups,
    check_parameters,
    metric_group,
)
from axiomcam.evaluation.inputs import evaluation_inputs
from axiomcam.evaluation.request import default_selection
from axiomcam.evaluation.store import ResultStore
from axiomcam.methods import Occlusion
from axiomcam.models import PretrainedModel

SIDE = 14  # the group's window: ceil(14 / 7) = 2 pixels, stride 1


class Pictures(Dataset):
    """Three random 20 x 20 pictures, no label (each explained for its top class)."""

    def __init__(self, class_names: list[str], seed: int = 5) -> None:
        super().__init__(class_names, "random pictures")
        generator = torch.Generator().manual_seed(seed)
        self.images = [Image.fromarray((torch.rand(20, 20, 3, generator=generator) * 255)
                                       .byte().numpy()) for _ in range(3)]

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self):
        for index, image in enumerate(self.images):
            yield Sample(f"picture{index}", image, None, torch.zeros(0, 4),
                         torch.zeros(0, dtype=torch.long))


def small_classifier(side: int = SIDE) -> PretrainedModel:
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 5, 3),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3))
    return PretrainedModel("small", net.eval(), None, None, ["a", "b", "c"], "3",
                           input_size=side)


def occlusion_by_hand(model: nn.Module, image: torch.Tensor, target: int) -> torch.Tensor:
    """Every 2 x 2 window (stride 1) set to zero alone; each pixel's mean drop."""
    drops = torch.zeros(SIDE, SIDE, dtype=torch.float64)
    covered = torch.zeros(SIDE, SIDE, dtype=torch.float64)
    with torch.no_grad():
        clean = model(image[None])[0, target].double()
        for top in range(SIDE - 1):
            for left in range(SIDE - 1):
                hidden = image.clone()
                hidden[:, top:top + 2, left:left + 2] = 0
                drops[top:top + 2, left:left + 2] += clean - model(hidden[None])[0, target]
                covered[top:top + 2, left:left + 2] += 1
    return drops / covered


def test_each_stored_value_is_the_spearman_of_the_map_with_the_occlusion_map(
        tmp_path, monkeypatch):
    stats = pytest.importorskip("scipy.stats")
    torch.manual_seed(0)
    pretrained, methods = small_classifier(), ["gradcam", "layercam"]
    data = Pictures(pretrained.class_names)
    occlusions = []
    explain_batch = Occlusion.explain_batch

    def counted(self, inputs, targets):
        occlusions.append(inputs.shape[0])
        return explain_batch(self, inputs, targets)

    monkeypatch.setattr(Occlusion, "explain_batch", counted)
    run = evaluate(pretrained, data, methods, out_dir=tmp_path,
                   metrics="occlusion_correlation", progress=False, gallery_images=1)
    assert occlusions == [3]  # one batch: computed once, for both methods
    with ResultStore.open(tmp_path) as store:
        stored = {(row.image_id, row.method): row.value for row in store.results()}
    assert {summary.metric for summary in run.summaries} == {"occlusion_spearman"}

    inputs, _ = evaluation_inputs(pretrained, data.images, [torch.zeros(0, 4)] * 3)
    targets = pretrained.model(inputs).argmax(1)
    for method in methods:
        maps = axiomcam.explain(pretrained.model, inputs, method, "3", targets=targets).maps
        for index in range(3):
            reference = occlusion_by_hand(pretrained.model, inputs[index], int(targets[index]))
            expected = stats.spearmanr(maps[index].flatten().numpy(),
                                       reference.flatten().numpy()).statistic
            assert stored[(f"picture{index}", method)] == pytest.approx(expected, abs=1e-4)
    assert len({round(value, 6) for value in stored.values()}) > 1  # not one constant
    report = run.report.read_text(encoding="utf-8")
    assert "occlusion_spearman" in report and METRICS["occlusion_spearman"].better == "higher"


def test_the_group_is_computed_only_when_named_and_declares_its_cost():
    group = metric_group("occlusion_correlation")
    assert "169" in group.cost and not group.passes_at({}).cheap
    # evaluate's defaults leave it out by the cost rule, and name it
    _, groups = default_selection(None, None, check_parameters({}), include_expensive=False)
    assert "occlusion_correlation" in groups.left_out
    assert "occlusion_correlation" not in groups.chosen
    assert check_metric_groups("occlusion_correlation, axioms") == [
        "axioms", "occlusion_correlation"]
