"""A claim about the DNN on a box, as score differences, and what the DNN runtime says.

A claim is "the DNN says ``yes`` (or ``no``) on every input of a box". :class:`Sides` turns it
into differences of output scores (with a constant-zero column for a single logit) that the
IBP check, the attack and the MILP refutation rows all share; :func:`claim_margin` is its slack
on given outputs; :func:`runtime_says` asks the float32 runtime (onnxruntime) for the decision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sides:
    """Which output columns must win for ``yes``, with a constant 0 column for a single logit.

    Scores are the network outputs extended by one constant-zero column when there is a single
    logit (so ``yes`` = logit beats 0). A claim holds on ``x`` iff some column of ``claim`` beats
    every column of ``other``; it fails iff some column ``a`` of ``other`` satisfies
    ``s_b - s_a <= eps`` for every column ``b`` of ``claim``.
    """

    yes_cols: tuple[int, ...]
    no_cols: tuple[int, ...]
    n_scores: int

    @classmethod
    def for_net(cls, n_out: int, positive_columns: tuple[int, ...]) -> "Sides":
        if n_out == 1:
            return cls((0,), (1,), 2)
        pos = tuple(sorted(set(int(c) for c in positive_columns)))
        if not pos or any(not 0 <= c < n_out for c in pos):
            raise ValueError(f"positive columns {positive_columns} do not fit {n_out} outputs")
        neg = tuple(c for c in range(n_out) if c not in pos)
        if not neg:
            raise ValueError("every output column is positive: the DNN always says yes")
        return cls(pos, neg, n_out)

    def split(self, claim: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(columns of the claim's side, columns of the other side)."""
        return (self.yes_cols, self.no_cols) if claim == "yes" else (self.no_cols, self.yes_cols)


def _scores(out: np.ndarray, sides: Sides) -> np.ndarray:
    out = np.atleast_2d(out)
    if sides.n_scores == out.shape[1] + 1:
        return np.concatenate([out, np.zeros((out.shape[0], 1))], 1)
    return out


def claim_margin(out: np.ndarray, sides: Sides, claim: str) -> np.ndarray:
    """Per row, ``max_b min_a (s_b - s_a)``: positive iff the claim holds (its slack)."""
    s = _scores(out, sides)
    B, A = sides.split(claim)
    diffs = s[:, list(B)][:, :, None] - s[:, list(A)][:, None, :]
    return diffs.min(2).max(1)


def runtime_says(dnn, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(raw outputs, says-yes booleans) of the DNN runtime."""
    from ...learn.dnn import yes_from_output

    out = dnn.raw(np.asarray(X, dtype=np.float32))
    return out, yes_from_output(out, dnn.positive_columns, getattr(dnn, "output", "logit"))
