"""A TCP proxy that corrupts the link: flips or drops bytes at set rates, with a seeded RNG.

It sits between the device (QEMU's serial socket, or a Python/C device) and the host service,
accepts the device's connections one after another (QEMU reconnects), and forwards each
direction through its own RNG stream so a run is reproducible for a given byte sequence.
"""

from __future__ import annotations

import random
import socket
import threading


class FaultProxy:
    def __init__(self, upstream_port: int, *, flip_rate: float = 0.0, drop_rate: float = 0.0, seed: int = 0) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.flip_rate, self.drop_rate = flip_rate, drop_rate
        self.rngs = {"to_host": random.Random(seed), "to_device": random.Random(seed + 1)}
        self.counts = {d: {"bytes": 0, "flipped": 0, "dropped": 0} for d in self.rngs}
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _corrupt(self, direction: str, data: bytes) -> bytes:
        rng, c = self.rngs[direction], self.counts[direction]
        out = bytearray()
        with self.lock:
            for b in data:
                c["bytes"] += 1
                if rng.random() < self.drop_rate:
                    c["dropped"] += 1
                    continue
                if rng.random() < self.flip_rate:
                    b ^= 1 << rng.randrange(8)
                    c["flipped"] += 1
                out.append(b)
        return bytes(out)

    def _pump(self, src, dst, direction, done):
        src.settimeout(0.1)
        while not self.stop.is_set() and not done.is_set():
            try:
                data = src.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            try:
                dst.sendall(self._corrupt(direction, data))
            except OSError:
                break
        done.set()

    def _serve(self):
        while not self.stop.is_set():
            try:
                dev, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                host = socket.create_connection(self.upstream, timeout=2)
            except OSError:
                dev.close()
                continue
            for s in (dev, host):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            done = threading.Event()
            ts = [threading.Thread(target=self._pump, args=(dev, host, "to_host", done), daemon=True),
                  threading.Thread(target=self._pump, args=(host, dev, "to_device", done), daemon=True)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            dev.close()
            host.close()

    def close(self):
        self.stop.set()
        self.sock.close()
        self.thread.join(2)
