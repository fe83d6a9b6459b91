"""Exact CNF of a bound: every neuron a reified cardinality constraint over its input bits.

A neuron of an :class:`~bnnembed.model.intmodel.IntLayer` fires iff its agreement count
``c = sum_i XNOR(a_i, w_i)`` reaches its threshold ``T``. With a constant weight bit, the XNOR is
just a literal: ``a_i`` when ``w_i = 1``, ``NOT a_i`` when ``w_i = 0``; so a neuron is the
*reified* cardinality constraint ``h <=> (l_1 + ... + l_n >= T)`` over those literals, in both
directions (the output feeds the next layer with both polarities). The bound's decision literal
is the output of its last neuron. Thermometer bits of a feature carry their order constraints
``x_{k+1} => x_k`` so that only codes a real input can produce are models.

Modules, by job:

- :mod:`.encodings`: the cardinality encodings of a layer's neurons (:class:`CardEncoding`:
  ``adder``, the default, ``totalizer``, ``seqcounter``, ``sortnet``; compared in docs/cnf.md);
- :mod:`.bound`: the CNF of a whole bound (:func:`encode_bound`, :class:`BoundCnf`), its
  variables (inputs ``1..n_bits``, then the neuron outputs, then auxiliary variables) and the
  thermometer order constraints;
- :mod:`.clauses`: clause storage (:class:`ClauseSink`, 0-padded numpy blocks);
- :mod:`.dimacs`: DIMACS read/write (:func:`write_dimacs`, :func:`read_dimacs`,
  :func:`split_clauses`);
- :mod:`.artifact_cnf`: an artifact's ``cnf_upper.cnf`` / ``cnf_lower.cnf`` and ``cnf.json``
  variable map (:func:`write_cnf`, :func:`read_cnf_meta`).

Every public name is importable from this package. The exhaustive CNF-vs-numpy checker used by the
tests and benchmarks lives with the tests (``tests/_cnf_checker.py``).
"""

from .artifact_cnf import (CNF_FORMAT, CNF_FORMAT_VERSION, CNF_JSON, cnf_file_name, cnf_path, read_cnf_meta,
                           variable_map, write_cnf)
from .bound import BoundCnf, encode_bound, order_clauses
from .clauses import ClauseSink, length_groups, rows_by_length, shift_vars
from .dimacs import clause_spans, read_dimacs, split_clauses, write_dimacs
from .encodings import DEFAULT_ENCODING, CardEncoding, encode_layer

__all__ = [
    "CNF_FORMAT", "CNF_FORMAT_VERSION", "CNF_JSON", "BoundCnf", "CardEncoding", "ClauseSink",
    "DEFAULT_ENCODING", "clause_spans", "cnf_file_name", "encode_bound", "encode_layer",
    "cnf_path", "length_groups", "order_clauses", "read_cnf_meta", "read_dimacs", "rows_by_length",
    "shift_vars", "split_clauses", "variable_map", "write_cnf", "write_dimacs",
]
