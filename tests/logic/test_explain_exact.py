"""The branch and bound over feature levels against plain SAT; batch mode; missing CNF."""

from __future__ import annotations

import os

import json

import numpy as np
import pytest
from pysat.solvers import Solver

from bnnembed.artifact import load_artifact, write_artifact
from bnnembed.cli import main
from bnnembed.render.cnf import cnf_path, read_dimacs, split_clauses, write_cnf
from bnnembed.learn.data import load_data
from bnnembed.model.encoding import fit_thermometer
from bnnembed.logic.explain import Explainer
from bnnembed.logic.explain.bab import BoxSearch
from bnnembed.logic.explain.batch import explain_all
from bnnembed.logic.explain.oracle import Bound
from bnnembed.model.intmodel import BoundNet, Decision, IntLayer, bound_answers
from bnnembed.model.packing import pack_bits


def _random_artifact(out: str, bits: int, widths=(10, 6), seed: int = 5, cnf: bool = True) -> str:
    """breast_cancer with ``bits`` thermometer bits a feature and random bounds whose thresholds
    sit near the middle, so that boxes are neither trivially proven nor trivially broken."""
    ds = load_data("breast_cancer")
    enc, _ = fit_thermometer(ds.X, bits)
    rng = np.random.default_rng(seed)

    def net(answer):
        layers, n = [], enc.n_bits
        for m in (*widths, 1):
            layers.append(IntLayer(n, pack_bits(rng.integers(0, 2, (m, n)).astype(np.uint8)),
                                   rng.integers(n // 2 - 2, n // 2 + 3, m)))
            n = m
        return BoundNet(answer, tuple(layers))

    manifest = {"features": {"names": ds.feature_names}, "dataset": {"image_shape": None},
                "positive": {"values": [0]}}
    write_artifact(out, manifest, enc, net("yes"), net("no"))
    if cnf:
        write_cnf(out)
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> str:
    return _random_artifact(str(tmp_path_factory.mktemp("bab")), bits=3)


def test_box_search_agrees_with_sat(small):
    """Random boxes (some features pinned, some restricted, the rest free): the branch and
    bound's verdict equals a complete SAT call on the exact CNF, and its counterexamples lie in
    the box and break the target in the numpy reference."""
    art = load_artifact(small)
    ds = load_data("breast_cancer")
    rng = np.random.default_rng(0)
    verdicts = {True: 0, False: 0}
    with Explainer(art, use_store=False, budget=0) as ex:
        o = ex.oracle
        search = BoxSearch(o, leaf_points=8, node_budget=10**7)
        for trial in range(60):
            case = ex.case(ds.X[int(rng.integers(len(ds.X)))])
            bound = Bound.UPPER if trial % 2 else Bound.LOWER
            target = ((bound, case.upper if bound is Bound.UPPER else case.lower),)
            lo, hi = case.levels.copy(), case.levels.copy()
            n_free = int(rng.integers(1, 12))
            free = rng.choice(o.n_features, n_free, replace=False)
            for f in free:
                a, b = sorted(rng.integers(0, int(o.n_levels[f]) + 1, 2))
                lo[f], hi[f] = min(a, lo[f]), max(b, hi[f])
            ranges = {f: (int(lo[f]), int(hi[f])) for f in range(o.n_features)}
            want, _ = o._sat(ranges, target, 0)
            got, w = search.decide(lo, hi, target)
            assert got is want, trial
            verdicts[got] += 1
            if got is False:
                assert np.all((w >= lo) & (w <= hi))
                assert not o.replay.holds(w[None, :], target)[0]
    assert verdicts[True] >= 5 and verdicts[False] >= 5, verdicts


def _dimacs_solver(path: str, name: str) -> Solver:
    """A solver of our own on the artifact's DIMACS file (not the explainer's oracle)."""
    _, _, flat = read_dimacs(cnf_path(path, f"cnf_{name}.cnf"))
    return Solver(name="g4", bootstrap_with=split_clauses(flat))


def _pin(enc, levels, feats) -> list[int]:
    """Assumptions fixing every thermometer bit of the given kept features at ``levels``."""
    out = []
    for f in feats:
        lo, hi = int(enc.offsets[f]), int(enc.offsets[f + 1])
        out += [b + 1 if b - lo < levels[f] else -(b + 1) for b in range(lo, hi)]
    return out


N_MINIMALITY_ROWS = 8


def test_explanations_are_minimal_with_the_exact_oracle(small):
    """With several levels a feature, deletion with the branch and bound decides every test:
    on the first N_MINIMALITY_ROWS decided rows the explanations come out proven minimal, and a
    separate solver on the artifact's DIMACS CNF agrees: pinning the named features keeps the
    answering bound answering (sufficient), and freeing any one of them lets it fail (minimal),
    with a counterexample the numpy bound confirms and that agrees with the row on every other
    pinned feature."""
    art = load_artifact(small)
    ds = load_data("breast_cancer")
    meta = json.load(open(cnf_path(small, "cnf.json")))
    enc = art.encoder
    cols = enc.feature_index.tolist()
    rows = np.flatnonzero(art.decide(ds.X) != int(Decision.UNKNOWN))[:N_MINIMALITY_ROWS]
    assert len(rows) == N_MINIMALITY_ROWS, "the fixture must decide enough rows for this check"
    checked = removals = 0
    with Explainer(art, use_store=False, budget=0) as ex:
        for i in rows:
            case = ex.case(ds.X[i])
            assert case.decision.label in ("yes", "no")
            r = ex.explain(case, "abductive")
            assert r["minimal"], i
            feats = [cols.index(f["column"]) for f in r["features"]]
            name = "upper" if case.decision.label == "yes" else "lower"
            net = art.upper if name == "upper" else art.lower
            out = meta["bounds"][name]["decision"]
            levels = enc.levels(enc.encode(ds.X[i : i + 1]))[0]
            with _dimacs_solver(small, name) as s:
                assert s.solve(assumptions=_pin(enc, levels, range(enc.n_kept)) + [out])  # the row itself
                assert not s.solve(assumptions=_pin(enc, levels, feats) + [-out]), f"row {i}: not sufficient"
                for f in feats:
                    rest = [g for g in feats if g != f]
                    assert s.solve(assumptions=_pin(enc, levels, rest) + [-out]), f"row {i}: feature {f} is redundant"
                    bits = np.array([s.get_model()[b] > 0 for b in range(enc.n_bits)], np.uint8)[None, :]
                    assert not bound_answers(net, bits)[0]  # numpy agrees the bound fails there
                    assert np.array_equal(enc.levels(bits)[0][rest], levels[rest])
                    removals += 1
            checked += 1
    assert checked == N_MINIMALITY_ROWS and removals >= N_MINIMALITY_ROWS, (checked, removals)


def test_batch_mode_writes_rows_in_order_and_fills_the_store(small, tmp_path, capsys):
    art = load_artifact(small)
    X = load_data("breast_cancer").X[:8]
    out = str(tmp_path / "all.jsonl")
    assert explain_all(art.path, X, out, workers=2, progress=False, seconds=5) == 8
    lines = [json.loads(line) for line in open(out)]
    assert [r["row"] for r in lines] == list(range(8))
    with Explainer(art, use_store=False) as ex:
        for r, x in zip(lines, X):
            case = ex.case(x)
            assert r["decision_id"] == case.did and r["decision"] == case.decision.label
    # every explanation is now answered from the store by its decision id
    capsys.readouterr()
    assert main(["explain", small, "--id", lines[3]["decision_id"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cached"] is True


def test_artifact_without_cnf_explains_and_exports_on_demand(tmp_path, capsys):
    """Explanations need no CNF files (the oracle encodes the model in memory); 'bnnembed cnf'
    exports the DIMACS files into the workspace, never into the hashed artifact."""
    from bnnembed.artifact import WORKSPACE, read_manifest

    d = _random_artifact(str(tmp_path / "nocnf"), bits=2, cnf=False)
    for argv in (["explain", d, "--data", "breast_cancer", "--row", "0", "--seconds", "2"],
                 ["verify", d, "--data", "breast_cancer", "--row", "0", "--radius", "1", "--seconds", "2"]):
        assert main(argv) == 0
        capsys.readouterr()
    files_before = dict(read_manifest(d)["files"])
    assert main(["cnf", d]) == 0
    assert f"{WORKSPACE}/cnf_upper.cnf" in capsys.readouterr().out
    assert os.path.isfile(cnf_path(d, "cnf.json")) and os.path.dirname(cnf_path(d, "cnf.json")).endswith(WORKSPACE)
    assert read_manifest(d)["files"] == files_before
