"""The domain of an explanation: which inputs its claim ranges over.

Every explanation (abductive, contrastive) and every robustness verdict is a statement about the
inputs of a *domain*; the features it does not pin range over the domain only:

- ``box`` (default): the whole data box: every level of every feature;
- ``delta D``: each feature moves at most ``D`` raw units from the input: feature ``f`` with value
  ``x_f`` may take the levels whose thermometer cell ``[t_(L-1), t_L)`` meets ``[x_f - D, x_f + D]``;
- ``radius R``: each feature moves at most ``R`` thermometer steps: levels ``[l_f - R, l_f + R]``
  clipped to ``0..K_f``.

In level terms a domain is one level box ``lo_f..hi_f`` around the input (:class:`Domain`); the
SAT oracle pins the free features to it with assumptions, the interval engine and the branch and
bound start from it, and the numpy attacks only move inside it. The JSON of a result names it
(:meth:`Domain.describe`), and the explanation store keys on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...errors import BnnError


@dataclass(frozen=True, eq=False)
class Domain:
    """A level box ``lo..hi`` (per kept feature, inclusive) and what it was built from."""

    kind: str  # "box" | "delta" | "radius"
    lo: np.ndarray  # int64 (F,): lowest allowed level per kept feature
    hi: np.ndarray  # int64 (F,): highest allowed level
    delta: float | None = None
    radius: int | None = None

    # ---------------------------------------------------------------- construction
    @classmethod
    def whole(cls, enc) -> "Domain":
        n = np.diff(enc.offsets).astype(np.int64)
        return cls._make("box", np.zeros_like(n), n)

    @classmethod
    def build(cls, enc, levels: np.ndarray, x: np.ndarray | None = None, delta: float | None = None,
              radius: int | None = None) -> "Domain":
        """The domain of ``--delta`` / ``--radius`` (neither: the whole box) around an input with
        kept-feature ``levels`` and raw row ``x`` (needed for ``delta``). Bad values are a
        :class:`~bnnembed.errors.BnnError`."""
        check_flags(enc, delta, radius)
        if delta is None and radius is None:
            return cls.whole(enc)
        n = np.diff(enc.offsets).astype(np.int64)
        levels = np.asarray(levels, np.int64)
        if radius is not None:
            return cls._make("radius", np.maximum(levels - radius, 0), np.minimum(levels + radius, n),
                             radius=int(radius))
        if x is None:
            raise BnnError("--delta needs the raw input row, which this decision was not stored with; "
                           "explain it with --data SRC --row N, or use --radius R (thermometer steps)")
        x = np.asarray(x, np.float64).reshape(-1)
        lo = np.empty(len(n), np.int64)
        hi = np.empty(len(n), np.int64)
        for f in range(len(n)):
            t = enc.feature_thresholds(f).astype(np.float64)
            v = float(x[int(enc.feature_index[f])])
            # cell L is [t_(L-1), t_L); it meets [v - D, v + D] iff t_L > v - D and t_(L-1) <= v + D
            lo[f] = np.searchsorted(t, v - delta, side="right")
            hi[f] = np.searchsorted(t, v + delta, side="right")
        # the input's own level is always inside (its float32 encoding may sit on a threshold)
        lo, hi = np.minimum(lo, levels), np.maximum(hi, levels)
        return cls._make("delta", lo, hi, delta=float(delta))

    @classmethod
    def _make(cls, kind, lo, hi, **kw) -> "Domain":
        lo, hi = np.array(lo, np.int64), np.array(hi, np.int64)
        lo.setflags(write=False)
        hi.setflags(write=False)
        return cls(kind, lo, hi, **kw)

    # ---------------------------------------------------------------- use
    @property
    def n_features(self) -> int:
        return int(self.lo.shape[0])

    def describe(self) -> dict:
        """The JSON naming of the domain, e.g. ``{"kind": "delta", "delta": 4.0}``."""
        if self.kind == "delta":
            return {"kind": "delta", "delta": self.delta}
        if self.kind == "radius":
            return {"kind": "radius", "radius": self.radius}
        return {"kind": "box"}

    def text(self) -> str:
        if self.kind == "delta":
            return f"every other feature within {self.delta:g} (raw units) of the input"
        if self.kind == "radius":
            return f"every other feature within {self.radius} thermometer steps of the input"
        return "any value for the other features"

    def box(self, levels: np.ndarray, pinned) -> tuple[np.ndarray, np.ndarray]:
        """Level bounds with the ``pinned`` features at ``levels`` and the others over the domain."""
        lo, hi = self.lo.copy(), self.hi.copy()
        idx = np.fromiter((int(f) for f in pinned), np.int64)
        lo[idx] = hi[idx] = np.asarray(levels, np.int64)[idx]
        return lo, hi

    def ranges(self, levels: np.ndarray, pinned) -> dict[int, tuple[int, int]]:
        """:meth:`box` as the oracle's ``{feature: (lo, hi)}`` (every feature listed)."""
        lo, hi = self.box(levels, pinned)
        return {f: (int(a), int(b)) for f, (a, b) in enumerate(zip(lo, hi))}

    def contains(self, levels: np.ndarray) -> np.ndarray:
        """Per row of levels, whether it lies in the domain."""
        levels = np.atleast_2d(levels)
        return np.all((levels >= self.lo) & (levels <= self.hi), axis=1)


def check_flags(enc, delta: float | None, radius: int | None) -> None:
    """One-line errors for bad ``--delta`` / ``--radius`` values."""
    if delta is not None and radius is not None:
        raise BnnError("give --delta D (raw units) or --radius R (thermometer steps), not both")
    if delta is not None and (not isinstance(delta, (int, float)) or math.isnan(delta) or delta < 0
                              or math.isinf(delta)):
        raise BnnError(f"--delta must be a finite number >= 0 (raw feature units), got {delta}; "
                       "leave it out for the whole data box")
    if radius is not None:
        top = int(np.diff(enc.offsets).max()) if enc.n_kept else 0
        if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
            raise BnnError(f"--radius must be a whole number >= 0 (thermometer steps), got {radius}")
        if radius > top:
            raise BnnError(f"--radius {radius} is beyond the encoding's levels: no feature has more than {top} "
                           f"thermometer steps (--radius {top} already frees every level); leave it out for the "
                           "whole data box")
