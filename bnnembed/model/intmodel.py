"""The integer model: the single source of truth that numpy, C and CNF render.

A bound is a stack of binary dense layers. Layer ``l`` holds, per neuron ``j``, a packed weight
row ``W[j]`` (uint32 words, see :mod:`bnnembed.model.packing`) and an integer threshold ``T[j]``. With
``a`` the packed input bits of the layer and ``n`` its input width, the neuron's *agreement count*
is ``c_j = popcount(XNOR(a, W[j]))`` over the ``n`` real bits, computed as
``n - popcount(a XOR W[j])`` (padding bits are 0 in both operands). The neuron *fires* iff
``c_j >= T[j]``; its output bit is 1 when it fires (so, with the packing convention, a firing
neuron carries the value -1 into the next layer; the trained network's sign is folded into the
weights, see :func:`bnnembed.learn.train.fold_batchnorm`).

A layer may carry a *mask* (same shape as the weights, bit 1 = the input bit is read): neuron ``j``
then reads only the ``n_j = popcount(M[j])`` bits of its mask row, its agreement count is
``c_j = popcount(XNOR(a, W[j]) AND M[j])``, computed as ``n_j - popcount((a XOR W[j]) AND M[j])``,
and ``T[j]`` lies in ``0..n_j + 1``. Weight bits outside the mask are 0 (canonical), so the count
is also ``n_j - popcount((a AND M[j]) XOR W[j])``. A layer without a mask reads every bit (``n_j = n``).

The last layer has a single neuron: its agreement count is the bound's *score* and its threshold
is the bound's decision threshold (tau), so "the bound answers" is simply "the last neuron fires".
The upper bound answers ``yes``, the lower bound answers ``no``; both or neither means unknown.
A raw input with a non-finite feature (NaN, +-inf) is ``invalid``: no thermometer code stands for
it, so it is decided before any bound runs (:func:`invalid_rows`; the C runtime does the same).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._enum import CodeEnum
from .packing import n_words, pack_bits, unpack_bits


class Decision(CodeEnum):
    """Answer of a bound pair (NO, YES, UNKNOWN), or INVALID for a raw input the bounds must not
    see; the C runtime's ``BNN_DECISIONS`` (firmware/bnn_codes.h) is generated from this enum."""

    NO = 0, "the lower bound answered: the DNN says no"
    YES = 1, "the upper bound answered: the DNN says yes"
    UNKNOWN = 2, "neither bound answered (or both did): left to the DNN"
    INVALID = 3, "a raw input with a non-finite feature: decided before encoding, never a yes/no"

    @property
    def label(self) -> str:
        return self.name.lower()


def invalid_rows(X: np.ndarray) -> np.ndarray:
    """Boolean ``(batch,)``: rows of raw inputs with any non-finite feature (NaN, +inf, -inf).

    Checked on the float32 values the device receives, so a value beyond the float32 range
    (infinite once converted) is invalid too. Such a row has no thermometer code (every compare
    with NaN is false, which would read as "below every threshold"), so it decides INVALID.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        X = np.asarray(X, dtype=np.float32)
    return ~np.isfinite(X.reshape(X.shape[0], -1)).all(axis=1)


@dataclass(frozen=True)
class IntLayer:
    """One binary layer: neuron j fires iff popcount(XNOR(a, weights[j]) AND mask[j]) >= thresholds[j]
    (no mask: every input bit is read, the dense layer)."""

    n_in: int
    weights: np.ndarray  # uint32, shape (n_out, n_words(n_in)), padding bits 0
    thresholds: np.ndarray  # int32, shape (n_out,), each in [0, n_j + 1]
    mask: np.ndarray | None = None  # uint32 like weights: bit 1 = the input bit is read; None = dense

    def __post_init__(self) -> None:
        w = np.ascontiguousarray(self.weights, dtype=np.uint32)
        t = np.ascontiguousarray(self.thresholds, dtype=np.int32)
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "thresholds", t)
        if w.ndim != 2 or w.shape[1] != n_words(self.n_in):
            raise ValueError(f"weights shape {w.shape} does not hold {self.n_in} input bits")
        if t.shape != (w.shape[0],):
            raise ValueError(f"thresholds shape {t.shape} != ({w.shape[0]},)")
        pad = n_words(self.n_in) * 32 - self.n_in
        if pad and np.any(w[:, -1] >> np.uint32(32 - pad)):
            raise ValueError("padding bits of the weights must be 0")
        if self.mask is not None:
            m = np.ascontiguousarray(self.mask, dtype=np.uint32)
            object.__setattr__(self, "mask", m)
            if m.shape != w.shape:
                raise ValueError(f"mask shape {m.shape} != weights shape {w.shape}")
            if pad and np.any(m[:, -1] >> np.uint32(32 - pad)):
                raise ValueError("padding bits of the mask must be 0")
            if np.any(w & ~m):
                raise ValueError("weight bits outside the mask must be 0")

    @property
    def n_out(self) -> int:
        return int(self.weights.shape[0])

    @property
    def masked(self) -> bool:
        return self.mask is not None

    def weight_bits(self) -> np.ndarray:
        """(n_out, n_in) 0/1 matrix of the weights (1 means -1; 0 also where the bit is not read)."""
        return unpack_bits(self.weights, self.n_in)

    def read_bits(self) -> np.ndarray:
        """(n_out, n_in) 0/1 matrix: 1 where the neuron reads the input bit (all 1 when dense)."""
        if self.mask is None:
            return np.ones((self.n_out, self.n_in), np.uint8)
        return unpack_bits(self.mask, self.n_in)

    @property
    def n_read(self) -> np.ndarray:
        """int64 ``(n_out,)``: input bits each neuron reads (``n_in`` when dense)."""
        if self.mask is None:
            return np.full(self.n_out, self.n_in, np.int64)
        return np.bitwise_count(self.mask).sum(axis=1, dtype=np.int64)

    def with_thresholds(self, thresholds: np.ndarray) -> "IntLayer":
        return IntLayer(self.n_in, self.weights, np.asarray(thresholds, dtype=np.int32), self.mask)


@dataclass(frozen=True)
class BoundNet:
    """A bound: binary layers whose single last neuron decides ``answer`` ("yes" or "no")."""

    answer: str
    layers: tuple[IntLayer, ...]

    def __post_init__(self) -> None:
        if self.answer not in ("yes", "no"):
            raise ValueError("answer must be 'yes' or 'no'")
        if not self.layers or self.layers[-1].n_out != 1:
            raise ValueError("the last layer of a bound must have exactly one neuron")
        for prev, nxt in zip(self.layers, self.layers[1:]):
            if prev.n_out != nxt.n_in:
                raise ValueError(f"layer widths do not chain: {prev.n_out} -> {nxt.n_in}")

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    @property
    def tau(self) -> int:
        """Decision threshold on the score (agreement count of the last neuron)."""
        return int(self.layers[-1].thresholds[0])

    @property
    def score_range(self) -> int:
        """Scores lie in ``0..score_range`` (the bits the last neuron reads: its layer's input
        width unless masked)."""
        return int(self.layers[-1].n_read[0])

    def with_tau(self, tau: int) -> "BoundNet":
        last = self.layers[-1].with_thresholds(np.array([tau], dtype=np.int32))
        return BoundNet(self.answer, self.layers[:-1] + (last,))

    @property
    def shape(self) -> list[int]:
        return [self.n_in] + [layer.n_out for layer in self.layers]

    def n_synapses(self) -> int:
        """Synapses read (input bits x neurons of dense layers, the mask bits of masked ones)."""
        return int(sum(layer.n_read.sum() for layer in self.layers))


def flip_output(net: BoundNet, answer: str) -> BoundNet:
    """The same network with its output neuron's weights negated: score becomes ``n - score``.

    The lower bound of one network read both ways (:func:`shares_hidden`): the same hidden
    layers (the same objects), the upper bound's output neuron read backwards.
    """
    last = net.layers[-1]
    bits = last.weight_bits() ^ 1
    if last.masked:
        bits &= last.read_bits()
    flipped = IntLayer(last.n_in, pack_bits(bits), last.thresholds, last.mask)
    return BoundNet(answer, net.layers[:-1] + (flipped,))


def same_layer(a: IntLayer, b: IntLayer) -> bool:
    """Do two layers compute the same function with the same tables (weights, thresholds, mask)?"""
    if a is b:
        return True
    if a.n_in != b.n_in or (a.mask is None) != (b.mask is None):
        return False
    return (np.array_equal(a.weights, b.weights) and np.array_equal(a.thresholds, b.thresholds)
            and (a.mask is None or np.array_equal(a.mask, b.mask)))


def shares_hidden(upper: BoundNet, lower: BoundNet) -> bool:
    """Are the lower bound's hidden layers the upper bound's? Then the pair is *one network* read
    both ways (its output neuron decides yes at one threshold, a second output neuron decides no):
    the artifact stores the hidden layers once, the C runtime stores and runs them once."""
    return (len(upper.layers) == len(lower.layers) > 1
            and all(same_layer(a, b) for a, b in zip(upper.layers[:-1], lower.layers[:-1])))


# --------------------------------------------------------------------------------------------
# numpy reference inference (bit-packed, exact)
# --------------------------------------------------------------------------------------------

_CHUNK = 256  # rows per block: the (rows, n_out) uint64 temporaries stay in cache


def _as_u64(packed: np.ndarray) -> np.ndarray:
    """uint32 words ``(..., n_words)`` viewed as uint64 words (a zero word appended if odd)."""
    packed = np.ascontiguousarray(packed, dtype=np.uint32)
    if packed.shape[-1] % 2:
        packed = np.concatenate([packed, np.zeros(packed.shape[:-1] + (1,), np.uint32)], axis=-1)
    return packed.view(np.uint64)


def agreement_counts(layer: IntLayer, packed: np.ndarray) -> np.ndarray:
    """Agreement counts ``(batch, n_out)`` of a layer for packed inputs ``(batch, n_words)``.

    Word by word over uint64 views: XOR a column of inputs with a row of weights (AND the row's
    mask for a masked layer), popcount, accumulate, all into preallocated ``(block, n_out)``
    buffers (no 3-D temporaries).
    """
    a64 = _as_u64(packed)
    w64 = np.ascontiguousarray(_as_u64(layer.weights).T)  # (n_words64, n_out)
    m64 = None if layer.mask is None else np.ascontiguousarray(_as_u64(layer.mask).T)
    batch, n_out = a64.shape[0], layer.n_out
    out = np.empty((batch, n_out), dtype=np.int64)
    rows = min(_CHUNK, max(batch, 1))
    tmp = np.empty((rows, n_out), np.uint64)
    cnt = np.empty((rows, n_out), np.uint8)
    acc = np.empty((rows, n_out), np.uint16 if layer.n_in <= 65535 else np.int64)
    for start in range(0, batch, rows):
        m = min(rows, batch - start)
        a = a64[start : start + m]
        acc[:m] = 0
        for k in range(w64.shape[0]):
            np.bitwise_xor(a[:, k, None], w64[k][None, :], out=tmp[:m])
            if m64 is not None:
                np.bitwise_and(tmp[:m], m64[k][None, :], out=tmp[:m])
            np.bitwise_count(tmp[:m], out=cnt[:m])
            np.add(acc[:m], cnt[:m], out=acc[:m], casting="unsafe")
        if m64 is None:
            np.subtract(layer.n_in, acc[:m], out=out[start : start + m])
        else:
            np.subtract(layer.n_read[None, :], acc[:m], out=out[start : start + m])
    return out


def _fire_packed(layer: IntLayer, packed: np.ndarray) -> np.ndarray:
    """Packed output words ``(batch, n_words(n_out))`` of a layer (the packing convention of
    :func:`~bnnembed.model.packing.pack_bits`: bit j % 32 of word j // 32, LSB first, padding 0)."""
    fires = agreement_counts(layer, packed) >= layer.thresholds[None, :]
    by = np.packbits(fires, axis=-1, bitorder="little")
    pad = (-by.shape[1]) % 4
    if pad:
        by = np.concatenate([by, np.zeros((by.shape[0], pad), np.uint8)], axis=1)
    return np.ascontiguousarray(by).view("<u4").astype(np.uint32, copy=False)


def layer_forward(layer: IntLayer, packed: np.ndarray) -> np.ndarray:
    """Output bits ``(batch, n_out)`` uint8 of a layer: 1 where the neuron fires."""
    return (agreement_counts(layer, packed) >= layer.thresholds[None, :]).astype(np.uint8)


def forward_trace(net: BoundNet, in_bits: np.ndarray) -> list[np.ndarray]:
    """Every layer's output bits, for unpacked input bits ``(batch, n_in)``."""
    bits = np.asarray(in_bits, dtype=np.uint8)
    trace = []
    for layer in net.layers:
        bits = layer_forward(layer, pack_bits(bits))
        trace.append(bits)
    return trace


def bound_scores(net: BoundNet, in_bits: np.ndarray) -> np.ndarray:
    """Integer scores (agreement count of the last neuron) for unpacked input bits."""
    packed = pack_bits(np.asarray(in_bits, dtype=np.uint8))
    for layer in net.layers[:-1]:
        packed = _fire_packed(layer, packed)
    return agreement_counts(net.layers[-1], packed)[:, 0]


def bound_answers(net: BoundNet, in_bits: np.ndarray) -> np.ndarray:
    """Boolean array: does the bound answer (its last neuron fires)?"""
    return bound_scores(net, in_bits) >= net.tau


def combine(upper_says_yes: np.ndarray, lower_says_no: np.ndarray) -> np.ndarray:
    """Three-way decisions (:class:`Decision` codes) from the two bounds' answers."""
    yes = np.asarray(upper_says_yes, dtype=bool)
    no = np.asarray(lower_says_no, dtype=bool)
    out = np.full(yes.shape, int(Decision.UNKNOWN), dtype=np.int8)
    out[yes & ~no] = int(Decision.YES)
    out[no & ~yes] = int(Decision.NO)
    return out


def decide(upper: BoundNet, lower: BoundNet, in_bits: np.ndarray) -> np.ndarray:
    """Three-way decisions of a bound pair for unpacked input bits."""
    return combine(bound_answers(upper, in_bits), bound_answers(lower, in_bits))
