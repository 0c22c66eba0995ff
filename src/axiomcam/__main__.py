"""``python -m axiomcam``: the command line (:mod:`axiomcam.cli`), also for
``torchrun ... -m axiomcam evaluate ...``."""

from .cli import main

if __name__ == "__main__":
    main()
