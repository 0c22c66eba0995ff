"""``--method-option NAME=VALUE`` (``explain``, ``compare``): any keyword option of a
method's constructor from the command line, e.g. occlusion's ``window=48``, SS-CAM's
``num_samples=8``, Finer-CAM's ``comparisons=2`` or KPCA-CAM's ``kernel=rbf``
(:func:`axiomcam.methods.method_options` lists a method's options).

Examples:
    >>> parse_value("48"), parse_value("0.5"), parse_value("true"), parse_value("mean")
    (48, 0.5, True, 'mean')
    >>> check_method_options(("window=48", "baseline=mean"), ["occlusion", "gradcam"])
    {'occlusion': {'window': 48, 'baseline': 'mean'}, 'gradcam': {}}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

from .messages import BadUsage

__all__ = ["check_method_options", "method_option", "parse_pairs", "parse_value"]

#: options the commands set from their own flags (or that make no sense on files)
RESERVED = {"counterfactual", "eigen_smooth", "aug_smooth", "progress", "output",
            "extra_inputs"}


def method_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--method-option NAME=VALUE``, repeatable."""
    return click.option(
        "--method-option", "method_option_pairs", multiple=True, metavar="NAME=VALUE",
        help="An option of the method, repeatable: e.g. window=48, stride=24, baseline=mean "
             "(occlusion), num_samples=8 (sscam, iscam, smoothgradcam++), comparisons=2 "
             "(finercam), kernel=rbf (kpcacam), smooth=8, seed=0. Numbers, true/false and "
             "none are read as such; with several methods, each gets the options it "
             "takes.")(command)


def parse_value(text: str) -> object:
    """A number, ``True``/``False``/``None`` (any case), or else the text itself."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def parse_pairs(pairs: Sequence[str], flag: str) -> dict[str, object]:
    """``NAME=VALUE`` pairs of a repeatable ``flag`` by name, values read by
    :func:`parse_value`.

    Raises:
        BadUsage: a pair without ``=`` or a name, or a name given twice.

    Examples:
        >>> parse_pairs(["runs=20", "baseline=mean"], "--metric-option")
        {'runs': 20, 'baseline': 'mean'}
    """
    parsed: dict[str, object] = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        name = name.strip()
        if not separator or not name:
            raise BadUsage(f"{flag} must be NAME=VALUE, got {pair!r}")
        if name in parsed:
            raise BadUsage(f"{flag} {name} is given twice")
        parsed[name] = parse_value(value)
    return parsed


def check_method_options(pairs: Sequence[str], methods: Sequence[str]
                         ) -> dict[str, dict[str, object]]:
    """Per method, the options of ``pairs`` (``"NAME=VALUE"``) it takes.

    Raises:
        BadUsage: a pair without ``=``, an option given twice, one the commands set from
            their own flags, or one that none of ``methods`` takes (the options they take
            are listed).
    """
    from ..methods import method_options

    parsed = parse_pairs(pairs, "--method-option")
    for name in parsed:
        if name in RESERVED:
            flag = "--" + name.replace("_", "-")
            raise BadUsage(f"--method-option {name}: use the command's own option "
                           f"({flag}) where it has one")
    accepted = {method: set(method_options(method)) - RESERVED for method in methods}
    for name in parsed:
        if not any(name in names for names in accepted.values()):
            known = ", ".join(sorted(set().union(*accepted.values())))
            raise BadUsage(f"--method-option {name}: {', '.join(methods)} "
                           f"{'takes' if len(methods) == 1 else 'take'} no option {name!r}; "
                           f"known: {known}")
    return {method: {name: value for name, value in parsed.items() if name in accepted[method]}
            for method in methods}
