"""The input regions an explanation stands for, as raw-feature boxes for the DNN's MILP.

An explanation pins some kept features; its region for the *bound* puts each pinned feature in
the input's thermometer cell (:func:`explanation_box`), its region for the *DNN* (the default
question of ``certify``) fixes each pinned feature at the input's exact value
(:func:`value_box`). Every other feature ranges over the data box, cut to the explanation's
domain (``--delta`` / ``--radius``). Boxes are ``(lo, hi, hi_open)``: ``hi_open`` marks sides
that are ``< t`` (a thermometer threshold) rather than ``<= t``.
"""

from __future__ import annotations

import numpy as np

from ...model.encoding import Thermometer


def level_box(enc: Thermometer, llo: np.ndarray, lhi: np.ndarray, lo: np.ndarray, hi: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lo, hi, hi_open)`` of the raw inputs whose kept features sit at levels ``llo..lhi``
    (``[t_(a-1), t_b)`` clipped to ``[lo, hi]``; dropped features over ``[lo, hi]``);
    ``hi_open`` marks the sides that are ``< t_b``."""
    blo = np.asarray(lo, np.float64).copy()
    bhi = np.asarray(hi, np.float64).copy()
    hi_open = np.zeros(len(blo), dtype=bool)
    for f in range(enc.n_kept):
        col = int(enc.feature_index[f])
        t = enc.feature_thresholds(f).astype(np.float64)
        a, b = int(llo[f]), int(lhi[f])
        if a > 0:
            blo[col] = max(blo[col], t[a - 1])
        if b < len(t) and t[b] <= bhi[col]:
            bhi[col] = t[b]
            hi_open[col] = True
        bhi[col] = max(bhi[col], blo[col])
    return blo, bhi, hi_open


def explanation_box(enc: Thermometer, pinned: list[tuple[int, int]], lo: np.ndarray, hi: np.ndarray,
                    x: np.ndarray | None = None, domain=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lo, hi, hi_open)`` of the region where kept features ``f`` sit at level ``L`` for every
    ``(f, L)`` in ``pinned`` and the other features range over ``[lo, hi]`` (widened to ``x``),
    restricted to the explanation's ``domain`` (:class:`~bnnembed.logic.explain.domain.Domain`,
    default the whole box): its levels, and for ``delta`` also ``[x - delta, x + delta]``."""
    blo = np.asarray(lo, np.float64)
    bhi = np.asarray(hi, np.float64)
    if x is not None:
        blo = np.minimum(blo, np.asarray(x, np.float64))
        bhi = np.maximum(bhi, np.asarray(x, np.float64))
    llo = np.zeros(enc.n_kept, dtype=np.int64)
    lhi = np.diff(enc.offsets).astype(np.int64)
    if domain is not None and domain.kind != "box":
        llo, lhi = domain.lo.copy(), domain.hi.copy()
        if domain.kind == "delta":
            xd = np.asarray(x, np.float64)
            blo = np.maximum(blo, xd - domain.delta)
            bhi = np.minimum(bhi, xd + domain.delta)
    for f, L in pinned:
        llo[f] = lhi[f] = L
    return level_box(enc, llo, lhi, blo, bhi)


def value_box(enc: Thermometer, pinned, lo: np.ndarray, hi: np.ndarray, x: np.ndarray,
              domain=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lo, hi, hi_open)`` of the region where the kept features ``pinned`` (indices, or
    ``(feature, level)`` pairs) equal the input's exact values ``x`` and every other feature ranges
    over the data box ``[lo, hi]`` (widened to ``x``) cut to the ``domain``: for ``delta`` to
    ``[x - delta, x + delta]``, for ``radius`` to the raw span of the domain's levels. Every point
    of it has the pinned features at their input level and the others at levels of the domain, so
    it lies inside the bound's explanation region (:func:`explanation_box`)."""
    x = np.asarray(x, np.float64)
    blo = np.minimum(np.asarray(lo, np.float64), x)
    bhi = np.maximum(np.asarray(hi, np.float64), x)
    hopen = np.zeros(len(blo), dtype=bool)
    if domain is not None and domain.kind == "radius":
        blo, bhi, hopen = level_box(enc, domain.lo, domain.hi, blo, bhi)
    elif domain is not None and domain.kind == "delta":
        blo = np.maximum(blo, x - domain.delta)
        bhi = np.minimum(bhi, x + domain.delta)
    for p in pinned:
        col = int(enc.feature_index[int(p[0] if isinstance(p, tuple) else p)])
        blo[col] = bhi[col] = x[col]
        hopen[col] = False
    return blo, bhi, hopen


def pinned_box(enc: Thermometer, pin: str, pinned: list[tuple[int, int]], lo, hi, x, domain=None):
    """The DNN's question box of an explanation under ``pin`` ("value" or "cell")."""
    if pin == "value":
        return value_box(enc, pinned, lo, hi, x, domain)
    return explanation_box(enc, pinned, lo, hi, x, domain)


def distance(c: np.ndarray, x: np.ndarray) -> dict:
    """How far a counterexample is from the input: L-infinity and L2 in raw units, and how many
    features it changes."""
    d = np.asarray(c, np.float64).reshape(-1) - np.asarray(x, np.float64).reshape(-1)
    return {"linf": round(float(np.abs(d).max(initial=0.0)), 6), "l2": round(float(np.sqrt((d * d).sum())), 6),
            "changed": int(np.count_nonzero(d))}
