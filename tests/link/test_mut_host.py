"""HostCore request handling, pinned down for mutation testing: every reply byte, log column and
counter, computed by hand (struct, zlib, hashlib) for a stub artifact whose answers are known.

The stub keeps these tests fast (no training) and makes every expected value independent of the
code under test: the DNN says yes iff feature 0 > 0, the encoding is ``x >= 0.5`` per feature, the
reference decision is YES/NO/UNKNOWN by the number of set bits.
"""

from __future__ import annotations

import hashlib
import struct
import time
import zlib

import numpy as np
import pytest

from bnnembed.link import protocol as P
from bnnembed.link.decision_log import DecisionLog
from bnnembed.link.host import HostCore

MODEL_HASH = "89abcdef" + "0123456789abcdef" * 3 + "01234567"
TAG = 0x89ABCDEF
N = 3


class StubEncoder:
    n_features = N


class StubDNN:
    def __init__(self, fail_on=None):
        self.calls = 0
        self.fail_on = fail_on

    def says_yes(self, X):
        self.calls += 1
        X = np.asarray(X)
        assert X.shape == (1, N) and X.dtype == np.float32
        if self.fail_on is not None and X[0, 0] == self.fail_on:
            raise RuntimeError("DNN failed")
        return X[:, 0] > 0


class StubArtifact:
    model_hash = MODEL_HASH
    encoder = StubEncoder()

    def __init__(self, dnn=None):
        self._dnn = dnn or StubDNN()

    def load_dnn(self):
        return self._dnn

    def encode(self, X):
        return (np.asarray(X) >= 0.5).astype(np.uint8)

    def decide(self, X):
        s = self.encode(X).sum(1)
        return np.where(s == N, 1, np.where(s == 0, 0, 2)).astype(np.int8)  # YES, NO, UNKNOWN


def _crc(b: bytes) -> int:
    return zlib.crc32(b) & 0xFFFFFFFF


def _signed(b: bytes) -> bytes:
    return b + struct.pack("<I", _crc(b))


def defer_payload(session, seq, x, tag=TAG) -> bytes:
    x = np.asarray(x, "<f4")
    return _signed(struct.pack("<BBIIIH", 1, 0x01, session, seq, tag, x.size) + x.tobytes())


def report_payload(session, seq, decision, x, tag=TAG) -> bytes:
    x = np.asarray(x, "<f4")
    return _signed(struct.pack("<BBIIIBH", 1, 0x02, session, seq, tag, decision, x.size) + x.tobytes())


def decision_reply(session, seq, req, value) -> bytes:
    return _signed(struct.pack("<BBIIIB", 1, 0x81, session, seq, _crc(req[:-4]), value))


def ack_reply(session, seq, req) -> bytes:
    return _signed(struct.pack("<BBIII", 1, 0x82, session, seq, _crc(req[:-4])))


def nack_reply(session, seq, req, reason) -> bytes:
    return _signed(struct.pack("<BBIIIB", 1, 0x83, session, seq, _crc(req[:-4]), reason))


def did_by_hand(bits) -> str:
    word = sum(int(b) << i for i, b in enumerate(bits))
    return hashlib.sha256(MODEL_HASH.encode("ascii") + struct.pack("<I", word)).hexdigest()[:16]


@pytest.fixture
def log(tmp_path):
    with DecisionLog(str(tmp_path / "log.sqlite")) as lg:
        yield lg


@pytest.fixture
def dnn():
    return StubDNN(fail_on=-7.0)


@pytest.fixture
def core(log, dnn):
    return HostCore(StubArtifact(), log, dnn=dnn)


def _handle(core, payload):
    return core.handle(payload, P.decode_payload(payload))


def test_core_reads_tag_and_feature_count_from_the_artifact(log):
    dnn = StubDNN()
    core = HostCore(StubArtifact(dnn), log)  # no DNN given: the artifact's own
    assert core.dnn is dnn and core.tag == TAG and core.n_features == N
    assert core.counts == {} and core.dnn_seconds == 0.0
    other = StubDNN()
    assert HostCore(StubArtifact(dnn), log, dnn=other).dnn is other


@pytest.mark.parametrize("x,answer", [([0.25, 0.75, 1.0], 1), ([-0.5, 0.75, 1.0], 0), ([0.0, 0.0, 0.0], 0)])
def test_defer_reply_bytes_and_log_record(core, dnn, x, answer):
    req = defer_payload(0xDEADBEEF, 0xFFFFFFFE, x)
    t0 = time.time()
    reply = _handle(core, req)
    t1 = time.time()
    assert reply == decision_reply(0xDEADBEEF, 0xFFFFFFFE, req, answer)
    assert dnn.calls == 1 and core.dnn_seconds > 0
    (rec,) = core.log.records()
    bits = [int(v >= 0.5) for v in x]
    ref = 1 if sum(bits) == N else 0 if sum(bits) == 0 else 2
    assert (rec.session, rec.seq, rec.kind) == (0xDEADBEEF, 0xFFFFFFFE, "defer")
    assert rec.request_sha == hashlib.sha256(req).hexdigest()
    assert rec.request_crc == _crc(req[:-4]) and rec.model_hash == MODEL_HASH
    assert rec.decision_id == did_by_hand(bits)
    assert rec.features.tolist() == np.float32(x).tolist()
    assert (rec.device_decision, rec.dnn_decision, rec.reference_decision) == (None, answer, ref)
    assert (rec.reply_type, rec.reply_value, rec.retries) == (0x81, answer, 0)
    assert t0 <= rec.received_at <= t1
    assert dict(core.counts) == {"requests": 1, "new_defers": 1, "replies": 1}


@pytest.mark.parametrize("device", [0, 1])
def test_report_reply_bytes_and_log_record(core, dnn, device):
    x = [0.9, 0.1, 0.6]
    req = report_payload(5, 6, device, x)
    assert _handle(core, req) == ack_reply(5, 6, req)
    (rec,) = core.log.records()
    assert (rec.kind, rec.device_decision, rec.dnn_decision, rec.reference_decision) == ("report", device, 1, 2)
    assert (rec.reply_type, rec.reply_value) == (0x82, None)
    assert rec.decision_id == did_by_hand([1, 0, 1])
    assert dnn.calls == 1
    assert dict(core.counts) == {"requests": 1, "new_reports": 1, "replies": 1}


def test_retry_is_answered_from_the_log_without_the_dnn(core, dnn):
    req = defer_payload(1, 2, [1.0, 1.0, 1.0])
    first = _handle(core, req)
    second = _handle(core, req)
    third = _handle(core, req)
    assert first == second == third == decision_reply(1, 2, req, 1)
    assert dnn.calls == 1
    (rec,) = core.log.records()
    assert rec.retries == 2
    assert dict(core.counts) == {"requests": 3, "new_defers": 1, "replies": 3, "retries_answered_from_log": 2}
    # a retried NACK and a retried ACK come back as they were
    bad = defer_payload(1, 3, [1.0, 1.0, 1.0], tag=TAG ^ 1)
    rep = report_payload(1, 4, 0, [0.0, 0.0, 0.0])
    assert _handle(core, bad) == _handle(core, bad) == nack_reply(1, 3, bad, 1)
    assert _handle(core, rep) == _handle(core, rep) == ack_reply(1, 4, rep)
    # same session and seq, other bytes: a new request, not the stored reply
    other = defer_payload(1, 2, [-1.0, 1.0, 1.0])
    assert _handle(core, other) == decision_reply(1, 2, other, 0)
    assert dnn.calls == 3 and len(core.log.records()) == 4


def test_model_mismatch_is_checked_first_and_never_runs_the_dnn(core, dnn):
    reqs = [defer_payload(1, 1, [1.0, 1.0, 1.0], tag=TAG ^ 0x80000000),
            defer_payload(1, 2, [1.0, 1.0], tag=TAG + 1),  # wrong tag and wrong count
            report_payload(1, 3, 1, [np.nan, 1.0, 1.0], tag=0)]  # wrong tag and non-finite
    for r in reqs:
        assert _handle(core, r) == nack_reply(1, r[6], r, P.NackReason.MODEL_MISMATCH)
    assert dnn.calls == 0
    recs = core.log.records()
    assert [(r.reply_type, r.reply_value, r.decision_id, r.dnn_decision, r.reference_decision) for r in recs] == \
        [(0x83, 1, None, None, None)] * 3
    assert [r.device_decision for r in recs] == [None, None, 1]
    assert core.counts["refused"] == 3 and core.counts["invalid_inputs"] == 0
    assert core.counts["new_defers"] == 2 and core.counts["new_reports"] == 1


@pytest.mark.parametrize("x", [[1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [np.nan, np.inf]])
def test_wrong_feature_count_is_refused_before_the_finite_check(core, dnn, x):
    req = defer_payload(2, 9, x)
    assert _handle(core, req) == nack_reply(2, 9, req, P.NackReason.FEATURE_COUNT)
    (rec,) = core.log.records()
    assert (rec.reply_type, rec.reply_value, rec.reference_decision) == (0x83, 2, None)
    assert dnn.calls == 0 and core.counts["refused"] == 1 and core.counts["invalid_inputs"] == 0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_defer_is_refused_and_report_acknowledged(core, dnn, bad):
    x = [1.0, bad, 0.0]
    d = defer_payload(3, 1, x)
    assert _handle(core, d) == nack_reply(3, 1, d, P.NackReason.INVALID_INPUT)
    r = report_payload(3, 2, 3, x)
    assert _handle(core, r) == ack_reply(3, 2, r)
    r2 = report_payload(3, 3, 1, x)  # a device that decided it anyway: logged as it came
    assert _handle(core, r2) == ack_reply(3, 3, r2)
    assert dnn.calls == 0
    recs = core.log.records()
    assert [(r.kind, r.device_decision, r.dnn_decision, r.reference_decision, r.decision_id, r.reply_type,
             r.reply_value) for r in recs] == [("defer", None, None, 3, None, 0x83, 4),
                                               ("report", 3, None, 3, None, 0x82, None),
                                               ("report", 1, None, 3, None, 0x82, None)]
    assert core.counts["invalid_inputs"] == 3 and core.counts["invalid_reports"] == 1
    assert core.counts["refused"] == 1 and core.counts["replies"] == 3


def test_device_invalid_report_on_a_finite_input_is_counted(core):
    r = report_payload(4, 1, 3, [1.0, 1.0, 1.0])
    assert _handle(core, r) == ack_reply(4, 1, r)
    assert core.counts["invalid_reports"] == 1 and core.counts["invalid_inputs"] == 0
    (rec,) = core.log.records()
    assert (rec.device_decision, rec.reference_decision, rec.dnn_decision) == (3, 1, 1)


def test_dnn_failure_is_a_host_error_and_the_core_keeps_serving(core, dnn):
    bad = defer_payload(6, 1, [-7.0, 1.0, 1.0])
    assert _handle(core, bad) == nack_reply(6, 1, bad, P.NackReason.HOST_ERROR)
    rep = report_payload(6, 2, 1, [-7.0, 1.0, 1.0])
    assert _handle(core, rep) == nack_reply(6, 2, rep, P.NackReason.HOST_ERROR)
    good = defer_payload(6, 3, [2.0, 1.0, 1.0])
    assert _handle(core, good) == decision_reply(6, 3, good, 1)
    recs = core.log.records()
    assert [(r.dnn_decision, r.reply_type, r.reply_value) for r in recs] == [(None, 0x83, 3), (None, 0x83, 3),
                                                                            (1, 0x81, 1)]
    assert core.counts["refused"] == 2


@pytest.mark.parametrize("msg", [P.DecisionReply(1, 1, 5, 1), P.Ack(1, 1, 5), P.Nack(1, 1, 5, 2)])
def test_replies_sent_to_the_host_are_ignored(core, dnn, msg):
    assert core.feed(P.encode_frame(msg)) == b""
    assert core.log.records() == [] and dnn.calls == 0
    assert dict(core.counts) == {"unexpected_replies": 1}
    assert core.stats()["frames_ok"] == 1


def _unframe(wire: bytes) -> list[bytes]:
    """Payloads of ``00 COBS 00`` frames, COBS decoded here by hand."""
    out = []
    for chunk in wire.split(b"\x00"):
        if not chunk:
            continue
        data, i = bytearray(), 0
        while i < len(chunk):
            code = chunk[i]
            data += chunk[i + 1 : i + code]
            i += code
            if code != 0xFF and i < len(chunk):
                data.append(0)
        out.append(bytes(data))
    return out


def test_feed_answers_every_frame_in_order_across_chunks(core):
    reqs = [defer_payload(7, k, [float(k % 2), 1.0, 1.0]) for k in range(4)]
    wire = b"".join(P.frame(r) for r in reqs)
    cut = len(wire) // 2 + 3
    out = core.feed(wire[:cut]) + core.feed(wire[cut:])
    assert _unframe(out) == [decision_reply(7, k, r, k % 2) for k, r in enumerate(reqs)]
    assert out.startswith(b"\x00") and out.endswith(b"\x00")
    assert core.stats()["frames_ok"] == 4


def test_connections_keep_their_partial_frames_and_stats_add_up(core):
    a, b = core.new_connection(), core.new_connection()
    ra = P.frame(defer_payload(8, 1, [1.0, 1.0, 1.0]))
    rb = P.frame(defer_payload(8, 2, [-1.0, 1.0, 1.0]))
    assert core.feed(ra[:9], a) == b"" and core.feed(rb[:5], b) == b""
    out_b = core.feed(rb[5:], b)
    out_a = core.feed(ra[9:], a)
    assert _unframe(out_a) == [decision_reply(8, 1, defer_payload(8, 1, [1.0, 1.0, 1.0]), 1)]
    assert _unframe(out_b) == [decision_reply(8, 2, defer_payload(8, 2, [-1.0, 1.0, 1.0]), 0)]
    # one corrupted frame on a, one short frame on the default connection
    bad = bytearray(defer_payload(8, 3, [1.0, 1.0, 1.0]))
    bad[12] ^= 4
    assert core.feed(P.frame(bytes(bad)), a) == b""
    assert core.feed(b"\x00\x02\x01\x00") == b""
    st = core.stats()
    assert st["frames_ok"] == 2 and st["frames_dropped"] == 2
    assert st["dropped"] == {**{r: 0 for r in P.DROP_REASONS}, "crc": 1, "short": 1}
    assert st["connections"] == 2 and st["requests"] == 2 and st["new_defers"] == 2
    assert st["dnn_seconds"] == round(core.dnn_seconds, 6) > 0
    core.count("custom")
    core.count("custom", 2.5)
    assert core.stats()["custom"] == 3.5


def test_counters_add_up_over_requests_and_dnn_time_is_summed(core, monkeypatch):
    import bnnembed.link.host as host_module

    ticks = iter(np.arange(100) * 0.1234567)
    monkeypatch.setattr(host_module.time, "perf_counter", lambda: float(next(ticks)))
    for k in range(2):
        req = defer_payload(9, k, [1.0, 1.0, 1.0])
        assert _handle(core, req) == decision_reply(9, k, req, 1)
    assert core.dnn_seconds == pytest.approx(2 * 0.1234567)  # one clock step per DNN call
    assert core.stats()["dnn_seconds"] == 0.246913
    for k in range(2):
        assert _handle(core, report_payload(9, 10 + k, 3, [np.nan, 1.0, 1.0])) is not None
        core.feed(P.encode_frame(P.Ack(9, k, 0)))
    assert core.counts["invalid_reports"] == 2 and core.counts["unexpected_replies"] == 2
