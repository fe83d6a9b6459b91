"""The deferral link's invariants, checked against the host's log after a faulty run.

No misread (a decided row ends with its bound's answer, a deferred row with the DNN's, or
undecided, never anything else); no lost record (every request the device saw answered is in the
log, with its exact features); no duplicate (one record per request, whatever the retries).
"""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _fake_device import FakeDevice  # noqa: E402
from _fault_proxy import FaultProxy  # noqa: E402

from bnnembed.link import protocol as P  # noqa: E402
from bnnembed.learn.data import load_data  # noqa: E402
from bnnembed.link.decision_log import DecisionLog  # noqa: E402
from bnnembed.link.endpoints import TcpListen  # noqa: E402
from bnnembed.link.service import start_host  # noqa: E402
from bnnembed.model.intmodel import Decision  # noqa: E402


def audit(log_path, session, X, ref, dnn, final, status):
    """The invariants; returns counts for the report."""
    unknown = ref == Decision.UNKNOWN
    final = np.asarray(final)
    for i in range(len(X)):
        if final[i] == 2:
            continue
        expected = int(dnn[i]) if unknown[i] else int(ref[i])
        assert final[i] == expected, f"row {i}: misread decision"
    with DecisionLog(log_path, readonly=True) as log:
        recs = [r for r in log.records() if r.session == session]
    keys = [(r.session, r.seq) for r in recs]
    assert len(keys) == len(set(keys)), "duplicate log records"
    by_seq = {r.seq: r for r in recs}
    for r in recs:
        i = r.seq - 1
        assert 0 <= i < len(X) and np.array_equal(r.features, X[i]), "a corrupted request was logged"
        assert r.kind == ("defer" if unknown[i] else "report")
    lost = [i for i in range(len(X)) if status[i] == 0 and (i + 1) not in by_seq]
    assert lost == [], f"answered requests missing from the log: {lost}"
    undecided = int((final == 2).sum())
    return {"rows": len(X), "records": len(recs), "lost": len(lost), "duplicates": len(keys) - len(set(keys)),
            "undecided": undecided, "undecided_but_logged": sum(1 for i in range(len(X)) if final[i] == 2 and (i + 1) in by_seq),
            "retries_answered_from_log": sum(r.retries for r in recs)}


def run_rows(dev, X, ref):
    """The device loop: defer unknowns, report the rest; (final decisions, 0 = answered)."""
    final, status = [], []
    for x, b in zip(X, ref):
        if b == Decision.UNKNOWN:
            st, d = dev.defer(x)
            final.append(d if st == "ok" else 2)
        else:
            st = dev.report(x, int(b))
            final.append(int(b))
        status.append(0 if st == "ok" else 1)
    return final, status


def run_devices(art, n_devices: int, rows: int, flip_rate: float, log_path: str, restart_after: float | None,
                timeout: float = 0.1, attempts: int = 60):
    """``n_devices`` Python devices at once, each through its own proxy flipping ``flip_rate`` of
    the bytes, against one host (killed and restarted after ``restart_after`` s if given); every
    device's run audited against the log."""
    X = load_data("breast_cancer").X
    X = np.concatenate([X] * (1 + rows // len(X)))[:rows]
    ref, dnn = art.decide(X), art.load_dnn().says_yes(X).astype(int)
    service, thread = start_host(art, TcpListen("127.0.0.1", 0), log_path=log_path)
    port = service.endpoint.port
    proxies = [FaultProxy(port, flip_rate=flip_rate, drop_rate=0.0, seed=11 + k) for k in range(n_devices)]
    devs = [FakeDevice(p.port, session=100 + k, model_tag=P.model_tag(art.model_hash), timeout=timeout, attempts=attempts)
            for k, p in enumerate(proxies)]
    results: dict[int, tuple] = {}

    def go(k):
        results[k] = run_rows(devs[k], X, ref)

    t0 = time.perf_counter()
    workers = [threading.Thread(target=go, args=(k,)) for k in range(n_devices)]
    for w in workers:
        w.start()
    restarted = False
    if restart_after is not None:
        time.sleep(restart_after)
        service.stop.set()  # the host goes down mid-run ...
        thread.join(10)
        service.core.log.close()
        time.sleep(0.3)
        service, thread = start_host(art, TcpListen("127.0.0.1", port), log_path=log_path)  # ... and comes back
        restarted = True
    for w in workers:
        w.join(600)
    seconds = time.perf_counter() - t0
    for d in devs:
        d.close()
    for p in proxies:
        p.close()
    service.stop.set()
    thread.join(10)
    stats = service.core.stats()
    service.core.log.close()
    audits = [audit(log_path, 100 + k, X, ref, dnn, *results[k]) for k in range(n_devices)]
    return {"seconds": seconds, "requests_per_second": n_devices * rows / seconds, "audits": audits,
            "host": stats, "restarted": restarted}
