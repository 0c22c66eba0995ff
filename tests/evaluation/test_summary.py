"""Summaries from a run's database: statistics by hand, the CSV, the Markdown, the plots."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from axiomcam.evaluation.store import CurveRow, ProblemRow, ResultRow, ResultStore
from axiomcam.evaluation.summary import (
    MetricSummary,
    bootstrap_interval,
    format_table,
    summarize,
    write_summary,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# hand-made per-image values: (method, metric) -> values over images a, b, c, d
VALUES = {
    ("gradcam", "conservation_error"): [0.5, 0.25, 1.0, 0.25],
    ("xgradcam", "conservation_error"): [0.0, 0.125, 0.0, 0.125],
    ("gradcam", "deletion_auc"): [0.2, 0.4, 0.6, 0.8],
    ("xgradcam", "deletion_auc"): [0.1, 0.1, 0.1, 0.1],
    ("layercam", "deletion_auc"): [0.3, 0.5, 0.7, 0.9],  # no axiom rows for layercam
}
IMAGES = ["a", "b", "c", "d"]


@pytest.fixture
def run_dir(tmp_path):
    results = [ResultRow(image, method, metric, value)
               for (method, metric), values in VALUES.items()
               for image, value in zip(IMAGES, values, strict=True)]
    curves = []
    for method, level in (("gradcam", 1.0), ("xgradcam", 0.5), ("layercam", 0.25)):
        for index, image in enumerate(IMAGES):
            for step in range(3):
                # image i's deletion curve: level * (1 - step / 2) + i / 10
                curves.append(CurveRow(image, method, "deletion", step, step / 2,
                                       level * (1 - step / 2) + index / 10))
            for step, percent in enumerate((10.0, 50.0)):
                curves.append(CurveRow(image, method, "road_morf", step, percent, 0.5 - step / 4))
                curves.append(CurveRow(image, method, "road_lerf", step, percent, 0.9))
    with ResultStore.create(tmp_path, {"seed": 7, "model": "toy", "data": "hand-made",
                                       "methods": ["gradcam", "xgradcam", "layercam"]}) as store:
        store.write_batch(results=results, curves=curves,
                          problems=[ProblemRow("broken.jpg", "truncated file")])
        store.finish()
    return tmp_path


def test_mean_median_and_interval_by_hand(run_dir):
    summaries = {(s.method, s.metric): s for s in summarize(run_dir)}
    assert set(summaries) == set(VALUES)
    gradcam = summaries[("gradcam", "conservation_error")]
    assert gradcam.n == 4
    assert gradcam.mean == pytest.approx((0.5 + 0.25 + 1.0 + 0.25) / 4)  # 0.5
    assert gradcam.median == pytest.approx((0.25 + 0.5) / 2)  # sorted .25 .25 .5 1
    assert gradcam.low <= gradcam.mean <= gradcam.high
    # a resample's mean is a mean of 4 of the values: within [min, max], and the 2000
    # resamples of four spread-out values do not all land on one mean
    assert 0.25 <= gradcam.low < gradcam.high <= 1.0
    constant = summaries[("xgradcam", "deletion_auc")]
    assert (constant.mean, constant.median, constant.low, constant.high) == \
        pytest.approx((0.1, 0.1, 0.1, 0.1))
    # metrics in the registry's order, methods in the run's order
    assert [(s.metric, s.method) for s in summarize(run_dir)][:3] == [
        ("conservation_error", "gradcam"), ("conservation_error", "xgradcam"),
        ("deletion_auc", "gradcam")]


def test_bootstrap_matches_a_slow_loop_and_is_reproducible():
    values = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    low, high = bootstrap_interval(values, seed=11, resamples=500)
    generator = np.random.default_rng(11)
    means = [values[generator.integers(0, 8, size=(1, 8))[0]].mean() for _ in range(500)]
    assert (low, high) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))
    assert low <= values.mean() <= high
    assert bootstrap_interval(values, seed=11, resamples=500) == (low, high)
    assert bootstrap_interval(values, seed=12, resamples=500) != (low, high)


def test_bootstrap_narrows_with_more_images_and_checks_input():
    generator = np.random.default_rng(0)
    few, many = generator.normal(size=10), generator.normal(size=1000)
    width_few = np.subtract(*bootstrap_interval(few, seed=0)[::-1])
    width_many = np.subtract(*bootstrap_interval(many, seed=0)[::-1])
    # the interval of a mean shrinks like 1/sqrt(n): 10x narrower for 100x the images
    assert width_many < width_few / 4
    assert bootstrap_interval([4.0], seed=0) == (4.0, 4.0)
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_interval([], seed=0)
    with pytest.raises(ValueError, match="non-finite"):
        bootstrap_interval([1.0, float("nan")], seed=0)


def test_summary_seed_is_the_runs_and_reproducible(run_dir):
    first, second = summarize(run_dir), summarize(run_dir)
    assert first == second
    assert first == summarize(run_dir, seed=7)
    spread = [s for s in first if s.low < s.high]
    assert spread and any(a != b for a, b in zip(spread, summarize(run_dir, seed=8),
                                                 strict=False))


def test_summary_csv_rows_and_columns(run_dir):
    files = write_summary(run_dir)
    with files.csv.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["method"] for row in rows] == ["gradcam", "xgradcam", "layercam"]
    assert list(rows[0]) == ["method", "conservation_error", "deletion_auc"]
    by_method = {row["method"]: row for row in rows}
    assert float(by_method["gradcam"]["conservation_error"]) == pytest.approx(0.5)
    assert float(by_method["xgradcam"]["conservation_error"]) == pytest.approx(0.0625)
    assert float(by_method["layercam"]["deletion_auc"]) == pytest.approx(0.6)
    assert by_method["layercam"]["conservation_error"] == ""  # no axioms for layercam


def test_summary_markdown_tables_and_problems(run_dir):
    text = write_summary(run_dir).markdown.read_text()
    assert "## conservation_error" in text and "## deletion_auc" in text
    assert "| method | n | mean | median | 95% interval |" in text
    assert "| gradcam | 4 | 0.5 | 0.375 |" in text
    assert "`broken.jpg`: truncated file" in text
    assert "seed 7" in text


def test_plots_exist_and_are_png(run_dir):
    files = write_summary(run_dir)
    names = {path.relative_to(run_dir).as_posix() for path in files.plots}
    assert names == {"deletion.png", "road.png", "bars/conservation_error.png",
                     "bars/deletion_auc.png"}  # no insertion or sanity curves stored
    for path in files.plots:
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        assert path.stat().st_size > 1000


def test_format_table_lists_means_and_gaps():
    table = format_table([
        MetricSummary("gradcam", "conservation_error", 4, 0.5, 0.375, 0.25, 0.8),
        MetricSummary("xgradcam", "conservation_error", 4, 0.0625, 0.0625, 0.0, 0.1),
        MetricSummary("layercam", "deletion_auc", 4, 0.6, 0.6, 0.4, 0.8),
    ])
    lines = table.splitlines()
    assert lines[0].split() == ["metric", "gradcam", "xgradcam", "layercam"]
    assert lines[1].split() == ["conservation_error", "0.5", "0.0625", "-"]
    assert lines[2].split() == ["deletion_auc", "-", "-", "0.6"]
