"""Command-line interface: a thin layer over the library, one module per group of subcommands.

``main(argv)`` takes its arguments explicitly and returns the exit code, so tests call it
in-process. A :class:`~bnnembed.errors.BnnError` (a user mistake) becomes one line on stderr and
exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from ..errors import BnnError
from .args import OneLineParser

# Each module defines register(subparsers); its parsers set_defaults(func=...) taking the args.
COMMAND_MODULES = [
    "bnnembed.cli.build",
    "bnnembed.cli.firmware",
    "bnnembed.cli.host",
    "bnnembed.cli.certify",
    "bnnembed.cli.explain",
]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="bnnembed",
        description=(
            "Derive calibrated binarized bounds of a yes/no DNN, run them as XNOR-popcount C on a "
            "microcontroller (deferring unknowns to the host DNN), and explain every decision with SAT."
        ),
    )
    parser.add_argument("--version", action="version", version=f"bnnembed {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BnnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
