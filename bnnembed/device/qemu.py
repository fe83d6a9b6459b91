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
``bnnembed qemu`` use it); :func:`check_against_numpy` adds the comparison and the report.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .._resources import resource_dir
from ..render.c import (
    RUNTIME_FILES,
    Encoding,
    PopcountStrategy,
    binary_macs,
    encode_int16,
    quantize_int16,
    render_model_sources,
)
from ..errors import BnnError
from ..model.intmodel import Decision, bound_scores, combine, invalid_rows

SENTINEL = "BNN-TEST-DONE"
SCORE_NONE = -1  #: BNN_SCORE_NONE (firmware/bnn.h): the score of an INVALID row, whose bounds never ran
CALIBRATION_INSTRUCTIONS = 200_000


@dataclass(frozen=True)
class Toolchain:
    """A C compiler for one family of cores, and how to install it."""

    name: str
    cc: str
    nm: str
    apt: str  # packages that provide it
    base_flags: tuple[str, ...] = ()


TOOLCHAINS = {
    "arm": Toolchain(
        "arm", "arm-none-eabi-gcc", "arm-none-eabi-nm", "gcc-arm-none-eabi picolibc-arm-none-eabi",
        ("-specs=picolibc.specs", "--oslib=semihost", "--crt0=semihost", "-mthumb"),
    ),
    "riscv": Toolchain(
        "riscv", "riscv64-unknown-elf-gcc", "riscv64-unknown-elf-nm",
        "gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf",
        ("-specs=picolibc.specs", "--oslib=semihost", "--crt0=semihost"),
    ),
    "xtensa": Toolchain(
        "xtensa", "xtensa-lx106-elf-gcc", "xtensa-lx106-elf-nm",
        "gcc-xtensa-lx106 picolibc-xtensa-lx106-elf",
        ("-specs=picolibc.specs", "--oslib=semihost", "--crt0=semihost"),
    ),
    "host": Toolchain("host", "gcc", "nm", "gcc binutils"),
}

QEMU_APT = {
    "qemu-system-arm": "qemu-system-arm",
    "qemu-system-riscv32": "qemu-system-misc",
    "qemu-system-xtensa": "qemu-system-misc",
}


@dataclass(frozen=True)
class Machine:
    """A QEMU machine standing in for a class of boards."""

    name: str
    core: str
    toolchain: str
    cflags: tuple[str, ...]
    flash: tuple[int, int]  # (address, size) for the picolibc linker script
    ram: tuple[int, int]
    qemu: str | None  # None: run natively (the host machine, for tests)
    qemu_args: tuple[str, ...] = ()
    icount_shift: int = 0
    fpu: bool = True
    note: str = ""
    exact_counter: bool = False  # the counter counts instructions itself (RISC-V instret)

    @property
    def ram_bytes(self) -> int:
        return self.ram[1]

    @property
    def flash_bytes(self) -> int:
        return self.flash[1]

    def memory_map_flags(self) -> list[str]:
        """Linker flags placing flash and RAM for picolibc's default linker script."""
        return [f"-Wl,--defsym=__flash={self.flash[0]:#x}", f"-Wl,--defsym=__flash_size={self.flash[1]:#x}",
                f"-Wl,--defsym=__ram={self.ram[0]:#x}", f"-Wl,--defsym=__ram_size={self.ram[1]:#x}"]


def _arm(name, core, mcpu, fp, flash, ram, shift, note=""):
    flags = (f"-mcpu={mcpu}",) + fp
    return Machine(name, core, "arm", flags, flash, ram, "qemu-system-arm", ("-M", name), shift,
                   fpu="-mfloat-abi=hard" in fp, note=note)


_SOFT = ("-mfloat-abi=soft",)
MACHINES: dict[str, Machine] = {
    m.name: m
    for m in (
        # SysTick clocks under QEMU 7.2: microbit 16 MHz, mps2 25 MHz, an505 20 MHz,
        # an547 32 MHz, netduinoplus2 168 MHz; the shift makes one instruction >= one tick.
        _arm("microbit", "cortex-m0", "cortex-m0", _SOFT, (0x0, 0x40000), (0x20000000, 0x4000), 6,
             "nRF51822: 256 KiB flash, 16 KiB RAM"),
        _arm("mps2-an385", "cortex-m3", "cortex-m3", _SOFT, (0x0, 0x400000), (0x20000000, 0x100000), 6),
        _arm("mps2-an386", "cortex-m4", "cortex-m4", ("-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
             (0x0, 0x400000), (0x20000000, 0x100000), 6),
        _arm("mps2-an500", "cortex-m7", "cortex-m7", ("-mfloat-abi=hard", "-mfpu=fpv5-d16"),
             (0x0, 0x400000), (0x20000000, 0x100000), 6),
        _arm("mps2-an505", "cortex-m33", "cortex-m33", ("-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"),
             (0x10000000, 0x400000), (0x38000000, 0x100000), 6),
        _arm("mps3-an547", "cortex-m55", "cortex-m55", ("-mfloat-abi=hard",),
             (0x0, 0x80000), (0x20000000, 0x80000), 5, "ITCM 512 KiB, DTCM 512 KiB"),
        _arm("netduinoplus2", "cortex-m4", "cortex-m4", ("-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
             (0x08000000, 0x100000), (0x20000000, 0x20000), 3, "STM32F405: 1 MiB flash, 128 KiB RAM"),
        Machine("riscv32-virt", "rv32imc", "riscv", ("-march=rv32imc", "-mabi=ilp32"),
                (0x80000000, 0x400000), (0x80400000, 0x400000), "qemu-system-riscv32",
                ("-M", "virt", "-bios", "none"), 0, fpu=False, note="the ESP32-C3 ISA",
                exact_counter=True),
        Machine("host", "host", "host", (), (0, 0), (0, 0), None, note="native build, no QEMU"),
    )
}


def qemu_machines() -> list[str]:
    """Names accepted by ``bnnembed qemu --machine`` (the host build is for tests)."""
    return [name for name, m in MACHINES.items() if m.qemu]


def get_machine(name: str) -> Machine:
    try:
        return MACHINES[name]
    except KeyError:
        raise BnnError(f"unknown machine '{name}'; choose one of: {', '.join(MACHINES)}") from None


def require_tool(exe: str, apt: str) -> str:
    path = shutil.which(exe)
    if path is None:
        raise BnnError(f"{exe} not found; install it with: sudo apt-get install {apt}")
    return path


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


def compile_firmware(artifact, machine: Machine, workdir: str | os.PathLike,
                     options: BuildOptions = BuildOptions()) -> Path:
    """Generate the model sources into ``workdir`` and compile the test driver; returns the ELF."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    tc = TOOLCHAINS[machine.toolchain]
    cc = require_tool(tc.cc, tc.apt)
    for name, text in render_model_sources(artifact, options.encoding).items():
        (work / name).write_text(text)
    fw = resource_dir("firmware")
    sources = [str(work / "bnn_model.c")] + [str(fw / n) for n in RUNTIME_FILES if n.endswith(".c")]
    sources.append(str(fw / "test" / "bnn_test_main.c"))
    elf = work / "fw.elf"
    cmd = [cc, *tc.base_flags, *machine.cflags, options.opt, "-std=c99", "-Wall", "-Wextra",
           "-Werror", f"-DBNN_POPCOUNT_STRATEGY={int(options.popcount)}", f"-I{work}", f"-I{fw}",
           *options.extra_cflags]
    if machine.qemu:
        cmd += [
            *machine.memory_map_flags(),
        ]
    cmd += [*sources, "-o", str(elf)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
    if proc.returncode != 0:
        err = proc.stderr.strip()
        m = re.search(r"region `(\w+)' overflowed by (\d+) bytes", err)
        if m:
            size = machine.flash[1] if m.group(1).lower().startswith("flash") else machine.ram[1]
            raise BnnError(
                f"the model does not fit {machine.name}: {m.group(1)} ({size} bytes) overflowed by "
                f"{m.group(2)} bytes; use a machine with more memory or a smaller model"
            )
        raise BnnError(f"compiling for {machine.name} failed:\n{err[-3000:]}")
    return elf


@dataclass(frozen=True)
class Sizes:
    """Bytes of the model tables and of the runtime code in an ELF (from its symbol sizes)."""

    model_flash: int
    model_ram: int
    runtime_flash: int
    runtime_ram: int
    popcountsi2: bool  # does the ELF contain libgcc's __popcountsi2?

    @property
    def flash_bytes(self) -> int:
        return self.model_flash + self.runtime_flash

    @property
    def ram_bytes(self) -> int:
        return self.model_ram + self.runtime_ram


def elf_symbols(elf: str | os.PathLike, machine: Machine) -> list[tuple[str, str, int]]:
    """``(name, nm type letter, size)`` of every sized symbol."""
    tc = TOOLCHAINS[machine.toolchain]
    nm = require_tool(tc.nm, tc.apt)
    out = subprocess.run([nm, "-S", "--defined-only", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4:
            syms.append((parts[3], parts[2], int(parts[1], 16)))
        elif len(parts) == 3 and parts[1] in "TtUuw":
            syms.append((parts[2], parts[1], 0))
    return syms


_MODEL_SYMBOL = re.compile(
    r"^bnn_(model|encoder|feature_index|offsets|thresholds|thresholds_q|feature_shift|input_bits"
    r"|scratch_[ab]|upper|lower)(_l\d+_(weights|max_mismatch)|_layers)?$"
)


def elf_sizes(elf: str | os.PathLike, machine: Machine) -> Sizes:
    """Flash and RAM of the model (generated tables and buffers) and the runtime (code).

    Symbols named by the model template are the model, every other ``bnn_`` symbol is the
    runtime. A symbol is in RAM if its address lies in the machine's RAM region (on the host: by
    its nm type); initialised data counts in both flash and RAM.
    """
    tc = TOOLCHAINS[machine.toolchain]
    nm = require_tool(tc.nm, tc.apt)
    out = subprocess.run([nm, "-S", "--defined-only", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    model_flash = model_ram = rt_flash = rt_ram = 0
    popc = "popcountsi2" in out or "popcountdi2" in out
    lo, size = machine.ram
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 4 or not parts[3].startswith("bnn_"):
            continue
        addr, nbytes, kind, name = int(parts[0], 16), int(parts[1], 16), parts[2].lower(), parts[3]
        in_ram = (lo <= addr < lo + size) if machine.qemu else kind in "bdcs"
        flash = nbytes if (not in_ram or kind == "d") else 0
        ram = nbytes if in_ram else 0
        if _MODEL_SYMBOL.match(name):
            model_flash += flash
            model_ram += ram
        else:
            rt_flash += flash
            rt_ram += ram
    return Sizes(model_flash, model_ram, rt_flash, rt_ram, popc)


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
    if encoding is Encoding.FLOAT:
        data = np.ascontiguousarray(X, dtype="<f4")
        size = 4
    else:
        data = np.ascontiguousarray(X, dtype="<i2")
        size = 2
    with open(path, "wb") as fh:
        fh.write(struct.pack("<II", data.shape[0], size))
        fh.write(data.tobytes())


def qemu_command(machine: Machine, elf: Path, out_file: Path) -> list[str]:
    exe = require_tool(machine.qemu, QEMU_APT.get(machine.qemu, "qemu-system-misc"))
    return [
        exe, *machine.qemu_args, "-display", "none", "-monitor", "none", "-serial", "none",
        "-chardev", f"file,id=bnnout,path={out_file}",
        "-semihosting-config", "enable=on,target=native,chardev=bnnout",
        "-icount", f"shift={machine.icount_shift},align=off,sleep=off",
        "-kernel", str(elf),
    ]


def _parse(text: str, n_rows: int, machine: Machine, max_instructions: float = 0.0) -> tuple[np.ndarray, ...]:
    """Rows of the driver's output; instruction counts are NaN when they cannot be trusted."""
    if f"{SENTINEL} rows={n_rows}" not in text:
        tail = "\n".join(text.strip().splitlines()[-5:])
        raise BnnError(f"firmware on {machine.name} did not finish (no {SENTINEL} line); last output:\n{tail}")
    rows = np.array([[int(v) for v in line.split()[1:]] for line in text.splitlines()
                     if line.startswith("R ")], dtype=np.int64).reshape(-1, 6)
    if rows.shape[0] != n_rows or np.any(rows[:, 0] != np.arange(n_rows)):
        raise BnnError(f"firmware on {machine.name} printed {rows.shape[0]} rows, expected {n_rows}")
    cal = [line.split()[1:] for line in text.splitlines() if line.startswith("C ")][0]
    cal_ticks, cal_insns, empty_ticks, have = (int(v) for v in cal)
    if have and cal_ticks > 0:
        ticks_per_insn = 1.0 if machine.exact_counter else cal_ticks / cal_insns
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


def device_inputs(artifact, X: np.ndarray, encoding: Encoding) -> np.ndarray:
    """What the device is fed: float32 rows (NaN and infinities included: the C decides them
    INVALID), or their int16 quantization, where a row with a non-finite feature has no int16
    value and is sent as zeros (its INVALID is decided on the host, see :func:`run_on_qemu`)."""
    with np.errstate(over="ignore", invalid="ignore"):
        X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != artifact.encoder.n_features:
        raise BnnError(f"data has {X.shape[-1]} features, the model expects {artifact.encoder.n_features}")
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
        require_tool(machine.qemu, QEMU_APT.get(machine.qemu, "qemu-system-misc"))
    encoding = Encoding(options.encoding)
    Xd = device_inputs(artifact, X, encoding)
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix=f"bnnembed-{machine.name}-")
        workdir = tmp.name
    try:
        work = Path(workdir)
        elf = compile_firmware(artifact, machine, work, options)
        sizes = elf_sizes(elf, machine)
        macs = binary_macs(artifact.upper) + binary_macs(artifact.lower)
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
    macs = binary_macs(artifact.upper) + binary_macs(artifact.lower)
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
        decisions={d.label: int(counts[d]) for d in Decision},
    )
