"""What the command-line tests share: running the CLI in-process and reading its one-line
errors (pytest puts this folder on ``sys.path``: the tests import it by name)."""

from __future__ import annotations

from click.testing import CliRunner, Result

from axiomcam.cli import main


def invoke(*arguments: str) -> Result:
    """``axiomcam ARGUMENTS`` run in-process, its stdout and stderr kept apart."""
    return CliRunner().invoke(main, list(arguments))


def one_line_error(result: Result) -> str:
    """The single ``axiomcam: error: ...`` line a failed command printed (no traceback)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("axiomcam: error: ")
    assert "Traceback" not in result.output
    return lines[0]
