"""Certified explanations: is the bound's abductive explanation also an explanation of the DNN?

For a decided input ``x`` (YES: the upper bound answers; NO: the lower bound answers), the
abductive explanation ``E`` of the answering bound (:mod:`bnnembed.logic.explain`, scope ``bound``,
in a domain: the whole data box, ``--delta D`` or ``--radius R``) is a set of features such that the
bound answers on every input whose features in ``E`` sit in ``x``'s thermometer cells and whose
other features take levels of the domain. The DNN is asked one of two questions (``pin``):

- ``value`` (default): ``V_E`` = the inputs with every feature of ``E`` equal to ``x``'s exact value
  and every other feature in the domain: the data box (per feature min/max of the training rows,
  widened to contain ``x``), cut to ``[x - D, x + D]`` under ``--delta``, to the raw span of the
  domain's levels under ``--radius``. Certified means: *for every input that agrees with x on E and
  stays within the domain, the DNN decides as on x*. ``V_E`` lies inside the bound's region (the
  exact value is in its cell; the free values are at levels of the domain), so the bound answers
  there too; the bound's claim is the wider one (``E``'s features anywhere in their cells), the
  DNN's holds at the exact values only.
- ``cell``: ``R_E`` = ``E``'s features anywhere in their cells, the others in the domain: the bound's
  own statement. It contains ``x``'s whole cell, on which image DNNs usually change their mind
  (reported as the ceiling, ``cell``)::

    E      <- abductive explanation of the bound's answer on x
    status <- verify_box(DNN, V_E (or R_E), claim = the bound's answer)   # certified / refuted / timeout / spurious

A refutation is a counterexample replayed through the DNN runtime (onnxruntime), reported with
its distance to ``x``. The MILP uses closed boxes (``x_f <= t_L`` instead of ``< t_L`` for a cell):
a superset, so a certificate covers the region; a counterexample on such a face is moved to
``nextafter(t_L, -inf)`` before it is replayed (:func:`~.attack.to_float32_in_box`).

Extension (reported separately): when ``E`` is refuted, pin more features (at their exact values,
or cells) until the DNN is certified. Any superset of a sufficient set is still sufficient for the
bound, so the extended set ``E'`` explains both the bound and the DNN (it is no longer minimal)::

    E' <- E
    while status(E') is not certified and features remain and the budget lasts:
        c <- the counterexample (or the attack's best point)
        f <- the free feature contributing most to the DNN's slack drop at c (gradient x change)
        E' <- E' + {f}
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ...model.encoding import Thermometer
from .attack import _grad_slack
from .boxes import distance, explanation_box, pinned_box
from .claims import Sides
from .dnn_milp import BoxResult, Status, VerifyConfig, verify_box
from .plnet import PlNet


@dataclass(frozen=True)
class CertifyConfig:
    """Options of explanation certification."""

    verify: VerifyConfig = VerifyConfig()
    extend: bool = True
    extend_time: float = 60.0  # seconds for the whole extension of one explanation
    pin: str = "value"  # "value": pinned features at the input's exact values; "cell": in its thermometer cell

    def __post_init__(self) -> None:
        if self.pin not in PINS:
            raise ValueError(f"pin must be one of {PINS}, got {self.pin!r}")


#: how an explanation's features are held when the DNN is asked (see the module docstring)
PINS = ("value", "cell")


@dataclass
class CaseResult:
    """Certification of one decided input."""

    row: int
    claim: str  # the DNN decision the explanation must imply ("yes" / "no")
    explanation: dict  # the explainer's record (features with their intervals)
    result: BoxResult
    explain_seconds: float
    extended: dict | None = None
    dnn_agrees_on_input: bool = True
    cell_status: str | None = None  # the DNN on the input's whole cell (every feature pinned); pin "cell" only
    pin: str = "value"
    x: np.ndarray | None = None  # the input (float32 row as float64): values of the pinned features
    seconds: float = 0.0  # the whole row: explanation, DNN query and extension

    @property
    def status(self) -> str:
        return self.result.status

    @property
    def final_status(self) -> str:
        """The status after extension (the first status when there was none)."""
        return self.extended["status"] if self.extended is not None else self.status

    @property
    def final_size(self) -> int:
        return self.extended["size"] if self.extended is not None else len(self.explanation.get("features", []))

    def to_dict(self) -> dict:
        feats = []
        for f in self.explanation.get("features", []):
            e = {k: f.get(k) for k in ("feature", "column", "level", "lo", "hi", "condition")}
            if self.pin == "value" and self.x is not None:
                e["value"] = float(self.x[int(f["column"])])
            feats.append(e)
        d = {
            "row": self.row,
            "decision": self.claim,
            "pin": self.pin,
            "status": self.status,
            "method": self.result.method,
            "seconds": round(self.result.seconds, 4),
            "explain_seconds": round(self.explain_seconds, 4),
            "row_seconds": round(self.seconds, 4),
            "decision_id": self.explanation.get("decision_id"),
            "size": len(feats),
            "features": feats,
            "domain": self.explanation.get("domain", {"kind": "box"}),
            "dnn_agrees_on_input": self.dnn_agrees_on_input,
            "verification": self.result.to_dict(),
        }
        if self.result.counterexample is not None and self.x is not None:
            d["counterexample_distance"] = distance(self.result.counterexample, self.x)
        if self.extended is not None:
            d["extended"] = self.extended
        if self.cell_status is not None:
            d["cell"] = self.cell_status
        return d


def pinned_of(enc: Thermometer, explanation: dict) -> list[tuple[int, int]]:
    """(kept feature, level) pairs of an explainer record (features carry raw ``column``s)."""
    kept = {int(c): f for f, c in enumerate(enc.feature_index)}
    return [(kept[int(e["column"])], int(e["level"])) for e in explanation.get("features", [])]


def extend_until_certified(net: PlNet, dnn, enc: Thermometer, x: np.ndarray, levels: np.ndarray,
                           pinned: list[tuple[int, int]], first: BoxResult, lo, hi, cfg: CertifyConfig,
                           domain=None) -> dict:
    """Pin more features (at their exact values for ``cfg.pin == "value"``, at their levels for
    ``"cell"``) until the DNN is certified on the box (see the module docstring)."""
    t0 = time.perf_counter()
    sides = Sides.for_net(net.n_out, dnn.positive_columns if net.n_out > 1 else ())
    pinned = list(pinned)
    free = set(range(enc.n_kept)) - {f for f, _ in pinned}
    res = first
    added: list[int] = []
    queries = 0
    refuted_last = first if first.counterexample is not None else None
    refuted_added = 0  # how many of ``added`` were pinned when ``refuted_last`` was found
    while res.status != Status.CERTIFIED and free:
        if time.perf_counter() - t0 > cfg.extend_time:
            break
        c = res.counterexample
        if c is None:
            c = res.detail.get("candidate")
        if c is None:  # a timeout without a point: pin the free feature with the widest effect
            c = np.where(np.isin(np.arange(len(x)), enc.feature_index[list(free)]), np.asarray(hi), x)
        c = np.asarray(c, np.float64)
        _, g = _grad_slack(net, c[None, :], sides, res.claim)
        contrib = -g[0] * (c - x)  # how much each coordinate's change lowered the slack (1st order)
        width = np.asarray(hi, np.float64) - np.asarray(lo, np.float64) + 1e-12

        def weight(f: int) -> float:
            col = int(enc.feature_index[f])
            return abs(contrib[col]) + 1e-9 * abs(c[col] - x[col]) / width[col]

        f = max(sorted(free), key=weight)
        free.discard(f)
        pinned.append((f, int(levels[f])))
        added.append(f)
        blo, bhi, hopen = pinned_box(enc, cfg.pin, pinned, lo, hi, x, domain)
        left = cfg.extend_time - (time.perf_counter() - t0)
        if left < 0.5:
            break
        vcfg = VerifyConfig(**{**cfg.verify.__dict__, "time_limit": min(cfg.verify.time_limit, left)})
        res = verify_box(net, dnn, blo, bhi, res.claim, vcfg, hi_open=hopen, start=x)
        queries += 1
        if res.counterexample is not None:
            refuted_last, refuted_added = res, len(added)
    out = {
        "status": res.status,
        "added": [int(enc.feature_index[f]) for f in added],
        "size": len(pinned),
        "queries": queries,
        "seconds": round(time.perf_counter() - t0, 4),
    }
    if res.status != Status.CERTIFIED and refuted_last is not None:
        # the last counterexample met: it pins what the extension pinned before it was found
        out["counterexample"] = [float(v) for v in refuted_last.counterexample]
        out["counterexample_added"] = refuted_added  # it meets the explanation and added[:counterexample_added]
        out["counterexample_distance"] = distance(refuted_last.counterexample, x)
    return out


def certify_rows(art, X: np.ndarray, rows: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 cfg: CertifyConfig = CertifyConfig(), explainer=None, progress=None,
                 max_decided: int | None = None, on_result=None, delta: float | None = None,
                 radius: int | None = None) -> list[CaseResult]:
    """Explain every decided row of ``X[rows]`` (up to ``max_decided`` of them) with the bound's
    abductive explanation and try to certify it against the DNN; results are also stored in the
    artifact's explanation store and passed to ``on_result`` as they come (a long run cut short
    keeps what it did). With ``delta`` / ``radius`` the explanation and the DNN's box are both
    restricted to that domain around each input (the free features move only that far)."""
    from ..explain import Explainer
    from ...model.intmodel import Decision
    from .onnx_read import read_onnx

    net = read_onnx(art.certify_onnx())
    dnn = art.load_dnn()
    own = explainer is None
    ex = explainer or Explainer(art)
    out: list[CaseResult] = []
    try:
        for r in rows:
            if max_decided is not None and len(out) >= max_decided:
                break
            x = np.asarray(X[int(r)], dtype=np.float32)
            xd = x.astype(np.float64)
            case = ex.case(x=x)
            if case.decision is Decision.UNKNOWN:
                if progress is not None:
                    progress.update(1)
                continue
            claim = "yes" if case.decision is Decision.YES else "no"
            t0 = time.perf_counter()
            dom = ex.domain(case, delta, radius)
            expl = ex.explain(case, "abductive", "bound", delta=delta, radius=radius)
            t_expl = time.perf_counter() - t0 if not expl.get("cached") else float(expl.get("seconds", 0.0))
            t1 = time.perf_counter()
            pinned = pinned_of(art.encoder, expl)
            blo, bhi, hopen = pinned_box(art.encoder, cfg.pin, pinned, lo, hi, xd, dom)
            res = verify_box(net, dnn, blo, bhi, claim, cfg.verify, hi_open=hopen, start=x)
            cr = CaseResult(int(r), claim, expl, res, t_expl, pin=cfg.pin, x=xd)
            cr.dnn_agrees_on_input = bool(dnn.says_yes(x[None, :])[0]) == (claim == "yes")
            if cfg.pin == "cell":
                cr.cell_status = res.status if res.status == Status.CERTIFIED else _cell_status(
                    net, dnn, art.encoder, x, case.levels, lo, hi, res.claim, cfg.verify, dom)
            # where the DNN decides otherwise on x itself (one of the bounds' calibrated
            # disagreements) x is the counterexample of every extension: nothing to extend
            if cfg.extend and res.status != Status.CERTIFIED and cr.dnn_agrees_on_input:
                cr.extended = extend_until_certified(net, dnn, art.encoder, xd, case.levels,
                                                     pinned, res, lo, hi, cfg, dom)
            cr.seconds = t_expl + time.perf_counter() - t1
            if ex.store is not None:
                request = ex.request("certify", dom, kind="abductive", scope="bound", margin=cfg.verify.margin,
                                     data_box=_domain_key(lo, hi), pin=cfg.pin)
                ex.store.put(case.did, request, cr.to_dict(), res.seconds)
            out.append(cr)
            if on_result is not None:
                on_result(cr)
            if progress is not None:
                progress.update(1)
    finally:
        if own:
            ex.close()
    return out


def _cell_status(net: PlNet, dnn, enc: Thermometer, x: np.ndarray, levels: np.ndarray, lo, hi, claim: str,
                 vcfg: VerifyConfig, domain=None) -> str:
    """Does the DNN decide the input's whole cell (every kept feature at its level) the same way?
    If not, no explanation pinned at the cell can be certified for the input: a diagnostic of the
    encoding's resolution against the DNN's sensitivity."""
    pinned = [(f, int(levels[f])) for f in range(enc.n_kept)]
    blo, bhi, hopen = explanation_box(enc, pinned, lo, hi, x, domain)
    return verify_box(net, dnn, blo, bhi, claim, vcfg, hi_open=hopen, start=x).status


def _domain_key(lo: np.ndarray, hi: np.ndarray) -> str:
    import hashlib

    h = hashlib.sha256(np.asarray(lo, np.float64).tobytes() + np.asarray(hi, np.float64).tobytes())
    return h.hexdigest()[:16]


def _median(v) -> float | None:
    return float(np.median(v)) if len(v) else None


def _p95(v) -> float | None:
    return float(np.percentile(v, 95)) if len(v) else None


def summarize(results: list[CaseResult], n_rows: int) -> dict:
    """Totals: rows looked at, decided, and how many explanations were certified / refuted / ...,
    before and after extension, with sizes, times and counterexample distances."""
    st = [r.status for r in results]
    secs = [r.result.seconds for r in results]
    cert_secs = [r.result.seconds for r in results if r.status == Status.CERTIFIED]
    ext = [r for r in results if r.extended is not None]
    ext_cert = sum(1 for r in ext if r.extended["status"] == Status.CERTIFIED)
    final = [r.final_status for r in results]
    decided = len(results)
    rate = (lambda k: k / decided) if decided else (lambda k: 0.0)
    after = st.count(Status.CERTIFIED) + ext_cert
    cert_final_sizes = [r.final_size for r in results if r.final_status == Status.CERTIFIED]
    dists = [distance(r.result.counterexample, r.x)["linf"] for r in results
             if r.result.counterexample is not None and r.x is not None]
    row_secs = [r.seconds for r in results]
    d = {
        "rows": n_rows,
        "decided": decided,
        "pin": results[0].pin if results else None,
        "certified": st.count(Status.CERTIFIED),
        "refuted": st.count(Status.REFUTED),
        "timeout": st.count(Status.TIMEOUT),
        "spurious": st.count(Status.SPURIOUS),
        "certified_rate": rate(st.count(Status.CERTIFIED)),
        "certified_after_extension": after,
        "certified_after_extension_rate": rate(after),
        # after extension: what is left refuted (a replayed counterexample) or undecided
        "refuted_after_extension": final.count(Status.REFUTED),
        "timeout_after_extension": final.count(Status.TIMEOUT) + final.count(Status.SPURIOUS),
        "median_seconds": float(np.median(secs)) if secs else 0.0,
        "median_certificate_seconds": _median(cert_secs),
        "max_certificate_seconds": float(np.max(cert_secs)) if cert_secs else None,
        "median_explain_seconds": float(np.median([r.explain_seconds for r in results])) if results else 0.0,
        "median_row_seconds": _median(row_secs),
        "p95_row_seconds": _p95(row_secs),
        "median_explanation_size": float(np.median([len(r.explanation.get("features", [])) for r in results])) if results else 0.0,
        # the size of the certified explanations, extended or not (the DNN needs these many features)
        "median_certified_size": _median(cert_final_sizes),
        "p95_certified_size": _p95(cert_final_sizes),
        "n_features": int(results[0].explanation.get("n_features", 0)) if results else 0,
        "median_counterexample_linf": _median(dists),
        "dnn_disagrees_on_input": sum(1 for r in results if not r.dnn_agrees_on_input),
        "methods": {m: sum(1 for r in results if r.result.method == m and r.status == Status.CERTIFIED)
                    for m in ("ibp", "lp", "milp")},
    }
    if results and results[0].pin == "cell":
        # the ceiling: rows whose whole cell the DNN decides one way (certifiable at all)
        d["cell_certified"] = sum(1 for r in results if r.cell_status == Status.CERTIFIED)
        d["cell_refuted"] = sum(1 for r in results if r.cell_status == Status.REFUTED)
    return d
