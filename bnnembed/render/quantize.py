"""The device's input encodings, and the int16 one's quantisation of float features.

Input encodings (:class:`Encoding`):

- ``float`` (default): the raw float32 features are compared with the float32 thresholds; the
  thresholds are written as C99 hexadecimal float literals, so the device compares exactly what
  numpy compares (``float32(x) >= t``).
- ``uint8`` input (either table kind; not an :class:`Encoding`): features that are whole numbers
  0..255 at the source, such as pixels, can be passed as bytes to ``bnn_decide_u8()``, which
  compares them exactly as the table kind does its own input (:func:`uint8_rows` checks and
  converts on the host). Their deferral frame is built a word at a time, with no float.
- ``int16``: for cores without an FPU. Raw column ``c`` of kept feature ``f`` is passed as
  ``q = clamp(floor(x * 2**s_f), -32768, 32767)`` and compared with ``tq = floor(t * 2**s_f)``;
  ``s_f`` is the largest power-of-two scale at which all of the feature's thresholds fit in
  ``[-32767, 32767]``. Because floor and clamp are monotone, ``x >= t`` implies ``q >= tq``; the
  converse holds whenever ``t * 2**s_f`` is an integer (then it is exact for every input; this
  is the case for integer-valued data such as pixels or counts). Otherwise the two differ only
  for inputs in ``[tq / 2**s_f, t)``, a window narrower than one quantum below a threshold;
  :func:`int16_scales` reports which features are exact and :func:`quantize_int16` is the host
  side of the conversion (:func:`encode_int16` emulates the device's side).
"""

from __future__ import annotations

import enum
import math

import numpy as np

from ..errors import BnnError
from ..model.encoding import Thermometer
from ..model.intmodel import invalid_rows

INT16_MAX = 32767


class Encoding(str, enum.Enum):
    """How the device turns features into thermometer bits."""

    FLOAT = "float"
    INT16 = "int16"


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


def _byte_values(X: np.ndarray) -> np.ndarray:
    """Where a value is a whole number 0..255 (+0.0, not -0.0, whose bits a byte cannot carry)."""
    X = np.asarray(X)
    with np.errstate(invalid="ignore"):
        return (X >= 0) & (X <= 255) & (X == np.floor(X)) & ~np.signbit(X)


def is_uint8_data(X: np.ndarray, chunk: int = 4096) -> bool:
    """Is every value a whole number 0..255 (so the rows are bytes at the source, e.g. pixels)?
    Looked at ``chunk`` rows at a time, so a large data set costs no large temporaries."""
    X = np.asarray(X)
    if X.size == 0:
        return False
    rows = X.reshape(X.shape[0], -1)
    return all(bool(_byte_values(rows[i:i + chunk]).all()) for i in range(0, len(rows), chunk))


def feeds_bytes(artifact, X: np.ndarray) -> bool:
    """Whether the device is fed these rows as bytes by default: the artifact declares its features
    uint8 at the source (manifest ``features.native``) and every value of ``X`` is one."""
    return artifact.native_input == "uint8" and is_uint8_data(X)


def uint8_rows(X: np.ndarray) -> np.ndarray:
    """Rows as the uint8 input of ``bnn_decide_u8()``, or a one-line error naming the first value
    that is not a whole number 0..255 (a NaN included: a byte is always a number)."""
    X = np.asarray(X, dtype=np.float64)
    bad = ~_byte_values(X)
    if bad.any():
        r, c = (int(v) for v in np.argwhere(bad)[0])
        raise BnnError(f"row {r} column {c} holds {float(X[r, c])!r}, not a whole number 0..255: these rows are "
                       "not uint8 input (feed them as floats, e.g. bnnembed qemu --input float)")
    return X.astype(np.uint8)
