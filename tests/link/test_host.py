"""Host service and decision log: pure frame handling, then real TCP links to a Python and a C device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _proto_c  # noqa: E402
from _fake_device import FakeDevice  # noqa: E402
from host_fixtures import make_host_artifact  # noqa: E402

from bnnembed.link import protocol as P  # noqa: E402
from bnnembed.cli import main  # noqa: E402
from bnnembed.learn.data import load_data  # noqa: E402
from bnnembed.model.decision_id import decision_id  # noqa: E402
from bnnembed.link.decision_log import DecisionLog  # noqa: E402
from bnnembed.link.host import HostCore  # noqa: E402
from bnnembed.link.endpoints import TcpListen  # noqa: E402
from bnnembed.link.service import start_host  # noqa: E402
from bnnembed.model.intmodel import Decision  # noqa: E402


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    return make_host_artifact(tmp_path_factory.mktemp("art") / "digits")


@pytest.fixture(scope="module")
def rows(art):
    ds = load_data("digits")
    X = ds.X[:200]
    return X, art.decide(X), art.load_dnn().says_yes(X).astype(int)


@pytest.fixture
def core(art, tmp_path):
    log = DecisionLog(str(tmp_path / "log.sqlite"))
    yield HostCore(art, log)
    log.close()


def _defer(core, session, seq, x, tag=None):
    return P.Defer(session, seq, core.tag if tag is None else tag, np.asarray(x, np.float32))


def _only_reply(core, wire: bytes):
    out = P.FrameReader().feed(core.feed(wire))
    assert len(out) <= 1
    return out[0][1] if out else None


def test_defer_answered_by_dnn_and_logged_once(core, rows, art):
    X, _, dnn = rows
    req = P.encode_payload(_defer(core, 7, 1, X[3]))
    reply = _only_reply(core, P.frame(req))
    assert isinstance(reply, P.DecisionReply)
    assert (reply.session, reply.seq, reply.req_crc, reply.decision) == (7, 1, P.payload_crc(req), dnn[3])
    (rec,) = core.log.records()
    assert rec.kind == "defer" and rec.dnn_decision == dnn[3] and rec.retries == 0
    assert np.array_equal(rec.features, X[3])
    assert rec.decision_id == decision_id(art.model_hash, art.encode(X[3:4])[0])
    assert rec.reference_decision == art.decide(X[3:4])[0]


def test_retry_is_answered_from_the_log(core, rows):
    X, _, dnn = rows
    wire = P.encode_frame(_defer(core, 7, 1, X[5]))
    first = _only_reply(core, wire)
    second = _only_reply(core, wire)
    assert first == second
    (rec,) = core.log.records()
    assert rec.retries == 1 and core.counts["retries_answered_from_log"] == 1 and core.counts["new_defers"] == 1


def test_same_seq_other_content_is_not_a_duplicate(core, rows):
    """A rebooted device reusing (session, seq) with another input never gets the old reply."""
    X, _, dnn = rows
    i, j = int(np.argmax(dnn == 1)), int(np.argmax(dnn == 0))
    a = _only_reply(core, P.encode_frame(_defer(core, 1, 1, X[i])))
    b = _only_reply(core, P.encode_frame(_defer(core, 1, 1, X[j])))
    assert (a.decision, b.decision) == (1, 0) and a.req_crc != b.req_crc
    assert len(core.log.records()) == 2


def test_model_mismatch_and_wrong_feature_count_are_refused(core, rows):
    X, _, _ = rows
    r1 = _only_reply(core, P.encode_frame(_defer(core, 1, 1, X[0], tag=core.tag ^ 1)))
    r2 = _only_reply(core, P.encode_frame(_defer(core, 1, 2, X[0][:10])))
    assert isinstance(r1, P.Nack) and r1.reason == P.NackReason.MODEL_MISMATCH
    assert isinstance(r2, P.Nack) and r2.reason == P.NackReason.FEATURE_COUNT
    assert [r.reply_type for r in core.log.records()] == [P.MsgType.NACK] * 2


def test_report_is_logged_with_dnn_and_reference(core, rows):
    X, ref, dnn = rows
    i = int(np.argmax(ref != Decision.UNKNOWN))
    reply = _only_reply(core, P.encode_frame(P.Report(3, 1, core.tag, int(ref[i]), X[i])))
    assert isinstance(reply, P.Ack)
    (rec,) = core.log.records()
    assert (rec.kind, rec.device_decision, rec.reference_decision, rec.dnn_decision) == ("report", ref[i], ref[i], dnn[i])


def test_corrupted_frames_are_dropped_and_counted(core, art, rows, tmp_path):
    """Through the core's own entry point (HostCore.feed, what every connection calls): the very
    frames that get a reply and a log record each when intact get neither when corrupted, and
    every corrupted frame is counted under the reason it failed."""
    X, _, dnn = rows
    frames = [P.encode_frame(_defer(core, 9, k + 1, X[k % 50])) for k in range(200)]
    # control: the same frames, intact, on a second core: one DECISION each, one record each
    with DecisionLog(str(tmp_path / "control.sqlite")) as log:
        control = HostCore(art, log)
        for k, wire in enumerate(frames):
            reply = _only_reply(control, wire)
            assert isinstance(reply, P.DecisionReply) and (reply.seq, reply.decision) == (k + 1, dnn[k % 50])
        assert len(control.log.records()) == 200
        st = control.stats()
        assert st["frames_ok"] == 200 and st["frames_dropped"] == 0 and st["new_defers"] == 200

    rng = np.random.default_rng(0)
    # 1. one bit flipped in the payload, re-framed: well-formed COBS of the right length whose
    #    CRC-32 no longer matches (CRC-32 detects every single-bit error): exactly one "crc" drop
    for k, wire in enumerate(frames[:100]):
        payload = bytearray(P.cobs_decode(wire[1:-1]))
        i = int(rng.integers(0, len(payload)))
        payload[i] ^= 1 << int(rng.integers(8))
        assert core.feed(P.frame(bytes(payload))) == b"", k
    st = core.stats()
    assert st["dropped"] == {**{r: 0 for r in P.DROP_REASONS}, "crc": 100}
    assert st["frames_dropped"] == 100 and st["frames_ok"] == 0
    # 2. one bit flipped on the wire (a COBS code byte, a data byte; a flip that makes 0x00
    #    splits the frame): at least one drop per frame, whatever the reason, each one counted
    for k, wire in enumerate(frames[100:]):
        wire = bytearray(wire)
        i = int(rng.integers(1, len(wire) - 1))
        wire[i] ^= 1 << int(rng.integers(8))
        before = core.stats()["frames_dropped"]
        assert core.feed(bytes(wire)) == b"", k
        assert core.stats()["frames_dropped"] > before, k
    st = core.stats()
    assert st["frames_ok"] == 0 and st["frames_dropped"] == sum(st["dropped"].values()) >= 200
    assert st["dropped"]["cobs"] > 0 or st["dropped"]["short"] > 0  # wire flips break more than the CRC
    # nothing reached the DNN or the log, and no reply went out
    assert core.log.records() == [] and st.get("requests", 0) == 0 and st.get("replies", 0) == 0
    # the stream is not poisoned: an intact frame right after the garbage is answered and logged
    reply = _only_reply(core, frames[0])
    assert isinstance(reply, P.DecisionReply) and reply.decision == dnn[0]
    assert len(core.log.records()) == 1


def _run_device(dev_defer, dev_report, X, ref):
    final, source = [], []
    for x, b in zip(X, ref):
        if b == Decision.UNKNOWN:
            status, d = dev_defer(x)
            final.append(d if status == "ok" else None)
            source.append("dnn" if status == "ok" else "none")
        else:
            assert dev_report(x, int(b)) == "ok"
            final.append(int(b))
            source.append("bnn")
    return final, source


def _check_log(log_path, X, ref, dnn, n_sessions=1):
    with DecisionLog(log_path, readonly=True) as log:
        recs = log.records()
    unknown = ref == Decision.UNKNOWN
    assert len(recs) == len(X) * n_sessions  # every row exactly once (per session)
    defers = [r for r in recs if r.kind == "defer"]
    assert len(defers) == int(unknown.sum()) * n_sessions
    assert all(r.reply_value == r.dnn_decision for r in defers)
    assert len({(r.session, r.seq) for r in recs}) == len(recs)
    return recs


def test_python_device_over_tcp(art, rows, tmp_path):
    X, ref, dnn = rows
    log_path = str(tmp_path / "log.sqlite")
    service, thread = start_host(art, TcpListen("127.0.0.1", 0), log_path=log_path)
    try:
        dev = FakeDevice(service.endpoint.port, session=11, model_tag=P.model_tag(art.model_hash))
        t0 = time.perf_counter()
        final, source = _run_device(dev.defer, dev.report, X, ref)
        elapsed = time.perf_counter() - t0
        dev.close()
    finally:
        service.stop.set()
        thread.join(5)
        service.core.log.close()
    unknown = ref == Decision.UNKNOWN
    assert all(s != "none" for s in source)
    assert np.array_equal(np.array(final)[unknown], dnn[unknown])
    assert np.array_equal(np.array(final)[~unknown], ref[~unknown])
    _check_log(log_path, X, ref, dnn)
    assert dev.stats["retries"] == 0
    print(f"python device: {len(X)} requests in {elapsed:.3f}s ({len(X) / elapsed:.0f}/s)")


@pytest.mark.parametrize("uint8", [False, True], ids=["float", "uint8"])
def test_c_link_over_tcp(art, rows, tmp_path, uint8):
    """The device code of firmware/bnn_protocol.c, built for the host, against the host service;
    the digits pixels sent as floats and, through bnn_link_defer_u8()/report_u8(), as bytes."""
    X, ref, dnn = rows
    c = _proto_c.CProto(_proto_c.build(str(tmp_path)))
    log_path = str(tmp_path / "log.sqlite")
    service, thread = start_host(art, TcpListen("127.0.0.1", 0), log_path=log_path)
    try:
        c.connect(service.endpoint.port)
        c.link_setup(0xC0FFEE, P.model_tag(art.model_hash), timeout_ms=500, attempts=5)

        def defer(x):
            st, d = c.defer_u8(x) if uint8 else c.defer(x)
            return ("ok" if st == 0 else f"status{st}"), d

        def report(x, b):
            return "ok" if (c.report_u8(x, b) if uint8 else c.report(x, b)) == 0 else "failed"

        final, source = _run_device(defer, report, X, ref)
        # a model the host does not serve: refused at once, no retries
        c.link_setup(0xC0FFEF, P.model_tag(art.model_hash) ^ 1, timeout_ms=500, attempts=5)
        assert c.defer(X[0])[0] == 2
        stats = c.link_stats()
        c.close()
    finally:
        service.stop.set()
        thread.join(5)
        service.core.log.close()
    unknown = ref == Decision.UNKNOWN
    assert np.array_equal(np.array(final)[unknown], dnn[unknown])
    assert stats["retries"] == 0 and stats["refused"] == 1
    with DecisionLog(log_path, readonly=True) as log:
        recs = [r for r in log.records() if r.session == 0xC0FFEE]
        assert len(recs) == len(X) and sum(r.kind == "defer" for r in recs) == int(unknown.sum())
        assert all(np.array_equal(np.asarray(r.features, np.float32), X[i].astype(np.float32))
                   for i, r in enumerate(recs))


def test_cli_host_and_log(art, rows, tmp_path, capsys):
    X, ref, dnn = rows
    log_path = str(tmp_path / "cli.sqlite")
    proc = subprocess.Popen([sys.executable, "-m", "bnnembed", "host", art.path, "--tcp", "127.0.0.1:0",
                             "--log", log_path, "--max-seconds", "60"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        port = int(line.split("tcp-listen ")[1].split(",")[0].rsplit(":", 1)[1])
        dev = FakeDevice(port, session=5, model_tag=P.model_tag(art.model_hash))
        _run_device(dev.defer, dev.report, X[:40], ref[:40])
        dev.close()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["frames_ok"] == 40 and stats["frames_dropped"] == 0
    assert main(["log", art.path, "--log", log_path, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["summary"]["records"] == 40
    assert shown["summary"]["deferrals"] == int((ref[:40] == Decision.UNKNOWN).sum())
    assert main(["log", art.path, "--log", log_path]) == 0
    text = capsys.readouterr().out
    assert "decision:" in text and " ack " in text and "summary: records=40" in text
    assert main(["log", art.path, "--log", log_path, "--limit", "3"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1 + 3 + 1


def test_log_without_log_file_is_a_clear_error(art, tmp_path, capsys):
    assert main(["log", art.path, "--log", str(tmp_path / "none.sqlite")]) == 2
    assert "no decision log yet" in capsys.readouterr().err
