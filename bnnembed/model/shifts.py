"""Shifted copies of an image input: the numpy core of test-time shifts (a design under study).

A decision from k copies of an image, each moved by a few pixels (zero fill), sums each bound's
integer score over the copies (bench/test_time_shifts.py measures its coverage). Copy ``i`` reads,
for every thermometer bit of pixel ``(r, c)``, the pixel ``(r - dy_i, c - dx_i)`` against the bit's
own threshold, so each raw pixel is compared with its neighbours' thresholds too:
:func:`cut_points` is that finer grid, the one explanations of such a decision would be over.
"""

from __future__ import annotations

import numpy as np

from .encoding import Thermometer
from .intmodel import BoundNet, bound_scores

#: sentinel of :func:`bit_sources` for a bit whose source pixel lies outside the image (reads 0)
OUTSIDE = -1


def shift_images(X: np.ndarray, shape: tuple[int, int], dy: int, dx: int) -> np.ndarray:
    """Rows of ``X`` as ``shape`` images moved ``dy`` rows down and ``dx`` columns right, zero fill."""
    h, w = shape
    im = np.asarray(X).reshape(len(X), h, w)
    out = np.zeros_like(im)
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        im[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out.reshape(len(X), h * w)


def bit_sources(encoder: Thermometer, shape: tuple[int, int], dy: int, dx: int) -> np.ndarray:
    """For each input bit, the raw column the copy moved by ``(dy, dx)`` compares with the bit's
    threshold (:data:`OUTSIDE` where that pixel lies outside the image)."""
    h, w = shape
    col = encoder.feature_index[encoder.bit_owner()].astype(np.int64)
    r, c = col // w - dy, col % w - dx
    inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    return np.where(inside, r * w + c, OUTSIDE)


def summed_scores(net: BoundNet, encoder: Thermometer, X: np.ndarray, shape: tuple[int, int],
                  shifts) -> np.ndarray:
    """A bound's integer score summed over the shifted copies of every row of ``X``."""
    total = np.zeros(len(X), np.int64)
    for dy, dx in shifts:
        total += bound_scores(net, encoder.encode(shift_images(X, shape, dy, dx)))
    return total


def cut_points(encoder: Thermometer, shape: tuple[int, int], shifts) -> list[np.ndarray]:
    """Per raw column, the sorted distinct thresholds some copy compares it with: the input grid a
    summed decision is a function of (with the identity shift alone, the encoder's own)."""
    thresholds = encoder.thresholds.astype(np.float32)
    found: list[set] = [set() for _ in range(encoder.n_features)]
    for dy, dx in shifts:
        src = bit_sources(encoder, shape, dy, dx)
        for b in np.flatnonzero(src != OUTSIDE):
            found[int(src[b])].add(float(thresholds[b]))
    return [np.array(sorted(s), dtype=np.float32) for s in found]
