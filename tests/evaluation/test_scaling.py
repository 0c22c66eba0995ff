"""Whole-data-set runs: resumed after ``kill -9``, spread over processes with torchrun, and
the errors of both. Each run here is the real ``axiomcam evaluate`` command in other
processes, on a tiny classifier (``toy_factory.py``) and a folder of small images."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw

from axiomcam.cli import main
from axiomcam.evaluation.store import ResultStore

HERE = Path(__file__).parent
AXIOMCAM = [sys.executable, "-m", "axiomcam"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
IMAGES_PER_CLASS = 4  # 12 images and a broken file, batches of 2: 7 batches


def _arguments(data: Path, out: Path, *extra: str) -> list[str]:
    return ["evaluate", "--model", "toy_factory:build", "--classes", str(data / "classes.txt"),
            "--size", "16", "--mean", "0,0,0", "--std", "1,1,1", "--layer", "features.1",
            "--methods", "gradcam,xgradcam,ablationcam",
            "--metrics", "axioms,faithfulness,deletion,road,sanity", "--deletion-steps", "4",
            "--road-percentages", "30,70", "--sanity-images", "3", "--batch-size", "2",
            "--gallery-images", "1", "--data", str(data / "images"), "--out", str(out),
            *extra]


def _environment(**extra: str) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                  "MASTER_PORT")}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])
    environment["OMP_NUM_THREADS"] = "1"  # two processes on two cores must not oversubscribe
    environment.update(extra)
    return environment


def _run(arguments: list[str], *, launcher: tuple[str, ...] = (),
         **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run([*(launcher or AXIOMCAM), *arguments], capture_output=True,
                          text=True, env=_environment(**environment), timeout=600)


def _rows(database: Path) -> dict[str, list[tuple]]:
    """Every stored row, in the stored order (the batches without their timestamps)."""
    connection = sqlite3.connect(database)
    try:
        return {table: connection.execute(f"SELECT {columns} FROM {table} ORDER BY rowid")
                .fetchall() for table, columns in (
                    ("images", "*"), ("results", "*"), ("curves", "*"), ("problems", "*"),
                    ("batches", "batch, images"))}
    finally:
        connection.close()


def _stored_batches(database: Path) -> int:
    if not database.exists():
        return 0
    connection = sqlite3.connect(database, timeout=30)
    try:
        return connection.execute("SELECT COUNT(*) FROM batches").fetchone()[0]
    except sqlite3.OperationalError:  # the schema is not written yet
        return 0
    finally:
        connection.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Folders red/, green/, blue/ of 24 x 24 images (a coloured square on a varied
    background), a broken file, and the classes file."""
    root = tmp_path_factory.mktemp("scaling-data")
    colours = {"red": (230, 20, 20), "green": (20, 200, 40), "blue": (30, 40, 220)}
    for index, (name, colour) in enumerate(colours.items()):
        folder = root / "images" / name
        folder.mkdir(parents=True)
        for number in range(IMAGES_PER_CLASS):
            image = Image.new("RGB", (24, 24), (40 * number, 90, 30 * index))
            offset = 3 * number
            ImageDraw.Draw(image).rectangle((offset, offset, offset + 11, offset + 11),
                                            fill=colour)
            image.save(folder / f"{name}{number}.png")
    (root / "images" / "green" / "broken.png").write_bytes(b"not a png")
    (root / "classes.txt").write_text("red\ngreen\nblue\n")
    return root


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> Path:
    """One uninterrupted one-process run: the rows every other run must reproduce."""
    out = tmp_path_factory.mktemp("reference")
    finished = _run(_arguments(data, out))
    assert finished.returncode == 0, finished.stderr
    return out


def test_the_reference_run_is_complete(reference):
    rows = _rows(reference / "results.sqlite")
    assert len(rows["images"]) == 3 * IMAGES_PER_CLASS
    assert rows["problems"][0][0].endswith("broken.png")
    # 6 image batches and the trailing one of problems met after the last image
    assert [batch for batch, _ in rows["batches"]] == list(range(7))
    assert not (reference / "parts").exists()
    assert (reference / "summary.csv").exists() and (reference / "report.html").exists()


def test_a_run_killed_mid_batch_resumes_to_exactly_the_uninterrupted_rows(data, reference,
                                                                          tmp_path):
    out = tmp_path / "run"
    database = out / "results.sqlite"
    process = subprocess.Popen([*AXIOMCAM, *_arguments(data, out)], env=_environment(
        TOY_DELAY="0.02"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while _stored_batches(database) < 3 and process.poll() is None:
            assert time.monotonic() < deadline, "the run stored no batch in 5 minutes"
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it was killed"
    connection = sqlite3.connect(database)
    assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    stored_images = connection.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    stored_batches = connection.execute("SELECT COUNT(*) FROM batches").fetchone()[0]
    connection.close()
    assert 3 <= stored_batches < 7
    assert stored_images < 3 * IMAGES_PER_CLASS

    resumed = _run(_arguments(data, out))
    assert resumed.returncode == 0, resumed.stderr
    assert f"{stored_images} images were already done" in resumed.stdout
    assert f"({3 * IMAGES_PER_CLASS - stored_images} computed in" in resumed.stdout
    assert _rows(database) == _rows(reference / "results.sqlite")
    assert (out / "summary.csv").read_text() == (reference / "summary.csv").read_text()

    again = _in_process(_arguments(data, out))  # finished: nothing to do, same summaries
    assert again.exit_code == 0, again.output
    assert "(0 computed in" in again.output
    assert _rows(database) == _rows(reference / "results.sqlite")


def test_two_torchrun_processes_give_the_one_process_results(data, reference, tmp_path):
    out = tmp_path / "run"
    finished = _run(_arguments(data, out), launcher=(
        *TORCHRUN, "--nproc_per_node", "2", "-m", "axiomcam"))
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.count("wrote ") == 1  # rank 0 reports, rank 1 stays quiet
    assert f"({3 * IMAGES_PER_CLASS} computed in" in finished.stdout  # both ranks' images
    assert _rows(out / "results.sqlite") == _rows(reference / "results.sqlite")
    assert (out / "summary.csv").read_text() == (reference / "summary.csv").read_text()
    assert not (out / "parts").exists()  # merged, then removed


def test_a_dead_rank_leaves_its_batches_and_a_rerun_completes_only_the_rest(data, reference,
                                                                            tmp_path):
    out = tmp_path / "run"
    # rank 1 owns batches 1, 3, 5; it dies in its second batch, after storing batch 1
    # (the model's first call counts its outputs when loading; a batch makes about 40)
    died = _run(_arguments(data, out), launcher=(
        *TORCHRUN, "--nproc_per_node", "2", "-m", "axiomcam"),
        TOY_DIE_RANK="1", TOY_DIE_AFTER="60")
    assert died.returncode != 0
    part = out / "parts" / "rank-00001.sqlite"
    connection = sqlite3.connect(part)
    stored = connection.execute("SELECT batch FROM batches ORDER BY batch").fetchall()
    connection.close()
    assert stored and stored[0][0] == 1
    assert not (out / "summary.csv").exists()

    # re-run on ONE process: the parts' batches are kept, the rest computed, all merged
    completed = _run(_arguments(data, out))
    assert completed.returncode == 0, completed.stderr
    assert "images were already done" in completed.stdout
    assert _rows(out / "results.sqlite") == _rows(reference / "results.sqlite")
    assert (out / "summary.csv").read_text() == (reference / "summary.csv").read_text()
    assert not (out / "parts").exists()


def test_more_processes_than_images_is_refused_before_writing(data, tmp_path):
    small = tmp_path / "small"
    (small / "images" / "red").mkdir(parents=True)
    Image.new("RGB", (24, 24), (200, 0, 0)).save(small / "images" / "red" / "one.png")
    (small / "classes.txt").write_text((data / "classes.txt").read_text())
    out = tmp_path / "run"
    refused = _run(_arguments(small, out), launcher=(
        *TORCHRUN, "--nproc_per_node", "2", "-m", "axiomcam"))
    assert refused.returncode != 0
    assert "2 processes for 1 image in" in refused.stderr
    assert not (out / "results.sqlite").exists() and not (out / "parts").exists()


def _in_process(arguments: list[str]):
    """The command in this process (quicker than a new one: for runs whose numbers are
    not compared with the other processes' runs)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(HERE))
        return CliRunner().invoke(main, arguments)


def test_another_configuration_or_version_is_refused_and_overwrite_starts_again(data,
                                                                                tmp_path):
    out = tmp_path / "run"
    first = _in_process(_arguments(data, out, "--sanity-images", "0", "--metrics", "axioms"))
    assert first.exit_code == 0, first.output
    before = _rows(out / "results.sqlite")

    other = _in_process(_arguments(data, out, "--sanity-images", "3", "--metrics", "axioms"))
    assert other.exit_code == 1
    assert "holds a run with a different configuration" in other.output
    assert "parameters.sanity_images: 0 -> 3" in other.output and "--overwrite" in other.output
    assert _rows(out / "results.sqlite") == before  # the refusal touched nothing

    connection = sqlite3.connect(out / "results.sqlite")
    connection.execute("PRAGMA user_version = 1")
    connection.close()
    old = _in_process(_arguments(data, out, "--sanity-images", "0", "--metrics", "axioms"))
    assert old.exit_code == 1
    assert "written by another axiomcam version (database schema 1" in old.output

    replaced = _in_process(_arguments(data, out, "--metrics", "faithfulness", "--overwrite"))
    assert replaced.exit_code == 0, replaced.output
    with ResultStore.open(out) as store:
        assert store.config["metric_groups"] == ["faithfulness"]
        assert set(store.metrics()) == {"average_drop", "increase_in_confidence",
                                        "confidence_change", "top_removal_drop"}
        assert store.count("images") == 3 * IMAGES_PER_CLASS and store.count("batches") == 7


def test_an_output_directory_that_cannot_be_written_is_refused(data):
    out = Path("/sys/axiomcam-cannot-write-here")  # refused even to root
    refused = _in_process(_arguments(data, out))
    assert refused.exit_code == 1
    assert "cannot write to output directory '/sys/axiomcam-cannot-write-here'" in \
        refused.output
    assert not out.exists()


def test_a_data_set_path_that_cannot_be_read_is_refused_before_writing(data, tmp_path):
    out = tmp_path / "run"
    missing = tmp_path / "no-such-folder"
    arguments = _arguments(data, out)
    arguments[arguments.index("--data") + 1] = str(missing)
    refused = _in_process(arguments)
    assert refused.exit_code == 1
    assert f"no folder or .csv file at '{missing}'" in refused.output
    assert not out.exists()
    # a folder that holds no image (a wrong path to the data set's parent, say)
    empty = tmp_path / "empty"
    (empty / "red").mkdir(parents=True)
    arguments[arguments.index("--data") + 1] = str(empty)
    refused = _in_process(arguments)
    assert refused.exit_code != 0 and "no image files" in refused.output
    assert f"in '{empty}'" in refused.output and not out.exists()
