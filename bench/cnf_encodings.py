"""Compare the cardinality encodings of bnnembed.render.cnf on a trained bound: size and solve time.

    .venv/bin/python bench/cnf_encodings.py run DIR SRC --name NAME [--encodings adder,...]
        [--solvers g4,cd195] [--queries 20] [--timeout 20] [--max-build 30e6]
    .venv/bin/python bench/cnf_encodings.py table [--out FILE.md]

``run`` measures the upper bound of the artifact DIR (data SRC for its test rows) and merges the
results into ``bench/cnf_encodings.json`` under NAME, so the (long) runs can be split by encoding;
``table`` prints every stored result as markdown.

Sizes: variables and clauses of the whole bound (thermometer order clauses included), counted
with ``encode_bound(count_only=True)`` for every neuron (no extrapolation), and clauses per
synapse. An encoding above ``--max-build`` clauses is not built, so its solve time is not
measured.

Solve time, per encoding and solver, one incremental solver holding the bound's CNF for all
queries (learnt clauses carry over), the test rows in split order, Q queries per family:
- ``robust`` (test rows 0..Q-1): every feature pinned to within +-1 thermometer level of the
  row's level, and the bound's answer on the row negated: SAT = a counterexample (checked with
  numpy: inside the box, other answer), UNSAT = the answer cannot flip within the box;
- ``local`` (rows Q..2Q-1): the same with +-1 on ``--local`` random features (seed 0), every
  other feature pinned to its level;
- ``fixed`` (rows 2Q..3Q-1): every input bit fixed, the answer negated (must be UNSAT).
``--limit K`` runs the first K queries of each family only (for encodings too slow for all).
Per-query wall-clock timeout: Glucose via ``interrupt()`` from a timer thread and
``solve_limited(expect_interrupt=True)``; CaDiCaL through pysat cannot be interrupted, so its
query runs as conflict-budgeted ``solve_limited`` calls (budget sized to ~1 s) until it answers or
the timeout has passed (a timed-out CaDiCaL query may overrun by about one budget).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
from pysat.solvers import Solver

from bnnembed.artifact import SPLIT, load_artifact
from bnnembed.render.cnf import CardEncoding, encode_bound, rows_by_length
from bnnembed.learn.data import load_data
from bnnembed.model.intmodel import bound_answers

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "cnf_encodings.json"
SOLVER_NAMES = {"g4": "Glucose 4", "cd195": "CaDiCaL 1.9.5"}


def load_solver(name: str, cnf) -> Solver:
    s = Solver(name=name)
    for block in cnf.blocks:
        for start in range(0, len(block), 1 << 19):
            for part in rows_by_length(block[start : start + (1 << 19)]):
                s.append_formula(part)
    return s


def solve_timed(s: Solver, name: str, assumptions: list[int], timeout: float):
    """``(result, seconds)``: True / False, or None when the timeout passed."""
    t0 = time.perf_counter()
    if name.startswith("cd"):  # no interrupt: conflict-budgeted calls
        budget = 100
        while True:
            s.conf_budget(budget)
            t1 = time.perf_counter()
            res = s.solve_limited(assumptions=assumptions)
            now = time.perf_counter()
            if res is not None or now - t0 >= timeout:
                return res, now - t0
            per_conflict = max((now - t1) / budget, 1e-6)
            budget = int(min(max(budget * 2, 100), max(1.0 / per_conflict, 100)))
    timer = threading.Timer(timeout, s.interrupt)
    timer.start()
    try:
        res = s.solve_limited(assumptions=assumptions, expect_interrupt=True)
    finally:
        timer.cancel()
        s.clear_interrupt()
    return res, time.perf_counter() - t0


def box_assumptions(encoder, xv: np.ndarray, levels: np.ndarray, radius: np.ndarray) -> list[int]:
    """Literals pinning kept feature ``f``'s level to ``[level - radius[f], level + radius[f]]``."""
    out = []
    for f in range(encoder.n_kept):
        off, k = int(encoder.offsets[f]), int(encoder.offsets[f + 1] - encoder.offsets[f])
        lo, hi = max(int(levels[f]) - int(radius[f]), 0), min(int(levels[f]) + int(radius[f]), k)
        if lo >= 1:
            out.append(int(xv[off + lo - 1]))  # level >= lo
        if hi < k:
            out.append(-int(xv[off + hi]))  # level <= hi
    return out


def run(args) -> None:
    path = Path(args.results)
    art = load_artifact(args.artifact)
    net = art.upper
    enc = art.encoder
    ds = load_data(args.source)
    split = np.load(os.path.join(args.artifact, SPLIT))
    test = split["test"] if "test" in split.files else np.arange(ds.n_rows)
    q = args.queries
    rows = enc.encode(ds.X[test[: 3 * q]])
    levels = enc.levels(rows)
    answers = bound_answers(net, rows)
    rng = np.random.default_rng(0)
    radius = {"robust": [np.ones(enc.n_kept, np.int64)] * q, "local": []}
    for _ in range(q):
        r = np.zeros(enc.n_kept, np.int64)
        r[rng.choice(enc.n_kept, min(args.local, enc.n_kept), replace=False)] = 1
        radius["local"].append(r)
    results = json.loads(path.read_text()) if path.exists() else {}
    entry = results.setdefault(args.name, {})
    entry.update(shape=net.shape, synapses=net.n_synapses(), queries=q, local=args.local)
    entry.setdefault("encodings", {})
    for e in args.encodings.split(","):
        e = CardEncoding(e).value
        t0 = time.perf_counter()
        count = encode_bound(net, enc, e, count_only=True)
        old = entry["encodings"].get(e, {})
        rec = {"variables": count.n_vars, "clauses": count.n_clauses, "literals": count.n_lits,
               "count_s": round(time.perf_counter() - t0, 1), "solvers": old.get("solvers", {})}
        entry["encodings"][e] = rec
        print(f"{args.name} {e}: {count.n_vars:,} variables, {count.n_clauses:,} clauses "
              f"({count.n_clauses / net.n_synapses():.1f} per synapse), counted in {rec['count_s']} s",
              flush=True)
        if count.n_clauses > args.max_build:
            rec["not_solved"] = (f"{count.n_clauses / 1e6:.0f}M clauses, over the "
                                 f"{args.max_build / 1e6:.0f}M built in this bench")
            path.write_text(json.dumps(results, indent=1) + "\n")
            continue
        if not args.solvers:
            continue
        t0 = time.perf_counter()
        cnf = encode_bound(net, enc, e)
        rec["build_s"] = round(time.perf_counter() - t0, 1)
        print(f"  built in {rec['build_s']} s", flush=True)
        xv = np.asarray(cnf.x_vars)
        d = cnf.decision
        for name in args.solvers.split(","):
            t0 = time.perf_counter()
            s = load_solver(name, cnf)
            load_s = time.perf_counter() - t0
            out = {"load_s": round(load_s, 1), "timeout_s": args.timeout}
            rec["solvers"][name] = out  # saved after each family (a run cut short keeps them)
            for fam, first in (("robust", 0), ("local", q)):  # can the answer flip inside the box?
                out[fam] = []
                for j in range(min(q, args.limit)):
                    i = first + j
                    flip = -d if answers[i] else d
                    box = box_assumptions(enc, xv, levels[i], radius[fam][j])
                    res, dt = solve_timed(s, name, box + [flip], args.timeout)
                    if res:  # replay the counterexample through numpy
                        x = (np.array(s.get_model()[: enc.n_bits]) > 0).astype(np.uint8)[None, :]
                        inside = np.all(np.abs(enc.levels(x)[0] - levels[i]) <= radius[fam][j])
                        if not inside or bound_answers(net, x)[0] == answers[i]:
                            raise SystemExit(f"{e}/{name}: counterexample of row {i} does not replay")
                    out[fam].append([None if res is None else bool(res), round(dt, 3)])
                path.write_text(json.dumps(results, indent=1) + "\n")
            out["fixed"] = []
            for i in range(2 * q, 2 * q + min(q, args.limit)):  # every input fixed: must be UNSAT
                bits = np.where(rows[i] == 1, xv, -xv).tolist()
                res, dt = solve_timed(s, name, bits + [-d if answers[i] else d], args.timeout)
                if res is not False:
                    raise SystemExit(f"{e}/{name}: fixed input {i} gave {res}, expected UNSAT")
                out["fixed"].append([bool(res), round(dt, 4)])
            s.delete()
            msg = [f"  {name}: load {load_s:.1f} s"]
            for fam in ("robust", "local"):
                rb = out[fam]
                msg.append(f"{fam} SAT {sum(r is True for r, _ in rb)} / UNSAT {sum(r is False for r, _ in rb)}"
                           f" / timeout {sum(r is None for r, _ in rb)}, median {np.median([t for _, t in rb]):.2f} s")
            msg.append(f"fixed median {np.median([t for _, t in out['fixed']]) * 1e3:.1f} ms")
            print("; ".join(msg), flush=True)
            rec["solvers"][name] = out
            path.write_text(json.dumps(results, indent=1) + "\n")  # after each solver
        del cnf


def _fam(rb) -> str:
    if not rb:
        return "not run | | "
    return (f"{sum(r is True for r, _ in rb)} / {sum(r is False for r, _ in rb)} / "
            f"{sum(r is None for r, _ in rb)} | {np.median([t for _, t in rb]):.2f} | {sum(t for _, t in rb):.0f}")


def table(path: Path) -> str:
    results = json.loads(path.read_text())
    lines = [
        "| net (upper bound) | encoding | variables | clauses | clauses / synapse | solver | load s "
        "| all ±1: SAT / UNSAT / timeout | median s | total s "
        "| local ±1: SAT / UNSAT / timeout | median s | total s | fixed inputs: median ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for net, entry in results.items():
        shape = "-".join(map(str, entry["shape"]))
        for e in [c.value for c in CardEncoding]:
            rec = entry["encodings"].get(e)
            if rec is None:
                continue
            head = (f"| {net} {shape} | {e}{' (default)' if e == 'adder' else ''} | {rec['variables']:,} | "
                    f"{rec['clauses']:,} | {rec['clauses'] / entry['synapses']:.1f} |")
            if not rec["solvers"]:
                lines.append(head + f" — | — | not measured: {rec.get('not_solved', 'not run')} "
                             "| | | | | | |")
            for name, out in rec["solvers"].items():
                fixed = [t for _, t in out.get("fixed", [])]
                fixed_ms = f"{np.median(fixed) * 1e3:.1f}" if fixed else "not run"
                lines.append(
                    head + f" {SOLVER_NAMES.get(name, name)} | {out['load_s']} | {_fam(out.get('robust'))} | "
                    f"{_fam(out.get('local'))} | {fixed_ms} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("artifact")
    r.add_argument("source")
    r.add_argument("--name", required=True)
    r.add_argument("--encodings", default=",".join(c.value for c in CardEncoding))
    r.add_argument("--solvers", default="g4,cd195", help="'' to count sizes only")
    r.add_argument("--queries", type=int, default=20, help="queries per family")
    r.add_argument("--local", type=int, default=4, help="features given +-1 in the 'local' family")
    r.add_argument("--limit", type=int, default=10**9,
                   help="run only the first LIMIT queries of each family (same rows as the full run)")
    r.add_argument("--timeout", type=float, default=20.0)
    r.add_argument("--max-build", type=float, default=30e6, help="largest CNF (clauses) built and solved")
    t = sub.add_parser("table")
    t.add_argument("--out")
    for p in (r, t):
        p.add_argument("--results", default=str(RESULTS), help="JSON file of the results")
    args = ap.parse_args()
    if args.cmd == "run":
        run(args)
    else:
        text = table(Path(args.results))
        print(text)
        if args.out:
            Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
