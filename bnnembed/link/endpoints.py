"""The links a host serves: a TCP listener, a TCP client, a serial port.

An endpoint hands the service connections: ``open(stop)`` blocks until one is there (or ``stop``
is set: None). ``concurrent`` endpoints (a TCP listener) have each connection served by its own
thread, so one silent device never blocks another; the others are served one at a time and
reopened when they go away (a board that resets, a pty that closes). A serial port goes through
pyserial (``serial.serial_for_url``, so ``socket://`` and ``rfc2217://`` URLs work too).
"""

from __future__ import annotations

import socket
import threading

from ..errors import BnnError


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
