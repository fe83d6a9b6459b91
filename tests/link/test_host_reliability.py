"""A host that survives real boards: a serial port that vanishes and comes back, several devices
at once over a corrupting link with the host killed and restarted, silent clients.

Every run is audited against the log (tests/_link_audit.py): nothing lost, duplicated or misread.
"""

from __future__ import annotations

import os
import select
import sys
import time
import tty

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _fake_device import FakeDevice  # noqa: E402
from _link_audit import audit, run_devices, run_rows  # noqa: E402
from host_fixtures import make_host_artifact  # noqa: E402

from bnnembed.link import protocol as P  # noqa: E402
from bnnembed.learn.data import load_data  # noqa: E402
from bnnembed.link.decision_log import DecisionLog  # noqa: E402
from bnnembed.link.endpoints import SerialPort, TcpListen  # noqa: E402
from bnnembed.link.service import start_host  # noqa: E402
from bnnembed.model.intmodel import Decision  # noqa: E402


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    return make_host_artifact(tmp_path_factory.mktemp("reliability") / "bc", source="breast_cancer")


# --------------------------------------------------------------------------------------------
# serial: a pty that disappears and comes back
# --------------------------------------------------------------------------------------------


class PtyDevice(FakeDevice):
    """The fake device on the master side of a pty; the host opens the slave through a symlink,
    as it would open /dev/ttyACM0. ``unplug()`` closes the pty (the host's port vanishes),
    ``plug()`` makes a new one behind the same path (a board back after a reset)."""

    def __init__(self, link_path: str, **kw) -> None:
        super().__init__(0, **kw)
        self.link_path = link_path
        self.master: int | None = None
        self.plug()

    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        tmp = self.link_path + ".new"
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.link_path)
        os.close(slave)
        self.master = master

    def unplug(self) -> None:
        if self.master is not None:
            os.close(self.master)
            self.master = None

    def _connect(self) -> bool:
        return self.master is not None

    def _connected(self) -> bool:
        return self.master is not None

    def _drop(self) -> None:
        pass  # the pty stays; only unplug() removes it

    def _send(self, data: bytes) -> None:
        try:
            os.write(self.master, data)
        except OSError:
            pass

    def _recv(self, timeout: float) -> bytes | None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(self.master, 4096)
        except OSError:  # nobody has the slave open (the host is reopening): nothing to read
            time.sleep(min(timeout, 0.02))
            return b""


def test_serial_port_vanishing_three_times(art, tmp_path, capsys):
    X = load_data("breast_cancer").X[:240]
    ref, dnn = art.decide(X), art.load_dnn().says_yes(X).astype(int)
    link = str(tmp_path / "ttyDEVICE")
    dev = PtyDevice(link, session=31, model_tag=P.model_tag(art.model_hash), timeout=0.3, attempts=40)
    log_path = str(tmp_path / "log.sqlite")
    service, thread = start_host(art, SerialPort(link, 115200, backoff=0.05, max_backoff=0.4), log_path=log_path)
    final, status, answered_after = [], [], []
    try:
        for part, rows in enumerate(np.array_split(np.arange(len(X)), 4)):
            if part:  # the port goes away and comes back (a board reset)
                dev.unplug()
                time.sleep(0.5)
                assert thread.is_alive(), "the host died with its port"
                dev.plug()
            f, s = run_rows(dev, X[rows], ref[rows])
            final += f
            status += s
            answered_after.append(sum(1 for i, st in zip(rows, s) if st == 0 and ref[i] == Decision.UNKNOWN))
    finally:
        service.stop.set()
        thread.join(10)
        dev.unplug()
        stats = service.core.stats()
        service.core.log.close()
    counts = audit(log_path, 31, X, ref, dnn, final, status)
    assert counts["lost"] == 0 and counts["duplicates"] == 0 and counts["undecided"] == 0
    assert all(n > 0 for n in answered_after), answered_after  # deferrals answered after each return
    assert stats["port_reopens"] == 3
    with DecisionLog(log_path, readonly=True) as log:
        kinds = [e["kind"] for e in log.events()]
    assert kinds.count("lost") == 3 and kinds.count("back") == 3
    with capsys.disabled():
        print(f"\n[serial, port gone 3 times] audit={counts} deferrals answered per segment={answered_after} "
              f"gaps={stats['link_gap_seconds']:.2f} s in all")


def test_serial_port_missing_at_start_is_one_line(art, tmp_path, capsys):
    from bnnembed.cli import main

    assert main(["host", art.path, "--serial", str(tmp_path / "no-such-tty"), "--log",
                 str(tmp_path / "l.sqlite")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot open serial port") and "\n" not in err


# --------------------------------------------------------------------------------------------
# TCP: several devices at once, a corrupting link, the host killed and restarted
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_four_devices_corrupting_link_host_restarted(art, tmp_path, capsys):
    run = run_devices(art, 4, 250, 0.002, str(tmp_path / "log.sqlite"), restart_after=2.0)
    for a in run["audits"]:
        assert a["lost"] == 0 and a["duplicates"] == 0 and a["undecided"] == 0
    assert run["restarted"]
    with DecisionLog(str(tmp_path / "log.sqlite"), readonly=True) as log:
        assert {r.session for r in log.records()} == {100, 101, 102, 103}
    with capsys.disabled():
        print(f"\n[4 devices, 0.2% bytes flipped, host restarted] {run['requests_per_second']:.0f} req/s, "
              f"audits={run['audits']}")


def test_devices_are_served_at_once(art, tmp_path):
    """A silent client does not block the others, and idles out."""
    import socket

    service, thread = start_host(art, TcpListen("127.0.0.1", 0), log_path=str(tmp_path / "log.sqlite"),
                                 idle_timeout=2.0)
    try:
        silent = socket.create_connection(("127.0.0.1", service.endpoint.port))
        X = load_data("breast_cancer").X[:20]
        ref = art.decide(X)
        devs = [FakeDevice(service.endpoint.port, session=200 + k, model_tag=P.model_tag(art.model_hash),
                           timeout=0.5, attempts=3) for k in range(3)]
        for d in devs:  # each answered while the silent client (and the other devices) stay connected
            final, status = run_rows(d, X[:5], ref[:5])
            assert status == [0] * 5
        assert service.core.stats()["max_concurrent_connections"] >= 2
        silent.settimeout(30)
        assert silent.recv(1) == b""  # the silent client is closed by the idle timeout
        assert service.core.stats()["idle_timeouts"] >= 1
        for d in devs:
            d.close()
    finally:
        service.stop.set()
        thread.join(10)
        service.core.log.close()


def test_host_cli_prints_its_summary_on_max_seconds(art, tmp_path):
    import json
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "bnnembed", "host", art.path, "--tcp", "127.0.0.1:0", "--log",
                           str(tmp_path / "l.sqlite"), "--max-seconds", "1"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "frames_ok" in stats and "Traceback" not in proc.stderr
