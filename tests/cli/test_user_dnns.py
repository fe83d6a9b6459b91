"""The DNNs users bring, through every command: a matrix of DNN kinds x commands.

Each DNN is made here with torch (tiny, trained for a few seconds on the built-in digits) and
exported the way users export them; it is built into an artifact from CSV files, as a user
would, and then every command runs on a test file with 0..9 labels and on one without labels,
never with ``--positive``. Results are checked against the DNN run directly (onnxruntime or
torch, with the output rule written out here), not against the artifact's own code path.

| DNN kind     | format      | output                        | yes                 |
|--------------|-------------|-------------------------------|---------------------|
| logit_mlp    | ONNX        | one logit                     | digit >= 5          |
| softmax2_mlp | ONNX        | two classes (softmax)         | label 1 (0/1 file)  |
| cnn10        | ONNX        | 10 class scores, flat input   | digit in {3, 8}     |
| cnn10_ts     | TorchScript | 10 class scores, (1, 8, 8) in | digit in {3, 8}     |
| sigmoid_mlp  | ONNX        | one probability (sigmoid)     | digit >= 5          |
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from bnnembed.artifact import load_artifact
from bnnembed.cli import main
from bnnembed.link.decision_log import DecisionLog
from bnnembed.model.intmodel import Decision
from _tools import need_qemu_arm  # noqa: E402

KINDS = ["logit_mlp", "softmax2_mlp", "cnn10", "cnn10_ts", "sigmoid_mlp"]
N_TEST = 120  # rows of the test files the commands run on
SIM_ROWS = 60


# --------------------------------------------------------------------------------------------
# the DNNs and the files a user has
# --------------------------------------------------------------------------------------------


def _models(kind: str):
    import torch
    from torch import nn

    class Mlp(nn.Module):
        def __init__(self, n_out: int, sigmoid: bool = False, softmax: bool = False):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, n_out))
            self.sigmoid, self.softmax = sigmoid, softmax

        def forward(self, x):
            z = self.net(x / 16.0)
            if self.sigmoid:
                return torch.sigmoid(z)
            return torch.softmax(z, dim=1) if self.softmax else z

    class Body(nn.Module):  # takes (batch, 1, 8, 8)
        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                                   nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32, 10))

        def forward(self, x):
            return self.f(x / 16.0)

    class FlatCnn(nn.Module):  # takes the flat row, reshapes inside the graph
        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, x):
            return self.body(x.view(-1, 1, 8, 8))

    if kind == "logit_mlp":
        return Mlp(1)
    if kind == "sigmoid_mlp":
        return Mlp(1, sigmoid=True)
    if kind == "softmax2_mlp":
        return Mlp(2, softmax=True)
    return FlatCnn(Body())


def _train(model, X, y, kind: str) -> None:
    import torch
    from torch import nn

    torch.manual_seed(0)
    xt = torch.from_numpy(X)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        perm = torch.randperm(len(X))
        for i in range(0, len(X), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            if kind in ("logit_mlp", "sigmoid_mlp"):
                z = model.net(xt[idx] / 16.0)[:, 0]
                loss = nn.functional.binary_cross_entropy_with_logits(z, torch.from_numpy((y[idx.numpy()] >= 5).astype(np.float32)))
            elif kind == "softmax2_mlp":
                z = model.net(xt[idx] / 16.0)
                loss = nn.functional.cross_entropy(z, torch.from_numpy((y[idx.numpy()] >= 5).astype(np.int64)))
            else:
                z = model(xt[idx])
                loss = nn.functional.cross_entropy(z, torch.from_numpy(y[idx.numpy()]))
            loss.backward()
            opt.step()
    model.eval()


def _write_csv(path, X, y=None) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([f"p{i}" for i in range(X.shape[1])] + (["label"] if y is not None else []))
        for i, row in enumerate(X):
            w.writerow([f"{v:g}" for v in row] + ([int(y[i])] if y is not None else []))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = d.data.astype(np.float32), d.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(X))
    X, y = X[order], y[order]
    tmp = tmp_path_factory.mktemp("user_files")
    Xb, yb, Xt, yt = X[:1400], y[:1400], X[1400 : 1400 + N_TEST], y[1400 : 1400 + N_TEST]
    f = {"X_test": Xt, "y_test": yt, "X_build": Xb, "y_build": yb, "dir": tmp}
    for name, Xs, ys in (("build", Xb, yb), ("test", Xt, yt)):
        _write_csv(tmp / f"{name}.csv", Xs, ys)
        _write_csv(tmp / f"{name}01.csv", Xs, (ys >= 5).astype(np.int64))
    _write_csv(tmp / "test_nolabel.csv", Xt)
    _write_csv(tmp / "small_nolabel.csv", Xt[:5])
    _write_csv(tmp / "wide.csv", np.concatenate([Xt, Xt[:, :3]], axis=1), yt)
    np.savez(tmp / "test_nolabel.npz", X=Xt)
    return f


class UserDnn:
    """One DNN kind built into an artifact, and its decisions computed directly."""

    def __init__(self, kind: str, art: str, model_path: str, positive: set[int], labels01: bool):
        self.kind, self.art, self.model_path, self.positive, self.labels01 = kind, art, model_path, positive, labels01

    def raw(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, np.float32)
        if self.model_path.endswith(".onnx"):
            import onnxruntime as ort

            sess = ort.InferenceSession(self.model_path, providers=["CPUExecutionProvider"])
            return np.asarray(sess.run(None, {sess.get_inputs()[0].name: X})[0]).reshape(len(X), -1)
        import torch

        m = torch.jit.load(self.model_path)
        with torch.no_grad():
            return m(torch.from_numpy(X.reshape(-1, 1, 8, 8))).numpy()

    def yes(self, X: np.ndarray) -> np.ndarray:
        out = self.raw(X)
        if self.kind == "logit_mlp":
            return out[:, 0] > 0
        if self.kind == "sigmoid_mlp":
            return out[:, 0] > 0.5
        return np.isin(out.argmax(1), sorted(self.positive))


def _export(kind: str, model, path: str) -> None:
    import torch

    if kind == "cnn10_ts":
        traced = torch.jit.trace(model.body, torch.zeros(2, 1, 8, 8))
        traced.save(path)
        return
    torch.onnx.export(model, (torch.zeros(2, 64),), path, input_names=["features"],
                      dynamic_axes={"features": {0: "batch"}}, dynamo=False)


@pytest.fixture(scope="module")
def trained(files):
    """The two trained model objects shared by kinds (the CNN is exported twice)."""
    cache = {}

    def get(kind):
        key = "cnn" if kind.startswith("cnn") else kind
        if key not in cache:
            m = _models(kind)
            _train(m, files["X_build"], files["y_build"], kind)
            cache[key] = m
        return cache[key]

    return get


BUILD_FLAGS = ["--hidden", "32,16", "--epochs", "8", "--augment", "4", "--no-baseline", "--seed", "1", "--alpha", "0.1"]


@pytest.fixture(scope="module", params=KINDS)
def user(request, files, trained, tmp_path_factory):
    kind = request.param
    tmp = tmp_path_factory.mktemp(kind)
    model_path = str(tmp / ("model.pt" if kind == "cnn10_ts" else "model.onnx"))
    _export(kind, trained(kind), model_path)
    positive, labels01 = ({3, 8}, False) if kind.startswith("cnn") else ({1}, True) if kind == "softmax2_mlp" \
        else ({5, 6, 7, 8, 9}, False)
    build_csv = files["dir"] / ("build01.csv" if labels01 else "build.csv")
    art = str(tmp / "art")
    argv = ["build", "--data", str(build_csv), "--dnn", model_path, "--out", art, *BUILD_FLAGS]
    if not labels01:
        argv += ["--positive", ",".join(map(str, sorted(positive)))]
    assert main(argv + ["--json"]) == 0
    return UserDnn(kind, art, model_path, positive, labels01)


def _test_file(files, user, labelled: bool) -> str:
    if not labelled:
        return str(files["dir"] / "test_nolabel.csv")
    return str(files["dir"] / ("test01.csv" if user.labels01 else "test.csv"))


def _json_out(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


# --------------------------------------------------------------------------------------------
# the matrix
# --------------------------------------------------------------------------------------------


def test_artifact_records_what_yes_means(user, files):
    art = load_artifact(user.art)
    d = art.manifest["dnn"]
    want = {"logit_mlp": "logit", "sigmoid_mlp": "probability"}.get(user.kind, "classes")
    assert d["output"] == want
    assert d["outputs"] == {"logit_mlp": 1, "sigmoid_mlp": 1, "softmax2_mlp": 2}.get(user.kind, 10)
    if want == "classes":
        assert set(d["positive_columns"]) == user.positive
    assert d["input_shape"] == ([1, 8, 8] if user.kind == "cnn10_ts" else [64])
    assert art.metrics["settings"]["alpha"] == art.metrics["alpha"] == 0.1
    assert art.metrics["coverage"] > 0.5  # the bounds answer: every command below has decided rows to work on
    # the loaded DNN decides exactly as the model file does
    X = files["X_test"]
    assert np.array_equal(art.load_dnn().says_yes(X), user.yes(X))


@pytest.mark.parametrize("labelled", [True, False], ids=["labels", "nolabels"])
def test_eval(user, files, labelled, capsys):
    X = files["X_test"]
    assert main(["eval", user.art, "--data", _test_file(files, user, labelled), "--json"]) == 0
    m = _json_out(capsys)
    dec = load_artifact(user.art).decide(X)
    decided = dec != int(Decision.UNKNOWN)
    dnn = user.yes(X)
    assert m["rows"] == len(X)
    assert m["decided"] == int(decided.sum()) > 0
    assert m["disagreements"] == int(((dec == int(Decision.YES)) != dnn)[decided].sum())
    if labelled:
        truth = (files["y_test"] >= 5) if user.labels01 else np.isin(files["y_test"], sorted(user.positive))
        assert m["dnn_accuracy"] == pytest.approx(float(np.mean(dnn == truth)))
    else:
        assert "dnn_accuracy" not in m


@pytest.mark.parametrize("source", ["labels", "nolabels", "npz"])
def test_predict_equals_the_cascade(user, files, source, tmp_path, capsys):
    X = files["X_test"]
    data = str(files["dir"] / "test_nolabel.npz") if source == "npz" else _test_file(files, user, source == "labels")
    out = str(tmp_path / "p.csv")
    assert main(["predict", user.art, "--data", data, "--out", out, "--json"]) == 0
    with open(out) as fh:
        rows = list(csv.DictReader(fh))
    dec = load_artifact(user.art).decide(X)
    dnn = user.yes(X)
    assert len(rows) == len(X)
    for r, d, y in zip(rows, dec, dnn):
        if d == int(Decision.UNKNOWN):
            assert (r["bound"], r["final"], r["source"]) == ("unknown", "yes" if y else "no", "dnn")
        else:
            assert (r["bound"], r["final"], r["source"]) == (Decision(int(d)).label, Decision(int(d)).label, "bnn")


def test_codegen_project_parses(user, tmp_path, capsys):
    from platformio.project.config import ProjectConfig

    out = tmp_path / "proj"
    assert main(["codegen", user.art, "--board", "nucleo_f401re", "--out", str(out)]) == 0
    assert ProjectConfig.lint(str(out / "platformio.ini")) == {"errors": [], "warnings": []}
    model_c = (out / "src" / "bnn_model.c") if (out / "src" / "bnn_model.c").exists() else None
    assert model_c is None or load_artifact(user.art).model_hash in model_c.read_text()


@pytest.mark.qemu
@pytest.mark.parametrize("machine", ["mps2-an386", "microbit"])
def test_qemu_bit_exact(user, files, machine, capsys):
    need_qemu_arm()
    if machine == "microbit" and user.kind not in ("cnn10", "logit_mlp"):
        pytest.skip("Cortex-M0 runs on the class-score CNN and the logit MLP (the kernel does not depend on the DNN)")
    rc = main(["qemu", user.art, "--machine", machine, "--data", _test_file(files, user, True), "--rows", "80",
               "--json"])
    rep = _json_out(capsys)
    assert rc == 0 and rep["rows"] == 80 and rep["mismatches"] == 0 and rep["score_mismatches"] == 0


@pytest.mark.qemu
@pytest.mark.parametrize("labelled", [True, False], ids=["labels", "nolabels"])
def test_simulate_defers_to_the_dnn_and_logs(user, files, labelled, tmp_path, capsys):
    need_qemu_arm()
    if labelled and user.kind not in ("cnn10", "softmax2_mlp"):
        pytest.skip("labelled rows are simulated on the class-score DNNs; the others take the unlabelled file")
    X = files["X_test"][:SIM_ROWS]
    out, log = str(tmp_path / "sim.csv"), str(tmp_path / "log.sqlite")
    assert main(["simulate", user.art, "--machine", "mps2-an386", "--data", _test_file(files, user, labelled),
                 "--rows", str(SIM_ROWS), "--out", out, "--log", log, "--json"]) == 0
    summary = _json_out(capsys)
    with open(out) as fh:
        rows = list(csv.DictReader(fh))
    dec = load_artifact(user.art).decide(X)
    dnn = user.yes(X)
    unknown = dec == int(Decision.UNKNOWN)
    assert summary["deferred"] == int(unknown.sum()) > 0 and summary["undecided"] == 0
    for r, d, y, u in zip(rows, dec, dnn, unknown):
        assert r["bound"] == Decision(int(d)).label
        assert r["final"] == ("yes" if y else "no") if u else r["final"] == Decision(int(d)).label
    # the host's log: every request once, each deferral answered with the DNN's decision
    assert main(["log", user.art, "--log", log, "--json"]) == 0
    logged = _json_out(capsys)
    recs = [r for r in logged["records"] if r["session"] == summary["session"]]
    assert len(recs) == SIM_ROWS
    with DecisionLog(log, readonly=True) as db:
        for r in db.records():
            if r.session == summary["session"] and r.kind == "defer":
                assert r.dnn_decision == int(dnn[r.seq - 1])


@pytest.mark.parametrize("labelled", [True, False], ids=["labels", "nolabels"])
def test_explain_row(user, files, labelled, capsys):
    row = 7
    dec = load_artifact(user.art).decide(files["X_test"][row : row + 1])[0]
    scope = ["--scope", "decision"] if dec == int(Decision.UNKNOWN) else []  # a deferred row: why it deferred
    assert main(["explain", user.art, "--data", _test_file(files, user, labelled), "--row", str(row),
                 "--seconds", "5", "--json"] + scope) == 0
    r = _json_out(capsys)
    assert r["decision"] == Decision(int(dec)).label
    assert r["size"] == len(r["features"]) <= 64


def test_explain_all_without_labels(user, files, tmp_path, capsys):
    out = str(tmp_path / "all.jsonl")
    assert main(["explain", user.art, "--data", str(files["dir"] / "small_nolabel.csv"), "--all", "--out", out,
                 "--seconds", "1"]) == 0
    lines = [json.loads(line) for line in open(out)]
    dec = load_artifact(user.art).decide(files["X_test"][:5])
    assert [line["row"] for line in lines] == list(range(5))
    assert [line["decision"] for line in lines] == [Decision(int(d)).label for d in dec]


def test_verify_row(user, files, capsys):
    art = load_artifact(user.art)
    assert main(["verify", user.art, "--data", _test_file(files, user, False), "--row", "3", "--radius", "1",
                 "--json"]) == 0
    r = _json_out(capsys)
    x = files["X_test"][3]
    assert r["decision"] == Decision(int(art.decide(x[None])[0])).label
    if r["robust"] is False:  # the counterexample replays through numpy to another decision
        ce = r["counterexample"]
        assert ce["decision"] != r["decision"]


@pytest.mark.slow
@pytest.mark.parametrize("labelled", [False, True], ids=["nolabels", "labels"])
def test_certify_counterexamples_replay_through_the_dnn(user, files, labelled, tmp_path, capsys):
    if labelled and user.kind != "cnn10":
        pytest.skip("labelled rows are certified on the class-score CNN; the others take the unlabelled file")
    out = str(tmp_path / "cert.jsonl")
    assert main(["certify", user.art, "--data", _test_file(files, user, labelled), "--rows", "0-29", "--limit", "3",
                 "--time-limit", "20", "--explain-seconds", "3", "--extend-time", "5", "--out", out, "--json",
                 "--no-metrics"]) == 0
    totals = _json_out(capsys)
    recs = [json.loads(line) for line in open(out)]
    assert totals["decided"] == len(recs) > 0
    assert sum(totals[k] for k in ("certified", "refuted", "timeout", "spurious")) == len(recs)
    for rec in recs:
        v = rec["verification"]
        if v["status"] == "refuted":
            x = np.array(v["counterexample"], np.float32)[None]
            assert bool(user.yes(x)[0]) != (rec["decision"] == "yes")  # the DNN itself disagrees
            # and the counterexample lies in the explanation's box
            for f in rec["features"]:
                assert f["lo"] is None or x[0, f["column"]] >= f["lo"]
                assert f["hi"] is None or x[0, f["column"]] < f["hi"]


# --------------------------------------------------------------------------------------------
# bad input: one line, exit 2
# --------------------------------------------------------------------------------------------


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_positive_outside_the_classes_is_refused(files, trained, tmp_path, capsys):
    model = str(tmp_path / "cnn.onnx")
    _export("cnn10", trained("cnn10"), model)
    # the labels are 0..9: 11 is neither a label nor a column
    assert main(["build", "--data", str(files["dir"] / "build.csv"), "--dnn", model, "--out", str(tmp_path / "a"),
                 "--positive", "11", *BUILD_FLAGS]) == 2
    assert "11" in _one_line_error(capsys)
    # and all ten classes: the DNN would always say yes
    assert main(["build", "--data", str(files["dir"] / "build.csv"), "--dnn", model, "--out", str(tmp_path / "b"),
                 "--positive", "0,1,2,3,4,5,6,7,8,9", *BUILD_FLAGS]) == 2
    _one_line_error(capsys)


@pytest.mark.parametrize("user", ["cnn10"], indirect=True)
def test_later_positive_is_checked_against_the_artifact(user, files, tmp_path, capsys):
    data = _test_file(files, user, True)
    assert main(["eval", user.art, "--data", data, "--positive", "4", "--json"]) == 2
    assert "contradicts the artifact" in _one_line_error(capsys)
    assert main(["eval", user.art, "--data", data, "--positive", "8,3", "--json"]) == 0  # the same set
    capsys.readouterr()
    # another labelling (0/1) is mapped by --positive, for the accuracy figure only
    assert main(["eval", user.art, "--data", str(files["dir"] / "test01.csv"), "--positive", "1", "--json"]) == 0
    capsys.readouterr()
    # rows without labels: --positive has nothing to map
    assert main(["eval", user.art, "--data", _test_file(files, user, False), "--positive", "3"]) == 2
    assert "no label column" in _one_line_error(capsys)


@pytest.mark.parametrize("user", ["cnn10"], indirect=True)
@pytest.mark.parametrize("command", ["eval", "predict", "explain", "verify", "qemu", "certify"])
def test_wrong_feature_count_is_refused(user, files, command, tmp_path, capsys):
    argv = [command, user.art, "--data", str(files["dir"] / "wide.csv")]
    argv += {"predict": ["--out", str(tmp_path / "p.csv")], "explain": ["--row", "0"],
             "verify": ["--row", "0", "--radius", "1"], "qemu": ["--machine", "mps2-an386"]}.get(command, [])
    assert main(argv) == 2
    assert "67 feature columns, but the artifact expects 64" in _one_line_error(capsys)


def test_certify_names_an_operator_it_cannot_read(files, tmp_path, capsys):
    import torch
    from torch import nn

    class TanhMlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 1))

        def forward(self, x):
            return self.net(x / 16.0)

    model = TanhMlp()
    _train(model, files["X_build"], files["y_build"], "logit_mlp")
    path = str(tmp_path / "tanh.onnx")
    torch.onnx.export(model, (torch.zeros(2, 64),), path, input_names=["features"],
                      dynamic_axes={"features": {0: "batch"}}, dynamo=False)
    art = str(tmp_path / "art")
    assert main(["build", "--data", str(files["dir"] / "build.csv"), "--positive", "5,6,7,8,9", "--dnn", path,
                 "--out", art, *BUILD_FLAGS, "--json"]) == 0
    capsys.readouterr()
    assert main(["certify", art, "--data", str(files["dir"] / "test_nolabel.csv"), "--rows", "0-3"]) == 2
    assert "Tanh" in _one_line_error(capsys)


# --------------------------------------------------------------------------------------------
# shifted copies on the user's CNN (bnnembed build --shift-copies)
# --------------------------------------------------------------------------------------------


@pytest.mark.qemu
@pytest.mark.parametrize("kind", ["cnn10", "cnn10_ts"])
def test_shift_copies_on_the_users_cnn(kind, files, trained, tmp_path, capsys):
    """A 10-class CNN from a CSV of pixels: the ONNX one takes flat rows, so the image shape is
    given (--image-shape); the TorchScript one takes (1, 8, 8) images, which name it. The artifact
    decides over 3 copies on rows without labels, on the Cortex-M0 bit for bit, and explains."""
    need_qemu_arm()
    model_path = str(tmp_path / ("model.pt" if kind == "cnn10_ts" else "model.onnx"))
    _export(kind, trained(kind), model_path)
    art = str(tmp_path / "art")
    shape = ["--image-shape", "8x8"] if kind == "cnn10" else []
    assert main(["build", "--data", str(files["dir"] / "build.csv"), "--dnn", model_path, "--out", art,
                 "--positive", "3,8", "--shift-copies", "3", *shape, *BUILD_FLAGS, "--json"]) == 0
    metrics = _json_out(capsys)
    assert metrics["model"]["shift_copies"]["copies"] == 3 and metrics["model"]["shift_copies"]["image_shape"] == [8, 8]
    a = load_artifact(art)
    assert a.copies is not None and a.manifest["bounds"]["copies"]["count"] == 3
    nolabel = str(files["dir"] / "test_nolabel.csv")
    assert main(["eval", art, "--data", nolabel, "--json"]) == 0
    assert _json_out(capsys)["rows"] == N_TEST
    assert main(["qemu", art, "--machine", "microbit", "--data", nolabel, "--rows", "80", "--json"]) == 0
    rep = _json_out(capsys)
    assert (rep["rows"], rep["mismatches"], rep["score_mismatches"], rep["input"]) == (80, 0, 0, "uint8")
    assert main(["explain", art, "--data", nolabel, "--row", "2", "--seconds", "2", "--json", "--scope",
                 "decision"]) == 0
    r = _json_out(capsys)
    assert r["size"] == len(r["features"]) <= 64


def test_shift_copies_needs_an_image(files, tmp_path, capsys):
    """Flat rows and an MLP name no image: one line says so; a shape that does not hold the
    columns, and copies with --features, are refused the same way."""
    base = ["build", "--data", str(files["dir"] / "build.csv"), "--positive", "3,8", "--out", str(tmp_path / "a"),
            *BUILD_FLAGS]
    assert main(base + ["--shift-copies", "3"]) != 0  # flat CSV rows, the default DNN takes them flat
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "give --image-shape HxW" in err, err
    assert not (tmp_path / "a").exists()  # refused before a DNN was trained or anything written
    for extra, says in ((["--image-shape", "7x9"], "holds 63 pixels but the rows have 64"),
                        (["--shift-copies", "3", "--image-shape", "8x8", "--features", "20"], "choose one")):
        assert main(base + extra) != 0
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and says in err, err


def test_shift_copies_the_image_cannot_take_are_refused_before_training(files, tmp_path, capsys):
    """A one-row image cannot move up and down: one line naming the fix, before anything is
    trained or written."""
    out = tmp_path / "a"
    assert main(["build", "--data", str(files["dir"] / "build.csv"), "--positive", "3,8", "--out", str(out),
                 "--image-shape", "1x64", "--shift-copies", "5", *BUILD_FLAGS]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "out of sight" in err and "use fewer copies" in err, err
    assert not out.exists()
