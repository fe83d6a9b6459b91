"""The cross-compilers: one way to turn C sources into an ELF for a machine.

Every firmware build of the package (the QEMU test driver in :mod:`bnnembed.device.qemu`, the
deferral driver and the generated example application in :mod:`bnnembed.device.simulate`) goes
through :func:`compile_elf`: the toolchain of the machine's core (picolibc with semihosting for the
cross targets, the host's gcc for the native build), the core's flags, strict C99 warnings as
errors, the include directories and defines the build asks for, and the machine's memory map for
picolibc's linker script when the ELF runs under QEMU. A region overflow becomes a "does not fit"
error naming the region. The process runner is a parameter (``subprocess.run`` when None).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._resources import resource_dir
from ..errors import BnnError

if TYPE_CHECKING:  # machines.py imports this module
    from .machines import Machine

#: Language and warning flags of every build.
STRICT_C99 = ("-std=c99", "-Wall", "-Wextra", "-Werror")


@dataclass(frozen=True)
class Toolchain:
    """A C compiler for one family of cores, and how to install it."""

    name: str
    cc: str
    nm: str
    apt: str  # packages that provide it
    base_flags: tuple[str, ...] = ()


_PICOLIBC_SEMIHOST = ("-specs=picolibc.specs", "--oslib=semihost", "--crt0=semihost")

TOOLCHAINS = {
    "arm": Toolchain("arm", "arm-none-eabi-gcc", "arm-none-eabi-nm", "gcc-arm-none-eabi picolibc-arm-none-eabi",
                     _PICOLIBC_SEMIHOST + ("-mthumb",)),
    "riscv": Toolchain("riscv", "riscv64-unknown-elf-gcc", "riscv64-unknown-elf-nm",
                       "gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf", _PICOLIBC_SEMIHOST),
    "xtensa": Toolchain("xtensa", "xtensa-lx106-elf-gcc", "xtensa-lx106-elf-nm",
                        "gcc-xtensa-lx106 picolibc-xtensa-lx106-elf", _PICOLIBC_SEMIHOST),
    "host": Toolchain("host", "gcc", "nm", "gcc binutils"),
}

Runner = Callable[..., subprocess.CompletedProcess]


def require_tool(exe: str, apt: str) -> str:
    """Path of ``exe``, or a :class:`BnnError` naming the apt packages that provide it."""
    path = shutil.which(exe)
    if path is None:
        raise BnnError(f"{exe} not found; install it with: sudo apt-get install {apt}")
    return path


def toolchain_of(machine: Machine) -> Toolchain:
    return TOOLCHAINS[machine.toolchain]


def firmware_dir() -> Path:
    """The hand-written runtime and drivers (``firmware/``)."""
    return resource_dir("firmware")


def write_model_build(artifact, workdir: str | os.PathLike, encoding, columns: bool = False) -> list[Path]:
    """Write the generated ``bnn_model.[ch]`` into ``workdir``; returns the C sources of the model and
    the runtime (compile them with ``workdir`` and :func:`firmware_dir` on the include path).
    ``columns``: the hidden layers by columns, for the COLUMNS kernel."""
    from ..render.c import RUNTIME_FILES, render_model_sources  # here: the CLI loads machines.py at start-up

    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    for name, text in render_model_sources(artifact.model, encoding, columns).items():
        (work / name).write_text(text)
    fw = firmware_dir()
    return [work / "bnn_model.c"] + [fw / n for n in RUNTIME_FILES if n.endswith(".c")]


def define_flags(defines: Mapping[str, object]) -> list[str]:
    """``-DNAME=value`` per entry (``-DNAME`` for a value of None), in order."""
    return [f"-D{k}" if v is None else f"-D{k}={v}" for k, v in defines.items()]


def compile_command(machine: Machine, sources: Iterable[str | os.PathLike], elf: str | os.PathLike, *,
                    include_dirs: Iterable[str | os.PathLike] = (), defines: Mapping[str, object] | None = None,
                    opt: str = "-O2", extra_cflags: Iterable[str] = (), cc: str | None = None) -> list[str]:
    """The compiler command line building ``elf`` from ``sources`` for ``machine``."""
    tc = toolchain_of(machine)
    cmd = [cc or tc.cc, *tc.base_flags, *machine.cflags, opt, *STRICT_C99,
           *(f"-I{d}" for d in include_dirs), *define_flags(defines or {}), *extra_cflags]
    if machine.qemu:  # a native build keeps the host's own memory layout
        cmd += machine.memory_map_flags()
    return [*cmd, *map(str, sources), "-o", str(elf)]


def compile_elf(machine: Machine, sources: Iterable[str | os.PathLike], elf: str | os.PathLike, *,
                include_dirs: Iterable[str | os.PathLike] = (), defines: Mapping[str, object] | None = None,
                opt: str = "-O2", extra_cflags: Iterable[str] = (), what: str = "",
                runner: Runner | None = None) -> Path:
    """Compile and link ``sources`` into ``elf`` for ``machine`` (in the ELF's directory); returns it.

    ``what`` names the build in the error message ("compiling <what> for <machine> failed").
    """
    tc = toolchain_of(machine)
    elf = Path(elf)
    cmd = compile_command(machine, sources, elf, include_dirs=include_dirs, defines=defines, opt=opt,
                          extra_cflags=extra_cflags, cc=require_tool(tc.cc, tc.apt))
    proc = (runner or subprocess.run)(cmd, capture_output=True, text=True, cwd=elf.parent)
    if proc.returncode != 0:
        err = proc.stderr.strip()
        m = re.search(r"region `(\w+)' overflowed by (\d+) bytes", err)
        if m:
            size = machine.flash[1] if m.group(1).lower().startswith("flash") else machine.ram[1]
            raise BnnError(
                f"the model does not fit {machine.name}: {m.group(1)} ({size} bytes) overflowed by "
                f"{m.group(2)} bytes; use a machine with more memory or a smaller model"
            )
        raise BnnError(f"compiling {what + ' ' if what else ''}for {machine.name} failed:\n{err[-3000:]}")
    return elf
