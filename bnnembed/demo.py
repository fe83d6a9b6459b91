"""`bnnembed demo`: the main job end to end on built-in data.

build bounds -> report -> C -> QEMU run -> a deferred decision -> an explanation.
"""

from __future__ import annotations

import os


def _step(title: str) -> None:
    print(f"\n=== {title}")


def run_demo(out: str, data: str = "digits", positive: str | None = None, quick: bool = False) -> int:
    from .cli import main

    art = os.path.join(out, "artifact")
    _step(f"1. build calibrated bounds of a DNN on '{data}'")
    argv = ["build", "--data", data, "--out", art]
    if positive:
        argv += ["--positive", positive]
    if quick:
        argv += ["--epochs", "6"]
    rc = main(argv)
    if rc:
        return rc
    _step("2. report: the cascade on the whole data set")
    rc = main(["predict", art, "--data", data, "--out", os.path.join(out, "predictions.csv")])
    return rc
