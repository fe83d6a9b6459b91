"""The generated project's src/main.c, unchanged, under QEMU with its link UART on `bnnembed host`.

The example reads feature lines on its console (semihosting here, the serial monitor on a board),
decides with bnn_app_handle() (firmware/bnn_app.c), defers UNKNOWNs to the host over the CMSDK
UART, and prints the final answer. Every row must end with exactly one final decision: the
bounds' answer where they decided (scores equal numpy's), the DNN's where they did not, and the
host log must hold each request (deferral or report) exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from host_fixtures import make_host_artifact  # noqa: E402

from bnnembed.render.quantize import Encoding
from bnnembed.learn.data import load_data
from bnnembed.link.decision_log import DecisionLog
from bnnembed.model.intmodel import Decision
from bnnembed.device.qemu import numpy_reference
from bnnembed.device.simulate import compile_example_app, run_example_app
from _tools import need_qemu_arm  # noqa: E402



pytestmark = pytest.mark.qemu
ROWS = 200


def _start_cli_host(art_path, log_path):
    proc = subprocess.Popen([sys.executable, "-m", "bnnembed", "host", art_path, "--tcp", "127.0.0.1:0",
                             "--log", log_path], stdout=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    assert "tcp-listen 127.0.0.1:" in first, first
    port = int(first.split("tcp-listen 127.0.0.1:")[1].split(",")[0])
    return proc, port


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    """Fixture bounds that leave about half of the digits rows UNKNOWN: a busy link."""
    return make_host_artifact(tmp_path_factory.mktemp("example") / "digits")


@pytest.mark.parametrize("machine", ["mps2-an386", "mps2-an505"])
def test_generated_example_app_defers_to_bnnembed_host(art, machine, tmp_path, capsys):
    need_qemu_arm()
    X = load_data("digits").X[:ROWS]
    session = int.from_bytes(os.urandom(4), "little") | 1
    elf = compile_example_app(art, machine, tmp_path, session=session)
    log_path = str(tmp_path / "log.sqlite")
    host, port = _start_cli_host(art.path, log_path)
    try:
        run = run_example_app(elf, machine, X, port, tmp_path)
    finally:
        host.terminate()
        host.communicate(timeout=30)
    ref, su, sl = numpy_reference(art, X, Encoding.FLOAT)
    dnn = art.load_dnn().says_yes(X).astype(int)
    unknown = ref == Decision.UNKNOWN
    assert np.array_equal(run.upper, su) and np.array_equal(run.lower, sl)  # device bounds == numpy
    assert unknown.sum() > ROWS // 4  # the link is exercised
    expected_final = np.where(unknown, dnn, ref)
    assert np.array_equal(run.final, expected_final)  # one final decision per row, none undecided
    assert run.source == ["dnn" if u else "bnn" for u in unknown]
    with DecisionLog(log_path, readonly=True) as log:
        recs = [r for r in log.records() if r.session == session]
    assert [r.seq for r in recs] == list(range(1, ROWS + 1))  # every request exactly once
    assert sum(r.kind == "defer" for r in recs) == int(unknown.sum())
    for r in recs:
        i = r.seq - 1
        assert np.array_equal(r.features, X[i])
        assert r.kind == ("defer" if unknown[i] else "report")
        assert r.reference_decision == ref[i] and r.dnn_decision == dnn[i]
    with capsys.disabled():
        print(f"\n[example app, {machine}] rows={ROWS} decided_on_device={int((~unknown).sum())} "
              f"deferred={int(unknown.sum())} log_records={len(recs)} qemu_seconds={run.seconds:.1f}")
