"""The host service: a :class:`~bnnembed.link.host.HostCore` run over an endpoint, every device
connection in its own thread, idle ones closed, a vanished serial port reopened, link events and
counters in the decision log, until told to stop."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from .decision_log import DecisionLog, default_log_path
from .host import HostCore


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
