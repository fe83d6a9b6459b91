"""Test-time shifted copies of an image input (``bnnembed build --shift-copies K``).

A decision from k copies of an image, each moved by a pixel or none (zero fill), sums each bound's
integer score over the copies and compares the sum with the bound's threshold. Copy ``i`` reads,
for every thermometer bit of pixel ``(r, c)``, the pixel ``(r - dy_i, c - dx_i)`` against the bit's
own threshold, so each raw pixel is compared with its neighbours' thresholds too:
:func:`cut_points` is that finer grid.

The device stores the bounds once and runs them k times (:class:`ShiftCopies` is what it stores).
Everything else (numpy decisions, calibration, CNF, explanations) sees the same decision as one
ordinary binary network over the finer grid (:func:`expand_copies`): k masked copies of the first
layer, block-diagonal hidden layers, and an output neuron over all copies whose agreement count
is the summed score. That expansion is exact, so the one-source-of-truth tests hold as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .encoding import Thermometer
from .intmodel import BoundNet, IntLayer, bound_scores, shares_hidden
from .packing import pack_bits

#: the copies ``--shift-copies K`` makes: (rows down, columns right), the identity first
SHIFT_SETS = {
    1: ((0, 0),),
    3: ((0, 0), (0, 1), (0, -1)),
    5: ((0, 0), (0, 1), (0, -1), (1, 0), (-1, 0)),
}

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


def copies_encoder(encoder: Thermometer, shape: tuple[int, int], shifts) -> Thermometer:
    """The thermometer over :func:`cut_points`: every comparison some copy makes, one bit each
    (a raw column no copy reads gets no bits)."""
    grid = cut_points(encoder, shape, shifts)
    kept = [c for c, g in enumerate(grid) if len(g)]
    sizes = [len(grid[c]) for c in kept]
    return Thermometer(
        n_features=encoder.n_features,
        feature_index=np.array(kept, np.int32),
        offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32),
        thresholds=(np.concatenate([grid[c] for c in kept]) if kept else np.zeros(0)).astype(np.float32),
    )


def _copy_positions(encoder: Thermometer, wide: Thermometer, shape, shift) -> np.ndarray:
    """For each bit of ``encoder``, its position among ``wide``'s bits in the copy moved by
    ``shift`` (:data:`OUTSIDE` where the source pixel lies outside the image)."""
    src = bit_sources(encoder, shape, *shift)
    slot = np.full(encoder.n_features, -1, np.int64)
    slot[wide.feature_index] = np.arange(wide.n_kept)
    pos = np.full(encoder.n_bits, OUTSIDE, np.int64)
    for b in np.flatnonzero(src != OUTSIDE):
        f = slot[src[b]]
        t = wide.feature_thresholds(f)
        pos[b] = wide.offsets[f] + int(np.searchsorted(t, encoder.thresholds[b]))
    return pos


def _first_layer(layer: IntLayer, encoder: Thermometer, wide: Thermometer, shape, shifts) -> IntLayer:
    """k copies of the first layer over ``wide``'s bits: copy i's neuron j reads, for each of its
    bits, the bit of the moved pixel; a bit whose pixel lies outside the image reads the constant
    ``0 >= t`` (zero fill), folded into the neuron's threshold."""
    w, read = layer.weight_bits(), layer.read_bits()
    outside_value = (np.float32(0) >= encoder.thresholds).astype(np.uint8)
    W, M, T = [], [], []
    for shift in shifts:
        pos = _copy_positions(encoder, wide, shape, shift)
        inside = pos != OUTSIDE
        Wi = np.zeros((layer.n_out, wide.n_bits), np.uint8)
        Mi = np.zeros_like(Wi)
        Wi[:, pos[inside]] = w[:, inside]
        Mi[:, pos[inside]] = read[:, inside]
        agree_outside = ((w[:, ~inside] == outside_value[None, ~inside]) & (read[:, ~inside] == 1)).sum(1)
        n_read = Mi.sum(1)
        T.append(np.clip(layer.thresholds - agree_outside, 0, n_read + 1))
        W.append(Wi), M.append(Mi)
    return IntLayer(wide.n_bits, pack_bits(np.concatenate(W)), np.concatenate(T).astype(np.int32),
                    pack_bits(np.concatenate(M)))


def _block_diagonal(layer: IntLayer, k: int) -> IntLayer:
    """k copies of a hidden layer, copy i reading only copy i's outputs of the layer before."""
    w, read = layer.weight_bits(), layer.read_bits()
    W = np.zeros((k * layer.n_out, k * layer.n_in), np.uint8)
    M = np.zeros_like(W)
    for i in range(k):
        rows, cols = slice(i * layer.n_out, (i + 1) * layer.n_out), slice(i * layer.n_in, (i + 1) * layer.n_in)
        W[rows, cols], M[rows, cols] = w, read
    return IntLayer(k * layer.n_in, pack_bits(W), np.tile(layer.thresholds, k), pack_bits(M))


def _summed_output(layer: IntLayer, k: int, tau: int) -> IntLayer:
    """The output neuron reading every copy's last hidden layer with the same weights: its
    agreement count is the sum of the copies' scores, compared with ``tau``."""
    w, read = layer.weight_bits(), layer.read_bits()
    mask = None if layer.mask is None else pack_bits(np.tile(read, k))
    return IntLayer(k * layer.n_in, pack_bits(np.tile(w, k)), np.array([tau], np.int32), mask)


def copies_net(net: BoundNet, encoder: Thermometer, wide: Thermometer, shape, shifts,
               tau: int, hidden: tuple[IntLayer, ...] | None = None) -> BoundNet:
    """``net`` run on every shifted copy with its scores summed, as one binary network over
    ``wide`` (:func:`copies_encoder`): its score is :func:`summed_scores`, its threshold ``tau``.
    ``hidden``: the expanded hidden layers to reuse (one network read both ways shares them)."""
    if len(net.layers) < 2:
        raise ValueError("shifted copies need a bound with a hidden layer (their scores are summed by the output neuron)")
    k = len(shifts)
    if hidden is None:
        hidden = (_first_layer(net.layers[0], encoder, wide, shape, shifts),) + tuple(
            _block_diagonal(layer, k) for layer in net.layers[1:-1])
    return BoundNet(net.answer, tuple(hidden) + (_summed_output(net.layers[-1], k, tau),))


@dataclass(frozen=True)
class ShiftCopies:
    """What the device stores for a decision over shifted copies: the bounds as trained (their
    output thresholds unused: the summed thresholds are the expanded bounds'), the encoder they
    were trained with, the image shape and the shifts."""

    shape: tuple[int, int]
    shifts: tuple[tuple[int, int], ...]
    encoder: Thermometer
    upper: BoundNet
    lower: BoundNet
    one_network: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(v) for v in self.shape))
        object.__setattr__(self, "shifts", tuple((int(dy), int(dx)) for dy, dx in self.shifts))
        # the stored output thresholds are unused (the summed ones are the expanded bounds'): 0
        object.__setattr__(self, "upper", self.upper.with_tau(0))
        object.__setattr__(self, "lower", self.lower.with_tau(0))
        check_shifts(self.shape, self.shifts, self.encoder.n_features)
        if self.one_network and not shares_hidden(self.upper, self.lower):
            raise ValueError("one network: the lower bound's hidden layers must be the upper's")

    @property
    def k(self) -> int:
        return len(self.shifts)


def check_shifts(shape, shifts, n_features: int) -> None:
    """Refuse copies the runtime cannot make (ValueError, one line)."""
    h, w = (int(v) for v in shape)
    if h * w != n_features:
        raise ValueError(f"an image of {h}x{w} pixels does not hold {n_features} features")
    if not 1 <= h <= 255 or not 1 <= w <= 255:
        raise ValueError(f"image shape {h}x{w}: each side must be 1..255 for shifted copies")
    if not shifts or len(shifts) > 255 or len(set(shifts)) != len(shifts):
        raise ValueError("shifted copies: give 1..255 distinct shifts")
    for dy, dx in shifts:
        if abs(dy) >= h or abs(dx) >= w or abs(dy) > 127 or abs(dx) > 127:
            raise ValueError(f"shift ({dy}, {dx}) moves the {h}x{w} image out of sight")


def expand_copies(copies: ShiftCopies, tau_yes: int, tau_no: int) -> tuple[Thermometer, BoundNet, BoundNet]:
    """The decision over ``copies`` as one encoder and two ordinary bounds (module docstring),
    with summed thresholds ``tau_yes`` / ``tau_no``; a one network's lower bound shares the
    upper's expanded hidden layers (the same objects)."""
    wide = copies_encoder(copies.encoder, copies.shape, copies.shifts)
    upper = copies_net(copies.upper, copies.encoder, wide, copies.shape, copies.shifts, tau_yes)
    hidden = upper.layers[:-1] if copies.one_network else None
    lower = copies_net(copies.lower, copies.encoder, wide, copies.shape, copies.shifts, tau_no, hidden)
    return wide, upper, lower
