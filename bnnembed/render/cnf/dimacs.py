"""DIMACS text: writing a bound's CNF, reading a file back, and splitting its clauses.

:func:`write_dimacs` writes ``p cnf V C`` and one 0-terminated clause per line (grouped by
clause length within each block); :func:`read_dimacs` returns every literal of a file in one
0-terminated flat array, which :func:`split_clauses` turns into clause lists.
"""

from __future__ import annotations

import numpy as np

from ...errors import BnnError
from .bound import BoundCnf
from .clauses import length_groups


def _format_block(block: np.ndarray) -> str:
    """Rows of a 0-padded clause block (padding at the end of a row) as DIMACS lines."""
    if block.size == 0:
        return ""
    parts = []
    for w, rows in length_groups(block):
        fmt = "%d " * w + "0\n"
        parts.append((fmt * len(rows)) % tuple(rows.ravel().tolist()))
    return "".join(parts)


def write_dimacs(cnf: BoundCnf, path: str, comments: list[str] = ()) -> None:
    """Write ``p cnf V C`` and every clause (one per line, 0-terminated)."""
    with open(path, "w") as fh:
        for c in comments:
            fh.write(f"c {c}\n")
        fh.write(f"p cnf {cnf.n_vars} {cnf.n_clauses}\n")
        for block in cnf.blocks:
            for start in range(0, block.shape[0], 200_000):
                text = _format_block(block[start : start + 200_000])
                fh.write(text)


def read_dimacs(path: str) -> tuple[int, int, np.ndarray]:
    """``(n_vars, n_clauses, flat)``: ``flat`` holds every literal with a 0 after each clause."""
    with open(path, "rb") as fh:
        data = fh.read()
    pos, n_vars, n_clauses = 0, None, None
    while pos < len(data):
        nl = data.find(b"\n", pos)
        nl = len(data) if nl < 0 else nl
        line = data[pos:nl].strip()
        pos = nl + 1
        if not line or line.startswith(b"c"):
            continue
        parts = line.split()
        if len(parts) == 4 and parts[:2] == [b"p", b"cnf"]:
            n_vars, n_clauses = int(parts[2]), int(parts[3])
        break
    if n_vars is None:
        raise BnnError(f"{path}: no DIMACS header; regenerate it with 'bnnembed cnf DIR'")
    flat = np.fromstring(data[pos:].decode("ascii"), dtype=np.int64, sep=" ")
    if flat.size and flat[-1] != 0:
        raise BnnError(f"{path}: truncated DIMACS file; regenerate it with 'bnnembed cnf DIR'")
    if int(np.count_nonzero(flat == 0)) != n_clauses:
        raise BnnError(f"{path}: clause count differs from its header; regenerate it with 'bnnembed cnf DIR'")
    return n_vars, n_clauses, flat


def clause_spans(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, lengths)`` of the clauses in a 0-terminated flat literal array."""
    ends = np.flatnonzero(flat == 0)
    starts = np.concatenate([[0], ends[:-1] + 1])
    return starts, ends - starts


def split_clauses(flat: np.ndarray) -> list[list[int]]:
    """Clauses (lists) from a 0-terminated flat literal array, grouped by length."""
    starts, lengths = clause_spans(flat)
    out = []
    for w in np.unique(lengths).tolist():
        s = starts[lengths == w]
        out += flat[s[:, None] + np.arange(w)[None, :]].tolist()
    return out
