"""Wraparound of the device link's 32-bit counters: the request number and the millisecond clock.

The device end of the link (firmware/bnn_protocol.c, ``bnn_link_*``) numbers its requests with a
u32 ``seq`` and times each attempt with ``bnn_io_millis()``, a u32 millisecond clock that wraps
every 49.7 days. Both must keep working across 0xFFFFFFFF -> 0: a reply is matched by equality
of (session, seq, req_crc), and a wait by the unsigned difference ``millis() - start``.

tests/c/link_wrap.c builds the link with the host gcc on a virtual clock the test sets near
0xFFFFFFFF, and hands every frame the device sends to Python, which answers with the real host
core (bnnembed.link.host.HostCore, so the Python side's log and replies see the wrapped seq too) or
with a scripted responder (late, stale or no replies). Every wait costs exactly the virtual
time the link asks for, so a timeout that fires early, late, or never is seen to the millisecond.
"""

from __future__ import annotations

import ctypes
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _proto_c  # noqa: E402
from host_fixtures import make_host_artifact  # noqa: E402

from bnnembed.link import protocol as P  # noqa: E402
from bnnembed.link.decision_log import DecisionLog  # noqa: E402
from bnnembed.link.host import HostCore  # noqa: E402

OK, NO_REPLY, REFUSED, RUNAWAY = 0, 1, 2, -1
U32 = 1 << 32
HOST_CB = ctypes.CFUNCTYPE(None, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t, ctypes.c_uint64)


class WrapLink:
    """ctypes view of tests/c/link_wrap.c; ``responder(payload, sent_at_ms)`` returns a list of
    ``(reply wire bytes, arrival time in ms)`` for each frame the device sends."""

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)
        fp = ctypes.POINTER(ctypes.c_float)
        lib.wrap_reset.argtypes = [ctypes.c_uint32, ctypes.c_uint64, ctypes.c_ulong, HOST_CB]
        lib.wrap_schedule.argtypes = [ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t, ctypes.c_uint64]
        lib.wrap_schedule.restype = ctypes.c_int
        lib.wrap_now.restype = ctypes.c_uint64
        lib.wrap_millis.restype = ctypes.c_uint32
        lib.wrap_link_setup.argtypes = [ctypes.c_uint32] * 5
        lib.wrap_defer.argtypes = [fp, ctypes.c_uint16, ctypes.POINTER(ctypes.c_uint8)]
        lib.wrap_defer.restype = ctypes.c_int
        lib.wrap_report.argtypes = [fp, ctypes.c_uint16, ctypes.c_uint8]
        lib.wrap_report.restype = ctypes.c_int
        lib.wrap_stats.argtypes = [ctypes.POINTER(ctypes.c_uint32)]
        self.lib = lib
        self.sent: list[tuple[int, P.Message, bytes]] = []  # (virtual ms, request, payload)
        self._cb = None

    def reset(self, clock_base: int, responder, limit_ms: int = 600_000, max_getc: int = 200_000) -> None:
        self.sent = []

        def on_frame(ptr, n, at):
            payload = P.cobs_decode(ctypes.string_at(ptr, n))
            msg = P.decode_payload(payload)  # the device only ever sends well-formed requests
            self.sent.append((int(at), msg, payload))
            for wire, when in responder(payload, int(at)):
                buf = (ctypes.c_uint8 * len(wire)).from_buffer_copy(wire)
                assert self.lib.wrap_schedule(buf, len(wire), when) == 0

        self._cb = HOST_CB(on_frame)  # kept alive as long as the C side may call it
        self.lib.wrap_reset(clock_base, limit_ms, max_getc, self._cb)

    def setup(self, session: int, tag: int, seq: int, timeout_ms: int, attempts: int) -> None:
        self.lib.wrap_link_setup(session, tag, seq, timeout_ms, attempts)

    def defer(self, x) -> tuple[int, int]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        d = ctypes.c_uint8(255)
        st = self.lib.wrap_defer(x.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), x.size, ctypes.byref(d))
        return st, d.value

    def report(self, x, decision: int) -> int:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return self.lib.wrap_report(x.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), x.size, decision)

    @property
    def now(self) -> int:
        return int(self.lib.wrap_now())

    @property
    def millis(self) -> int:
        return int(self.lib.wrap_millis())

    def stats(self) -> dict:
        out = (ctypes.c_uint32 * 8)()
        self.lib.wrap_stats(out)
        keys = ("requests", "retries", "no_reply", "refused", "stale", "seq", "getc_calls", "max_wait")
        return dict(zip(keys, list(out)))


@pytest.fixture(scope="module")
def link(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("linkwrap"))
    return WrapLink(_proto_c.build(out, main="link_wrap.c", name="liblinkwrap.so"))


def reply_to(payload: bytes, decision: int = 1, *, seq_delta: int = 0, session_delta: int = 0) -> bytes:
    """Wire bytes of the reply a host gives to a request payload (optionally with a wrong seq or
    session, as a stale reply would have)."""
    req = P.decode_payload(payload)
    s, q, crc = (req.session + session_delta) % U32, (req.seq + seq_delta) % U32, P.payload_crc(payload)
    msg = P.DecisionReply(s, q, crc, decision) if isinstance(req, P.Defer) else P.Ack(s, q, crc)
    return P.encode_frame(msg)


X = np.linspace(-1.0, 1.0, 8, dtype=np.float32)


# ----------------------------------------------------------------------------- seq wraparound


@pytest.fixture(scope="module")
def host_art(tmp_path_factory):
    return make_host_artifact(tmp_path_factory.mktemp("art") / "digits")


@pytest.mark.parametrize("first_seq", [0xFFFFFFFD, 0xFFFFFFFF])
def test_seq_wraps_against_the_host_core(link, host_art, tmp_path, first_seq):
    """Requests numbered ..., 0xFFFFFFFF, 0, 1, ... are each answered by the real host core and
    accepted by the C link; the log keeps one record per request under its wrapped number.
    The clock wraps along the way too (it starts 30 ms before 2^32)."""
    from bnnembed.learn.data import load_data

    rows = load_data("digits").X[:6]
    dnn = host_art.load_dnn().says_yes(rows).astype(int)
    with DecisionLog(str(tmp_path / "log.sqlite")) as log:
        core = HostCore(host_art, log)
        tag = P.model_tag(host_art.model_hash)
        link.reset(U32 - 30, lambda payload, at: [(core.feed(P.frame(payload)), at + 7)])
        link.setup(0xC0FFEE, tag, first_seq - 1, timeout_ms=100, attempts=3)
        got = []
        for i, x in enumerate(rows):
            if i % 3 == 2:
                assert link.report(x, 0) == OK, i
                got.append(None)
            else:
                st, d = link.defer(x)
                assert st == OK, i
                got.append(d)
        st = link.stats()
        recs = log.records()
    want_seqs = [(first_seq + i) % U32 for i in range(len(rows))]
    assert [m.seq for _, m, _ in link.sent] == want_seqs  # one send each: no retry was needed
    assert {0xFFFFFFFF, 0} <= set(want_seqs)
    assert [d for d in got if d is not None] == [int(dnn[i]) for i in range(len(rows)) if i % 3 != 2]
    assert (st["requests"], st["retries"], st["no_reply"], st["stale"]) == (len(rows), 0, 0, 0)
    assert st["seq"] == want_seqs[-1]
    # each request took exactly the host's 7 ms: no wait was cut short or stretched by the wrap
    assert [at for at, _, _ in link.sent] == [7 * i for i in range(len(rows))] and link.now == 7 * len(rows)
    # the host's side: one record per request, under the wrapped seq, none mistaken for a retry
    assert sorted(r.seq for r in recs) == sorted(want_seqs)
    assert all(r.session == 0xC0FFEE and r.retries == 0 for r in recs)
    assert core.counts["retries_answered_from_log"] == 0


def test_host_core_answers_retry_of_last_seq_after_wrap(host_art, tmp_path):
    """The host core keys requests by (session, seq, request bytes): a retry of request
    0xFFFFFFFF that arrives after request 0 is answered from the log, and request 0 is new."""
    from bnnembed.learn.data import load_data

    X2 = load_data("digits").X[:2]
    tag = P.model_tag(host_art.model_hash)
    with DecisionLog(str(tmp_path / "log.sqlite")) as log:
        core = HostCore(host_art, log)
        last = P.encode_frame(P.Defer(5, 0xFFFFFFFF, tag, X2[0]))
        first = P.encode_frame(P.Defer(5, 0, tag, X2[1]))
        a = P.FrameReader().feed(core.feed(last))[0][1]
        b = P.FrameReader().feed(core.feed(first))[0][1]
        a2 = P.FrameReader().feed(core.feed(last))[0][1]
        assert (a.seq, b.seq) == (0xFFFFFFFF, 0) and a2 == a
        assert core.counts["new_defers"] == 2 and core.counts["retries_answered_from_log"] == 1
        assert sorted(r.seq for r in log.records()) == [0, 0xFFFFFFFF]


@pytest.mark.parametrize("first_seq", [0xFFFFFFFF, 0])
def test_stale_replies_across_the_seq_wrap_are_ignored(link, first_seq):
    """A reply carrying the previous seq (0xFFFFFFFF when 0 is pending), the next seq, or another
    session, with the right req_crc, is stale; the matching reply after it is accepted."""
    def responder(payload, at):
        return [(reply_to(payload, 0, seq_delta=-1), at + 1), (reply_to(payload, 0, seq_delta=1), at + 2),
                (reply_to(payload, 0, session_delta=1), at + 3), (reply_to(payload, 1), at + 4)]

    link.reset(U32 - 2, responder)
    link.setup(77, 0xABCD, first_seq - 1, timeout_ms=50, attempts=2)
    assert link.defer(X) == (OK, 1)
    assert link.sent[0][1].seq == first_seq
    st = link.stats()
    assert (st["stale"], st["retries"], st["seq"]) == (3, 0, first_seq)
    assert link.now == 4


# ---------------------------------------------------------------------- millisecond clock wrap

TIMEOUT, ATTEMPTS = 500, 3
#: clock values at the first send: no wrap (controls), then the wrap 1 ms after the send, inside
#: the first attempt, 1 ms before its end, exactly at its end, inside the last attempt, and exactly
#: when the request gives up
CLOCK_BASES = [0, 1000, U32 - 1, U32 - 100, U32 - 499, U32 - 500, U32 - 1200, U32 - 1500]


CHATTER = range(10, TIMEOUT * ATTEMPTS, 30)  # ms at which a stale reply arrives, in the chatty case


@pytest.mark.parametrize("chatty", [False, True], ids=["quiet", "chatty"])
@pytest.mark.parametrize("base", CLOCK_BASES, ids=lambda b: f"{b:#010x}")
def test_timeouts_fire_on_time_across_the_clock_wrap(link, base, chatty):
    """No answer: each attempt waits exactly the timeout (not 0 ms when the clock wraps, not
    forever), the retries go out at 0, 500, 1000 ms, and the request ends undecided at 1500 ms.
    In the chatty case a stale reply (the previous request's seq) arrives every 30 ms, so the link
    recomputes its remaining wait from the clock many times on both sides of the wrap."""
    def responder(payload, at):
        if not chatty or at != 0:
            return []
        return [(reply_to(payload, 1, seq_delta=-1), t) for t in CHATTER]

    link.reset(base, responder, limit_ms=10 * TIMEOUT * ATTEMPTS)
    link.setup(1, 2, 41, timeout_ms=TIMEOUT, attempts=ATTEMPTS)
    st = link.defer(X)[0]
    assert st != RUNAWAY, "the reply timeout never fired after the clock wrapped"
    assert st == NO_REPLY
    sends = [at for at, _, _ in link.sent]
    assert sends == [0, TIMEOUT, 2 * TIMEOUT], "an attempt's timeout fired early or late"
    assert link.now == TIMEOUT * ATTEMPTS
    assert link.millis == (base + TIMEOUT * ATTEMPTS) % U32
    s = link.stats()
    assert (s["retries"], s["no_reply"], s["max_wait"]) == (ATTEMPTS - 1, 1, TIMEOUT)
    assert s["stale"] == (len(CHATTER) if chatty else 0)
    assert all(m.seq == 42 for _, m, _ in link.sent)  # a retry is the same request
    assert len({p for _, _, p in link.sent}) == 1


def test_the_clock_really_wraps_in_these_cases():
    """Guard on the cases above: most of them cross 0xFFFFFFFF -> 0 while the request waits."""
    crossing = [b for b in CLOCK_BASES if b + TIMEOUT * ATTEMPTS >= U32]
    assert len(crossing) == len(CLOCK_BASES) - 2


@pytest.mark.parametrize("delay,retries,end", [(300, 0, 300), (499, 0, 499), (700, 1, 700), (1100, 2, 1100)])
def test_reply_after_the_clock_wrap(link, delay, retries, end):
    """The clock wraps 100 ms after the send; a reply arriving later is accepted, in the attempt
    in which it arrives (a reply to an earlier attempt answers the retry: same seq and bytes)."""
    link.reset(U32 - 100, lambda payload, at: [(reply_to(payload, 1), delay)] if at == 0 else [])
    link.setup(9, 9, 0xFFFFFFFF, timeout_ms=TIMEOUT, attempts=ATTEMPTS)
    assert link.defer(X) == (OK, 1)
    assert link.now == end
    assert [at for at, _, _ in link.sent] == [TIMEOUT * i for i in range(retries + 1)]
    s = link.stats()
    assert (s["retries"], s["no_reply"], s["seq"]) == (retries, 0, 0)


def test_back_to_back_requests_across_both_wraps(link):
    """Twenty requests, 40 ms of host time each, starting 100 ms and 10 requests before both
    counters wrap: each is answered on its first attempt, none waits longer than the host took."""
    link.reset(U32 - 100, lambda payload, at: [(reply_to(payload, at // 40 % 2), at + 40)])
    link.setup(3, 3, 0xFFFFFFFF - 10, timeout_ms=TIMEOUT, attempts=ATTEMPTS)
    for i in range(20):
        assert link.defer(X) == (OK, i % 2), i
    assert [at for at, _, _ in link.sent] == [40 * i for i in range(20)]
    assert [m.seq for _, m, _ in link.sent] == [(0xFFFFFFFF - 9 + i) % U32 for i in range(20)]
    s = link.stats()
    assert (s["requests"], s["retries"], s["stale"], s["seq"]) == (20, 0, 0, 9)
