"""One interval engine over boxes of feature levels, beside the integer model.

A *level box* gives each kept feature a range of thermometer levels ``lo_f..hi_f`` (level ``L``:
the feature's first ``L`` bits are 1, the rest 0). Every question the explainer, its branch and
bound, the certifier's cells engine and the MILP bounds ask of a bound over such a box reduces
to two steps, written once here:

- **the first layer exactly**: a neuron's agreement count is a separable sum over features, so
  its minimum and maximum over the box are sums of per-feature minima and maxima over the
  allowed levels, read from a ``neurons x levels`` table (:func:`level_table`);
- **the later layers by interval propagation**: a neuron that surely fires or surely stays
  silent is a known input bit of the next layer; the others may go either way. The result is a
  sound range of the output neuron's agreement count (the bound's score), hence whether the
  bound surely answers, surely does not, or may do either.

Sound (never claims what some input of the box contradicts), incomplete (a box may stay
undecided); the SAT oracle and the branch and bound make it exact.
"""

from __future__ import annotations

import numpy as np

from .encoding import Thermometer
from .intmodel import BoundNet


def level_table(net: BoundNet, enc: Thermometer) -> np.ndarray:
    """``(n_neurons_0, sum_f (K_f + 1))``: the agreement feature ``f`` at level ``L`` adds to each
    first-layer neuron of bound ``net`` (bits below ``L`` are 1 and agree where the weight bit is
    1; bits from ``L`` on are 0 and agree where it is 0; a bit the neuron does not read, outside
    a masked layer's mask, adds nothing)."""
    first = net.layers[0]
    w = first.weight_bits().astype(np.int64)  # (n_out, n_bits)
    r = first.read_bits().astype(np.int64)
    cols = []
    for f in range(enc.n_kept):
        lo, hi = int(enc.offsets[f]), int(enc.offsets[f + 1])
        wf, rf = w[:, lo:hi], r[:, lo:hi]
        ones = np.concatenate([np.zeros((w.shape[0], 1), np.int64), np.cumsum(wf & rf, 1)], 1)
        zeros_after = np.concatenate([np.cumsum(((1 - wf) & rf)[:, ::-1], 1)[:, ::-1],
                                      np.zeros((w.shape[0], 1), np.int64)], 1)
        cols.append(ones + zeros_after)  # (n_out, K_f + 1)
    return np.concatenate(cols, 1)


def level_index(n_levels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column bookkeeping of a :func:`level_table`: per feature its first column (``starts``), and
    per column its feature (``owner``) and level (``level_of_col``)."""
    widths = np.asarray(n_levels, np.int64) + 1  # levels 0..K_f
    starts = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)
    owner = np.repeat(np.arange(len(widths)), widths)
    return starts, owner, np.arange(int(widths.sum())) - starts[owner]


def box_ranges(table: np.ndarray, index, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per first-layer neuron and feature, the min and max agreement the feature adds over its
    levels ``lo..hi``: two ``(n_neurons, n_features)`` arrays (``index`` from :func:`level_index`)."""
    starts, owner, level_of_col = index
    inside = (level_of_col >= lo[owner]) & (level_of_col <= hi[owner])
    big = np.iinfo(np.int64).max // 4
    mn = np.minimum.reduceat(np.where(inside[None, :], table, big), starts, axis=1)
    mx = np.maximum.reduceat(np.where(inside[None, :], table, -big), starts, axis=1)
    return mn, mx


def deeper_layers(net: BoundNet) -> list[tuple]:
    """The layers after the first as float32 ``(agree-if-on, agree-if-off, thresholds, read)``
    (sums of 0/1 values below 2^24 are exact in float32); ``read`` is the 0/1 matrix of the bits
    each neuron reads for a masked layer, None for a dense one (every neuron reads every bit)."""
    out = []
    for layer in net.layers[1:]:
        w = layer.weight_bits().astype(np.float32)
        if layer.masked:
            r = layer.read_bits().astype(np.float32)
            out.append((w, r - w, layer.thresholds.astype(np.float32), r))
        else:
            out.append((w, 1.0 - w, layer.thresholds.astype(np.float32), None))
    return out


def _open_count(read, on: np.ndarray, off: np.ndarray):
    """How many of a layer's inputs that may go either way each neuron reads."""
    if read is None:
        return float(len(on) - on.sum() - off.sum())
    return read @ (1.0 - on - off)


def count_range(cmin: np.ndarray, cmax: np.ndarray, T0: np.ndarray, deeper) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sound ``(lo, hi)`` of the last layer's agreement counts given the first layer's count ranges
    ``cmin..cmax`` (interval propagation through neurons that surely fire or stay silent), and the
    first-layer neurons that may go either way."""
    on = (cmin >= T0).astype(np.float32)
    off = (cmax < T0).astype(np.float32)
    unstable0 = (on + off) == 0
    if not deeper:  # a one-layer bound: the first layer is the output
        return np.asarray(cmin, np.float32), np.asarray(cmax, np.float32), unstable0
    lo_c = hi_c = T_prev = None
    for k, (w1, w0, T, read) in enumerate(deeper):
        if k:
            on, off = (lo_c >= T_prev).astype(np.float32), (hi_c < T_prev).astype(np.float32)
        lo_c = w1 @ on + w0 @ off
        hi_c = lo_c + _open_count(read, on, off)
        T_prev = T
    return lo_c, hi_c, unstable0


def layer_states(cmin: np.ndarray, cmax: np.ndarray, T0: np.ndarray, deeper) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per layer before the output, ``(fires, silent)``: the neurons that surely fire and surely
    stay silent for every first-layer count in ``cmin..cmax`` (the same propagation as
    :func:`count_range`; a neuron in neither may go either way)."""
    out = [(cmin >= T0, cmax < T0)]
    for w1, w0, T, read in deeper[:-1]:
        on, off = (x.astype(np.float32) for x in out[-1])
        lo_c = w1 @ on + w0 @ off
        hi_c = lo_c + _open_count(read, on, off)
        out.append((lo_c >= T, hi_c < T))
    return out if deeper else []


def output_count_range(mn: np.ndarray, mx: np.ndarray, T0: np.ndarray, deeper) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`count_range` from per-feature first-layer ranges ``mn``/``mx`` (:func:`box_ranges`)."""
    return count_range(mn.sum(1), mx.sum(1), T0, deeper)


class LevelBoxes:
    """One bound over level boxes: the table, the propagation layers and the questions asked."""

    def __init__(self, bound: BoundNet, enc: Thermometer) -> None:
        self.bound = bound
        self.table = level_table(bound, enc)
        self.n_levels = np.diff(enc.offsets).astype(np.int64)
        self.index = level_index(self.n_levels)
        self.T0 = bound.layers[0].thresholds
        self.deeper = deeper_layers(bound)
        self.T_out = bound.layers[-1].thresholds[0]

    def feature_ranges(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per first-layer neuron and feature, min and max agreement over levels ``lo..hi``."""
        return box_ranges(self.table, self.index, lo, hi)

    def column_range(self, f: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Min and max agreement feature ``f`` at levels ``lo..hi`` adds to each first-layer neuron."""
        start = int(self.index[0][f])
        part = self.table[:, start + lo : start + hi + 1]
        return part.min(1), part.max(1)

    def first_layer_range(self, ranges: dict[int, tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        """First-layer count ranges with the listed features' level ranges (others free)."""
        lo = np.zeros(len(self.n_levels), np.int64)
        hi = self.n_levels.copy()
        for f, (a, b) in ranges.items():
            lo[f], hi[f] = a, b
        mn, mx = self.feature_ranges(lo, hi)
        return mn.sum(1), mx.sum(1)

    def stable(self, lo: np.ndarray, hi: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per hidden layer, the neurons that surely fire / surely stay silent on every input of
        the level box ``lo..hi`` (:func:`layer_states`); the SAT oracle assumes them as units."""
        mn, mx = self.feature_ranges(lo, hi)
        return layer_states(mn.sum(1), mx.sum(1), self.T0, self.deeper)

    def certain(self, cmin: np.ndarray, cmax: np.ndarray, answers: bool) -> bool:
        """True iff the bound surely answers (``answers``) or surely does not (``not answers``)
        for every first-layer count in ``cmin..cmax``."""
        lo_c, hi_c, _ = count_range(cmin, cmax, self.T0, self.deeper)
        return bool(lo_c[0] >= self.T_out) if answers else bool(hi_c[0] < self.T_out)

    def entails(self, ranges: dict[int, tuple[int, int]], answers: bool) -> bool:
        return self.certain(*self.first_layer_range(ranges), answers)

    def state(self, mn: np.ndarray, mx: np.ndarray, answers: bool):
        """``(state, unstable, room)`` on a box given its per-feature ranges: state +1 if the bound
        surely keeps ``answers``, -1 if it surely breaks it everywhere, 0 if undecided; ``unstable``
        marks the first-layer neurons that may go either way and ``room`` how far the output's
        count range reaches past its threshold on the breaking side."""
        lo_c, hi_c, unstable0 = output_count_range(mn, mx, self.T0, self.deeper)
        fires, silent = bool(lo_c[0] >= self.T_out), bool(hi_c[0] < self.T_out)
        if (fires and answers) or (silent and not answers):
            return 1, None, 0.0
        if (fires and not answers) or (silent and answers):
            return -1, None, 0.0
        room = float(self.T_out - lo_c[0]) if answers else float(hi_c[0] - self.T_out + 1)
        return 0, unstable0, room

    def score_range(self, llo: np.ndarray, lhi: np.ndarray) -> tuple[float, float, np.ndarray]:
        """``(min score, max score, per-feature split weight)`` over the level box (the score
        bounds are sound; the weight is how much each feature moves the undecided neurons)."""
        mn, mx = self.feature_ranges(llo, lhi)
        s_lo, s_hi, unstable = output_count_range(mn, mx, self.T0, self.deeper)
        rng = (mx - mn).astype(np.float64)
        weight = rng[unstable].sum(0) if unstable.any() else np.zeros(rng.shape[1])
        return float(s_lo[0]), float(s_hi[0]), weight
