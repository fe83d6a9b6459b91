"""Explanation trade-off table: decided test rows of an artifact, and a summary of `explain --all` output.

Two steps, so the explanations themselves come from the ordinary command line:

    python bench/explain_tradeoff.py rows ART --data digits --n 200 --out ROWS.npz
    bnnembed explain ART --data ROWS.npz --all --out E.jsonl --seconds 2 --workers 2 [--delta D]
    python bench/explain_tradeoff.py summary E.jsonl [E2.jsonl ...]

`rows` writes the first N test-split rows (the artifact's split.npz) on which the bounds decide
(yes or no, not unknown), as an NPZ with X, y and the test-row indices. `summary` prints, per
JSON-lines file: rows, share robust (empty explanation: the bound's answer holds on the whole
domain), median / p95 size over the non-robust rows, median / p95 seconds over all rows, and the
share proven subset-minimal.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def cmd_rows(args) -> None:
    from bnnembed.artifact import load_artifact
    from bnnembed.learn.data import load_data
    from bnnembed.logic.explain import Explainer

    art = load_artifact(args.artifact)
    ds = load_data(args.data, require_labels=False, resolve_positive=False)
    with np.load(art.file("split.npz")) as z:
        test = z["test"]
    keep = []
    with Explainer(art, use_store=False) as ex:
        for i in test:
            if ex.case(ds.X[int(i)]).decision.label != "unknown":
                keep.append(int(i))
    print(f"{len(keep)} decided test rows of {len(test)}; writing the first {min(args.n, len(keep))}")
    idx = np.array(keep[: args.n], dtype=np.int64)
    out = {"X": ds.X[idx], "index": idx, "feature_names": np.array(ds.feature_names)}
    if ds.y is not None:
        out["y"] = ds.y[idx]
    np.savez(args.out, **out)


def summarize(path: str) -> dict:
    rows = [json.loads(line) for line in open(path)]
    robust = [r for r in rows if r.get("robust") or r["size"] == 0]
    rest = [r["size"] for r in rows if not (r.get("robust") or r["size"] == 0)]
    t = np.array([r["seconds"] for r in rows])
    return {
        "file": path,
        "rows": len(rows),
        "robust": len(robust) / len(rows),
        "size_median": float(np.median(rest)) if rest else None,
        "size_p95": float(np.percentile(rest, 95)) if rest else None,
        "seconds_median": float(np.median(t)),
        "seconds_p95": float(np.percentile(t, 95)),
        "minimal": sum(bool(r["minimal"]) for r in rows) / len(rows),
    }


def cmd_summary(args) -> None:
    print("| file | rows | robust | size median / p95 (non-robust) | time median / p95 | proven minimal |")
    print("|---|---|---|---|---|---|")
    for p in args.files:
        s = summarize(p)
        size = "—" if s["size_median"] is None else f"{s['size_median']:g} / {s['size_p95']:g}"
        print(f"| {p} | {s['rows']} | {s['robust']:.1%} | {size} | {s['seconds_median'] * 1000:.0f} ms / "
              f"{s['seconds_p95'] * 1000:.0f} ms | {s['minimal']:.1%} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("rows")
    r.add_argument("artifact")
    r.add_argument("--data", required=True)
    r.add_argument("--n", type=int, default=200)
    r.add_argument("--out", required=True)
    s = sub.add_parser("summary")
    s.add_argument("files", nargs="+")
    args = ap.parse_args()
    {"rows": cmd_rows, "summary": cmd_summary}[args.cmd](args)


if __name__ == "__main__":
    main()
