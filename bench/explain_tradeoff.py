"""Explanation trade-off table: decided test rows of an artifact, and a summary of `explain --all` output.

Two steps, so the explanations themselves come from the ordinary command line:

    python bench/explain_tradeoff.py rows ART --data digits --n 200 --out ROWS.npz
    bnnembed explain ART --data ROWS.npz --all --out E.jsonl --seconds 2 --workers 2 [--delta D]
    python bench/explain_tradeoff.py summary E.jsonl [E2.jsonl ...]
    python bench/explain_tradeoff.py dnn-robust ART --data digits --rows ROWS.npz --delta 1,2,4 [--time-limit 10]

`rows` writes the first N test-split rows (the artifact's split.npz) on which the bounds decide
(yes or no, not unknown), as an NPZ with X, y and the test-row indices. `summary` prints, per
JSON-lines file: rows, share robust (empty explanation: the bound's answer holds on the whole
domain), median / p95 size over the non-robust rows, median / p95 seconds over all rows, and the
share proven subset-minimal. `dnn-robust` asks, per delta, whether the *DNN's* decision on each row
holds on the whole box of inputs within D raw units of it (clipped to the training rows' box, as
`certify` does): certified (interval bounds, LP or MILP), refuted (an attack or MILP point replayed
through the DNN runtime) or timeout. The certified share is the DNN-robust share; certified plus
timeout is its upper bound.
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


def cmd_dnn_robust(args) -> None:
    from bnnembed.artifact import load_artifact
    from bnnembed.learn.data import load_data
    from bnnembed.logic.certify.dnn_milp import VerifyConfig, verify_box
    from bnnembed.logic.certify.onnx_read import read_onnx
    from bnnembed.logic.certify.pipeline import domain_box

    art = load_artifact(args.artifact)
    ds = load_data(args.data, require_labels=False, resolve_positive=False)
    lo, hi, _ = domain_box(art, ds)
    net, dnn = read_onnx(art.certify_onnx()), art.load_dnn()
    X = np.load(args.rows)["X"].astype(np.float64)
    cfg = VerifyConfig(time_limit=args.time_limit)
    print("| delta | rows | DNN robust (certified) | refuted | timeout | median s |")
    print("|---|---|---|---|---|---|")
    for delta in [float(d) for d in args.delta.split(",")]:
        counts, secs = {"certified": 0, "refuted": 0, "timeout": 0, "spurious": 0}, []
        for x in X:
            claim = "yes" if dnn.says_yes(x[None, :].astype(np.float32))[0] else "no"
            blo, bhi = np.clip(x - delta, lo, hi), np.clip(x + delta, lo, hi)
            res = verify_box(net, dnn, np.minimum(blo, x), np.maximum(bhi, x), claim, cfg, start=x)
            counts[res.status] += 1
            secs.append(res.seconds)
        n = len(X)
        print(f"| {delta:g} | {n} | {counts['certified'] / n:.1%} | {counts['refuted'] / n:.1%} | "
              f"{(counts['timeout'] + counts['spurious']) / n:.1%} | {np.median(secs):.2f} |", flush=True)


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
    d = sub.add_parser("dnn-robust")
    d.add_argument("artifact")
    d.add_argument("--data", required=True)
    d.add_argument("--rows", required=True)
    d.add_argument("--delta", required=True, help="comma-separated raw-unit distances")
    d.add_argument("--time-limit", type=float, default=10.0, help="MILP seconds per row and delta")
    args = ap.parse_args()
    {"rows": cmd_rows, "summary": cmd_summary, "dnn-robust": cmd_dnn_robust}[args.cmd](args)


if __name__ == "__main__":
    main()
