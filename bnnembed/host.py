"""The host service: answers the device's deferrals with the DNN and logs every request.

Two layers, kept apart so the first can be tested without sockets:

- :class:`HostCore` is pure frame handling: bytes from the device in, reply bytes out, the
  :class:`~bnnembed.decision_log.DecisionLog` updated. For each well-formed request it

  1. looks up ``(session, seq, SHA-256 of the request bytes)`` in the log; if present (a retry
     whose reply was lost) it answers with the stored reply and counts the retry;
  2. otherwise checks the model tag and feature count (a mismatch is answered with NACK),
     runs the DNN (DEFER) or records the device's own decision (REPORT), computes the decision id
     and the numpy bounds' decision on the same input, **commits** the record, and only then
     returns the reply (DECISION or ACK), so a reply the device saw is always in the log.

  Malformed frames are dropped and counted by the :class:`~bnnembed.protocol.FrameReader`.
- :class:`HostService` moves bytes between an endpoint and the core: a TCP listener (QEMU's
  serial socket connects to it, or any device bridge), a TCP client, or a serial port through
  pyserial (``serial.serial_for_url``, so ``socket://`` and ``rfc2217://`` URLs work too). One
  connection at a time; when it closes, the next is awaited.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from . import protocol as P
from .decision_id import decision_id
from .decision_log import DecisionLog, default_log_path
from .errors import BnnError


class HostCore:
    """Frame handling and logging for one artifact (no I/O)."""

    def __init__(self, artifact, log: DecisionLog, dnn=None) -> None:
        self.artifact = artifact
        self.log = log
        self.dnn = dnn if dnn is not None else artifact.load_dnn()
        self.tag = P.model_tag(artifact.model_hash)
        self.n_features = artifact.encoder.n_features
        self.reader = P.FrameReader()
        self.counts: Counter = Counter()
        self.dnn_seconds = 0.0

    def new_connection(self) -> None:
        """Forget a partial frame from the previous connection (its counters stay)."""
        self.reader._buf.clear()
        self.reader._overflow = False
        self.counts["connections"] += 1

    def feed(self, data: bytes) -> bytes:
        """Bytes received from the device -> wire bytes to send back (possibly empty)."""
        out = bytearray()
        for payload, msg in self.reader.feed(data):
            reply = self.handle(payload, msg)
            if reply is not None:
                out += P.frame(reply)
        return bytes(out)

    def handle(self, payload: bytes, msg: P.Message) -> bytes | None:
        """One well-formed frame -> the reply payload (None for frames that need no reply)."""
        if not isinstance(msg, (P.Defer, P.Report)):
            self.counts["unexpected_replies"] += 1
            return None
        received_at = time.time()
        self.counts["requests"] += 1
        sha = hashlib.sha256(payload).hexdigest()
        crc = P.payload_crc(payload)
        found = self.log.find(msg.session, msg.seq, sha)
        if found is not None:
            row_id, reply_type, reply_value = found
            self.log.count_retry(row_id)
            self.counts["retries_answered_from_log"] += 1
            return self._reply(msg, crc, reply_type, reply_value)
        kind = "defer" if isinstance(msg, P.Defer) else "report"
        x = np.asarray(msg.features, np.float32)
        device = msg.decision if isinstance(msg, P.Report) else None
        dnn_decision = reference = did = None
        if msg.model_tag != self.tag:
            reply_type, reply_value = P.MsgType.NACK, int(P.NackReason.MODEL_MISMATCH)
        elif x.size != self.n_features:
            reply_type, reply_value = P.MsgType.NACK, int(P.NackReason.FEATURE_COUNT)
        else:
            try:
                t0 = time.perf_counter()
                dnn_decision = int(bool(self.dnn.says_yes(x[None, :])[0]))
                self.dnn_seconds += time.perf_counter() - t0
                bits = self.artifact.encode(x[None, :])
                reference = int(self.artifact.decide(x[None, :])[0])
                did = decision_id(self.artifact.model_hash, bits[0])
            except Exception:  # noqa: BLE001 - a DNN failure on one input must not stop the service
                dnn_decision = None
                reply_type, reply_value = P.MsgType.NACK, int(P.NackReason.HOST_ERROR)
            else:
                if kind == "defer":
                    reply_type, reply_value = P.MsgType.DECISION, dnn_decision
                else:
                    reply_type, reply_value = P.MsgType.ACK, None
        if reply_type == P.MsgType.NACK:
            self.counts["refused"] += 1
        self.log.add(session=msg.session, seq=msg.seq, kind=kind, request_sha=sha, request_crc=crc,
                     model_hash=self.artifact.model_hash, decision_id=did, features=x, device_decision=device,
                     dnn_decision=dnn_decision, reference_decision=reference, reply_type=int(reply_type),
                     reply_value=reply_value, received_at=received_at)
        self.counts[f"new_{kind}s"] += 1
        return self._reply(msg, crc, reply_type, reply_value)

    def _reply(self, msg, crc: int, reply_type: int, reply_value: int | None) -> bytes:
        self.counts["replies"] += 1
        if reply_type == P.MsgType.DECISION:
            reply = P.DecisionReply(msg.session, msg.seq, crc, int(reply_value))
        elif reply_type == P.MsgType.ACK:
            reply = P.Ack(msg.session, msg.seq, crc)
        else:
            reply = P.Nack(msg.session, msg.seq, crc, int(reply_value))
        return P.encode_payload(reply)

    def stats(self) -> dict:
        return {**self.reader.stats(), **dict(self.counts), "dnn_seconds": round(self.dnn_seconds, 6)}


# ------------------------------------------------------------------------------- endpoints

class _SocketConn:
    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(0.1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock

    def read(self) -> bytes | None:
        """Some bytes, b"" when nothing arrived within 0.1 s, None when the peer closed."""
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return b""
        except OSError:
            return None
        return data or None

    def write(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            pass  # the peer is gone; the device retries, the log keeps the answer

    def close(self) -> None:
        self.sock.close()


class TcpListen:
    """Listen on HOST:PORT (127.0.0.1 by default) and serve one connection at a time."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise BnnError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another port with --tcp") from None
        self.sock.listen(1)
        self.sock.settimeout(0.2)
        self.host, self.port = self.sock.getsockname()[:2]

    def describe(self) -> str:
        return f"tcp-listen {self.host}:{self.port}"

    def open(self, stop: threading.Event):
        while not stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            return _SocketConn(conn)
        return None

    def close(self) -> None:
        self.sock.close()


class TcpConnect:
    """Connect to a device bridge listening on HOST:PORT (e.g. QEMU ``-serial tcp::P,server``)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def describe(self) -> str:
        return f"tcp-connect {self.host}:{self.port}"

    def open(self, stop: threading.Event):
        while not stop.is_set():
            try:
                return _SocketConn(socket.create_connection((self.host, self.port), timeout=1.0))
            except OSError:
                stop.wait(0.2)
        return None

    def close(self) -> None:
        pass


class SerialPort:
    """A serial port (or any pyserial URL such as ``socket://host:port``)."""

    def __init__(self, url: str, baud: int = 115200) -> None:
        self.url, self.baud = url, baud

    def describe(self) -> str:
        return f"serial {self.url} @ {self.baud}"

    def open(self, stop: threading.Event):
        import serial

        while not stop.is_set():
            try:
                ser = serial.serial_for_url(self.url, baudrate=self.baud, timeout=0.1)
            except (serial.SerialException, ValueError) as exc:
                if "could not open" in str(exc).lower() or isinstance(exc, ValueError):
                    raise BnnError(f"cannot open serial port {self.url}: {exc}; check --serial and permissions") from None
                stop.wait(0.5)
                continue
            return _SerialConn(ser)
        return None

    def close(self) -> None:
        pass


class _SerialConn:
    def __init__(self, ser) -> None:
        self.ser = ser

    def read(self) -> bytes | None:
        import serial

        try:
            return self.ser.read(max(1, self.ser.in_waiting))
        except serial.SerialException:
            return None

    def write(self, data: bytes) -> None:
        import serial

        try:
            self.ser.write(data)
        except serial.SerialException:
            pass

    def close(self) -> None:
        self.ser.close()


def parse_tcp(spec: str) -> tuple[str, int]:
    """``PORT`` or ``HOST:PORT`` (the host defaults to 127.0.0.1)."""
    host, _, port = spec.rpartition(":")
    try:
        port_n = int(port)
    except ValueError:
        raise BnnError(f"--tcp {spec!r}: expected PORT or HOST:PORT, e.g. --tcp 127.0.0.1:5555") from None
    if not 0 <= port_n < 65536:
        raise BnnError(f"--tcp {spec!r}: port must be 0..65535")
    return host or "127.0.0.1", port_n


# --------------------------------------------------------------------------------- service

@dataclass
class HostService:
    """Runs a :class:`HostCore` over an endpoint until ``stop`` is set."""

    core: HostCore
    endpoint: object
    stop: threading.Event
    stats_every: float = 2.0

    def run(self) -> dict:
        log = self.core.log
        run_id = log.start_run(self.endpoint.describe())
        last = time.monotonic()
        try:
            while not self.stop.is_set():
                conn = self.endpoint.open(self.stop)
                if conn is None:
                    break
                self.core.new_connection()
                try:
                    while not self.stop.is_set():
                        data = conn.read()
                        if data is None:
                            break
                        if data:
                            out = self.core.feed(data)
                            if out:
                                conn.write(out)
                        if time.monotonic() - last > self.stats_every:
                            log.update_run(run_id, self.core.stats())
                            last = time.monotonic()
                finally:
                    conn.close()
        finally:
            log.update_run(run_id, self.core.stats())
            self.endpoint.close()
        return self.core.stats()


def open_endpoint(*, tcp: str | None = None, connect: str | None = None, serial: str | None = None,
                  baud: int = 115200):
    chosen = [x for x in (tcp, connect, serial) if x is not None]
    if len(chosen) != 1:
        raise BnnError("give exactly one of --tcp [HOST:]PORT, --connect HOST:PORT or --serial DEVICE")
    if tcp is not None:
        return TcpListen(*parse_tcp(tcp))
    if connect is not None:
        return TcpConnect(*parse_tcp(connect))
    return SerialPort(serial, baud)


def start_host(artifact, endpoint, *, log_path: str | None = None, dnn=None):
    """Start a host service in a background thread; returns ``(service, thread)``.

    Stop it with ``service.stop.set(); thread.join()``; its stats are in ``service.core.stats()``.
    """
    log = DecisionLog(log_path or default_log_path(artifact.path))
    core = HostCore(artifact, log, dnn=dnn)
    service = HostService(core, endpoint, threading.Event())
    thread = threading.Thread(target=service.run, name="bnnembed-host", daemon=True)
    thread.start()
    return service, thread
