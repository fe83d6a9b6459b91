"""Locate the package data directories (templates/, firmware/, boards/).

In a checkout they are top-level directories reached through symlinks inside the package; in an
installed wheel they are copied into the package. Either way they sit beside this file.
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """Path of ``templates``, ``firmware`` or ``boards``."""
    path = _HERE / name
    if not path.is_dir():
        raise FileNotFoundError(f"bnnembed package data '{name}' is missing from {_HERE}")
    return path.resolve()
