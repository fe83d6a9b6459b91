"""What a compiled firmware occupies: flash and RAM from the ELF's own symbol table.

The machine's ``nm`` lists every defined symbol with its address and size. Symbols named by the
model template (:data:`MODEL_SYMBOL`) are the generated model, every other ``bnn_`` symbol is the
runtime; a symbol is in RAM if its address lies in the machine's RAM region (on the host, by its
``nm`` type), and initialised data counts in both flash and RAM. :func:`pointer_bytes` reads the
ELF's class, the pointer size the struct sizes of :mod:`bnnembed.render.footprint` depend on.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .toolchain import Runner, require_tool, toolchain_of

if TYPE_CHECKING:
    from .machines import Machine


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


#: Symbols the model template (templates/model/bnn_model.c.j2) defines.
MODEL_SYMBOL = re.compile(
    r"^bnn_(model|encoder|feature_index|offsets|thresholds|thresholds_q|feature_shift|input_bits"
    r"|scratch_[ab]|upper|lower|copies|copy_shifts|shifted)(_l\d+_(weights|max_mismatch)|_layers)?$"
)


def _nm_lines(elf: str | os.PathLike, machine: Machine, runner: Runner | None) -> list[list[str]]:
    """``nm -S --defined-only`` of the ELF, split into fields per line."""
    tc = toolchain_of(machine)
    nm = require_tool(tc.nm, tc.apt)
    cmd = [nm, "-S", "--defined-only", str(elf)]
    out = (runner or subprocess.run)(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split() for line in out.splitlines()]


def elf_symbols(elf: str | os.PathLike, machine: Machine,
                runner: Runner | None = None) -> list[tuple[str, str, int]]:
    """``(name, nm type letter, size)`` of every sized symbol (and of unsized code symbols, size 0)."""
    syms = []
    for parts in _nm_lines(elf, machine, runner):
        if len(parts) == 4:
            syms.append((parts[3], parts[2], int(parts[1], 16)))
        elif len(parts) == 3 and parts[1] in "TtUuw":
            syms.append((parts[2], parts[1], 0))
    return syms


def elf_sizes(elf: str | os.PathLike, machine: Machine, runner: Runner | None = None) -> Sizes:
    """Flash and RAM of the model (generated tables and buffers) and the runtime (code)."""
    lines = _nm_lines(elf, machine, runner)
    model_flash = model_ram = rt_flash = rt_ram = 0
    popc = any("popcountsi2" in p[-1] or "popcountdi2" in p[-1] for p in lines if p)
    lo, size = machine.ram
    for parts in lines:
        if len(parts) != 4 or not parts[3].startswith("bnn_"):
            continue
        addr, nbytes, kind, name = int(parts[0], 16), int(parts[1], 16), parts[2].lower(), parts[3]
        in_ram = (lo <= addr < lo + size) if machine.qemu else kind in "bdcs"
        flash = nbytes if (not in_ram or kind == "d") else 0
        ram = nbytes if in_ram else 0
        if MODEL_SYMBOL.match(name):
            model_flash += flash
            model_ram += ram
        else:
            rt_flash += flash
            rt_ram += ram
    return Sizes(model_flash, model_ram, rt_flash, rt_ram, popc)


def pointer_bytes(elf: str | os.PathLike) -> int:
    """4 for an ELF32, 8 for an ELF64 (the ``EI_CLASS`` byte of the header)."""
    with open(elf, "rb") as fh:
        ident = fh.read(5)
    if ident[:4] != b"\x7fELF" or ident[4] not in (1, 2):
        raise ValueError(f"{elf} is not an ELF32 or ELF64 file")
    return 4 if ident[4] == 1 else 8
