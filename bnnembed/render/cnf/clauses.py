"""Clause storage shared by the encoders, the DIMACS writer and the checkers.

Clauses are kept as numpy blocks ``(rows, width)`` of signed literals padded with 0 at the end of
each row: :class:`ClauseSink` collects them while an encoding is built; :func:`length_groups`,
:func:`rows_by_length` and :func:`shift_vars` read and rewrite such blocks.
"""

from __future__ import annotations

import numpy as np
from pysat.formula import IDPool


class ClauseSink:
    """Collects clauses compactly: numpy blocks ``(rows, width)`` padded with 0, plus small lists.

    ``count_only`` keeps just the numbers (used to size encodings too large to build).
    """

    def __init__(self, pool: IDPool, count_only: bool = False) -> None:
        self.pool = pool
        self.count_only = count_only
        self.n_clauses = 0
        self.n_lits = 0
        self._blocks: list[np.ndarray] = []
        self._small: list[list[int]] = []

    def fresh(self) -> int:
        return self.pool.id()

    def add(self, clause: list[int]) -> None:
        self.n_clauses += 1
        self.n_lits += len(clause)
        if not self.count_only:
            self._small.append(clause)
            if len(self._small) >= 1 << 20:  # keep big encodings in numpy, not Python lists
                self.flush()

    def add_block(self, block: np.ndarray) -> None:
        """Clauses as rows of an int array, 0 = padding."""
        self.n_clauses += int(block.shape[0])
        self.n_lits += int(np.count_nonzero(block))
        if not self.count_only:
            self._blocks.append(np.ascontiguousarray(block, dtype=np.int32))

    def flush(self) -> None:
        if self._small:
            width = max(len(c) for c in self._small)
            arr = np.zeros((len(self._small), width), dtype=np.int32)
            for i, c in enumerate(self._small):
                arr[i, : len(c)] = c
            self._blocks.append(arr)
            self._small = []

    def blocks(self) -> list[np.ndarray]:
        self.flush()
        return self._blocks


def length_groups(block: np.ndarray):
    """Yield ``(w, rows)``: the rows of a 0-padded clause block with ``w`` literals, cut to width
    ``w``, by increasing ``w``."""
    lengths = np.count_nonzero(block, axis=1)
    for w in np.unique(lengths).tolist():
        yield w, block[lengths == w][:, :w]


def rows_by_length(block: np.ndarray):
    """The rows of a 0-padded clause block as lists, grouped by clause length (fast ``tolist``)."""
    for _, rows in length_groups(block):
        yield rows.tolist()


def shift_vars(block: np.ndarray, n_bits: int, offset: int) -> np.ndarray:
    """Add ``offset`` to every variable above ``n_bits`` (signs kept, padding 0 kept)."""
    a = np.abs(block)
    return np.where(a > n_bits, block + np.sign(block) * offset, block).astype(block.dtype)
