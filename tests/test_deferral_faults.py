"""Faults on the deferral link: corrupted/dropped bytes, a host killed and restarted mid-run.

Invariants checked every time: no crash; no misread (a decided row ends with its bound's answer,
a deferred row with the DNN's, or undecided, never anything else); no lost record (every request
the device saw answered is in the log, with its exact features); no duplicate (one record per
request, whatever the retries).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _fake_device import FakeDevice  # noqa: E402
from _fault_proxy import FaultProxy  # noqa: E402
from host_fixtures import make_host_artifact  # noqa: E402

from bnnembed import protocol as P  # noqa: E402
from bnnembed.data import load_data  # noqa: E402
from bnnembed.decision_log import DecisionLog  # noqa: E402
from bnnembed.host import TcpListen, start_host  # noqa: E402
from bnnembed.intmodel import Decision  # noqa: E402
from _tools import need_qemu_arm  # noqa: E402


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    return make_host_artifact(tmp_path_factory.mktemp("faults") / "digits")




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


def test_corrupting_link_python_device(art, tmp_path, capsys):
    """2,000 requests through a proxy flipping and dropping 0.1% of bytes each way (no QEMU)."""
    X = load_data("digits").X[:1000]
    ref, dnn = art.decide(X), art.load_dnn().says_yes(X).astype(int)
    log_path = str(tmp_path / "log.sqlite")
    service, thread = start_host(art, TcpListen("127.0.0.1", 0), log_path=log_path)
    proxy = FaultProxy(service.endpoint.port, flip_rate=0.001, drop_rate=0.001, seed=7)
    dev = FakeDevice(proxy.port, session=77, model_tag=P.model_tag(art.model_hash), timeout=0.15, attempts=6)
    final, status = [], []
    try:
        for x, b in zip(X, ref):
            if b == Decision.UNKNOWN:
                st, d = dev.defer(x)
                final.append(d if st == "ok" else 2)
            else:
                st = dev.report(x, int(b))
                final.append(int(b))
            status.append(0 if st == "ok" else 1)
    finally:
        dev.close()
        proxy.close()
        service.stop.set()
        thread.join(5)
        host = service.core.stats()
        service.core.log.close()
    counts = audit(log_path, 77, X, ref, dnn, final, status)
    assert counts["lost"] == 0 and counts["duplicates"] == 0
    assert host["frames_dropped"] > 0 and dev.stats["retries"] > 0
    with capsys.disabled():
        print(f"\n[python device, corrupting proxy] proxy={proxy.counts} device={dev.stats} "
              f"host_dropped={host['dropped']} audit={counts}")


@pytest.mark.qemu
@pytest.mark.slow
def test_corrupting_link_qemu(art, tmp_path, capsys):
    """The firmware under QEMU through the corrupting proxy (0.05% flips + 0.05% drops per byte)."""
    need_qemu_arm()
    from bnnembed.simulate import LinkSettings, compile_sim_firmware, run_sim_firmware

    X = load_data("digits").X[:200]
    ref, dnn = art.decide(X), art.load_dnn().says_yes(X).astype(int)
    log_path = str(tmp_path / "log.sqlite")
    session = 0x5EED
    elf = compile_sim_firmware(art, "mps2-an386", tmp_path, session=session,
                               link=LinkSettings(timeout_ms=300, attempts=5, report=True))
    service, thread = start_host(art, TcpListen("127.0.0.1", 0), log_path=log_path)
    proxy = FaultProxy(service.endpoint.port, flip_rate=0.0005, drop_rate=0.0005, seed=3)
    try:
        run = run_sim_firmware(elf, "mps2-an386", X, proxy.port, tmp_path)
    finally:
        proxy.close()
        service.stop.set()
        thread.join(5)
        host = service.core.stats()
        service.core.log.close()
    np.testing.assert_array_equal(run.bound, ref)
    counts = audit(log_path, session, X, ref, dnn, run.final, np.where(run.status <= 0, 0, 1))
    assert counts["lost"] == 0 and counts["duplicates"] == 0
    assert host["frames_dropped"] > 0
    with capsys.disabled():
        print(f"\n[qemu, corrupting proxy] proxy={proxy.counts} device_link={run.link} "
              f"host_dropped={host['dropped']} audit={counts}")


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _start_cli_host(art, port, log_path):
    proc = subprocess.Popen([sys.executable, "-m", "bnnembed", "host", art.path, "--tcp", f"127.0.0.1:{port}",
                             "--log", log_path], stdout=subprocess.PIPE, text=True)
    assert "tcp-listen" in proc.stdout.readline()
    return proc


def _wait_for_records(log_path: str, n: int, device: threading.Thread, timeout: float = 120) -> bool:
    """Poll the host's log until it holds n requests (True) or the device run has ended (False)."""
    import sqlite3

    deadline = time.monotonic() + timeout
    while device.is_alive() and time.monotonic() < deadline:
        try:
            with sqlite3.connect(f"file:{log_path}?mode=ro", uri=True, timeout=1) as db:
                if db.execute("SELECT COUNT(*) FROM requests").fetchone()[0] >= n:
                    return True
        except sqlite3.Error:
            pass  # the log does not exist yet, or is being created
        time.sleep(0.005)
    return False


@pytest.mark.qemu
@pytest.mark.slow
def test_host_killed_and_restarted_qemu(art, tmp_path, capsys):
    """`bnnembed host` is SIGKILLed in the middle of a QEMU run and restarted on the same port."""
    need_qemu_arm()
    from bnnembed.simulate import LinkSettings, compile_sim_firmware, run_sim_firmware

    X = load_data("digits").X[:300]
    ref, dnn = art.decide(X), art.load_dnn().says_yes(X).astype(int)
    log_path = str(tmp_path / "log.sqlite")
    session = 0xB007
    elf = compile_sim_firmware(art, "mps2-an386", tmp_path, session=session,
                               link=LinkSettings(timeout_ms=1000, attempts=10, report=True))
    port = _free_port()
    host = _start_cli_host(art, port, log_path)
    result = {}

    def device():
        result["run"] = run_sim_firmware(elf, "mps2-an386", X, port, tmp_path, timeout=300)

    t = threading.Thread(target=device)
    t.start()
    kills = 0
    try:
        for at in (len(X) // 5, len(X) // 2):  # kill twice, at set points of the run (by log progress)
            if not _wait_for_records(log_path, at, t):
                break
            host.send_signal(signal.SIGKILL)
            host.wait(10)
            kills += 1
            time.sleep(0.5)
            host = _start_cli_host(art, port, log_path)
        t.join(300)
    finally:
        host.terminate()
        out, _ = host.communicate(timeout=20)
    assert kills >= 1, "the run finished before the host could be killed"
    run = result["run"]
    counts = audit(log_path, session, X, ref, dnn, run.final, np.where(run.status <= 0, 0, 1))
    assert counts["lost"] == 0 and counts["duplicates"] == 0
    assert counts["undecided"] == 0 and counts["records"] == len(X)
    with DecisionLog(log_path, readonly=True) as log:
        runs = log.runs()
    assert len(runs) == kills + 1
    with capsys.disabled():
        print(f"\n[qemu, host killed x{kills}] device_link={run.link} audit={counts} "
              f"last_host={json.loads(out.strip().splitlines()[-1])}")
