"""Formal explanations of the bounds' decisions with SAT over their exact CNF.

What is explained. The device's YES means "the upper bound answers yes and the lower bound does
not answer"; NO the mirror; UNKNOWN "both or neither answered". An explanation is always about a
*target*, a conjunction of bound states that holds on the input:

- scope ``bound`` (default): the answering bound's own answer: for YES, "the upper bound answers
  yes"; for NO, "the lower bound answers no";
- scope ``decision``: the whole device decision: for YES, "the upper bound answers yes and the
  lower bound does not answer" (and the mirror for NO);
- for UNKNOWN both scopes explain the two bounds' current states, usually "neither bound
  answers" (why the device had to defer).

Algorithms, one module each over the shared :mod:`~bnnembed.logic.explain.oracle`:
:mod:`~bnnembed.logic.explain.abductive` (subset-minimal sufficient features),
:mod:`~bnnembed.logic.explain.contrastive` (subset-minimal features whose change breaks the target, with
a witness input replayed through numpy) and :mod:`~bnnembed.logic.explain.robustness` (does the target
survive every move of at most R thermometer steps, or of at most delta in value).

Every result is about a :class:`~bnnembed.logic.explain.domain.Domain`: the whole data box
(default), or the inputs within ``delta`` raw units or ``radius`` thermometer steps of the input;
features an explanation does not pin range over the domain only, and the JSON names it.

:class:`Explainer` ties them to an artifact, renders features as readable interval conditions
and caches every result in the artifact's :mod:`~bnnembed.logic.explain.store` under its decision id.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

import numpy as np

from ...artifact import Artifact
from ...model.decision_id import decision_id
from ...errors import BnnError
from .store import ExplanationStore
from ...model.intmodel import Decision, bound_answers, combine
from .abductive import abductive
from .contrastive import contrastive
from .domain import Domain
from .oracle import Backend, Bound, Oracle, Target, describe_target
from .robustness import robust

__all__ = ["Kind", "Scope", "Explainer", "Case", "target_for", "Backend", "Bound", "Oracle", "Domain"]


class Kind(str, enum.Enum):
    """What kind of explanation."""

    ABDUCTIVE = "abductive"
    CONTRASTIVE = "contrastive"

    def __str__(self) -> str:
        return self.value


class Scope(str, enum.Enum):
    """What is explained (see the module docstring)."""

    BOUND = "bound"
    DECISION = "decision"

    def __str__(self) -> str:
        return self.value


def target_for(decision: Decision, upper: bool, lower: bool, scope: Scope) -> Target:
    """The target an explanation of this decision is about."""
    if decision is Decision.YES:
        return ((Bound.UPPER, True),) if scope is Scope.BOUND else ((Bound.UPPER, True), (Bound.LOWER, False))
    if decision is Decision.NO:
        return ((Bound.LOWER, True),) if scope is Scope.BOUND else ((Bound.LOWER, True), (Bound.UPPER, False))
    return ((Bound.UPPER, bool(upper)), (Bound.LOWER, bool(lower)))


@dataclass
class Case:
    """One decided input."""

    did: str
    bits: np.ndarray
    levels: np.ndarray
    x: np.ndarray | None
    decision: Decision
    upper: bool  # the upper bound answers (yes)
    lower: bool  # the lower bound answers (no)


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def raw_for_levels(art: Artifact, x: np.ndarray | None, levels: np.ndarray) -> np.ndarray:
    """A raw input with the given levels, as close as possible to ``x`` (kept where the level is
    unchanged; else the nearest value of the new interval)."""
    enc = art.encoder
    if x is None:
        x = enc.representative(levels, np.zeros(enc.n_features, np.float32), np.zeros(enc.n_features, np.float32))
    x = np.array(x, dtype=np.float32, copy=True)
    cur = enc.levels(enc.encode(x[None, :]))[0]
    for f in range(enc.n_kept):
        L, c = int(levels[f]), int(cur[f])
        if L == c:
            continue
        t = enc.feature_thresholds(f)
        col = int(enc.feature_index[f])
        x[col] = t[L - 1] if L > c else np.nextafter(t[L], np.float32(-np.inf))
    got = enc.levels(enc.encode(x[None, :]))[0]
    if not np.array_equal(got, np.asarray(levels)):  # pragma: no cover - encode is exact
        raise AssertionError("could not build a raw input with the requested levels")
    return x


def _cut_short(result: dict) -> bool:
    """An answer a budget cut short: an explanation not proven minimal, a robustness question undecided."""
    return result.get("minimal") is False or ("robust" in result and result["robust"] is None)


class Explainer:
    """Explanations and robustness verdicts for one artifact, cached by decision id."""

    def __init__(self, art: Artifact, backend: str = "card", use_store: bool = True, budget: int = 2_000,
                 seconds: float | None = None, strategy: str = "quickxplain") -> None:
        self.art = art
        self.oracle = Oracle(art, backend=backend, budget=budget)
        self.strategy = strategy  # abductive search: "quickxplain" or "deletion"
        self.seconds = seconds  # time budget of one explanation's exact phase or one verify query (None: none)
        self.store = ExplanationStore(art.path, art.model_hash) if use_store else None

    def close(self) -> None:
        self.oracle.close()
        if self.store:
            self.store.close()

    def __enter__(self) -> "Explainer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- cases
    def case(self, x: np.ndarray | None = None, bits: np.ndarray | None = None) -> Case:
        """The decision on a raw row ``x`` (or on encoded ``bits``), registered in the store."""
        if bits is None:
            x = np.asarray(x, dtype=np.float32).reshape(-1)
            if x.size != self.art.encoder.n_features:
                raise BnnError(f"row has {x.size} features, the artifact expects {self.art.encoder.n_features}")
            bits = self.art.encoder.encode(x[None, :])[0]
        bits = np.asarray(bits, dtype=np.uint8).reshape(-1)
        up = bool(bound_answers(self.art.upper, bits[None, :])[0])
        lo = bool(bound_answers(self.art.lower, bits[None, :])[0])
        decision = Decision(int(combine(np.array([up]), np.array([lo]))[0]))
        did = decision_id(self.art.model_hash, bits)
        if self.store:
            self.store.put_decision(did, bits, int(decision), x)
        levels = self.art.encoder.levels(bits[None, :])[0]
        return Case(did, bits, levels, x, decision, up, lo)

    def case_from_id(self, did: str) -> Case:
        found = self.store.get_decision(did) if self.store else None
        if found is None:
            raise BnnError(
                f"unknown decision id {did!r} for this artifact; explain the row once with "
                "'bnnembed explain DIR --data SRC --row N' (or log it with 'bnnembed host')"
            )
        bits, x, _ = found
        return self.case(x=x) if x is not None else self.case(bits=bits)

    # ---------------------------------------------------------------- rendering
    def feature_entry(self, f: int, level: int) -> dict:
        enc = self.art.encoder
        col = int(enc.feature_index[f])
        names = self.art.feature_names
        name = names[col] if col < len(names) else f"x{col}"
        lo, hi = enc.interval(f, level)
        if lo is None and hi is None:
            cond = f"{name} is anything"
        elif lo is None:
            cond = f"{name} < {_fmt(hi)}"
        elif hi is None:
            cond = f"{name} >= {_fmt(lo)}"
        else:
            cond = f"{_fmt(lo)} <= {name} < {_fmt(hi)}"
        return {"feature": name, "column": col, "level": int(level), "lo": lo, "hi": hi, "condition": cond}

    def domain(self, case: Case, delta: float | None = None, radius: int | None = None) -> Domain:
        """The domain of ``--delta`` / ``--radius`` around the case (neither: the whole box)."""
        return Domain.build(self.art.encoder, case.levels, case.x, delta=delta, radius=radius)

    def request(self, what: str, domain: Domain, **kw) -> dict:
        """The store key of a question: what was asked and in which domain (the level box too
        when it depends on the raw row, so a whole-box result never answers a delta question)."""
        out = {"what": what, **kw, "domain": domain.describe()}
        if domain.kind != "box":
            out["box"] = [domain.lo.tolist(), domain.hi.tolist()]
        return out

    def _header(self, case: Case, kind: str, target: Target, domain: Domain | None = None) -> dict:
        return {
            "decision_id": case.did,
            "model_hash": self.art.model_hash,
            "decision": case.decision.label,
            "upper_answers": case.upper,
            "lower_answers": case.lower,
            "kind": kind,
            "explains": describe_target(target),
            "target": [{"bound": b.value, "answers": a} for b, a in target],
            "domain": (domain or Domain.whole(self.art.encoder)).describe(),
        }

    def _cached(self, case: Case, request: dict, compute) -> dict:
        if self.store:
            hit = self.store.get(case.did, request)
            if hit is not None and self._covers(hit):
                hit["cached"] = True
                return hit
        t0 = time.perf_counter()
        calls0 = self.oracle.stats.sat_calls
        result = compute()
        result["seconds"] = time.perf_counter() - t0
        result["sat_calls"] = self.oracle.stats.sat_calls - calls0
        if _cut_short(result):
            # cut short by a budget: a later request with a larger one must not get this answer
            result["budget"] = {"seconds": self.seconds or 0.0, "conflicts": self.oracle.budget}
        if self.store:
            self.store.put(case.did, request, result, result["seconds"])
        result["cached"] = False
        return result

    def _covers(self, hit: dict) -> bool:
        """Whether a stored answer still answers this explainer: a complete one always; one cut short
        by a budget only if neither of this explainer's budgets is larger (0 means unlimited)."""
        if not _cut_short(hit):
            return True
        budget = hit.get("budget")
        if budget is None:  # stored before budgets were recorded
            return False
        def within(mine: float, theirs: float) -> bool:
            return theirs == 0 or (mine != 0 and mine <= theirs)
        return within(self.seconds or 0.0, budget["seconds"]) and within(self.oracle.budget, budget["conflicts"])

    # ---------------------------------------------------------------- explanations
    def explain(self, case: Case, kind: Kind | str = Kind.ABDUCTIVE, scope: Scope | str = Scope.BOUND,
                delta: float | None = None, radius: int | None = None) -> dict:
        """An explanation of the case inside the domain of ``delta`` / ``radius`` (default: the
        whole data box)."""
        kind, scope = Kind(kind), Scope(scope)
        target = target_for(case.decision, case.upper, case.lower, scope)
        domain = self.domain(case, delta, radius)
        request = self.request("explain", domain, kind=kind.value, scope=scope.value, search=self.strategy)

        def compute() -> dict:
            out = self._header(case, kind.value, target, domain)
            out["scope"] = scope.value
            out["n_features"] = self.oracle.n_features
            if kind is Kind.ABDUCTIVE:
                feats, undecided, info = abductive(self.oracle, case.levels, target, self.seconds, domain,
                                                   self.strategy)
                out["features"] = [self.feature_entry(f, int(case.levels[f])) for f in feats]
                out["size"] = len(feats)
                out["robust"] = not feats  # the target holds on the whole domain
                out["minimal"] = not undecided
                out["undecided"] = [self.feature_entry(f, int(case.levels[f]))["feature"] for f in undecided]
                out["search"] = info
                out["queries"] = info["queries"]
                out["meaning"] = (f"every valid input meeting all these conditions ({domain.text()}) gets the "
                                  f"same outcome: {describe_target(target)}")
                return out
            found = contrastive(self.oracle, case.levels, target, domain, self.seconds)
            if found is None:
                out["features"] = []
                out["size"] = 0
                out["witness"] = None
                out["robust"] = True
                out["minimal"] = True
                out["meaning"] = ("no input of the domain changes this outcome: it holds on the whole "
                                  + ("input domain" if domain.kind == "box" else f"domain ({domain.text()})"))
                return out
            feats, w, undecided, info = found
            out["robust"] = False
            out["search"] = info
            out["queries"] = info["queries"]
            out["minimal"] = not undecided
            out["undecided"] = [self.feature_entry(f, int(case.levels[f]))["feature"] for f in undecided]
            out["features"] = [
                {**self.feature_entry(f, int(case.levels[f])), "to": self.feature_entry(f, int(w[f]))["condition"]}
                for f in feats
            ]
            out["size"] = len(feats)
            out["witness"] = self._witness(case, w, target)
            out["meaning"] = ("changing these features (all others kept; inside the domain) can break the outcome "
                              f"({describe_target(target)}); the witness is such an input")
            return out

        return self._cached(case, request, compute)

    def _witness(self, case: Case, w: np.ndarray, target: Target) -> dict:
        x2 = raw_for_levels(self.art, case.x, w)
        bits2 = self.art.encoder.encode(x2[None, :])
        up = bool(bound_answers(self.art.upper, bits2)[0])
        lo = bool(bound_answers(self.art.lower, bits2)[0])
        states = {Bound.UPPER: up, Bound.LOWER: lo}
        broken = not all(states[b] == a for b, a in target)
        if not broken:  # pragma: no cover - the CNF is exact
            raise AssertionError("witness does not replay through the numpy reference")
        changed = np.flatnonzero(np.asarray(w) != case.levels)
        moved = np.abs(x2.astype(np.float64) - case.x.astype(np.float64)) if case.x is not None else None
        return {
            "distance": None if moved is None else float(moved.max(initial=0.0)),
            "x": [float(v) for v in x2],
            "decision": Decision(int(combine(np.array([up]), np.array([lo]))[0])).label,
            "upper_answers": up,
            "lower_answers": lo,
            "replayed": True,
            "changes": [{"feature": self.feature_entry(int(f), int(w[f]))["feature"],
                         "column": self.feature_entry(int(f), int(w[f]))["column"],
                         "from": float(case.x[self.feature_entry(int(f), 0)["column"]]) if case.x is not None else None,
                         "to": float(x2[self.feature_entry(int(f), 0)["column"]])}
                        for f in changed],
        }

    def verify(self, case: Case, radius: int | None = None, delta: float | None = None,
               scope: Scope | str = Scope.DECISION) -> dict:
        """Robustness of the outcome to moves of at most ``radius`` levels or ``delta`` in value."""
        scope = Scope(scope)
        if radius is None and delta is None:
            raise BnnError("give exactly one of --radius (thermometer steps) or --delta (value)")
        target = target_for(case.decision, case.upper, case.lower, scope)
        domain = self.domain(case, delta, radius)
        request = self.request("verify", domain, scope=scope.value)

        def compute() -> dict:
            out = self._header(case, "robustness", target, domain)
            out["scope"] = scope.value
            out["radius"], out["delta"] = radius, delta
            verdict, w = robust(self.oracle, domain.ranges(case.levels, []), target, self.seconds)
            out["robust"] = verdict  # None: undecided within the conflict budget
            out["counterexample"] = None if w is None else self._witness(case, w, target)
            return out

        return self._cached(case, request, compute)
