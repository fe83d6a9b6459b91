"""Host throughput with the DNN in the loop, over a real TCP socket on 127.0.0.1.

Two measurements side by side, same artifact, same rows:
- sequential: one request at a time, as the device does (request, wait for reply, next);
- pipelined: all requests written at once, replies read back (the host's own capacity).
Each request is a DEFER the host has not seen (new session per run), so every one runs the DNN,
the bounds, the decision id and a committed SQLite insert.

Usage: python bench/bench_host.py ARTIFACT_DIR [--rows N]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time

import numpy as np

from bnnembed.link import protocol as P
from bnnembed.artifact import load_artifact
from bnnembed.link.endpoints import TcpListen
from bnnembed.link.service import start_host


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("artifact")
    ap.add_argument("--rows", type=int, default=1000)
    args = ap.parse_args()
    art = load_artifact(args.artifact)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.rows, art.encoder.n_features)).astype(np.float32)
    tag = P.model_tag(art.model_hash)
    with tempfile.TemporaryDirectory() as tmp:
        service, thread = start_host(art, TcpListen("127.0.0.1", 0), log_path=os.path.join(tmp, "log.sqlite"))
        try:
            sock = socket.create_connection(("127.0.0.1", service.endpoint.port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reader = P.FrameReader()
            # sequential
            t0 = time.perf_counter()
            for i, x in enumerate(X):
                sock.sendall(P.encode_frame(P.Defer(1, i + 1, tag, x)))
                got = []
                while not got:
                    got = reader.feed(sock.recv(4096))
            seq_s = time.perf_counter() - t0
            # pipelined
            frames = b"".join(P.encode_frame(P.Defer(2, i + 1, tag, x)) for i, x in enumerate(X))
            t0 = time.perf_counter()
            sock.sendall(frames)
            n = 0
            while n < len(X):
                n += len(reader.feed(sock.recv(65536)))
            pipe_s = time.perf_counter() - t0
            sock.close()
        finally:
            service.stop.set()
            thread.join(5)
            stats = service.core.stats()
            service.core.log.close()
    print(f"artifact {art.path}: {art.encoder.n_features} features, {args.rows} DEFER requests per run")
    print(f"sequential: {args.rows / seq_s:8.0f} requests/s  ({1000 * seq_s / args.rows:.3f} ms per round trip)")
    print(f"pipelined:  {args.rows / pipe_s:8.0f} requests/s")
    print(f"DNN time: {1000 * stats['dnn_seconds'] / stats['requests']:.3f} ms per request; host stats {stats}")


if __name__ == "__main__":
    sys.exit(main())
