"""C code generation: the integer model rendered as flash tables for the hand-written runtime.

Everything is computed here, in Python; the Jinja2 templates under ``templates/`` only lay the
numbers out. The generated model is two files, ``bnn_model.h`` (sizes as ``#define`` s, the
``bnn_model`` handle) and ``bnn_model.c`` (``const`` tables, commented per feature and per layer,
and the static scratch buffers sized for this model). The runtime in ``firmware/`` walks them.

Per neuron the generator stores ``max_mismatch = n_in - T``: the neuron fires iff
``popcount(a XOR w) <= max_mismatch``, the same test as ``n_in - popcount(a XOR w) >= T`` in
:mod:`bnnembed.model.intmodel`, without a subtraction on the device. A masked layer stores its
mask rows after its weight rows in the same table (``layout = BNN_LAYOUT_MASKED``) and
``max_mismatch = n_j - T`` with ``n_j`` the bits neuron ``j`` reads; the runtime counts
``popcount((a XOR w) AND m)``. For the COLUMNS kernel the dense hidden layers are stored by columns
instead (``layout = BNN_LAYOUT_COLUMNS``, :mod:`bnnembed.render.columns`).

The input encodings (float, int16) and the int16 quantisation are in
:mod:`bnnembed.render.quantize`, the model's size in bytes in :mod:`bnnembed.render.footprint`,
PlatformIO projects around the model in :mod:`bnnembed.render.project`; their public names are
also importable from here.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from .. import __version__
from .._enum import CodeEnum
from .._resources import resource_dir
from ..errors import BnnError
from ..model.encoding import Thermometer
from ..model.intmodel import BoundNet, shares_hidden
from ..model.packing import n_words
from .columns import column_items_words, column_table, column_words, planes_per_side, stored_by_columns
from .footprint import deployed_footprint, hidden_words
from .quantize import Encoding, column_shifts, int16_scales

MODEL_FILES = ("bnn_model.h", "bnn_model.c")
_WORDS_PER_LINE = 8


class PopcountStrategy(CodeEnum):
    """Values of ``BNN_POPCOUNT_STRATEGY``: one kernel header each (firmware/bnn_popcount_*.h)."""

    SWAR = 1, "reference: full SWAR popcount per word (shifts, masks, one multiply)"
    BUILTIN = 2, "__builtin_popcount: only for cores with a popcount instruction (else a libgcc call)"
    SWAR3 = 3, "nibble counts of 3 words summed, bytes accumulated across the row"
    CSA = 4, "Harley-Seal carry-save adders over groups of 4 words"
    TABLE = 5, "256-byte lookup table in flash"
    ZBB = 6, "RISC-V Zbb cpop (the core must implement Zbb)"
    CSA7 = 7, "carry-save adder trees over 7 words, nibble counts, usada8 byte sums on DSP cores"
    CSA15 = 8, "carry-save adder trees over 15 words (then 7 words and a tail), nibble counts, one multiply per reduction"
    COLUMNS = 9, "hidden layers stored by columns, bit-sliced counters of 32 neurons over the input's minority bits"

    @property
    def by_columns(self) -> bool:
        """Does the generated model store its dense hidden layers by columns for this kernel?"""
        return self is PopcountStrategy.COLUMNS


class Layout(CodeEnum):
    """Values of a layer's ``layout`` (firmware/bnn.h): how its table is laid out."""

    ROWS = 0, "n_out packed weight rows, max_mismatch per neuron"
    MASKED = 1, "weight rows, then n_out mask rows (a masked layer)"
    COLUMNS = 2, "per 32 neurons: n_in column words and the threshold planes (kernel COLUMNS)"


#: The hand-written runtime (firmware/), copied beside the generated model: the layer loop, the
#: popcount dispatcher with one header per kernel, and the generated table of shared codes.
RUNTIME_FILES = (
    "bnn.h", "bnn.c", "bnn_codes.h", "bnn_kernels.c", "bnn_popcount.h", "bnn_popcount_common.h",
    *(f"bnn_popcount_{s.name.lower()}.h" for s in PopcountStrategy),
)


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


def max_mismatch(thresholds: np.ndarray, n_in) -> np.ndarray:
    """``n - T`` per neuron: the largest ``popcount(a XOR w)`` at which the neuron fires (``n`` the
    bits it reads: the layer's ``n_in``, or per neuron ``n_j`` for a masked layer, where the
    count is ``popcount((a XOR w) AND m)``)."""
    return np.asarray(n_in, dtype=np.int64) - np.asarray(thresholds, dtype=np.int64)


def binary_macs(net: BoundNet, hidden_only: bool = False) -> int:
    """Binary multiply-accumulates of one evaluation (input bits x neurons, summed over layers)."""
    layers = net.layers[:-1] if hidden_only else net.layers
    return int(sum(layer.n_in * layer.n_out for layer in layers))


def decision_macs(upper: BoundNet, lower: BoundNet, hidden_only: bool = False) -> int:
    """Binary MACs of one decision: both bounds, hidden layers counted once for one network read
    both ways (the runtime runs them once)."""
    lower_macs = binary_macs(lower, hidden_only) - (binary_macs(lower, True) if shares_hidden(upper, lower) else 0)
    return binary_macs(upper, hidden_only) + lower_macs


def deployed_macs(model, hidden_only: bool = False) -> int:
    """Binary MACs the device runs for one decision of ``model``: :func:`decision_macs` of the
    bounds it stores, once per shifted copy."""
    _, upper, lower = model.device_parts
    return (1 if model.copies is None else model.copies.k) * decision_macs(upper, lower, hidden_only)


ROW_WORDS_SLOTS = 4  # BNN_ROW_WORDS_0..3 (firmware/bnn_popcount_common.h)


def row_word_defines(model) -> dict[str, str]:
    """Compile definitions naming the word lengths of the model's dense hidden-layer rows
    (``BNN_ROW_WORDS_<i>``, at most :data:`ROW_WORDS_SLOTS`, else none): a kernel with one copy of
    the layer loop per row shape (``BNN_ROW_DISPATCH``) then compiles the model's shapes only, plus
    one general copy (MNIST 672-256-256 with csa15: 3 copies instead of 8)."""
    words = sorted({n_words(layer.n_in) for net in model.device_parts[1:]
                    for layer in net.layers[:-1] if not layer.masked})
    if not words or len(words) > ROW_WORDS_SLOTS:
        return {}
    return {f"BNN_ROW_WORDS_{i}": f"{w}u" for i, w in enumerate(words)}


def _shape_text(net: BoundNet) -> str:
    return " -> ".join(str(s) for s in net.shape)


def _check_limits(encoder: Thermometer, upper: BoundNet, lower: BoundNet, copies: int = 1) -> None:
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
        if copies * net.layers[-1].n_in > 32767:
            raise BnnError(f"{copies} copies of a {net.layers[-1].n_in}-input output neuron overflow the "
                           "runtime's int16 threshold; use fewer copies or a narrower last hidden layer")


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


def banner_lines(model, encoding: Encoding | str = Encoding.FLOAT) -> list[str]:
    """Lines of the banner every generated file starts with."""
    encoding = Encoding(encoding)
    enc, upper, lower = model.device_parts
    c = model.copies
    summed = "" if c is None else f" on the sum over {c.k} copies"
    lines = [
        f"bnnembed {__version__} — generated — do not edit",
        f"model hash: {model.model_hash}",
        f"input: {enc.n_features} features ({enc.n_kept} kept) -> {enc.n_bits} thermometer bits, "
        f"{encoding.value} encoding",
        f"upper bound (answers yes): {_shape_text(upper)}, tau = {model.upper.tau}{summed}",
        f"lower bound (answers no): {_shape_text(lower)}, tau = {model.lower.tau}{summed}"
        + (" (one network: the upper bound's hidden layers, its own output neuron)"
           if shares_hidden(upper, lower) else ""),
    ]
    if c is not None:
        lines.append(f"shifted copies: {c.k} of the {c.shape[0]}x{c.shape[1]} image, moved by (dy, dx) = "
                     + ", ".join(f"({dy}, {dx})" for dy, dx in c.shifts) + " (zero fill); scores summed")
    return lines


def _column_groups(layer, mm) -> list[dict]:
    """Each group of 32 neurons of a layer by columns: its column words and threshold planes."""
    table = column_table(layer.weights, layer.n_in, mm)
    n_e = planes_per_side(layer.n_in)
    stride = layer.n_in + 2 * n_e
    return [{"index": g, "first": 32 * g, "last": min(32 * g + 31, layer.n_out - 1),
             "columns": _words_lines(table[g * stride:g * stride + layer.n_in]),
             "ones": _words_lines(table[g * stride + layer.n_in:g * stride + layer.n_in + n_e]),
             "zeros": _words_lines(table[g * stride + layer.n_in + n_e:(g + 1) * stride])}
            for g in range(-(-layer.n_out // 32))]


def _bound_context(net: BoundNet, name: str, hidden_of: str | None = None, copies: int = 1,
                   tau: int | None = None, columns: bool = False) -> dict:
    """The template context of one bound; ``hidden_of`` names the bound whose hidden-layer tables
    this one's hidden layers use (one network read both ways: they are not laid out twice).
    With ``copies`` > 1 the output neuron's threshold ``tau`` is on its agreement count summed
    over the copies: it stores ``copies * n - tau``. With ``columns`` the dense hidden layers are
    stored by columns (kernel COLUMNS, :mod:`bnnembed.render.columns`)."""
    layers = []
    tau = net.tau if tau is None else int(tau)
    for i, layer in enumerate(net.layers):
        last = i == len(net.layers) - 1
        thresholds = np.array([tau], np.int64) if last else layer.thresholds
        n_read = layer.n_read  # n_in per neuron when dense
        mm = max_mismatch(thresholds, n_read * (copies if last else 1))
        rows = [
            {"index": j, "lines": _words_lines(layer.weights[j])} for j in range(layer.n_out)
        ]
        mask_rows = [] if not layer.masked else [
            {"index": j, "n_read": int(n_read[j]), "lines": _words_lines(layer.mask[j])}
            for j in range(layer.n_out)
        ]
        shared = hidden_of is not None and i < len(net.layers) - 1
        cols = stored_by_columns(layer, last, columns)
        layers.append({
            "index": i,
            "name": f"bnn_{hidden_of if shared else name}_l{i}",
            "shared": shared,
            "n_in": layer.n_in,
            "n_out": layer.n_out,
            "n_words": n_words(layer.n_in),
            "is_last": last,
            "rows": rows,
            "max_mismatch_lines": _ints_lines(mm),
            "t_min": int(thresholds.min()),
            "t_max": int(thresholds.max()),
            "masked": layer.masked,
            "layout": (Layout.COLUMNS if cols else Layout.MASKED if layer.masked else Layout.ROWS).name,
            "groups": _column_groups(layer, mm) if cols else [],
            "column_words": column_words(layer.n_in, layer.n_out),
            "planes": planes_per_side(layer.n_in),
            "mask_rows": mask_rows,
            "n_read_min": int(n_read.min()),
            "n_read_max": int(n_read.max()),
        })
    return {
        "name": name,
        "upper": name == "upper",
        "answer": net.answer,
        "shape": _shape_text(net),
        "tau": tau,
        "score_range": net.score_range * copies,
        "layers": layers,
        "n_layers": len(layers),
        "macs": binary_macs(net, hidden_only=False) - (binary_macs(net, True) if hidden_of else 0),
        "hidden_of": hidden_of,
        "uses_columns": any(entry["layout"] == "COLUMNS" for entry in layers),
    }


def _encoder_context(model, encoding: Encoding) -> dict:
    enc = model.device_parts[0]
    names = list(model.feature_names)
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


def model_context(model, encoding: Encoding | str = Encoding.FLOAT, columns: bool = False) -> dict:
    """Everything the model templates lay out, computed once here (``columns``: the dense hidden
    layers by columns, for the COLUMNS kernel)."""
    encoding = Encoding(encoding)
    enc, upper, lower = model.device_parts
    c = model.copies
    k = 1 if c is None else c.k
    if c is not None and encoding is Encoding.INT16:
        raise BnnError("a model with shifted copies runs on float or uint8 input; the int16 encoding would move "
                       "values between columns quantized differently (use --encoding float)")
    _check_limits(enc, upper, lower, k)
    if upper.n_in != enc.n_bits or lower.n_in != enc.n_bits:
        raise BnnError(
            f"artifact inconsistent: encoder has {enc.n_bits} bits but the bounds take "
            f"{upper.n_in} / {lower.n_in}; rebuild it"
        )
    fp = deployed_footprint(model, encoding, columns)  # equal to the 32-bit ELF's (tests/device/test_qemu.py)
    return {
        "banner": banner_lines(model, encoding),
        "version": __version__,
        "model_hash": model.model_hash,
        "encoding": encoding.value,
        "float_encoding": encoding is Encoding.FLOAT,
        "encoder": _encoder_context(model, encoding),
        "bounds": [_bound_context(upper, "upper", None, k, model.upper.tau, columns),
                   _bound_context(lower, "lower", "upper" if shares_hidden(upper, lower) else None, k,
                                  model.lower.tau, columns)],
        "columns": columns and column_items_words(upper, lower) > 0,  # some layer is stored by columns
        "item_words": column_items_words(upper, lower) if columns else 0,
        "copies": None if c is None else {
            "n": k, "height": c.shape[0], "width": c.shape[1],
            "shifts": ", ".join(f"{dy}, {dx}" for dy, dx in c.shifts)},
        "input_words": n_words(enc.n_bits),
        "hidden_words": hidden_words(upper, lower),
        "binary_macs": deployed_macs(model),
        "hidden_macs": deployed_macs(model, hidden_only=True),
        "flash_bytes": fp.flash_bytes,
        "ram_bytes": fp.ram_bytes,
    }


def render_model_sources(model, encoding: Encoding | str = Encoding.FLOAT,
                         columns: bool = False) -> dict[str, str]:
    """``{"bnn_model.h": text, "bnn_model.c": text}`` for a model (``columns``: for the COLUMNS kernel)."""
    ctx = model_context(model, encoding, columns)
    env = template_env()
    return {name: env.get_template(f"model/{name}.j2").render(**ctx) for name in MODEL_FILES}


def runtime_sources() -> dict[str, str]:
    """The hand-written runtime files (name -> text) copied into every project."""
    fw = resource_dir("firmware")
    return {name: (fw / name).read_text() for name in RUNTIME_FILES}


def write_model_sources(model, out_dir, encoding: Encoding | str = Encoding.FLOAT,
                        with_runtime: bool = True, columns: bool = False) -> list[str]:
    """Write the generated model (and the runtime) into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = dict(render_model_sources(model, encoding, columns))
    if with_runtime:
        files.update(runtime_sources())
    paths = []
    for name, text in files.items():
        (out / name).write_text(text)
        paths.append(str(out / name))
    return paths
