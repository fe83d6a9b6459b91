"""The generated C under QEMU: bit-exact against numpy on every machine, sizes, instruction counts.

A missing cross-compiler or emulator is a skip locally and a failure when BNNEMBED_STRICT_QEMU=1.
Every QEMU run happens under a timeout (bnnembed.device.qemu.run_elf).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from bnnembed.artifact import Artifact
from bnnembed.cli import main
from bnnembed._resources import resource_dir
from bnnembed.render.c import PopcountStrategy, decision_macs
from bnnembed.render.footprint import STRUCT_FIELDS, model_footprint
from bnnembed.render.quantize import Encoding
from bnnembed.errors import BnnError
from bnnembed.model.intmodel import BoundNet, IntLayer
from bnnembed.model.packing import pack_bits
from bnnembed.device.elf import pointer_bytes
from bnnembed.device.machines import MACHINES, get_machine, qemu_machines
from bnnembed.device.qemu import (BuildOptions, _parse, check_against_numpy, defer_frame_instructions, defer_frames,
                                  run_on_qemu)
from bnnembed.device.toolchain import TOOLCHAINS, require_tool

from bnnembed.learn.data import load_data
from firmware_fixtures import make_artifact, rows_for

pytestmark = pytest.mark.qemu
ROWS = 1000


def need_machine(name: str):
    m = get_machine(name)
    tools = [TOOLCHAINS[m.toolchain].cc] + ([m.qemu] if m.qemu else [])
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        if os.environ.get("BNNEMBED_STRICT_QEMU") == "1":
            pytest.fail(f"{', '.join(missing)} missing (BNNEMBED_STRICT_QEMU=1)")
        pytest.skip(f"{', '.join(missing)} not installed")
    return m


@pytest.fixture(scope="module")
def arts(tmp_path_factory):
    return {
        "digits": make_artifact(tmp_path_factory.mktemp("digits"), "digits"),
        "breast_cancer": make_artifact(tmp_path_factory.mktemp("bc"), "breast_cancer", bits_per_feature=6),
    }


def test_machine_list():
    assert set(qemu_machines()) >= {"microbit", "mps2-an385", "mps2-an386", "mps2-an500", "mps2-an505",
                                    "mps3-an547", "netduinoplus2", "riscv32-virt"}


#: Instructions per binary MAC of the bounds (reference SWAR kernel, -O2), as measured on each
#: machine for the fixture artifacts below; the test allows +-15% (another compiler release), so a
#: kernel doing a second pass, or one that skips a layer, is seen.
IPB_MEASURED = {
    "microbit": {"digits": 1.359, "breast_cancer": 1.292},  # Cortex-M0 (Thumb-1): about twice the others
    "mps2-an385": {"digits": 0.731, "breast_cancer": 0.698},
    "mps2-an386": {"digits": 0.731, "breast_cancer": 0.699},
    "mps2-an500": {"digits": 0.731, "breast_cancer": 0.699},
    "mps2-an505": {"digits": 0.731, "breast_cancer": 0.698},
    "mps3-an547": {"digits": 0.747, "breast_cancer": 0.701},
    "netduinoplus2": {"digits": 0.731, "breast_cancer": 0.699},
    "riscv32-virt": {"digits": 0.873, "breast_cancer": 0.850},
}
IPB_TOLERANCE = 0.15


def _struct_size(fields, ptr: int) -> int:
    """sizeof a C struct of (size, align) fields ("p" = a pointer) under the usual ABI rules."""
    off, align = 0, 1
    for size, al in fields:
        size, al = (ptr, ptr) if size == "p" else (size, al)
        off = -(-off // al) * al + size
        align = max(align, al)
    return -(-off // align) * align


def expected_model_symbols(art, ptr: int, columns: bool = False) -> tuple[dict, dict]:
    """Bytes of every symbol the generated bnn_model.c defines (float encoding), derived from the
    artifact's own arrays and the declarations of firmware/bnn.h: (flash tables, RAM buffers).
    ``columns``: generated for the COLUMNS kernel (dense hidden layers: per 32 neurons, n_in
    column words and 2 x bit_length(n_in) threshold planes; no max_mismatch)."""
    enc, upper, lower = art.model.device_parts  # with shifted copies: the bounds run on every copy
    u16 = (2, 2)
    flash = {
        "bnn_feature_index": 2 * enc.n_kept,  # uint16_t[BNN_N_KEPT]
        "bnn_offsets": 2 * (enc.n_kept + 1),  # uint16_t[BNN_N_KEPT + 1]
        "bnn_thresholds": 4 * len(enc.thresholds),  # float[BNN_N_BITS]
        "bnn_encoder": _struct_size([u16, u16, u16] + [("p", 0)] * 5, ptr),  # bnn_encoder_t
        "bnn_model": _struct_size([("p", 0)] * 7, ptr),  # bnn_model_t
    }
    if art.copies is not None:
        flash["bnn_copy_shifts"] = 2 * art.copies.k  # int8_t[2 * n_copies]
        flash["bnn_copies"] = _struct_size([(1, 1), (1, 1), (1, 1)] + [("p", 0)] * 2, ptr)  # bnn_copies_t
    assert len(enc.thresholds) == enc.n_bits
    hidden = [1]
    shared = art.model.one_network  # the lower bound's hidden layers are the upper's tables
    for name, net in (("upper", upper), ("lower", lower)):
        for i, layer in enumerate(net.layers):
            if shared and name == "lower" and i < len(net.layers) - 1:
                continue
            words = -(-layer.n_in // 32)
            assert layer.weights.shape == (layer.n_out, words) and layer.weights.dtype == np.uint32
            assert layer.thresholds.shape == (layer.n_out,)
            if i < len(net.layers) - 1:
                hidden.append(-(-layer.n_out // 32))
            if columns and i < len(net.layers) - 1 and layer.mask is None:
                groups = -(-layer.n_out // 32)
                flash[f"bnn_{name}_l{i}_weights"] = 4 * groups * (layer.n_in + 2 * layer.n_in.bit_length())
                continue
            rows = 2 * layer.n_out if layer.mask is not None else layer.n_out  # the mask rows follow the weights
            flash[f"bnn_{name}_l{i}_weights"] = 4 * rows * words  # uint32_t[(2 *) n_out * n_words]
            flash[f"bnn_{name}_l{i}_max_mismatch"] = 2 * layer.n_out  # int16_t[n_out]: one per threshold
        flash[f"bnn_{name}_layers"] = len(net.layers) * _struct_size([u16, u16, u16, u16, ("p", 0), ("p", 0)], ptr)
        flash[f"bnn_{name}"] = _struct_size([(1, 1), (1, 1), ("p", 0), ("p", 0)], ptr)  # bnn_bound_t
    ram = {"bnn_input_bits": 4 * -(-enc.n_bits // 32), "bnn_scratch_a": 4 * max(hidden),
           "bnn_scratch_b": 4 * max(hidden)}
    if art.copies is not None:
        ram["bnn_shifted"] = 4 * enc.n_features  # one moved image: float / int16 / uint8 views
    dense = [layer.n_in // 2 for net in (upper, lower) for layer in net.layers[:-1] if layer.mask is None]
    if columns and dense:  # the minority side's bit offsets: at most n_in / 2 of the widest dense hidden layer
        ram["bnn_column_items"] = 4 * max([1] + dense)
    return flash, ram


def test_struct_fields_are_the_declarations_of_bnn_h():
    """render.footprint.STRUCT_FIELDS, which the predicted footprint lays out, is firmware/bnn.h's."""
    import re

    text = (resource_dir("firmware") / "bnn.h").read_text()
    declared = {}
    for body, name in re.findall(r"typedef struct \{(.*?)\} (\w+);", text, re.S):
        fields = []
        for line in body.splitlines():
            code = line.split("/*")[0].strip()
            if code:
                c_type, field_name = re.fullmatch(r"(.+?)\s*(\w+);", code).groups()
                fields.append((field_name, re.sub(r"\s*\*$", " *", c_type)))
        declared[name] = tuple(fields)
    assert {name: declared.get(name) for name in STRUCT_FIELDS} == STRUCT_FIELDS


def elf_symbol_sizes(elf, machine) -> dict:
    """{name: size} of the ELF's sized symbols, read with the machine toolchain's nm."""
    import subprocess

    nm = shutil.which(TOOLCHAINS[machine.toolchain].nm)
    assert nm, TOOLCHAINS[machine.toolchain].nm
    out = subprocess.run([nm, "--size-sort", "-S", str(elf)], capture_output=True, text=True, check=True).stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4:
            sizes[parts[3]] = int(parts[1], 16)
    return sizes


@pytest.fixture(scope="module")
def masked_arts(tmp_path_factory):
    """The fixtures with every layer of both bounds masked (half the bits read; per layer one
    neuron reads every bit and one none)."""
    return {
        "digits": make_artifact(tmp_path_factory.mktemp("digits_masked"), "digits", mask_density=0.5),
        "breast_cancer": make_artifact(tmp_path_factory.mktemp("bc_masked"), "breast_cancer",
                                       bits_per_feature=6, mask_density=0.5),
    }


def _check_footprint(art, m, rep, tmp_path, columns: bool = False):
    """Every table of bnn_model.c has exactly the bytes its declaration and the artifact's arrays
    give, in the ELF's own symbol table; the report and the prediction add up the same numbers."""
    elf = tmp_path / "fw.elf"
    ptr = pointer_bytes(elf)  # EI_CLASS: ELF32 or ELF64
    flash, ram = expected_model_symbols(art, ptr, columns)
    sizes = elf_symbol_sizes(elf, m)
    got = {name: sizes.get(name) for name in {**flash, **ram}}
    assert got == {**flash, **ram}
    assert rep.model_flash_bytes == sum(flash.values())
    assert rep.ram_bytes == sum(ram.values())  # the runtime itself keeps no static state
    predicted = model_footprint(*art.model.device_parts, Encoding.FLOAT, pointer_bytes=ptr, copies=art.copies,
                                columns=columns)
    assert (predicted.flash_bytes, predicted.ram_bytes) == (rep.model_flash_bytes, rep.ram_bytes)


@pytest.mark.parametrize("machine", qemu_machines())
def test_masked_bit_exact_on_every_machine(masked_arts, machine, tmp_path):
    """Masked layers (popcount((a XOR w) AND m) <= n_j - T): every decision and both scores equal
    numpy on every machine, with the reference kernel; sizes to the byte, mask rows included."""
    m = need_machine(machine)
    for source, art in masked_arts.items():
        assert all(layer.mask is not None for net in (art.upper, art.lower) for layer in net.layers)
        work = tmp_path / source
        rep = check_against_numpy(art, machine, rows_for(art, source, ROWS), workdir=str(work))
        assert rep.rows == ROWS and rep.mismatches == 0 and rep.score_mismatches == 0
        assert min(rep.decisions[k] for k in ("no", "yes", "unknown")) > 0
        _check_footprint(art, m, rep, work)


@pytest.fixture(scope="module")
def one_network_arts(tmp_path_factory):
    """Fixtures of one network read both ways (the lower bound takes the upper's hidden layers),
    dense and with every layer masked."""
    return {
        "digits": make_artifact(tmp_path_factory.mktemp("digits_one"), "digits", one_network=True),
        "breast_cancer": make_artifact(tmp_path_factory.mktemp("bc_one"), "breast_cancer", bits_per_feature=6,
                                       mask_density=0.5, one_network=True),
    }


@pytest.mark.parametrize("machine", qemu_machines())
def test_one_network_bit_exact_on_every_machine(one_network_arts, arts, machine, tmp_path):
    """One network read both ways: every decision and both scores equal numpy on every machine;
    the hidden tables are laid out once (sizes to the byte) and run once (the binary MACs and the
    instructions of a decision are those of one network plus an output neuron, not of a pair)."""
    m = need_machine(machine)
    for source, art in one_network_arts.items():
        assert art.model.one_network and art.manifest["format_version"] == 4
        work = tmp_path / source
        rep = check_against_numpy(art, machine, rows_for(art, source, ROWS), workdir=str(work))
        assert rep.rows == ROWS and rep.mismatches == 0 and rep.score_mismatches == 0
        assert min(rep.decisions[k] for k in ("no", "yes", "unknown")) > 0
        _check_footprint(art, m, rep, work)
        hidden = sum(layer.n_in * layer.n_out for layer in art.upper.layers[:-1])
        assert rep.binary_macs == hidden + 2 * art.upper.layers[-1].n_in
    # the same upper bound with its own lower network costs about twice the instructions
    pair = check_against_numpy(arts["digits"], machine, rows_for(arts["digits"], "digits", 50),
                               workdir=str(tmp_path / "pair"))
    one = check_against_numpy(one_network_arts["digits"], machine, rows_for(arts["digits"], "digits", 50),
                              workdir=str(tmp_path / "one"))
    assert one.bounds_instructions < 0.6 * pair.bounds_instructions


@pytest.mark.parametrize("source", ["digits", "breast_cancer"])
@pytest.mark.parametrize("machine", qemu_machines())
def test_bit_exact_on_every_machine(arts, machine, source, tmp_path):
    m = need_machine(machine)
    art = arts[source]
    X = rows_for(art, source, ROWS)
    rep = check_against_numpy(art, machine, X, workdir=str(tmp_path))
    assert rep.rows == ROWS
    assert rep.mismatches == 0 and rep.score_mismatches == 0
    assert min(rep.decisions[k] for k in ("no", "yes", "unknown")) > 0 and rep.decisions["invalid"] == 0
    assert not rep.popcountsi2  # the ELF's symbols: libgcc's popcount is not linked at all
    _check_footprint(art, m, rep, tmp_path)  # the prediction (codegen's budget check) is the ELF's, to the byte
    assert 0 < rep.runtime_flash_bytes < 4096
    assert rep.flash_bytes == rep.model_flash_bytes + rep.runtime_flash_bytes
    # instructions: per binary MAC (counted from the layer shapes) within 15% of the measured value
    macs = sum(layer.n_in * layer.n_out for net in (art.upper, art.lower) for layer in net.layers)
    assert rep.binary_macs == macs
    ipb = rep.bounds_instructions / macs
    assert rep.instructions_per_bmac == pytest.approx(ipb, abs=1e-4)
    want = IPB_MEASURED[machine][source]
    assert abs(ipb / want - 1) <= IPB_TOLERANCE, f"{ipb:.4f} instructions per binary MAC, measured {want}"
    assert rep.instructions_per_inference == pytest.approx(rep.encode_instructions + rep.bounds_instructions,
                                                           abs=0.2)


@pytest.mark.parametrize("machine", ["microbit", "riscv32-virt", "mps2-an385"])
def test_int16_variant_bit_exact(arts, machine):
    need_machine(machine)
    for source, art in arts.items():
        rep = check_against_numpy(art, machine, rows_for(art, source, ROWS),
                                  BuildOptions(encoding=Encoding.INT16))
        assert rep.mismatches == 0 and rep.score_mismatches == 0
        predicted = model_footprint(art.encoder, art.upper, art.lower, Encoding.INT16)  # 32-bit targets
        assert (predicted.flash_bytes, predicted.ram_bytes) == (rep.model_flash_bytes, rep.ram_bytes)
        if source == "digits":  # integer pixels: the int16 model is the float model
            assert rep.float_mismatches == 0


@pytest.fixture(scope="module")
def copies_arts(tmp_path_factory):
    """Digits fixtures deciding over shifted copies: one network over 3 copies, a masked pair over 5."""
    return {
        "one3": make_artifact(tmp_path_factory.mktemp("digits_c3"), "digits", one_network=True, copies=3),
        "pair5": make_artifact(tmp_path_factory.mktemp("digits_c5"), "digits", mask_density=0.5, copies=5),
    }


@pytest.mark.parametrize("machine", qemu_machines())
def test_shifted_copies_bit_exact_on_every_machine(copies_arts, machine, tmp_path):
    """Both bounds run on every moved image with their output counts summed: every decision and
    both summed scores equal numpy's expanded network, from floats and from bytes, on every
    machine; the tables are stored once (sizes to the byte) and the work is k decisions."""
    m = need_machine(machine)
    X = rows_for(copies_arts["one3"], "digits", ROWS)
    for name, art in copies_arts.items():
        assert art.manifest["format_version"] == 5
        for uint8 in (False, True):
            work = tmp_path / f"{name}{int(uint8)}"
            rep = check_against_numpy(art, machine, np.round(X) if uint8 else X,
                                      BuildOptions(uint8_input=uint8), workdir=str(work))
            assert (rep.rows, rep.mismatches, rep.score_mismatches) == (ROWS, 0, 0), (name, uint8)
            assert rep.copies == art.copies.k and rep.encode_instructions in (0.0, None)
            assert min(rep.decisions[k] for k in ("no", "yes", "unknown")) > 0
            _check_footprint(art, m, rep, work)
        _, up, lo = art.model.device_parts
        assert rep.binary_macs == art.copies.k * decision_macs(up, lo)


def _byte_rows(art, source: str) -> np.ndarray:
    """1,000 rows of whole numbers 0..255: the data set's own where they are bytes (digits), then
    random bytes, which land in every gap between thresholds (breast_cancer's go past 255)."""
    X = load_data(source).X
    own = X[np.all((X >= 0) & (X <= 255) & (X == np.floor(X)), axis=1)][: ROWS // 2]
    rand = np.random.default_rng(7).integers(0, 256, (ROWS - len(own), art.encoder.n_features))
    return np.concatenate([own, rand]).astype(np.float32)


@pytest.mark.parametrize("machine", qemu_machines())
def test_uint8_input_bit_exact_on_every_machine(arts, machine, tmp_path):
    """bnn_decide_u8() on bytes decides exactly as numpy does on their floats (float tables: the
    FPU's compare, or the integer compare of IEEE bits on cores without one) or on their int16
    quantization (int16 tables), on every machine."""
    need_machine(machine)
    for source, art in arts.items():
        X = _byte_rows(art, source)
        for enc in (Encoding.FLOAT, Encoding.INT16):
            rep = check_against_numpy(art, machine, X, BuildOptions(encoding=enc, uint8_input=True),
                                      workdir=str(tmp_path))
            assert (rep.input, rep.rows, rep.mismatches, rep.score_mismatches) == ("uint8", ROWS, 0, 0), (source, enc)
            assert min(rep.decisions[k] for k in ("no", "yes")) > 0


@pytest.mark.parametrize("fpu", [0, 1], ids=["ieee-bits", "float-compare"])
def test_uint8_encoder_on_every_byte_on_host(tmp_path, fpu):
    """bnn_encode_u8() against its definition on every byte, built natively both ways (the fixtures'
    thresholds are all positive and their shifts small): float thresholds including negative ones,
    -0.0, subnormals and infinities against bnn_encode(); int16 tables for every shift -64..40."""
    need_machine("host")
    fw = resource_dir("firmware")
    exe = tmp_path / "enc"
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "c", "encode_u8_check.c")
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", f"-DBNN_HAVE_FPU_SINGLE={fpu}",
                    f"-I{fw}", src, str(fw / "bnn.c"), str(fw / "bnn_kernels.c"), "-lm", "-o", str(exe)],
                   check=True, capture_output=True, text=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60).stdout
    assert out.startswith("OK ") and int(out.split()[1]) > 1_000_000, out


@pytest.mark.parametrize("machine", ["microbit", "mps2-an386"])
def test_uint8_frames_at_every_alignment_on_device(tmp_path, machine):
    """The uint8 frame builder on the device itself, rows placed 0..3 bytes past a word boundary
    (the Cortex-M0 has no unaligned loads): each frame's length and CRC are the Python codec's."""
    from bnnembed.link import protocol as P

    need_machine(machine)
    rng = np.random.default_rng(3)
    X = np.where(rng.random((12, 300)) < 0.6, 0, rng.integers(1, 256, (12, 300))).astype(np.float32)
    X[0] = 0
    X[1] = rng.integers(1, 256, 300)  # a 254-byte block and more
    X[2] = 0
    X[2, 101:183] = rng.integers(1, 256, 82)  # an image: zero words around a band (zero runs)
    X[3] = np.repeat(rng.integers(0, 2, 75), 4) * rng.integers(1, 256, 300)  # zero and busy words mixed
    for offset in range(4):
        frames = defer_frames(300, machine, X, uint8_input=True, row_offset=offset)
        for row, (_, length, crc) in enumerate(frames.astype(np.int64)):
            payload = P.encode_payload(P.Defer(1, row + 1, 0x12345678, X[row], runs=True))
            assert (length, crc) == (len(P.frame(payload)), P.payload_crc(payload)), (offset, row)


def test_uint8_input_refuses_other_values(arts):
    X = load_data("digits").X[:5].astype(np.float32)
    X[3, 10] = 2.5
    with pytest.raises(BnnError, match="row 3 column 10 holds 2.5, not a whole number 0..255"):
        run_on_qemu(arts["digits"], "host", X, BuildOptions(uint8_input=True))


def test_uint8_defer_frame_is_cheaper_and_grows_with_the_frame():
    """The uint8 frame driver measures real work (four times the bytes, about four times the
    cost once the header is paid) and costs less than the float builder on the same values."""
    need_machine("riscv32-virt")
    X = np.random.default_rng(0).integers(0, 256, (8, 1024)).astype(np.float32)
    small = defer_frame_instructions(256, "riscv32-virt", X[:, :256], uint8_input=True)
    large = defer_frame_instructions(1024, "riscv32-virt", X, uint8_input=True)
    assert small > 0 and 3.0 < large / small < 4.5
    assert large < 0.7 * defer_frame_instructions(1024, "riscv32-virt", X)


KERNEL_ROWS = 300


def kernel_runs_on(strategy: PopcountStrategy, machine: str) -> bool:
    """ZBB emits `cpop`, a RISC-V Zbb instruction (QEMU's rv32 core has it); every other kernel is
    portable C (with assembly where the core allows it)."""
    return strategy is not PopcountStrategy.ZBB or get_machine(machine).toolchain == "riscv"


KERNEL_CASES = [(m, s) for s in PopcountStrategy if s is not PopcountStrategy.SWAR
                for m in qemu_machines() if kernel_runs_on(s, m)]


@pytest.mark.parametrize("machine,strategy", KERNEL_CASES)
def test_every_kernel_bit_exact(arts, machine, strategy, tmp_path):
    """Every optimized kernel goes through the same check as the reference, on every QEMU machine.

    Row lengths cover the kernels' tails: digits 3 bits/feature (n_in not a multiple of 32, of 3
    words or of 4 words) and breast_cancer; the wide MNIST-sized rows run in the MNIST test below.
    COLUMNS lays the hidden layers out by columns: its tables are checked to the byte in the ELF.
    """
    m = need_machine(machine)
    for source, art in arts.items():
        work = tmp_path / source
        rep = check_against_numpy(art, machine, rows_for(art, source, KERNEL_ROWS),
                                  BuildOptions(popcount=strategy), workdir=str(work))
        assert rep.rows == KERNEL_ROWS
        assert rep.mismatches == 0 and rep.score_mismatches == 0
        assert rep.popcountsi2 == (strategy is PopcountStrategy.BUILTIN)
        if strategy.by_columns:
            _check_footprint(art, m, rep, work, columns=True)


@pytest.mark.parametrize("strategy", [PopcountStrategy.CSA7, PopcountStrategy.CSA15])
def test_named_row_lengths_shrink_the_runtime_and_stay_exact(one_network_arts, strategy, tmp_path):
    """The kernels with one layer loop per row shape compile only the model's shapes when the build
    names its row lengths (BNN_ROW_WORDS_<i>, what bnnembed's builds pass): less code, the same
    answers; lengths that do not fit the model (a stale build flag) or none at all stay bit-exact,
    through the general copy or every shape."""
    m = need_machine("microbit")
    art = one_network_arts["digits"]
    X = rows_for(art, "digits", 300)
    sizes, instr = {}, {}
    for name, rows in (("model", None), ("wrong", (99,)), ("none", ())):
        rep = check_against_numpy(art, m.name, X, BuildOptions(popcount=strategy, row_words=rows),
                                  workdir=str(tmp_path / name))
        assert rep.mismatches == 0 and rep.score_mismatches == 0, name
        sizes[name], instr[name] = rep.runtime_flash_bytes, rep.bounds_instructions
    assert sizes["model"] < sizes["none"] and sizes["wrong"] < sizes["none"], sizes
    # the model's shapes keep their specialised copies (as fast as with every shape compiled); a
    # stale length sends the first layer's rows through the general copy, which is slower
    assert instr["model"] <= 1.01 * instr["none"] and instr["wrong"] > 1.01 * instr["model"], instr


@pytest.mark.parametrize("machine,strategy", KERNEL_CASES)
def test_every_kernel_bit_exact_masked(masked_arts, machine, strategy):
    """The masked path (a AND m copied, the selected kernel counts it against the weight row)
    through every optimized kernel on every QEMU machine."""
    need_machine(machine)
    for source, art in masked_arts.items():
        rep = check_against_numpy(art, machine, rows_for(art, source, KERNEL_ROWS),
                                  BuildOptions(popcount=strategy))
        assert rep.rows == KERNEL_ROWS
        assert rep.mismatches == 0 and rep.score_mismatches == 0


@pytest.mark.parametrize("strategy", [s for s in PopcountStrategy if s is not PopcountStrategy.ZBB])
def test_kernels_long_rows_masked_on_host(tmp_path, strategy):
    """Masked rows longer than the runtime's chunk (BNN_MASK_CHUNK = 16 words): 129 words."""
    _rows_on_host(tmp_path, strategy, 129, masked=True)


@pytest.mark.parametrize("strategy", [s for s in PopcountStrategy if s is not PopcountStrategy.ZBB])
def test_kernels_long_rows_on_host(tmp_path, strategy):
    """Rows longer than one accumulation block (SWAR3: 29 words, CSA: 124 words): 4,128 input
    bits = 129 words, built natively with gcc (same C, same check)."""
    _rows_on_host(tmp_path, strategy, 129)


@pytest.mark.parametrize("n_words", [29, 33, 34, 36])
def test_csa15_tails_on_host(tmp_path, n_words):
    """CSA15's row shapes the fixtures do not reach: 29 = 15 + 7 + 7 (tail of 7), 33 = 2 x 15 + 3,
    34 = 2 x 15 + 4, 36 = 2 x 15 + 6 words (six words through the 7-word unit)."""
    _rows_on_host(tmp_path, PopcountStrategy.CSA15, n_words)


@pytest.mark.parametrize("strategy", [s for s in PopcountStrategy if s is not PopcountStrategy.ZBB])
def test_kernels_whole_word_mnist_rows_on_host(tmp_path, strategy):
    """The whole-word MNIST default's first-layer rows, 21 words (CSA7: one 21-word block; CSA15:
    15 + 6 through the 7-word unit), every kernel."""
    _rows_on_host(tmp_path, strategy, 21)


def _rows_on_host(tmp_path, strategy, n_feat, masked: bool = False):
    need_machine("host")
    from bnnembed.artifact import write_artifact, load_artifact
    from bnnembed.model.encoding import Thermometer

    rng = np.random.default_rng(1)
    k = 32
    enc = Thermometer(n_feat, np.arange(n_feat, dtype=np.int32), np.arange(0, n_feat * k + 1, k, dtype=np.int32),
                      np.tile(np.arange(1, k + 1, dtype=np.float32), n_feat))
    X = rng.uniform(0, k + 1, size=(200, n_feat)).astype(np.float32)
    X[:5] = k + 1  # all bits set: every nibble of a word can be 4
    X[5:10] = 0

    def net(answer):
        w1 = rng.integers(0, 2, (16, n_feat * k))
        w1[0] = 0  # a neuron that mismatches every set input bit
        if not masked:
            l1 = IntLayer(n_feat * k, pack_bits(w1), np.full(16, n_feat * k // 2, np.int32))
            l2 = IntLayer(16, pack_bits(rng.integers(0, 2, (1, 16))), np.array([8], np.int32))
            return BoundNet(answer, (l1, l2))
        m1 = (rng.random((16, n_feat * k)) < 0.7).astype(np.int64)
        m1[0], m1[1] = 1, 0
        m1[2, : 40 * k] = 0  # reads nothing in the first chunks
        w1 &= m1
        t1 = m1.sum(1) // 2
        l1 = IntLayer(n_feat * k, pack_bits(w1), t1.astype(np.int32), pack_bits(m1))
        m2 = rng.integers(0, 2, (1, 16))
        w2 = rng.integers(0, 2, (1, 16)) & m2
        l2 = IntLayer(16, pack_bits(w2), np.array([m2.sum() // 2], np.int32), pack_bits(m2))
        return BoundNet(answer, (l1, l2))

    write_artifact(str(tmp_path), {"model_hash": "long", "features": {"names": [f"f{i}" for i in range(n_feat)]}},
                   enc, net("yes"), net("no"))
    art = load_artifact(str(tmp_path))
    rep = check_against_numpy(art, "host", X, BuildOptions(popcount=strategy))
    assert rep.mismatches == 0 and rep.score_mismatches == 0


def test_instruction_counts_repeatable(arts):
    need_machine("mps2-an386")
    art = arts["digits"]
    X = rows_for(art, "digits", 50)
    a = run_on_qemu(art, "mps2-an386", X)
    b = run_on_qemu(art, "mps2-an386", X)
    assert np.array_equal(a.bounds_instructions, b.bounds_instructions)
    assert np.array_equal(a.encode_instructions, b.encode_instructions)


def test_builtin_popcount_links_libgcc_on_cortex_m(arts):
    need_machine("mps2-an386")
    run = run_on_qemu(arts["digits"], "mps2-an386", rows_for(arts["digits"], "digits", 20),
                      BuildOptions(popcount=PopcountStrategy.BUILTIN))
    assert run.sizes.popcountsi2  # the symbol check sees it when it is there


def test_model_too_big_for_machine():
    need_machine("microbit")
    rng = np.random.default_rng(0)

    def layer(n_in, n_out):
        return IntLayer(n_in, pack_bits(rng.integers(0, 2, (n_out, n_in))), np.zeros(n_out, np.int32))

    from bnnembed.model.encoding import Thermometer

    enc = Thermometer(4, np.arange(4, dtype=np.int32), np.arange(0, 160, 32, dtype=np.int32) // 1,
                      np.tile(np.arange(1, 33, dtype=np.float32), 4))
    net = lambda a: BoundNet(a, (layer(128, 1024), layer(1024, 1024), layer(1024, 1)))
    art = Artifact("", {"model_hash": "big", "features": {"names": list("abcd")}}, enc, net("yes"), net("no"))
    with pytest.raises(BnnError, match=r"does not fit microbit: .* overflowed by \d+ bytes"):
        run_on_qemu(art, "microbit", np.zeros((1, 4), np.float32))


def test_missing_tool_names_apt_package():
    with pytest.raises(BnnError, match=r"no-such-cc not found; install it with: sudo apt-get install gcc-foo"):
        require_tool("no-such-cc", "gcc-foo")


def test_unknown_machine_lists_machines():
    with pytest.raises(BnnError, match="unknown machine 'pdp11'; choose one of: microbit"):
        get_machine("pdp11")


def test_runner_requires_sentinel():
    with pytest.raises(BnnError, match="did not finish"):
        _parse("C 1 2 0 1\nR 0 1 3 4 5 6\n", 1, MACHINES["mps2-an386"])


def test_cli_qemu_json(arts, capsys):
    need_machine("riscv32-virt")
    code = main(["qemu", arts["digits"].path, "--machine", "riscv32-virt", "--data", "digits",
                 "--rows", "200", "--json"])
    assert code == 0
    rep = json.loads(capsys.readouterr().out)
    for key in ("machine", "rows", "mismatches", "flash_bytes", "ram_bytes",
                "instructions_per_inference", "instructions_per_bmac"):
        assert key in rep
    assert rep["rows"] == 200 and rep["mismatches"] == 0
    assert rep["instructions_per_inference"] > 0
    # the DEFER frame of 64 whole-number pixels (0..16) goes at one byte each: 10 + 8 + 64 + 4 payload
    # bytes, CRC and COBS over each (riscv32 counts instructions exactly; a few instructions per byte
    # at least, far below 100)
    assert 2 * 86 < rep["defer_frame_instructions"] < 100 * 86


def test_cli_qemu_uint8_input(arts, capsys):
    """--input uint8 feeds the rows as bytes and measures the uint8 frame; rows that are not bytes
    get a one-line error, not a traceback."""
    need_machine("riscv32-virt")
    base = ["qemu", arts["digits"].path, "--machine", "riscv32-virt", "--data", "digits", "--rows", "200", "--json"]
    assert main(base) == 0
    as_float = json.loads(capsys.readouterr().out)
    assert main(base + ["--input", "uint8"]) == 0
    as_bytes = json.loads(capsys.readouterr().out)
    assert (as_float["input"], as_bytes["input"]) == ("float", "uint8")
    assert as_bytes["mismatches"] == 0 and as_bytes["decisions"] == as_float["decisions"]
    assert as_bytes["defer_frame_instructions"] < as_float["defer_frame_instructions"]
    code = main(["qemu", arts["breast_cancer"].path, "--machine", "riscv32-virt", "--data", "breast_cancer",
                 "--input", "uint8"])
    err = capsys.readouterr().err
    assert code != 0 and "not a whole number 0..255" in err and "Traceback" not in err


def test_defer_frame_cost_grows_with_the_frame():
    """The frame driver measures real work: four times the features, about four times the cost."""
    need_machine("riscv32-virt")
    X = np.random.default_rng(0).uniform(1.0, 2.0, (8, 256)).astype(np.float32)
    small = defer_frame_instructions(64, "riscv32-virt", X[:, :64])
    large = defer_frame_instructions(256, "riscv32-virt", X)
    assert small > 0 and 3.5 < large / small < 4.5


def test_cli_qemu_rejects_bad_machine(arts, capsys):
    with pytest.raises(SystemExit):
        main(["qemu", arts["digits"].path, "--machine", "pdp11", "--data", "digits"])


def test_trained_artifact_bit_exact(digits_artifact):
    """A really trained artifact (the build pipeline's), every digits row, on the M4 stand-in."""
    need_machine("mps2-an386")
    from bnnembed.artifact import load_artifact
    from bnnembed.learn.data import load_data

    art = load_artifact(digits_artifact)
    rep = check_against_numpy(art, "mps2-an386", load_data("digits").X)
    assert rep.rows == 1797 and rep.mismatches == 0 and rep.score_mismatches == 0


@pytest.mark.parametrize("machine", ["microbit", "mps2-an386"])
def test_mnist_sized_model_bit_exact(mnist_dir, tmp_path_factory, machine):
    """MNIST rows (784 pixels, up to 2 bits each; ~690 input bits) through n-256-256-1 bounds, 1,000
    rows with the reference kernel, and 200 with each optimized kernel (rows of > 20 words)."""
    need_machine(machine)
    art = make_artifact(tmp_path_factory.mktemp("mnist"), f"mnist:{mnist_dir}", hidden=(256, 256),
                        bits_per_feature=2)
    rep = check_against_numpy(art, machine, rows_for(art, f"mnist:{mnist_dir}", ROWS))
    assert rep.rows == ROWS and rep.mismatches == 0 and rep.score_mismatches == 0
    for strategy in PopcountStrategy:
        if strategy is PopcountStrategy.SWAR or not kernel_runs_on(strategy, machine):
            continue
        rep = check_against_numpy(art, machine, rows_for(art, f"mnist:{mnist_dir}", 200),
                                  BuildOptions(popcount=strategy))
        assert rep.mismatches == 0 and rep.score_mismatches == 0, strategy


#: the kernel each QEMU machine's boards use, and the Zbb kernel on the RISC-V core that has it
BOARD_KERNELS = sorted({(m, s) for m in qemu_machines()
                        for s in (PopcountStrategy.SWAR3, PopcountStrategy.CSA7, PopcountStrategy.CSA15, PopcountStrategy.ZBB,
                                  PopcountStrategy.COLUMNS)
                        if kernel_runs_on(s, m)})


@pytest.mark.slow
@pytest.mark.parametrize("machine,strategy", BOARD_KERNELS)
def test_mnist_kernels_1000_rows(mnist_dir, tmp_path_factory, machine, strategy):
    """The boards' kernels on MNIST-sized rows (22-word first layer, 8-word hidden rows): 1,000 rows
    per machine, every decision and both scores equal to numpy."""
    need_machine(machine)
    art = make_artifact(tmp_path_factory.mktemp("mnist"), f"mnist:{mnist_dir}", hidden=(256, 256),
                        bits_per_feature=2)
    rep = check_against_numpy(art, machine, rows_for(art, f"mnist:{mnist_dir}", ROWS), BuildOptions(popcount=strategy))
    assert rep.rows == ROWS and rep.mismatches == 0 and rep.score_mismatches == 0
