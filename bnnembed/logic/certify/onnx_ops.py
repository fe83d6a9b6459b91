"""Translating the ONNX operators that compute into :class:`~.plnet.Op` operators.

The reader (:mod:`.onnx_read`) follows the tensors computed from the graph input as
:class:`_Chain` values and calls one ``op_<OpType>(node, x)`` handler per node; the handlers here
(:class:`ComputeOps`, mixed into the reader) cover the operators that change values:

- ``Relu``, and ``MaxPool``/``GlobalMaxPool``/``ReduceMax`` as a ``max`` over windows (each new
  nonlinearity starts a new *base* of the chain);
- the affine ones: ``Conv`` unrolled into a dense matrix, ``AveragePool``/``GlobalAveragePool``/
  ``ReduceMean``/``ReduceSum`` as averaging rows, ``BatchNormalization`` (inference) as a
  per-element scale and shift, ``Gemm``, ``MatMul`` by a constant, ``Add``/``Sub``/``Mul``/``Div``
  by a broadcast constant, and ``Add``/``Sub`` of two affine branches of one base (a ``sum`` op).

Shape-only operators and the final squashing are in :mod:`.onnx_shape_ops`; the geometry of
windows and convolutions in :mod:`.onnx_geometry`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .onnx_geometry import _conv_matrix, _pads, _pool_windows, _reduce_windows
from .plnet import Op


@dataclass(frozen=True)
class _Chain:
    """A tensor computed from the input: ``prefix`` ops up to the last ReLU/max (its ``base``),
    then the linear ops ``lin``; ``shape`` after the batch dimension."""

    prefix: tuple
    base: int
    lin: tuple
    shape: tuple
    stripped: str = ""

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def then(self, op: Op | None, shape=None) -> "_Chain":
        lin = self.lin if op is None else self.lin + (op,)
        return _Chain(self.prefix, self.base, lin, tuple(self.shape if shape is None else shape), self.stripped)


def chain_name(node, chains) -> str | None:
    """The first input of ``node`` that is a chain tensor."""
    return next((i for i in node.input if i in chains), None)


class ComputeOps:
    """Handlers of the value-changing operators. Relies on the reader's ``attr``, ``refuse``,
    ``const``, ``new_base``, ``consts`` and ``chains`` (see :class:`~.onnx_read._Reader`)."""

    # ---------------------------------------------------------------- nonlinear operators

    def op_Relu(self, node, x):
        return self.new_base(x, Op("relu"), x.shape)

    def _max(self, node, x, windows, shape):
        if any(not w for w in windows):
            self.refuse(node, "has a window made only of padding")
        return self.new_base(x, Op("max", windows=tuple(tuple(w) for w in windows)), shape)

    def op_MaxPool(self, node, x):
        if len(node.output) > 1 and node.output[1]:
            self.refuse(node, "has its indices output used")
        k, strides, pb, pe, dil = self._pool_geometry(node, x)
        ceil = self.attr(node, "ceil_mode", 0)
        wins, _, shape = _pool_windows(x.shape, k, strides, pb, pe, dil, ceil)
        if wins is None:
            self.refuse(node, f"gives an empty output on shape {x.shape}")
        return self._max(node, x, wins, shape)

    def op_GlobalMaxPool(self, node, x):
        if len(x.shape) < 2:
            self.refuse(node, "needs a (C, spatial...) tensor")
        wins, shape = _reduce_windows(x.shape, list(range(1, len(x.shape))), True)
        return self._max(node, x, wins, shape)

    def _reduce_axes(self, node, x):
        axes = self.attr(node, "axes", None)
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self.const(node, node.input[1], "constant axes").reshape(-1).tolist()
        if not axes:
            if self.attr(node, "noop_with_empty_axes", 0):
                return [], bool(self.attr(node, "keepdims", 1))
            self.refuse(node, "reduces over the batch axis")
        r = len(x.shape) + 1
        axes = sorted(int(a) + r if int(a) < 0 else int(a) for a in axes)
        if 0 in axes:
            self.refuse(node, "reduces over the batch axis")
        return [a - 1 for a in axes], bool(self.attr(node, "keepdims", 1))

    def op_ReduceMax(self, node, x):
        axes, keep = self._reduce_axes(node, x)
        wins, shape = _reduce_windows(x.shape, axes, keep)
        return self._max(node, x, wins, shape)

    # ---------------------------------------------------------------- affine operators

    def _averaging(self, x, windows, counts, shape, scale_sum=False):
        W = np.zeros((len(windows), x.size))
        for j, (w, c) in enumerate(zip(windows, counts)):
            W[j, list(w)] = 1.0 if scale_sum else 1.0 / c
        return x.then(Op("affine", W, np.zeros(len(windows)), "dot"), shape)

    def op_ReduceMean(self, node, x):
        axes, keep = self._reduce_axes(node, x)
        wins, shape = _reduce_windows(x.shape, axes, keep)
        return self._averaging(x, wins, [len(w) for w in wins], shape)

    def op_ReduceSum(self, node, x):
        axes, keep = self._reduce_axes(node, x)
        wins, shape = _reduce_windows(x.shape, axes, keep)
        return self._averaging(x, wins, [1] * len(wins), shape, scale_sum=True)

    def op_GlobalAveragePool(self, node, x):
        if len(x.shape) < 2:
            self.refuse(node, "needs a (C, spatial...) tensor")
        wins, shape = _reduce_windows(x.shape, list(range(1, len(x.shape))), True)
        return self._averaging(x, wins, [len(w) for w in wins], shape)

    def _pool_geometry(self, node, x):
        if len(x.shape) < 2:
            self.refuse(node, f"needs a (C, spatial...) tensor, the chain carries shape {x.shape}")
        nd = len(x.shape) - 1
        k = list(self.attr(node, "kernel_shape", []))
        if len(k) != nd:
            self.refuse(node, f"has kernel_shape {k} for {nd} spatial dimensions")
        strides = list(self.attr(node, "strides", None) or [1] * nd)
        dil = list(self.attr(node, "dilations", None) or [1] * nd)
        k_eff = [(k[i] - 1) * dil[i] + 1 for i in range(nd)]
        auto = self.attr(node, "auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        pb, pe = _pads(auto, x.shape[1:], k_eff, strides, self.attr(node, "pads", None))
        return k, strides, pb, pe, dil

    def op_AveragePool(self, node, x):
        k, strides, pb, pe, dil = self._pool_geometry(node, x)
        ceil = self.attr(node, "ceil_mode", 0)
        wins, counts, shape = _pool_windows(x.shape, k, strides, pb, pe, dil, ceil)
        if wins is None:
            self.refuse(node, f"gives an empty output on shape {x.shape}")
        if not self.attr(node, "count_include_pad", 0):
            counts = [len(w) for w in wins]
        if any(not w for w in wins):
            self.refuse(node, "has a window made only of padding")
        return self._averaging(x, wins, counts, shape)

    def op_Conv(self, node, x):
        if len(x.shape) < 2:
            self.refuse(node, f"needs a (C, spatial...) tensor, the chain carries shape {x.shape}")
        if node.input[0] != chain_name(node, self.chains):
            self.refuse(node, "has a computed weight")
        w = self.const(node, node.input[1], "a constant weight").astype(np.float64)
        nd = len(x.shape) - 1
        group = int(self.attr(node, "group", 1))
        if w.ndim != nd + 2 or w.shape[1] * group != x.shape[0] or w.shape[0] % group:
            self.refuse(node, f"has a weight of shape {w.shape} for an input of shape {x.shape} "
                        f"and group {group}")
        strides = list(self.attr(node, "strides", None) or [1] * nd)
        dil = list(self.attr(node, "dilations", None) or [1] * nd)
        k_eff = [(w.shape[2 + i] - 1) * dil[i] + 1 for i in range(nd)]
        auto = self.attr(node, "auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        pb, pe = _pads(auto, x.shape[1:], k_eff, strides, self.attr(node, "pads", None))
        Wd, shape = _conv_matrix(x.shape, w, strides, pb, pe, dil, group)
        if Wd is None:
            self.refuse(node, f"gives an empty output on shape {x.shape}")
        P = int(np.prod(shape[1:]))
        if len(node.input) > 2 and node.input[2]:
            bias = self.const(node, node.input[2], "a constant bias").astype(np.float64).reshape(-1)
            b = np.repeat(bias, P)
        else:
            b = np.zeros(Wd.shape[0])
        return x.then(Op("affine", Wd, b, "dot"), shape)

    def op_BatchNormalization(self, node, x):
        if self.attr(node, "training_mode", 0):
            self.refuse(node, "is in training mode")
        scale, B, mean, var = (self.const(node, n, "constant statistics").astype(np.float64).reshape(-1)
                               for n in node.input[1:5])
        eps = float(self.attr(node, "epsilon", 1e-5))
        C = x.shape[0]
        if not all(len(v) == C for v in (scale, B, mean, var)):
            self.refuse(node, f"has statistics of size {len(scale)} for {C} channels")
        a = scale / np.sqrt(var + eps)
        c = B - mean * a
        P = int(np.prod(x.shape[1:]))
        mag = np.repeat(np.abs(a * mean) + np.abs(B), P)
        return x.then(Op("diag", np.repeat(a, P), np.repeat(c, P), "bn", mag=mag))

    def op_Gemm(self, node, x):
        if node.input[0] not in self.chains or self.attr(node, "transA", 0):
            self.refuse(node, "has the input as its weight operand")
        if len(x.shape) != 1:
            self.refuse(node, f"needs a (batch, features) input, the chain carries shape {x.shape}")
        Bm = self.const(node, node.input[1], "a constant weight").astype(np.float64)
        Bm = Bm.T if self.attr(node, "transB", 0) else Bm
        W = self.attr(node, "alpha", 1.0) * Bm.T
        if len(node.input) > 2 and node.input[2]:
            c = self.const(node, node.input[2], "a constant bias").astype(np.float64)
        else:
            c = np.zeros(W.shape[0])
        try:
            b = self.attr(node, "beta", 1.0) * np.broadcast_to(c.reshape(-1), (W.shape[0],)).astype(np.float64)
        except ValueError:
            self.refuse(node, f"has a bias of shape {c.shape}")
        if W.shape[1] != x.size:
            self.refuse(node, f"expects {W.shape[1]} inputs but the chain carries {x.size}")
        return x.then(Op("affine", W, b, "dot"), (W.shape[0],))

    def op_MatMul(self, node, x):
        if node.input[0] not in self.chains or node.input[1] not in self.consts:
            self.refuse(node, "is not input @ constant")
        Wc = self.consts[node.input[1]].astype(np.float64)
        K = x.shape[-1]
        if Wc.ndim == 1:
            Wc, drop = Wc[:, None], True
        else:
            drop = False
        if Wc.ndim != 2 or Wc.shape[0] != K:
            self.refuse(node, f"has a weight of shape {Wc.shape} for an input of shape {x.shape}")
        m = x.size // K
        W = Wc.T if m == 1 else np.kron(np.eye(m), Wc.T)
        shape = tuple(x.shape[:-1]) + (() if drop else (Wc.shape[1],))
        return x.then(Op("affine", W, np.zeros(W.shape[0]), "dot"), shape)

    def _const_flat(self, node, k, x):
        k = np.asarray(k, dtype=np.float64)
        full = (1,) + tuple(x.shape)
        try:
            if np.broadcast_shapes(k.shape, full) != full:
                raise ValueError
        except ValueError:
            self.refuse(node, f"broadcasts a constant of shape {k.shape} to more than the tensor's "
                        f"shape {tuple(x.shape)}")
        return np.broadcast_to(k, full).reshape(-1).astype(np.float64)

    def _binary(self, node, x, op):
        a, b = node.input[0], node.input[1]
        if a in self.chains and b in self.chains:
            if op in ("Mul", "Div"):
                self.refuse(node, "multiplies or divides two computed tensors")
            return self._sum(node, self.chains[a], self.chains[b], op == "Sub")
        other = b if a in self.chains else a
        if other not in self.consts:
            self.refuse(node, "combines the chain with a tensor that is not a constant")
        k = self._const_flat(node, self.consts[other], x)
        left = a in self.chains
        n = x.size
        if op == "Add":
            return x.then(Op("diag", np.ones(n), k.copy(), "add"))
        if op == "Sub":
            return x.then(Op("diag", np.ones(n) if left else -np.ones(n), -k if left else k.copy(), "add"))
        if op == "Mul":
            return x.then(Op("diag", k.copy(), np.zeros(n), "mul"))
        if not left or np.any(k == 0):
            self.refuse(node, "divides by the input or by zero")
        return x.then(Op("diag", 1.0 / k, np.zeros(n), "div"))

    def op_Add(self, node, x):
        return self._binary(node, x, "Add")

    def op_Sub(self, node, x):
        return self._binary(node, x, "Sub")

    def op_Mul(self, node, x):
        return self._binary(node, x, "Mul")

    def op_Div(self, node, x):
        return self._binary(node, x, "Div")

    def _sum(self, node, x0: _Chain, x1: _Chain, sub: bool) -> _Chain:
        if x0.shape != x1.shape:
            self.refuse(node, f"adds tensors of shapes {x0.shape} and {x1.shape}")
        if x0.base != x1.base:
            self.refuse(node, "adds two branches of which one passes through a ReLU or max the other "
                        "does not (a residual connection around a nonlinearity); only branches that are "
                        "both affine in the same tensor can be added")
        i = 0
        while i < min(len(x0.lin), len(x1.lin)) and x0.lin[i] is x1.lin[i]:
            i += 1
        op = Op("sum", branches=(tuple(x0.lin[i:]), tuple(x1.lin[i:])), rounding="sub" if sub else "add")
        return _Chain(x0.prefix, x0.base, x0.lin[:i] + (op,), x0.shape)
