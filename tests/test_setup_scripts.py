"""The quick start changes nothing outside the repository: only the tests install a browser."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _make_commands(target: str) -> str:
    """What ``make TARGET`` would run (``make -n`` prints the recipes without running them)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True,
                            check=True)
    return result.stdout


def test_the_quick_start_installs_nothing_on_the_system() -> None:
    commands = _make_commands("quickstart")
    assert "scripts/setup.sh" in commands
    assert "setup_browser" not in commands and "apt-get" not in commands
    # setup.sh only names apt-get in an error's advice; it never runs it
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    runs_apt = [line for line in setup.splitlines()
                if "apt-get" in line and "fail " not in line and not line.lstrip().startswith("#")]
    assert runs_apt == [] and "chromium" not in setup.lower()


def test_the_tests_install_the_browser_they_drive() -> None:
    commands = _make_commands("test")
    assert "scripts/setup_browser.sh" in commands
    assert "apt-get install" in (ROOT / "scripts" / "setup_browser.sh").read_text()
