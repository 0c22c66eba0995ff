"""``python -m axiomcam.demo``: ``axiomcam demo`` (:mod:`axiomcam.cli.demo`) by its old name."""

from .cli.demo import run_as_script as main

if __name__ == "__main__":
    raise SystemExit(main())
