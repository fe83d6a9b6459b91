"""Run the generated C under QEMU (or on the host) and compare it with the numpy reference.

The same generated sources that go into a PlatformIO project (``bnn_model.[ch]`` plus the
runtime in ``firmware/``) are compiled with the Debian cross-compiler of a QEMU machine's core,
around the test driver ``firmware/test/bnn_test_main.c``. The driver reads the rows through
semihosting (``bnn_rows.bin`` in the run directory, so no batching is needed whatever the
machine's memory), prints one line per row with the decision, both bound scores and the
instruction counts, and ends on the sentinel ``BNN-TEST-DONE``. QEMU always runs under a timeout.

Instruction counts are deterministic: QEMU runs with ``-icount shift=N,align=off,sleep=off`` so
virtual time advances by ``2**N`` ns per guest instruction. On Cortex-M the driver reads SysTick
(24-bit, core clock; ``N`` is chosen per machine so one instruction is at least one tick) around
the encoder and the bounds, and a calibration loop of exactly 200,000 instructions converts
ticks into instructions. On RISC-V it reads ``instret`` (exact). These are *instructions*, not
cycles.

:func:`run_on_qemu` is the library entry point (``bnnembed predict --engine qemu`` and
``bnnembed qemu`` use it); :func:`check_against_numpy` adds the comparison and the report. The
machines are data (:mod:`bnnembed.device.machines`), compiling is :mod:`bnnembed.device.toolchain`,
the sizes come from the ELF (:mod:`bnnembed.device.elf`); their names are also importable from here.
"""

from __future__ import annotations

import os
import struct
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BnnError
from ..model.intmodel import Decision, bound_scores, combine, invalid_rows
from ..render.c import PopcountStrategy, deployed_macs, row_word_defines
from ..render.quantize import Encoding, encode_int16, quantize_int16, uint8_rows
from .elf import Sizes, elf_sizes
from .machines import Machine, get_machine
from .toolchain import compile_elf, firmware_dir, require_tool, write_model_build

SENTINEL = "BNN-TEST-DONE"
SCORE_NONE = -1  #: BNN_SCORE_NONE (firmware/bnn.h): the score of an INVALID row, whose bounds never ran
CALIBRATION_INSTRUCTIONS = 200_000


# --------------------------------------------------------------------------------------------
# build
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildOptions:
    """How the test firmware is compiled."""

    encoding: Encoding = Encoding.FLOAT
    opt: str = "-O2"
    popcount: PopcountStrategy = PopcountStrategy.SWAR
    extra_cflags: tuple[str, ...] = ()
    row_words: tuple[int, ...] | None = None  # BNN_ROW_WORDS_<i> to name (None: the model's rows)
    uint8_input: bool = False  # rows go in as bytes, through bnn_decide_u8() (whole numbers 0..255)

    @property
    def input(self) -> str:
        """What the device is fed: ``uint8``, or the encoding's own (``float``, ``int16``)."""
        return "uint8" if self.uint8_input else Encoding(self.encoding).value


def compile_firmware(artifact, machine: Machine, workdir: str | os.PathLike,
                     options: BuildOptions = BuildOptions()) -> Path:
    """Generate the model sources into ``workdir`` and compile the test driver; returns the ELF."""
    work = Path(workdir)
    sources = write_model_build(artifact, work, options.encoding, options.popcount.by_columns)
    sources.append(firmware_dir() / "test" / "bnn_test_main.c")
    rows = (row_word_defines(artifact.model) if options.row_words is None
            else {f"BNN_ROW_WORDS_{i}": f"{w}u" for i, w in enumerate(options.row_words)})
    if options.uint8_input:
        rows["BNN_TEST_INPUT_UINT8"] = 1
    return compile_elf(machine, sources, work / "fw.elf", include_dirs=(work, firmware_dir()),
                       defines={"BNN_POPCOUNT_STRATEGY": int(options.popcount), **rows}, opt=options.opt,
                       extra_cflags=options.extra_cflags)


# --------------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------------


@dataclass
class QemuRun:
    """What the device computed for every row, and how much it cost."""

    machine: str
    decisions: np.ndarray  # int8 Decision codes
    upper_scores: np.ndarray
    lower_scores: np.ndarray
    encode_instructions: np.ndarray  # per row (float; NaN without a counter)
    bounds_instructions: np.ndarray
    sizes: Sizes | None
    elf: str = ""


def write_rows(path: Path, X: np.ndarray, encoding: Encoding) -> None:
    """The test drivers' row file: two uint32 (rows, bytes per value), then the values (uint8
    rows as bytes whatever the encoding, else float32 or int16 by ``encoding``)."""
    if X.dtype == np.uint8:
        data = np.ascontiguousarray(X)
        size = 1
    elif encoding is Encoding.FLOAT:
        data = np.ascontiguousarray(X, dtype="<f4")
        size = 4
    else:
        data = np.ascontiguousarray(X, dtype="<i2")
        size = 2
    with open(path, "wb") as fh:
        fh.write(struct.pack("<II", data.shape[0], size))
        fh.write(data.tobytes())


def qemu_exe(machine: Machine) -> str:
    """Path of the machine's emulator, or an error naming its apt package."""
    return require_tool(machine.qemu, machine.qemu_package)


def qemu_command(machine: Machine, elf: Path, out_file: Path) -> list[str]:
    exe = qemu_exe(machine)
    return [
        exe, *machine.qemu_args, "-display", "none", "-monitor", "none", "-serial", "none",
        "-chardev", f"file,id=bnnout,path={out_file}",
        "-semihosting-config", "enable=on,target=native,chardev=bnnout",
        "-icount", f"shift={machine.icount_shift},align=off,sleep=off",
        "-kernel", str(elf),
    ]


def _calibration(text: str, machine: Machine) -> tuple[float, int] | None:
    """``(ticks per instruction, ticks of an empty measurement)`` from a driver's calibration line
    (firmware/test/bnn_test_counter.h), or None when the machine has no usable counter."""
    cal_ticks, cal_insns, empty_ticks, have = (int(v) for v in next(
        line.split()[1:] for line in text.splitlines() if line.startswith("C ")))
    if not have or cal_ticks <= 0:
        return None
    return (1.0 if machine.exact_counter else cal_ticks / cal_insns), empty_ticks


def _parse(text: str, n_rows: int, machine: Machine, max_instructions: float = 0.0) -> tuple[np.ndarray, ...]:
    """Rows of the driver's output; instruction counts are NaN when they cannot be trusted."""
    if f"{SENTINEL} rows={n_rows}" not in text:
        tail = "\n".join(text.strip().splitlines()[-5:])
        raise BnnError(f"firmware on {machine.name} did not finish (no {SENTINEL} line); last output:\n{tail}")
    rows = np.array([[int(v) for v in line.split()[1:]] for line in text.splitlines()
                     if line.startswith("R ")], dtype=np.int64).reshape(-1, 6)
    if rows.shape[0] != n_rows or np.any(rows[:, 0] != np.arange(n_rows)):
        raise BnnError(f"firmware on {machine.name} printed {rows.shape[0]} rows, expected {n_rows}")
    cal = _calibration(text, machine)
    if cal is not None:
        ticks_per_insn, empty_ticks = cal
        enc = np.round((rows[:, 4] - empty_ticks).clip(0) / ticks_per_insn)
        net = np.round((rows[:, 5] - empty_ticks).clip(0) / ticks_per_insn)
        if machine.toolchain == "arm":
            # SysTick is 24 bits: a measurement longer than 2**24 ticks would wrap unseen
            limit = 0.5 * (1 << 24) / ticks_per_insn
            if np.any(enc > limit) or np.any(net > limit) or 3.0 * max_instructions > limit:
                enc = net = np.full(n_rows, np.nan)
    else:
        enc = net = np.full(n_rows, np.nan)
    return rows[:, 1].astype(np.int8), rows[:, 2], rows[:, 3], enc, net


def run_elf(elf: Path, machine: Machine, X: np.ndarray, encoding: Encoding, workdir: Path,
            timeout: float | None = None, n_macs: int = 0) -> tuple[np.ndarray, ...]:
    """Run a compiled test driver on rows ``X`` (float32, or int16 for the int16 encoding)."""
    write_rows(workdir / "bnn_rows.bin", X, encoding)
    out_file = workdir / "bnn_out.txt"
    if out_file.exists():
        out_file.unlink()
    if timeout is None:
        timeout = 60.0 + 0.05 * X.shape[0]
    if machine.qemu:
        cmd = qemu_command(machine, elf, out_file)
    else:
        cmd = [str(elf)]
    try:
        proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BnnError(f"{machine.name}: the firmware did not finish within {timeout:.0f} s (QEMU killed)") from None
    text = out_file.read_text() if machine.qemu and out_file.exists() else proc.stdout
    if proc.returncode != 0:
        raise BnnError(f"{machine.name}: firmware exited with code {proc.returncode}: "
                       f"{(text + proc.stderr).strip()[-500:]}")
    # about one instruction per binary MAC (measured 0.6-1.1): the guard uses 3x that
    return _parse(text, X.shape[0], machine, float(n_macs))


def device_inputs(artifact, X: np.ndarray, encoding: Encoding, uint8_input: bool = False) -> np.ndarray:
    """What the device is fed: float32 rows (NaN and infinities included: the C decides them
    INVALID), or their int16 quantization, where a row with a non-finite feature has no int16
    value and is sent as zeros (its INVALID is decided on the host, see :func:`run_on_qemu`), or
    with ``uint8_input`` the rows as bytes (every value must be a whole number 0..255)."""
    with np.errstate(over="ignore", invalid="ignore"):
        X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != artifact.encoder.n_features:
        raise BnnError(f"data has {X.shape[-1]} features, the model expects {artifact.encoder.n_features}")
    if uint8_input:
        return uint8_rows(X)
    if encoding is Encoding.FLOAT:
        return X
    bad = invalid_rows(X)
    return quantize_int16(artifact.encoder, np.where(bad[:, None], np.float32(0), X))


def run_on_qemu(artifact, machine: str | Machine, X: np.ndarray,
                options: BuildOptions = BuildOptions(), workdir: str | None = None,
                timeout: float | None = None) -> QemuRun:
    """Decide raw inputs ``X`` with the generated C on a QEMU machine (or ``"host"``).

    Returns a :class:`QemuRun` whose ``decisions`` are :class:`~bnnembed.model.intmodel.Decision`
    codes, with both bound scores and instruction counts per row. A float row with a NaN or an
    infinity is decided INVALID by the C itself (scores :data:`SCORE_NONE`). With the int16
    encoding such a row never reaches the device (no int16 stands for it): it is INVALID from the
    float -> int16 conversion, with no instruction counts.
    """
    if isinstance(machine, str):
        machine = get_machine(machine)
    if machine.qemu:
        qemu_exe(machine)
    encoding = Encoding(options.encoding)
    Xd = device_inputs(artifact, X, encoding, options.uint8_input)
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix=f"bnnembed-{machine.name}-")
        workdir = tmp.name
    try:
        work = Path(workdir)
        elf = compile_firmware(artifact, machine, work, options)
        sizes = elf_sizes(elf, machine)
        macs = deployed_macs(artifact.model)
        dec, su, sl, enc, net = run_elf(elf, machine, Xd, encoding, work, timeout, macs)
        if encoding is Encoding.INT16:
            bad = invalid_rows(X)
            dec[bad] = int(Decision.INVALID)
            su[bad] = sl[bad] = SCORE_NONE
            enc[bad] = net[bad] = np.nan
        return QemuRun(machine.name, dec, su, sl, enc, net, sizes, str(elf) if tmp is None else "")
    finally:
        if tmp is not None:
            tmp.cleanup()


def defer_frames(n_features: int, machine: str | Machine, X: np.ndarray, workdir: str | None = None,
                 timeout: float | None = None, uint8_input: bool = False, row_offset: int = 0) -> np.ndarray:
    """Build one DEFER frame per row of ``X`` (``n_features`` float32 features, or with
    ``uint8_input`` the rows as bytes through bnn_proto_build_request_frame_u8(), placed
    ``row_offset`` bytes past a word boundary) on ``machine`` with firmware/test/bnn_defer_frame_main.c.
    Returns ``(rows, 3)``: instructions (NaN where the machine has no instruction counter), frame
    bytes and the payload CRC of each."""
    if isinstance(machine, str):
        machine = get_machine(machine)
    if machine.qemu:
        qemu_exe(machine)
    X = np.ascontiguousarray(np.asarray(X, dtype=np.float32).reshape(len(X), n_features))
    if uint8_input:
        X = uint8_rows(X)
    with tempfile.TemporaryDirectory(prefix=f"bnnembed-defer-{machine.name}-") as tmp:
        work = Path(workdir or tmp)
        fw = firmware_dir()
        defines = {"BNN_N_FEATURES": n_features,
                   **({"BNN_TEST_INPUT_UINT8": 1, "BNN_TEST_ROW_OFFSET": int(row_offset)} if uint8_input else {})}
        elf = compile_elf(machine, [fw / "test" / "bnn_defer_frame_main.c", fw / "bnn_protocol.c"],
                          work / "defer.elf", include_dirs=(fw,), defines=defines,
                          what="the DEFER frame driver")
        write_rows(work / "bnn_rows.bin", X, Encoding.FLOAT)
        out_file = work / "bnn_out.txt"
        if out_file.exists():
            out_file.unlink()
        cmd = qemu_command(machine, elf, out_file) if machine.qemu else [str(elf)]
        try:
            proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True,
                                  timeout=timeout or 60.0 + 0.05 * len(X))
        except subprocess.TimeoutExpired:
            raise BnnError(f"{machine.name}: the DEFER frame driver did not finish (QEMU killed)") from None
        text = out_file.read_text() if machine.qemu and out_file.exists() else proc.stdout
    if proc.returncode != 0 or f"{SENTINEL} rows={len(X)}" not in text:
        raise BnnError(f"{machine.name}: the DEFER frame driver failed: {(text + proc.stderr).strip()[-300:]}")
    rows = np.array([[int(v) for v in line.split()[2:5]] for line in text.splitlines() if line.startswith("D ")],
                    dtype=np.float64).reshape(-1, 3)
    cal = _calibration(text, machine)
    if cal is None or len(rows) != len(X):
        rows[:, 0] = np.nan
    else:
        per_insn, empty_ticks = cal
        rows[:, 0] = np.round((rows[:, 0] - empty_ticks).clip(0) / per_insn)
    return rows


def defer_frame_instructions(n_features: int, machine: str | Machine, X: np.ndarray,
                             workdir: str | None = None, timeout: float | None = None,
                             uint8_input: bool = False) -> float | None:
    """Mean instructions to build one DEFER frame (payload, CRC-32, COBS) for the rows ``X``
    (:func:`defer_frames`); None where the machine has no instruction counter."""
    ticks = defer_frames(n_features, machine, X, workdir, timeout, uint8_input)[:, 0]
    return None if np.isnan(ticks).any() else round(float(np.mean(ticks)), 1)


# --------------------------------------------------------------------------------------------
# comparison and report
# --------------------------------------------------------------------------------------------


def numpy_reference(artifact, X: np.ndarray, encoding: Encoding = Encoding.FLOAT):
    """numpy decisions and scores for the inputs the device sees (INVALID, :data:`SCORE_NONE`
    for a row with a non-finite feature)."""
    bad = invalid_rows(X)
    Xok = np.asarray(X)[~bad]
    if encoding is Encoding.FLOAT:
        bits = artifact.encoder.encode(np.asarray(Xok, dtype=np.float32))
    else:
        bits = encode_int16(artifact.encoder, quantize_int16(artifact.encoder, Xok))
    su = np.full(bad.shape, SCORE_NONE, dtype=np.int64)
    sl = su.copy()
    dec = np.full(bad.shape, int(Decision.INVALID), dtype=np.int8)
    su[~bad] = bound_scores(artifact.upper, bits)
    sl[~bad] = bound_scores(artifact.lower, bits)
    dec[~bad] = combine(su[~bad] >= artifact.upper.tau, sl[~bad] >= artifact.lower.tau)
    return dec, su, sl


@dataclass
class QemuReport:
    machine: str
    core: str
    encoding: str
    rows: int
    mismatches: int
    score_mismatches: int
    flash_bytes: int
    ram_bytes: int
    model_flash_bytes: int
    runtime_flash_bytes: int
    instructions_per_inference: float | None
    encode_instructions: float | None
    bounds_instructions: float | None
    instructions_per_bmac: float | None
    binary_macs: int
    popcountsi2: bool
    float_mismatches: int | None = None  # int16 only: decisions that differ from the float model
    decisions: dict = field(default_factory=dict)
    #: instructions to build one DEFER frame of this model's features (defer_frame_instructions)
    defer_frame_instructions: float | None = None
    kernel: str = ""  #: the popcount kernel the firmware was built with
    input: str = "float"  #: what the device was fed: float, int16 or uint8 (bnn_decide_u8())
    #: shifted copies each decision runs the bounds on (build --shift-copies; 1 without); with
    #: copies the encoding happens inside the decision, counted in bounds_instructions
    copies: int = 1

    def as_dict(self) -> dict:
        return asdict(self)


def _mean(a: np.ndarray) -> float | None:
    return None if a.size == 0 or np.isnan(a).any() else round(float(np.mean(a)), 1)


def check_against_numpy(artifact, machine: str, X: np.ndarray,
                        options: BuildOptions = BuildOptions(), workdir: str | None = None,
                        timeout: float | None = None) -> QemuReport:
    """Run on QEMU, compare every decision and both scores with numpy, measure cost."""
    m = get_machine(machine)
    encoding = Encoding(options.encoding)
    run = run_on_qemu(artifact, m, X, options, workdir, timeout)
    dec, su, sl = numpy_reference(artifact, X, encoding)
    mism = int(np.sum(run.decisions != dec))
    score_mism = int(np.sum((run.upper_scores != su) | (run.lower_scores != sl)))
    float_mism = None
    if encoding is Encoding.INT16:
        fdec, _, _ = numpy_reference(artifact, X, Encoding.FLOAT)
        float_mism = int(np.sum(fdec != run.decisions))
    macs = deployed_macs(artifact.model)
    ran = dec != int(Decision.INVALID)  # costs are those of inferences: rows the bounds ran on
    enc_i, net_i = _mean(run.encode_instructions[ran]), _mean(run.bounds_instructions[ran])
    total = None if enc_i is None else round(enc_i + net_i, 1)
    sizes = run.sizes
    counts = np.bincount(run.decisions.astype(np.int64), minlength=len(Decision))
    return QemuReport(
        machine=m.name, core=m.core, encoding=encoding.value, rows=int(len(dec)),
        mismatches=mism, score_mismatches=score_mism,
        flash_bytes=sizes.flash_bytes, ram_bytes=sizes.ram_bytes,
        model_flash_bytes=sizes.model_flash, runtime_flash_bytes=sizes.runtime_flash,
        instructions_per_inference=total, encode_instructions=enc_i, bounds_instructions=net_i,
        instructions_per_bmac=None if net_i is None else round(net_i / macs, 4),
        binary_macs=macs, popcountsi2=sizes.popcountsi2, float_mismatches=float_mism,
        decisions={d.label: int(counts[d]) for d in Decision}, kernel=PopcountStrategy(options.popcount).name.lower(),
        input=options.input, copies=1 if artifact.copies is None else artifact.copies.k,
    )
