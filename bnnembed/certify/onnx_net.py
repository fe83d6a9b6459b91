"""The DNN as a piecewise-linear network read from its ONNX graph, for verification.

Supported graphs are chains from the one input to the one output through these operators:

- ``Gemm`` (any ``alpha``/``beta``/``transA=0``/``transB``), ``MatMul`` by a constant matrix,
  ``Add``/``Sub``/``Mul``/``Div`` by a constant (scalar or per-feature vector; ``Sub``/``Div``
  with the chain on the left), ``Relu``, ``Flatten``/``Identity``/``Reshape`` to ``(batch, n)``.

That covers the default DNN (:func:`bnnembed.dnn.train_default_dnn`: ``(x - mean) * inv_std``
followed by ``Linear``/``ReLU`` layers) and most exported MLPs. Anything else (convolutions,
sigmoids, several inputs) is refused with :class:`~bnnembed.errors.BnnError` naming the operator.

:class:`PlNet` keeps the operators as read (so the floating-point error of the runtime can be
bounded op by op, :meth:`PlNet.fp_error_bound`) and also their fold into alternating affine and
ReLU layers, :attr:`PlNet.layers` (``y = W x + b``, ReLU between layers, none after the last),
computed in float64 (exact up to 2^-53 relative rounding, accounted for in the error bound).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import BnnError

U32 = 2.0 ** -24  # unit roundoff of float32


def _gamma(k: int, u: float = U32) -> float:
    return k * u / (1.0 - k * u)


@dataclass(frozen=True)
class Op:
    """One operator of the chain: ``affine`` (W (out, in), b), ``diag`` (y = a*x + c), ``relu``.

    ``rounding`` says how the runtime computes it, for the error bound: ``dot`` (a dot product of
    ``W.shape[1]`` terms plus the bias), ``add`` / ``mul`` / ``div`` (one rounded operation).
    """

    kind: str
    W: np.ndarray | None = None
    b: np.ndarray | None = None
    rounding: str = ""


@dataclass
class PlNet:
    """A chain of affine/ReLU operators and its folded layers."""

    n_in: int
    ops: list[Op]
    layers: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.layers:
            self.layers = fold_ops(self.ops, self.n_in)

    @property
    def n_out(self) -> int:
        return int(self.layers[-1][0].shape[0])

    @property
    def n_relu(self) -> int:
        return sum(W.shape[0] for W, _ in self.layers[:-1])

    def forward(self, X: np.ndarray) -> np.ndarray:
        """Outputs in float64 arithmetic (the exact-real model the MILP encodes)."""
        h = np.asarray(X, dtype=np.float64)
        for i, (W, b) in enumerate(self.layers):
            h = h @ W.T + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        return h

    def ibp(self, lo: np.ndarray, hi: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Interval bounds of every layer's pre-activation (output of ``W h + b``) on a box."""
        lo = np.asarray(lo, np.float64)
        hi = np.asarray(hi, np.float64)
        out = []
        for i, (W, b) in enumerate(self.layers):
            Wp, Wn = np.maximum(W, 0), np.minimum(W, 0)
            zl = Wp @ lo + Wn @ hi + b
            zh = Wp @ hi + Wn @ lo + b
            out.append((zl, zh))
            lo, hi = np.maximum(zl, 0), np.maximum(zh, 0)
        return out

    def fp_error_bound(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Per output, a bound on ``|float32 runtime - exact real value|`` for inputs in the box.

        Standard forward error analysis, op by op on interval bounds of the exact values: a dot
        product of ``n`` terms plus a bias in float32, in any summation order, with or without
        fused multiply-add, errs by at most ``gamma_(n+1) * (|W| |x| + |b|)``
        (``gamma_k = k u / (1 - k u)``, ``u = 2^-24``); an elementwise op by ``u`` times its
        result; an input error ``e`` propagates as ``|W| e``. The float32 rounding of the stored
        weights is exact (they are float32 numbers); the float64 fold adds a relative 1e-12.
        Assumes IEEE float32 arithmetic without flush-to-zero of subnormals (their effect is
        below 1e-37 per op and covered by the slack term).
        """
        lo = np.asarray(lo, np.float64)
        hi = np.asarray(hi, np.float64)
        err = np.zeros_like(lo)
        for op in self.ops:
            if op.kind == "relu":
                lo, hi = np.maximum(lo, 0), np.maximum(hi, 0)
                continue
            if op.kind == "diag":
                a, c = op.W, op.b
                cand = np.stack([a * lo + c, a * hi + c])
                nlo, nhi = cand.min(0), cand.max(0)
                mag = np.maximum(np.abs(nlo), np.abs(nhi))
                factor = 2 * U32 if op.rounding == "div" else U32
                err = np.abs(a) * err + factor * mag
            else:
                W, b = op.W, op.b
                Wp, Wn = np.maximum(W, 0), np.minimum(W, 0)
                nlo, nhi = Wp @ lo + Wn @ hi + b, Wp @ hi + Wn @ lo + b
                mag_in = np.maximum(np.abs(lo), np.abs(hi))
                absW = np.abs(W)
                err = absW @ err + _gamma(W.shape[1] + 1) * (absW @ mag_in + np.abs(b))
            lo, hi = nlo, nhi
        mag = np.maximum(np.abs(lo), np.abs(hi))
        return err + 1e-12 * mag + 1e-30


def fold_ops(ops: list[Op], n_in: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Merge consecutive affine/diag operators into ``(W, b)`` layers separated by ReLUs."""
    layers: list[tuple[np.ndarray, np.ndarray]] = []
    W = np.eye(n_in)
    b = np.zeros(n_in)
    pending = True  # an affine map is being accumulated
    for op in ops:
        if op.kind == "relu":
            layers.append((W, b))
            W, b = np.eye(W.shape[0]), np.zeros(W.shape[0])
            continue
        if op.kind == "diag":
            W, b = op.W[:, None] * W, op.W * b + op.b
        else:
            W, b = op.W @ W, op.W @ b + op.b
        pending = True
    if pending:
        layers.append((W, b))
    # a ReLU right after a ReLU leaves an identity layer; drop identity layers between ReLUs
    cleaned = []
    for i, (W, b) in enumerate(layers):
        is_id = W.shape[0] == W.shape[1] and np.array_equal(W, np.eye(W.shape[0])) and not b.any()
        if is_id and 0 < i < len(layers) - 1:
            continue
        cleaned.append((W, b))
    return cleaned


# --------------------------------------------------------------------------------------------
# reading ONNX
# --------------------------------------------------------------------------------------------

_PASS = {"Identity", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Dropout"}


def read_onnx(path: str) -> PlNet:
    """Read an ONNX MLP (see the module docstring for what is supported)."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(path)
    except Exception as exc:  # onnx raises DecodeError and friends
        raise BnnError(f"{path}: cannot read the ONNX model ({str(exc).splitlines()[0]})") from None
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in g.initializer}
    for node in g.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    consts[node.output[0]] = numpy_helper.to_array(a.t).astype(np.float64)
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1 or len(g.output) != 1:
        raise BnnError(f"{path}: verification needs a DNN with one input and one output")
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) < 2 or any(d <= 0 for d in dims[1:]):
        raise BnnError(f"{path}: input shape {dims} is not (batch, features) with known features")
    n_in = int(np.prod(dims[1:]))
    cur = inputs[0].name
    width = n_in
    ops: list[Op] = []

    def attr(node, name, default):
        for a in node.attribute:
            if a.name == name:
                return onnx.helper.get_attribute_value(a)
        return default

    def refuse(node, why):
        raise BnnError(
            f"{path}: operator {node.op_type} ({node.name or node.output[0]}) {why}; verification "
            "supports Gemm/MatMul/Add/Sub/Mul/Div by constants, Relu, Flatten/Identity/Reshape"
        )

    for node in g.node:
        if node.op_type == "Constant":
            continue
        if cur not in node.input:
            # a node not on the chain: only shape helpers computing constants are tolerated
            if node.op_type in ("Shape", "Gather", "Concat", "Unsqueeze", "Cast") and all(
                i in consts or i == "" for i in node.input
            ):
                continue
            refuse(node, "is off the input-to-output chain")
        others = [i for i in node.input if i != cur and i != ""]
        op = node.op_type
        if op in _PASS:
            if op in ("Reshape",):
                shape = consts.get(node.input[1])
                if shape is None or len(shape) != 2 or shape[1] not in (-1, width):
                    refuse(node, "reshapes to something other than (batch, features)")
        elif op == "Relu":
            ops.append(Op("relu"))
        elif op == "Gemm":
            if node.input[0] != cur or attr(node, "transA", 0):
                refuse(node, "has the input as its weight operand")
            Bm = consts.get(node.input[1])
            if Bm is None:
                refuse(node, "has a non-constant weight")
            Bm = Bm.T if attr(node, "transB", 0) else Bm
            W = attr(node, "alpha", 1.0) * Bm.T
            c = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(W.shape[0])
            b = attr(node, "beta", 1.0) * np.broadcast_to(c, (W.shape[0],)).astype(np.float64)
            if W.shape[1] != width:
                refuse(node, f"expects {W.shape[1]} inputs but the chain carries {width}")
            ops.append(Op("affine", W, b, "dot"))
            width = W.shape[0]
        elif op == "MatMul":
            if node.input[0] != cur or others[0] not in consts:
                refuse(node, "is not input @ constant")
            W = consts[others[0]].T
            if W.ndim != 2 or W.shape[1] != width:
                refuse(node, "has a weight of the wrong shape")
            ops.append(Op("affine", W, np.zeros(W.shape[0]), "dot"))
            width = W.shape[0]
        elif op in ("Add", "Sub", "Mul", "Div"):
            if len(others) != 1 or others[0] not in consts:
                refuse(node, "combines two computed tensors")
            k = np.broadcast_to(consts[others[0]].reshape(-1), (width,)).astype(np.float64)
            left = node.input[0] == cur
            if op == "Add":
                ops.append(Op("diag", np.ones(width), k.copy(), "add"))
            elif op == "Sub":
                a = np.ones(width) if left else -np.ones(width)
                ops.append(Op("diag", a, -k if left else k.copy(), "add"))
            elif op == "Mul":
                ops.append(Op("diag", k.copy(), np.zeros(width), "mul"))
            else:
                if not left or np.any(k == 0):
                    refuse(node, "divides by the input or by zero")
                ops.append(Op("diag", 1.0 / k, np.zeros(width), "div"))
        else:
            refuse(node, "is not supported")
        cur = node.output[0]
    if cur != g.output[0].name:
        raise BnnError(f"{path}: the output {g.output[0].name} is not reached by a chain from the input")
    if not ops:
        raise BnnError(f"{path}: the graph computes nothing verification can encode")
    return PlNet(n_in, ops)
