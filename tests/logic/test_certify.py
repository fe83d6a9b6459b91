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

from _bound_rows import assert_rows_force_the_numpy_score
from bnnembed.logic.certify import Status, VerifyConfig, read_onnx, verify_box
from bnnembed.logic.certify._milp import MilpBuilder
from bnnembed.logic.certify.bound_milp import snap_to_bits, thermometer_rows
from bnnembed.logic.certify.boxes import explanation_box
from bnnembed.errors import BnnError
from bnnembed.model.intmodel import BoundNet, IntLayer, bound_scores
from bnnembed.model.packing import pack_bits

# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bc_dnn(tmp_path_factory):
    """The default DNN architecture (standardisation baked in) on breast_cancer, small and quick."""
    from bnnembed.learn.data import load_data
    from bnnembed.learn.dnn import load_dnn, train_default_dnn

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


class OrtDnn:
    """A one-logit ONNX DNN run by the test's own onnxruntime session: yes iff the logit is > 0
    (independent of bnnembed.learn.dnn, which the certifier itself uses for its replays)."""

    def __init__(self, path: str) -> None:
        import onnxruntime as ort

        self.sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.name = self.sess.get_inputs()[0].name

    def __call__(self, X) -> np.ndarray:
        out = self.sess.run(None, {self.name: np.ascontiguousarray(X, dtype=np.float32)})[0]
        assert out.shape == (len(X), 1)
        return out[:, 0] > 0


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
    """Without IBP shortcuts or the attack, the MILP decides both ways: boxes of 5% and 15% of
    the data range around rows 0-2 give MILP certificates, the whole range MILP refutations.
    Each certificate is checked on 2,000 uniform points of its box by onnxruntime; each
    counterexample lies in its box and replays in onnxruntime."""
    ds, net, dnn, path = bc_dnn
    ort_yes = OrtDnn(path)
    cfg = VerifyConfig(time_limit=20, attack_points=0, attack_steps=0, tighten=False)
    statuses = []
    for i, (x, lo, hi) in enumerate(_boxes(ds, (0.05, 0.15, 1.0), 3)):
        claim = "yes" if ort_yes(x[None, :])[0] else "no"
        r = verify_box(net, dnn, lo, hi, claim, cfg)
        statuses.append((r.method, r.status))
        if r.status == Status.REFUTED:
            c = r.counterexample
            assert np.all(c >= lo.astype(np.float32)) and np.all(c <= hi.astype(np.float32))
            assert bool(ort_yes(c[None, :])[0]) != (claim == "yes")
        if r.status == Status.CERTIFIED:
            P = (lo + np.random.default_rng(i).random((2000, len(lo))) * (hi - lo)).astype(np.float32)
            P = np.clip(P, lo.astype(np.float32), hi.astype(np.float32))
            assert np.all(ort_yes(P) == (claim == "yes")), (i, r.method)
            assert len(attack_box(dnn, net, lo, hi, claim, n_random=0, n_pgd=16)) == 0, (i, r.method)
    assert ("milp", Status.CERTIFIED) in statuses and ("milp", Status.REFUTED) in statuses, statuses


def test_verify_box_multiclass(tmp_path):
    import torch

    from bnnembed.learn.dnn import load_dnn

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
    assert_rows_force_the_numpy_score(_random_bound(np.random.default_rng(seed), 6, (5, 4)))


def test_thermometer_rows_and_snap():
    from bnnembed.model.encoding import fit_thermometer

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
    from bnnembed.model.encoding import fit_thermometer

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


def _train_sparse_dnn(X, yes, path, columns, hidden=(16, 8), epochs=60, seed=0):
    """The default DNN's architecture (standardisation baked in, ReLU MLP), but the first layer
    only sees ``columns``: a DNN whose decision the bounds can pin down with a few features, so
    that some abductive explanations of the bounds are also sound explanations of the DNN."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    X = np.asarray(X, np.float32)
    n, f = X.shape
    mean, std = X.mean(0), X.std(0)
    std[std < 1e-6] = 1.0
    mask = torch.zeros(hidden[0], f)
    mask[:, list(columns)] = 1.0

    class Standardized(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.from_numpy(mean))
            self.register_buffer("inv_std", torch.from_numpy(1.0 / std))
            layers, width = [], f
            for h in hidden:
                layers += [nn.Linear(width, h), nn.ReLU()]
                width = h
            layers.append(nn.Linear(width, 1))
            self.mlp = nn.Sequential(*layers)

        def forward(self, x):
            return self.mlp((x - self.mean) * self.inv_std)

    model = Standardized()
    with torch.no_grad():
        model.mlp[0].weight.mul_(mask)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(X), torch.from_numpy(np.asarray(yes, np.float32))[:, None]
    loss_fn = nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, 64):
            idx = perm[i: i + 64]
            opt.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            model.mlp[0].weight.grad.mul_(mask)
            opt.step()
    model.eval()
    torch.onnx.export(model, (xt[:2],), path, input_names=["features"], output_names=["logit"],
                      dynamic_axes={"features": {0: "batch"}, "logit": {0: "batch"}}, dynamo=False)


def _build_tiny(out: str, train_dnn) -> str:
    """A small artifact built in-process on breast_cancer: 3-bit thermometer, 16-hidden bounds
    distilled from the DNN that ``train_dnn(X, yes, path)`` writes, calibrated on their own split."""
    from bnnembed.artifact import write_artifact
    from bnnembed.render.cnf import write_cnf
    from bnnembed.learn.data import load_data
    from bnnembed.learn.dnn import load_dnn
    from bnnembed.model.encoding import fit_thermometer
    from bnnembed.learn.train import TrainConfig, fold_batchnorm, train_bound

    ds = load_data("breast_cancer")
    rng = np.random.default_rng(0)
    idx = rng.permutation(ds.n_rows)
    n = ds.n_rows
    split = {"train": idx[: n // 2], "calibration": idx[n // 2: 3 * n // 4], "test": idx[3 * n // 4:]}
    train_dnn(ds.X[split["train"]], ds.y_yes()[split["train"]], os.path.join(out, "dnn.onnx"))
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


@pytest.fixture(scope="module")
def tiny_artifact(tmp_path_factory):
    """A small artifact built in-process: default-DNN architecture, 3-bit thermometer, 16 hidden."""
    from bnnembed.learn.dnn import train_default_dnn

    return _build_tiny(str(tmp_path_factory.mktemp("art")),
                       lambda X, y, path: train_default_dnn(X, y, path, hidden=(16, 8), epochs=15))


#: "worst radius" and "worst concave points": the DNN of ``sparse_artifact`` reads only these
SPARSE_COLUMNS = (20, 27)
#: rows of ``sparse_artifact`` whose outcomes cover every path of the explanation certificate:
#: 1, 29, 34 certified; 40 refuted with a refuted cell; 87 refuted, cell certified, certified
#: after pinning one more feature; 3 undecided (UNKNOWN, skipped). Each explains in < 1 s.
SPARSE_ROWS = "1,3,29,34,40,87"


@pytest.fixture(scope="module")
def sparse_artifact(tmp_path_factory):
    """Like ``tiny_artifact``, but the DNN's first layer sees two features only: on the default
    DNN no abductive explanation of these small bounds is sound for the DNN (every one is refuted),
    on this one some are, so the certificates themselves can be attacked."""
    return _build_tiny(str(tmp_path_factory.mktemp("sparse")),
                       lambda X, y, path: _train_sparse_dnn(X, y, path, SPARSE_COLUMNS))


def _record_box(rec: dict, lo: np.ndarray, hi: np.ndarray, x: np.ndarray):
    """The explanation's box read from the record's own intervals (not from explanation_box):
    pinned features inside [lo, hi) of their level (``None``: unbounded on that side), every other
    feature over the domain widened to contain the input. Returns (lo, hi, hi_open)."""
    blo = np.minimum(np.asarray(lo, np.float64), x)
    bhi = np.maximum(np.asarray(hi, np.float64), x)
    hopen = np.zeros(len(blo), dtype=bool)
    for f in rec["features"]:
        c = int(f["column"])
        if f["lo"] is not None:
            blo[c] = max(blo[c], f["lo"])
        if f["hi"] is not None and f["hi"] <= bhi[c]:
            bhi[c], hopen[c] = f["hi"], True
    return blo, bhi, hopen


def _sample_box(blo, bhi, hopen, n, seed):
    """``n`` float32 points of the box, uniformly, open upper sides kept strictly below (float32)."""
    rng = np.random.default_rng(seed)
    P = (blo + rng.random((n, len(blo))) * (bhi - blo)).astype(np.float32)
    top = np.where(hopen, np.nextafter(bhi.astype(np.float32), np.float32(-np.inf)), bhi.astype(np.float32))
    return np.clip(P, blo.astype(np.float32), top)


#: (fixture, rows, paths that must run): on the sparse DNN every path of the check below runs; on
#: the default DNN these rows' explanations are all refuted (rows 30 and 76 explain in 0.1 s and are
#: the first a verifier certifying too much gets wrong, so they keep false certificates in view)
CERTIFY_CASES = [
    ("sparse_artifact", SPARSE_ROWS, ("certified", "refuted", "extended_certified", "cell_refuted")),
    ("tiny_artifact", "3,30,76,87", ("refuted", "extended_certified", "cell_refuted")),
]


@pytest.mark.parametrize("fixture,rows,must_run", CERTIFY_CASES, ids=[c[0] for c in CERTIFY_CASES])
def test_cli_certify_explanations(fixture, rows, must_run, request, tmp_path, capsys):
    """``--pin cell``: certified explanations are attacked (2,000 uniform points through onnxruntime, then PGD on a
    torch copy of the DNN); refuted ones replay; the rows are chosen so both occur, plus an
    extension that ends certified, and each branch is counted so it cannot silently not run."""
    from bnnembed.artifact import load_artifact
    from bnnembed.cli import main
    from bnnembed.logic.certify.explanations import pinned_of
    from bnnembed.logic.certify.pipeline import domain_box
    from bnnembed.learn.data import load_data

    artifact = request.getfixturevalue(fixture)
    out = str(tmp_path / "cert.jsonl")
    rc = main(["certify", artifact, "--data", "breast_cancer", "--rows", rows, "--time-limit", "10",
               "--extend-time", "10", "--out", out, "--json", "--pin", "cell"])
    assert rc == 0
    totals = json.loads(capsys.readouterr().out)
    lines = [json.loads(line) for line in open(out)]
    assert len(lines) == totals["decided"]
    assert totals["rows"] == len(rows.split(","))
    for k in ("certified", "refuted", "timeout", "spurious"):
        assert totals[k] == sum(r["status"] == k for r in lines), k
    assert totals["decided"] == totals["certified"] + totals["refuted"] + totals["timeout"] + totals["spurious"]
    art = load_artifact(artifact)  # hashes still valid after metrics.json was rewritten
    from bnnembed.logic.certify.report import certification_block

    assert certification_block(art)["explanations"]["decided"] == totals["decided"]
    assert certification_block(art)["explanations"]["certified"] == totals["certified"]
    dnn = art.load_dnn()
    ort_yes = OrtDnn(art.file("dnn.onnx"))  # the test's own onnxruntime session on the exported graph
    net = read_onnx(art.file("dnn.onnx"))
    ds = load_data("breast_cancer")
    decided = art.decide(ds.X)
    lo, hi, _ = domain_box(art, ds)
    kept = {int(c): f for f, c in enumerate(art.encoder.feature_index)}
    ran = {"certified": 0, "refuted": 0, "extended_certified": 0, "cell_refuted": 0}
    for rec in lines:
        assert {"row", "status", "features"} <= set(rec)
        for f in rec["features"]:
            assert {"feature", "lo", "hi"} <= set(f)
        x = ds.X[rec["row"]].astype(np.float64)
        assert rec["decision"] == {1: "yes", 0: "no"}[int(decided[rec["row"]])]
        net_b = art.upper if rec["decision"] == "yes" else art.lower
        if rec["status"] == Status.CERTIFIED:
            ran["certified"] += 1
            # the box from the record's own intervals is the library's explanation box
            blo, bhi, hopen = _record_box(rec, lo, hi, x)
            elo, ehi, eopen = explanation_box(art.encoder, pinned_of(art.encoder, rec), lo, hi, x)
            assert np.array_equal(blo, elo) and np.array_equal(bhi, ehi) and np.array_equal(hopen, eopen)
            P = _sample_box(blo, bhi, hopen, 2000, seed=rec["row"])
            # the explanation is sufficient for the bound: it answers on every point of the box ...
            assert np.all(bound_scores(net_b, art.encode(P)) >= net_b.tau)
            # ... and the certificate says the DNN (onnxruntime) agrees on all of them
            assert np.all(ort_yes(P) == (rec["decision"] == "yes")), rec["row"]
            bad = attack_box(dnn, net, blo, np.where(hopen, _f32_below(bhi), bhi), rec["decision"],
                             n_random=500, n_pgd=16, steps=20)
            assert len(bad) == 0, rec["row"]
            # the input's cell lies inside every explanation box: a certified box means a certified cell
            assert rec["cell"] == Status.CERTIFIED
        elif rec["status"] == Status.REFUTED:
            ran["refuted"] += 1
            c = np.array(rec["verification"]["counterexample"], dtype=np.float32)
            assert bool(ort_yes(c[None, :])[0]) != (rec["decision"] == "yes")
            # the counterexample meets the explanation: inside its box, and the bound still answers
            blo, bhi, hopen = _record_box(rec, lo, hi, x)
            assert np.all(c >= blo.astype(np.float32)) and np.all(c <= bhi.astype(np.float32))
            assert not np.any(hopen & (c >= bhi.astype(np.float32)))
            assert bound_scores(net_b, art.encode(c[None, :]))[0] >= net_b.tau
        ext = rec.get("extended")
        if ext is not None and ext["status"] == Status.CERTIFIED:
            ran["extended_certified"] += 1
            levels = art.encoder.levels(art.encode(x[None, :].astype(np.float32)))[0]
            pinned = pinned_of(art.encoder, rec) + [(kept[c], int(levels[kept[c]])) for c in ext["added"]]
            assert ext["size"] == len(pinned)
            blo, bhi, hopen = explanation_box(art.encoder, pinned, lo, hi, x)
            P = _sample_box(blo, bhi, hopen, 2000, seed=1000 + rec["row"])
            assert np.all(ort_yes(P) == (rec["decision"] == "yes")), rec["row"]
        # a refuted cell means no extension can be certified
        if rec.get("cell") == Status.REFUTED:
            ran["cell_refuted"] += 1
            assert ext is None or ext["status"] != Status.CERTIFIED
    # every path above that these rows exercise ran at least once (the rows were chosen for it)
    assert all(ran[k] > 0 for k in must_run), ran
    assert totals["certified"] == ran["certified"] and totals["refuted"] == ran["refuted"]
    assert totals["cell_refuted"] == ran["cell_refuted"]
    assert totals["certified_after_extension"] == totals["certified"] + ran["extended_certified"]
    assert totals["cell_certified"] + totals["cell_refuted"] <= totals["decided"]
    # the certified share is shown next to the statistical figures by 'eval'
    capsys.readouterr()
    assert main(["eval", artifact, "--data", "breast_cancer"]) == 0
    d, c = totals["decided"], totals["certified"]
    assert f"certified explanations (last 'certify'): {c} of {d} decided rows ({c / d:.1%})" in capsys.readouterr().out


#: rows of ``tiny_artifact`` (default-DNN architecture) for the value-pinned certificate: over the
#: whole box 0, 3, 24, 42 certify (milp, ibp, ibp, lp) and 8, 22, 49 are refuted, then certified
#: after pinning one or two more features; at ``--delta 1`` 22 and 41 are refuted, the rest certify
VALUE_ROWS = "0,3,8,22,24,41,42,49"


def _value_box(x, lo, hi, columns, delta):
    """The region of a value-pinned explanation, from its definition: ``columns`` at ``x``'s exact
    values, every other feature over the data box (widened to ``x``), cut to ``[x - delta, x + delta]``."""
    blo, bhi = np.minimum(lo, x), np.maximum(hi, x)
    if delta is not None:
        blo, bhi = np.maximum(blo, x - delta), np.minimum(bhi, x + delta)
    cols = list(columns)
    blo[cols] = bhi[cols] = x[cols]
    return blo, bhi


def _sample_closed(blo, bhi, n, seed):
    """``n`` float32 points of the closed box ``[blo, bhi]`` (float32 rounding kept inside)."""
    rng = np.random.default_rng(seed)
    lo32, hi32 = blo.astype(np.float32), bhi.astype(np.float32)
    lo32 = np.where(lo32 < blo, np.nextafter(lo32, np.float32(np.inf)), lo32)
    hi32 = np.where(hi32 > bhi, np.nextafter(hi32, np.float32(-np.inf)), hi32)
    P = (blo + rng.random((n, len(blo))) * (bhi - blo)).astype(np.float32)
    P = np.clip(P, lo32, hi32)
    # the corners too: the extremes are where a DNN that is not robust flips first
    C = np.where(rng.random((n // 4, len(blo))) < 0.5, lo32, hi32).astype(np.float32)
    return np.vstack([P, C])


def test_cli_certify_value_pinned_both_domains(tiny_artifact, tmp_path, capsys):
    """The default meaning (``pin: value``): the explanation's features at the input's exact values,
    every other feature free in the domain (the whole box, and ``[x-1, x+1]`` with ``--delta 1``).
    A certified (or extended-and-certified) explanation is checked by sampling its region through
    the test's own onnxruntime session (no flip) and the bound (it answers everywhere); a
    refutation's counterexample flips onnxruntime, lies in the domain and keeps every pinned feature
    at the input's exact value; the totals count what the records say, for both domains."""
    import re

    from bnnembed.artifact import load_artifact
    from bnnembed.cli import main
    from bnnembed.logic.certify.pipeline import domain_box
    from bnnembed.learn.data import load_data

    out = str(tmp_path / "cert.jsonl")
    rc = main(["certify", tiny_artifact, "--data", "breast_cancer", "--rows", VALUE_ROWS, "--delta", "1",
               "--both-domains", "--time-limit", "10", "--extend-time", "5", "--out", out, "--json", "--no-metrics"])
    assert rc == 0
    totals = json.loads(capsys.readouterr().out)
    recs = [json.loads(line) for line in open(out)]
    art = load_artifact(tiny_artifact)
    ort_yes = OrtDnn(art.file("dnn.onnx"))
    ds = load_data("breast_cancer")
    lo, hi, _ = domain_box(art, ds)
    decided = art.decide(ds.X)
    ran = {"certified": 0, "refuted": 0, "extended_certified": 0}
    by_domain = {"delta": [r for r in recs if r["domain"]["kind"] == "delta"],
                 "box": [r for r in recs if r["domain"]["kind"] == "box"]}
    assert len(by_domain["delta"]) == totals["decided"] and len(by_domain["box"]) == totals["whole_box"]["decided"]
    for kind, t in (("delta", totals), ("box", totals["whole_box"])):
        rs = by_domain[kind]
        assert t["pin"] == "value" and "cell_certified" not in t
        for k in ("certified", "refuted", "timeout", "spurious"):
            assert t[k] == sum(r["status"] == k for r in rs), (kind, k)
        after = sum(r["status"] == "certified" or (r.get("extended") or {}).get("status") == "certified" for r in rs)
        assert t["certified_after_extension"] == after
        sizes = [r["extended"]["size"] if r.get("extended") else r["size"] for r in rs
                 if (r.get("extended") or r)["status"] == "certified"]
        assert t["median_certified_size"] == float(np.median(sizes))
    assert totals["explanation_domain"] == {"kind": "delta", "delta": 1.0}
    assert totals["whole_box"]["explanation_domain"] == {"kind": "box"}
    for rec in recs:
        assert rec["pin"] == "value" and "cell" not in rec
        delta = rec["domain"].get("delta")
        x = ds.X[rec["row"]].astype(np.float32).astype(np.float64)
        assert rec["decision"] == {1: "yes", 0: "no"}[int(decided[rec["row"]])]
        yes = rec["decision"] == "yes"
        net_b = art.upper if yes else art.lower
        cols = [int(f["column"]) for f in rec["features"]]
        for f in rec["features"]:
            assert f["value"] == x[int(f["column"])]
        if rec["status"] == Status.CERTIFIED:
            ran["certified"] += 1
            blo, bhi = _value_box(x, lo, hi, cols, delta)
            P = _sample_closed(blo, bhi, 2000, seed=rec["row"])
            assert np.all(ort_yes(P) == yes), rec["row"]
            # the value region lies in the bound's explanation region: the bound answers on it too
            assert np.all(bound_scores(net_b, art.encode(P)) >= net_b.tau), rec["row"]
        else:
            assert rec["status"] == Status.REFUTED, rec["status"]
            ran["refuted"] += 1
            c = np.array(rec["verification"]["counterexample"], dtype=np.float32)
            assert bool(ort_yes(c[None, :])[0]) != yes  # it flips the DNN
            cd = c.astype(np.float64)
            assert np.all(cd[cols] == x[cols])  # pinned features at the input's exact values
            blo, bhi = _value_box(x, lo, hi, cols, delta)
            assert np.all(cd >= blo) and np.all(cd <= bhi)  # in the domain
            if delta is not None:
                assert np.abs(cd - x).max() <= delta
            dist = rec["counterexample_distance"]
            assert abs(dist["linf"] - np.abs(cd - x).max()) < 1e-5 and dist["changed"] == int(np.sum(cd != x))
            ext = rec["extended"]
            if ext["status"] == Status.CERTIFIED:
                ran["extended_certified"] += 1
                assert ext["size"] == len(cols) + len(ext["added"]) and not set(ext["added"]) & set(cols)
                blo, bhi = _value_box(x, lo, hi, cols + ext["added"], delta)
                P = _sample_closed(blo, bhi, 2000, seed=1000 + rec["row"])
                assert np.all(ort_yes(P) == yes), rec["row"]
                assert np.all(bound_scores(net_b, art.encode(P)) >= net_b.tau), rec["row"]
            elif "counterexample" in ext:
                c = np.array(ext["counterexample"], dtype=np.float32)
                assert bool(ort_yes(c[None, :])[0]) != yes
                pinned = cols + ext["added"][: ext["counterexample_added"]]
                assert np.all(c.astype(np.float64)[pinned] == x[pinned])
    assert all(v > 0 for v in ran.values()), ran
    # the text says what was asked, for both domains
    assert main(["certify", tiny_artifact, "--data", "breast_cancer", "--rows", VALUE_ROWS, "--delta", "1",
                 "--both-domains", "--time-limit", "10", "--extend-time", "5", "--no-metrics"]) == 0
    text = capsys.readouterr().out
    assert "features pinned at the input's exact values, the other features within 1 raw units" in text
    assert "the same rows over the whole data box:" in text
    assert re.search(r"certified after pinning more features: \d+", text)
    assert "whole cell" not in text
    # --both-domains without a distance is a one-line error
    assert main(["certify", tiny_artifact, "--data", "breast_cancer", "--both-domains"]) == 2


def _f32_below(v):
    """The largest float32 below each (float32) value, as float64."""
    return np.nextafter(np.asarray(v).astype(np.float32), np.float32(-np.inf)).astype(np.float64)


def test_cli_certify_text_and_errors(sparse_artifact, tmp_path, capsys):
    """The text totals print the numbers of the rows actually certified: every count, share and
    median is recomputed from the per-row records (--out) and found in the printed lines."""
    import re
    import statistics

    from bnnembed.cli import main

    out = tmp_path / "rows.jsonl"
    rows = "1,3,29,40"  # 3 certified-or-refuted decided rows and one undecided (see SPARSE_ROWS)
    rc = main(["certify", sparse_artifact, "--data", "breast_cancer", "--rows", rows, "--time-limit", "5",
               "--no-extend", "--no-metrics", "--out", str(out), "--pin", "cell"])
    assert rc == 0
    text = capsys.readouterr().out
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    n_rows, d = len(rows.split(",")), len(recs)
    count = {k: sum(r["status"] == k for r in recs) for k in ("certified", "refuted", "timeout", "spurious")}
    assert count["certified"] > 0 and count["refuted"] > 0, count  # both lines carry real numbers
    assert f"{n_rows} rows, {d} decided;" in text
    for k, v in count.items():
        m = re.search(rf"^  {k} +(\d+) +([\d.]+)%$", text, re.M)
        assert m, (k, text)
        assert int(m.group(1)) == v and float(m.group(2)) == round(100 * v / d, 1), (k, m.group(0))
    cell_c = sum(r.get("cell") == Status.CERTIFIED for r in recs)
    cell_r = sum(r.get("cell") == Status.REFUTED for r in recs)
    assert f"whole cell one way on {cell_c} ({cell_c / d:.1%}); on {cell_r} it does not" in text
    # --no-extend: nothing is certified by pinning more features than the explanation
    assert f"certified after pinning more features: {count['certified']} ({count['certified'] / d:.1%})" in text
    cert_secs = [r["seconds"] for r in recs if r["status"] == Status.CERTIFIED]
    m = re.search(r"median time per certificate: ([\d.]+) s, median explanation size ([\d.]+) features", text)
    assert m, text
    assert abs(float(m.group(1)) - statistics.median(cert_secs)) <= 0.0006  # records keep 4 decimals, text 3
    assert float(m.group(2)) == statistics.median(r["size"] for r in recs)
    # mistakes are one-line errors
    assert main(["certify", sparse_artifact, "--data", "digits"]) == 2
    assert main(["certify", sparse_artifact, "--data", "breast_cancer", "--rows", "x"]) == 2
    assert main(["certify", sparse_artifact, "--data", "breast_cancer", "--range", "nope=1:2"]) == 2


@pytest.mark.slow
def test_domain_query_tiny(tiny_artifact):
    """Whole-domain query on a 3-feature slice: the result is certified or a replayed counterexample,
    and random sampling never contradicts a certified threshold."""
    from bnnembed.artifact import load_artifact
    from bnnembed.logic.certify.domain import DomainConfig, certify_domain, data_box
    from bnnembed.learn.data import load_data

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
    from bnnembed.logic.certify.cell_search import levels_of
    from bnnembed.model.intervals import LevelBoxes
    from bnnembed.logic.certify.boxes import level_box
    from bnnembed.logic.certify.domain import data_box
    from bnnembed.learn.data import load_data

    art = load_artifact(tiny_artifact)
    enc = art.encoder
    lo, hi = data_box(load_data("breast_cancer").X)
    K = np.diff(enc.offsets)
    rng = np.random.default_rng(3)
    for bound in (art.upper, art.lower):
        bb = LevelBoxes(bound, enc)
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
    from bnnembed.logic.certify.cell_search import CellSearchConfig, certify_domain_cells
    from bnnembed.logic.certify.domain import DomainConfig, data_box
    from bnnembed.learn.data import load_data

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
    from bnnembed.learn.data import load_data

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
    from bnnembed.logic.certify._milp import MilpBuilder

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
    from bnnembed.learn.build import build_artifact
    from dataclasses import replace

    from bnnembed.learn.config import BuildConfig, config_of
    from bnnembed.logic.certify.cell_search import CellSearchConfig
    from bnnembed.logic.certify.domain import DomainConfig
    from bnnembed.logic.certify.pipeline import domain_box
    from bnnembed.logic.certify.repair import retrain_repair
    from bnnembed.learn.data import load_data

    ds = load_data("breast_cancer")
    cfg = BuildConfig(hidden=(16,), epochs=6, augment=2, baseline=False, bits_per_feature=3)
    src = str(tmp_path / "a")
    build_artifact(ds, src, cfg, progress=False)
    art = load_artifact(src)
    cfg = replace(cfg, distill_margin=0.0, design="pair")  # the metrics record what the automatic choices resolved to
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


def test_default_dnn_scales_image_pixels_uniformly(monkeypatch, tmp_path):
    """Image data gets a default DNN with one input scale for every pixel (per-pixel
    standardisation magnifies near-constant border pixels, and the DNN then flips within a few grey
    levels of most images); other data keeps per-feature standardisation."""
    import onnx
    from onnx import numpy_helper

    import bnnembed.learn.build as build
    from bnnembed.cli import main
    from bnnembed.learn.data import load_data
    from bnnembed.learn.dnn import train_default_dnn

    ds = load_data("digits", positive="5,6,7,8,9")
    path = str(tmp_path / "u.onnx")
    train_default_dnn(ds.X[:200], ds.y_yes()[:200], path, hidden=(8,), epochs=1, scale="uniform")
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}
    scales = [v for k, v in inits.items() if k.endswith("mean") or k.endswith("inv_std")]
    assert len(scales) == 2 and all(v.size == 64 and np.unique(v).size == 1 for v in scales)
    assert read_onnx(path).n_out == 1
    with pytest.raises(ValueError):
        train_default_dnn(ds.X[:50], ds.y_yes()[:50], path, hidden=(4,), epochs=1, scale="pixel")

    seen = {}

    class Stop(Exception):
        pass

    def record(*a, scale="feature", **kw):
        seen["scale"] = scale
        raise Stop

    monkeypatch.setattr(build, "train_default_dnn", record)
    for data, positive, want in (("digits", ["--positive", "5,6,7,8,9"], "uniform"), ("breast_cancer", [], "feature")):
        with pytest.raises(Stop):
            main(["build", "--data", data, *positive, "--out", str(tmp_path / data)])
        assert seen.pop("scale") == want, data
