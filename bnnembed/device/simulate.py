"""Simulated deployment: the generated firmware under QEMU, deferring to a host service over TCP.

``simulate`` compiles the generated model, the runtime, the deferral link
(``firmware/bnn_protocol.c``), the application logic of every generated project
(``firmware/bnn_app.c``: ``bnn_app_handle`` decides, defers UNKNOWNs, retries, reports) and the
CMSDK UART port (``firmware/bnn_uart_cmsdk.c``) around the driver
``firmware/test/bnn_defer_main.c``, which only reads rows and prints results, for a QEMU mps2 machine, starts a
:class:`~bnnembed.link.service.HostService` listening on 127.0.0.1, and runs QEMU with the UART attached
to it (``-chardev socket,...,reconnect=1 -serial chardev:...``). The rows reach the firmware
through semihosting (the stand-in for a sensor); every UNKNOWN row is deferred over the UART,
every decided row is reported, and the firmware prints what it ended with. The result has the
columns of ``bnnembed predict`` (``row,bound,final,source``), where ``final`` is the device's own
answer (source ``bnn``), the host's reply (``dnn``), ``undecided`` (``none``) when the link
gave no answer after every retry, or ``invalid`` (``none``) for a row with a NaN or infinite
feature, which the device decides INVALID itself, never defers, and reports.

QEMU runs without ``-icount`` here, so the link's timeouts and the measured round trips are in
real time (SysTick follows QEMU's virtual clock, which tracks the host clock).
"""

from __future__ import annotations

import csv
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BnnError
from ..link.protocol import LinkStatus, model_tag
from ..link.decision_log import default_log_path
from ..model.intmodel import Decision, invalid_rows
from ..render.c import row_word_defines
from ..render.quantize import Encoding, feeds_bytes, uint8_rows
from .app_codes import FinalDecision
from .machines import MACHINES, Machine, get_machine
from .qemu import qemu_exe, write_rows
from .toolchain import compile_elf, firmware_dir, write_model_build

#: QEMU machines whose UART0 is a CMSDK APB UART the firmware port drives: its base address and
#: the processor clock SysTick counts (``cmsdk_uart`` and ``cpu_hz`` in machines.toml).
SIM_UARTS = {m.name: (m.cmsdk_uart, m.cpu_hz) for m in MACHINES.values() if m.cmsdk_uart}
#: Sources every deferral build compiles besides the model and the runtime (firmware/ relative).
APP_SOURCES = ("bnn_protocol.c", "bnn_app.c", "bnn_uart_cmsdk.c")
SIM_SENTINEL = "BNN-SIM-DONE"
LINK_STATUS = {-1: "none", **{int(s): s.name.lower() for s in LinkStatus}}
FINAL_UNDECIDED = int(FinalDecision.UNDECIDED)  #: nobody answered an UNKNOWN
FINAL_INVALID = int(FinalDecision.INVALID)  #: a non-finite input, answered by nobody
#: The device's final value as ``predict`` writes it.
FINAL_LABELS = {int(f): f.label for f in FinalDecision}


@dataclass(frozen=True)
class LinkSettings:
    """How the device end of the link behaves (compiled in)."""

    timeout_ms: int = 1000
    attempts: int = 5
    report: bool = True  # report the device's own decisions so the host log is complete


@dataclass
class DeviceRun:
    """What the firmware printed: per row and the link's counters."""

    bound: np.ndarray  # Decision codes from the device's bounds
    status: np.ndarray  # link status per row (-1 nothing sent)
    final: np.ndarray  # 0 NO, 1 YES, 2 undecided, 3 invalid (FINAL_* below)
    round_trip_us: np.ndarray  # per row, 0 if nothing sent
    link: dict
    seconds: float


@dataclass
class SimulationResult:
    machine: str
    session: int
    run: DeviceRun
    summary: dict = field(default_factory=dict)


def sim_machine(name: str) -> Machine:
    m = get_machine(name)
    if name not in SIM_UARTS:
        raise BnnError(f"machine '{name}' has no UART port for the deferral link yet; "
                       f"use one of: {', '.join(SIM_UARTS)}")
    return m


def uart_defines(machine_name: str) -> dict[str, str]:
    """Defines placing the CMSDK UART port (firmware/bnn_uart_cmsdk.c) on ``machine_name``."""
    base, hz = SIM_UARTS[machine_name]
    return {"BNN_UART_BASE": f"{base:#x}u", "BNN_IO_CPU_HZ": f"{hz}u"}


def link_defines(link: LinkSettings, report_macro: str) -> dict[str, str]:
    """The device end of the link as compiled in (``report_macro``: the driver's report switch)."""
    return {report_macro: str(int(link.report)), "BNN_LINK_TIMEOUT_MS": f"{link.timeout_ms}u",
            "BNN_LINK_MAX_ATTEMPTS": f"{link.attempts}u"}


def compile_sim_firmware(artifact, machine_name: str, workdir, *, session: int,
                         link: LinkSettings = LinkSettings(), extra_cflags: tuple[str, ...] = (),
                         uint8_input: bool = False) -> Path:
    """Generate the model and compile the deferral driver for ``machine_name``; returns the ELF
    (``uint8_input``: rows are bytes, through bnn_app_handle_u8() and the uint8 frames)."""
    m = sim_machine(machine_name)
    work = Path(workdir)
    fw = firmware_dir()
    sources = write_model_build(artifact, work, Encoding.FLOAT)
    sources += [fw / n for n in APP_SOURCES] + [fw / "test" / "bnn_defer_main.c"]
    defines = {"BNN_MODEL_TAG": f"{model_tag(artifact.model_hash):#x}u", "BNN_SESSION": f"{session:#x}u",
               **uart_defines(machine_name), **link_defines(link, "BNN_SIM_REPORT"), **row_word_defines(artifact.model),
               **({"BNN_TEST_INPUT_UINT8": "1"} if uint8_input else {})}
    return compile_elf(m, sources, work / "sim.elf", include_dirs=(work, fw), defines=defines,
                       extra_cflags=extra_cflags, what="the deferral firmware")


def qemu_link_command(machine_name: str, elf: Path, out_file: Path, port: int) -> list[str]:
    m = sim_machine(machine_name)
    exe = qemu_exe(m)
    return [
        exe, *m.qemu_args, "-display", "none", "-monitor", "none",
        "-chardev", f"socket,id=link,host=127.0.0.1,port={port},reconnect=1,nodelay=on",
        "-serial", "chardev:link",
        "-chardev", f"file,id=bnnout,path={out_file}",
        "-semihosting-config", "enable=on,target=native,chardev=bnnout",
        "-kernel", str(elf),
    ]


def _run_linked_qemu(machine_name: str, elf: Path, work: Path, out_name: str, port: int, n_rows: int,
                     what: str, timeout: float | None) -> tuple[subprocess.CompletedProcess, str, float]:
    """Run QEMU with the UART linked to 127.0.0.1:port under a timeout; returns (process, output, seconds)."""
    out_file = work / out_name
    if out_file.exists():
        out_file.unlink()
    if timeout is None:
        timeout = 120.0 + 0.5 * n_rows
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(qemu_link_command(machine_name, elf, out_file, port), cwd=work, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BnnError(f"{machine_name}: the {what} did not finish within {timeout:.0f} s (QEMU killed)") from None
    seconds = time.perf_counter() - t0
    return proc, (out_file.read_text() if out_file.exists() else ""), seconds


def run_sim_firmware(elf: Path, machine_name: str, X: np.ndarray, port: int, workdir,
                     timeout: float | None = None, uint8_input: bool = False) -> DeviceRun:
    """Run the deferral firmware on the rows of ``X`` with its UART connected to 127.0.0.1:``port``
    (as bytes with ``uint8_input``: the firmware must have been compiled so)."""
    work = Path(workdir)
    X = np.ascontiguousarray(X, dtype=np.float32)
    write_rows(work / "bnn_rows.bin", uint8_rows(X) if uint8_input else X, Encoding.FLOAT)
    proc, text, seconds = _run_linked_qemu(machine_name, elf, work, "sim_out.txt", port, len(X), "firmware", timeout)
    if f"{SIM_SENTINEL} rows={len(X)}" not in text:
        tail = "\n".join((text + proc.stderr).strip().splitlines()[-6:])
        raise BnnError(f"firmware on {machine_name} did not finish (exit {proc.returncode}, no {SIM_SENTINEL}):\n{tail}")
    rows = np.array([[int(v) for v in line.split()[1:]] for line in text.splitlines() if line.startswith("R ")],
                    dtype=np.int64).reshape(-1, 5)
    if rows.shape[0] != len(X) or np.any(rows[:, 0] != np.arange(len(X))):
        raise BnnError(f"firmware on {machine_name} printed {rows.shape[0]} result lines for {len(X)} rows")
    (lline,) = [line for line in text.splitlines() if line.startswith("L ")]
    keys = ("requests", "retries", "no_reply", "refused", "stale", "rx_frames_ok", "rx_frames_dropped")
    link = dict(zip(keys, (int(v) for v in lline.split()[1:])))
    return DeviceRun(rows[:, 1].astype(np.int8), rows[:, 2], rows[:, 3], rows[:, 4], link, seconds)


# ------------------------------------------------------------------ the generated example app

APP_SENTINEL = "BNN-APP-DONE"


@dataclass
class ExampleRun:
    """What the generated example printed on its console, one entry per feature line."""

    final: np.ndarray  # 0 NO, 1 YES, 2 undecided ("unknown" after every retry), 3 invalid
    source: list  # "bnn", "dnn" or "none"
    upper: np.ndarray
    lower: np.ndarray
    seconds: float


def compile_example_app(artifact, machine_name: str, workdir, *, session: int, board: str = "nucleo_f401re",
                        link: LinkSettings = LinkSettings()) -> Path:
    """Compile the generated PlatformIO project's ``src/main.c`` unchanged for a QEMU machine.

    The project is written by :func:`~bnnembed.render.project.write_board_project` for ``board``; its
    sources (main.c, the model, the runtime library with the link and ``bnn_app.c``) are built
    with the QEMU port ``firmware/test/bnn_port_semihost.c`` (console over semihosting) and the
    CMSDK UART link ``firmware/bnn_uart_cmsdk.c`` in place of the board's framework port.
    """
    from ..render.project import RUNTIME_LIBRARY, write_board_project
    from .boards import get_board

    m = sim_machine(machine_name)
    work = Path(workdir)
    project = work / "project"
    brd = get_board(board)
    write_board_project(artifact.model, brd, project, Encoding.FLOAT)
    fw = firmware_dir()
    lib = project / "lib" / RUNTIME_LIBRARY / "src"
    sources = [project / "src" / "main.c", project / "src" / "bnn_model.c", *sorted(lib.glob("*.c")),
               fw / "test" / "bnn_port_semihost.c", fw / "bnn_uart_cmsdk.c"]
    defines = {"BNN_POPCOUNT_STRATEGY": int(brd.popcount), "BNN_SESSION": f"{session:#x}u",
               **uart_defines(machine_name), **link_defines(link, "BNN_APP_REPORT"),
               **row_word_defines(artifact.model)}
    return compile_elf(m, sources, work / "app.elf", include_dirs=(project / "src", lib), defines=defines,
                       what="the example application")


def run_example_app(elf: Path, machine_name: str, X: np.ndarray, port: int, workdir,
                    timeout: float | None = None) -> ExampleRun:
    """Type the rows of ``X`` into the example's console; its link UART connects to 127.0.0.1:``port``."""
    work = Path(workdir)
    X = np.asarray(X, dtype=np.float32)
    # %.9g round-trips every float32 through the firmware's strtof
    (work / "bnn_console.txt").write_text("".join(",".join(f"{float(v):.9g}" for v in row) + "\n" for row in X))
    proc, text, seconds = _run_linked_qemu(machine_name, elf, work, "app_out.txt", port, len(X), "example", timeout)
    lines = text.splitlines()
    if APP_SENTINEL not in lines or not lines[0].startswith("bnnembed ready"):
        tail = "\n".join((lines + proc.stderr.splitlines())[-6:])
        raise BnnError(f"example on {machine_name} did not finish (exit {proc.returncode}, no {APP_SENTINEL}):\n{tail}")
    results = lines[1:lines.index(APP_SENTINEL)]
    if len(results) != len(X):
        raise BnnError(f"example on {machine_name} printed {len(results)} result lines for {len(X)} rows")
    codes = {"no": 0, "yes": 1, "unknown": FINAL_UNDECIDED, "invalid": FINAL_INVALID}
    final, source, upper, lower = [], [], [], []
    for line in results:
        parts = line.split()
        if parts[0] not in codes or len(parts) not in (3, 4):
            raise BnnError(f"example on {machine_name} printed an unexpected line: {line!r}")
        final.append(codes[parts[0]])
        upper.append(int(parts[1]))
        lower.append(int(parts[2]))
        source.append("dnn" if len(parts) == 4 else ("none" if parts[0] in ("unknown", "invalid") else "bnn"))
    return ExampleRun(np.array(final), source, np.array(upper), np.array(lower), seconds)


def write_simulation_csv(run: DeviceRun, path: str) -> None:
    """Same columns as ``bnnembed predict``: row, bound, final, source."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "bound", "final", "source"])
        for i, (b, f) in enumerate(zip(run.bound, run.final)):
            final = FINAL_LABELS.get(int(f), "undecided")
            source = "none" if f in (FINAL_UNDECIDED, FINAL_INVALID) else ("dnn" if b == Decision.UNKNOWN else "bnn")
            w.writerow([i, Decision(int(b)).label, final, source])


def summarize(artifact, X: np.ndarray, run: DeviceRun, machine: str, dnn_yes: np.ndarray | None = None) -> dict:
    """Counts the issue asks for: decided on device, deferred, agreement, undecided, invalid, round trips.

    The DNN runs only on rows with finite features (``dnn_yes`` is read on those alone): a row
    with a NaN or an infinity has no yes/no from anyone.
    """
    unknown = run.bound == Decision.UNKNOWN
    decided = (run.bound == Decision.NO) | (run.bound == Decision.YES)
    answered = unknown & (run.final != FINAL_UNDECIDED)
    reference = artifact.decide(X)
    valid = ~invalid_rows(X)
    if dnn_yes is None:
        dnn_yes = np.zeros(len(X), dtype=bool)
        if valid.any():
            dnn_yes[valid] = artifact.load_dnn().says_yes(np.asarray(X)[valid])
    dnn = np.asarray(dnn_yes, dtype=np.int64)
    defer_rtt = run.round_trip_us[answered]
    return {
        "machine": machine,
        "rows": int(len(X)),
        "decided_on_device": int(decided.sum()),
        "deferred": int(unknown.sum()),
        "answered_by_host": int(answered.sum()),
        "undecided": int((run.final == FINAL_UNDECIDED).sum()),
        "invalid": int((run.final == FINAL_INVALID).sum()),
        "invalid_inputs": int((~valid).sum()),
        "device_bounds_match_numpy": int((run.bound == reference).sum()),
        "deferred_agree_with_dnn": int((run.final[answered] == dnn[answered]).sum()),
        "decided_agree_with_dnn": int((run.final[decided] == dnn[decided]).sum()),
        "reports_unacknowledged": int(((~unknown) & (run.status > 0)).sum()),
        "link": run.link,
        "deferral_round_trip_ms_median": round(float(np.median(defer_rtt)) / 1000, 3) if defer_rtt.size else None,
        "deferral_round_trip_ms_p90": round(float(np.percentile(defer_rtt, 90)) / 1000, 3) if defer_rtt.size else None,
        "qemu_seconds": round(run.seconds, 3),
    }


def simulate(artifact_dir: str, *, machine: str, data: str | None = None, label: str = "label",
             positive: str | None = None, rows: int | None = None,
             out: str | None = None, log_path: str | None = None, report: bool = True,
             link: LinkSettings | None = None, workdir: str | None = None,
             X: np.ndarray | None = None) -> SimulationResult:
    """Run the firmware on the rows of ``data`` under QEMU against an in-process host service.

    ``X`` (raw rows, float32) replaces ``data``: the loaders refuse NaN and infinite features,
    and this is how rows the device must decide INVALID reach it (tests, replayed sensor logs).
    """
    from ..artifact import load_artifact
    from ..link.endpoints import TcpListen
    from ..link.service import start_host

    art = load_artifact(artifact_dir)
    sim_machine(machine)
    if X is None:
        if data is None:
            raise BnnError("simulate needs rows: a data source or X")
        X = art.load_rows(data, label=label, positive=positive).X
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != art.encoder.n_features:
            raise BnnError(f"X has shape {X.shape}; the model expects rows of {art.encoder.n_features} features")
    X = X if rows is None else X[:rows]
    link = link or LinkSettings(report=report)
    session = int.from_bytes(os.urandom(4), "little") | 1
    with tempfile.TemporaryDirectory(prefix="bnnembed-sim-") as tmp:
        work = Path(workdir or tmp)
        uint8_input = feeds_bytes(art, X)  # pixels: decided and deferred as bytes
        elf = compile_sim_firmware(art, machine, work, session=session, link=link, uint8_input=uint8_input)
        service, thread = start_host(art, TcpListen("127.0.0.1", 0), log_path=log_path)
        try:
            run = run_sim_firmware(elf, machine, X, service.endpoint.port, work, uint8_input=uint8_input)
        finally:
            service.stop.set()
            thread.join(10)
            host_stats = service.core.stats()
            log = service.core.log
            n_records = log.db.execute("SELECT COUNT(*), SUM(kind='defer') FROM requests WHERE session=?",
                                       (session,)).fetchone()
            log.close()
    summary = summarize(art, X, run, machine)
    summary.update(session=session, input="uint8" if uint8_input else "float", host=host_stats, log_records=int(n_records[0]),
                   log_deferrals=int(n_records[1] or 0), log=log_path or default_log_path(art.path))
    if out:
        write_simulation_csv(run, out)
    return SimulationResult(machine, session, run, summary)
