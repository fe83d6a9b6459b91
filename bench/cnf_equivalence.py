"""CNF vs numpy on many inputs, per bound, using the artifact's DIMACS files.

    .venv/bin/python bench/cnf_equivalence.py DIR SRC [--n N] [--real K] [--out FILE.md]

Checks ``N`` inputs per bound (default 10,000): the first ``K`` rows of SRC (default: as many as
there are, up to N) encoded by the artifact's thermometer, then random valid thermometer codes
(seed 0). For every input, :func:`cnf_decisions` (``tests/_cnf_checker.py``) fixes the input
bits in the CNF read back from ``cnf_upper.cnf`` / ``cnf_lower.cnf`` and establishes what the CNF
forces the decision literal to be (unit propagation over 1,024 inputs at a time, one bit each,
accepted only when every variable gets a value without conflict and every clause is satisfied, so
the CNF has exactly one model with those inputs; anything else goes to a SAT solver, solving with
the decision literal and with its negation). A mismatch is an input where that is not the numpy
reference answer (``bound_answers``). Prints one markdown table row per bound.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from bnnembed.artifact import load_artifact
from bnnembed.render.cnf import CNF_JSON, cnf_path, encode_bound, read_dimacs
from bnnembed.learn.data import load_data
from bnnembed.model.intmodel import bound_answers

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from _cnf_checker import clause_matrix, cnf_decisions  # noqa: E402


def random_codes(encoder, m: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    levels = np.stack([rng.integers(0, k + 1, m) for k in np.diff(encoder.offsets)], 1)
    return encoder.bits_from_levels(levels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact")
    ap.add_argument("source", help="data source of the real rows (e.g. digits, mnist:DIR)")
    ap.add_argument("--n", type=int, default=10_000, help="inputs per bound")
    ap.add_argument("--real", type=int, default=None, help="real rows among them (default: all, up to N)")
    ap.add_argument("--batch", type=int, default=1024, help="inputs propagated together")
    ap.add_argument("--out", help="also append the table to this markdown file")
    args = ap.parse_args()

    art = load_artifact(args.artifact)
    with open(cnf_path(args.artifact, CNF_JSON)) as fh:
        meta = json.load(fh)
    ds = load_data(args.source)
    k = min(ds.n_rows, args.n) if args.real is None else min(args.real, ds.n_rows, args.n)
    real = art.encoder.encode(ds.X[:k])
    bits = np.concatenate([real, random_codes(art.encoder, args.n - k, 0)])
    # the sweep order is learnt from 64 real rows and 64 random codes (only speed depends on it)
    sample = np.concatenate([real[:64], random_codes(art.encoder, 64, 1)])
    name = os.path.basename(os.path.normpath(args.artifact))
    lines = [
        f"`{name}` ({meta['encoding']} encoding), {len(bits)} inputs per bound "
        f"({k} real rows of `{ds.name}`, {len(bits) - k} random valid thermometer codes):",
        "",
        "| bound | shape | variables | clauses | mismatches | forced yes / no | no model / not forced "
        "| by solver | read s | check s | ms / input |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for side, net in (("upper", art.upper), ("lower", art.lower)):
        t0 = time.perf_counter()
        n_vars, n_clauses, flat = read_dimacs(cnf_path(args.artifact, meta["bounds"][side]["file"]))
        mat = clause_matrix(flat)
        del flat
        cnf = encode_bound(net, art.encoder, meta["encoding"], count_only=True)  # variable meaning
        if (n_vars, cnf.decision) != (cnf.n_vars, meta["bounds"][side]["decision"]):
            raise SystemExit(f"{side}: the DIMACS file does not match the artifact's bound; rerun 'bnnembed cnf'")
        t1 = time.perf_counter()
        codes, _, n_solved = cnf_decisions(cnf, bits, mat, batch=args.batch, sample=sample)
        t2 = time.perf_counter()
        ref = bound_answers(net, bits)
        bad = int(np.sum(codes != ref.astype(np.int8)))
        c = {v: int(np.sum(codes == v)) for v in (1, 0, -1, 2)}
        lines.append(
            f"| {side} | {'-'.join(map(str, net.shape))} | {n_vars:,} | {n_clauses:,} | {bad} | "
            f"{c[1]} / {c[0]} | {c[-1]} / {c[2]} | {n_solved} | {t1 - t0:.1f} | {t2 - t1:.1f} | "
            f"{(t2 - t1) / len(bits) * 1e3:.2f} |")
        print(lines[-1], flush=True)
        del mat
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
