"""Checking a CNF against the numpy reference: what it forces a bound to answer on given inputs.

Used by the tests (``tests/render/test_cnf.py``) and the benchmark ``bench/cnf_equivalence.py`` (which
puts this folder on ``sys.path``); not part of the package. :func:`cnf_answers` propagates one
input at a time with a SAT solver; :func:`cnf_decisions` unit-propagates many inputs at once, one
bit per input (:class:`_LanePropagator`), and falls back to a solver only where that does not
settle the answer; :func:`clause_matrix` puts clauses in any of their forms into one matrix.
"""

from __future__ import annotations

import numpy as np

from bnnembed.render.cnf import BoundCnf, clause_spans, rows_by_length


def _assumptions(row: np.ndarray, x_vars: np.ndarray) -> list[int]:
    """The input literals of one row of input bits."""
    return np.where(row == 1, x_vars, -x_vars).tolist()


def _model_layers(layers: list[np.ndarray], cnf: BoundCnf, i: int, val: set) -> None:
    """Row ``i`` of the per-layer neuron outputs, from a set of true literals."""
    for l, h in enumerate(cnf.h_vars):
        layers[l][i] = [1 if int(v) in val else 0 for v in h]


def cnf_answers(cnf: BoundCnf, bits: np.ndarray, solver: str = "g4", clauses=None,
                hidden: bool = False):
    """What the CNF says about inputs: fix the input bits and unit-propagate.

    Returns a bool array (does the bound answer?) and, with ``hidden``, a list of per-layer 0/1
    arrays of the neuron outputs. An input whose outputs are not fixed by propagation alone is
    decided with a full solve (counted in the third return value), which stays exact.
    """
    from pysat.solvers import Solver

    bits = np.asarray(bits, dtype=np.uint8)
    answers = np.zeros(len(bits), dtype=bool)
    layers = [np.zeros((len(bits), len(h)), dtype=np.uint8) for h in cnf.h_vars] if hidden else None
    n_solved = 0
    wanted = [int(cnf.decision)] + ([int(v) for h in cnf.h_vars for v in h] if hidden else [])
    with Solver(name=solver, bootstrap_with=clauses if clauses is not None else cnf.clause_lists()) as s:
        # propagate() does not report literals fixed at the root (unit clauses of constant
        # neurons); find those once
        root = set()
        for v in wanted:
            if not s.propagate(assumptions=[v])[0]:
                root.add(-v)
            elif not s.propagate(assumptions=[-v])[0]:
                root.add(v)
        for i, row in enumerate(bits):
            assume = _assumptions(row, cnf.x_vars)
            ok, lits = s.propagate(assumptions=assume)
            if not ok:
                raise AssertionError("input bits contradict the CNF (order constraints?)")
            val = set(lits) | root
            if not all(v in val or -v in val for v in wanted):
                n_solved += 1
                if not s.solve(assumptions=assume):
                    raise AssertionError("input bits contradict the CNF")
                val = set(s.get_model())
            answers[i] = cnf.decision in val
            if hidden:
                _model_layers(layers, cnf, i, val)
    return answers, layers, n_solved


def clause_matrix(clauses) -> np.ndarray:
    """Clauses as one 0-padded ``(C, width)`` int64 matrix.

    ``clauses``: a :class:`BoundCnf`, its ``blocks`` or one such 0-padded block, the 0-terminated
    flat array of :func:`~bnnembed.render.cnf.read_dimacs`, or an iterable of clause lists.
    """
    if isinstance(clauses, BoundCnf):
        clauses = clauses.blocks
    if isinstance(clauses, np.ndarray) and clauses.ndim == 2:
        clauses = [clauses]
    if isinstance(clauses, np.ndarray) and clauses.ndim == 1:
        flat = clauses.astype(np.int64, copy=False)
        _, lengths = clause_spans(flat)
        width = max(int(lengths.max(initial=0)), 1)
        out = np.zeros((len(lengths), width), dtype=np.int64)
        lits = flat[flat != 0]
        rows = np.repeat(np.arange(len(lengths)), lengths)
        cols = np.arange(len(lits)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        out[rows, cols] = lits
        return out
    if isinstance(clauses, list) and all(isinstance(b, np.ndarray) and b.ndim == 2 for b in clauses):
        width = max([b.shape[1] for b in clauses] + [1])
        out = np.concatenate([np.pad(b.astype(np.int64), ((0, 0), (0, width - b.shape[1])))
                              for b in clauses] or [np.zeros((0, width), np.int64)])
        if np.any((out[:, :-1] == 0) & (out[:, 1:] != 0)):  # move padding to the end of each row
            out = np.take_along_axis(out, np.argsort(out == 0, axis=1, kind="stable"), axis=1)
        return out
    lists = [list(c) for c in clauses]
    flat = np.fromiter((v for c in lists for v in c + [0]), dtype=np.int64)
    return clause_matrix(flat)


class _LanePropagator:
    """Unit propagation on many inputs at once: one bit per input ("lane") in uint64 words.

    ``A[2v]`` holds the lanes where variable ``v`` is known false (literal ``+v`` false),
    ``A[2v+1]`` the lanes where it is known true (literal ``-v`` false); the code of a literal
    ``l`` is ``2|l| + (l < 0)``, so ``A[code]`` is where the literal is false and ``A[code ^ 1]``
    where it is true. Row 0 (the padding "literal") is false in every lane.

    The unit rule, for every position ``i`` of a clause: where all other literals are false,
    literal ``i`` is true. Every value set is implied by the clauses and the inputs, so a lane
    where every variable ends up set, without conflict and with every clause satisfied, has
    exactly one model; a lane with a conflict has none.

    Speed: :meth:`learn` propagates a few sample inputs and records which clause derived which
    variable; :meth:`sweep` then visits each clause once, in the depth order of the variables it
    derives, which evaluates a circuit in topological order. That order is only a heuristic (a
    gate whose inputs never took some combination in the sample is ordered by the combinations
    seen): what a sweep leaves open, further sweeps over the clauses of the open variables
    settle, until nothing changes (the fixpoint of unit propagation).
    """

    CHUNK_WORDS = 1 << 22  # uint64 words per (clauses, width, lanes) temporary (32 MB)

    def __init__(self, mat: np.ndarray, n_vars: int) -> None:
        self.n_vars = n_vars
        self.codes = np.where(mat > 0, 2 * mat, -2 * mat + 1).astype(np.int64)
        self.codes[mat == 0] = 0
        var = (self.codes >> 1).ravel()
        cls = np.repeat(np.arange(mat.shape[0]), mat.shape[1])
        keep = var > 0
        var, cls = var[keep], cls[keep]
        order = np.argsort(var, kind="stable")
        self.occ = cls[order]
        self.occ_ptr = np.concatenate([[0], np.cumsum(np.bincount(var, minlength=n_vars + 1))])
        self.groups: list[np.ndarray] = [np.arange(mat.shape[0])]  # sweep order, see learn()

    def _derive(self, A: np.ndarray, idx: np.ndarray, fired: list | None = None):
        """Yield ``(rows, masks)`` the unit rule derives from clauses ``idx``, chunk by chunk.

        With ``fired`` (a list), only new values are derived, and ``(clause, position)`` index
        arrays of the literals that got one are appended to it.
        """
        L = A.shape[1]
        width = self.codes.shape[1]
        step = max(1, self.CHUNK_WORDS // (width * L))
        for s in range(0, len(idx), step):
            cd = self.codes[idx[s : s + step]]
            G = A[cd]  # (k, width, L): lanes where each literal is false
            ex = np.empty_like(G)  # AND of the other literals' "false" masks
            acc = np.full(G.shape[::2], ~np.uint64(0))
            for j in range(width):
                ex[:, j] = acc
                acc &= G[:, j]
            acc[:] = ~np.uint64(0)
            for j in range(width - 1, -1, -1):
                ex[:, j] &= acc
                acc &= G[:, j]
            if fired is not None:
                ex &= ~A[cd ^ 1]
            sel = (cd != 0) & ex.any(axis=2)
            if not sel.any():
                continue
            if fired is not None:
                ci, pi = np.nonzero(sel)
                fired.append((idx[s : s + step][ci], pi))
            t, m = cd[sel] ^ 1, ex[sel]  # literal true where m: its negation is false
            order = np.argsort(t, kind="stable")
            t, m = t[order], m[order]
            first = np.flatnonzero(np.concatenate([[True], t[1:] != t[:-1]]))
            yield t[first], np.bitwise_or.reduceat(m, first, axis=0)

    @staticmethod
    def _apply(A: np.ndarray, rows: np.ndarray, red: np.ndarray, changed: np.ndarray) -> None:
        before = A[rows]
        after = before | red
        A[rows] = after
        changed[rows[(after != before).any(axis=1)] >> 1] = True

    def _clauses_of(self, cv: np.ndarray) -> np.ndarray:
        lo, hi = self.occ_ptr[cv], self.occ_ptr[cv + 1]
        n = hi - lo
        pos = np.repeat(lo - (np.cumsum(n) - n), n) + np.arange(int(n.sum()))
        mark = np.zeros(self.codes.shape[0], dtype=bool)
        mark[self.occ[pos]] = True
        return np.flatnonzero(mark)

    def run(self, A: np.ndarray, fired: list | None = None) -> None:
        """Propagate to the fixpoint in place: every clause, then, round after round, the
        clauses of the variables that changed; with ``fired``, record what fired."""
        changed = np.zeros(self.n_vars + 1, dtype=bool)
        idx = np.arange(self.codes.shape[0])
        while len(idx):
            changed[:] = False
            for rows, red in self._derive(A, idx, fired):
                self._apply(A, rows, red, changed)
            cv = np.flatnonzero(changed)
            if not len(cv):
                break
            idx = self._clauses_of(cv)

    def learn(self, A: np.ndarray) -> None:
        """Set the sweep order from propagating the sample lanes in ``A`` (in place).

        A clause that derived variable ``v`` makes ``v`` depend on the clause's other variables;
        a variable's depth is its longest path from the inputs; a clause is visited at the
        depth of the deepest variable it derived (one that derived nothing: of its deepest
        variable).
        """
        fired: list = []
        self.run(A, fired=fired)
        nv1 = self.n_vars + 1
        var = self.codes >> 1
        fc = np.concatenate([f[0] for f in fired] + [np.zeros(0, np.int64)])
        fp = np.concatenate([f[1] for f in fired] + [np.zeros(0, np.int64)])
        tv = var[fc, fp]
        rows = var[fc]  # (k, width): the deriving clauses' variables
        src = rows.ravel()
        dst = np.repeat(tv, var.shape[1])
        keep = (src != 0) & (src != dst)
        edges = np.unique(src[keep] * nv1 + dst[keep])
        src, dst = edges // nv1, edges % nv1
        indeg = np.bincount(dst, minlength=nv1)
        order = np.argsort(src, kind="stable")
        src, dst = src[order], dst[order]
        ptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=nv1))])
        depth = np.zeros(nv1, dtype=np.int64)
        frontier = np.flatnonzero(indeg == 0)
        while len(frontier):
            lo, hi = ptr[frontier], ptr[frontier + 1]
            n = hi - lo
            pos = np.repeat(lo - (np.cumsum(n) - n), n) + np.arange(int(n.sum()))
            t = dst[pos]
            np.maximum.at(depth, t, np.repeat(depth[frontier] + 1, n))
            np.subtract.at(indeg, t, 1)
            frontier = np.unique(t[indeg[t] == 0])
        depth[indeg > 0] = depth.max(initial=0) + 1  # on a dependency cycle: last
        key = depth[var].max(axis=1)
        key[fc] = -1
        np.maximum.at(key, fc, depth[tv])
        order = np.argsort(key, kind="stable")
        cuts = np.flatnonzero(np.diff(key[order])) + 1
        self.groups = np.split(order, cuts)

    def sweep(self, A: np.ndarray, idx: np.ndarray | None = None) -> bool:
        """One pass over clauses ``idx`` (default all) in the learned order, in place; returns
        whether any value changed."""
        changed = np.zeros(self.n_vars + 1, dtype=bool)
        mark = None
        if idx is not None:
            mark = np.zeros(self.codes.shape[0], dtype=bool)
            mark[idx] = True
        for g in self.groups:
            for rows, red in self._derive(A, g if mark is None else g[mark[g]]):
                self._apply(A, rows, red, changed)
        return bool(changed.any())

    def all_satisfied(self, A: np.ndarray) -> np.ndarray:
        """Lanes (uint64 words) where every clause has a literal known true."""
        L = A.shape[1]
        ok = np.full(L, ~np.uint64(0))
        width = self.codes.shape[1]
        step = max(1, self.CHUNK_WORDS // (width * L))
        for s in range(0, self.codes.shape[0], step):
            T = A[self.codes[s : s + step] ^ 1]  # row 1 (padding, "true") is all 0
            sat = np.bitwise_or.reduce(T, axis=1)
            ok &= np.bitwise_and.reduce(sat, axis=0)
        return ok


def _lanes_to_bool(words: np.ndarray, n: int) -> np.ndarray:
    return np.unpackbits(np.ascontiguousarray(words).view(np.uint8), bitorder="little")[:n].astype(bool)


def cnf_decisions(cnf: BoundCnf, bits: np.ndarray, clauses=None, *, solver: str = "g4",
                  batch: int = 1024, hidden: bool = False, sample: np.ndarray | None = None):
    """What the CNF forces the bound to answer on each input, fast and exact.

    Fixes the input bits of ``batch`` inputs at once and unit-propagates the clauses
    (``clauses``: anything :func:`clause_matrix` takes, default the encoder's own) on all of them
    together, one bit per input. Where every variable gets a value without conflict and every
    clause is satisfied, the CNF has exactly one model with those inputs and the decision literal's
    value is what the CNF says. Other inputs go to a SAT solver: ``solve(inputs + [d])`` and
    ``solve(inputs + [-d])``. ``sample``: input rows (up to ~128; default rows spread over
    ``bits``) whose propagation sets the order clauses are visited in; only speed depends on it,
    and it is faster when the sample varies every input bit (e.g. real rows plus random codes).

    Returns ``(codes, layers, n_solved)``: ``codes`` int8 per input, 1 = the CNF forces the
    bound to answer, 0 = forces it not to, -1 = no model with these inputs, 2 = both possible;
    ``layers`` (with ``hidden``) per-layer 0/1 neuron outputs of the forced model (rows with a code
    other than 0/1 are left 0); ``n_solved`` how many inputs needed the solver.
    """
    bits = np.asarray(bits, dtype=np.uint8)
    n_in = len(bits)
    mat = clause_matrix(cnf.blocks if clauses is None else clauses)
    n_vars = max(int(cnf.n_vars), int(np.abs(mat).max(initial=0)))
    prop = _LanePropagator(mat, n_vars)
    L = max(1, (min(batch, max(n_in, 1)) + 63) // 64)
    lanes = 64 * L
    codes = np.zeros(n_in, dtype=np.int8)
    layers = [np.zeros((n_in, len(h)), dtype=np.uint8) for h in cnf.h_vars] if hidden else None
    d = int(cnf.decision)
    d_true = (2 * abs(d) + (d < 0)) ^ 1  # row of A: lanes where literal d is true
    h_rows = [2 * np.asarray(h, dtype=np.int64) + 1 for h in cnf.h_vars]
    xv = np.asarray(cnf.x_vars, dtype=np.int64)
    # variables that must get a value: those in a clause, and the decision (a decision variable
    # in no clause is free, so never accepted here; the solver reports it as "both possible")
    used = np.union1d(np.flatnonzero(np.diff(prop.occ_ptr) > 0), [abs(d)])
    undecided: list[int] = []

    def lanes_of(rows: np.ndarray, width: int) -> np.ndarray:
        """Fresh state with the input bits of ``rows`` set (padded with copies of row 0)."""
        if len(rows) < 64 * width:
            rows = np.concatenate([rows, np.repeat(rows[:1], 64 * width - len(rows), axis=0)])
        ones = np.ascontiguousarray(np.packbits(rows.T, axis=1, bitorder="little")).view(np.uint64)
        A = np.zeros((2 * (n_vars + 1), width), dtype=np.uint64)
        A[0] = ~np.uint64(0)
        A[2 * xv + 1] = ones
        A[2 * xv] = ~ones
        return A

    def open_vars(A: np.ndarray) -> np.ndarray:
        """Variables (that occur in a clause) not yet known in every lane."""
        return used[((A[2 * used] | A[2 * used + 1]) != ~np.uint64(0)).any(axis=1)]

    def status(A: np.ndarray, m: int):
        f, t = A[2 * used], A[2 * used + 1]
        assigned = np.bitwise_and.reduce(f | t, axis=0)
        conflict = np.bitwise_or.reduce(f & t, axis=0)
        good = assigned & ~conflict
        if good.any():
            good &= prop.all_satisfied(A)
        return _lanes_to_bool(good, m), _lanes_to_bool(conflict, m)

    if n_in:
        if sample is None:  # up to 128 inputs spread over the rows
            sample = bits[np.unique(np.linspace(0, n_in - 1, min(n_in, 128)).astype(np.int64))]
        sample = np.asarray(sample, dtype=np.uint8)
        prop.learn(lanes_of(sample, (len(sample) + 63) // 64))
    for start in range(0, n_in, lanes):
        chunk = bits[start : start + lanes]
        m = len(chunk)
        A = lanes_of(chunk, L)
        progress = prop.sweep(A)
        while progress:  # only clauses with a variable still open can derive anything more
            ov = open_vars(A)
            progress = len(ov) > 0 and prop.sweep(A, prop._clauses_of(ov))
        good_b, conflict_b = status(A, m)
        codes[start : start + m] = _lanes_to_bool(A[d_true], m)
        if hidden:
            for l, rows in enumerate(h_rows):
                layers[l][start : start + m] = np.unpackbits(
                    A[rows].view(np.uint8), axis=1, bitorder="little")[:, :m].T
                layers[l][start : start + m][~good_b] = 0
        codes[start : start + m][conflict_b] = -1  # unit propagation refuted the inputs
        undecided += (start + np.flatnonzero(~good_b & ~conflict_b)).tolist()
    if undecided:
        from pysat.solvers import Solver

        with Solver(name=solver, bootstrap_with=(c for part in rows_by_length(mat) for c in part)) as s:
            for i in undecided:
                assume = _assumptions(bits[i], xv)
                yes, no = s.solve(assumptions=assume + [d]), s.solve(assumptions=assume + [-d])
                codes[i] = 2 if (yes and no) else 1 if yes else 0 if no else -1
                if hidden and yes != no:
                    s.solve(assumptions=assume + [d if yes else -d])
                    _model_layers(layers, cnf, i, set(s.get_model()))
    return codes, layers, len(undecided)
