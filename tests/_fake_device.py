"""A device written in Python that speaks the deferral protocol over a real TCP socket.

Same behaviour as the C link (firmware/bnn_protocol.c): one request at a time, a bounded number
of attempts with a timeout each, a reply accepted only if its session, seq and req_crc match, a
NACK ends the request. It reconnects when the host goes away (like QEMU's reconnect=1).
"""

from __future__ import annotations

import socket
import time

import numpy as np

from bnnembed.link import protocol as P


class FakeDevice:
    def __init__(self, port: int, *, session: int, model_tag: int, timeout: float = 0.5, attempts: int = 5,
                 host: str = "127.0.0.1") -> None:
        self.addr = (host, port)
        self.session, self.tag = session, model_tag
        self.timeout, self.attempts = timeout, attempts
        self.seq = 0
        self.reader = P.FrameReader()
        self.sock: socket.socket | None = None
        self.stats = {"requests": 0, "retries": 0, "no_reply": 0, "refused": 0, "stale": 0}

    def _connect(self) -> bool:
        if self.sock is not None:
            return True
        try:
            self.sock = socket.create_connection(self.addr, timeout=0.5)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return True
        except OSError:
            self.sock = None
            return False

    def _drop(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None

    def close(self) -> None:
        self._drop()

    # the transport (a TCP socket here; tests/link/test_host_reliability.py has a pty one)

    def _connected(self) -> bool:
        return self.sock is not None

    def _send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            self._drop()

    def _recv(self, timeout: float) -> bytes | None:
        """Bytes; b"" on timeout; None when the link is gone."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return b""
        except OSError:
            return None
        return data or None

    def request(self, msg_cls, x, decision=None):
        """Returns ("ok", reply) | ("refused", reason) | ("no_reply", None)."""
        self.seq += 1
        self.stats["requests"] += 1
        x = np.asarray(x, np.float32)
        if msg_cls is P.Defer:
            msg = P.Defer(self.session, self.seq, self.tag, x)
        else:
            msg = P.Report(self.session, self.seq, self.tag, int(decision), x)
        payload = P.encode_payload(msg)
        crc = P.payload_crc(payload)
        want = P.DecisionReply if msg_cls is P.Defer else P.Ack
        for attempt in range(self.attempts):
            if attempt:
                self.stats["retries"] += 1
            deadline = time.monotonic() + self.timeout
            if self._connect():
                self._send(P.frame(payload))
            while time.monotonic() < deadline:
                if not self._connected():
                    time.sleep(0.02)
                    self._connect()
                    continue
                data = self._recv(max(0.001, deadline - time.monotonic()))
                if data == b"":
                    break  # timed out
                if data is None:
                    self._drop()
                    continue
                for _, reply in self.reader.feed(data):
                    if (reply.session, reply.seq, getattr(reply, "req_crc", None)) != (self.session, self.seq, crc):
                        self.stats["stale"] += 1
                    elif isinstance(reply, P.Nack):
                        self.stats["refused"] += 1
                        return "refused", reply.reason
                    elif isinstance(reply, want):
                        return "ok", reply
                    else:
                        self.stats["stale"] += 1
        self.stats["no_reply"] += 1
        return "no_reply", None

    def defer(self, x):
        status, reply = self.request(P.Defer, x)
        return status, (reply.decision if status == "ok" else reply)

    def report(self, x, decision: int):
        return self.request(P.Report, x, decision)[0]
