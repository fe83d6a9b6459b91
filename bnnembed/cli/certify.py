"""`bnnembed certify`: prove the bounds' explanations (and optionally the bounds) sound for the DNN."""

from __future__ import annotations

import json
import sys

from .args import count, out_dir, out_file, positive_float
from .build import add_rows_args, load_rows


def register(sub) -> None:
    p = sub.add_parser(
        "certify", help="prove that the bounds' explanations (and the bounds) agree with the DNN",
        description="For each decided row, compute the answering bound's abductive explanation and try to "
        "prove with a MILP (HiGHS) that the DNN gives the same decision on every input of the explanation's "
        "box (certified / refuted with a replayed DNN counterexample / timeout / spurious), and whether the DNN "
        "decides the input's whole cell one way (if not, no explanation at this encoding can be certified). "
        "With --domain, also prove each bound sound on the whole data domain, raising its threshold until it "
        "is (and, with --retrain-rounds, rebuilding with the counterexamples). See docs/certification.md.",
    )
    p.add_argument("artifact", metavar="DIR")
    add_rows_args(p)
    p.add_argument("--rows", default=None, metavar="SPEC",
                   help="rows to certify, e.g. 0-99,120 (default: the artifact's test split, else all rows)")
    p.add_argument("--limit", type=count(1), default=200, metavar="N", help="stop after N decided rows (default 200)")
    p.add_argument("--time-limit", type=positive_float, default=60.0, metavar="S",
                   help="seconds per DNN query (default 60)")
    p.add_argument("--margin", type=positive_float, default=1e-3,
                   help="DNN score margin required on top of the float32 error bound (default 1e-3)")
    p.add_argument("--no-extend", action="store_true",
                   help="do not pin extra features when an explanation is refuted")
    p.add_argument("--extend-time", type=positive_float, default=60.0, metavar="S",
                   help="seconds per row for pinning extra features (default 60)")
    p.add_argument("--explain-seconds", type=positive_float, default=10.0, metavar="S",
                   help="time budget of each abductive explanation (default 10; the explanation stays "
                        "sufficient, only its minimality may be unproven)")
    p.add_argument("--delta", type=float, metavar="D",
                   help="explanations' domain: the features an explanation leaves free move at most D raw units "
                        "from the input, for the bound and for the DNN's box (default: the whole data box)")
    p.add_argument("--radius", type=count(0), metavar="R",
                   help="explanations' domain: free features move at most R thermometer steps from the input")
    p.add_argument("--pin", choices=("value", "cell"), default="value",
                   help="how the DNN is asked about an explanation: value (default): its features at the input's "
                        "exact values, the others free in the domain; cell: its features anywhere in the input's "
                        "thermometer cell (the bound's own statement; rarely holds for image DNNs)")
    p.add_argument("--both-domains", action="store_true",
                   help="with --delta or --radius: also certify the same rows over the whole data box and "
                        "report both")
    p.add_argument("--range", action="append", default=[], metavar="NAME=LO:HI",
                   help="override a feature's domain (repeatable; *=LO:HI for every feature)")
    p.add_argument("--domain", action="store_true", help="also run the whole-domain soundness query per bound")
    p.add_argument("--domain-engine", choices=("cells", "milp"), default="cells",
                   help="cells: branch and bound over the bound's level boxes, the DNN verified per box "
                        "(default); milp: one MILP of bound and DNN together")
    p.add_argument("--domain-time", type=positive_float, default=300.0, metavar="S",
                   help="seconds per bound for the cells engine, per MILP round for the milp engine (default 300)")
    p.add_argument("--domain-nodes", type=count(1), default=200_000, metavar="N",
                   help="level boxes the cells engine may visit per bound (default 200000)")
    p.add_argument("--domain-rounds", type=count(1), default=4, metavar="N",
                   help="repair rounds of the milp engine (default 4; the cells engine raises tau as often as "
                        "its budget allows)")
    p.add_argument("--retrain-rounds", type=count(0), default=0, metavar="N",
                   help="with --domain: up to N rounds of rebuilding the artifact with the counterexamples as "
                        "hard negatives, each re-certified (needs the labelled data it was built from)")
    p.add_argument("--retrain-out", default=None, type=out_dir, metavar="DIR",
                   help="where the rebuilt artifacts go (DIR/round_1, ...; default: DIR-retrain next to the artifact)")
    p.add_argument("--no-explanations", action="store_true", help="skip the explanations (with --domain)")
    p.add_argument("--out", default=None, type=out_file, metavar="FILE.jsonl", help="one JSON object per decided row")
    p.add_argument("--png-dir", default=None, type=out_dir, metavar="DIR",
                   help="image data: one picture per decided row, the explanation and (if refuted) the DNN's "
                        "counterexample with the pixels it changed")
    p.add_argument("--no-metrics", action="store_true", help="do not record the totals in metrics.json")
    p.add_argument("--json", action="store_true", help="print the totals as one JSON object")
    p.set_defaults(func=run_certify)


def run_certify(args) -> int:
    from ..artifact import load_artifact
    from ..logic.certify.dnn_milp import VerifyConfig
    from ..logic.certify.domain import DomainConfig
    from ..logic.certify.explanations import CertifyConfig, certify_rows, summarize
    from ..logic.certify.pipeline import default_rows, domain_box, parse_rows, run_domain
    from ..logic.certify.report import update_metrics_certification
    from ..errors import BnnError

    if args.retrain_rounds and not args.domain:
        raise BnnError("--retrain-rounds needs --domain")
    if args.retrain_rounds < 0:
        raise BnnError("--retrain-rounds must be >= 0")
    art = load_artifact(args.artifact)
    from ..logic.explain.domain import check_flags

    check_flags(art.encoder, args.delta, args.radius)
    ds = load_rows(args, art)
    art.certify_onnx()  # before any work: a DNN certify cannot read is refused in one line
    lo, hi, source = domain_box(art, ds, args.range)
    totals: dict = {"domain_source": source}
    record: dict = {}
    if not args.no_explanations:
        rows = parse_rows(args.rows, ds.n_rows) if args.rows else default_rows(art, ds)
        cfg = CertifyConfig(VerifyConfig(margin=args.margin, time_limit=args.time_limit), extend=not args.no_extend,
                            extend_time=args.extend_time, pin=args.pin)
        from ..logic.explain import Explainer

        shape = (art.manifest.get("dataset") or {}).get("image_shape")
        if args.png_dir and not shape:
            raise BnnError("--png-dir needs image data (the artifact's data has no image shape)")
        if args.both_domains and args.delta is None and args.radius is None:
            raise BnnError("--both-domains needs --delta D or --radius R (the whole box is always one of the two)")
        # (delta, radius) per domain asked: the one of the flags first, then the whole box
        domains = [(args.delta, args.radius)] + ([(None, None)] if args.both_domains else [])
        out_fh = open(args.out, "w") if args.out else None
        summaries = []
        try:
            for i, (delta, radius) in enumerate(domains):
                progress = _progress(len(rows), args.json, desc="certify" if i == 0 else "certify (box)")

                def write_row(case, first=(i == 0)) -> None:  # one line per row as soon as it is done
                    rec = case.to_dict()
                    if out_fh is not None:
                        out_fh.write(json.dumps(rec) + "\n")
                        out_fh.flush()
                    if args.png_dir and first:
                        import os

                        from ..plots import plot_certificate

                        plot_certificate(ds.X[case.row], shape, [f["column"] for f in rec["features"]], rec,
                                         os.path.join(args.png_dir, f"row{case.row}.png"))

                try:
                    with Explainer(art, seconds=args.explain_seconds) as ex:
                        results = certify_rows(art, ds.X, rows, lo, hi, cfg, explainer=ex, progress=progress,
                                               max_decided=args.limit, on_result=write_row, delta=delta,
                                               radius=radius)
                finally:
                    if progress is not None:
                        progress.close()
                summary = summarize(results, min(len(rows), _looked_at(results, rows, args.limit)))
                summary.update(time_limit=args.time_limit, margin=args.margin, explain_seconds=args.explain_seconds,
                               extend_time=None if args.no_extend else args.extend_time, pin=args.pin,
                               explanation_domain=({"kind": "delta", "delta": delta} if delta is not None else
                                                   {"kind": "radius", "radius": radius} if radius is not None
                                                   else {"kind": "box"}))
                summaries.append(summary)
        finally:
            if out_fh is not None:
                out_fh.close()
        totals.update(summaries[0])
        record["explanations"] = summaries[0]
        if len(summaries) > 1:
            totals["whole_box"] = summaries[1]
            record["explanations_whole_box"] = summaries[1]
    if args.domain:
        from ..logic.certify.cell_search import CellSearchConfig

        total = args.domain_time if args.domain_engine == "cells" else args.domain_time * args.domain_rounds
        dcfg = DomainConfig(margin=args.margin, round_time=args.domain_time, max_rounds=args.domain_rounds,
                            total_time=total)
        bar = _progress(None, args.json, desc="domain", unit="box")
        tick = None if bar is None else (lambda name, n, s, tau: (bar.set_postfix_str(f"{name} tau={tau} open={s}"),
                                                                   bar.update(n - bar.n)))
        try:
            found: list = []
            dom = run_domain(art, ds, lo, hi, dcfg, args.domain_engine,
                             CellSearchConfig(node_budget=args.domain_nodes), progress=tick, collect=found)
        finally:
            if bar is not None:
                bar.close()
        totals["domain"] = dom
        record["domain"] = {k: {kk: vv for kk, vv in v.items() if kk != "rounds"} for k, v in dom.items()}
    if args.retrain_rounds:
        from ..logic.certify.repair import retrain_repair
        if ds.y is None:
            raise BnnError(f"--retrain-rounds rebuilds the artifact, which needs labelled rows; {ds.name} has "
                           f"no label column '{args.label}'")
        labelled = ds
        out_dir = args.retrain_out or art.path.rstrip("/") + "-retrain"

        def say(rec) -> None:  # progress on a terminal; the rounds are in the totals anyway
            if not args.json and sys.stderr.isatty():
                print(_format_retrain_round(rec), file=sys.stderr)

        totals["retrain"] = retrain_repair(art, labelled, lo, hi, dcfg, args.retrain_rounds, out_dir,
                                           args.domain_engine, CellSearchConfig(node_budget=args.domain_nodes),
                                           log=say, first=(dom, found))
    if not args.no_metrics and record:
        record["domain_source"] = source
        update_metrics_certification(art.path, record)
    if args.json:
        print(json.dumps(totals, indent=2))
    else:
        print(format_totals(totals))
    return 0


def _looked_at(results, rows, limit) -> int:
    """Rows examined: everything up to the last decided row used (all rows when under the limit)."""
    if len(results) < limit:
        return len(rows)
    last = results[-1].row
    idx = [int(r) for r in rows]
    return idx.index(last) + 1


def _progress(total: int | None, quiet: bool, desc: str = "certify", unit: str = "row"):
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr)


def _format_retrain_round(rec: dict) -> str:
    parts = []
    for name, b in rec["bounds"].items():
        verdict = f"sound from tau={b['tau_certified']}" if b["certified"] else "not certified"
        cov = b["coverage_after"] if b["certified"] else b.get("coverage_at_tau_reached")
        parts.append(f"{name} {verdict} (tau {b['tau_before']}, coverage {b['coverage_before']:.1%} -> "
                     f"{'-' if cov is None else f'{cov:.1%}'})")
    cov = rec.get("coverage")
    return (f"retrain round {rec['round']} ({rec['artifact']}, pair coverage "
            f"{'-' if cov is None else f'{cov:.1%}'}): " + "; ".join(parts)
            + f"; {rec['counterexamples']} counterexamples")


def _domain_words(dom: dict | None) -> str:
    dom = dom or {"kind": "box"}
    if dom.get("kind") == "delta":
        return f"the other features within {dom['delta']:g} raw units of the input"
    if dom.get("kind") == "radius":
        return f"the other features within {dom['radius']} thermometer steps of the input"
    return "the other features anywhere in the data box"


def _format_explanations(t: dict, source: str) -> list[str]:
    d = t["decided"] or 1
    pin = t.get("pin") or "value"
    held = ("pinned at the input's exact values" if pin == "value" else "pinned to the input's thermometer cells")
    lines = [f"{t['rows']} rows, {t['decided']} decided; explanations of the bounds vs the DNN "
             f"(domain: {source}; features {held}, {_domain_words(t.get('explanation_domain'))}):"]
    for k in ("certified", "refuted", "timeout", "spurious"):
        lines.append(f"  {k:<10} {t[k]:>5}  {t[k] / d:6.1%}")
    if "cell_certified" in t:
        lines.append(f"  ceiling: the DNN decides the input's whole cell one way on {t['cell_certified']} "
                     f"({t['cell_certified'] / d:.1%}); on {t['cell_refuted']} it does not, and no explanation at "
                     f"this encoding can be certified for them")
    lines.append(f"  certified after pinning more features: {t['certified_after_extension']} "
                 f"({t['certified_after_extension_rate']:.1%})")
    if t.get("dnn_disagrees_on_input"):
        lines.append(f"  on {t['dnn_disagrees_on_input']} row(s) the DNN itself decides otherwise (a disagreement of "
                     f"the bounds): no explanation can hold there, the input is the counterexample")
    if t.get("median_certified_size") is not None:
        lines.append(f"  size of the certified explanations (after pinning more): median "
                     f"{t['median_certified_size']:g}, p95 {t['p95_certified_size']:g} of {t['n_features']} features; "
                     f"after extension {t['refuted_after_extension']} refuted, {t['timeout_after_extension']} "
                     f"undecided")
    if t.get("median_counterexample_linf") is not None:
        lines.append(f"  refutations: median L-inf distance of the counterexample to the input "
                     f"{t['median_counterexample_linf']:.4g} raw units (replayed through the DNN runtime)")
    med = t["median_certificate_seconds"]
    lines.append(f"  median time per certificate: {'-' if med is None else f'{med:.3f} s'}, "
                 f"median explanation size {t['median_explanation_size']:g} features")
    if t.get("median_row_seconds") is not None:
        lines.append(f"  time per row (explanation, DNN queries, extension): median {t['median_row_seconds']:.3f} s, "
                     f"p95 {t['p95_row_seconds']:.3f} s")
    return lines


def format_totals(t: dict) -> str:
    lines = []
    if "decided" in t:
        lines += _format_explanations(t, t["domain_source"])
    if "whole_box" in t:
        lines.append("the same rows over the whole data box:")
        lines += ["  " + ln for ln in _format_explanations(t["whole_box"], t["domain_source"])]
    for name, r in (t.get("domain") or {}).items():
        cov = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
        verdict = ("sound as calibrated" if r["sound_as_is"] else
                   f"sound from tau={r['tau_certified']}" if r["certified"] else "not certified")
        lines.append(f"{name} bound on the whole domain: {verdict} (tau {r['tau_before']}), "
                     f"{r['repair_rounds']} repair round(s), {r['seconds']:.1f} s, coverage "
                     f"{cov(r['coverage_before'])} -> {cov(r['coverage_after'])}")
        srch = r.get("search") or {}
        if not r["certified"] and "tau_reached" in srch:
            lines.append(f"  out of budget after {srch['nodes']} boxes ({srch['open_boxes']} open): a sound "
                         f"tau is at least {srch['tau_reached']}, which keeps coverage "
                         f"{cov(r.get('coverage_at_tau_reached'))} at most")
        if r.get("counterexample"):
            c = r["counterexample"]
            lines.append(f"  last counterexample: bound score {c['score']}, DNN says {c['dnn_says']} "
                         f"(output {', '.join(f'{v:.4g}' for v in c['dnn_output'])})")
    for rec in (t.get("retrain") or {}).get("rounds", []):
        lines.append(_format_retrain_round(rec))
    return "\n".join(lines)
