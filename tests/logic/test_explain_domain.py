"""Explanations inside a domain (--delta / --radius), checked by a separate solver on the DIMACS
CNF; the QuickXplain search; the stable-neuron pre-pass; bad domain flags."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pysat.solvers import Solver

from bnnembed.artifact import load_artifact, write_artifact
from bnnembed.cli import main
from bnnembed.errors import BnnError
from bnnembed.learn.data import load_data
from bnnembed.logic.explain import Domain, Explainer, Scope, target_for
from bnnembed.logic.explain.quickxplain import quickxplain
from bnnembed.model.encoding import fit_thermometer
from bnnembed.model.intmodel import BoundNet, Decision, IntLayer, bound_answers, layer_forward
from bnnembed.model.packing import pack_bits
from bnnembed.render.cnf import cnf_path, read_dimacs, split_clauses, write_cnf


@pytest.fixture(scope="module")
def art2(tmp_path_factory) -> str:
    """breast_cancer, 3 thermometer bits a feature, random 90-10-6-1 bounds (thresholds near the
    middle, so that domains are neither trivially robust nor trivially broken)."""
    ds = load_data("breast_cancer")
    enc, _ = fit_thermometer(ds.X, 3)
    rng = np.random.default_rng(5)

    def net(answer):
        layers, n = [], enc.n_bits
        for m in (10, 6, 1):
            layers.append(IntLayer(n, pack_bits(rng.integers(0, 2, (m, n)).astype(np.uint8)),
                                   rng.integers(n // 2 - 2, n // 2 + 3, m)))
            n = m
        return BoundNet(answer, tuple(layers))

    out = str(tmp_path_factory.mktemp("dom"))
    manifest = {"features": {"names": ds.feature_names}, "dataset": {"image_shape": None},
                "positive": {"values": [0]}}
    write_artifact(out, manifest, enc, net("yes"), net("no"))
    write_cnf(out)
    return out


def _decided(art, X, n):
    rows = np.flatnonzero(art.decide(X) != int(Decision.UNKNOWN))[:n]
    assert len(rows) == n, "the fixture must decide enough rows"
    return rows


def _domain_assumptions(enc, lo, hi, feats) -> list[int]:
    """Our own encoding of "feature f's level is in lo_f..hi_f" on the DIMACS variables (bit k
    of f, variable offsets[f]+k+1, is 1 iff the level exceeds k)."""
    out = []
    for f in feats:
        for k in range(int(enc.offsets[f + 1] - enc.offsets[f])):
            v = int(enc.offsets[f]) + k + 1
            if k < lo[f]:
                out.append(v)
            elif k >= hi[f]:
                out.append(-v)
    return out


def _cell_meets(t, L, a, b) -> bool:
    """Does the cell of level L, [t_(L-1), t_L), meet [a, b]?"""
    left = -math.inf if L == 0 else float(t[L - 1])
    right = math.inf if L == len(t) else float(t[L])
    return left <= b and right > a


def test_domain_levels_match_the_definition(art2):
    """--delta: exactly the levels whose cell meets [x-D, x+D]; --radius: l-R..l+R clipped."""
    art = load_artifact(art2)
    enc = art.encoder
    X = load_data("breast_cancer").X
    for i in (0, 7, 100):
        levels = enc.levels(enc.encode(X[i : i + 1]))[0]
        for D in (0.0, 0.01, 1.0, 50.0):
            d = Domain.build(enc, levels, X[i], delta=D)
            for f in range(enc.n_kept):
                t = enc.feature_thresholds(f)
                v = float(X[i, enc.feature_index[f]])
                ok = [L for L in range(len(t) + 1) if _cell_meets(t, L, v - D, v + D)]
                assert (d.lo[f], d.hi[f]) == (min(ok), max(ok)), (i, D, f)
        d = Domain.build(enc, levels, X[i], radius=1)
        K = np.diff(enc.offsets)
        assert np.array_equal(d.lo, np.maximum(levels - 1, 0)) and np.array_equal(d.hi, np.minimum(levels + 1, K))
    assert Domain.build(enc, levels).describe() == {"kind": "box"}
    assert Domain.build(enc, levels, X[0], delta=4).describe() == {"kind": "delta", "delta": 4.0}
    assert Domain.build(enc, levels, radius=2).describe() == {"kind": "radius", "radius": 2}


@pytest.mark.parametrize("kw", [pytest.param({"delta": 0.5}, id="delta"),
                                pytest.param({"radius": 1}, id="radius", marks=pytest.mark.slow),
                                pytest.param({}, id="box", marks=pytest.mark.slow)])
def test_explanations_in_a_domain_checked_by_a_separate_solver(art2, kw):
    """Abductive explanations inside a domain: with the named features pinned and every other
    feature anywhere in the domain, a separate solver on the DIMACS file finds no input that
    breaks the answering bound (sufficient), and freeing any one named feature lets it find one
    inside the domain that numpy confirms (minimal). Robust rows (empty explanations) have no
    counterexample in the whole domain."""
    art = load_artifact(art2)
    enc = art.encoder
    X = load_data("breast_cancer").X
    meta = json.load(open(cnf_path(art2, "cnf.json")))
    F = enc.n_kept
    sizes, robust = [], 0
    with Explainer(art, use_store=False, budget=0) as ex:
        for i in _decided(art, X, 6):
            case = ex.case(X[i])
            r = ex.explain(case, "abductive", **kw)
            assert r["minimal"] and r["domain"] == Domain.build(enc, case.levels, X[i], **kw).describe()
            assert r["queries"] >= 1 and r["search"]["strategy"] == "quickxplain"
            d = Domain.build(enc, case.levels, X[i], **kw)
            name = "upper" if case.decision is Decision.YES else "lower"
            net = art.upper if name == "upper" else art.lower
            out = meta["bounds"][name]["decision"]
            feats = [enc.feature_index.tolist().index(e["column"]) for e in r["features"]]
            _, _, flat = read_dimacs(cnf_path(art2, f"cnf_{name}.cnf"))
            with Solver(name="g4", bootstrap_with=split_clauses(flat)) as s:
                def box(pinned):
                    lo, hi = d.lo.copy(), d.hi.copy()
                    lo[pinned] = hi[pinned] = case.levels[pinned]
                    return lo, hi
                lo, hi = box(feats)
                assert not s.solve(assumptions=_domain_assumptions(enc, lo, hi, range(F)) + [-out]), i
                for f in feats:
                    lo, hi = box([g for g in feats if g != f])
                    assert s.solve(assumptions=_domain_assumptions(enc, lo, hi, range(F)) + [-out]), (i, f)
                    bits = np.array([s.get_model()[b] > 0 for b in range(enc.n_bits)], np.uint8)[None, :]
                    assert not bound_answers(net, bits)[0]
                    got = enc.levels(bits)[0]
                    assert np.all((got >= lo) & (got <= hi))
            sizes.append(len(feats))
            robust += not feats
    if kw:  # a domain frees fewer inputs than the whole box: explanations are no larger on average
        assert np.mean(sizes) <= F


def test_robust_domains_take_one_question(art2):
    """When the target holds on the whole domain, QuickXplain's first question (nothing pinned)
    settles it: an empty, proven-minimal explanation (one question per row)."""
    art = load_artifact(art2)
    X = load_data("breast_cancer").X
    with Explainer(art, use_store=False, budget=0) as ex:
        for i in _decided(art, X, 3):
            r = ex.explain(ex.case(X[i]), "abductive", delta=0.5)
            if r["size"] == 0:
                assert r["queries"] == 1 and r["minimal"] and r["robust"]


@pytest.mark.parametrize("kw", [{"radius": 1}, {}], ids=["radius", "box"])
def test_contrastive_in_a_domain_has_a_witness_inside_it(art2, kw):
    """Contrastive explanations inside a domain: the witness replays through numpy to another
    decision, its levels lie in the domain, and it changes exactly the named features."""
    art = load_artifact(art2)
    enc = art.encoder
    X = load_data("breast_cancer").X
    seen = 0
    with Explainer(art, use_store=False, budget=0) as ex:
        for i in _decided(art, X, 6):
            case = ex.case(X[i])
            r = ex.explain(case, "contrastive", **kw)
            d = Domain.build(enc, case.levels, X[i], **kw)
            assert r["domain"] == d.describe()
            if r["witness"] is None:
                continue
            seen += 1
            x2 = np.array(r["witness"]["x"], np.float32)
            assert art.decide(x2[None, :])[0] != int(case.decision)
            assert d.contains(enc.levels(enc.encode(x2[None, :])))[0]
            changed = {c["column"] for c in r["witness"]["changes"]}
            assert changed == {f["column"] for f in r["features"]}
    assert seen >= 1 or kw


def test_robust_rows_have_empty_explanations_and_verify_agrees(art2):
    """At delta 0 (the input's own cell) every decided row is robust: an empty explanation, and
    verify says robust; the whole box is not robust for these random bounds."""
    art = load_artifact(art2)
    X = load_data("breast_cancer").X
    with Explainer(art, use_store=False, budget=0) as ex:
        for i in _decided(art, X, 3):
            case = ex.case(X[i])
            r = ex.explain(case, "abductive", delta=0.0)
            assert r["size"] == 0 and r["robust"] and r["minimal"]
            assert ex.verify(case, delta=0.0, scope="bound")["robust"] is True
            v = ex.verify(case, radius=int(np.diff(art.encoder.offsets).max()), scope="bound")
            assert v["domain"]["kind"] == "radius"


def test_store_keys_on_the_domain(art2, capsys):
    art = load_artifact(art2)
    row = str(int(_decided(art, load_data("breast_cancer").X, 1)[0]))
    base = ["explain", art2, "--data", "breast_cancer", "--row", row, "--json"]
    got = []
    for extra in ([], ["--delta", "0.5"], ["--delta", "0.5"], ["--radius", "1"], []):
        assert main(base + extra) == 0
        got.append(json.loads(capsys.readouterr().out))
    assert [g["domain"]["kind"] for g in got] == ["box", "delta", "delta", "radius", "box"]
    assert [g["cached"] for g in got] == [False, False, True, False, True]


def test_stable_neurons_hold_on_every_point_of_the_box(art2):
    """The pre-pass's fixed neurons: on random level boxes, every enumerated input gives each
    neuron the interval engine calls stable exactly that value."""
    art = load_artifact(art2)
    enc = art.encoder
    rng = np.random.default_rng(2)
    X = load_data("breast_cancer").X
    with Explainer(art, use_store=False) as ex:
        o = ex.oracle
        fixed = 0
        for trial in range(20):
            levels = enc.levels(enc.encode(X[trial : trial + 1]))[0]
            free = rng.choice(enc.n_kept, 6, replace=False)
            lo, hi = levels.copy(), levels.copy()
            lo[free], hi[free] = 0, np.diff(enc.offsets)[free]
            grids = np.meshgrid(*[np.arange(lo[f], hi[f] + 1) for f in free], indexing="ij")
            rows = np.repeat(levels[None, :], grids[0].size, axis=0)
            for f, g in zip(free, grids):
                rows[:, f] = g.reshape(-1)
            for b, net in (("upper", art.upper), ("lower", art.lower)):
                x = enc.bits_from_levels(rows)
                for layer, (fires, silent) in zip(net.layers, o.boxes[_bound(b)].stable(lo, hi)):
                    x = layer_forward(layer, pack_bits(x))
                    assert np.all(x[:, fires] == 1) and np.all(x[:, silent] == 0)
                    fixed += int(fires.sum() + silent.sum())
    assert fixed > 0


def _bound(name):
    from bnnembed.logic.explain.oracle import Bound
    return Bound(name)


def test_quickxplain_finds_minimal_sets_with_few_questions():
    """A monotone predicate "X hits every set of a family" (a minimal hitting set): the result is
    a hitting set, no member can go, and small answers take far fewer questions than candidates."""
    rng = np.random.default_rng(0)
    for trial in range(40):
        n = 60
        family = [set(rng.choice(n, int(rng.integers(1, 4)), replace=False).tolist()) for _ in range(3)]
        asked = []

        def p(X):
            asked.append(1)
            return all(X & s for s in family)

        got = quickxplain(p, list(range(n)))
        assert p(frozenset(got))
        assert all(not p(frozenset(got) - {c}) for c in got)
        assert len(asked) - 1 - len(got) < n // 2, (len(asked), got)


@pytest.mark.parametrize("argv,needle", [
    (["--delta", "-1"], "--delta must be a finite number >= 0"),
    (["--delta", "nan"], "--delta must be a finite number >= 0"),
    (["--delta", "1", "--radius", "1"], "not both"),
    (["--radius", "4"], "beyond the encoding's levels"),
])
@pytest.mark.parametrize("command", ["explain", "verify"])
def test_bad_domain_flags_are_one_line(art2, capsys, command, argv, needle):
    assert main([command, art2, "--data", "breast_cancer", "--row", "0"] + argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0], err


def test_explaining_a_deferred_row_says_so(art2, capsys):
    art = load_artifact(art2)
    X = load_data("breast_cancer").X
    unknown = np.flatnonzero(art.decide(X) == int(Decision.UNKNOWN))
    assert unknown.size, "the fixture must defer some row"
    argv = ["explain", art2, "--data", "breast_cancer", "--row", str(int(unknown[0]))]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "left to the DNN" in err[0] and "--scope decision" in err[0]
    assert main(argv + ["--scope", "decision", "--json"]) == 0  # what can be asked instead
    r = json.loads(capsys.readouterr().out)
    assert r["decision"] == "unknown" and r["domain"] == {"kind": "box"}


def test_certify_box_stays_inside_the_delta_domain(art2):
    """The DNN's box for an explanation under --delta lies within [x - D, x + D] and within the
    pinned features' cells."""
    from bnnembed.logic.certify.boxes import explanation_box

    art = load_artifact(art2)
    enc = art.encoder
    X = load_data("breast_cancer").X
    lo, hi = X.min(0).astype(np.float64), X.max(0).astype(np.float64)
    levels = enc.levels(enc.encode(X[:1]))[0]
    d = Domain.build(enc, levels, X[0], delta=0.5)
    pinned = [(0, int(levels[0])), (3, int(levels[3]))]
    blo, bhi, _ = explanation_box(enc, pinned, lo, hi, X[0], d)
    assert np.all(blo >= X[0] - 0.5 - 1e-9) and np.all(bhi <= X[0] + 0.5 + 1e-9)
    assert np.all(blo <= X[0]) and np.all(X[0] <= bhi)
    wlo, whi, _ = explanation_box(enc, pinned, lo, hi, X[0])
    assert np.all(blo >= wlo) and np.all(bhi <= whi) and np.any(bhi - blo < whi - wlo)
