"""bnnembed: calibrated binarized bounds of a DNN, packed into XNOR-popcount C, explained in logic.

The public surface is small: load an artifact, decide inputs with the integer model, and the
pieces the CLI is built from. See README.md and docs/ for the flow.
"""

__version__ = "0.1.0"

from .errors import ArtifactError, BnnError  # noqa: E402
from .model.intmodel import BoundNet, Decision, IntLayer  # noqa: E402

__all__ = ["__version__", "ArtifactError", "BnnError", "BoundNet", "Decision", "IntLayer", "load_artifact"]


def load_artifact(path: str):
    """Load and verify an artifact directory (see :mod:`bnnembed.artifact`)."""
    from .artifact import load_artifact as _load

    return _load(path)
