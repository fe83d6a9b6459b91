"""Several devices at once against one host over a corrupting link, the host killed and restarted.

    .venv/bin/python bench/host_devices.py [--rows 1000] [--flip 0.01] [--devices 1,4]

Python devices (the protocol's reference behaviour: one request at a time, bounded attempts, a
reply accepted only if session, seq and request CRC match) each talk to one host through their
own TCP proxy that flips ``--flip`` of the bytes in both directions. In the run with several
devices the host is stopped after a few seconds and started again on the same port and log.
Each device's run is audited against the host's SQLite log: lost (answered but not logged),
duplicated, misread (a final decision other than the bound's or the DNN's) and undecided rows.
Requests per second are wall-clock on this machine (one core per process at most).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from _link_audit import run_devices  # noqa: E402
from host_fixtures import make_host_artifact  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1000, help="rows per device (default 1000)")
    ap.add_argument("--flip", type=float, default=0.01, help="share of bytes flipped each way (default 0.01)")
    ap.add_argument("--devices", default="1,4", help="device counts to run (default 1,4)")
    ap.add_argument("--timeout", type=float, default=0.05, help="device reply timeout in seconds (default 0.05)")
    ap.add_argument("--attempts", type=int, default=80, help="device attempts per request (default 80)")
    ap.add_argument("--restart-after", type=float, default=3.0,
                    help="with several devices, stop and restart the host after S seconds (0: never; default 3)")
    ap.add_argument("--out", default=os.path.join(HERE, "host_devices.json"))
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        art = make_host_artifact(os.path.join(tmp, "bc"), source="breast_cancer")
        for n in (int(v) for v in args.devices.split(",")):
            run = run_devices(art, n, args.rows, args.flip, os.path.join(tmp, f"log{n}.sqlite"),
                              restart_after=args.restart_after if n > 1 and args.restart_after > 0 else None, timeout=args.timeout, attempts=args.attempts)
            row = {"devices": n, "rows_per_device": args.rows, "flip_rate": args.flip,
                   "host_restarted": run["restarted"], "seconds": round(run["seconds"], 1),
                   "requests_per_second": round(run["requests_per_second"], 1),
                   "lost": sum(a["lost"] for a in run["audits"]),
                   "duplicated": sum(a["duplicates"] for a in run["audits"]),
                   "undecided": sum(a["undecided"] for a in run["audits"]),
                   "misread": 0,  # the audit asserts it: a misread row fails the run
                   "retries_answered_from_log": sum(a["retries_answered_from_log"] for a in run["audits"]),
                   "frames_dropped_by_host": run["host"]["frames_dropped"]}
            results.append(row)
            print(json.dumps(row), flush=True)
    with open(args.out, "w") as fh:
        json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
