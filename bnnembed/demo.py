"""`bnnembed demo`: the main job end to end on built-in data.

1. build calibrated bounds of a DNN (the default MLP, trained here) and print the report; the
   default task, digits "is it 5..9?", is hard enough that some inputs stay unknown and are deferred;
2. decide every row with the cascade (numpy reference);
3. generate the C model and a PlatformIO project for a board;
4. run the same generated C under QEMU (Cortex-M4) and compare every decision with numpy;
5. run the firmware under QEMU with its UART connected to the host service, so unknown inputs
   are deferred to the DNN over the serial protocol and logged;
6. explain one device decision with SAT, over the whole data box and near the input (--delta).

Each step is the same CLI command a user would type; the demo only strings them together.
"""

from __future__ import annotations

import json
import os
import sys


def _step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def _run(argv: list[str]) -> int:
    from .cli import main

    print("$ bnnembed " + " ".join(argv), flush=True)
    rc = main(argv)
    sys.stdout.flush()
    if rc:
        print(f"demo: step failed with exit code {rc}", file=sys.stderr)
    return rc


def run_demo(out: str, data: str = "digits", positive: str | None = "5,6,7,8,9", quick: bool = False,
             machine: str = "mps2-an386", board: str = "nucleo_f401re", rows: int = 300) -> int:
    art = os.path.join(out, "artifact")
    os.makedirs(out, exist_ok=True)

    _step(f"1. build calibrated bounds of a DNN on '{data}' (train / calibration / test split)")
    argv = ["build", "--data", data, "--out", art]
    if positive:
        argv += ["--positive", positive]
    if quick:
        argv += ["--epochs", "6", "--augment", "4"]
    if rc := _run(argv):
        return rc
    print(f"risk-coverage plots: {os.path.join(art, 'risk_coverage_upper.png')}, "
          f"{os.path.join(art, 'risk_coverage_lower.png')}")

    _step("2. report: the cascade (bounds first, the DNN for unknowns) on every row")
    if rc := _run(["predict", art, "--data", data, "--out", os.path.join(out, "predictions.csv")]):
        return rc

    _step(f"3. C: XNOR-popcount model and a PlatformIO project for {board}")
    if rc := _run(["codegen", art, "--board", board, "--out", os.path.join(out, f"project-{board}")]):
        return rc

    _step(f"4. QEMU: the generated C on {machine}, every decision compared with numpy")
    if rc := _run(["qemu", art, "--machine", machine, "--data", data, "--rows", str(rows)]):
        return rc

    _step(f"5. deferral: firmware on {machine} sends unknown inputs to the host DNN over its UART")
    sim_csv = os.path.join(out, "simulated.csv")
    if rc := _run(["simulate", art, "--machine", machine, "--data", data, "--rows", str(rows),
                   "--out", sim_csv]):
        return rc
    deferred = _first_deferred_row(sim_csv)
    if deferred is None:
        print("no input was deferred in this run (the bounds decided every row)")
    else:
        print(f"row {deferred} was deferred: the device said unknown, the host DNN decided")
    if rc := _run(["log", art, "--limit", "8"]):
        return rc

    _step("6. explanation: why did the device decide the first decided row?")
    decided = _first_decided_row(sim_csv)
    if decided is None:
        print("no row was decided on the device; nothing to explain")
        return 0
    png = os.path.join(out, f"explanation-row{decided}.png")
    # a time budget keeps the demo quick: the explanation is always sufficient (proven); features
    # whose removal could not be settled in time are kept and reported (then it is not proven minimal)
    argv = ["explain", art, "--data", data, "--row", str(decided), "--seconds", "10"]
    if _is_image(art):
        argv += ["--png", png]
    if rc := _run(argv):
        return rc
    if _is_image(art):
        # over the whole data box an image decision needs most of its pixels; asked near the input
        # (every pixel within one grey level of its value) the answer is short enough to read
        print("\nthe same decision, asked near the input (every pixel free within 1 grey level):")
        if rc := _run(["explain", art, "--data", data, "--row", str(decided), "--delta", "1", "--seconds", "10"]):
            return rc
    print(f"\ndemo finished: everything is in {out}")
    return 0


def _read_sim(path: str) -> list[dict]:
    import csv

    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _first_deferred_row(path: str) -> int | None:
    for r in _read_sim(path):
        if r["source"] == "dnn":
            return int(r["row"])
    return None


def _first_decided_row(path: str) -> int | None:
    for r in _read_sim(path):
        if r["source"] == "bnn":
            return int(r["row"])
    return None


def _is_image(art: str) -> bool:
    with open(os.path.join(art, "manifest.json")) as fh:
        return bool(json.load(fh)["dataset"].get("image_shape"))


__all__ = ["run_demo"]
