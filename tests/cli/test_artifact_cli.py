"""The artifact (format, hashes, refusals) and the build / eval / predict commands, in-process."""

import csv
import json
import os
import shutil

import numpy as np
import pytest
import torch

from bnnembed.artifact import load_artifact
from bnnembed.cli import main
from bnnembed.errors import ArtifactError
from bnnembed.model.intmodel import Decision


def test_artifact_contents(bc_artifact):
    art = load_artifact(bc_artifact)
    m = art.metrics
    for key in ("coverage", "coverage_yes", "coverage_no", "decided", "disagreements", "disagreement_rate",
                "disagreement_bound", "alpha", "delta", "split", "dnn_accuracy", "bnn_agreement"):
        assert key in m
    assert m["split"]["train"] + m["split"]["calibration"] + m["split"]["test"] == 569
    assert m["torch_numpy_mismatches"] == {"upper": 0, "lower": 0, "baseline": 0}
    assert m["baseline"] is not None and "coverage" in m["baseline"]
    assert art.manifest["positive"]["names"] == ["malignant"]
    for f in ("manifest.json", "bounds.npz", "dnn.onnx", "metrics.json", "split.npz",
              "risk_coverage_upper.png", "risk_coverage_lower.png"):
        assert os.path.exists(os.path.join(bc_artifact, f))
    with np.load(os.path.join(bc_artifact, "bounds.npz"), allow_pickle=False) as z:
        assert z["upper_l0_weights"].dtype == np.uint32 and z["upper_l0_thresholds"].dtype == np.int32


def _dnn_yes_direct(art, X) -> np.ndarray:
    """The artifact's DNN run straight through onnxruntime (not bnnembed.learn.dnn): the default DNN is
    one logit, yes iff > 0."""
    import onnxruntime as ort

    d = art.manifest["dnn"]
    assert d["file"].endswith(".onnx") and d["output"] == "logit", d
    sess = ort.InferenceSession(os.path.join(art.path, d["file"]), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(X, dtype=np.float32)})[0]
    assert out.shape in ((len(X), 1), (len(X),)), out.shape
    return out.reshape(len(X)) > 0


def _expected_metrics(dec: np.ndarray, dnn_yes: np.ndarray) -> dict:
    """Coverage, decided and disagreements counted here, from decisions and DNN answers."""
    n = len(dec)
    yes, no = dec == int(Decision.YES), dec == int(Decision.NO)
    decided = int(yes.sum() + no.sum())
    wrong = int((yes & ~dnn_yes).sum() + (no & dnn_yes).sum())
    return {"rows": n, "decided": decided, "coverage": decided / n, "coverage_yes": int(yes.sum()) / n,
            "coverage_no": int(no.sum()) / n, "disagreements": wrong,
            "disagreement_rate": wrong / decided if decided else 0.0}


def _check_clopper_pearson(bound: float, k: int, n: int, delta: float) -> None:
    """The one-sided upper bound p solves P(Binomial(n, p) <= k) = delta (1 when k == n)."""
    from scipy.stats import binom

    if k >= n:
        assert bound == 1.0
    else:
        assert 0 < bound < 1 and binom.cdf(k, n, bound) == pytest.approx(delta, rel=1e-6)


def test_metrics_recomputed_from_artifact_match(bc_artifact):
    """The test-split metrics in metrics.json, recomputed here without bnnembed's metrics code:
    the stored bounds decide the rows of split.npz's test indices, the DNN runs directly through
    onnxruntime, and coverage / decided / disagreements are counted by hand; they equal the
    recorded figures exactly."""
    from bnnembed.learn.data import load_data

    art = load_artifact(bc_artifact)
    ds = load_data("breast_cancer")
    with np.load(os.path.join(bc_artifact, "split.npz")) as z:
        split = {k: z[k] for k in z.files}
    test = split["test"]
    assert len(test) == art.metrics["split"]["test"] == 143
    assert not set(test.tolist()) & (set(split["train"].tolist()) | set(split["calibration"].tolist()))
    X = ds.X[test]
    dec = art.decide(X)
    dnn_yes = _dnn_yes_direct(art, X)
    want = _expected_metrics(dec, dnn_yes)
    assert want["decided"] > 0 and want["decided"] < len(test), want  # both decided and deferred rows
    m = art.metrics
    for key, value in want.items():
        assert m[key] == value, (key, m[key], value)
    _check_clopper_pearson(m["disagreement_bound"], want["disagreements"], want["decided"], m["delta"])
    final = np.where(dec == int(Decision.UNKNOWN), dnn_yes, dec == int(Decision.YES))
    assert m["cascade_agreement"] == int((final == dnn_yes).sum()) / len(test)
    assert m["dnn_accuracy"] == int((dnn_yes == np.isin(ds.y[test], ds.positive)).sum()) / len(test)


def _copy(src, tmp_path):
    dst = tmp_path / "art"
    shutil.copytree(src, dst)
    return str(dst)


def test_corrupted_artifact_is_refused(bc_artifact, tmp_path, capsys):
    path = _copy(bc_artifact, tmp_path)
    with open(os.path.join(path, "bounds.npz"), "r+b") as fh:
        fh.seek(200)
        b = fh.read(1)
        fh.seek(200)
        fh.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(ArtifactError, match="does not match its hash"):
        load_artifact(path)
    assert main(["eval", path, "--data", "breast_cancer"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "bounds.npz" in err and len(err.splitlines()) == 1


def test_newer_format_is_refused(bc_artifact, tmp_path):
    path = _copy(bc_artifact, tmp_path)
    mpath = os.path.join(path, "manifest.json")
    m = json.load(open(mpath))
    m["format_version"] = 99
    json.dump(m, open(mpath, "w"))
    with pytest.raises(ArtifactError, match="newer than this bnnembed reads"):
        load_artifact(path)


def test_garbage_manifest_and_missing_dir(tmp_path):
    with pytest.raises(ArtifactError, match="no such artifact directory"):
        load_artifact(str(tmp_path / "nope"))
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="corrupted manifest"):
        load_artifact(str(tmp_path))


def test_predict_csv_and_eval(bc_artifact, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    assert main(["predict", bc_artifact, "--data", "breast_cancer", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 569 == summary["rows"]
    assert set(rows[0]) == {"row", "bound", "final", "source"}
    art = load_artifact(bc_artifact)
    from bnnembed.learn.data import load_data

    ds = load_data("breast_cancer")
    dec = art.decide(ds.X)
    dnn_yes = art.load_dnn().says_yes(ds.X)
    for r, d, y in zip(rows, dec, dnn_yes):
        assert r["bound"] == Decision(int(d)).label
        if d == Decision.UNKNOWN:
            assert r["source"] == "dnn" and r["final"] == ("yes" if y else "no")
        else:
            assert r["source"] == "bnn" and r["final"] == r["bound"]
    assert main(["eval", bc_artifact, "--data", "breast_cancer", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    want = _expected_metrics(dec, _dnn_yes_direct(art, ds.X))
    assert want["rows"] == 569 and 0 < want["decided"] < 569
    for key, value in want.items():
        assert m[key] == value, (key, m[key], value)
    _check_clopper_pearson(m["disagreement_bound"], want["disagreements"], want["decided"], m["delta"])
    assert sum(r["source"] == "bnn" for r in rows) == want["decided"] == summary["decided_by_bnn"]


def test_wrong_columns_are_refused(bc_artifact, tmp_path, capsys):
    p = tmp_path / "d.csv"
    p.write_text("a,b,label\n1,2,0\n3,4,1\n")
    assert main(["predict", bc_artifact, "--data", str(p), "--out", str(tmp_path / "o.csv")]) == 2
    assert "2 feature columns, but the artifact expects 30" in capsys.readouterr().err


def test_build_errors_are_one_line(tmp_path, capsys):
    p = tmp_path / "one.csv"
    p.write_text("a,b,label\n" + "".join(f"{i},{i % 3},1\n" for i in range(60)))
    assert main(["build", "--data", str(p), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "every row is 'yes'" in err and len(err.splitlines()) == 1


def test_dnn_with_three_outputs_needs_positive(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 4)).astype(np.float32)
    y = rng.integers(0, 3, 90)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    model = torch.jit.script(torch.nn.Linear(4, 3))
    model.save(str(tmp_path / "dnn.pt"))
    rc = main(["build", "--data", str(tmp_path / "d.npz"), "--dnn", str(tmp_path / "dnn.pt"),
               "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "say which label means yes with --positive" in capsys.readouterr().err
    # two named classes and a 3-output DNN: no column order can match, the DNN check names it
    np.savez(tmp_path / "b.npz", X=X, y=np.where(y > 0, "cat", "dog"))
    rc = main(["build", "--data", str(tmp_path / "b.npz"), "--dnn", str(tmp_path / "dnn.pt"),
               "--out", str(tmp_path / "o2"), "--positive", "cat"])
    assert rc == 2
    assert "3 outputs but the data has 2 classes" in capsys.readouterr().err


def test_dnn_with_unexpected_output_shape(tmp_path, capsys):
    class Weird(torch.nn.Module):
        def forward(self, x):
            return x.unsqueeze(1).repeat(1, 2, 1)

    torch.jit.script(Weird()).save(str(tmp_path / "w.pt"))
    rc = main(["build", "--data", "breast_cancer", "--dnn", str(tmp_path / "w.pt"), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "DNN output has shape" in capsys.readouterr().err


def test_user_onnx_dnn_with_class_scores(tmp_path, capsys):
    """A 10-class DNN with --positive 5,...,9 follows the argmax convention."""
    from bnnembed.learn.data import load_data

    ds = load_data("digits")
    lin = torch.nn.Linear(64, 10)
    opt = torch.optim.Adam(lin.parameters(), 0.05)
    X, y = torch.from_numpy(ds.X / 16), torch.from_numpy(ds.y)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(lin(X), y).backward()
        opt.step()

    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, x):
            return self.lin(x / 16)

    torch.onnx.export(Scaled(), (X[:2] * 16,), str(tmp_path / "d.onnx"), input_names=["x"],
                      dynamic_axes={"x": {0: "b"}}, dynamo=False)
    rc = main(["build", "--data", "digits", "--positive", "5,6,7,8,9", "--dnn", str(tmp_path / "d.onnx"),
               "--out", str(tmp_path / "o"), "--hidden", "32,16", "--epochs", "2", "--augment", "1",
               "--no-baseline", "--no-cnf", "--json"])
    assert rc == 0
    m = json.loads(capsys.readouterr().out)
    assert m["dnn_accuracy"] > 0.8
    art = load_artifact(str(tmp_path / "o"))
    assert art.manifest["dnn"]["positive_columns"] == [5, 6, 7, 8, 9]
