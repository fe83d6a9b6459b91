"""Certification figures of built artifacts, side by side.

    python bench/certify.py --case breast_cancer=DIR --case digits=DIR --case mnist:PATH=DIR \
        [--limit 200] [--time-limit 60] [--explain-seconds 10] [--domain --domain-engine cells --domain-time 300]

For each artifact: certified-explanation rate on up to --limit decided test inputs (certified,
refuted, timeout, spurious, certified after pinning more features), the median time per
certificate and per explanation, and the ceiling (rows whose whole cell the DNN decides one way);
with --domain, the whole-domain verdict of both bounds (time,
repair rounds, coverage before and after on the test split). Build the artifacts first with
``bnnembed build --data SRC --out DIR``.
"""

from __future__ import annotations

import argparse
import json
import time

from bnnembed.artifact import load_artifact
from bnnembed.logic.certify.dnn_milp import VerifyConfig
from bnnembed.logic.certify.domain import DomainConfig
from bnnembed.logic.certify.explanations import CertifyConfig, certify_rows, summarize
from bnnembed.logic.certify.pipeline import default_rows, domain_box, run_domain
from bnnembed.learn.data import load_data
from bnnembed.logic.explain import Explainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", required=True, metavar="SRC=DIR")
    ap.add_argument("--positive", default=None)
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--no-extend", action="store_true")
    ap.add_argument("--extend-time", type=float, default=60.0)
    ap.add_argument("--domain", action="store_true")
    ap.add_argument("--domain-engine", choices=("cells", "milp"), default="cells")
    ap.add_argument("--domain-time", type=float, default=300.0, help="per bound (cells), per round (milp)")
    ap.add_argument("--explain-seconds", type=float, default=10.0)
    ap.add_argument("--domain-rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows_out = []
    for case in args.case:
        src, path = case.rsplit("=", 1)
        art = load_artifact(path)
        ds = load_data(src, positive=args.positive, require_labels=False)
        lo, hi, _ = domain_box(art, ds)
        t0 = time.perf_counter()
        with Explainer(art, seconds=args.explain_seconds) as ex:
            res = certify_rows(art, ds.X, default_rows(art, ds), lo, hi,
                               CertifyConfig(VerifyConfig(time_limit=args.time_limit), extend=not args.no_extend,
                                             extend_time=args.extend_time),
                               explainer=ex, max_decided=args.limit)
        s = summarize(res, len(default_rows(art, ds)))
        s["wall_seconds"] = round(time.perf_counter() - t0, 1)
        rec = {"data": src, "artifact": path, "explanations": s}
        if args.domain:
            total = args.domain_time * (args.domain_rounds if args.domain_engine == "milp" else 1)
            rec["domain"] = run_domain(art, ds, lo, hi, DomainConfig(
                round_time=args.domain_time, max_rounds=args.domain_rounds, total_time=total), args.domain_engine)
        rows_out.append(rec)
    if args.json:
        print(json.dumps(rows_out, indent=2))
        return
    print(f"{'data':<16}{'decided':>8}{'cert':>7}{'refut':>7}{'tmout':>7}{'spur':>6}{'cert%':>8}"
          f"{'+pin%':>8}{'ceil%':>7}{'med cert s':>11}{'max cert s':>11}{'med expl s':>11}{'|E|':>5}")
    for r in rows_out:
        s = r["explanations"]
        med = s["median_certificate_seconds"]
        mx = s["max_certificate_seconds"]
        print(f"{r['data']:<16}{s['decided']:>8}{s['certified']:>7}{s['refuted']:>7}{s['timeout']:>7}"
              f"{s['spurious']:>6}{s['certified_rate']:>8.1%}{s['certified_after_extension_rate']:>8.1%}"
              f"{s['cell_certified'] / max(s['decided'], 1):>7.1%}"
              f"{'-' if med is None else f'{med:.3f}':>11}{'-' if mx is None else f'{mx:.2f}':>11}"
              f"{s['median_explain_seconds']:>11.2f}{s['median_explanation_size']:>5.0f}")
    for r in rows_out:
        for name, d in (r.get("domain") or {}).items():
            cov = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
            verdict = ("sound as calibrated" if d["sound_as_is"] else
                       f"sound from tau={d['tau_certified']}" if d["certified"] else "not certified")
            print(f"{r['data']} {name}: {verdict} (tau {d['tau_before']}), {d['repair_rounds']} repair rounds, "
                  f"{d['seconds']:.1f} s, coverage {cov(d['coverage_before'])} -> {cov(d['coverage_after'])}")


if __name__ == "__main__":
    main()
