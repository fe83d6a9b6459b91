"""Explanation latency, size, independent checks and robustness verdicts on an artifact's test split.

Usage: python bench/explain_latency.py DIR SRC [--rows N] [--seconds S] [--check K] [--robust M]
                                       [--out FILE.jsonl]

- abductive explanations of the first N decided test rows (default 200), each with a time budget
  of S seconds (default 10): median / p95 latency, mean size, how many are proven minimal;
- the first K explanations (default 10) re-checked by separate SAT calls on a fresh solver (the
  native cardinality form of the same integer model): sufficiency (``S pinned AND NOT target`` is
  UNSAT) and minimality (for every kept feature, ``S minus it pinned AND NOT target`` is SAT and
  the model, replayed through numpy, breaks the target); each call gets ``--check-seconds``;
- robustness for R = 1, 2, 3 on the first M decided rows (default 100): robust / counterexample
  (replayed through numpy) / undecided and the median time per query.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import numpy as np
from tqdm import tqdm

from bnnembed.artifact import load_artifact
from bnnembed.learn.data import load_data
from bnnembed.logic.explain import Explainer, Oracle, Scope, target_for
from bnnembed.logic.explain.oracle import ranges_fixed


def sat_call(oracle: Oracle, ranges, target, seconds: float):
    """A complete SAT call interrupted after ``seconds``: True (UNSAT: target forced),
    False (SAT), None (interrupted)."""
    assume = oracle.assumptions(ranges) + [oracle.neg_target_assumption(target)]
    timer = threading.Timer(seconds, oracle.solver.interrupt)
    timer.start()
    try:
        sat = oracle.solver.solve_limited(assumptions=assume, expect_interrupt=True)
    finally:
        timer.cancel()
        oracle.solver.clear_interrupt()
    if sat is None:
        return None, None
    return (not sat), (oracle.levels_of_model(oracle.solver.get_model()) if sat else None)


def independent_check(art, case, feats, target, seconds: float) -> dict:
    """Sufficiency and minimality of one explanation by separate SAT calls."""
    with Oracle(art, budget=0, max_points=0, probe=0) as o:
        suff, _ = sat_call(o, ranges_fixed(case.levels, feats), target, seconds)
        needed = undecided = 0
        for f in feats:
            verdict, w = sat_call(o, ranges_fixed(case.levels, [g for g in feats if g != f]), target, seconds)
            if verdict is False:
                assert not o.replay.holds(w[None, :], target)[0], "SAT model does not replay through numpy"
                needed += 1
            elif verdict is None:
                undecided += 1
            else:
                raise AssertionError(f"feature {f} is not needed: the explanation is not minimal")
        if suff is False:
            raise AssertionError("the explanation is not sufficient")
    return {"sufficient": suff, "needed": needed, "undecided": undecided}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact")
    ap.add_argument("data")
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--check", type=int, default=10)
    ap.add_argument("--check-seconds", type=float, default=20.0)
    ap.add_argument("--robust", type=int, default=100)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    art = load_artifact(args.artifact)
    ds = load_data(args.data)
    with np.load(art.file("split.npz")) as z:
        rows = z["test"]
    out = open(args.out, "w") if args.out else None
    with Explainer(art, use_store=False, seconds=args.seconds) as ex:
        decided = [int(i) for i in rows if ex.case(ds.X[i]).decision.label != "unknown"]
        print(f"{len(decided)} decided test rows of {len(rows)}; {ex.oracle.n_features} features, "
              f"bounds {art.upper.shape} / {art.lower.shape}")
        times, sizes, minimal, checks = [], [], 0, []
        for k, i in enumerate(tqdm(decided[: args.rows], desc="abductive")):
            case = ex.case(ds.X[i])
            r = ex.explain(case, "abductive")
            times.append(r["seconds"])
            sizes.append(r["size"])
            minimal += r["minimal"]
            rec = {"row": i, "seconds": r["seconds"], "size": r["size"], "minimal": r["minimal"],
                   "undecided": len(r["undecided"])}
            if k < args.check:
                cols = art.encoder.feature_index.tolist()
                feats = [cols.index(f["column"]) for f in r["features"]]
                target = target_for(case.decision, case.upper, case.lower, Scope.BOUND)
                rec["check"] = independent_check(art, case, feats, target, args.check_seconds)
                checks.append(rec["check"])
            if out:
                out.write(json.dumps(rec) + "\n")
                out.flush()
        t = np.array(times) * 1000
        print(f"abductive: {len(t)} decided test rows, median {np.median(t):.1f} ms, p95 "
              f"{np.percentile(t, 95):.1f} ms, max {t.max():.1f} ms, mean size {np.mean(sizes):.1f} of "
              f"{ex.oracle.n_features} features, proven minimal {minimal}/{len(t)} (budget {args.seconds} s)")
        if checks:
            print(f"independent SAT check of {len(checks)}: sufficiency confirmed "
                  f"{sum(c['sufficient'] is True for c in checks)}, undecided "
                  f"{sum(c['sufficient'] is None for c in checks)} (in {args.check_seconds} s); kept features "
                  f"confirmed needed {sum(c['needed'] for c in checks)}, undecided "
                  f"{sum(c['undecided'] for c in checks)}, refuted 0")
        for R in (1, 2, 3) if args.robust else ():
            verdicts, ts = [], []
            for i in tqdm(decided[: args.robust], desc=f"robustness R={R}"):
                r = ex.verify(ex.case(ds.X[i]), radius=R)
                verdicts.append(r["robust"])
                ts.append(r["seconds"])
                if r["robust"] is False:
                    assert r["counterexample"]["replayed"]
            ts = np.array(ts) * 1000
            print(f"R={R}: {len(ts)} rows, robust {sum(v is True for v in verdicts)}, counterexample (replayed) "
                  f"{sum(v is False for v in verdicts)}, undecided {sum(v is None for v in verdicts)}; "
                  f"median {np.median(ts):.1f} ms, p95 {np.percentile(ts, 95):.1f} ms per query")


if __name__ == "__main__":
    main()
