"""Board definitions: one TOML file per board under ``boards/``.

A board file names the PlatformIO platform, board and framework, the core and its compiler
flags, the flash/RAM budget (total, and how much to leave for the framework and the example
application), the popcount kernel, and the QEMU machine that stands in for it in tests
(empty when none can: the ESP32's Xtensa cores, which are compile-checked on the lx106 stand-in).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field

from .._resources import resource_dir
from ..render.c import PopcountStrategy
from ..errors import BnnError

FRAMEWORKS = ("arduino", "espidf")


@dataclass(frozen=True)
class Board:
    id: str
    name: str
    mcu: str
    core: str
    fpu: bool
    cflags: tuple[str, ...]
    flash_bytes: int
    ram_bytes: int
    reserved_flash_bytes: int
    reserved_ram_bytes: int
    popcount: PopcountStrategy
    qemu_machine: str
    platform: str
    pio_board: str
    framework: str
    monitor_speed: int
    build_flags: tuple[str, ...]
    compile_standin: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def model_flash_budget(self) -> int:
        return self.flash_bytes - self.reserved_flash_bytes

    @property
    def model_ram_budget(self) -> int:
        return self.ram_bytes - self.reserved_ram_bytes

    def summary(self) -> dict:
        return {
            "id": self.id, "name": self.name, "mcu": self.mcu, "core": self.core, "fpu": self.fpu,
            "platform": self.platform, "board": self.pio_board, "framework": self.framework,
            "flash_bytes": self.flash_bytes, "ram_bytes": self.ram_bytes,
            "model_flash_budget": self.model_flash_budget, "model_ram_budget": self.model_ram_budget,
            "popcount": self.popcount.name.lower(), "qemu_machine": self.qemu_machine or None,
            "compile_standin": self.compile_standin or None,
        }


def _parse(path) -> Board:
    with open(path, "rb") as fh:
        raw = tomllib.load(fh)
    try:
        pio = raw["platformio"]
        popcount = PopcountStrategy[str(raw["popcount"]).upper()]
        board = Board(
            id=raw["id"], name=raw["name"], mcu=raw["mcu"], core=raw["core"], fpu=bool(raw["fpu"]),
            cflags=tuple(raw["cflags"]), flash_bytes=int(raw["flash_bytes"]),
            ram_bytes=int(raw["ram_bytes"]),
            reserved_flash_bytes=int(raw["reserved_flash_bytes"]),
            reserved_ram_bytes=int(raw["reserved_ram_bytes"]), popcount=popcount,
            qemu_machine=str(raw.get("qemu_machine", "")), platform=pio["platform"],
            pio_board=pio["board"], framework=pio["framework"],
            monitor_speed=int(pio.get("monitor_speed", 115200)),
            build_flags=tuple(pio.get("build_flags", ())),
            compile_standin=str(raw.get("compile_standin", "")),
        )
    except KeyError as exc:
        raise BnnError(f"board file {path}: missing or invalid key {exc}") from None
    if board.framework not in FRAMEWORKS:
        raise BnnError(f"board file {path}: framework must be one of {', '.join(FRAMEWORKS)}")
    return board


def load_boards() -> dict[str, Board]:
    """All boards, by id, sorted."""
    boards = {}
    for path in sorted(resource_dir("boards").glob("*.toml")):
        board = _parse(path)
        if board.id != path.stem:
            raise BnnError(f"board file {path.name}: id '{board.id}' does not match the file name")
        boards[board.id] = board
    return boards


def get_board(board_id: str) -> Board:
    boards = load_boards()
    try:
        return boards[board_id]
    except KeyError:
        raise BnnError(f"unknown board '{board_id}'; available boards: {', '.join(boards)}") from None
