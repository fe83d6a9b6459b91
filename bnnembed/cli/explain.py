"""``bnnembed explain`` / ``verify`` / ``cnf``: explanations and robustness from the exact CNF."""

from __future__ import annotations

import json
import sys

import numpy as np

from ..errors import BnnError
from .args import count, out_file
from .build import ROWS_POSITIVE_HELP, add_rows_args, load_rows


def register(sub) -> None:
    from ..render.cnf import CardEncoding, DEFAULT_ENCODING
    from ..logic.explain import Backend, Kind, Scope

    p = sub.add_parser("cnf", help="export the bounds' exact CNF (DIMACS + variable map) into the artifact's workspace")
    p.add_argument("artifact", metavar="DIR")
    p.add_argument("--encoding", choices=[e.value for e in CardEncoding], default=DEFAULT_ENCODING.value,
                   help="cardinality encoding of the neurons (default %(default)s; see docs/cnf.md)")
    p.set_defaults(func=run_cnf)

    p = sub.add_parser("explain", help="explain a decision: sufficient features (abductive) or what would change it (contrastive)")
    p.add_argument("artifact", metavar="DIR")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", metavar="SRC", help="data source of the row(s) (same sources as build; labels optional)")
    src.add_argument("--id", metavar="ID", help="a decision id met before (explain/host logs)")
    p.add_argument("--row", type=count(0), help="row index in --data")
    p.add_argument("--all", action="store_true", help="explain every row of --data (batch, JSON lines to --out)")
    p.add_argument("--out", type=out_file, metavar="FILE.jsonl", help="output of --all")
    p.add_argument("--workers", type=count(1), default=1, help="worker processes for --all (default 1)")
    p.add_argument("--kind", choices=[k.value for k in Kind], default=Kind.ABDUCTIVE.value)
    p.add_argument("--scope", choices=[s.value for s in Scope], default=Scope.BOUND.value,
                   help="bound: the answering bound's answer; decision: the whole device decision")
    p.add_argument("--backend", choices=[b.value for b in Backend], default=Backend.CARD.value)
    p.add_argument("--budget", type=count(0), default=2000, metavar="N",
                   help="solver conflicts per SAT query (default 2000; 0 = unlimited). A query that runs out "
                        "keeps its feature: the explanation stays sufficient but is flagged not proven minimal")
    p.add_argument("--seconds", type=float, default=30.0, metavar="S",
                   help="time budget of one abductive explanation (default 30; 0 = none). Features not "
                        "tested in time are kept: the explanation stays sufficient, flagged not proven minimal")
    p.add_argument("--label", default="label", metavar="COL", help="label column of a CSV, if any (default: label)")
    p.add_argument("--positive", default=None, metavar="V[,V...]", help=ROWS_POSITIVE_HELP)
    p.add_argument("--png", type=out_file, metavar="FILE", help="draw the input with the explanation's pixels marked (image data)")
    p.add_argument("--json", action="store_true", help="print the explanation as JSON")
    p.set_defaults(func=run_explain)

    p = sub.add_parser("verify", help="is a decision robust to moving every feature by at most R thermometer steps (or DELTA)?")
    p.add_argument("artifact", metavar="DIR")
    add_rows_args(p)
    p.add_argument("--row", type=count(0), required=True)
    p.add_argument("--radius", type=count(0), help="thermometer steps per feature")
    p.add_argument("--delta", type=float, help="absolute amount per feature (raw units)")
    p.add_argument("--scope", choices=[s.value for s in Scope], default=Scope.DECISION.value)
    p.add_argument("--backend", choices=[b.value for b in Backend], default=Backend.CARD.value)
    p.add_argument("--budget", type=count(0), default=2000, metavar="N",
                   help="solver conflicts per SAT query (default 2000; 0 = unlimited). A query that runs out "
                        "keeps its feature: the explanation stays sufficient but is flagged not proven minimal")
    p.add_argument("--seconds", type=float, default=30.0, metavar="S",
                   help="time budget of the query (default 30; 0 = none); out of time the verdict is UNDECIDED")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_verify)


def run_cnf(args) -> int:
    from ..render.cnf import write_cnf

    from ..render.cnf import cnf_path

    meta = write_cnf(args.artifact, args.encoding)
    for name, b in meta["bounds"].items():
        print(f"{name}: {cnf_path(args.artifact, b['file'])}  {b['n_vars']} variables, {b['n_clauses']} clauses "
              f"({b['n_clauses'] / max(b['n_synapses'], 1):.1f} per synapse), decision literal {b['decision']}")
    return 0


def _row(ds, n: int | None) -> np.ndarray:
    if n is None:
        raise BnnError("give --row N (or --all) with --data")
    if not 0 <= n < ds.n_rows:
        raise BnnError(f"--row {n} is out of range: the data has {ds.n_rows} rows (0..{ds.n_rows - 1})")
    return ds.X[n]


def run_explain(args) -> int:
    from ..artifact import load_artifact
    from ..logic.explain import Explainer

    art = load_artifact(args.artifact)
    if args.all:
        if not args.data or not args.out:
            raise BnnError("--all needs --data SRC and --out FILE.jsonl")
        from ..logic.explain.batch import explain_all

        ds = load_rows(args, art)
        n = explain_all(art.path, ds.X, args.out, kind=args.kind, scope=args.scope, workers=args.workers,
                        backend=args.backend, budget=args.budget, seconds=args.seconds or None)
        print(f"wrote {n} explanations to {args.out}")
        return 0
    with Explainer(art, backend=args.backend, budget=args.budget, seconds=args.seconds or None) as ex:
        if args.id:
            case = ex.case_from_id(args.id)
        else:
            case = ex.case(_row(load_rows(args, art), args.row))
        result = ex.explain(case, args.kind, args.scope)
    if args.png:
        _draw_png(art, case, result, args.png)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        print(render_text(result))
    return 0


def run_verify(args) -> int:
    from ..artifact import load_artifact
    from ..logic.explain import Explainer

    art = load_artifact(args.artifact)
    if args.radius is not None and args.radius < 0:
        raise BnnError("--radius must be >= 0")
    with Explainer(art, backend=args.backend, budget=args.budget, seconds=args.seconds or None) as ex:
        case = ex.case(_row(load_rows(args, art), args.row))
        result = ex.verify(case, radius=args.radius, delta=args.delta, scope=args.scope)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    budget = f"radius {args.radius} steps" if args.radius is not None else f"delta {args.delta}"
    verdict = {True: "ROBUST", False: "NOT ROBUST", None: "UNDECIDED (solver budget exhausted)"}[result["robust"]]
    print(f"decision {result['decision']} (id {result['decision_id']}), {budget}: {verdict}")
    print(f"  checked: {result['explains']}  [{result['seconds'] * 1000:.1f} ms{', cached' if result['cached'] else ''}]")
    ce = result["counterexample"]
    if ce:
        print(f"  counterexample (replayed through numpy): decision {ce['decision']}; changes:")
        for c in ce["changes"]:
            print(f"    {c['feature']}: {c['from']:.6g} -> {c['to']:.6g}" if c["from"] is not None else f"    {c['feature']} -> {c['to']:.6g}")
    return 0


def render_text(r: dict) -> str:
    lines = [f"decision {r['decision']} (id {r['decision_id']}); {r['kind']} explanation of: {r['explains']}"]
    if r["kind"] == "abductive":
        lines.append(f"  sufficient: these {r['size']} of {r['n_features']} features "
                     f"({'subset-minimal' if r['minimal'] else 'not proven minimal: ' + str(len(r['undecided'])) + ' undecided'}):")
        lines += [f"    {f['condition']}" for f in r["features"]]
    else:
        if r["witness"] is None:
            lines.append("  nothing can change it: it holds on the whole input domain")
        else:
            lines.append(f"  changing these {r['size']} features can change it "
                         f"({'subset-minimal' if r['minimal'] else 'not proven minimal'}):")
            lines += [f"    {f['condition']}  ->  {f['to']}" for f in r["features"]]
            lines.append(f"  witness (replayed through numpy): decision {r['witness']['decision']}")
    lines.append(f"  [{r['seconds'] * 1000:.1f} ms, {r['sat_calls']} SAT calls{', cached' if r['cached'] else ''}]")
    return "\n".join(lines)


def _draw_png(art, case, result, path: str) -> None:
    from ..plots import plot_explanation

    shape = (art.manifest.get("dataset") or {}).get("image_shape")
    if not shape:
        raise BnnError("--png needs image data (the artifact's data has no image shape)")
    h, w = shape
    x = case.x if case.x is not None else np.zeros(h * w)
    plot_explanation(x, shape, [f["column"] for f in result["features"]],
                     f"{result['decision']}: {result['kind']} ({result['size']} pixels)", path)
