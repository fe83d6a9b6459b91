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
from _link_audit import audit  # noqa: E402
from host_fixtures import make_host_artifact  # noqa: E402

from bnnembed.link import protocol as P  # noqa: E402
from bnnembed.learn.data import load_data  # noqa: E402
from bnnembed.link.decision_log import DecisionLog  # noqa: E402
from bnnembed.link.endpoints import TcpListen  # noqa: E402
from bnnembed.link.service import start_host  # noqa: E402
from bnnembed.model.intmodel import Decision  # noqa: E402
from _tools import need_qemu_arm  # noqa: E402


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    return make_host_artifact(tmp_path_factory.mktemp("faults") / "digits")


# ------------------------------------------------------------------ references computed here


def bounds_direct(art, X) -> np.ndarray:
    """The bound pair's decisions computed here from the artifact's arrays, with unpacked bits
    and plain sums (not bnnembed.model.intmodel's packed popcount): thermometer bit k of a feature is
    float32(x) >= threshold k; a neuron fires iff its agreement count (inputs equal to its
    weight bits) reaches its threshold; YES iff only the upper bound answers, NO iff only the
    lower one, else UNKNOWN; a row with a non-finite feature is INVALID."""
    X = np.asarray(X, dtype=np.float32)
    enc = art.encoder
    owner = np.repeat(np.arange(len(enc.feature_index)), np.diff(enc.offsets))
    bits = (X[:, enc.feature_index[owner]] >= enc.thresholds[None, :]).astype(np.int64)

    def answers(net):
        a = bits
        for layer in net.layers:
            j = np.arange(layer.n_in)
            w = ((layer.weights[:, j // 32] >> (j % 32).astype(np.uint32)) & 1).astype(np.int64)
            agree = (a[:, None, :] == w[None, :, :]).sum(-1)
            a = (agree >= layer.thresholds[None, :]).astype(np.int64)
        return a[:, 0] == 1

    up, lo = answers(art.upper), answers(art.lower)
    out = np.where(up & ~lo, int(Decision.YES), np.where(lo & ~up, int(Decision.NO), int(Decision.UNKNOWN)))
    out[~np.isfinite(X).all(axis=1)] = int(Decision.INVALID)
    return out


def dnn_direct(art, X) -> np.ndarray:
    """The artifact's DNN run straight through onnxruntime (not the host's DNN): 0/1 per row."""
    import onnxruntime as ort

    d = art.manifest["dnn"]
    assert d["file"].endswith(".onnx") and d.get("output", "logit") == "logit", d
    sess = ort.InferenceSession(os.path.join(art.path, d["file"]), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(X, dtype=np.float32)})[0]
    return (out.reshape(len(X)) > 0).astype(int)


def check_link(log_path, session, X, ref, dnn, final, status, *, max_unanswered: int) -> dict:
    """audit()'s invariants, and what it leaves out:

    - at most ``max_unanswered`` rows end undecided, and at most that many are missing from the
      log (a host that never answers leaves every UNKNOWN row undecided);
    - every logged record agrees with references computed here, not with the log itself: a
      REPORT's device_decision and reference_decision equal the bounds' decision, every
      dnn_decision equals the DNN run directly, a DEFER's reply carries it.

    ``ref`` and ``dnn`` must come from :func:`bounds_direct` and :func:`dnn_direct`."""
    counts = audit(log_path, session, X, ref, dnn, final, status)
    assert counts["lost"] == 0 and counts["duplicates"] == 0
    assert counts["undecided"] <= max_unanswered, f"{counts['undecided']} rows undecided (allowed {max_unanswered})"
    with DecisionLog(log_path, readonly=True) as log:
        recs = [r for r in log.records() if r.session == session]
    missing = len(X) - len({r.seq for r in recs})
    assert missing <= max_unanswered, f"{missing} rows missing from the log (allowed {max_unanswered})"
    for r in recs:
        i = r.seq - 1
        assert r.dnn_decision == int(dnn[i]), f"row {i}: logged dnn_decision {r.dnn_decision}, DNN says {dnn[i]}"
        assert r.reference_decision == int(ref[i]), f"row {i}: logged reference_decision differs from numpy"
        if r.kind == "report":
            assert r.device_decision == int(ref[i]), f"row {i}: logged device_decision {r.device_decision}, numpy {ref[i]}"
            assert r.reply_type == P.MsgType.ACK
        else:
            assert ref[i] == Decision.UNKNOWN and r.device_decision is None
            assert (r.reply_type, r.reply_value) == (P.MsgType.DECISION, int(dnn[i]))
    return {**counts, "missing_from_log": missing}


def run_python_device(art, port, X, ref, *, session, timeout=0.05, attempts=8, misreport=False):
    """The Python device on the rows: UNKNOWN rows deferred, the others reported (their final is
    the device's own). Returns (final, status, device)."""
    dev = FakeDevice(port, session=session, model_tag=P.model_tag(art.model_hash), timeout=timeout, attempts=attempts)
    final, status = [], []
    try:
        for x, b in zip(X, ref):
            if b == Decision.UNKNOWN:
                st, d = dev.defer(x)
                final.append(d if st == "ok" else 2)
            else:
                st = dev.report(x, 1 - int(b) if misreport else int(b))
                final.append(int(b))
            status.append(0 if st == "ok" else 1)
    finally:
        dev.close()
    return np.array(final), np.array(status), dev


def _python_device_run(art, tmp_path, n_rows, rate, seed=7):
    X = load_data("digits").X[:n_rows]
    ref, dnn = bounds_direct(art, X), dnn_direct(art, X)
    np.testing.assert_array_equal(ref, art.decide(X))
    assert (ref == Decision.UNKNOWN).sum() > n_rows // 10 and (ref != Decision.UNKNOWN).sum() > n_rows // 10
    log_path = str(tmp_path / "log.sqlite")
    service, thread = start_host(art, TcpListen("127.0.0.1", 0), log_path=log_path)
    proxy = FaultProxy(service.endpoint.port, flip_rate=rate, drop_rate=rate, seed=seed)
    try:
        final, status, dev = run_python_device(art, proxy.port, X, ref, session=77)
    finally:
        proxy.close()
        service.stop.set()
        thread.join(5)
        host = service.core.stats()
        service.core.log.close()
    return X, ref, dnn, final, status, log_path, host, proxy, dev


def test_clean_link_python_device(art, tmp_path):
    """Without corruption every row is answered and logged once, matching the references."""
    X, ref, dnn, final, status, log_path, host, _, dev = _python_device_run(art, tmp_path, 1000, 0.0)
    counts = check_link(log_path, 77, X, ref, dnn, final, status, max_unanswered=0)
    assert counts["records"] == len(X) and status.sum() == 0 and dev.stats["retries"] == 0


@pytest.mark.parametrize("n_rows", [200, pytest.param(1000, marks=pytest.mark.slow)])
def test_corrupting_link_python_device(art, tmp_path, capsys, n_rows):
    """Requests through a proxy flipping and dropping 0.1% of bytes each way (no QEMU): at most
    1% of the rows end undecided or unlogged, and every record matches the references."""
    X, ref, dnn, final, status, log_path, host, proxy, dev = _python_device_run(art, tmp_path, n_rows, 0.001)
    counts = check_link(log_path, 77, X, ref, dnn, final, status, max_unanswered=len(X) // 100)
    assert host["frames_dropped"] > 0 and dev.stats["retries"] > 0
    with capsys.disabled():
        print(f"\n[python device, corrupting proxy, {n_rows} rows] proxy={proxy.counts} device={dev.stats} "
              f"host_dropped={host['dropped']} audit={counts}")


class MuteHost:
    """A host that accepts connections and reads every byte but never writes a reply. With
    ``log`` it even hands the bytes to a real HostCore, so every request is logged (as if each
    reply were lost on the way back); without, it logs nothing."""

    def __init__(self, art, log_path, log: bool) -> None:
        from bnnembed.link.host import HostCore

        self.core = HostCore(art, DecisionLog(log_path)) if log else None
        if not log:
            DecisionLog(log_path).close()  # an empty log, so the audit reads it
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.bytes_read = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            reader = self.core.new_connection() if self.core else None
            conn.settimeout(0.1)
            with conn:
                while not self.stop.is_set():
                    try:
                        data = conn.recv(4096)
                    except socket.timeout:
                        continue
                    if not data:
                        break
                    self.bytes_read += len(data)
                    if self.core:
                        self.core.feed(data, reader)  # the reply bytes are dropped

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()
        if self.core:
            self.core.log.close()


@pytest.mark.parametrize("logs", [False, True], ids=["silent", "logs-but-never-replies"])
def test_audit_detects_a_host_that_never_replies(art, tmp_path, logs):
    """Control: a host that reads every request and never answers must fail check_link (every
    UNKNOWN row ends undecided), even when it logs every request."""
    X = load_data("digits").X[:60]
    ref, dnn = bounds_direct(art, X), dnn_direct(art, X)
    assert (ref == Decision.UNKNOWN).sum() >= 5
    log_path = str(tmp_path / "log.sqlite")
    host = MuteHost(art, log_path, log=logs)
    try:
        final, status, dev = run_python_device(art, host.port, X, ref, session=77, timeout=0.02, attempts=2)
    finally:
        host.close()
    assert host.bytes_read > 0 and dev.stats["no_reply"] == len(X)
    with pytest.raises(AssertionError, match="undecided"):
        check_link(log_path, 77, X, ref, dnn, final, status, max_unanswered=len(X) // 100)


def test_audit_detects_a_misreported_decision(art, tmp_path):
    """Control: a device that reports the opposite of its bounds' decision (its final rows still
    right) must fail check_link on the logged device_decision."""
    X = load_data("digits").X[:40]
    ref, dnn = bounds_direct(art, X), dnn_direct(art, X)
    log_path = str(tmp_path / "log.sqlite")
    service, thread = start_host(art, TcpListen("127.0.0.1", 0), log_path=log_path)
    try:
        final, status, _ = run_python_device(art, service.endpoint.port, X, ref, session=77, misreport=True)
    finally:
        service.stop.set()
        thread.join(5)
        service.core.log.close()
    with pytest.raises(AssertionError, match="device_decision"):
        check_link(log_path, 77, X, ref, dnn, final, status, max_unanswered=0)


@pytest.mark.qemu
@pytest.mark.slow
def test_corrupting_link_qemu(art, tmp_path, capsys):
    """The firmware under QEMU through the corrupting proxy (0.05% flips + 0.05% drops per byte)."""
    need_qemu_arm()
    from bnnembed.device.simulate import LinkSettings, compile_sim_firmware, run_sim_firmware

    X = load_data("digits").X[:200]
    ref, dnn = bounds_direct(art, X), dnn_direct(art, X)
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
    counts = check_link(log_path, session, X, ref, dnn, run.final, np.where(run.status <= 0, 0, 1),
                        max_unanswered=len(X) // 100)
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
    from bnnembed.device.simulate import LinkSettings, compile_sim_firmware, run_sim_firmware

    X = load_data("digits").X[:300]
    ref, dnn = bounds_direct(art, X), dnn_direct(art, X)
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
    np.testing.assert_array_equal(run.bound, ref)
    counts = check_link(log_path, session, X, ref, dnn, run.final, np.where(run.status <= 0, 0, 1), max_unanswered=0)
    assert counts["undecided"] == 0 and counts["records"] == len(X)
    with DecisionLog(log_path, readonly=True) as log:
        runs = log.runs()
    assert len(runs) == kills + 1
    with capsys.disabled():
        print(f"\n[qemu, host killed x{kills}] device_link={run.link} audit={counts} "
              f"last_host={json.loads(out.strip().splitlines()[-1])}")
