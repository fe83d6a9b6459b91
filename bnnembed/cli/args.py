"""Argument types shared by the commands: each checks a value at parse time, before any work
starts (no build or QEMU run before an output path or a count turns out to be wrong), and
refuses it with one line that names the fix."""

from __future__ import annotations

import argparse
import os


def count(minimum: int = 1):
    """An integer count that must be at least ``minimum`` (rows, limits, epochs ...)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be at least {minimum}")
        return value

    parse.__name__ = "count"
    return parse


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return v


def fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 1)")
    return v


def widths(text: str) -> tuple[int, ...]:
    try:
        ws = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("--hidden takes widths like 256,256") from None
    if not ws or min(ws) < 1:
        raise argparse.ArgumentTypeError("--hidden takes positive widths like 256,256")
    return ws


def image_shape(text: str) -> tuple[int, int]:
    """``HxW``: the rows are images of H rows by W columns, row-major."""
    try:
        h, w = (int(t) for t in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give the image shape as HxW, like 28x28") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: both sides must be at least 1")
    return h, w


def out_file(text: str) -> str:
    """A file to write: its folder must exist and the path must not be a folder."""
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name inside it")
    parent = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(parent):
        raise argparse.ArgumentTypeError(f"folder {os.path.dirname(text) or '.'} does not exist; create it first")
    return text


def out_dir(text: str) -> str:
    """A folder to write into (created if missing): it must not be an existing file."""
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is an existing file; give a folder")
    return text


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit 2, like every other user mistake."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(2, f"error: {self.prog}: {message} (see '{self.prog} --help')\n")
