"""End to end: the firmware under QEMU defers to the host service over TCP; nothing lost, nothing misread."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from bnnembed.artifact import load_artifact
from bnnembed.cli import main
from bnnembed.learn.data import load_data
from bnnembed.link.decision_log import DecisionLog
from bnnembed.model.intmodel import Decision
from bnnembed.device.simulate import LinkSettings, simulate
from _tools import need_qemu_arm  # noqa: E402

pytestmark = pytest.mark.qemu
ROWS = 300


def dnn_yes_direct(art, X) -> np.ndarray:
    """The artifact's DNN run straight through onnxruntime (not bnnembed's DNN wrapper or the
    host): one logit, yes iff > 0."""
    import onnxruntime as ort

    d = art.manifest["dnn"]
    assert d["file"].endswith(".onnx") and d.get("output", "logit") == "logit", d
    sess = ort.InferenceSession(os.path.join(art.path, d["file"]), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(X, dtype=np.float32)})[0]
    return out.reshape(len(X)) > 0


def check_deferrals(art, X, csv_path) -> int:
    """The rows the device deferred are exactly numpy's UNKNOWN rows (and there are some), and
    each one ends with the DNN's answer, the DNN run here directly. Returns how many."""
    with open(csv_path) as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["row"]) for r in rows] == list(range(len(X)))
    unknown = art.decide(X) == Decision.UNKNOWN
    n_unknown = int(unknown.sum())
    assert n_unknown > 0, "the rows must leave some inputs UNKNOWN, or no deferral is tested"
    deferred = [int(r["row"]) for r in rows if r["source"] == "dnn"]
    assert len(deferred) == n_unknown and deferred == np.flatnonzero(unknown).tolist()
    dnn = dnn_yes_direct(art, X)
    for i in deferred:
        assert rows[i]["final"] == ("yes" if dnn[i] else "no"), f"row {i}: deferred, not the DNN's answer"
    return n_unknown


def check_run(art, X, csv_path, log_path, summary):
    """Every row one final decision; decided = bounds, deferred = DNN; the log has each request once."""
    with open(csv_path) as fh:
        rows = list(csv.DictReader(fh))
    n_deferred = check_deferrals(art, X, csv_path)
    ref = art.decide(X)
    dnn = dnn_yes_direct(art, X)
    unknown = ref == Decision.UNKNOWN
    assert [r["bound"] for r in rows] == [Decision(int(d)).label for d in ref]  # device bounds == numpy
    for r, d, u, y in zip(rows, ref, unknown, dnn):
        if u:
            assert (r["final"], r["source"]) == ("yes" if y else "no", "dnn")
        else:
            assert (r["final"], r["source"]) == (Decision(int(d)).label, "bnn")
    with DecisionLog(log_path, readonly=True) as log:
        recs = [r for r in log.records() if r.session == summary["session"]]
    assert len(recs) == len(X)  # deferrals and reports, each exactly once
    assert [r.seq for r in recs] == list(range(1, len(X) + 1))
    defers = [r for r in recs if r.kind == "defer"]
    assert len(defers) == n_deferred
    for r in recs:
        i = r.seq - 1
        assert np.array_equal(r.features, X[i])
        assert r.kind == ("defer" if unknown[i] else "report")
        assert r.reference_decision == ref[i] and r.dnn_decision == int(dnn[i])
        if r.kind == "defer":
            assert r.reply_value == int(dnn[i])
        else:
            assert r.device_decision == ref[i]
    return n_deferred


@pytest.mark.parametrize("machine,fixture", [("mps2-an386", "digits_artifact"), ("mps2-an385", "digits_artifact"),
                                             ("mps2-an386", "digits_one_artifact"),
                                             ("mps2-an385", "digits_copies_artifact")])
def test_simulate_end_to_end(machine, fixture, tmp_path, capsys, request):
    """A pair on two machines, one network read both ways (the images' default), and one network
    over 3 shifted copies on the core without an FPU (bytes compared on their IEEE bits)."""
    need_qemu_arm()
    digits_artifact = request.getfixturevalue(fixture)
    art = load_artifact(digits_artifact)
    X = load_data("digits").X[:ROWS]
    out, log = str(tmp_path / "sim.csv"), str(tmp_path / "log.sqlite")
    assert main(["simulate", digits_artifact, "--machine", machine, "--data", "digits", "--rows", str(ROWS),
                 "--out", out, "--log", log, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    deferred = check_run(art, X, out, log, summary)
    # digits pixels are bytes (the build declares it): decided and deferred through the uint8 calls
    assert art.native_input == "uint8" and summary["input"] == "uint8"
    assert summary["rows"] == ROWS and summary["deferred"] == deferred and summary["undecided"] == 0
    assert summary["deferred_agree_with_dnn"] == deferred
    assert summary["device_bounds_match_numpy"] == ROWS
    assert summary["log_records"] == ROWS and summary["log_deferrals"] == deferred
    with capsys.disabled():
        print(f"\n[{machine}] {json.dumps({k: summary[k] for k in ('rows', 'decided_on_device', 'deferred', 'answered_by_host', 'undecided', 'deferred_agree_with_dnn', 'log_records', 'log_deferrals', 'deferral_round_trip_ms_median', 'qemu_seconds')})}")


@pytest.mark.slow
def test_simulate_fixture_model_many_deferrals(tmp_path, capsys):
    """A fixture model that leaves about half the rows UNKNOWN: a busy link, deferrals only."""
    need_qemu_arm()
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from host_fixtures import make_host_artifact

    art = make_host_artifact(tmp_path / "art")
    X = load_data("digits").X[:ROWS]
    out, log = str(tmp_path / "sim.csv"), str(tmp_path / "log.sqlite")
    res = simulate(art.path, machine="mps2-an386", data="digits", rows=ROWS, out=out, log_path=log,
                   link=LinkSettings(report=False))
    s = res.summary
    deferred = check_deferrals(art, X, out)
    assert s["deferred"] == deferred > ROWS // 4 and s["undecided"] == 0 and s["deferred_agree_with_dnn"] == s["deferred"]
    assert s["log_records"] == s["deferred"] == s["log_deferrals"]
    with capsys.disabled():
        print(f"\n[fixture, deferrals only] deferred={s['deferred']} rtt_median_ms={s['deferral_round_trip_ms_median']} "
              f"link={s['link']}")


def test_simulate_rejects_machine_without_uart(digits_artifact, tmp_path, capsys):
    assert main(["simulate", digits_artifact, "--machine", "microbit", "--data", "digits", "--rows", "3",
                 "--out", str(tmp_path / "x.csv")]) == 2
    assert "no UART port for the deferral link" in capsys.readouterr().err


def test_simulate_mnist_rows_defer_as_zero_runs(mnist_dir, tmp_path, capsys):
    """MNIST pixels fed as bytes: 784 features a row, so every DEFER and REPORT goes as zero runs
    (protocol version 3); the host decodes each to the device's exact pixels (the log holds them),
    answers the deferrals with the DNN, and drops no frame."""
    need_qemu_arm()
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from host_fixtures import make_host_artifact

    from bnnembed.artifact import read_manifest, write_manifest
    from bnnembed.link.protocol import RUNS_MIN_FEATURES

    source = f"mnist:{mnist_dir}"
    art = make_host_artifact(tmp_path / "art", source, hidden=(64, 32))
    manifest = read_manifest(art.path)
    manifest["features"]["native"] = "uint8"  # MNIST pixels are bytes at the source
    write_manifest(art.path, manifest)
    art = load_artifact(art.path)
    rows = 60
    X = load_data(source).X[:rows]
    assert X.shape[1] >= RUNS_MIN_FEATURES
    out, log = str(tmp_path / "sim.csv"), str(tmp_path / "log.sqlite")
    assert main(["simulate", art.path, "--machine", "mps2-an386", "--data", source, "--rows", str(rows),
                 "--out", out, "--log", log, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["input"] == "uint8"
    deferred = check_run(art, X, out, log, summary)
    assert summary["undecided"] == 0 and summary["deferred_agree_with_dnn"] == deferred
    assert summary["host"]["frames_dropped"] == 0 and summary["host"]["frames_ok"] == rows
