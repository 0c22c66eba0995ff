"""The metric-group registry: one declaration per group, read by the runner, the summary
and the report."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import torch

from axiomcam.evaluation import groups
from axiomcam.evaluation.groups import (
    GROUPS,
    METRICS,
    PARAMETERS,
    Measurement,
    check_parameters,
    metric_group,
)
from axiomcam.evaluation.runner import evaluate


def test_every_settable_parameter_is_a_keyword_of_evaluate_with_the_same_default():
    signature = inspect.signature(evaluate).parameters
    for parameter in PARAMETERS:
        if parameter.option:
            assert signature[parameter.name].kind is inspect.Parameter.KEYWORD_ONLY
            assert parameter.checked(signature[parameter.name].default) == \
                parameter.checked(parameter.default)
        else:
            assert parameter.name not in signature


def test_the_descriptions_quote_the_fixed_parameters():
    assert "the 20% most salient pixels" in METRICS["top_removal_drop"].description
    assert "map >= 15% of its maximum" in METRICS["localization_iou"].description
    assert "IoU >= 0.5" in METRICS["localization_error"].description
    assert "within 15 px" in METRICS["pointing_game"].description


def test_each_group_declares_its_metrics_once_and_the_summary_lists_them():
    declared = [metric.name for group in GROUPS for metric in group.metrics]
    assert sorted(declared) == sorted(METRICS)
    assert list(METRICS).index("top_removal_drop") == list(METRICS).index("insertion_auc") + 1
    assert {info.group for info in METRICS.values()} == set(groups.METRIC_GROUPS)


def test_parameters_are_checked_by_their_group():
    with pytest.raises(ValueError, match="deletion_steps must be an int >= 1, got 0"):
        check_parameters({"deletion_steps": 0})
    with pytest.raises(ValueError, match="road_percentages must be numbers in"):
        check_parameters({"road_percentages": [100]})
    with pytest.raises(ValueError, match="unknown metric parameter 'iou_treshold'"):
        check_parameters({"iou_treshold": 0.3})
    assert check_parameters({"iou_threshold": 0.3})["iou_threshold"] == 0.3
    assert check_parameters({"sanity_steps": 2})["sanity_steps"] == 2
    with pytest.raises(ValueError, match="unknown metric group 'speed'"):
        metric_group("speed")


def test_a_group_stores_only_what_it_declares():
    group = metric_group("discrimination")
    measurement = Measurement(
        group=group, method="gradcam", model=torch.nn.Identity(), target_layer="", ids=["a"],
        inputs=torch.zeros(1, 3, 2, 2), targets=torch.zeros(1, dtype=torch.long),
        predicted=torch.zeros(1, dtype=torch.long), maps=torch.zeros(1, 2, 2),
        explanation=None, probe=None, parameters={}, seed=0, batch_size=None,
        forward_options={}, results=[], curves=[], details={})
    measurement.add("discrimination_share", torch.tensor([0.5]))
    assert [row.metric for row in measurement.results] == ["discrimination_share"]
    with pytest.raises(ValueError, match="declares no metric 'average_drop'"):
        measurement.add("average_drop", torch.tensor([1.0]))
    with pytest.raises(ValueError, match="2 values for 1 images"):
        measurement.add("discrimination_right", torch.tensor([1.0, 2.0]))


def test_the_summary_and_the_report_do_not_import_the_metrics():
    code = ("import sys, axiomcam.evaluation.summary, axiomcam.evaluation.report; "
            "print('axiomcam.metrics' in sys.modules, 'torchvision' in sys.modules)")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout
    assert output.split() == ["False", "False"]
