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
    add_domain_args(p)
    p.add_argument("--search", choices=("quickxplain", "deletion"), default="quickxplain",
                   help="abductive search: QuickXplain over a sensitivity order (default) or one feature at a "
                        "time; both prove every kept feature necessary")
    p.add_argument("--label", default="label", metavar="COL", help="label column of a CSV, if any (default: label)")
    p.add_argument("--positive", default=None, metavar="V[,V...]", help=ROWS_POSITIVE_HELP)
    p.add_argument("--png", type=out_file, metavar="FILE", help="draw the input with the explanation's pixels marked (image data)")
    p.add_argument("--json", action="store_true", help="print the explanation as JSON")
    p.set_defaults(func=run_explain)

    p = sub.add_parser("verify", help="is a decision robust to moving every feature by at most R thermometer steps (or DELTA)?")
    p.add_argument("artifact", metavar="DIR")
    add_rows_args(p)
    p.add_argument("--row", type=count(0), required=True)
    add_domain_args(p, verify=True)
    p.add_argument("--scope", choices=[s.value for s in Scope], default=Scope.DECISION.value)
    p.add_argument("--backend", choices=[b.value for b in Backend], default=Backend.CARD.value)
    p.add_argument("--budget", type=count(0), default=2000, metavar="N",
                   help="solver conflicts per SAT query (default 2000; 0 = unlimited). A query that runs out "
                        "keeps its feature: the explanation stays sufficient but is flagged not proven minimal")
    p.add_argument("--seconds", type=float, default=30.0, metavar="S",
                   help="time budget of the query (default 30; 0 = none); out of time the verdict is UNDECIDED")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_verify)


def add_domain_args(p, verify: bool = False) -> None:
    """--delta / --radius: the domain of an explanation or robustness verdict (docs/cnf.md)."""
    what = "every feature moves" if verify else "the features an explanation leaves free move"
    p.add_argument("--delta", type=float, metavar="D",
                   help=f"domain: {what} at most D raw units from the input" + ("" if verify else " (default: the whole data box)"))
    p.add_argument("--radius", type=count(0), metavar="R",
                   help=f"domain: {what} at most R thermometer steps from the input")


def domain_text(d: dict) -> str:
    if d["kind"] == "delta":
        return f"within delta {d['delta']:g} of the input"
    if d["kind"] == "radius":
        return f"within {d['radius']} thermometer steps of the input"
    return "over the whole data box"


def _refuse_deferred(case, where: str) -> None:
    """One line for a row the bounds left to the DNN, and what can be asked instead."""
    from ..model.intmodel import Decision

    if case.decision is Decision.UNKNOWN:
        states = "both bounds answer" if case.upper and case.lower else "neither bound answers"
        raise BnnError(f"{where} was left to the DNN by the bounds (decision unknown: {states}), so there is no bound "
                       "decision to explain; '--scope decision' explains why the device deferred, and "
                       "'bnnembed verify ... --delta D' whether it still defers nearby")


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
                        backend=args.backend, budget=args.budget, seconds=args.seconds or None,
                        delta=args.delta, radius=args.radius, strategy=args.search)
        print(f"wrote {n} explanations to {args.out}")
        return 0
    from ..logic.explain.domain import check_flags

    check_flags(art.encoder, args.delta, args.radius)
    with Explainer(art, backend=args.backend, budget=args.budget, seconds=args.seconds or None,
                   strategy=args.search) as ex:
        if args.id:
            case = ex.case_from_id(args.id)
        else:
            case = ex.case(_row(load_rows(args, art), args.row))
        if args.scope == "bound":
            _refuse_deferred(case, f"decision {args.id}" if args.id else f"row {args.row}")
        result = ex.explain(case, args.kind, args.scope, delta=args.delta, radius=args.radius)
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
    from ..logic.explain.domain import check_flags

    check_flags(art.encoder, args.delta, args.radius)
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
    dom = domain_text(r.get("domain", {"kind": "box"}))
    lines = [f"decision {r['decision']} (id {r['decision_id']}); {r['kind']} explanation of: {r['explains']}, {dom}"]
    if r["kind"] == "abductive":
        if not r["features"]:
            lines.append(f"  robust: it holds for every input {dom} (no feature needs to be kept)")
        else:
            lines.append(f"  sufficient: these {r['size']} of {r['n_features']} features "
                         f"({'subset-minimal' if r['minimal'] else 'not proven minimal: ' + str(len(r['undecided'])) + ' undecided'}):")
            lines += [f"    {f['condition']}" for f in r["features"]]
    else:
        if r["witness"] is None:
            lines.append(f"  nothing can change it: it holds for every input {dom}")
        else:
            lines.append(f"  changing these {r['size']} features can change it "
                         f"({'subset-minimal' if r['minimal'] else 'not proven minimal'}):")
            lines += [f"    {f['condition']}  ->  {f['to']}" for f in r["features"]]
            lines.append(f"  witness (replayed through numpy): decision {r['witness']['decision']}")
    q = f"{r['queries']} questions, " if r.get("queries") is not None else ""
    lines.append(f"  [{r['seconds'] * 1000:.1f} ms, {q}{r['sat_calls']} SAT calls{', cached' if r['cached'] else ''}]")
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
