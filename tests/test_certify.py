"""Certification: ONNX reader, DNN box verification, bound MILP rows, certified explanations.

Independent checks: every certificate is attacked by random sampling and by gradient steps on a
torch module rebuilt from the ONNX weights (not the MILP's own model); every refutation carries
a counterexample that the onnxruntime DNN replays.
"""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest

from bnnembed.certify import Status, VerifyConfig, read_onnx, verify_box
from bnnembed.certify._milp import MilpBuilder
from bnnembed.certify.bound_milp import Bits, bound_rows, snap_to_bits, thermometer_rows
from bnnembed.certify.explanations import explanation_box
from bnnembed.errors import BnnError
from bnnembed.intmodel import BoundNet, IntLayer, bound_scores
from bnnembed.packing import pack_bits

# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bc_dnn(tmp_path_factory):
    """The default DNN architecture (standardisation baked in) on breast_cancer, small and quick."""
    from bnnembed.data import load_data
    from bnnembed.dnn import load_dnn, train_default_dnn

    ds = load_data("breast_cancer")
    path = str(tmp_path_factory.mktemp("dnn") / "dnn.onnx")
    train_default_dnn(ds.X, ds.y_yes(), path, hidden=(16, 8), epochs=15)
    return ds, read_onnx(path), load_dnn(path, ds.X.shape[1]), path


def torch_from_plnet(net):
    """A torch module with the PlNet's folded weights (for gradient attacks independent of numpy)."""
    import torch

    mods = []
    for i, (W, b) in enumerate(net.layers):
        lin = torch.nn.Linear(W.shape[1], W.shape[0]).double()
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W))
            lin.bias.copy_(torch.from_numpy(b))
        mods.append(lin)
        if i < len(net.layers) - 1:
            mods.append(torch.nn.ReLU())
    return torch.nn.Sequential(*mods)


def attack_box(dnn, net, lo, hi, claim, n_random=2000, n_pgd=64, steps=40, seed=0):
    """Random points and PGD (torch autograd) inside [lo, hi]; returns points where the onnxruntime
    DNN contradicts the claim."""
    import torch

    rng = np.random.default_rng(seed)
    pts = [lo + rng.random((n_random, len(lo))) * (hi - lo)]
    model = torch_from_plnet(net)
    x = torch.from_numpy(lo + rng.random((n_pgd, len(lo))) * (hi - lo)).requires_grad_(True)
    lo_t, hi_t = torch.from_numpy(lo), torch.from_numpy(hi)
    sign = 1.0 if claim == "yes" else -1.0
    for s in range(steps):
        out = model(x)[:, 0] * sign
        (g,) = torch.autograd.grad(out.sum(), x)
        with torch.no_grad():
            x -= (0.1 * (1 - s / steps) + 0.005) * torch.sign(g) * (hi_t - lo_t)
            x.copy_(torch.maximum(torch.minimum(x, hi_t), lo_t))
        pts.append(x.detach().numpy().copy())
    X = np.clip(np.vstack(pts), lo, hi).astype(np.float32)
    X = np.clip(X, lo.astype(np.float32), hi.astype(np.float32))
    yes = dnn.says_yes(X)
    bad = yes != (claim == "yes")
    return X[bad]


# --------------------------------------------------------------------------------------------
# ONNX reader
# --------------------------------------------------------------------------------------------


def test_read_onnx_matches_runtime_and_error_bound(bc_dnn):
    ds, net, dnn, _ = bc_dnn
    assert [W.shape for W, _ in net.layers] == [(16, 30), (8, 16), (1, 8)]
    exact = net.forward(ds.X)[:, 0]
    ort = dnn.raw(ds.X)[:, 0]
    err = net.fp_error_bound(ds.X.min(0), ds.X.max(0))[0]
    assert np.max(np.abs(exact - ort)) <= err
    assert err < 0.05


def test_read_onnx_refuses_unsupported(tmp_path):
    import torch

    class M(torch.nn.Module):
        def forward(self, x):
            return torch.sigmoid(x[:, :1])

    path = str(tmp_path / "sig.onnx")
    torch.onnx.export(M(), (torch.zeros(2, 3),), path, input_names=["x"], dynamo=False)
    with pytest.raises(BnnError, match="Sigmoid|Slice|Gather"):
        read_onnx(path)


def test_read_onnx_multiclass_matmul(tmp_path):
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    path = str(tmp_path / "mc.onnx")
    torch.onnx.export(model, (torch.zeros(2, 4),), path, input_names=["x"], dynamo=False,
                      dynamic_axes={"x": {0: "b"}})
    net = read_onnx(path)
    X = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(X)).numpy()
    assert np.allclose(net.forward(X), ref, atol=1e-5)


# --------------------------------------------------------------------------------------------
# DNN box verification
# --------------------------------------------------------------------------------------------


def _boxes(ds, frac_list, n):
    lo, hi = ds.X.min(0).astype(np.float64), ds.X.max(0).astype(np.float64)
    for i in range(n):
        x = ds.X[i].astype(np.float64)
        for frac in frac_list:
            yield x, np.maximum(lo, x - frac * (hi - lo)), np.minimum(hi, x + frac * (hi - lo))


def test_verify_box_certificates_survive_attacks_and_refutations_replay(bc_dnn):
    ds, net, dnn, _ = bc_dnn
    seen = set()
    for x, lo, hi in _boxes(ds, (0.02, 0.1, 0.5), 6):
        claim = "yes" if dnn.says_yes(x[None, :].astype(np.float32))[0] else "no"
        r = verify_box(net, dnn, lo, hi, claim, VerifyConfig(time_limit=20))
        seen.add(r.status)
        if r.status == Status.CERTIFIED:
            assert len(attack_box(dnn, net, lo, hi, claim)) == 0
        elif r.status == Status.REFUTED:
            c = r.counterexample
            assert np.all(c >= lo.astype(np.float32)) and np.all(c <= hi.astype(np.float32))
            assert bool(dnn.says_yes(c[None, :])[0]) != (claim == "yes")
    assert Status.CERTIFIED in seen and Status.REFUTED in seen


def test_milp_alone_certifies_and_refutes(bc_dnn):
    """Without IBP shortcuts or the attack, the MILP decides; its counterexamples replay."""
    ds, net, dnn, _ = bc_dnn
    cfg = VerifyConfig(time_limit=20, attack_points=0, attack_steps=0, tighten=False)
    statuses = []
    for x, lo, hi in _boxes(ds, (0.15, 1.0), 3):
        claim = "yes" if dnn.says_yes(x[None, :].astype(np.float32))[0] else "no"
        r = verify_box(net, dnn, lo, hi, claim, cfg)
        statuses.append((r.method, r.status))
        if r.status == Status.REFUTED:
            assert bool(dnn.says_yes(r.counterexample[None, :])[0]) != (claim == "yes")
        if r.status == Status.CERTIFIED:
            assert len(attack_box(dnn, net, lo, hi, claim, n_random=500, n_pgd=16)) == 0
    assert ("milp", Status.REFUTED) in statuses


def test_verify_box_multiclass(tmp_path):
    import torch

    from bnnembed.dnn import load_dnn

    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    path = str(tmp_path / "mc.onnx")
    torch.onnx.export(model, (torch.zeros(2, 3),), path, input_names=["x"], dynamo=False,
                      dynamic_axes={"x": {0: "b"}})
    net = read_onnx(path)
    rng = np.random.default_rng(0)
    found = set()
    for pos, _ in itertools.product(((0,), (1,), (0, 2)), range(4)):
        dnn = load_dnn(path, 3, positive=pos, labels=np.array([0, 1, 2]))
        c = rng.normal(size=3) * 2
        for w in (0.01, 0.3, 3.0):
            lo, hi = c - w, c + w
            claim = "yes" if dnn.says_yes(c[None, :].astype(np.float32))[0] else "no"
            r = verify_box(net, dnn, lo, hi, claim, VerifyConfig(time_limit=10))
            found.add(r.status)
            if r.status == Status.REFUTED:
                assert bool(dnn.says_yes(r.counterexample[None, :])[0]) != (claim == "yes")
            if r.status == Status.CERTIFIED:
                assert len(attack_box(dnn, net, lo, hi, claim, n_random=500, n_pgd=8)) == 0
    assert Status.CERTIFIED in found and Status.REFUTED in found


# --------------------------------------------------------------------------------------------
# bound as MILP rows: exhaustive agreement with numpy on tiny nets
# --------------------------------------------------------------------------------------------


def _random_bound(rng, n_in, hidden):
    widths = [n_in, *hidden, 1]
    layers = []
    for a, b in zip(widths, widths[1:]):
        W = rng.integers(0, 2, size=(b, a)).astype(np.uint8)
        T = rng.integers(0, a + 2, size=b).astype(np.int32)
        layers.append(IntLayer(a, pack_bits(W), T))
    return BoundNet("yes", tuple(layers))


@pytest.mark.parametrize("seed", [0, 1])
def test_bound_rows_force_the_numpy_score(seed):
    rng = np.random.default_rng(seed)
    n_in = 6
    net = _random_bound(rng, n_in, (5, 4))
    for assignment in itertools.product((0, 1), repeat=n_in):
        a = np.array(assignment, dtype=np.uint8)
        want = int(bound_scores(net, a[None, :])[0])
        for sense in (False, True):
            b = MilpBuilder()
            v = b.add_vars(a.astype(float), a.astype(float), integer=True)
            score, L, U = bound_rows(b, net, Bits(v, np.zeros(n_in, np.int64)))
            assert L <= want <= U
            b.set_objective(score[0], score[1])
            sol = b.solve(5.0, maximize=sense)
            assert sol.status == "optimal"
            assert round(sol.objective + score[2]) == want


def test_thermometer_rows_and_snap():
    from bnnembed.encoding import fit_thermometer

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    enc, _ = fit_thermometer(X, 3)
    lo, hi = X.min(0).astype(np.float64), X.max(0).astype(np.float64)
    for x in X[:20]:
        b = MilpBuilder()
        xv = b.add_vars(x.astype(np.float64), x.astype(np.float64))
        bits = thermometer_rows(b, enc, xv, lo, hi)
        b.set_objective(bits.var[bits.is_var], np.ones(int(bits.is_var.sum())))
        for sense in (False, True):
            sol = b.solve(5.0, maximize=sense)
            vals = np.where(bits.is_var, np.rint(sol.x[np.maximum(bits.var, 0)]), bits.const).astype(np.uint8)
            code = enc.encode(x[None, :])[0]
            # only a value exactly on a threshold may take both codes (the closed encoding)
            on_threshold = np.isin(x, enc.thresholds).any()
            assert np.array_equal(vals, code) or on_threshold
            snapped = snap_to_bits(enc, x, vals)
            assert np.array_equal(enc.encode(snapped[None, :])[0], vals)


def test_explanation_box_is_the_interval_region():
    from bnnembed.encoding import fit_thermometer

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    enc, _ = fit_thermometer(X, 3)
    lo, hi = X.min(0).astype(np.float64), X.max(0).astype(np.float64)
    x = X[0]
    levels = enc.levels(enc.encode(x[None, :]))[0]
    pinned = [(0, int(levels[0])), (2, int(levels[2]))]
    blo, bhi, hopen = explanation_box(enc, pinned, lo, hi, x)
    assert np.all(blo <= x) and np.all(x <= bhi)
    # points sampled in the box (open sides excluded) have the pinned levels
    P = blo + rng.random((500, 4)) * (bhi - blo)
    P = P.astype(np.float32)
    P = P[~np.any((P >= bhi.astype(np.float32)) & hopen, axis=1)]
    lv = enc.levels(enc.encode(P))
    assert np.all(lv[:, 0] == levels[0]) and np.all(lv[:, 2] == levels[2])


# --------------------------------------------------------------------------------------------
# an artifact end to end: explanations certified, CLI, metrics, whole domain
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_artifact(tmp_path_factory):
    """A small artifact built in-process: default-DNN architecture, 3-bit thermometer, 16 hidden."""
    from bnnembed.artifact import write_artifact
    from bnnembed.cnf import write_cnf
    from bnnembed.data import load_data
    from bnnembed.dnn import load_dnn, train_default_dnn
    from bnnembed.encoding import fit_thermometer
    from bnnembed.train import TrainConfig, fold_batchnorm, train_bound

    ds = load_data("breast_cancer")
    out = str(tmp_path_factory.mktemp("art"))
    rng = np.random.default_rng(0)
    idx = rng.permutation(ds.n_rows)
    n = ds.n_rows
    split = {"train": idx[: n // 2], "calibration": idx[n // 2: 3 * n // 4], "test": idx[3 * n // 4:]}
    train_default_dnn(ds.X[split["train"]], ds.y_yes()[split["train"]], os.path.join(out, "dnn.onnx"),
                      hidden=(16, 8), epochs=15)
    dnn = load_dnn(os.path.join(out, "dnn.onnx"), ds.X.shape[1])
    yes = dnn.says_yes(ds.X)
    enc, _ = fit_thermometer(ds.X[split["train"]], 3)
    bits = enc.encode(ds.X)
    cfg = TrainConfig(hidden=(16,), epochs=8)
    tr = split["train"]
    up = fold_batchnorm(train_bound(bits[tr], yes[tr], cfg), "yes")
    lo = fold_batchnorm(train_bound(bits[tr], ~yes[tr], cfg), "no")
    for name in ("up", "lo"):
        net = up if name == "up" else lo
        target = yes if name == "up" else ~yes
        s = bound_scores(net, bits[split["calibration"]])
        bad = s[~target[split["calibration"]]]
        tau = int(bad.max() + 1) if len(bad) else net.tau
        if name == "up":
            up = up.with_tau(tau)
        else:
            lo = lo.with_tau(tau)
    np.savez(os.path.join(out, "split.npz"), **split)
    with open(os.path.join(out, "metrics.json"), "w") as fh:
        json.dump({"test": {"rows": len(split["test"])}}, fh)
    manifest = {"features": {"names": ds.feature_names}, "dnn": {"file": "dnn.onnx", "positive_columns": []},
                "positive": {"values": list(ds.positive)}, "dataset": {"source": "breast_cancer", "image_shape": None},
                "files": {"dnn.onnx": None, "split.npz": None, "metrics.json": None}}
    write_artifact(out, manifest, enc, up, lo)
    write_cnf(out)
    return out


def test_cli_certify_explanations(tiny_artifact, tmp_path, capsys):
    from bnnembed.artifact import load_artifact
    from bnnembed.cli import main
    from bnnembed.certify.pipeline import domain_box

    out = str(tmp_path / "cert.jsonl")
    rc = main(["certify", tiny_artifact, "--data", "breast_cancer", "--limit", "5", "--time-limit", "10", "--extend-time", "5",
               "--out", out, "--json"])
    assert rc == 0
    totals = json.loads(capsys.readouterr().out)
    for k in ("rows", "certified", "refuted", "timeout"):
        assert k in totals
    assert totals["decided"] == totals["certified"] + totals["refuted"] + totals["timeout"] + totals["spurious"]
    assert totals["decided"] > 0
    lines = [json.loads(line) for line in open(out)]
    assert len(lines) == totals["decided"]
    art = load_artifact(tiny_artifact)  # hashes still valid after metrics.json was rewritten
    assert art.metrics["certification"]["explanations"]["decided"] == totals["decided"]
    dnn = art.load_dnn()
    net = read_onnx(art.file("dnn.onnx"))
    from bnnembed.data import load_data

    ds = load_data("breast_cancer")
    lo, hi, _ = domain_box(art, ds)
    for rec in lines:
        assert {"row", "status", "features"} <= set(rec)
        for f in rec["features"]:
            assert {"feature", "lo", "hi"} <= set(f)
        x = ds.X[rec["row"]]
        if rec["status"] == Status.CERTIFIED:
            # independent check: sample the explanation's box, look for a DNN contradiction
            from bnnembed.certify.explanations import pinned_of

            pinned = pinned_of(art.encoder, rec)
            blo, bhi, hopen = explanation_box(art.encoder, pinned, lo, hi, x)
            bad = attack_box(dnn, net, blo, np.where(hopen, np.nextafter(bhi, -np.inf), bhi), rec["decision"],
                             n_random=300, n_pgd=16, steps=20)
            assert len(bad) == 0
        if rec["status"] == Status.REFUTED:
            c = np.array(rec["verification"]["counterexample"], dtype=np.float32)
            assert bool(dnn.says_yes(c[None, :])[0]) != (rec["decision"] == "yes")
            # the counterexample meets the explanation: the bound still answers there
            bits = art.encode(c[None, :])
            net_b = art.upper if rec["decision"] == "yes" else art.lower
            assert bound_scores(net_b, bits)[0] >= net_b.tau
        # the input's cell lies inside every explanation box: a certified box means a certified
        # cell, and a refuted cell means no extension can be certified
        if rec["status"] == Status.CERTIFIED:
            assert rec["cell"] == Status.CERTIFIED
        if rec.get("cell") == Status.REFUTED:
            assert rec.get("extended", {}).get("status") != Status.CERTIFIED
    assert totals["cell_certified"] + totals["cell_refuted"] <= totals["decided"]
    # the certified share is shown next to the statistical figures by 'eval'
    capsys.readouterr()
    assert main(["eval", tiny_artifact, "--data", "breast_cancer"]) == 0
    assert "certified explanations" in capsys.readouterr().out


def test_cli_certify_text_and_errors(tiny_artifact, capsys):
    from bnnembed.cli import main

    rc = main(["certify", tiny_artifact, "--data", "breast_cancer", "--rows", "0-2", "--time-limit", "5", "--no-extend",
               "--no-metrics"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "certified" in text and "refuted" in text
    assert main(["certify", tiny_artifact, "--data", "digits"]) == 2
    assert main(["certify", tiny_artifact, "--data", "breast_cancer", "--rows", "x"]) == 2
    assert main(["certify", tiny_artifact, "--data", "breast_cancer", "--range", "nope=1:2"]) == 2


@pytest.mark.slow
def test_domain_query_tiny(tiny_artifact):
    """Whole-domain query on a 3-feature slice: the result is certified or a replayed counterexample,
    and random sampling never contradicts a certified threshold."""
    from bnnembed.artifact import load_artifact
    from bnnembed.certify.domain import DomainConfig, certify_domain, data_box
    from bnnembed.data import load_data

    art = load_artifact(tiny_artifact)
    ds = load_data("breast_cancer")
    net = read_onnx(art.file("dnn.onnx"))
    dnn = art.load_dnn()
    lo, hi = data_box(ds.X)
    # shrink the domain to a small box around one row so the query is quick
    x = ds.X[0].astype(np.float64)
    lo2, hi2 = np.maximum(lo, x - 0.05 * (hi - lo)), np.minimum(hi, x + 0.05 * (hi - lo))
    for bound in (art.upper, art.lower):
        r = certify_domain(net, dnn, art.encoder, bound, lo2, hi2, DomainConfig(round_time=60, max_rounds=3))
        if r.counterexample is not None:
            c = np.array(r.counterexample["x"], dtype=np.float32)
            assert bound_scores(bound, art.encode(c[None, :]))[0] >= r.rounds[0]["tau"]
        if r.certified:
            rng = np.random.default_rng(0)
            P = (lo2 + rng.random((3000, len(lo2))) * (hi2 - lo2)).astype(np.float32)
            answers = bound_scores(bound, art.encode(P)) >= r.tau_certified
            yes = dnn.says_yes(P)
            assert not np.any(answers & (yes != (bound.answer == "yes")))


# --------------------------------------------------------------------------------------------
# whole domain by branch and bound over level boxes (cells engine)
# --------------------------------------------------------------------------------------------


def test_cell_search_score_range_and_level_box_are_sound(tiny_artifact):
    """On random level boxes, every enumerated cell's exact score lies within the box's score
    range, and raw points of the box's level_box encode to levels inside the box."""
    from bnnembed.artifact import load_artifact
    from bnnembed.certify.cell_search import _BoundBox, levels_of
    from bnnembed.certify.explanations import level_box
    from bnnembed.certify.domain import data_box
    from bnnembed.data import load_data

    art = load_artifact(tiny_artifact)
    enc = art.encoder
    lo, hi = data_box(load_data("breast_cancer").X)
    K = np.diff(enc.offsets)
    rng = np.random.default_rng(3)
    for bound in (art.upper, art.lower):
        bb = _BoundBox(bound, enc)
        for _ in range(25):
            a = rng.integers(0, K + 1)
            b = np.minimum(K, a + rng.integers(0, 2, len(K)))
            s_lo, s_hi, _ = bb.score_range(a, b)
            cells = a + (rng.random((400, len(K))) * (b - a + 1)).astype(np.int64)
            scores = bound_scores(bound, enc.bits_from_levels(cells))
            assert s_lo <= scores.min() and scores.max() <= s_hi
            rlo, rhi, hopen = level_box(enc, a, b, lo, hi)
            P = rlo + rng.random((300, len(rlo))) * (rhi - rlo)
            P = np.where(hopen & (P >= rhi), np.nextafter(rhi, -np.inf), P).astype(np.float32)
            P = np.clip(P, rlo.astype(np.float32), None)
            lev = levels_of(enc, P)
            assert np.all((lev >= a) & (lev <= b))


@pytest.mark.slow
def test_cell_search_domain_tiny(tiny_artifact):
    """Cells engine on a small box around a row: certified with the smallest sound tau (the
    counterexample that forced the last raise replays one below it), and 20,000 random points of
    the box never contradict the certified tau."""
    from bnnembed.artifact import load_artifact
    from bnnembed.certify.cell_search import CellSearchConfig, certify_domain_cells
    from bnnembed.certify.domain import DomainConfig, data_box
    from bnnembed.data import load_data

    art = load_artifact(tiny_artifact)
    ds = load_data("breast_cancer")
    net = read_onnx(art.file("dnn.onnx"))
    dnn = art.load_dnn()
    lo, hi = data_box(ds.X)
    rng = np.random.default_rng(0)
    for row in (0, 1, 5):
        x = ds.X[row].astype(np.float64)
        lo2, hi2 = np.maximum(lo, x - 0.03 * (hi - lo)), np.minimum(hi, x + 0.03 * (hi - lo))
        for bound in (art.upper, art.lower):
            r = certify_domain_cells(net, dnn, art.encoder, bound, lo2, hi2, DomainConfig(total_time=120),
                                     CellSearchConfig(samples=2000), X_seen=ds.X[:50])
            assert r.certified, r.search
            assert r.tau_certified >= bound.tau
            if r.tau_certified > bound.tau:  # forced by a real counterexample at tau_certified - 1
                c = np.array(r.counterexample["x"], dtype=np.float32)
                assert bound_scores(bound, art.encode(c[None, :]))[0] == r.tau_certified - 1
                assert bool(dnn.says_yes(c[None, :])[0]) != (bound.answer == "yes")
                assert np.all((c >= lo2.astype(np.float32)) & (c <= hi2.astype(np.float32)))
            P = (lo2 + rng.random((20_000, len(lo2))) * (hi2 - lo2)).astype(np.float32)
            answers = bound_scores(bound, art.encode(P)) >= r.tau_certified
            assert not np.any(answers & (dnn.says_yes(P) != (bound.answer == "yes")))


def test_cli_certify_domain_cells(tiny_artifact, capsys):
    """`certify --domain` (cells engine) from the command line on a domain shrunk with --range:
    per bound the documented keys, consistent coverage figures, and the eval line."""
    from bnnembed.artifact import load_artifact
    from bnnembed.cli import main
    from bnnembed.data import load_data

    ds = load_data("breast_cancer")
    x = ds.X[3]
    names = load_artifact(tiny_artifact).feature_names
    ranges = []
    lo, hi = ds.X.min(0), ds.X.max(0)
    for j, name in enumerate(names):
        w = 0.02 * (hi[j] - lo[j])
        ranges += ["--range", f"{name}={float(max(lo[j], x[j] - w))!r}:{float(min(hi[j], x[j] + w))!r}"]
    rc = main(["certify", tiny_artifact, "--data", "breast_cancer", "--domain", "--no-explanations",
               "--domain-time", "120", "--json", *ranges])
    assert rc == 0
    dom = json.loads(capsys.readouterr().out)["domain"]
    art = load_artifact(tiny_artifact)
    for name, bound in (("upper", art.upper), ("lower", art.lower)):
        r = dom[name]
        assert {"certified", "tau_before", "tau_certified", "repair_rounds", "seconds", "coverage_before",
                "coverage_after", "search"} <= set(r)
        assert r["tau_before"] == bound.tau
        assert r["certified"], r["search"]  # a 2%-wide box around a row is small enough to finish
        assert r["tau_certified"] >= r["tau_before"] and r["coverage_after"] <= r["coverage_before"]
    assert main(["eval", tiny_artifact, "--data", "breast_cancer"]) == 0
    assert "whole domain, upper bound" in capsys.readouterr().out


def test_milp_tiny_coefficients_relax_instead_of_vanishing():
    """HiGHS ignores matrix entries below 1e-9; the builder relaxes such rows instead. Here the
    row y + 1e-10 x >= 1 with y <= 0.99995 is feasible only through the tiny term (x >= 5e5):
    dropping it would give a wrong "infeasible" (a false certificate)."""
    from bnnembed.certify._milp import MilpBuilder

    b = MilpBuilder()
    x = b.add_vars(0.0, 1e6)
    y = b.add_vars(0.0, 0.99995)
    b.add_row([y[0], x[0]], [1.0, 1e-10], 1.0, np.inf)
    assert b.solve(10).status != "infeasible"
    # and a row that stays infeasible even with the tiny term at its best is still refused
    b2 = MilpBuilder()
    x2 = b2.add_vars(0.0, 1e6)
    y2 = b2.add_vars(0.0, 0.9)
    b2.add_row([y2[0], x2[0]], [1.0, 1e-10], 1.0, np.inf)
    assert b2.solve(10).status == "infeasible"


def test_certificate_picture(tiny_artifact, tmp_path):
    """plot_certificate draws the input and, for a refuted record, the counterexample; --png-dir on
    data without an image shape is a one-line error."""
    from bnnembed.cli import main
    from bnnembed.plots import plot_certificate

    x = np.arange(64, dtype=np.float64) % 17
    cex = x.copy()
    cex[[3, 10]] = 16.0
    rec = {"row": 7, "decision": "yes", "size": 2, "status": "refuted",
           "verification": {"counterexample": cex.tolist(), "runtime_output": [-1.25]}}
    for r, name in ((rec, "refuted.png"), ({**rec, "status": "certified", "verification": {}}, "certified.png")):
        plot_certificate(x, (8, 8), [3, 4], r, str(tmp_path / name))
        assert (tmp_path / name).stat().st_size > 1000
    assert main(["certify", tiny_artifact, "--data", "breast_cancer", "--rows", "0", "--png-dir",
                 str(tmp_path / "p"), "--no-metrics"]) == 2


@pytest.mark.slow
def test_retrain_repair_round_trip(tmp_path):
    """One retraining round: the rebuilt artifact keeps the split and settings (config_of round
    trip), carries the counterexamples as extra distillation inputs, and is re-certified."""
    from bnnembed.artifact import load_artifact
    from bnnembed.build import BuildConfig, build_artifact, config_of
    from bnnembed.certify.cell_search import CellSearchConfig
    from bnnembed.certify.domain import DomainConfig
    from bnnembed.certify.pipeline import domain_box
    from bnnembed.certify.repair import retrain_repair
    from bnnembed.data import load_data

    ds = load_data("breast_cancer")
    cfg = BuildConfig(hidden=(16,), epochs=6, augment=2, baseline=False, bits_per_feature=3)
    src = str(tmp_path / "a")
    build_artifact(ds, src, cfg, progress=False)
    art = load_artifact(src)
    assert config_of(art.metrics) == cfg
    lo, hi, _ = domain_box(art, ds)
    res = retrain_repair(art, ds, lo, hi, DomainConfig(total_time=20), 1, str(tmp_path / "r"),
                         scfg=CellSearchConfig(node_budget=500, samples=3000), weight=2)
    first = res["rounds"][0]
    assert set(first["bounds"]) == {"upper", "lower"}
    # on the whole training box the falsification pass always refutes this small bound pair
    assert first["counterexamples"] > 0 and len(res["rounds"]) == 2
    new = load_artifact(str(tmp_path / "r" / "round_1"))
    assert new.metrics["split"]["extra_inputs"] == 2 * first["counterexamples"]
    with np.load(os.path.join(src, "split.npz")) as a, np.load(os.path.join(new.path, "split.npz")) as b:
        assert all(np.array_equal(a[k], b[k]) for k in a.files)
    assert config_of(new.metrics) == cfg
    assert res["final_artifact"] == new.path
