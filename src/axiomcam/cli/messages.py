"""How the command line speaks: one line per error (``axiomcam: error: ...``), per warning
(``axiomcam: warning: ...``) and per failed input, and the exit codes.

Exit codes: 0 success, 2 bad usage (:class:`BadUsage`), 1 any other failure
(:class:`CommandFailure`), including any image that could not be explained
(:func:`finish`).

Examples:
    >>> one_line("first\\n  second\\n")
    'first; second'
    >>> plural(1, "image"), plural(3, "map")
    ('1 image', '3 maps')
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

import click

from ..support import AxiomCamWarning

__all__ = [
    "BadUsage", "CommandFailure", "bad_usage", "fail", "finish", "one_line", "plural",
    "setup_logging", "warnings_as_lines",
]


class BadUsage(click.UsageError):
    """Exit 2 with one line on stderr."""

    def show(self, file: Any = None) -> None:
        """``axiomcam: error: MESSAGE (see 'axiomcam SUBCOMMAND --help')``."""
        # "axiomcam SUBCOMMAND" whatever name the program was started by
        sub = self.ctx.info_name if self.ctx is not None and self.ctx.parent else None
        command = f"axiomcam {sub}" if sub else "axiomcam"
        click.echo(f"axiomcam: error: {one_line(self.format_message())} "
                   f"(see '{command} --help')", err=True, file=file)


class CommandFailure(click.ClickException):
    """Exit 1 with one line on stderr."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        """``axiomcam: error: MESSAGE``."""
        click.echo(f"axiomcam: error: {one_line(self.format_message())}", err=True, file=file)


def one_line(message: str) -> str:
    """The lines of ``message`` joined by ``"; "``, blank ones dropped."""
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())


def fail(error: BaseException, debug: bool) -> NoReturn:
    """Exit 1 with ``error``'s message (``debug``: raise ``error`` itself)."""
    if debug:
        raise error
    text = str(error) or type(error).__name__
    if isinstance(error, KeyError) and error.args:  # str(KeyError) is the repr of the key
        text = str(error.args[0])
    raise CommandFailure(text) from error


def bad_usage(error: BaseException, debug: bool) -> NoReturn:
    """Exit 2 with ``error``'s message (``debug``: raise ``error`` itself)."""
    if debug:
        raise error
    raise BadUsage(str(error)) from error


def setup_logging(debug: bool) -> None:
    """axiomcam's log lines as ``axiomcam: ...``; debug lines too with ``--debug``."""
    logging.basicConfig(format="axiomcam: %(message)s",
                        level=logging.DEBUG if debug else logging.WARNING)


@contextlib.contextmanager
def warnings_as_lines() -> Iterator[None]:
    """axiomcam's own warnings as ``axiomcam: warning: ...`` lines, not in Python's
    ``file:line: category`` form, which would point into click's code."""
    original = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        if issubclass(category, AxiomCamWarning):
            click.echo(f"axiomcam: warning: {one_line(str(message))}", err=True)
        else:
            original(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


def finish(failures: Sequence[Any]) -> None:
    """List the failures on stderr (``axiomcam: failed: PATH: reason``); exit 1 if there
    were any."""
    from ..workflows import print_failures

    if failures:
        print_failures(failures, lambda line: click.echo(line, err=True))
        raise click.exceptions.Exit(1)


def plural(count: int, word: str) -> str:
    """``"1 image"``, ``"2 images"``."""
    return f"{count} {word}{'' if count == 1 else 's'}"
