"""Inputs with a NaN or an infinity: INVALID in numpy, in the C, on the link and in the host log.

Such an input has no thermometer code (a compare with NaN is false, +inf is above every
threshold), so before this outcome existed the bounds answered yes/no for it and the host logged
a DNN decision. Now numpy and the C decide it INVALID before encoding, the device never defers it
(it REPORTs decision 3), the host NACKs a DEFER of one (reason 4) and never logs a yes/no for it.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _proto_c  # noqa: E402
from _fake_device import FakeDevice  # noqa: E402
from _tools import need_qemu_arm  # noqa: E402
from firmware_fixtures import build_example_app  # noqa: E402

from bnnembed.link import protocol as P  # noqa: E402
from bnnembed.artifact import load_artifact  # noqa: E402
from bnnembed.render.project import write_board_project  # noqa: E402
from bnnembed.render.quantize import Encoding, quantize_int16  # noqa: E402
from bnnembed.device.boards import get_board  # noqa: E402
from bnnembed.learn.data import Dataset, load_data  # noqa: E402
from bnnembed.link.decision_log import DecisionLog  # noqa: E402
from bnnembed.errors import BnnError  # noqa: E402
from bnnembed.link.host import HostCore  # noqa: E402
from bnnembed.link.endpoints import TcpListen  # noqa: E402
from bnnembed.link.service import start_host  # noqa: E402
from bnnembed.model.intmodel import Decision, decide, invalid_rows  # noqa: E402
from bnnembed.predict import predict, write_predictions_csv  # noqa: E402
from bnnembed.device.qemu import SCORE_NONE, BuildOptions, check_against_numpy, numpy_reference, run_on_qemu  # noqa: E402
from bnnembed.device.simulate import simulate  # noqa: E402

BAD_VALUES = (np.nan, np.inf, -np.inf)


def spoil(X: np.ndarray, n_bad: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A copy of ``X`` where ``n_bad`` random rows get NaN, +inf or -inf in one random feature
    (cycling through the three), and two more rows are all NaN; returns (rows, bad mask)."""
    rng = np.random.default_rng(seed)
    X = np.array(X, dtype=np.float32, copy=True)
    rows = rng.choice(len(X), size=n_bad + 2, replace=False)
    for k, r in enumerate(rows[:n_bad]):
        X[r, rng.integers(X.shape[1])] = BAD_VALUES[k % 3]
    X[rows[n_bad:]] = np.nan
    bad = np.zeros(len(X), dtype=bool)
    bad[rows] = True
    return X, bad


@pytest.fixture(scope="module")
def digits(digits_artifact):
    return load_artifact(digits_artifact)


@pytest.fixture(scope="module")
def bc(bc_artifact):
    return load_artifact(bc_artifact)


@pytest.fixture(scope="module")
def mixed():
    """300 digits rows, 60 + 2 of them invalid."""
    return spoil(load_data("digits").X[:300], 60)


# ------------------------------------------------------------------------------------ numpy

def test_enum_and_nack_codes():
    assert int(Decision.INVALID) == 3 and Decision.INVALID.label == "invalid"
    assert int(P.NackReason.INVALID_INPUT) == 4
    # the C side sees the same values: tests/render/test_codegen.py::test_c_sees_every_python_code


def test_invalid_rows_helper():
    X = np.array([[0, 1], [np.nan, 1], [np.inf, 0], [0, -np.inf], [3.0e38, -3.0e38]], dtype=np.float32)
    assert invalid_rows(X).tolist() == [False, True, True, True, False]
    # beyond the float32 range: infinite once the device receives it, so invalid too
    assert invalid_rows(np.array([[1e39, 0.0], [1e30, 0.0]])).tolist() == [True, False]


@pytest.mark.parametrize("which", ["digits", "bc"])
def test_numpy_invalid_exactly_for_nonfinite_rows(request, which):
    art = request.getfixturevalue(which)
    X0 = load_data("digits" if which == "digits" else "breast_cancer").X[:400]
    X, bad = spoil(X0, 90, seed=1)
    dec = art.decide(X)
    assert np.array_equal(dec == Decision.INVALID, bad)
    assert np.array_equal(dec[~bad], art.decide(X0)[~bad])  # the other rows are untouched
    assert not np.any(art.decide(X0) == Decision.INVALID)
    assert np.array_equal(art.decide(np.full((3, X.shape[1]), np.nan)), [Decision.INVALID] * 3)
    # the integer model on bits is unchanged: bits are always a valid code
    assert not np.any(decide(art.upper, art.lower, art.encode(X)) == Decision.INVALID)


def test_reference_scores_of_invalid_rows(digits, mixed):
    X, bad = mixed
    for enc in Encoding:
        dec, su, sl = numpy_reference(digits, X, enc)
        assert np.array_equal(dec == Decision.INVALID, bad)
        assert np.all(su[bad] == SCORE_NONE) and np.all(sl[bad] == SCORE_NONE)
        assert np.all(su[~bad] >= 0)


def test_int16_conversion_refuses_nonfinite(digits, mixed):
    X, bad = mixed
    with pytest.raises(BnnError, match=r"62 row\(s\) with a NaN or infinite feature"):
        quantize_int16(digits.encoder, X)
    assert quantize_int16(digits.encoder, X[~bad]).dtype == np.int16


def test_predict_numpy_csv(digits, mixed, tmp_path):
    X, bad = mixed
    ds = Dataset("mixed", X, None, digits.feature_names)
    pred = predict(digits, ds)
    assert np.array_equal(pred.invalid, bad)
    assert not pred.source_dnn[bad].any() and not pred.final[bad].any()
    out = tmp_path / "p.csv"
    write_predictions_csv(pred, str(out))
    with open(out) as fh:
        rows = list(csv.DictReader(fh))
    for r, b in zip(rows, bad):
        if b:
            assert (r["bound"], r["final"], r["source"]) == ("invalid", "invalid", "none")
        else:
            assert r["final"] in ("yes", "no") and r["source"] in ("bnn", "dnn")


# --------------------------------------------------------------------------------- C (QEMU)

@pytest.mark.qemu
@pytest.mark.parametrize("machine", ["mps2-an386", "microbit"])
def test_c_equals_numpy_with_invalid_rows(digits, bc, machine):
    """Float encoding: the C decides INVALID exactly where numpy does, scores -1, others bit-exact."""
    need_qemu_arm()
    for art, source in ((digits, "digits"), (bc, "breast_cancer")):
        X, bad = spoil(load_data(source).X[:300], 60, seed=2)
        run = run_on_qemu(art, machine, X)
        assert np.array_equal(run.decisions, art.decide(X))
        assert np.array_equal(run.decisions == Decision.INVALID, bad)
        assert np.all(run.upper_scores[bad] == SCORE_NONE) and np.all(run.lower_scores[bad] == SCORE_NONE)
        rep = check_against_numpy(art, machine, X)
        assert rep.mismatches == 0 and rep.score_mismatches == 0
        assert rep.decisions["invalid"] == int(bad.sum())
        assert rep.instructions_per_inference > 0


@pytest.mark.qemu
@pytest.mark.parametrize("machine", ["microbit", "mps2-an386"])
def test_int16_invalid_at_the_conversion(digits, mixed, machine):
    """int16: a non-finite row has no int16 value, so it is INVALID at the float -> int16
    conversion and never reaches the device; every other row is bit-exact."""
    need_qemu_arm()
    X, bad = mixed
    rep = check_against_numpy(digits, machine, X, BuildOptions(encoding=Encoding.INT16))
    assert rep.mismatches == 0 and rep.score_mismatches == 0 and rep.float_mismatches == 0
    assert rep.decisions["invalid"] == int(bad.sum())


def test_check_survives_fast_math(digits, mixed):
    """The C check reads the exponent bits, so -ffast-math (finite-math-only) cannot fold it away."""
    if shutil.which("gcc") is None:
        pytest.skip("host gcc not installed")
    X, bad = mixed
    run = run_on_qemu(digits, "host", X, BuildOptions(extra_cflags=("-ffast-math",)))
    assert np.array_equal(run.decisions == Decision.INVALID, bad)


def test_example_main_prints_invalid(digits, tmp_path):
    """The generated src/main.c (stdio port, no link) answers a nan/inf line 'invalid -1 -1'."""
    if shutil.which("gcc") is None:
        pytest.skip("host gcc not installed")
    project = tmp_path / "proj"
    write_board_project(digits, get_board("nucleo_f401re"), project, Encoding.FLOAT)
    exe = tmp_path / "app"
    build_example_app(project, exe)
    X = load_data("digits").X[:3].astype(np.float32)
    lines = [",".join(f"{v:.9g}" for v in row) for row in X]
    for bad in ("nan", "inf", "-inf"):
        lines.append(",".join([bad] + [f"{v:.9g}" for v in X[0, 1:]]))
    out = subprocess.run([str(exe)], input="\n".join(lines) + "\n", capture_output=True, text=True,
                         timeout=60).stdout.splitlines()[1:]
    dec, su, sl = numpy_reference(digits, X)
    assert out[:3] == [f"{Decision(int(d)).label} {u} {l}" for d, u, l in zip(dec, su, sl)]
    assert out[3:] == ["invalid -1 -1"] * 3


# ------------------------------------------------------------------------------- protocol

@pytest.fixture(scope="module")
def cproto(tmp_path_factory):
    return _proto_c.CProto(_proto_c.build(str(tmp_path_factory.mktemp("cproto"))))


@pytest.mark.parametrize("decision", [0, 1, 3])
def test_report_decisions_python_equals_c(cproto, decision):
    x = np.array([1.5, np.nan, np.inf, -np.inf, 0.0], np.float32)
    msg = P.Report(0xDEADBEEF, 42, 0x1234ABCD, decision, x)
    pbytes = P.encode_payload(msg)
    assert cproto.build_request(P.MsgType.REPORT, 0xDEADBEEF, 42, 0x1234ABCD, decision, x) == pbytes
    back = P.decode_payload(pbytes)
    assert back == msg and back.features.tobytes() == x.tobytes()  # NaN bits survive the trip
    status, f = cproto.parse(pbytes)
    assert status == 0 and f[:6] == [int(P.MsgType.REPORT), 0xDEADBEEF, 42, 0x1234ABCD, decision, x.size]


@pytest.mark.parametrize("value", [2, 4, 255])
def test_out_of_range_decisions_dropped_in_both(cproto, value):
    value_status = 1 + P.DROP_REASONS.index("value")
    x = np.ones(3, np.float32)
    report = cproto.build_request(P.MsgType.REPORT, 1, 2, 3, value, x)
    decision = P.encode_payload(P.DecisionReply(1, 2, 3, value))
    for payload in (report, decision):
        with pytest.raises(P.FrameError) as exc:
            P.decode_payload(payload)
        assert exc.value.reason == "value"
        assert cproto.parse(payload)[0] == value_status
    # a DECISION is 0 or 1 only: 3 (invalid) is never an answer
    three = P.encode_payload(P.DecisionReply(1, 2, 3, 3))
    assert cproto.parse(three)[0] == value_status


# ----------------------------------------------------------------------------------- host

class _SpyDnn:
    """The artifact's DNN, counting the rows it is asked about."""

    def __init__(self, dnn) -> None:
        self.dnn, self.rows = dnn, 0

    def says_yes(self, X):
        assert np.isfinite(X).all(), "the DNN was asked about a non-finite input"
        self.rows += len(X)
        return self.dnn.says_yes(X)


@pytest.fixture
def core(digits, tmp_path):
    log = DecisionLog(str(tmp_path / "log.sqlite"))
    c = HostCore(digits, log, dnn=_SpyDnn(digits.load_dnn()))
    yield c
    log.close()


def _reply(core, msg):
    out = P.FrameReader().feed(core.feed(P.encode_frame(msg)))
    assert len(out) == 1
    return out[0][1]


def test_host_nacks_nonfinite_defer_and_logs_it(core, digits):
    x = load_data("digits").X[7].astype(np.float32)
    for k, bad in enumerate(BAD_VALUES):
        y = x.copy()
        y[(5 * k + 3) % len(y)] = bad
        req = P.Defer(9, k + 1, core.tag, y)
        reply = _reply(core, req)
        assert isinstance(reply, P.Nack) and reply.reason == P.NackReason.INVALID_INPUT
        assert reply.req_crc == P.payload_crc(P.encode_payload(req))
        assert _reply(core, req) == reply  # a retry: the same NACK, from the log
    assert core.dnn.rows == 0
    recs = core.log.records()
    assert len(recs) == 3
    for r in recs:
        assert (r.kind, r.dnn_decision, r.reference_decision, r.device_decision) == ("defer", None, 3, None)
        assert (r.reply_type, r.reply_value, r.decision_id, r.retries) == (P.MsgType.NACK, 4, None, 1)
        assert not np.isfinite(r.features).all()
    assert core.counts["invalid_inputs"] == 3 and core.counts["refused"] == 3
    # a finite DEFER is still answered by the DNN
    assert isinstance(_reply(core, P.Defer(9, 10, core.tag, x)), P.DecisionReply) and core.dnn.rows == 1


def test_host_acks_invalid_report_and_logs_it(core):
    x = np.full(core.n_features, np.nan, np.float32)
    assert isinstance(_reply(core, P.Report(4, 1, core.tag, 3, x)), P.Ack)
    # firmware without the check reports its bounds' yes for the same input: logged as it came,
    # reference INVALID, still no DNN decision
    y = load_data("digits").X[0].astype(np.float32)
    y[0] = np.inf
    assert isinstance(_reply(core, P.Report(4, 2, core.tag, 1, y)), P.Ack)
    a, b = core.log.records()
    assert (a.kind, a.device_decision, a.reference_decision, a.dnn_decision, a.reply_type) == \
        ("report", 3, 3, None, P.MsgType.ACK)
    assert (b.device_decision, b.reference_decision, b.dnn_decision) == (1, 3, None)
    assert core.dnn.rows == 0
    assert core.counts["invalid_inputs"] == 2 and core.counts["invalid_reports"] == 1


def test_nonfinite_defer_over_tcp_python_and_c(digits, tmp_path):
    """A Python device and the C link (host build), over TCP: a non-finite DEFER is refused with
    reason 4 at once (no retries), a REPORT of decision 3 is acknowledged."""
    X = load_data("digits").X[:4].astype(np.float32)
    Xbad = X.copy()
    Xbad[:, 10] = np.nan
    log_path = str(tmp_path / "log.sqlite")
    c = _proto_c.CProto(_proto_c.build(str(tmp_path)))
    tag = P.model_tag(digits.model_hash)
    service, thread = start_host(digits, TcpListen("127.0.0.1", 0), log_path=log_path)
    try:
        dev = FakeDevice(service.endpoint.port, session=21, model_tag=tag)
        assert dev.defer(Xbad[0]) == ("refused", P.NackReason.INVALID_INPUT)
        assert dev.report(Xbad[1], 3) == "ok"
        assert dev.defer(X[2])[0] == "ok"
        dev.close()
        c.connect(service.endpoint.port)
        c.link_setup(22, tag, timeout_ms=500, attempts=5)
        assert c.defer(Xbad[2])[0] == 2  # BNN_LINK_REFUSED
        assert c.report(Xbad[3], 3) == 0  # BNN_LINK_OK
        stats = c.link_stats()
        c.close()
    finally:
        service.stop.set()
        thread.join(5)
        service.core.log.close()
    assert stats["retries"] == 0 and stats["refused"] == 1
    with DecisionLog(log_path, readonly=True) as log:
        recs = log.records()
    bad = [r for r in recs if not np.isfinite(r.features).all()]
    assert len(bad) == 4
    assert all(r.dnn_decision is None and r.reference_decision == 3 and r.reply_type != P.MsgType.DECISION
               for r in bad)
    assert sorted((r.kind, r.reply_value) for r in bad) == [("defer", 4), ("defer", 4), ("report", None),
                                                           ("report", None)]


# ------------------------------------------------------------------------- simulate (QEMU)

@pytest.mark.qemu
def test_simulate_invalid_rows_end_invalid_and_are_reported(digits, tmp_path):
    need_qemu_arm()
    X, bad = spoil(load_data("digits").X[:150], 30, seed=3)
    out, log_path = str(tmp_path / "sim.csv"), str(tmp_path / "log.sqlite")
    res = simulate(digits.path, machine="mps2-an386", X=X, out=out, log_path=log_path)
    run, s = res.run, res.summary
    assert np.array_equal(run.bound == Decision.INVALID, bad)
    assert np.all(run.final[bad] == 3) and np.all(run.status[bad] == 0)  # reported and acknowledged
    assert not np.any(run.final[~bad] == 3)
    assert s["invalid"] == s["invalid_inputs"] == int(bad.sum()) and s["undecided"] == 0
    assert s["device_bounds_match_numpy"] == len(X)
    assert s["host"]["invalid_inputs"] == s["host"]["invalid_reports"] == int(bad.sum())
    ref = digits.decide(X)
    dnn = np.zeros(len(X), dtype=int)
    dnn[~bad] = digits.load_dnn().says_yes(X[~bad])
    with open(out) as fh:
        rows = list(csv.DictReader(fh))
    for r, b, d, y in zip(rows, bad, ref, dnn):
        if b:
            assert (r["bound"], r["final"], r["source"]) == ("invalid", "invalid", "none")
        elif d == Decision.UNKNOWN:
            assert (r["final"], r["source"]) == ("yes" if y else "no", "dnn")
        else:
            assert (r["final"], r["source"]) == (Decision(int(d)).label, "bnn")
    with DecisionLog(log_path, readonly=True) as log:
        recs = [r for r in log.records() if r.session == res.session]
    assert [r.seq for r in recs] == list(range(1, len(X) + 1))  # every row once, in order
    for r in recs:
        i = r.seq - 1
        assert r.features.tobytes() == X[i].tobytes()
        if bad[i]:
            assert (r.kind, r.device_decision, r.reference_decision, r.dnn_decision, r.reply_type) == \
                ("report", 3, 3, None, P.MsgType.ACK)
        else:
            assert r.device_decision != 3 and r.reference_decision == ref[i]
    # never a yes/no for a non-finite input, from anyone
    assert not any(r.reply_type == P.MsgType.DECISION or r.dnn_decision is not None
                   for r in recs if not np.isfinite(r.features).all())


@pytest.mark.qemu
def test_simulate_without_reports_sends_nothing_for_invalid(digits, tmp_path):
    need_qemu_arm()
    X, bad = spoil(load_data("digits").X[:40], 10, seed=4)
    res = simulate(digits.path, machine="mps2-an386", X=X, log_path=str(tmp_path / "log.sqlite"), report=False)
    assert np.all(res.run.final[bad] == 3) and np.all(res.run.status[bad] == -1)
    assert res.summary["log_records"] == res.summary["log_deferrals"] == res.summary["deferred"]


@pytest.mark.qemu
def test_predict_qemu_engine_gives_invalid(digits, mixed, tmp_path):
    need_qemu_arm()
    X, bad = mixed
    pred = predict(digits, Dataset("mixed", X, None, digits.feature_names), engine="qemu", machine="mps2-an386")
    ref = predict(digits, Dataset("mixed", X, None, digits.feature_names))
    assert np.array_equal(pred.bound, ref.bound) and np.array_equal(pred.invalid, bad)
    assert np.array_equal(pred.final, ref.final) and np.array_equal(pred.source_dnn, ref.source_dnn)
