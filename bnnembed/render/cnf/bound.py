"""The CNF of a whole bound: its variables, the thermometer order constraints and every layer.

Variables are allocated from a :class:`pysat.formula.IDPool` keyed by meaning: ``("x", bit)``
for input bit ``bit`` (always variables ``1..n_bits``), then ``("h", layer, j)`` for every neuron
output in layer order; auxiliary (encoding) variables follow, anonymous. The decision literal is
``("h", last_layer, 0)``. Thermometer bits of a feature carry their order constraints
``x_{k+1} => x_k`` so that only codes a real input can produce are models.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pysat.formula import IDPool

from ...model.encoding import Thermometer
from ...model.intmodel import BoundNet
from .clauses import ClauseSink, rows_by_length, shift_vars
from .encodings import DEFAULT_ENCODING, CardEncoding, encode_layer, encode_layer_rows


@dataclass
class BoundCnf:
    """The CNF of one bound plus what its variables mean."""

    answer: str
    encoding: CardEncoding
    n_bits: int
    n_vars: int
    n_clauses: int
    n_lits: int
    x_vars: np.ndarray  # (n_bits,) variable of each input bit (1..n_bits)
    h_vars: list[np.ndarray]  # per layer, variable of each neuron output
    blocks: list[np.ndarray] = field(default_factory=list)  # clause rows, 0-padded

    @property
    def decision(self) -> int:
        """Literal that is true iff the bound answers."""
        return int(self.h_vars[-1][0])

    def clause_lists(self, offset: int = 0):
        """Yield every clause as a list of ints; variables above the inputs shifted by ``offset``
        (used to put several bounds, sharing their inputs, in one solver)."""
        for block in self.blocks:
            if offset:
                block = shift_vars(block, self.n_bits, offset)
            for chunk in rows_by_length(block):
                yield from chunk


def order_clauses(encoder: Thermometer | None, n_bits: int, x_vars) -> list[list[int]]:
    """``x_{k+1} => x_k`` for consecutive thermometer bits of each kept feature."""
    if encoder is None:
        return []
    out = []
    for f in range(encoder.n_kept):
        lo, hi = int(encoder.offsets[f]), int(encoder.offsets[f + 1])
        for b in range(lo, hi - 1):
            out.append([-int(x_vars[b + 1]), int(x_vars[b])])
    return out


def encode_bound(net: BoundNet, encoder: Thermometer | None = None,
                 encoding: CardEncoding | str = DEFAULT_ENCODING, *, count_only: bool = False,
                 layers: slice | None = None, neurons: int | None = None) -> BoundCnf:
    """Encode a bound. ``encoder`` adds the thermometer order constraints (None: free bits).

    ``count_only`` counts variables and clauses without keeping them; with ``neurons`` it encodes
    only the first ``neurons`` of each layer and with ``layers`` (a slice of the layer indices)
    only those layers (for extrapolating the size of huge encodings, layer by layer).
    """
    encoding = CardEncoding(encoding)
    pool = IDPool()
    n_bits = net.n_in
    x_vars = np.array([pool.id(("x", i)) for i in range(n_bits)], dtype=np.int64)
    h_vars = [np.array([pool.id(("h", l, j)) for j in range(layer.n_out)], dtype=np.int64)
              for l, layer in enumerate(net.layers)]
    sink = ClauseSink(pool, count_only=count_only)
    for cl in order_clauses(encoder, n_bits, x_vars):
        sink.add(cl)
    inputs = x_vars
    chosen = set(range(len(net.layers))[layers if layers is not None else slice(None)])
    for l, layer in enumerate(net.layers):
        if l not in chosen:
            inputs = h_vars[l]
            continue
        w = layer.weight_bits().astype(np.int64)  # 1: agreement iff input bit is 1
        lits = np.where(w == 1, inputs[None, :], -inputs[None, :])
        T = layer.thresholds
        outs = h_vars[l]
        if neurons is not None:
            lits, T, outs = lits[:neurons], T[:neurons], outs[:neurons]
        if layer.masked:  # each neuron counts the bits it reads only
            read = layer.read_bits()[: len(outs)].astype(bool)
            encode_layer_rows(sink, encoding, [lits[j][read[j]] for j in range(len(outs))], T, outs)
        else:
            encode_layer(sink, encoding, lits, T, outs)
        inputs = h_vars[l]
    return BoundCnf(net.answer, encoding, n_bits, pool.top, sink.n_clauses, sink.n_lits, x_vars,
                    h_vars, [] if count_only else sink.blocks())
