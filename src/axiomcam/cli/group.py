"""The ``axiomcam`` command group, whose every usage error is one line.

click reports its own usage errors (an unexpected argument, an option value out of range,
an unknown subcommand) in several lines of its own format; here they become
:class:`~axiomcam.cli.messages.BadUsage` like axiomcam's own (``axiomcam: error: ...``,
exit 2).

Examples:
    >>> from click.testing import CliRunner
    >>> result = CliRunner().invoke(main, ["nosuch"])
    >>> result.exit_code, result.output.strip()
    (2, "axiomcam: error: No such command 'nosuch'. (see 'axiomcam --help')")
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import click

from .. import __version__
from .messages import BadUsage, warnings_as_lines

__all__ = ["OneLineCommand", "OneLineGroup", "main"]

# click >= 8.2 asks for the help page with this usage error (8.1 exits instead): kept
_KEPT_AS_IS: tuple[type[Exception], ...] = (BadUsage, *(
    [click.exceptions.NoArgsIsHelpError]
    if hasattr(click.exceptions, "NoArgsIsHelpError") else []))


@contextlib.contextmanager
def _usage_errors_in_one_line() -> Iterator[None]:
    """click's usage errors raised as :class:`BadUsage` (its request for help stays)."""
    try:
        yield
    except _KEPT_AS_IS:
        raise
    except click.UsageError as error:
        raise BadUsage(error.format_message(), error.ctx) from error


class OneLineCommand(click.Command):
    """A subcommand whose usage errors, click's own included, are one line."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        """Parse the arguments (see :class:`click.Command`)."""
        with _usage_errors_in_one_line():
            return super().make_context(info_name, args, parent, **extra)


class OneLineGroup(click.Group):
    """A command group whose usage errors, click's own included, are one line; its
    subcommands are :class:`OneLineCommand`."""

    command_class = OneLineCommand

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        """Parse the group's own options (see :class:`click.Group`)."""
        with _usage_errors_in_one_line():
            return super().make_context(info_name, args, parent, **extra)

    def resolve_command(self, ctx: click.Context, args: list[str]
                        ) -> tuple[str | None, click.Command | None, list[str]]:
        """Find the subcommand (see :class:`click.Group`)."""
        with _usage_errors_in_one_line():
            return super().resolve_command(ctx, args)


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"],
                                                 "max_content_width": 100})
@click.version_option(__version__, prog_name="axiomcam")
@click.pass_context
def main(context: click.Context) -> None:
    """axiomcam: class activation maps and measures of how good they are.

    \b
    Examples:
      axiomcam demo --out results
      axiomcam explain photo.jpg --method xgradcam --target top3 --out maps
      axiomcam compare photos/ --methods gradcam,xgradcam,ablationcam --axioms
      axiomcam layers --model mobilenet_v2
      axiomcam samples photos
      axiomcam serve --model mobilenet_v2 --port 7860
      axiomcam evaluate --data composite:200 --out results/mobilenet_v2
      axiomcam diagnose --data composite:200 --out diagnosis
    """
    context.with_resource(warnings_as_lines())
