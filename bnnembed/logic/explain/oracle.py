"""The shared SAT oracle: both bounds' CNFs in one incremental solver, inputs shared.

Every explanation algorithm asks the same question: *with some features pinned to a range of
thermometer levels, can the bounds' answers differ from a target?* The oracle answers it with one
incremental pysat solver under assumptions (no clause is ever added per query, so learnt clauses
carry over from query to query):

- variables come from one :class:`pysat.formula.IDPool` keyed by meaning: ``("x", bit)`` for the
  thermometer input bits (shared by both bounds, variables ``1..n_bits``), ``("h", bound, layer,
  j)`` for neuron outputs, ``("not", target)`` for the selector of a negated target;
- a bound's clauses are its exact CNF (:mod:`bnnembed.render.cnf`, encoded from the integer model in
  memory: the same clauses ``bnnembed cnf`` exports to DIMACS), or with the ``card`` backend its
  neurons as native cardinality constraints; they are loaded on first use, so a query about the
  upper bound alone never pays for the lower one;
- a feature's level is pinned to ``[lo, hi]`` by at most two assumptions: bit ``lo-1`` is 1 and
  bit ``hi`` is 0 (the order constraints ``x_{k+1} => x_k`` do the rest);
- neurons that cannot change inside a query's box (the interval engine proves them on or off
  there, :meth:`Oracle.stable_literals`) are assumed too, so the solver starts with them fixed;
- a target is a conjunction of bound states (``upper answers``, ``lower does not answer``...);
  its negation is one literal, or one clause guarded by a selector variable that is assumed.

A cheap sound pre-check (interval propagation over level boxes, :attr:`Oracle.boxes`, the one
engine in :mod:`bnnembed.model.intervals`) and a cheap attack (:meth:`~bnnembed.logic.explain.replay.Replay.attack`) let the
algorithms skip most SAT calls; every answer they give is either a SAT/UNSAT verdict or a
counterexample that the numpy reference confirms.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

import numpy as np
from pysat.formula import IDPool
from pysat.solvers import Solver

from ...artifact import Artifact
from ...render.cnf import DEFAULT_ENCODING, CardEncoding, encode_bound, order_clauses
from ...model.intervals import LevelBoxes
from .replay import Replay


class Backend(str, enum.Enum):
    """How the oracle's solver holds the bounds.

    ``cnf``: the artifact's exact CNF (clauses only, Glucose 4). ``card``: the same integer model
    with every neuron as two *native* cardinality constraints of Minicard (``h => sum >= T`` and
    ``NOT h => sum <= T-1``, each an AtMost over the literals plus copies of ``h``); propagation
    is arc-consistent and a conflict costs microseconds instead of milliseconds, so it is the
    default for explanations. Both are checked against the numpy reference (tests/logic/test_explain.py).
    """

    CNF = "cnf"
    CARD = "card"

    def __str__(self) -> str:
        return self.value


class Bound(str, enum.Enum):
    """The two bounds of an artifact."""

    UPPER = "upper"  # answers "yes"
    LOWER = "lower"  # answers "no"

    def __str__(self) -> str:
        return self.value


# A target: the bounds' states to keep, as ((bound, answers), ...), e.g. ((UPPER, True),).
Target = tuple[tuple[Bound, bool], ...]


def describe_target(target: Target) -> str:
    """Readable text of a target, e.g. "the upper bound answers yes"."""
    parts = []
    for bound, answers in target:
        word = "yes" if bound is Bound.UPPER else "no"
        parts.append(f"the {bound.value} bound {'answers' if answers else 'does not answer'} {word!r}")
    return " and ".join(parts)


@dataclass
class OracleStats:
    sat_calls: int = 0
    sat_seconds: float = 0.0
    ibp_checks: int = 0
    attacks: int = 0
    undecided: int = 0
    enumerated: int = 0
    fixed_neurons: int = 0  # stable hidden neurons assumed in SAT calls (the pre-pass)


class Oracle:
    """Incremental SAT over an artifact's CNFs, with features addressed by level ranges."""

    def __init__(self, art: Artifact, backend: "Backend | str" = "card", budget: int = 2_000,
                 max_points: int = 64, probe: int = 500, node_budget: int = 200_000,
                 encoding: "CardEncoding | str" = DEFAULT_ENCODING) -> None:
        self.art = art
        self.encoding = CardEncoding(encoding)  # the CNF backend's neuron encoding
        self.enc = art.encoder
        self.n_bits = self.enc.n_bits
        self.n_features = self.enc.n_kept
        self.n_levels = np.diff(self.enc.offsets).astype(np.int64)  # K_f: levels are 0..K_f
        self.pool = IDPool()
        self.x_vars = np.array([self.pool.id(("x", b)) for b in range(self.n_bits)], dtype=np.int64)
        self.backend = Backend(backend)
        self.solver = Solver(name="g4" if self.backend is Backend.CNF else "mc")
        self.nets = {Bound.UPPER: art.upper, Bound.LOWER: art.lower}
        self._out: dict[Bound, int] = {}
        self.stats = OracleStats()
        self.replay = Replay(self.enc, self.nets, self.stats)  # the numpy reference over levels
        self._boxes: dict = {}
        self.load_seconds = 0.0
        self.budget = budget  # conflicts per query (0 = none)
        self._order_added = False
        self.max_points = max_points  # branch-and-bound leaves of at most this many points are enumerated (0 = SAT only)
        self._acts = {int(v): 1e30 for v in self.x_vars}
        self._box_search = None
        self.probe = probe  # conflicts of the SAT probe that runs before the branch and bound
        self.node_budget = node_budget  # branch-and-bound nodes per query
        self.fix_stable = True  # assume the neurons the interval engine proves stable in each query's box

    def close(self) -> None:
        self.solver.delete()

    def __enter__(self) -> "Oracle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- variables and loading
    def output(self, bound: Bound) -> int:
        """The decision literal of a bound (true iff it answers), loading its CNF if needed."""
        if bound not in self._out:
            self._load(bound)
        return self._out[bound]

    def _load(self, bound: Bound) -> None:
        t0 = time.perf_counter()
        if self.backend is Backend.CNF:
            self._load_cnf(bound)
        else:
            self._load_card(bound)
        self.load_seconds += time.perf_counter() - t0

    def _load_cnf(self, bound: Bound) -> None:
        net = self.nets[bound]
        cnf = encode_bound(net, self.enc, self.encoding)
        offset = self.pool.top - self.n_bits
        for l, layer in enumerate(cnf.h_vars):
            for j, v in enumerate(layer):
                vid = self.pool.id(("h", bound.value, l, j))
                assert vid == int(v) + offset, "neuron variables must follow the inputs"
        self.pool.top = offset + cnf.n_vars  # reserve the bound's auxiliary variables
        for chunk in _chunks(cnf.clause_lists(offset)):
            self.solver.append_formula(chunk)
        self._out[bound] = self.pool.id(("h", bound.value, len(net.layers) - 1, 0))

    def _load_card(self, bound: Bound) -> None:
        if not self._order_added:
            for cl in order_clauses(self.enc, self.n_bits, self.x_vars):
                self.solver.add_clause(cl)
            self._order_added = True
        net = self.nets[bound]
        inputs = self.x_vars
        for l, layer in enumerate(net.layers):
            w = layer.weight_bits()
            read = layer.read_bits().astype(bool) if layer.masked else None
            hs = np.array([self.pool.id(("h", bound.value, l, j)) for j in range(layer.n_out)], dtype=np.int64)
            for j in range(layer.n_out):
                lits = np.where(w[j] == 1, inputs, -inputs)
                if read is not None:  # a masked neuron counts the bits it reads only
                    lits = lits[read[j]]
                lits, n = lits.tolist(), len(lits)
                T, h = int(layer.thresholds[j]), int(hs[j])
                if T <= 0 or T > n:
                    self.solver.add_clause([h] if T <= 0 else [-h])
                    continue
                copies = [self.pool.id() for _ in range(max(T, n - T + 1))]
                for c in copies:
                    self.solver.add_clause([-c, h])
                    self.solver.add_clause([c, -h])
                # h => sum(lits) >= T   i.e.  sum(NOT lits) + T*h <= n
                self.solver.add_atmost([-v for v in lits] + copies[:T], n)
                # NOT h => sum(lits) <= T-1   i.e.  sum(lits) + (n-T+1)*(NOT h) <= n
                self.solver.add_atmost(lits + [-c for c in copies[: n - T + 1]], n)
            inputs = hs
        self._out[bound] = int(inputs[0])

    def neg_target_assumption(self, target: Target) -> int:
        """A literal whose assumption says "the target does not hold"."""
        lits = [self.output(b) if answers else -self.output(b) for b, answers in target]
        if len(lits) == 1:
            return -lits[0]
        key = ("not",) + tuple((b.value, a) for b, a in target)
        fresh = key not in self.pool.obj2id
        act = self.pool.id(key)
        if fresh:
            self.solver.add_clause([-act] + [-l for l in lits])
        return act

    # ---------------------------------------------------------------- features and levels
    def level_assumptions(self, f: int, lo: int, hi: int) -> list[int]:
        """Assumptions pinning feature ``f``'s level to ``lo..hi`` (inclusive)."""
        off = int(self.enc.offsets[f])
        out = []
        if lo > 0:
            out.append(int(self.x_vars[off + lo - 1]))
        if hi < self.n_levels[f]:
            out.append(-int(self.x_vars[off + hi]))
        return out

    def assumptions(self, ranges: dict[int, tuple[int, int]]) -> list[int]:
        out = []
        for f, (lo, hi) in ranges.items():
            out += self.level_assumptions(f, lo, hi)
        return out

    def levels_of_model(self, model: list[int]) -> np.ndarray:
        bits = np.array([1 if model[v - 1] > 0 else 0 for v in self.x_vars], dtype=np.uint8)
        return self.enc.levels(bits[None, :])[0]

    # ---------------------------------------------------------------- queries
    def check(self, ranges: dict[int, tuple[int, int]], target: Target) -> tuple[bool | None, np.ndarray | None]:
        """Does pinning ``ranges`` (features not listed are free) force the target?

        ``(True, None)``: yes; ``(False, levels)``: no, with the levels of a valid input inside the
        ranges that breaks it; ``(None, None)``: every budget ran out. A portfolio, cheapest first:
        a short SAT probe (``probe`` conflicts; CDCL finds counterexamples fast but rarely proves
        these queries), then the exact branch and bound of :mod:`~bnnembed.logic.explain.bab` (proofs),
        then SAT with the rest of the conflict budget.
        """
        if self.probe and (self.budget == 0 or self.budget > self.probe):
            verdict, levels = self._sat(ranges, target, self.probe)
            if verdict is not None:
                return verdict, levels
        if self.max_points:
            lo, hi = self.box(ranges)
            verdict, levels = self.box_search.decide(lo, hi, target)
            if verdict is not None:
                return verdict, levels
        return self._sat(ranges, target, self.budget)

    def _sat(self, ranges, target: Target, budget: int) -> tuple[bool | None, np.ndarray | None]:
        """One SAT call under assumptions; ``budget`` conflicts (0 = none).

        The input variables get the highest activity before each call, so the solver decides
        free inputs first and every neuron then follows by propagation."""
        assume = self.assumptions(ranges) + [self.neg_target_assumption(target)]
        if self.fix_stable:
            assume += self.stable_literals(ranges, target)
        if self._acts is not None:
            try:
                self.solver.set_activities(self._acts)
            except NotImplementedError:  # pragma: no cover - solver without the call
                self._acts = None
        t0 = time.perf_counter()
        if budget:
            self.solver.conf_budget(budget)
            sat = self.solver.solve_limited(assumptions=assume)
        else:
            sat = self.solver.solve(assumptions=assume)
        self.stats.sat_calls += 1
        self.stats.sat_seconds += time.perf_counter() - t0
        if sat is None:
            self.stats.undecided += 1
            return None, None
        if not sat:
            return True, None
        return False, self.levels_of_model(self.solver.get_model())

    def stable_literals(self, ranges: dict[int, tuple[int, int]], target: Target) -> list[int]:
        """The pre-pass: hidden neurons of the target's bounds that cannot change inside the
        box of ``ranges`` (the interval engine proves them on or off there) as literals to assume,
        so the solver starts with them fixed. Sound: every input of the box gives them these
        values, so the query's answer is unchanged."""
        lo, hi = self.box(ranges)
        out = []
        for b, _ in target:
            for l, (fires, silent) in enumerate(self.boxes[b].stable(lo, hi)):
                out += [self.pool.id(("h", b.value, l, int(j))) for j in np.flatnonzero(fires)]
                out += [-self.pool.id(("h", b.value, l, int(j))) for j in np.flatnonzero(silent)]
        self.stats.fixed_neurons += len(out)
        return out

    def counterexample(self, ranges: dict[int, tuple[int, int]], target: Target) -> np.ndarray | None:
        """Pure SAT, no budget: counterexample levels, or None when the ranges force the target."""
        return self._sat(ranges, target, 0)[1]

    @property
    def box_search(self):
        if self._box_search is None:
            from .bab import BoxSearch
            self._box_search = BoxSearch(self, leaf_points=self.max_points, node_budget=self.node_budget)
        return self._box_search

    def box(self, ranges: dict[int, tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature level bounds of ``ranges`` (features not listed are free)."""
        lo = np.zeros(self.n_features, np.int64)
        hi = self.n_levels.astype(np.int64).copy()
        for f, (a, b) in ranges.items():
            lo[f], hi[f] = a, b
        return lo, hi

    def entails(self, ranges: dict[int, tuple[int, int]], target: Target) -> bool:
        return self.counterexample(ranges, target) is None

    @property
    def boxes(self) -> dict:
        """Per bound, its interval engine over level boxes (:class:`~bnnembed.model.intervals.LevelBoxes`)."""
        if not self._boxes:
            self._boxes.update({b: LevelBoxes(self.nets[b], self.enc) for b in (Bound.UPPER, Bound.LOWER)})
        return self._boxes


def _chunks(it, size: int = 200_000):
    buf = []
    for c in it:
        buf.append(c)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def ranges_fixed(levels: np.ndarray, features) -> dict[int, tuple[int, int]]:
    """Ranges pinning each listed feature to its level in ``levels``."""
    return {int(f): (int(levels[f]), int(levels[f])) for f in features}
