"""PlatformIO projects: the generated model, the runtime library and the example application for a board.

A project (:func:`render_board_project`, written by :func:`write_board_project`) holds
``platformio.ini``, ``src/main.c`` (the example, firmware/bnn_console.c unchanged: read feature
lines, decide, defer UNKNOWNs over the link, print), the generated ``src/bnn_model.[ch]`` (:mod:`bnnembed.render.c`), the board
framework's port (``firmware/ports``) and the library ``lib/bnnembed_runtime`` with the runtime, the
deferral link and the application logic; espidf boards also get their CMake files. The model
must fit the board's flash and RAM budget (:func:`check_budget`).
"""

from __future__ import annotations

from pathlib import Path

from .._resources import resource_dir
from ..errors import BnnError
from .c import model_context, render_model_sources, row_word_defines, runtime_sources, template_env
from .footprint import Footprint, deployed_footprint
from .quantize import Encoding

RUNTIME_LIBRARY = "bnnembed_runtime"
#: The deferral link and the application logic (decide -> defer -> final), copied into the
#: runtime library of every project beside RUNTIME_FILES; the port file provides bnn_io.h.
APP_FILES = ("bnn_io.h", "bnn_protocol.h", "bnn_protocol.c", "bnn_app.h", "bnn_app.c")
#: The example application (a hand-written console over the port's text channel): the project's src/main.c.
CONSOLE_FILE = "bnn_console.c"
PORT_FILES = {"arduino": "bnn_port_arduino.cpp", "espidf": "bnn_port_espidf.c"}


def check_budget(model, board, encoding: Encoding | str = Encoding.FLOAT) -> Footprint:
    """Raise :class:`BnnError` naming the sizes if the model does not fit the board."""
    fp = deployed_footprint(model, encoding, board.popcount.by_columns)
    # the example application also keeps one feature vector in RAM, and the link its frame
    # buffers (a request frame, a reply frame; int16 models a float copy for deferrals)
    n = model.encoder.n_features
    value = 4 if Encoding(encoding) is Encoding.FLOAT else 2 + 4
    ram = fp.ram_bytes + value * n + app_link_ram(n)
    if fp.flash_bytes > board.model_flash_budget:
        raise BnnError(
            f"the model needs {fp.flash_bytes} bytes of flash but {board.id} has {board.model_flash_budget} "
            f"for it ({board.flash_bytes} total, {board.reserved_flash_bytes} reserved for the framework); "
            "choose a bigger board or build smaller bounds (--hidden, fewer bits per feature)"
        )
    if ram > board.model_ram_budget:
        raise BnnError(
            f"the model needs {ram} bytes of RAM but {board.id} has {board.model_ram_budget} for it "
            f"({board.ram_bytes} total, {board.reserved_ram_bytes} reserved for the framework); "
            "choose a bigger board or build smaller bounds"
        )
    return Footprint(fp.flash_bytes, ram)


def app_link_ram(n_features: int) -> int:
    """RAM of the example's link buffers (BNN_APP_TX_SIZE + BNN_APP_RX_SIZE, firmware/bnn_app.h):
    the whole wire frame of the largest request (a REPORT of float32 features, COBS overhead and
    both delimiters) and the longest reply frame."""
    request = 10 + 8 + 4 * n_features + 4
    reply = 10 + 5 + 4
    return (request + request // 254 + 1 + 2) + (reply + reply // 254 + 2)


def render_board_project(model, board, encoding: Encoding | str = Encoding.FLOAT) -> dict[str, str]:
    """Every file of the PlatformIO project for ``board``: relative path -> text."""
    encoding = Encoding(encoding)
    fp = check_budget(model, board, encoding)
    ctx = model_context(model, encoding, board.popcount.by_columns)
    env = template_env()
    flags = list(board.build_flags) + [
        f"-D BNN_POPCOUNT_STRATEGY={int(board.popcount)}",
        f"-D BNN_SERIAL_BAUD={int(board.monitor_speed)}",
        *(f"-D {name}={value}" for name, value in row_word_defines(model).items()),
    ]
    pctx = {
        **ctx,
        "board": board,
        "board_name": board.name,
        "env": board.id,
        "build_flags": flags,
        # flash: the model tables (as bnn_model.h says); RAM: the model's and the example application's
        "flash_bytes": ctx["flash_bytes"],
        "ram_bytes": fp.ram_bytes,
    }
    files: dict[str, str] = {
        "platformio.ini": env.get_template("project/platformio.ini.j2").render(**pctx),
        f"lib/{RUNTIME_LIBRARY}/library.json": env.get_template("project/library.json.j2").render(**pctx),
    }
    for name, text in render_model_sources(model, encoding, board.popcount.by_columns).items():
        files[f"src/{name}"] = text
    for name, text in runtime_sources().items():
        files[f"lib/{RUNTIME_LIBRARY}/src/{name}"] = text
    fw = resource_dir("firmware")
    files["src/main.c"] = (fw / CONSOLE_FILE).read_text()
    for name in APP_FILES:
        files[f"lib/{RUNTIME_LIBRARY}/src/{name}"] = (fw / name).read_text()
    ports = fw / "ports"
    files["src/bnn_port.h"] = (ports / "bnn_port.h").read_text()
    port = PORT_FILES[board.framework]
    files[f"src/{port}"] = (ports / port).read_text()
    if board.framework == "espidf":
        files["CMakeLists.txt"] = env.get_template("project/CMakeLists.txt.j2").render(**pctx)
        files["src/CMakeLists.txt"] = env.get_template("project/src_CMakeLists.txt.j2").render(**pctx)
    return files


def write_board_project(model, board, out_dir, encoding: Encoding | str = Encoding.FLOAT) -> list[str]:
    """Write the PlatformIO project into ``out_dir``; returns the relative paths written."""
    files = render_board_project(model, board, encoding)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BnnError(f"{out} exists and is not a directory; choose another --out")
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return sorted(files)
