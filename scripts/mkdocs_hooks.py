"""mkdocs hooks of the documentation site (mkdocs.yml: ``hooks``).

- The front page is the README itself: ``index.md`` is generated from ``README.md``, so the
  two never drift apart.
- The command line reference (``reference/cli.md``) is generated from the commands' own
  ``--help``, so it cannot go stale.
- Links from a page to a file of the repository outside ``docs/`` (``examples/clip.py``,
  ``BENCHMARKS.md``) become the path in code: the site has no copy of those files. A link
  to a path that does not exist is a warning, which ``mkdocs build --strict`` turns into a
  failure, as mkdocs does for the pages' own links.
"""

from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.axiomcam")

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: ``[text](target)`` and ``![alt](target)``, target without spaces
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def on_files(files: Files, config) -> Files:
    """Add the generated pages: the front page and the command line reference."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    files.append(File.generated(config, "index.md", content=_front_page(readme)))
    files.append(File.generated(config, "reference/cli.md", content=_cli_reference()))
    return files


def on_page_markdown(markdown: str, page, config, files: Files) -> str:
    """Turn links that leave ``docs/`` into code spans (checking that the file exists)."""
    page_dir = posixpath.dirname(page.file.src_uri)

    def replace(match: re.Match) -> str:
        bang, text, target = match.groups()
        if re.match(r"^[a-z]+:|^#|^/", target):
            return match.group(0)
        path, _, _anchor = target.partition("#")
        inside = posixpath.normpath(posixpath.join(page_dir, path))
        if not inside.startswith("../"):
            return match.group(0)  # a page or picture of the site: mkdocs checks it
        in_repository = (DOCS / inside).resolve()
        if not in_repository.exists():
            log.warning("%s links to %s, which does not exist", page.file.src_uri, target)
        relative = in_repository.relative_to(ROOT) if ROOT in in_repository.parents else target
        return f"{text} (`{relative}` in the repository)" if not bang else f"`{relative}`"

    return LINK.sub(replace, markdown)


def _front_page(readme: str) -> str:
    """The README with its links made relative to ``docs/``, where the page lives: a link
    into ``docs/`` loses the prefix, another relative link (``examples/``) gains ``../``."""

    def relocate(match: re.Match) -> str:
        bang, text, target = match.groups()
        if re.match(r"^[a-z]+:|^#|^/", target):
            return match.group(0)
        target = target.removeprefix("docs/") if target.startswith("docs/") else f"../{target}"
        return f"{bang}[{text}]({target})"

    return LINK.sub(relocate, readme)


def _cli_reference() -> str:
    """Every command's ``--help``, in the order ``axiomcam --help`` lists them."""
    import click

    from axiomcam.cli import main

    context = click.Context(main, info_name="axiomcam")
    parts = ["# Command line reference", "",
             "Generated from each command's `--help` when the site is built. The guide to "
             "the commands is [Command line](../cli.md).", "",
             "## axiomcam", "", "```text", main.get_help(context), "```", ""]
    for name in main.list_commands(context):
        command = main.get_command(context, name)
        sub_context = click.Context(command, info_name=f"axiomcam {name}", parent=context)
        parts += [f"## axiomcam {name}", "", "```text", command.get_help(sub_context), "```", ""]
    return "\n".join(parts)
