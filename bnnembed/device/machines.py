"""QEMU machines: the emulated boards the generated C is tested and measured on.

Each machine is a table in ``machines.toml`` beside this module (package data, as the board
files are): its core and compiler flags, the flash and RAM regions of its memory map, and the QEMU
command that runs it, and for the deferral link the CMSDK UART's address; the ``host`` entry is a native build for tests, run without QEMU. Boards
name theirs in ``qemu_machine`` (:mod:`bnnembed.device.boards`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources

from ..errors import BnnError
from .toolchain import TOOLCHAINS

DEFAULT_QEMU_PACKAGE = "qemu-system-misc"


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
    qemu_package: str = DEFAULT_QEMU_PACKAGE  # the apt package providing ``qemu``
    cpu_hz: int = 0  # the clock SysTick counts (Cortex-M), 0 if none
    cmsdk_uart: int = 0  # UART0's base address if it is a CMSDK APB UART (the deferral link's port)

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


def _region(raw, key: str) -> tuple[int, int]:
    address, size = raw[key]
    return int(address), int(size)


def _parse(raw: dict, packages: dict) -> Machine:
    qemu = str(raw["qemu"]) if raw.get("qemu") else None
    return Machine(
        name=str(raw["name"]), core=str(raw["core"]), toolchain=str(raw["toolchain"]),
        cflags=tuple(raw["cflags"]), flash=_region(raw, "flash"), ram=_region(raw, "ram"), qemu=qemu,
        qemu_args=tuple(raw.get("qemu_args", ())), icount_shift=int(raw.get("icount_shift", 0)),
        fpu=bool(raw["fpu"]), note=str(raw.get("note", "")), exact_counter=bool(raw.get("exact_counter", False)),
        qemu_package=str(packages.get(qemu, DEFAULT_QEMU_PACKAGE)), cpu_hz=int(raw.get("cpu_hz", 0)),
        cmsdk_uart=int(raw.get("cmsdk_uart", 0)),
    )


def _load() -> tuple[dict[str, Machine], dict[str, str]]:
    source = resources.files(__package__) / "machines.toml"
    with source.open("rb") as fh:
        raw = tomllib.load(fh)
    packages = {str(k): str(v) for k, v in raw.get("packages", {}).items()}
    machines: dict[str, Machine] = {}
    for i, entry in enumerate(raw.get("machine", ())):
        try:
            machine = _parse(entry, packages)
        except (KeyError, TypeError, ValueError) as exc:
            raise BnnError(f"machines.toml: machine #{i + 1} has a missing or invalid key {exc}") from None
        if machine.toolchain not in TOOLCHAINS:
            raise BnnError(f"machines.toml: machine '{machine.name}' names unknown toolchain "
                           f"'{machine.toolchain}'; choose one of: {', '.join(TOOLCHAINS)}")
        if machine.name in machines:
            raise BnnError(f"machines.toml: machine '{machine.name}' is listed twice")
        machines[machine.name] = machine
    return machines, packages


#: Every machine by name, in the order of machines.toml.
MACHINES, QEMU_APT = _load()


def qemu_machines() -> list[str]:
    """Names accepted by ``bnnembed qemu --machine`` (the host build is for tests)."""
    return [name for name, m in MACHINES.items() if m.qemu]


def get_machine(name: str) -> Machine:
    try:
        return MACHINES[name]
    except KeyError:
        raise BnnError(f"unknown machine '{name}'; choose one of: {', '.join(MACHINES)}") from None
