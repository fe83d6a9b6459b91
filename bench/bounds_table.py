"""Coverage and disagreement of the two-network bounds vs the one-network baseline, per data set.

Builds each workload with ``bnnembed build`` defaults (or reuses an existing artifact directory)
and prints a markdown table of the test-split figures. MNIST is included when its directory is
given (``--mnist DIR``); it is calibrated at alpha = 1%.

    python bench/bounds_table.py --work bench/out [--mnist ../shared/data/mnist]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from bnnembed.cli import main as cli


def workloads(mnist: str | None) -> list[tuple[str, list[str]]]:
    out = [
        ("breast_cancer", ["--data", "breast_cancer"]),
        ("digits_0", ["--data", "digits", "--positive", "0"]),
        ("digits_5-9", ["--data", "digits", "--positive", "5,6,7,8,9"]),
    ]
    if mnist:
        out.append(("mnist_5-9", ["--data", f"mnist:{mnist}", "--positive", "5,6,7,8,9", "--alpha", "0.01"]))
    return out


def row(name: str, variant: str, m: dict, alpha: float) -> str:
    return (f"| {name} | {variant} | {m['coverage']:.1%} | {m['coverage_yes']:.1%} | {m['coverage_no']:.1%} "
            f"| {m['decided']} | {m['disagreements']} | {m['disagreement_rate']:.2%} | {m['disagreement_bound']:.2%} "
            f"| {m['joint_bound']:.2%} | {alpha:g} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="bench/out", help="where artifacts are built or reused")
    ap.add_argument("--mnist", default=None, help="MNIST IDX directory (optional)")
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args(argv)
    lines = ["| data | variant | coverage | yes | no | decided | disagreements | rate | bound | joint bound | alpha |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, extra in workloads(args.mnist):
        out = os.path.join(args.work, name)
        if args.rebuild or not os.path.exists(os.path.join(out, "metrics.json")):
            rc = cli(["build", *extra, "--out", out, "--no-cnf"])
            if rc:
                return rc
        with open(os.path.join(out, "metrics.json")) as fh:
            m = json.load(fh)
        lines.append(row(name, "two networks", m, m["alpha"]))
        if m.get("baseline"):
            lines.append(row(name, "one network", m["baseline"], m["alpha"]))
        s = m["split"]
        print(f"{name}: split {s['train']}/{s['calibration']}/{s['test']}, DNN accuracy {m['dnn_accuracy']:.1%}, "
              f"bnn_agreement {m['bnn_agreement']:.1%}, build {m['build_seconds']} s; notes: {m['notes']}",
              file=sys.stderr)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
