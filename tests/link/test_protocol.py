"""The deferral protocol: Python and C codecs against known values, each other, and fuzz."""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, HealthCheck
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _proto_c  # noqa: E402

from bnnembed.link import protocol as P  # noqa: E402

STATUS = {0: None, **{i + 1: r for i, r in enumerate(P.DROP_REASONS)}}


@pytest.fixture(scope="module")
def cproto(tmp_path_factory):
    return _proto_c.CProto(_proto_c.build(str(tmp_path_factory.mktemp("cproto"))))


# ---------------------------------------------------------------------- known values

def test_crc32_check_value_both_languages(cproto):
    assert P.crc32(b"123456789") == 0xCBF43926
    assert cproto.crc32(b"123456789") == 0xCBF43926
    assert cproto.crc32(b"") == P.crc32(b"") == 0


COBS_VECTORS = [  # from the COBS paper / Wikipedia
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255)) + b"\x01"),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255)) + b"\x01"),
]


@pytest.mark.parametrize("raw,enc", COBS_VECTORS)
def test_cobs_known_vectors(cproto, raw, enc):
    assert P.cobs_encode(raw) == enc
    assert cproto.cobs_encode(raw) == enc
    assert P.cobs_decode(enc) == raw
    assert cproto.cobs_decode(enc) == (0, raw)


def test_payload_layout_is_documented():
    x = np.array([1.0, -2.5], np.float32)
    p = P.encode_payload(P.Defer(session=7, seq=9, model_tag=0xA1B2C3D4, features=x))
    assert p[:10] == bytes([3, 1]) + struct.pack("<II", 7, 9)
    assert p[10:17] == struct.pack("<IHB", 0xA1B2C3D4, 2, 4)  # -2.5 is not whole: float32
    assert p[17:25] == x.astype("<f4").tobytes()
    assert p[25:] == struct.pack("<I", P.crc32(p[:25]))
    pixels = P.encode_payload(P.Defer(session=7, seq=9, model_tag=0xA1B2C3D4, features=[0.0, 255.0]))
    assert pixels[10:19] == struct.pack("<IHB", 0xA1B2C3D4, 2, 1) + bytes([0, 255])
    # a uint8 sender's image (>= 256 pixels) as zero runs: 60 zero units, 2 others, the last 2 pixels
    image = np.zeros(250, np.float32)
    image[240:245] = [1, 2, 3, 0, 5]
    image = np.r_[image, np.zeros(6), [7.0, 0.0]]
    runs = P.encode_payload(P.Defer(7, 9, 0xA1B2C3D4, image, runs=True))
    assert runs[10:17] == struct.pack("<IHB", 0xA1B2C3D4, 258, 0x81)
    assert runs[17:-4] == bytes([240, 8, 1, 2, 3, 0, 5, 0, 0, 0]) + bytes([8, 0]) + bytes([0, 2, 7, 0])
    assert P.model_tag("a1b2c3d4e5f60718") == 0xA1B2C3D4


# ---------------------------------------------------------------- Python == C, both ways

@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700))
def test_cobs_python_equals_c(data):
    c = _CACHE["c"]
    enc = P.cobs_encode(data)
    assert 0 not in enc
    assert c.cobs_encode(data) == enc
    assert P.cobs_decode(enc) == data
    assert c.cobs_decode(enc) == (0, data)


def _c_cobs(c, data: bytes, cap: int) -> bytes:
    import ctypes

    out = (ctypes.c_uint8 * max(cap, 1))()
    n = c.lib.bnn_cobs_encode(c._buf(data), len(data), out, cap)
    return bytes(out[:n])


def _runs():
    """Inputs around every block boundary: nonzero runs of 250..260 and 505..512 bytes, zeros at
    each alignment of a 4-byte word, all-zero and all-nonzero words."""
    yield b""
    for n in (1, 3, 4, 5, 7, 8, 250, 251, 252, 253, 254, 255, 256, 257, 260, 505, 507, 508, 509, 512):
        yield bytes([0x5A]) * n
        for k in (0, 1, 2, 3, n // 2, n - 1):
            if 0 <= k < n:
                b = bytearray([0xA5]) * n
                b[k] = 0
                yield bytes(b)
    yield bytes(600)
    yield bytes(range(256)) * 3


def test_cobs_fast_and_bounded_paths_equal_python(cproto):
    """The word-at-a-time encoder (buffer of worst-case size) and the byte-checked one (smaller
    buffer) give Python's bytes at every block boundary and zero alignment."""
    for data in _runs():
        enc = P.cobs_encode(data)
        worst = len(data) + len(data) // 254 + 1
        assert _c_cobs(cproto, data, worst) == enc, len(data)
        assert _c_cobs(cproto, data, len(enc)) == enc, len(data)  # exact fit: the checked path
        if len(enc) > 1:
            assert _c_cobs(cproto, data, len(enc) - 1) == b""  # one byte short: refused


_CACHE: dict = {}


@pytest.fixture(autouse=True, scope="module")
def _share_c(cproto):
    _CACHE["c"] = cproto
    yield
    _CACHE.clear()


floats = st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=80)
u32 = st.integers(0, 2**32 - 1)


@settings(max_examples=300, deadline=None)
@given(u32, u32, u32, st.integers(0, 1), floats, st.booleans())
def test_requests_python_equals_c(session, seq, tag, decision, xs, report):
    c = _CACHE["c"]
    x = np.array(xs, np.float32)
    if report:
        msg = P.Report(session, seq, tag, decision, x)
        cbytes = c.build_request(P.MsgType.REPORT, session, seq, tag, decision, x)
    else:
        msg = P.Defer(session, seq, tag, x)
        cbytes = c.build_request(P.MsgType.DEFER, session, seq, tag, 0, x)
    pbytes = P.encode_payload(msg)
    assert cbytes == pbytes
    back = P.decode_payload(cbytes)
    assert back == msg and np.array_equal(back.features, x)
    status, f = c.parse(pbytes)
    assert status == 0 and f[:6] == [int(msg.TYPE), session, seq, tag, decision if report else 0, x.size]


# features of every width: bytes, int16 values, and anything a float32 holds (zeros included,
# -0.0 among them), in runs long enough to make 254-byte COBS blocks
feature_rows = st.one_of(
    st.lists(st.integers(0, 255), min_size=1, max_size=700),
    st.lists(st.integers(-32767, 32767), min_size=1, max_size=300),
    st.lists(st.one_of(st.just(0.0), st.integers(1, 255), st.floats(width=32)), min_size=1, max_size=300),
    st.lists(st.sampled_from([0, 0, 0, 1, 255]), min_size=250, max_size=600),
)


@settings(max_examples=300, deadline=None)
@given(u32, u32, u32, st.integers(0, 1), feature_rows, st.booleans())
def test_request_frame_is_the_cobs_of_the_payload_in_one_pass(session, seq, tag, decision, xs, report):
    """bnn_proto_build_request_frame() (the link's one-pass CRC + COBS) puts on the wire exactly
    0x00, COBS(bnn_proto_build_request()), 0x00, and reports the payload's CRC field."""
    c = _CACHE["c"]
    x = np.array(xs, np.float32)
    mtype = P.MsgType.REPORT if report else P.MsgType.DEFER
    payload = c.build_request(mtype, session, seq, tag, decision if report else 0, x)
    wire, crc = c.build_request_frame(mtype, session, seq, tag, decision if report else 0, x)
    assert payload and wire == P.frame(payload)
    assert crc == P.payload_crc(payload)
    worst = 10 + 8 + 4 * x.size + 4
    frame_size = worst + worst // 254 + 1 + 2  # BNN_PROTO_FRAME_SIZE(n)
    assert c.build_request_frame(mtype, session, seq, tag, 0, x, cap=frame_size - 1)[0] == b""


# bytes as images have them: runs of zeros, runs without a zero (past a 254-byte COBS block),
# anything mixed; any length, so every head, word and tail case of the word loop comes up
byte_rows = st.one_of(
    st.lists(st.integers(0, 255), min_size=1, max_size=800),
    st.lists(st.sampled_from([0, 0, 0, 0, 7, 255]), min_size=1, max_size=800),
    st.lists(st.integers(1, 255), min_size=240, max_size=800),
    st.lists(st.sampled_from([0, 1]), min_size=1, max_size=40),
)


@settings(max_examples=400, deadline=None)
@given(u32, u32, u32, st.integers(0, 1), byte_rows, st.booleans(), st.integers(0, 3))
def test_uint8_frame_is_the_float_frame_of_the_same_values(session, seq, tag, decision, xs, report, offset):
    """bnn_proto_build_request_frame_u8() (word-wise CRC and COBS) puts on the wire exactly the
    frame the Python codec makes of a uint8 sender's row, and reports the same CRC, at every
    alignment of the input: below 256 features the float builder's frame of the floats 0.0..255.0
    of the same bytes, from 256 on the zero runs, which both parsers read back as those values."""
    c = _CACHE["c"]
    x = np.array(xs, np.uint8)
    mtype = P.MsgType.REPORT if report else P.MsgType.DEFER
    d = decision if report else 0
    wire, crc = c.build_request_frame_u8(mtype, session, seq, tag, d, x, offset=offset)
    msg = (P.Report(session, seq, tag, d, x, runs=True) if report else P.Defer(session, seq, tag, x, runs=True))
    assert wire and wire == P.encode_frame(msg)
    if x.size < P.RUNS_MIN_FEATURES:
        assert wire == c.build_request_frame(mtype, session, seq, tag, d, x.astype(np.float32))[0]
    payload = P.cobs_decode(wire.strip(b"\x00"))
    assert wire == P.frame(payload) and crc == P.payload_crc(payload)
    back = P.decode_payload(payload)
    assert np.array_equal(back.features, x.astype(np.float32)) and back.runs == (x.size >= P.RUNS_MIN_FEATURES)
    status, features = c.parse_features(payload, x.size)
    assert status == 0 and np.array_equal(features, x.astype(np.float32))
    need = 10 + 8 + x.size + (2 * (x.size // 252) + 4 if x.size >= P.RUNS_MIN_FEATURES else 0) + 4
    frame_size = need + need // 254 + 1 + 2  # BNN_PROTO_FRAME_SIZE_U8(n)
    assert c.build_request_frame_u8(mtype, session, seq, tag, d, x, cap=frame_size - 1)[0] == b""
    assert c.build_request_frame_u8(mtype, session, seq, tag, d, x, cap=frame_size)[0] == wire


def test_uint8_frame_crc_word_at_every_block_position():
    """Rows without a zero put the CRC's word at every position of a 254-byte COBS block, so the
    CRC goes out as one word where its block has room and byte by byte where the block fills
    within it: both give the Python codec's frame (plain uint8, then zero runs from 256 on)."""
    c = _CACHE["c"]
    for n in range(200, 520):
        x = np.full(n, 7, np.uint8)
        for tag in (0x01020304, 0x00000100):  # no zero in the header's tag, then two
            wire, crc = c.build_request_frame_u8(P.MsgType.DEFER, 0x11223344, 0x55667788, tag, 0, x)
            payload = P.encode_payload(P.Defer(0x11223344, 0x55667788, tag, x.astype(np.float32), runs=True))
            assert wire == P.frame(payload) and crc == P.payload_crc(payload), n


def test_uint8_frame_word_that_fills_a_block():
    """The longest plain rows (240..255 bytes without a zero) at every offset past a word boundary:
    the features' block (it starts after the count's zero high byte) fills inside a whole word
    only when the row's first bytes went one at a time, and that word must go byte by byte."""
    c = _CACHE["c"]
    for n in range(240, P.RUNS_MIN_FEATURES):
        x = np.full(n, 7, np.uint8)
        for offset in range(4):
            for report in (False, True):
                mtype = P.MsgType.REPORT if report else P.MsgType.DEFER
                msg = (P.Report(0x11223344, 0x55667788, 0x01020304, 1, x, runs=True) if report
                       else P.Defer(0x11223344, 0x55667788, 0x01020304, x, runs=True))
                wire, _ = c.build_request_frame_u8(mtype, 0x11223344, 0x55667788, 0x01020304, int(report), x,
                                                   offset=offset)
                assert wire == P.encode_frame(msg), (n, offset, report)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=64, max_size=1000), st.integers(0, 3))
def test_uint8_runs_at_their_limits(units, offset):
    """Zero runs of every length around the 63-unit field limit and 254-byte COBS blocks: rows
    made of units (0: four zeros; 1..5: words with a zero or none), 256 to 4,000 features."""
    c = _CACHE["c"]
    shapes = {0: [0, 0, 0, 0], 1: [9, 0, 0, 0], 2: [0, 0, 0, 9], 3: [1, 2, 3, 4], 4: [0, 5, 0, 5], 5: [255] * 4}
    x = np.array([v for u in units for v in shapes[u]], np.uint8)[: max(256, len(units) * 4 - offset)]
    wire, crc = c.build_request_frame_u8(P.MsgType.DEFER, 1, 2, 3, 0, x, offset=offset)
    payload = P.encode_payload(P.Defer(1, 2, 3, x.astype(np.float32), runs=True))
    assert wire == P.frame(payload) and crc == P.payload_crc(payload)
    assert np.array_equal(P.decode_payload(payload).features, x.astype(np.float32))


def test_uint8_frames_fit_the_links_transmit_buffer():
    """A link's buffer is BNN_PROTO_FRAME_SIZE(n) (bnn_app.h): the uint8 frame's bound never exceeds
    it, so bnn_link_defer_u8() never refuses a row bnn_link_defer() takes (it did for n = 1)."""
    c = _CACHE["c"]
    for n in range(1, P.MAX_FEATURES + 1):
        tx, u8 = c.frame_sizes(n)
        assert u8 <= tx, n
    for n in (1, 2, 3, 255, 256, 4096):  # and the frame is built in exactly that bound
        x = np.full(n, 9, np.uint8)
        assert c.build_request_frame_u8(P.MsgType.DEFER, 1, 2, 3, 0, x, cap=c.frame_sizes(n)[1])[0]


@pytest.mark.parametrize("body,reason", [
    (bytes([0, 0]), "value"),  # an empty segment says nothing
    (bytes([252, 0]), "length"),  # 252 zeros, then the runs end before 256 features
    (bytes([252, 0, 0, 5, 1, 2, 3, 4, 5]), "length"),  # 257 features for 256
    (bytes([252, 0, 0, 4, 1, 2, 3, 4, 9]), "length"),  # a byte after the runs
    (bytes([252, 0, 0, 4, 1, 2]), "length"),  # a segment cut short
])
def test_malformed_runs_are_dropped_by_both_parsers(body, reason):
    c = _CACHE["c"]
    data = struct.pack("<BBII", 3, 1, 1, 2) + struct.pack("<IHB", 3, 256, 0x81) + body
    payload = data + struct.pack("<I", P.crc32(data))
    with pytest.raises(P.FrameError) as exc:
        P.decode_payload(payload)
    assert exc.value.reason == reason
    assert STATUS[c.parse(payload)[0]] == reason
    old = bytes([2]) + payload[1:-4]  # version 2 has no zero runs: 0x81 is not a width there
    old += struct.pack("<I", P.crc32(old))
    assert STATUS[c.parse(old)[0]] == "value"
    with pytest.raises(P.FrameError, match="feature width 129"):
        P.decode_payload(old)


def test_bitwise_crc_build_makes_the_same_frames(tmp_path):
    """-DBNN_CRC32_BITWISE (no 1 KiB table) gives the same CRC and the same frames, uint8 word path
    included, at every alignment."""
    c = _proto_c.CProto(_proto_c.build(str(tmp_path), extra_flags=("-DBNN_CRC32_BITWISE",), name="libbitwise.so"))
    rng = np.random.default_rng(5)
    assert c.crc32(b"123456789") == 0xCBF43926
    for n in (1, 3, 4, 5, 64, 255, 300, 784):
        x = np.where(rng.random(n) < 0.5, 0, rng.integers(1, 256, n)).astype(np.uint8)
        for offset in range(4):
            wire, crc = c.build_request_frame_u8(P.MsgType.DEFER, 7, n, 0xABCDEF01, 0, x, offset=offset)
            payload = P.encode_payload(P.Defer(7, n, 0xABCDEF01, x.astype(np.float32), runs=True))
            assert wire == P.frame(payload) and crc == P.payload_crc(payload)
            if n < P.RUNS_MIN_FEATURES:
                assert wire == c.build_request_frame(P.MsgType.DEFER, 7, n, 0xABCDEF01, 0, x.astype(np.float32))[0]


@settings(max_examples=200, deadline=None)
@given(u32, u32, u32, st.sampled_from(list(P.MsgType)[2:]), st.integers(0, 3))
def test_replies_python_equals_c(session, seq, req_crc, mtype, value):
    c = _CACHE["c"]
    if mtype == P.MsgType.DECISION:
        value = value & 1
        msg = P.DecisionReply(session, seq, req_crc, value)
    elif mtype == P.MsgType.ACK:
        msg = P.Ack(session, seq, req_crc)
    else:
        msg = P.Nack(session, seq, req_crc, value)
    assert c.build_reply(int(mtype), session, seq, req_crc, value) == P.encode_payload(msg)
    status, f = c.parse(P.encode_payload(msg))
    assert status == 0 and f[0] == int(mtype) and f[6] == req_crc


def _mutations(rng: random.Random, payload: bytes) -> bytes:
    b = bytearray(payload)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(5)
        if op == 0 and b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            del b[rng.randrange(len(b))]
        elif op == 2:
            b.insert(rng.randrange(len(b) + 1), rng.randrange(256))
        elif op == 3:
            del b[rng.randrange(len(b) + 1):]
        else:
            b[:] = rng.randbytes(rng.randrange(40))
    if rng.random() < 0.5 and len(b) >= 4:  # recompute the CRC: reach the later checks
        b[-4:] = struct.pack("<I", P.crc32(bytes(b[:-4])))
    return bytes(b)


def _random_message(rng: random.Random):
    kind = rng.randrange(5)
    s, q, t = rng.getrandbits(32), rng.getrandbits(32), rng.getrandbits(32)
    x = np.array([rng.uniform(-1e3, 1e3) for _ in range(rng.randint(1, 20))], np.float32)
    if rng.random() < 0.25:  # a uint8 sender's image: zero runs
        x = np.array([rng.choice([0, 0, 0, rng.randint(1, 255)]) for _ in range(rng.randint(256, 300))], np.float32)
    return [P.Defer(s, q, t, x, runs=True), P.Report(s, q, t, rng.randint(0, 1), x, runs=True),
            P.DecisionReply(s, q, t, rng.randint(0, 1)), P.Ack(s, q, t), P.Nack(s, q, t, rng.randint(1, 3))][kind]


def test_malformed_payloads_same_verdict_in_python_and_c(cproto):
    """20,000 mutated payloads, with an intact payload after every fourth: Python and C drop each
    mutated one for the same reason, or both accept it; both accept every intact one, with the
    fields it was built from."""
    rng = random.Random(1234)
    accepted = intact = 0
    for k in range(20_000):
        msg = _random_message(rng)
        payload = P.encode_payload(msg)
        if k % 4 == 3:  # intact: both parsers must accept it, field by field
            intact += 1
            back = P.decode_payload(payload)
            assert back == msg and P.encode_payload(back) == payload
            status, f = cproto.parse(payload)
            assert STATUS[status] is None, (STATUS[status], payload.hex())
            assert f[:3] == [int(msg.TYPE), msg.session, msg.seq], payload.hex()
            if isinstance(msg, (P.Defer, P.Report)):
                assert f[3] == msg.model_tag and f[5] == msg.features.size
                assert f[4] == (msg.decision if isinstance(msg, P.Report) else 0)
            else:
                assert f[6] == msg.req_crc
                assert f[7 if isinstance(msg, P.Nack) else 4] == getattr(msg, "reason", getattr(msg, "decision", 0))
            continue
        payload = _mutations(rng, payload)
        try:
            P.decode_payload(payload)
            reason = None
        except P.FrameError as exc:
            reason = exc.reason
        status, _ = cproto.parse(payload)
        assert STATUS[status] == reason, payload.hex()
        accepted += reason is None
    assert accepted > 0 and intact == 5_000


# -------------------------------------------------------------------- stream reader

def test_frame_reader_resynchronises_after_garbage():
    msgs = [P.Defer(1, i, 5, np.arange(1, 4, dtype=np.float32) * i) for i in range(1, 6)]
    stream = b"\x13\x37garbage" + b"".join(P.encode_frame(m) for m in msgs[:2]) + b"\x01\x02\x03"
    stream += b"\x00\x00" + b"".join(P.encode_frame(m) for m in msgs[2:])
    reader = P.FrameReader()
    got = []
    for i in range(0, len(stream), 7):  # arbitrary chunking
        got += [m for _, m in reader.feed(stream[i : i + 7])]
    assert got == msgs
    assert reader.frames_dropped == 2  # the leading garbage and the 3-byte fragment


def test_frame_reader_drops_oversize_without_buffering_it():
    reader = P.FrameReader(max_payload=64)
    big = P.encode_frame(P.Defer(1, 1, 5, np.ones(100, np.float32)))
    small = P.encode_frame(P.Ack(1, 2, 3))
    assert [m for _, m in reader.feed(big + small)] == [P.Ack(1, 2, 3)]
    assert reader.dropped["oversize"] == 1


@settings(max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.binary(max_size=64), st.sampled_from([b"\x00"])), max_size=8), st.randoms())
def test_host_parser_fuzz(chunks, rnd):
    """Random byte streams mixed with valid frames: never a crash, every valid frame comes out
    (in stream order, byte for byte) and nothing else does."""
    valid = [_random_message(rnd) for _ in range(rnd.randint(0, 3))]
    pieces = [("junk", c) for c in chunks] + [("frame", P.encode_frame(m)) for m in valid]
    rnd.shuffle(pieces)
    stream = b"\x00".join(p for _, p in pieces)
    sent = [P.decode_payload(P.cobs_decode(p.strip(b"\x00"))) for kind, p in pieces if kind == "frame"]
    sent_payloads = [P.encode_payload(m) for m in sent]
    reader = P.FrameReader()
    out = reader.feed(stream + b"\x00")
    # a random chunk is a valid frame only with a matching CRC-32 (odds 2^-32), so any extra frame fails
    assert [payload for payload, _ in out] == sent_payloads
    for (payload, msg), m in zip(out, sent):
        assert msg == m and P.encode_payload(msg) == payload
    assert reader.frames_ok == len(valid)


def test_host_parser_fuzz_mutated_frames():
    """50,000 frames, 80% mutated on the wire, streamed back to back: every intact frame between
    them is accepted, no mutated frame is misread as another message, every drop is counted."""
    rng = random.Random(99)
    reader = P.FrameReader()
    sent = accepted = intact = intact_accepted = 0
    for _ in range(50_000):
        msg = _random_message(rng)
        payload = P.encode_payload(msg)
        wire = bytearray(P.frame(payload))
        mutated = rng.random() < 0.8
        if mutated:
            for _ in range(rng.randint(1, 3)):
                i = rng.randrange(len(wire))
                op = rng.randrange(3)
                if op == 0:
                    wire[i] ^= 1 << rng.randrange(8)
                elif op == 1:
                    del wire[i]
                else:
                    wire.insert(i, rng.randrange(256))
        sent += 1
        intact += not mutated
        got = reader.feed(bytes(wire) + b"\x00")
        for p, m in got:
            accepted += 1
            assert P.encode_payload(m) == p
            assert p == payload, "a corrupted frame was accepted as a different message"
        if not mutated:
            # the frame's own leading delimiter ends whatever the garbage before it left behind
            assert len(got) == 1, "an intact frame after a mutated one was lost"
            intact_accepted += 1
    assert intact_accepted == intact > 9_000
    assert accepted + reader.frames_dropped >= sent * 0.9
    assert reader.frames_dropped > 30_000
    assert reader.frames_ok == accepted


# -------------------------------------------------------------- C sanitizer fuzz

def test_c_parser_fuzz_under_asan_ubsan(tmp_path):
    exe = _proto_c.build(str(tmp_path), sanitize=True, shared=False, main="proto_fuzz.c", name="proto_fuzz")
    iterations = 300_000
    r = subprocess.run([exe, "5", str(iterations)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "BNN-FUZZ-OK" in r.stdout and "misread=0" in r.stdout
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr
