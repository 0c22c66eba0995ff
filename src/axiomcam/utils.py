"""The former name of :mod:`axiomcam.images`, kept so that code written against axiomcam
0.1 (``from axiomcam.utils import overlay``) keeps working. New code imports
:mod:`axiomcam.images`."""

from .images import *  # noqa: F403
from .images import __all__  # noqa: F401
