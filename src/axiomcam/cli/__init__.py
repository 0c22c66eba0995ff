"""The ``axiomcam`` command line.

- ``axiomcam demo``: the quick start, two photographs explained (:mod:`axiomcam.cli.demo`);
- ``axiomcam explain IMAGE...``: overlays at the original resolution, raw maps (``.npy``),
  guided pictures and ``results.json`` (:func:`axiomcam.workflows.explain_files`);
- ``axiomcam compare IMAGE...``: one figure, a row per image and a column per method,
  optionally with XGrad-CAM's axiom errors under each map
  (:func:`axiomcam.workflows.compare_files`);
- ``axiomcam layers``: the layers a CAM can explain, with their output shapes;
- ``axiomcam samples``: scikit-image's bundled photographs as files, to try it on;
- ``axiomcam serve``: the explorer in the browser (:mod:`axiomcam.app`);
- ``axiomcam evaluate``: every metric on a data set (:func:`axiomcam.evaluation.evaluate`),
  into SQLite, summaries, plots and ``report.html``;
- ``axiomcam diagnose``: every misclassified image of a labelled data set explained for
  both classes, grouped by confusion pair, its evidence located
  (:func:`axiomcam.workflows.diagnose`);
- ``axiomcam audit``: the data-set bias audit, per class the share of its evidence on the
  background, flagged where it dominates (:func:`axiomcam.workflows.audit`).
- ``axiomcam robustness``: the original class's maps on adversarially attacked images vs
  the clean ones (:func:`axiomcam.workflows.robustness.robustness`).

``--model`` takes a built-in pretrained name, a torchvision or timm architecture with
``--weights FILE``, a model file saved whole with ``torch.save`` (TorchScript files are
refused: hooks cannot run inside them), an ONNX file, or ``package.module:factory``
(:func:`axiomcam.models.load`).

Exit codes: 0 success, 2 bad usage (an unknown method, model, layer, target or metric
group, a bad option value), 1 any other failure, including any image that could not be
explained (the others are still written; the failures are listed at the end). Errors are
one line on stderr, ``axiomcam: error: ...``; ``--debug`` shows the traceback instead.
axiomcam's warnings are one line each too, ``axiomcam: warning: ...``.

The package: :mod:`~axiomcam.cli.group` (the command group, one-line usage errors),
:mod:`~axiomcam.cli.messages` (errors, warnings, exit codes), :mod:`~axiomcam.cli.options`
(the shared options and their checks), then one module per family of subcommands.

Examples:
    >>> from click.testing import CliRunner
    >>> result = CliRunner().invoke(main, ["evaluate", "--methods", "nocam", "--data", "x",
    ...                                    "--out", "never-written"])
    >>> result.exit_code, result.output.splitlines()[-1][:40]
    (2, "axiomcam: error: unknown method 'nocam';")
"""

from __future__ import annotations

# each module adds its subcommands to the group
from . import audit, demo, diagnose, evaluate, explain, model, robustness  # noqa: F401
from .group import main

__all__ = ["main"]
