"""C code generation: the integer model rendered as flash tables for the hand-written runtime.

Everything is computed here, in Python; the Jinja2 templates under ``templates/`` only lay the
numbers out. The generated model is two files, ``bnn_model.h`` (sizes as ``#define`` s, the
``bnn_model`` handle) and ``bnn_model.c`` (``const`` tables, commented per feature and per layer,
and the static scratch buffers sized for this model). The runtime in ``firmware/`` walks them.

Per neuron the generator stores ``max_mismatch = n_in - T``: the neuron fires iff
``popcount(a XOR w) <= max_mismatch``, the same test as ``n_in - popcount(a XOR w) >= T`` in
:mod:`bnnembed.model.intmodel`, without a subtraction on the device.

Input encodings (:class:`Encoding`):

- ``float`` (default): the raw float32 features are compared with the float32 thresholds; the
  thresholds are written as C99 hexadecimal float literals, so the device compares exactly what
  numpy compares (``float32(x) >= t``).
- ``int16``: for cores without an FPU. Raw column ``c`` of kept feature ``f`` is passed as
  ``q = clamp(floor(x * 2**s_f), -32768, 32767)`` and compared with ``tq = floor(t * 2**s_f)``;
  ``s_f`` is the largest power-of-two scale at which all of the feature's thresholds fit in
  ``[-32767, 32767]``. Because floor and clamp are monotone, ``x >= t`` implies ``q >= tq``; the
  converse holds whenever ``t * 2**s_f`` is an integer (then it is exact for every input; this
  is the case for integer-valued data such as pixels or counts). Otherwise the two differ only
  for inputs in ``[tq / 2**s_f, t)``, a window narrower than one quantum below a threshold;
  :func:`int16_scales` reports which features are exact and :func:`quantize_int16` is the host
  side of the conversion.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from .. import __version__
from .._resources import resource_dir
from ..model.encoding import Thermometer
from ..errors import BnnError
from ..model.intmodel import BoundNet, invalid_rows
from ..model.packing import n_words

MODEL_FILES = ("bnn_model.h", "bnn_model.c")
RUNTIME_FILES = ("bnn.h", "bnn.c", "bnn_popcount.h", "bnn_kernels.c")
INT16_MAX = 32767
_WORDS_PER_LINE = 8


class Encoding(str, enum.Enum):
    """How the device turns features into thermometer bits."""

    FLOAT = "float"
    INT16 = "int16"


class PopcountStrategy(enum.IntEnum):
    """Values of ``BNN_POPCOUNT_STRATEGY`` (firmware/bnn_popcount.h)."""

    SWAR = 1  # the reference kernel
    BUILTIN = 2  # __builtin_popcount: a libgcc call on cores without a popcount instruction
    SWAR3 = 3  # nibble counts of 3 words summed, bytes accumulated across the row
    CSA = 4  # Harley-Seal carry-save adders over groups of 4 words
    TABLE = 5  # 256-byte lookup table in flash
    ZBB = 6  # RISC-V Zbb cpop (the core must implement Zbb)


@dataclass(frozen=True)
class Footprint:
    """Bytes the generated model occupies (tables in flash, scratch buffers in RAM)."""

    flash_bytes: int
    ram_bytes: int


# --------------------------------------------------------------------------------------------
# pure helpers
# --------------------------------------------------------------------------------------------


def c_float(value: float) -> str:
    """Exact C99 literal of a float32 value (hexadecimal float with an ``f`` suffix)."""
    v = float(np.float32(value))
    if not math.isfinite(v):
        raise BnnError(f"threshold {v} is not finite; rebuild the artifact")
    mant, exp = v.hex().split("p")
    if "." in mant:
        mant = mant.rstrip("0").rstrip(".")
    return f"{mant}p{exp}f"


def c_comment(text: str) -> str:
    """Text safe inside a C block comment (one line, no comment terminators)."""
    text = re.sub(r"[\r\n\t]+", " ", str(text))
    return text.replace("*/", "* /").replace("/*", "/ *")


def _words_lines(words: np.ndarray, per_line: int = _WORDS_PER_LINE) -> list[str]:
    hexes = [f"0x{int(w):08x}u" for w in np.asarray(words, dtype=np.uint32).ravel()]
    return [", ".join(hexes[i : i + per_line]) for i in range(0, len(hexes), per_line)]


def _ints_lines(values, per_line: int = 16) -> list[str]:
    vals = [str(int(v)) for v in values]
    return [", ".join(vals[i : i + per_line]) for i in range(0, len(vals), per_line)]


def max_mismatch(thresholds: np.ndarray, n_in: int) -> np.ndarray:
    """``n_in - T`` per neuron: the largest ``popcount(a XOR w)`` at which the neuron fires."""
    return int(n_in) - np.asarray(thresholds, dtype=np.int64)


def int16_scales(encoder: Thermometer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per kept feature the power-of-two shift, the int16 thresholds and an exactness flag.

    Returns ``(shift (n_kept,) int, thresholds_q (n_bits,) int16, exact (n_kept,) bool)``; see
    the module docstring for the rule and for when ``exact`` is False.
    """
    shifts = np.zeros(encoder.n_kept, dtype=np.int64)
    tq = np.zeros(encoder.n_bits, dtype=np.int64)
    exact = np.zeros(encoder.n_kept, dtype=bool)
    for f in range(encoder.n_kept):
        t = encoder.feature_thresholds(f).astype(np.float64)
        amax = float(np.max(np.abs(t))) if t.size else 0.0
        if amax == 0.0:
            shift = 0
        else:
            # largest shift with floor(|t| * 2**shift) <= 32767 for every threshold
            shift = int(math.floor(math.log2(INT16_MAX / amax)))
            while shift > -64 and np.any(np.abs(np.floor(t * 2.0**shift)) > INT16_MAX):
                shift -= 1
            while np.all(np.abs(np.floor(t * 2.0 ** (shift + 1))) <= INT16_MAX) and shift < 40:
                shift += 1
        shift = int(np.clip(shift, -64, 40))
        scaled = t * 2.0**shift
        q = np.floor(scaled)
        shifts[f] = shift
        tq[encoder.offsets[f] : encoder.offsets[f + 1]] = q
        exact[f] = bool(np.all(q == scaled))
    if np.any(np.diff(tq)[np.diff(encoder.bit_owner()) == 0] <= 0):
        # two thresholds of one feature collapsed onto one int16 value: still correct
        # (monotone), but the thermometer loses a level; flagged as inexact
        owner = encoder.bit_owner()
        for f in range(encoder.n_kept):
            seg = tq[owner == f]
            if np.any(np.diff(seg) <= 0):
                exact[f] = False
    return shifts, tq.astype(np.int16), exact


def column_shifts(encoder: Thermometer) -> np.ndarray:
    """Shift per raw column (0 for dropped columns), as the device table stores it."""
    shifts, _, _ = int16_scales(encoder)
    col = np.zeros(encoder.n_features, dtype=np.int64)
    col[encoder.feature_index] = shifts
    return col


def quantize_int16(encoder: Thermometer, X: np.ndarray) -> np.ndarray:
    """Host side of the int16 variant: ``clamp(floor(x * 2**shift[c]))`` per raw column.

    This is where floats become int16, and every int16 is a number: a row with a NaN or an
    infinity (``invalid_rows``) would come out as an ordinary value, so it is refused here;
    such rows decide INVALID without reaching the device (see :func:`bnnembed.device.qemu.device_inputs`).
    """
    bad = invalid_rows(X)
    if bad.any():
        raise BnnError(f"{int(bad.sum())} row(s) with a NaN or infinite feature (first: row {int(np.argmax(bad))}) "
                       "have no int16 encoding; they decide INVALID and are not sent to an int16 device")
    X = np.asarray(X, dtype=np.float32).astype(np.float64)
    q = np.floor(X * np.exp2(column_shifts(encoder))[None, :])
    return np.clip(q, -32768, INT16_MAX).astype(np.int16)


def encode_int16(encoder: Thermometer, Xq: np.ndarray) -> np.ndarray:
    """numpy emulation of the device's int16 encoder (``q >= tq``), bits ``(n, n_bits)``."""
    _, tq, _ = int16_scales(encoder)
    cols = np.asarray(Xq, dtype=np.int64)[:, encoder.feature_index[encoder.bit_owner()]]
    return (cols >= tq.astype(np.int64)[None, :]).astype(np.uint8)


def model_footprint(encoder: Thermometer, upper: BoundNet, lower: BoundNet,
                    encoding: Encoding | str = Encoding.FLOAT) -> Footprint:
    """Bytes of the generated tables (flash) and scratch buffers (RAM), runtime code excluded."""
    encoding = Encoding(encoding)
    flash = 2 * encoder.n_kept + 2 * (encoder.n_kept + 1)
    flash += 4 * encoder.n_bits if encoding is Encoding.FLOAT else 2 * encoder.n_bits + encoder.n_features
    flash += 32  # encoder struct
    for net in (upper, lower):
        for layer in net.layers:
            flash += 4 * layer.weights.size + 2 * layer.n_out + 12  # weights, thresholds, struct
        flash += 8
    flash += 24  # model struct
    ram = 4 * (n_words(encoder.n_bits) + 2 * hidden_words(upper, lower))
    return Footprint(flash_bytes=int(flash), ram_bytes=int(ram))


def hidden_words(upper: BoundNet, lower: BoundNet) -> int:
    """Words of one hidden-activation scratch buffer (at least 1, C has no empty arrays)."""
    widths = [layer.n_out for net in (upper, lower) for layer in net.layers[:-1]]
    return max([1] + [n_words(w) for w in widths])


def binary_macs(net: BoundNet, hidden_only: bool = False) -> int:
    """Binary multiply-accumulates of one evaluation (input bits x neurons, summed over layers)."""
    layers = net.layers[:-1] if hidden_only else net.layers
    return int(sum(layer.n_in * layer.n_out for layer in layers))


def _shape_text(net: BoundNet) -> str:
    return " -> ".join(str(s) for s in net.shape)


def _check_limits(encoder: Thermometer, upper: BoundNet, lower: BoundNet) -> None:
    if encoder.n_bits == 0:
        raise BnnError("the encoder has no thermometer bits; rebuild the artifact with more varied data")
    if encoder.n_features > 65535 or encoder.n_bits > 32767:
        raise BnnError(
            f"model input too wide for the runtime ({encoder.n_features} features, {encoder.n_bits} "
            "bits; limits 65535 and 32767); use fewer bits per feature"
        )
    for net in (upper, lower):
        for layer in net.layers:
            if layer.n_in > 32767 or layer.n_out > 65535:
                raise BnnError(f"layer {layer.n_in} -> {layer.n_out} too wide for the runtime (n_in <= 32767)")
        if len(net.layers) > 255:
            raise BnnError("a bound has more than 255 layers")


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------


def template_env() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(resource_dir("templates"))),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def banner_lines(artifact, encoding: Encoding | str = Encoding.FLOAT) -> list[str]:
    """Lines of the banner every generated file starts with."""
    encoding = Encoding(encoding)
    enc = artifact.encoder
    return [
        f"bnnembed {__version__} — generated — do not edit",
        f"model hash: {artifact.model_hash}",
        f"input: {enc.n_features} features ({enc.n_kept} kept) -> {enc.n_bits} thermometer bits, "
        f"{encoding.value} encoding",
        f"upper bound (answers yes): {_shape_text(artifact.upper)}, tau = {artifact.upper.tau}",
        f"lower bound (answers no): {_shape_text(artifact.lower)}, tau = {artifact.lower.tau}",
    ]


def _bound_context(net: BoundNet, name: str) -> dict:
    layers = []
    for i, layer in enumerate(net.layers):
        mm = max_mismatch(layer.thresholds, layer.n_in)
        last = i == len(net.layers) - 1
        rows = [
            {"index": j, "lines": _words_lines(layer.weights[j])} for j in range(layer.n_out)
        ]
        layers.append({
            "index": i,
            "name": f"bnn_{name}_l{i}",
            "n_in": layer.n_in,
            "n_out": layer.n_out,
            "n_words": n_words(layer.n_in),
            "is_last": last,
            "rows": rows,
            "max_mismatch_lines": _ints_lines(mm),
            "t_min": int(layer.thresholds.min()),
            "t_max": int(layer.thresholds.max()),
            "flash_bytes": 4 * layer.weights.size + 2 * layer.n_out,
        })
    return {
        "name": name,
        "upper": name == "upper",
        "answer": net.answer,
        "shape": _shape_text(net),
        "tau": net.tau,
        "score_range": net.score_range,
        "layers": layers,
        "n_layers": len(layers),
        "macs": binary_macs(net),
    }


def _encoder_context(artifact, encoding: Encoding) -> dict:
    enc = artifact.encoder
    names = list(artifact.feature_names)
    features = []
    shifts, tq, exact = int16_scales(enc)
    for f in range(enc.n_kept):
        col = int(enc.feature_index[f])
        t = enc.feature_thresholds(f)
        lo, hi = int(enc.offsets[f]), int(enc.offsets[f + 1])
        features.append({
            "index": f,
            "column": col,
            "name": c_comment(names[col] if col < len(names) else f"x{col}"),
            "n_bits": hi - lo,
            "floats": ", ".join(c_float(v) for v in t),
            "decimal": c_comment(", ".join(f"{float(v):.7g}" for v in t)),
            "q16": ", ".join(str(int(v)) for v in tq[lo:hi]),
            "shift": int(shifts[f]),
            "exact": bool(exact[f]),
        })
    return {
        "n_features": enc.n_features,
        "n_kept": enc.n_kept,
        "n_bits": enc.n_bits,
        "feature_index_lines": _ints_lines(enc.feature_index),
        "offsets_lines": _ints_lines(enc.offsets),
        "features": features,
        "column_shift_lines": _ints_lines(column_shifts(enc)),
        "n_inexact": int(np.sum(~exact)),
    }


def model_context(artifact, encoding: Encoding | str = Encoding.FLOAT) -> dict:
    """Everything the model templates lay out, computed once here."""
    encoding = Encoding(encoding)
    enc, upper, lower = artifact.encoder, artifact.upper, artifact.lower
    _check_limits(enc, upper, lower)
    if upper.n_in != enc.n_bits or lower.n_in != enc.n_bits:
        raise BnnError(
            f"artifact inconsistent: encoder has {enc.n_bits} bits but the bounds take "
            f"{upper.n_in} / {lower.n_in}; rebuild it"
        )
    fp = model_footprint(enc, upper, lower, encoding)
    return {
        "banner": banner_lines(artifact, encoding),
        "version": __version__,
        "model_hash": artifact.model_hash,
        "encoding": encoding.value,
        "float_encoding": encoding is Encoding.FLOAT,
        "encoder": _encoder_context(artifact, encoding),
        "bounds": [_bound_context(upper, "upper"), _bound_context(lower, "lower")],
        "input_words": n_words(enc.n_bits),
        "hidden_words": hidden_words(upper, lower),
        "binary_macs": binary_macs(upper) + binary_macs(lower),
        "hidden_macs": binary_macs(upper, True) + binary_macs(lower, True),
        "flash_bytes": fp.flash_bytes,
        "ram_bytes": fp.ram_bytes,
    }


def render_model_sources(artifact, encoding: Encoding | str = Encoding.FLOAT) -> dict[str, str]:
    """``{"bnn_model.h": text, "bnn_model.c": text}`` for an artifact."""
    ctx = model_context(artifact, encoding)
    env = template_env()
    return {name: env.get_template(f"model/{name}.j2").render(**ctx) for name in MODEL_FILES}


def runtime_sources() -> dict[str, str]:
    """The hand-written runtime files (name -> text) copied into every project."""
    fw = resource_dir("firmware")
    return {name: (fw / name).read_text() for name in RUNTIME_FILES}


def write_model_sources(artifact, out_dir, encoding: Encoding | str = Encoding.FLOAT,
                        with_runtime: bool = True) -> list[str]:
    """Write the generated model (and the runtime) into ``out_dir``; returns the paths."""
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = dict(render_model_sources(artifact, encoding))
    if with_runtime:
        files.update(runtime_sources())
    paths = []
    for name, text in files.items():
        (out / name).write_text(text)
        paths.append(str(out / name))
    return paths


# --------------------------------------------------------------------------------------------
# PlatformIO project
# --------------------------------------------------------------------------------------------

RUNTIME_LIBRARY = "bnnembed_runtime"
#: The deferral link and the application logic (decide -> defer -> final), copied into the
#: runtime library of every project beside RUNTIME_FILES; the port file provides bnn_io.h.
APP_FILES = ("bnn_io.h", "bnn_protocol.h", "bnn_protocol.c", "bnn_app.h", "bnn_app.c")
PORT_FILES = {"arduino": "bnn_port_arduino.cpp", "espidf": "bnn_port_espidf.c"}


def check_budget(artifact, board, encoding: Encoding | str = Encoding.FLOAT) -> Footprint:
    """Raise :class:`BnnError` naming the sizes if the model does not fit the board."""
    fp = model_footprint(artifact.encoder, artifact.upper, artifact.lower, encoding)
    # the example application also keeps one feature vector in RAM, and the link its frame
    # buffers (a request payload, a reply frame; int16 models a float copy for deferrals)
    n = artifact.encoder.n_features
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
    """RAM of the example's link buffers (BNN_APP_TX_SIZE + BNN_APP_RX_SIZE, firmware/bnn_app.h)."""
    request = 10 + 7 + 4 * n_features + 4
    reply = 10 + 5 + 4
    return request + reply + reply // 254 + 2


def render_board_project(artifact, board, encoding: Encoding | str = Encoding.FLOAT) -> dict[str, str]:
    """Every file of the PlatformIO project for ``board``: relative path -> text."""
    encoding = Encoding(encoding)
    fp = check_budget(artifact, board, encoding)
    ctx = model_context(artifact, encoding)
    env = template_env()
    flags = list(board.build_flags) + [
        f"-D BNN_POPCOUNT_STRATEGY={int(board.popcount)}",
        f"-D BNN_SERIAL_BAUD={int(board.monitor_speed)}",
    ]
    pctx = {
        **ctx,
        "board": board,
        "board_name": board.name,
        "env": board.id,
        "build_flags": flags,
        "flash_bytes": fp.flash_bytes,
        "ram_bytes": fp.ram_bytes,
    }
    files: dict[str, str] = {
        "platformio.ini": env.get_template("project/platformio.ini.j2").render(**pctx),
        f"lib/{RUNTIME_LIBRARY}/library.json": env.get_template("project/library.json.j2").render(**pctx),
        "src/main.c": env.get_template("project/main.c.j2").render(**pctx),
    }
    for name, text in render_model_sources(artifact, encoding).items():
        files[f"src/{name}"] = text
    for name, text in runtime_sources().items():
        files[f"lib/{RUNTIME_LIBRARY}/src/{name}"] = text
    fw = resource_dir("firmware")
    for name in APP_FILES:
        files[f"lib/{RUNTIME_LIBRARY}/src/{name}"] = (fw / name).read_text()
    ports = resource_dir("firmware") / "ports"
    files["src/bnn_port.h"] = (ports / "bnn_port.h").read_text()
    port = PORT_FILES[board.framework]
    files[f"src/{port}"] = (ports / port).read_text()
    if board.framework == "espidf":
        files["CMakeLists.txt"] = env.get_template("project/CMakeLists.txt.j2").render(**pctx)
        files["src/CMakeLists.txt"] = env.get_template("project/src_CMakeLists.txt.j2").render(**pctx)
    return files


def write_board_project(artifact, board, out_dir, encoding: Encoding | str = Encoding.FLOAT) -> list[str]:
    """Write the PlatformIO project into ``out_dir``; returns the relative paths written."""
    from pathlib import Path

    files = render_board_project(artifact, board, encoding)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BnnError(f"{out} exists and is not a directory; choose another --out")
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return sorted(files)
