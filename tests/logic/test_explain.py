"""Explanations checked by separate solver calls on the artifact's DIMACS CNF."""

from __future__ import annotations

import os

import numpy as np
import pytest
from pysat.solvers import Solver

from bnnembed.artifact import load_artifact, write_artifact
from bnnembed.cli import main
from bnnembed.render.cnf import cnf_path, read_dimacs, split_clauses, write_cnf
from bnnembed.learn.data import load_data
from bnnembed.logic.explain import Explainer
from bnnembed.model.intmodel import BoundNet, IntLayer, flip_output
from bnnembed.model.encoding import fit_thermometer
from bnnembed.model.packing import pack_bits


@pytest.fixture(scope="module", params=["pair", "one"])
def tiny(tmp_path_factory, request) -> str:
    """breast_cancer, 1 thermometer bit a feature, random 30-8-4-1 bounds: small enough for
    exact SAT checks of every claim. A pair, and one network read both ways (the lower bound the
    upper's hidden layers with its output neuron flipped)."""
    ds = load_data("breast_cancer")
    enc, _ = fit_thermometer(ds.X, 1)
    rng = np.random.default_rng(3)

    def net(answer):
        layers, n = [], enc.n_bits
        for m in (8, 4, 1):
            layers.append(IntLayer(n, pack_bits(rng.integers(0, 2, (m, n)).astype(np.uint8)),
                                   np.full(m, n // 2 + 1)))
            n = m
        return BoundNet(answer, tuple(layers))

    out = str(tmp_path_factory.mktemp("tiny"))
    manifest = {"features": {"names": ds.feature_names}, "dataset": {"image_shape": None},
                "positive": {"values": [0]}}
    upper = net("yes")
    lower = flip_output(upper, "no") if request.param == "one" else net("no")
    write_artifact(out, manifest, enc, upper, lower)
    write_cnf(out)
    return out


def _solver(path, name):
    _, _, flat = read_dimacs(cnf_path(path, f"cnf_{name}.cnf"))
    return Solver(name="g4", bootstrap_with=split_clauses(flat))


def _pin(art, levels, feats):
    enc = art.encoder
    out = []
    for f in feats:
        lo, hi = int(enc.offsets[f]), int(enc.offsets[f + 1])
        out += [b + 1 if b - lo < levels[f] else -(b + 1) for b in range(lo, hi)]
    return out


def test_abductive_sufficient_and_minimal(tiny):
    art = load_artifact(tiny)
    ds = load_data("breast_cancer")
    import json
    meta = json.load(open(cnf_path(tiny, "cnf.json")))
    with Explainer(art, use_store=False) as ex:
        done = 0
        for i in range(40):
            case = ex.case(ds.X[i])
            if case.decision.label == "unknown":
                continue
            r = ex.explain(case, "abductive")
            assert r["minimal"]
            name = "upper" if case.decision.label == "yes" else "lower"
            out = meta["bounds"][name]["decision"]
            feats = [art.encoder.feature_index.tolist().index(f["column"]) for f in r["features"]]
            with _solver(tiny, name) as s:
                assert not s.solve(assumptions=_pin(art, case.levels, feats) + [-out])  # sufficient
                for f in feats:  # minimal
                    rest = [g for g in feats if g != f]
                    assert s.solve(assumptions=_pin(art, case.levels, rest) + [-out])
            done += 1
        assert done >= 5


def _decided_rows(art, X, n):
    dec = art.decide(X)
    rows = np.flatnonzero(dec != 2)[:n]
    assert len(rows) >= min(n, 5), "the fixture must decide rows for these checks to run"
    return rows


def test_contrastive_witness_and_minimal(tiny):
    """Every decided row's contrastive explanation: a witness that numpy decides otherwise, and,
    checked with a separate solver on the DIMACS file, freeing the named features can flip the
    answering bound while freeing any one fewer cannot (subset-minimal)."""
    art = load_artifact(tiny)
    ds = load_data("breast_cancer")
    import json
    meta = json.load(open(cnf_path(tiny, "cnf.json")))
    kept = art.encoder.feature_index.tolist()
    n_feat = len(kept)
    computed = witnessed = 0
    with Explainer(art, use_store=False) as ex:
        for i in _decided_rows(art, ds.X, 12):
            case = ex.case(ds.X[i])
            r = ex.explain(case, "contrastive")
            computed += 1
            name = "upper" if case.decision.label == "yes" else "lower"
            out = meta["bounds"][name]["decision"]
            with _solver(tiny, name) as s:
                if r["witness"] is None:  # nothing can change it: the bound answers on the whole domain
                    assert not s.solve(assumptions=[-out])
                    continue
                witnessed += 1
                assert r["witness"]["replayed"]
                x2 = np.array(r["witness"]["x"], dtype=np.float32)
                assert art.decide(x2[None, :])[0] != int(case.decision)
                freed = [kept.index(f["column"]) for f in r["features"]]
                pinned = [f for f in range(n_feat) if f not in freed]
                assert s.solve(assumptions=_pin(art, case.levels, pinned) + [-out])
                if r["minimal"]:
                    for f in freed:
                        assert not s.solve(assumptions=_pin(art, case.levels, pinned + [f]) + [-out])
    assert computed >= 5 and witnessed >= 3


def _within_radius(art, levels, radius):
    """Assumptions: every feature's thermometer level within +-radius of ``levels``."""
    enc = art.encoder
    out = []
    for f in range(len(enc.feature_index)):
        lo, hi = int(enc.offsets[f]), int(enc.offsets[f + 1])
        for k, b in enumerate(range(lo, hi)):
            if k < levels[f] - radius:
                out.append(b + 1)  # still set at the lowest level allowed
            elif k >= levels[f] + radius:
                out.append(-(b + 1))  # still clear at the highest level allowed
    return out


def test_verify_decided_rows_checked_independently(tiny, capsys):
    """verify on decided rows: a robust verdict means the answering bound cannot stop answering
    within the radius (a separate solver on the DIMACS file agrees); a counterexample replays
    through numpy to another decision within the radius."""
    import json
    art = load_artifact(tiny)
    ds = load_data("breast_cancer")
    meta = json.load(open(cnf_path(tiny, "cnf.json")))
    verdicts = set()
    for i in _decided_rows(art, ds.X, 8):
        assert main(["verify", tiny, "--data", "breast_cancer", "--row", str(i), "--radius", "1", "--json"]) == 0
        r = json.loads(capsys.readouterr().out)
        verdicts.add(r["robust"])
        x = ds.X[i]
        with Explainer(art, use_store=False) as ex:
            case = ex.case(x)
        assert r["decision"] == case.decision.label
        if r["robust"]:
            name = "upper" if case.decision.label == "yes" else "lower"
            with _solver(tiny, name) as s:
                assert not s.solve(assumptions=_within_radius(art, case.levels, 1) + [-meta["bounds"][name]["decision"]])
        elif r["robust"] is False:
            ce = r["counterexample"]
            x2 = x.copy()
            for c in ce["changes"]:
                x2[c["column"]] = c["to"]
            assert art.decide(x2[None, :])[0] != int(case.decision)
            assert ce["decision"] != r["decision"]
    assert verdicts <= {True, False} and verdicts, verdicts


def _first_decided(path) -> str:
    art = load_artifact(path)
    return str(int(_decided_rows(art, load_data("breast_cancer").X, 1)[0]))


def test_verify_and_lookup_cli(tiny, capsys):
    row = _first_decided(tiny)
    assert main(["explain", tiny, "--data", "breast_cancer", "--row", row, "--json"]) == 0
    import json
    capsys.readouterr()
    assert main(["explain", tiny, "--data", "breast_cancer", "--row", row, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["cached"] is True
    assert main(["explain", tiny, "--id", r["decision_id"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["decision_id"] == r["decision_id"]
    assert main(["explain", tiny, "--id", "0000000000000000"]) == 2
    assert main(["explain", tiny, "--data", "breast_cancer", "--row", "100000"]) == 2
    assert "out of range" in capsys.readouterr().err


def test_explanations_need_no_cnf_files(tmp_path, tiny, capsys):
    """The explainer encodes the bounds from the model in memory: an artifact whose workspace (CNF
    export, explanation store) is gone explains the same, and the artifact itself is never
    written to (its manifest and hashed files are unchanged)."""
    import json
    import shutil

    from bnnembed.artifact import WORKSPACE

    d = str(tmp_path / "nocnf")
    shutil.copytree(tiny, d)
    shutil.rmtree(os.path.join(d, WORKSPACE))
    before = {f: open(os.path.join(d, f), "rb").read() for f in os.listdir(d) if os.path.isfile(os.path.join(d, f))}
    row = _first_decided(tiny)
    assert main(["explain", d, "--data", "breast_cancer", "--row", row, "--json"]) == 0
    without = json.loads(capsys.readouterr().out)
    assert main(["explain", tiny, "--data", "breast_cancer", "--row", row, "--json"]) == 0
    with_cnf = json.loads(capsys.readouterr().out)
    assert {k: v for k, v in without.items() if k not in ("seconds", "cached", "sat_calls")} == \
        {k: v for k, v in with_cnf.items() if k not in ("seconds", "cached", "sat_calls")}
    after = {f: open(os.path.join(d, f), "rb").read() for f in before}
    assert after == before and not os.path.exists(os.path.join(d, "cnf.json"))
    assert os.path.exists(os.path.join(d, WORKSPACE, "explanations.sqlite"))


def test_store_does_not_reuse_an_answer_cut_short_for_a_larger_budget(tmp_path, tiny):
    """An explanation a budget cut short (not proven minimal) answers a later request only if that
    request's budgets are no larger; a request with more time or conflicts computes it again."""
    import shutil

    from bnnembed.artifact import WORKSPACE

    d = str(tmp_path / "art")
    shutil.copytree(tiny, d, ignore=shutil.ignore_patterns(WORKSPACE))  # an empty store
    art = load_artifact(d)
    x = load_data("breast_cancer").X[int(_first_decided(tiny))]
    with Explainer(art, budget=2_000, seconds=None) as ex:
        case = ex.case(x)
        first = ex.explain(case)
        assert first["cached"] is False and first["minimal"] is True and "budget" not in first
        request = ex.request("explain", ex.domain(case), kind="abductive", scope="bound", search=ex.strategy)
        assert ex.explain(case)["cached"] is True  # a complete answer is always reused
        cut = {**first, "minimal": False, "budget": {"seconds": 1.0, "conflicts": 10}}
        ex.store.put(case.did, request, cut, 0.0)
        assert ex.explain(case)["cached"] is False  # more conflicts and no time limit: computed again
    for seconds, conflicts, reused in [(1.0, 10, True), (0.5, 5, True), (2.0, 10, False), (1.0, 0, False)]:
        with Explainer(art, budget=conflicts, seconds=seconds) as ex:
            ex.store.put(case.did, request, cut, 0.0)
            assert ex.explain(ex.case(x))["cached"] is reused, (seconds, conflicts)
    legacy = {k: v for k, v in cut.items() if k != "budget"}  # stored before budgets were recorded
    with Explainer(art, budget=10, seconds=1.0) as ex:
        ex.store.put(case.did, request, legacy, 0.0)
        assert ex.explain(ex.case(x))["cached"] is False
