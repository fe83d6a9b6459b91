"""Code generation: tables, banner, host-gcc builds equal to numpy, boards and PlatformIO projects."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from bnnembed import Decision, __version__
from bnnembed._resources import resource_dir
from bnnembed.device.boards import get_board, load_boards
from bnnembed.cli import main
from bnnembed.device.app_codes import DecisionSource, FinalDecision
from bnnembed.link import protocol as P
from bnnembed.render.c import PopcountStrategy, c_float, render_model_sources
from bnnembed.render.codes import committed_header, render_codes_header
from bnnembed.render.project import render_board_project, write_board_project
from bnnembed.render.quantize import Encoding, encode_int16, int16_scales, quantize_int16
from bnnembed.learn.data import load_data
from bnnembed.errors import BnnError
from bnnembed.device.qemu import check_against_numpy, numpy_reference

from firmware_fixtures import boundary_rows, build_example_app, make_artifact, rows_for
from _paths import GOLDEN as TEST_FILES

REQUIRED_BOARDS = {"nucleo_f401re", "bluepill_f103c8", "disco_f746ng", "nrf52840_dk", "pico",
                   "esp32dev", "esp32-c3-devkitm-1", "esp32-s3-devkitc-1"}


@pytest.fixture(scope="module")
def digits_art(tmp_path_factory):
    return make_artifact(tmp_path_factory.mktemp("digits"), "digits")


@pytest.fixture(scope="module")
def bc_art(tmp_path_factory):
    return make_artifact(tmp_path_factory.mktemp("bc"), "breast_cancer", bits_per_feature=6)


def need_gcc():
    if shutil.which("gcc") is None:
        pytest.skip("host gcc not installed")


# --- pure helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0.0, -0.0, 1.0, 5.0, 0.1184, -3.25, 1e-30, 1e-40, 3.4e38, 17.99])
def test_c_float_is_exact(value):
    text = c_float(value)
    assert text.endswith("f")
    assert float.fromhex(text[:-1]) == float(np.float32(value))


def test_codes_header_is_generated_from_the_enums():
    """firmware/bnn_codes.h is exactly what the Python enums render (regenerate, never hand-edit)."""
    assert committed_header().read_text() == render_codes_header(), (
        "firmware/bnn_codes.h is stale: run python -m bnnembed.render.codes --write")


def test_c_sees_every_python_code(tmp_path):
    """Compile a program that prints every shared constant as C sees it; compare with the enums."""
    need_gcc()
    tables = [(Decision, "BNN_"), (P.MsgType, "BNN_MSG_"), (P.NackReason, "BNN_NACK_"),
              (P.FrameStatus, "BNN_PROTO_"), (P.LinkStatus, "BNN_LINK_"), (DecisionSource, "BNN_SOURCE_"),
              (FinalDecision, "BNN_FINAL_"), (PopcountStrategy, "BNN_POPCOUNT_")]
    expected = [(f"{prefix}{m.name}", int(m)) for cls, prefix in tables for m in cls]
    expected += [("BNN_PROTO_VERSION", P.PROTOCOL_VERSION), ("BNN_PROTO_HEADER_SIZE", P.HEADER_SIZE),
                 ("BNN_PROTO_CRC_SIZE", P.CRC_SIZE), ("BNN_PROTO_MAX_FEATURES", P.MAX_FEATURES),
                 ("BNN_PROTO_DECISION_INVALID", int(Decision.INVALID)),
                 ("BNN_PROTO_N_STATUS", len(P.DROP_REASONS) + 1)]
    lines = "\n".join(f'    printf("{name} %ld\\n", (long)({name}));' for name, _ in expected)
    names = "\n".join(f'    printf("name %d %s\\n", (int)BNN_{d.name}, bnn_decision_name(BNN_{d.name}));'
                      for d in Decision)
    src = tmp_path / "codes.c"
    src.write_text(f"""#include <stdio.h>
#include "bnn.h"
#include "bnn_protocol.h"
#include "bnn_app.h"
int main(void)
{{
{lines}
{names}
    printf("version %s\\n", BNN_RUNTIME_VERSION);
    return 0;
}}
""")
    fw = resource_dir("firmware")
    exe = tmp_path / "codes"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", f"-I{fw}", str(src), str(fw / "bnn.c"),
                    str(fw / "bnn_kernels.c"), "-o", str(exe)], check=True, capture_output=True, text=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.splitlines()
    got = dict(line.split(" ", 1) for line in out if not line.startswith("name "))
    assert {k: int(v) for k, v in got.items() if k != "version"} == dict(expected)
    assert got["version"] == __version__
    assert [line for line in out if line.startswith("name ")] == [f"name {int(d)} {d.label}" for d in Decision]


def test_int16_scales_exact_for_integer_data(digits_art):
    shifts, tq, exact = int16_scales(digits_art.encoder)
    assert exact.all()
    assert np.all(np.abs(tq.astype(np.int64)) <= 32767)
    X = load_data("digits").X
    assert np.array_equal(encode_int16(digits_art.encoder, quantize_int16(digits_art.encoder, X)),
                          digits_art.encoder.encode(X))


def test_int16_never_misses_a_set_bit(bc_art):
    # monotone quantisation: x >= t implies q >= tq; differences only one-sided and rare
    enc = bc_art.encoder
    X = np.concatenate([load_data("breast_cancer").X, boundary_rows(enc, load_data("breast_cancer").X, 600)])
    fbits = enc.encode(X)
    qbits = encode_int16(enc, quantize_int16(enc, X))
    assert np.all(qbits >= fbits)
    _, _, exact = int16_scales(enc)
    owner = enc.bit_owner()
    diff_bits = np.nonzero((qbits != fbits).any(axis=0))[0]
    assert all(not exact[owner[b]] for b in diff_bits)


# --- generated sources ----------------------------------------------------------------------


def test_banner_in_every_generated_file(digits_art):
    files = render_board_project(digits_art, get_board("nucleo_f401re"))
    generated = [p for p in files if p.endswith((".ini", "bnn_model.c", "bnn_model.h", "library.json"))]
    assert len(generated) == 4
    for path in generated:
        head = "\n".join(files[path].splitlines()[:10])
        assert "generated — do not edit" in head, path
        assert digits_art.model_hash in head, path
        assert __version__ in head, path
    model_c = files["src/bnn_model.c"]
    shape = " -> ".join(str(s) for s in digits_art.upper.shape)
    assert f"upper bound (answers yes): {shape}, tau = {digits_art.upper.tau}" in model_c
    assert "/* upper layer 0 by columns: " in model_c and "/* lower layer 2: " in model_c  # the board's kernel: columns
    assert '"pixel (0,1)"' in model_c  # thresholds commented with the feature names
    assert "malloc" not in model_c


def test_sizes_are_defines(digits_art):
    h = render_model_sources(digits_art)["bnn_model.h"]
    enc = digits_art.encoder
    assert f"#define BNN_N_FEATURES {enc.n_features}" in h
    assert f"#define BNN_N_BITS {enc.n_bits}" in h
    assert f"#define BNN_UPPER_TAU {digits_art.upper.tau}" in h
    assert "#define BNN_HIDDEN_WORDS 2" in h  # 64 hidden neurons


def test_host_gcc_strict_build_equals_numpy(digits_art, bc_art):
    need_gcc()
    for art, source in ((digits_art, "digits"), (bc_art, "breast_cancer")):
        X = rows_for(art, source, 1000)
        for encoding in Encoding:
            from bnnembed.device.qemu import BuildOptions

            rep = check_against_numpy(art, "host", X, BuildOptions(encoding=encoding, opt="-O2",
                                                                   extra_cflags=("-pedantic",)))
            assert rep.rows == 1000
            assert rep.mismatches == 0 and rep.score_mismatches == 0, (source, encoding)
            assert min(rep.decisions[k] for k in ("no", "yes", "unknown")) > 0  # all three exercised


def test_host_builtin_kernel_equals_reference(digits_art):
    need_gcc()
    from bnnembed.device.qemu import BuildOptions

    rep = check_against_numpy(digits_art, "host", load_data("digits").X[:300],
                              BuildOptions(popcount=PopcountStrategy.BUILTIN))
    assert rep.mismatches == 0 and rep.score_mismatches == 0


def _build_app(project, tmp_path):
    exe = tmp_path / "app"
    build_example_app(project, exe)
    return exe


@pytest.mark.parametrize("encoding", list(Encoding))
def test_example_main_over_serial_lines_equals_numpy(bc_art, tmp_path, encoding):
    """The project's src/main.c (with a stdio port) parses lines and decides like numpy."""
    need_gcc()
    project = tmp_path / "proj"
    write_board_project(bc_art, get_board("nucleo_f401re"), project, encoding)
    exe = _build_app(project, tmp_path)
    X = rows_for(bc_art, "breast_cancer", 800)
    if encoding is Encoding.FLOAT:
        lines = [",".join(np.format_float_positional(v, unique=True) for v in row) for row in X]
    else:
        lines = [" ".join(str(int(v)) for v in row) for row in quantize_int16(bc_art.encoder, X)]
    text = "\n".join(lines + ["1,2,3"]) + "\n"
    out = subprocess.run([str(exe)], input=text, capture_output=True, text=True, timeout=60).stdout
    got = out.splitlines()
    assert got[0].startswith("bnnembed ready: model " + bc_art.model_hash)
    assert got[-1].startswith("error expected 30 features, got 3")
    dec, su, sl = numpy_reference(bc_art, X, encoding)
    expect = [f"{Decision(int(d)).label} {u} {l}" for d, u, l in zip(dec, su, sl)]
    assert got[1:-1] == expect


# --- boards and PlatformIO projects -----------------------------------------------------------


def test_board_files():
    boards = load_boards()
    assert REQUIRED_BOARDS <= set(boards)
    from bnnembed.device.machines import MACHINES

    for b in boards.values():
        assert b.model_flash_budget > 0 and b.model_ram_budget > 0
        assert b.qemu_machine in MACHINES or b.compile_standin, b.id
    assert get_board("esp32dev").compile_standin == "xtensa-lx106"


def test_unknown_board_lists_boards():
    with pytest.raises(BnnError, match=r"unknown board 'nope'; available boards: .*nucleo_f401re"):
        get_board("nope")


def test_every_generated_project_passes_platformio_lint(digits_art, tmp_path):
    from platformio.project.config import ProjectConfig

    for board in load_boards().values():
        out = tmp_path / board.id
        files = write_board_project(digits_art, board, out)
        assert "platformio.ini" in files and "src/main.c" in files
        assert f"lib/bnnembed_runtime/library.json" in files
        lint = ProjectConfig.lint(str(out / "platformio.ini"))
        assert lint == {"errors": [], "warnings": []}, (board.id, lint)
        cfg = ProjectConfig(str(out / "platformio.ini"))
        env = f"env:{board.id}"
        assert cfg.get(env, "board") == board.pio_board
        assert cfg.get(env, "framework") == [board.framework]
        assert f"-D BNN_POPCOUNT_STRATEGY={int(board.popcount)}" in cfg.get(env, "build_flags")
        lib = json.loads((out / "lib" / "bnnembed_runtime" / "library.json").read_text())
        assert lib["name"] == "bnnembed-runtime"
        if board.framework == "espidf":
            assert (out / "CMakeLists.txt").exists() and (out / "src" / "bnn_port_espidf.c").exists()


def test_model_too_big_for_board_names_sizes(tmp_path):
    art = make_artifact(tmp_path / "big", "digits", hidden=(512, 256), bits_per_feature=4)
    with pytest.raises(BnnError, match=r"needs \d+ bytes of flash but bluepill_f103c8 has 32768"):
        render_board_project(art, get_board("bluepill_f103c8"))


def test_cli_boards_and_codegen(digits_art, tmp_path, capsys):
    assert main(["boards", "--json"]) == 0
    listed = {b["id"] for b in json.loads(capsys.readouterr().out)}
    assert REQUIRED_BOARDS <= listed
    out = tmp_path / "p"
    assert main(["codegen", digits_art.path, "--board", "pico", "--out", str(out)]) == 0
    assert "no FPU" in capsys.readouterr().out
    assert (out / "platformio.ini").exists()
    assert main(["codegen", digits_art.path, "--board", "nope", "--out", str(out)]) == 2
    assert "available boards" in capsys.readouterr().err


# --- cross-compilers (compile-only stand-ins, e.g. for the ESP32's Xtensa cores) -----------------

CROSS = {
    "xtensa-lx106": ("xtensa-lx106-elf-gcc", "xtensa-lx106-elf-nm", ["-mlongcalls"]),
    "cortex-m0plus": ("arm-none-eabi-gcc", "arm-none-eabi-nm", ["-mcpu=cortex-m0plus", "-mthumb"]),
    "rv32imc": ("riscv64-unknown-elf-gcc", "riscv64-unknown-elf-nm", ["-march=rv32imc", "-mabi=ilp32"]),
}


@pytest.mark.parametrize("core", sorted(CROSS))
def test_cross_compile_strict_without_popcountsi2(digits_art, tmp_path, core):
    import os

    cc, nm, flags = CROSS[core]
    if shutil.which(cc) is None:
        if os.environ.get("BNNEMBED_STRICT_QEMU") == "1":
            pytest.fail(f"{cc} missing")
        pytest.skip(f"{cc} not installed")
    for name, text in render_model_sources(digits_art).items():
        (tmp_path / name).write_text(text)
    fw = resource_dir("firmware")
    def undefined_symbols(strategy: PopcountStrategy) -> str:
        objs = []
        for src in [tmp_path / "bnn_model.c", fw / "bnn.c", fw / "bnn_kernels.c"]:
            obj = tmp_path / f"{src.stem}-{int(strategy)}.o"
            subprocess.run([cc, *flags, "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror",
                            "-ffreestanding", f"-DBNN_POPCOUNT_STRATEGY={int(strategy)}", f"-I{fw}",
                            f"-I{tmp_path}", "-c", str(src), "-o", str(obj)],
                           check=True, capture_output=True, text=True)
            objs.append(str(obj))
        return subprocess.run([nm, "-u", *objs], check=True, capture_output=True, text=True).stdout

    assert "__popcountsi2" not in undefined_symbols(PopcountStrategy.SWAR)
    # control: the builtin does become a libgcc call on this core, so the check can see it
    assert "__popcountsi2" in undefined_symbols(PopcountStrategy.BUILTIN)


# --- golden files: a tiny hand-made model, refreshed only on purpose -----------------------------

GOLDEN = TEST_FILES / "firmware"


def tiny_artifact(pair: bool = False):
    """3 features -> 3 bits -> 2 -> 1. The lower bound shares the upper's hidden layer (one network,
    two output neurons) unless ``pair``, where its hidden layer is its own."""
    from bnnembed.artifact import Artifact
    from bnnembed.model.encoding import Thermometer
    from bnnembed.model.intmodel import BoundNet, IntLayer
    from bnnembed.model.packing import pack_bits

    enc = Thermometer(3, np.array([0, 2], np.int32), np.array([0, 2, 3], np.int32),
                      np.array([0.5, 1.25, -3.0], np.float32))
    hidden = IntLayer(3, pack_bits(np.array([[1, 0, 0], [0, 1, 1]])), np.array([2, 1], np.int32))
    up = BoundNet("yes", (hidden, IntLayer(2, pack_bits(np.array([[0, 1]])), np.array([2], np.int32))))
    lo_hidden = IntLayer(3, pack_bits(np.array([[0, 1, 0], [1, 1, 0]])), np.array([1, 2], np.int32)) if pair else hidden
    lo = BoundNet("no", (lo_hidden, IntLayer(2, pack_bits(np.array([[1, 0]])), np.array([1], np.int32))))
    manifest = {"model_hash": "0123456789abcdef", "features": {"names": ["alpha", "unused", "gamma */ beta"]}}
    return Artifact("", manifest, enc, up, lo)


@pytest.mark.parametrize("name", ["bnn_model.h", "bnn_model.c", "platformio.ini", "main.c", "bnn_model_pair.c"])
def test_golden_files(name):
    """Set BNNEMBED_UPDATE_GOLDEN=1 to rewrite tests/golden/firmware/ after an intended change.
    ``bnn_model_pair.c`` is the model of a pair (each bound its own hidden layer), the others of one
    network read both ways."""
    import os

    files = render_board_project(tiny_artifact(pair=name == "bnn_model_pair.c"), get_board("nucleo_f401re"))
    text = {"bnn_model.h": files["src/bnn_model.h"], "bnn_model.c": files["src/bnn_model.c"],
            "bnn_model_pair.c": files["src/bnn_model.c"],
            "platformio.ini": files["platformio.ini"], "main.c": files["src/main.c"]}[name]
    text = text.replace(__version__, "<version>")
    path = GOLDEN / name
    if os.environ.get("BNNEMBED_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if not path.exists():
        # a missing golden file is a failure, never silently written: a deleted or renamed
        # golden would otherwise make this test pass with whatever the generator prints today
        pytest.fail(f"golden file {path} is missing; after checking the generated output, create it with "
                    "BNNEMBED_UPDATE_GOLDEN=1 python -m pytest tests/render/test_codegen.py -k test_golden_files")
    assert text == path.read_text(), (f"{name} differs from {path}; if the change is intended, rewrite the "
                                      f"golden files with BNNEMBED_UPDATE_GOLDEN=1")


def test_shifted_copies_on_host_and_int16_refused(tmp_path):
    """A model deciding over shifted copies: the strict host build equals numpy from floats and
    bytes, boundary rows included; the banner names the copies; int16 tables are refused (a value
    moved to a column quantized at another scale would change its meaning)."""
    need_gcc()
    from bnnembed.device.qemu import BuildOptions

    art = make_artifact(tmp_path / "c3", "digits", one_network=True, copies=3)
    X = rows_for(art, "digits", 1000)
    X = np.concatenate([X, boundary_rows(art.encoder, X, 500)])
    for uint8 in (False, True):
        rows = np.clip(np.round(X), 0, 255) if uint8 else X
        rep = check_against_numpy(art, "host", rows, BuildOptions(opt="-O2", extra_cflags=("-pedantic",),
                                                                  uint8_input=uint8))
        assert (rep.mismatches, rep.score_mismatches) == (0, 0), uint8
    c = render_model_sources(art)["bnn_model.c"]
    assert "shifted copies: 3 of the 8x8 image, moved by (dy, dx) = (0, 0), (0, 1), (0, -1)" in c
    assert "static const int8_t bnn_copy_shifts[2 * 3] = { 0, 0, 0, 1, 0, -1 };" in c
    with pytest.raises(BnnError, match="shifted copies runs on float or uint8 input"):
        render_model_sources(art, Encoding.INT16)
