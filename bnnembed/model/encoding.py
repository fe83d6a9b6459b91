"""Input encoding: each real feature becomes a few thermometer bits.

Feature ``f`` keeps a sorted list of distinct thresholds ``t_f0 < t_f1 < ...`` (up to K, taken at
quantiles of the training data). Bit ``k`` of feature ``f`` is ``1`` iff ``x_f >= t_fk`` (compared
in float32, exactly as the C runtime does). Hence bit ``k+1`` implies bit ``k``: the bits of a
feature form a thermometer, and a feature's bits tell which interval ``[t_fk, t_f(k+1))`` the
value lies in. The bits of all kept features are concatenated in feature order; the bits of
feature ``f`` occupy positions ``offsets[f] .. offsets[f+1]-1``.

Features that are constant on the training data get no thresholds and are dropped (with a note).
:meth:`Thermometer.restrict` drops more features the same way (a build that reads only K
features): the format is unchanged, the device just reads fewer bits.
Under the packing convention a set bit means -1; the first binary layer learns the sign.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Thermometer:
    """Fitted thermometer encoder (see module docstring for the bit semantics)."""

    n_features: int  # columns of the raw input (including dropped ones)
    feature_index: np.ndarray  # int32 (F_kept,): raw column of each kept feature
    offsets: np.ndarray  # int32 (F_kept + 1,): bit range of each kept feature
    thresholds: np.ndarray  # float32 (n_bits,): threshold of each bit

    @property
    def n_bits(self) -> int:
        return int(self.offsets[-1])

    @property
    def n_kept(self) -> int:
        return int(self.feature_index.shape[0])

    def feature_thresholds(self, f: int) -> np.ndarray:
        """Sorted thresholds of kept feature ``f`` (index among kept features)."""
        return self.thresholds[self.offsets[f] : self.offsets[f + 1]]

    def bit_owner(self) -> np.ndarray:
        """Kept-feature index of every bit."""
        return np.repeat(np.arange(self.n_kept), np.diff(self.offsets))

    def encode(self, X: np.ndarray) -> np.ndarray:
        """Thermometer bits ``(batch, n_bits)`` uint8 of raw inputs ``(batch, n_features)``."""
        X = np.asarray(X, dtype=np.float32)
        cols = X[:, self.feature_index[self.bit_owner()]]
        return (cols >= self.thresholds[None, :]).astype(np.uint8)

    def levels(self, bits: np.ndarray) -> np.ndarray:
        """Per kept feature, how many of its bits are set (its interval index), ``(batch, F)``."""
        bits = np.asarray(bits, dtype=np.int64)
        csum = np.concatenate([np.zeros((bits.shape[0], 1), np.int64), np.cumsum(bits, 1)], 1)
        return csum[:, self.offsets[1:]] - csum[:, self.offsets[:-1]]

    def bits_from_levels(self, levels: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`levels` for valid thermometer codes."""
        levels = np.asarray(levels, dtype=np.int64)
        owner = self.bit_owner()
        rank = np.arange(self.n_bits) - self.offsets[owner]
        return (levels[:, owner] > rank[None, :]).astype(np.uint8)

    def interval(self, f: int, level: int) -> tuple[float | None, float | None]:
        """The value interval ``[lo, hi)`` of kept feature ``f`` at a level (None = unbounded)."""
        t = self.feature_thresholds(f)
        lo = float(t[level - 1]) if level > 0 else None
        hi = float(t[level]) if level < len(t) else None
        return lo, hi

    def representative(self, levels: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """A raw input whose encoding has the given levels: the lower threshold of each interval
        (or a value below the first threshold), with dropped features set to ``lo``."""
        levels = np.asarray(levels)
        x = np.array(lo, dtype=np.float32, copy=True)
        for f in range(self.n_kept):
            col = self.feature_index[f]
            t = self.feature_thresholds(f)
            lev = int(levels[f])
            if lev > 0:
                x[col] = t[lev - 1]
            else:
                x[col] = np.float32(min(float(lo[col]), float(t[0]) - 1.0)) if len(t) else lo[col]
        return x

    def restrict(self, features) -> "Thermometer":
        """The same encoder reading only the kept features ``features`` (indices among the kept
        features, any order; kept in their original order). Each kept feature keeps its
        thresholds, so the result encodes exactly the columns of :meth:`encode` that belong to
        those features; the other features become unread, as constant features already are."""
        keep = np.unique(np.asarray(features, dtype=np.int64))
        if keep.size == 0:
            raise ValueError("restrict: keep at least one feature")
        if keep[0] < 0 or keep[-1] >= self.n_kept:
            raise ValueError(f"restrict: feature indices must be in 0..{self.n_kept - 1}")
        sizes = np.diff(self.offsets)[keep]
        bits = self.bit_columns(keep)
        return Thermometer(
            n_features=self.n_features,
            feature_index=self.feature_index[keep].astype(np.int32),
            offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32),
            thresholds=self.thresholds[bits].astype(np.float32),
        )

    def keep_bits(self, columns) -> "Thermometer":
        """The encoder with only the bits at ``columns`` (positions in :meth:`encode`'s output);
        a feature left without bits becomes unread. Its output is ``encode(X)[:, sorted(columns)]``."""
        cols = np.unique(np.asarray(columns, dtype=np.int64))
        if cols.size == 0:
            raise ValueError("keep_bits: keep at least one bit")
        if cols[0] < 0 or cols[-1] >= self.n_bits:
            raise ValueError(f"keep_bits: bit positions must be in 0..{self.n_bits - 1}")
        sizes = np.bincount(self.bit_owner()[cols], minlength=self.n_kept)
        kept = np.flatnonzero(sizes)
        return Thermometer(
            n_features=self.n_features,
            feature_index=self.feature_index[kept].astype(np.int32),
            offsets=np.concatenate([[0], np.cumsum(sizes[kept])]).astype(np.int32),
            thresholds=self.thresholds[cols].astype(np.float32),
        )

    def bit_columns(self, features) -> np.ndarray:
        """Positions in :meth:`encode`'s output of the bits of kept features ``features``
        (sorted), i.e. the columns that :meth:`restrict` keeps."""
        keep = np.unique(np.asarray(features, dtype=np.int64))
        if keep.size == 0:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([np.arange(self.offsets[f], self.offsets[f + 1]) for f in keep])

    def to_arrays(self, prefix: str = "encoding_") -> dict[str, np.ndarray]:
        return {
            f"{prefix}n_features": np.array(self.n_features, dtype=np.int32),
            f"{prefix}feature_index": self.feature_index.astype(np.int32),
            f"{prefix}offsets": self.offsets.astype(np.int32),
            f"{prefix}thresholds": self.thresholds.astype(np.float32),
        }

    @classmethod
    def from_arrays(cls, arrays, prefix: str = "encoding_") -> "Thermometer":
        return cls(
            n_features=int(arrays[f"{prefix}n_features"]),
            feature_index=np.asarray(arrays[f"{prefix}feature_index"], dtype=np.int32),
            offsets=np.asarray(arrays[f"{prefix}offsets"], dtype=np.int32),
            thresholds=np.asarray(arrays[f"{prefix}thresholds"], dtype=np.float32),
        )


def whole_word_bits(bits: np.ndarray, word_bits: int = 32, max_trim: int = 8) -> np.ndarray:
    """The bit positions to keep so that the input fills whole packed words, when that costs at
    most ``max_trim`` bits: of the encoded rows ``bits`` ``(rows, n_bits)``, the
    ``n_bits % word_bits`` bits that carry least information (smallest ``p(1 - p)``, ``p`` the
    share of rows with the bit set; ties: the later bit) are left out. Otherwise every bit is kept.

    Why: each first-layer weight row is padded to whole words, so a few bits over a word boundary
    cost a whole word of flash per neuron and a word of XNOR-popcount per neuron on the device
    (MNIST: 674 bits -> 22 words, trimmed to 672 = 21 words: 2,048 B less flash over the pair).
    """
    n = bits.shape[1]
    extra = n % word_bits
    if extra == 0 or extra > max_trim or n - extra < word_bits:
        return np.arange(n, dtype=np.int64)
    p = np.asarray(bits).mean(axis=0, dtype=np.float64)
    info = p * (1.0 - p)
    order = np.lexsort((-np.arange(n), info))  # least information first, later bit first on ties
    return np.sort(order[extra:]).astype(np.int64)


def fit_thermometer(X: np.ndarray, bits_per_feature: int) -> tuple[Thermometer, list[int]]:
    """Quantile thresholds per feature; returns the encoder and the dropped (constant) columns.

    Thresholds sit at the quantiles ``k/(K+1)``, ``k = 1..K``, of the training values, are made
    distinct, and a threshold at or below the feature's minimum is removed (its bit would always
    be 1). A feature left without thresholds carries no information and is dropped.
    """
    if bits_per_feature < 1:
        raise ValueError("bits_per_feature must be >= 1")
    X = np.asarray(X, dtype=np.float32)
    qs = np.arange(1, bits_per_feature + 1) / (bits_per_feature + 1)
    kept, offsets, thresholds, dropped = [], [0], [], []
    for col in range(X.shape[1]):
        values = X[:, col]
        lo = values.min()
        cand = np.unique(np.quantile(values, qs, method="higher").astype(np.float32))
        cand = cand[cand > lo]
        if cand.size == 0:
            # a feature whose quantiles all equal its minimum may still vary: split at its median
            # of the values above the minimum
            above = np.unique(values[values > lo])
            if above.size == 0:
                dropped.append(col)
                continue
            cand = above[[above.size // 2]]
        kept.append(col)
        thresholds.extend(cand.tolist())
        offsets.append(offsets[-1] + cand.size)
    enc = Thermometer(
        n_features=X.shape[1],
        feature_index=np.array(kept, dtype=np.int32),
        offsets=np.array(offsets, dtype=np.int32),
        thresholds=np.array(thresholds, dtype=np.float32),
    )
    return enc, dropped


def fit_packed_thermometer(X_train: np.ndarray, k_bits: int, trim: bool = True
                           ) -> tuple[Thermometer, list[int], int, list[int]]:
    """The thermometer on the training rows, trimmed (``trim``) to whole 32-bit words where that
    drops at most 8 bits (:func:`whole_word_bits`). Returns ``(encoder, dropped constant columns,
    bits trimmed, columns left unread by the trim)``: a feature whose every bit was trimmed (a
    sparse feature with one threshold, such as an MNIST border pixel) is no longer read, though it
    is not constant. A ``--features K`` build is not trimmed: trimming could leave a chosen
    feature unread."""
    encoder, dropped = fit_thermometer(X_train, k_bits)
    keep = whole_word_bits(encoder.encode(X_train)) if trim else np.arange(encoder.n_bits)
    if len(keep) == encoder.n_bits:
        return encoder, dropped, 0, []
    trimmed = encoder.keep_bits(keep)
    unread = sorted(set(encoder.feature_index.tolist()) - set(trimmed.feature_index.tolist()))
    return trimmed, dropped, encoder.n_bits - len(keep), [int(c) for c in unread]
