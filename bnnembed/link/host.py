"""The host service: answers the device's deferrals with the DNN and logs every request.

Two layers, kept apart so the first can be tested without sockets:

- :class:`HostCore` is pure frame handling: bytes from the device in, reply bytes out, the
  :class:`~bnnembed.link.decision_log.DecisionLog` updated. For each well-formed request it

  1. looks up ``(session, seq, SHA-256 of the request bytes)`` in the log; if present (a retry
     whose reply was lost) it answers with the stored reply and counts the retry;
  2. otherwise checks the model tag and feature count (a mismatch is answered with NACK),
     runs the DNN (DEFER) or records the device's own decision (REPORT), computes the decision id
     and the numpy bounds' decision on the same input, **commits** the record, and only then
     returns the reply (DECISION or ACK), so a reply the device saw is always in the log.

  Malformed frames are dropped and counted by the :class:`~bnnembed.link.protocol.FrameReader`.
- :class:`HostService` moves bytes between an endpoint and the core: a TCP listener (QEMU's
  serial socket connects to it, or any device bridge), a TCP client, or a serial port through
  pyserial (``serial.serial_for_url``, so ``socket://`` and ``rfc2217://`` URLs work too). A
  listener serves every device at once (a thread each, idle ones closed); a serial port that
  vanishes is reopened with back-off, the gap logged.
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
from ..model.decision_id import decision_id
from .decision_log import DecisionLog, default_log_path
from ..errors import BnnError


class HostCore:
    """Frame handling and logging for one artifact (no I/O)."""

    def __init__(self, artifact, log: DecisionLog, dnn=None) -> None:
        self.artifact = artifact
        self.log = log
        self.dnn = dnn if dnn is not None else artifact.load_dnn()
        self.tag = P.model_tag(artifact.model_hash)
        self.n_features = artifact.encoder.n_features
        self.reader = P.FrameReader()  # the default connection's (tests feed bytes straight in)
        self._readers: list[P.FrameReader] = [self.reader]
        self.counts: Counter = Counter()
        self.dnn_seconds = 0.0
        self._lock = threading.RLock()  # connections are served by threads; one request at a time

    def new_connection(self) -> P.FrameReader:
        """A frame reader for a new connection (partial frames never cross connections; the
        drop counters of every connection add up in :meth:`stats`)."""
        reader = P.FrameReader()
        with self._lock:
            self._readers.append(reader)
            self.counts["connections"] += 1
        return reader

    def feed(self, data: bytes, reader: P.FrameReader | None = None) -> bytes:
        """Bytes received from the device -> wire bytes to send back (possibly empty)."""
        out = bytearray()
        for payload, msg in (reader or self.reader).feed(data):
            with self._lock:
                reply = self.handle(payload, msg)
            if reply is not None:
                out += P.frame(reply)
        return bytes(out)

    def handle(self, payload: bytes, msg: P.Message) -> bytes | None:
        """One well-formed frame -> the reply payload (None for frames that need no reply).

        An input with a non-finite feature never gets a yes/no: a DEFER of one is refused
        (NACK INVALID_INPUT) and a REPORT of one is logged as it came; neither runs the DNN,
        and its reference decision is INVALID, as the device's own check gives.
        """
        from ..model.intmodel import Decision, invalid_rows

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
        elif invalid_rows(x[None, :])[0]:
            self.counts["invalid_inputs"] += 1
            reference = int(Decision.INVALID)
            if kind == "defer":
                reply_type, reply_value = P.MsgType.NACK, int(P.NackReason.INVALID_INPUT)
            else:
                reply_type, reply_value = P.MsgType.ACK, None
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
        if device == Decision.INVALID:
            self.counts["invalid_reports"] += 1
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
        with self._lock:
            dropped: Counter = Counter()
            for r in self._readers:
                dropped.update(r.dropped)
            frames = {"frames_ok": sum(r.frames_ok for r in self._readers),
                      "frames_dropped": sum(r.frames_dropped for r in self._readers), "dropped": dict(dropped)}
            return {**frames, **dict(self.counts), "dnn_seconds": round(self.dnn_seconds, 6)}

    def count(self, name: str, n: float = 1) -> None:
        with self._lock:
            self.counts[name] += n


# ------------------------------------------------------------------------------- endpoints
#
# An endpoint hands the service connections: ``open(stop)`` blocks until one is there (or stop is
# set: None). ``concurrent`` endpoints (a TCP listener) have each connection served by its own
# thread, so one silent device never blocks another; the others are served one at a time and
# reopened when they go away (a board that resets, a pty that closes).

class _SocketConn:
    def __init__(self, sock: socket.socket, peer: str = "") -> None:
        sock.settimeout(0.1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.peer = peer

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
        try:
            self.sock.close()
        except OSError:
            pass


class TcpListen:
    """Listen on HOST:PORT (127.0.0.1 by default); every device connection is served at once."""

    concurrent = True
    BACKLOG = 64

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise BnnError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another port with --tcp") from None
        self.sock.listen(self.BACKLOG)
        self.sock.settimeout(0.2)
        self.host, self.port = self.sock.getsockname()[:2]

    def describe(self) -> str:
        return f"tcp-listen {self.host}:{self.port}"

    def open(self, stop: threading.Event):
        while not stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return None  # the listener was closed
            return _SocketConn(conn, f"{peer[0]}:{peer[1]}")
        return None

    def close(self) -> None:
        self.sock.close()


class TcpConnect:
    """Connect to a device bridge listening on HOST:PORT (e.g. QEMU ``-serial tcp::P,server``)."""

    concurrent = False

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def describe(self) -> str:
        return f"tcp-connect {self.host}:{self.port}"

    def open(self, stop: threading.Event):
        while not stop.is_set():
            try:
                return _SocketConn(socket.create_connection((self.host, self.port), timeout=1.0),
                                   f"{self.host}:{self.port}")
            except OSError:
                stop.wait(0.2)
        return None

    def close(self) -> None:
        pass


class SerialPort:
    """A serial port (or any pyserial URL such as ``socket://host:port``).

    A port that cannot be opened at start-up is a user mistake (one-line error). Once it has
    been open, a port that vanishes (a USB CDC board resetting on every flash, a closed pty) is
    reopened with back-off from ``backoff`` to ``max_backoff`` seconds until ``stop``."""

    concurrent = False

    def __init__(self, url: str, baud: int = 115200, backoff: float = 0.1, max_backoff: float = 2.0) -> None:
        self.url, self.baud = url, baud
        self.backoff, self.max_backoff = backoff, max_backoff
        self.opened_once = False

    def describe(self) -> str:
        return f"serial {self.url} @ {self.baud}"

    def open(self, stop: threading.Event):
        import serial

        wait = self.backoff
        while not stop.is_set():
            try:
                ser = serial.serial_for_url(self.url, baudrate=self.baud, timeout=0.1)
            except (serial.SerialException, ValueError, OSError) as exc:
                if not self.opened_once:
                    raise BnnError(f"cannot open serial port {self.url}: {str(exc).splitlines()[0]}; "
                                   "check --serial and permissions") from None
                stop.wait(wait)
                wait = min(2 * wait, self.max_backoff)
                continue
            self.opened_once = True
            return _SerialConn(ser, self.url)
        return None

    def close(self) -> None:
        pass


class _SerialConn:
    def __init__(self, ser, peer: str = "") -> None:
        self.ser = ser
        self.peer = peer

    def read(self) -> bytes | None:
        import serial

        try:
            return self.ser.read(max(1, self.ser.in_waiting))
        except (serial.SerialException, OSError, TypeError):
            return None  # the port went away (pyserial raises TypeError on a port closed under it)

    def write(self, data: bytes) -> None:
        import serial

        try:
            self.ser.write(data)
        except (serial.SerialException, OSError):
            pass

    def close(self) -> None:
        try:
            self.ser.close()
        except Exception:  # noqa: BLE001 - closing a vanished port may fail in many ways
            pass


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
    """Runs a :class:`HostCore` over an endpoint until ``stop`` is set.

    ``idle_timeout``: a connection that sends nothing for that long is closed (a device that
    wakes up reconnects), so a silent client holds no thread forever. ``max_connections``:
    devices served at once on a concurrent endpoint; more are refused and counted. Link events
    (connections, idle closes, a serial port lost and back, with the gap) go to the log's
    ``events`` table."""

    core: HostCore
    endpoint: object
    stop: threading.Event
    stats_every: float = 2.0
    idle_timeout: float | None = 120.0
    max_connections: int = 32

    def run(self) -> dict:
        log = self.core.log
        self._log_lock = threading.Lock()
        self.run_id = log.start_run(self.endpoint.describe())
        self._threads: list[threading.Thread] = []
        self._active = 0
        ticker = threading.Thread(target=self._tick, name="bnnembed-host-stats", daemon=True)
        ticker.start()
        try:
            if getattr(self.endpoint, "concurrent", False):
                self._accept_loop()
            else:
                self._sequential_loop()
        finally:
            self.stop.set()
            for t in self._threads:
                t.join(5)
            ticker.join(5)
            self._save_stats()
            self.endpoint.close()
        return self.core.stats()

    # -- loops

    def _accept_loop(self) -> None:
        while not self.stop.is_set():
            conn = self.endpoint.open(self.stop)
            if conn is None:
                break
            self._threads = [t for t in self._threads if t.is_alive()]
            if len(self._threads) >= self.max_connections:
                self.core.count("connections_refused")
                self._event("refused", conn.peer, f"{self.max_connections} devices already connected")
                conn.close()
                continue
            t = threading.Thread(target=self._serve, args=(conn,), name=f"bnnembed-host-{conn.peer}", daemon=True)
            self._threads.append(t)
            t.start()

    def _sequential_loop(self) -> None:
        lost_at = None
        while not self.stop.is_set():
            conn = self.endpoint.open(self.stop)
            if conn is None:
                break
            if lost_at is not None:
                gap = time.monotonic() - lost_at
                self.core.count("port_reopens")
                self.core.count("link_gap_seconds", round(gap, 3))
                self._event("back", conn.peer, f"after {gap:.2f} s")
            why = self._serve(conn)
            if why == "closed" and not self.stop.is_set():
                lost_at = time.monotonic()
                self._event("lost", conn.peer, "the port or peer went away; reopening")

    def _serve(self, conn) -> str:
        """Serve one connection until it closes, idles out or the service stops."""
        reader = self.core.new_connection()
        self._event("open", conn.peer, "")
        with self._log_lock:
            self._active += 1
            self.core.counts["max_concurrent_connections"] = max(self.core.counts["max_concurrent_connections"],
                                                                 self._active)
        last_data = time.monotonic()
        why = "stopped"
        try:
            while not self.stop.is_set():
                data = conn.read()
                if data is None:
                    why = "closed"
                    break
                now = time.monotonic()
                if data:
                    last_data = now
                    out = self.core.feed(data, reader)
                    if out:
                        conn.write(out)
                elif self.idle_timeout is not None and now - last_data > self.idle_timeout:
                    why = "idle"
                    self.core.count("idle_timeouts")
                    break
        finally:
            conn.close()
            with self._log_lock:
                self._active -= 1
            self._event("close", conn.peer, why)
        return why

    # -- bookkeeping

    def _tick(self) -> None:
        while not self.stop.wait(self.stats_every):
            self._save_stats()

    def _save_stats(self) -> None:
        with self.core._lock:
            self.core.log.update_run(self.run_id, self.core.stats())

    def _event(self, kind: str, peer: str, detail: str) -> None:
        with self.core._lock:
            self.core.log.add_event(self.run_id, kind, peer, detail)


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


def start_host(artifact, endpoint, *, log_path: str | None = None, dnn=None, **service_options):
    """Start a host service in a background thread; returns ``(service, thread)``.

    Stop it with ``service.stop.set(); thread.join()``; its stats are in ``service.core.stats()``.
    """
    log = DecisionLog(log_path or default_log_path(artifact.path))
    core = HostCore(artifact, log, dnn=dnn)
    service = HostService(core, endpoint, threading.Event(), **service_options)
    thread = threading.Thread(target=service.run, name="bnnembed-host", daemon=True)
    thread.start()
    return service, thread
