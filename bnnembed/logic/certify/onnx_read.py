"""Reading the DNN's ONNX graph into a :class:`~.plnet.PlNet`, for verification.

Supported graphs go from the one input to the one output through these operators (the shape
after the batch dimension is tracked along the way, e.g. ``(C, H, W)`` or ``(F,)``, and every
tensor is flattened row-major, so flat index = ``c*H*W + h*W + w``):

- affine: ``Gemm`` (``transA=0``), ``MatMul`` by a constant matrix (on the last axis),
  ``Conv`` (1-D/2-D/3-D; ``pads``, ``strides``, ``dilations``, ``group``, ``auto_pad``, optional
  bias), ``BatchNormalization`` (inference), ``AveragePool`` (``count_include_pad``,
  ``ceil_mode``), ``GlobalAveragePool``, ``ReduceMean``/``ReduceSum`` over non-batch axes,
  ``Transpose`` keeping the batch first, ``Add``/``Sub``/``Mul``/``Div`` by a constant
  broadcast over the tensor (scalar, per-feature, per-channel ``(C, 1, 1)``...; ``Div`` with the
  tensor on the left), and ``Add``/``Sub`` of two tensors that are both affine functions of the
  same tensor (parallel linear branches; no ReLU or max between the branch point and the join);
- ``Relu``; ``MaxPool`` (``kernel_shape``, ``strides``, ``pads``, ``dilations``, ``ceil_mode``;
  no indices output), ``GlobalMaxPool`` and ``ReduceMax`` as a max over windows;
- shape only: ``Reshape`` (a constant target, or one computed from ``Shape(x)`` by
  ``Gather``/``Unsqueeze``/``Concat``/``Cast``... shape helpers, e.g. ``x.view(x.size(0), 1, 8, 8)``),
  ``Flatten`` (``axis=1``), ``Squeeze``/``Unsqueeze`` (not the batch axis), ``Identity``,
  ``Dropout``, ``Cast`` to float;
- a final ``Softmax``/``LogSoftmax`` (over the features; the argmax is unchanged) or, for one
  output, a final ``Sigmoid`` (yes iff logit > 0 iff p > 0.5) is stripped and recorded in
  :attr:`~.plnet.PlNet.output_stripped`: the network verified is the one computing the logits.

That covers the default DNN (:func:`bnnembed.learn.dnn.train_default_dnn`: ``(x - mean) * inv_std``
followed by ``Linear``/``ReLU`` layers), exported MLPs and the usual small CNNs
(``torch.onnx.export(..., dynamo=False)``, opsets 13-17). Anything else (tanh, residual
connections around a ReLU, several inputs...) is refused with one
:class:`~bnnembed.errors.BnnError` line naming the operator and its node.

This module walks the graph (constants, shape helpers evaluated on constant inputs, shape
checks against ONNX shape inference) and dispatches each node on the input-to-output chain to
its handler: :mod:`.onnx_ops` (operators that compute) and :mod:`.onnx_shape_ops` (shape-only
operators, final squashing).
"""

from __future__ import annotations

import numpy as np

from ...errors import BnnError
from .onnx_ops import ComputeOps, _Chain
from .onnx_shape_ops import ShapeOps
from .plnet import Op, PlNet

#: what the reader accepts, for error messages
SUPPORTED = (
    "Gemm, MatMul/Add/Sub/Mul/Div by constants, Conv, BatchNormalization, AveragePool, "
    "GlobalAveragePool, MaxPool, GlobalMaxPool, ReduceMean/ReduceSum/ReduceMax, Relu, Add/Sub of two "
    "affine branches of one tensor, Transpose, Reshape/Flatten/Squeeze/Unsqueeze/Identity/Dropout, "
    "and a final Softmax/LogSoftmax/Sigmoid"
)

_META = {"Identity", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Dropout", "Cast"}
_STRIP = {"Softmax", "LogSoftmax", "Sigmoid"}
_BATCH_SENTINEL = 1_000_003  # stands for an unknown batch size when evaluating shape helpers


def read_onnx(path: str) -> PlNet:
    """Read an ONNX MLP or CNN (see the module docstring for what is supported)."""
    import onnx

    try:
        model = onnx.load(path)
    except Exception as exc:  # onnx raises DecodeError and friends
        raise BnnError(f"{path}: cannot read the ONNX model ({str(exc).splitlines()[0]})") from None
    return _Reader(model, path).read()


class _Reader(ShapeOps, ComputeOps):
    """One read of a model: constants, shape helpers and chains by tensor name, and the walk;
    the ``op_<OpType>`` handlers come from the mixins."""

    def __init__(self, model, path: str) -> None:
        self.model = model
        self.path = path
        self.g = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        self.consts: dict[str, np.ndarray] = {}
        self.helpers: dict[str, np.ndarray | None] = {}  # shape helpers, with values when known
        self.chains: dict[str, _Chain] = {}
        self.n_bases = 0
        self._inferred = None
        self.batch = _BATCH_SENTINEL

    # ---------------------------------------------------------------- helpers

    def attr(self, node, name, default):
        import onnx

        for a in node.attribute:
            if a.name == name:
                return onnx.helper.get_attribute_value(a)
        return default

    def refuse(self, node, why):
        raise BnnError(
            f"{self.path}: operator {node.op_type} ({node.name or node.output[0]}) {why}; "
            f"verification supports {SUPPORTED}"
        )

    def inferred(self) -> dict:
        """Shapes from ONNX shape inference with data propagation: name -> dims (int or None)."""
        if self._inferred is None:
            import onnx

            self._inferred = {}
            try:
                inf = onnx.shape_inference.infer_shapes(self.model, data_prop=True)
            except Exception:  # inference is only a help
                return self._inferred
            for v in list(inf.graph.value_info) + list(inf.graph.output):
                t = v.type.tensor_type
                if t.HasField("shape"):
                    self._inferred[v.name] = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        return self._inferred

    def const(self, node, name, what="a constant"):
        if name not in self.consts:
            self.refuse(node, f"needs {what} as input {name!r}")
        return self.consts[name]

    def evaluate(self, node, values):
        """Run a node on constant inputs with the ONNX reference evaluator (None if it cannot)."""
        try:
            from onnx.reference import ReferenceEvaluator

            ev = ReferenceEvaluator(node, opsets={"": self.opset})
            feeds = {n: v for n, v in zip(node.input, values) if n}
            outs = ev.run(None, feeds)
            return [np.asarray(o) for o in outs]
        except Exception:  # anything the evaluator cannot do is simply unknown
            return None

    def new_base(self, x: _Chain, op: Op, shape) -> _Chain:
        self.n_bases += 1
        return _Chain(x.prefix + x.lin + (op,), self.n_bases, (), tuple(shape))

    # ---------------------------------------------------------------- main loop

    def read(self) -> PlNet:
        from onnx import numpy_helper

        g = self.g
        for t in g.initializer:
            self.consts[t.name] = numpy_helper.to_array(t)
        inputs = [i for i in g.input if i.name not in self.consts]
        if len(inputs) != 1 or len(g.output) != 1:
            raise BnnError(f"{self.path}: verification needs a DNN with one input and one output")
        tdims = inputs[0].type.tensor_type.shape.dim
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tdims]
        if len(dims) < 2 or any(d <= 0 for d in dims[1:]):
            raise BnnError(f"{self.path}: input shape {dims} is not (batch, features...) with known features")
        if dims[0] > 0:
            self.batch = dims[0]
        in_shape = tuple(int(d) for d in dims[1:])
        n_in = int(np.prod(in_shape))
        self.chains[inputs[0].name] = _Chain((), 0, (), in_shape)

        out_name = g.output[0].name
        producer = {o: n for n in g.node for o in n.output if o}
        needed, stack = set(), [out_name]
        while stack:
            name = stack.pop()
            n = producer.get(name)
            if n is None or id(n) in needed:
                continue
            needed.add(id(n))
            stack.extend(i for i in n.input if i)
        for node in g.node:
            if id(node) in needed:
                self.node(node)
        if out_name not in self.chains:
            raise BnnError(f"{self.path}: the output {out_name} is not reached by a chain from the input")
        x = self.chains[out_name]
        ops = list(x.prefix + x.lin)
        if not ops:
            raise BnnError(f"{self.path}: the graph computes nothing verification can encode")
        return PlNet(n_in, ops, output_stripped=x.stripped, in_shape=in_shape)

    def node(self, node) -> None:
        import onnx
        from onnx import numpy_helper

        op = node.op_type
        if op == "Constant":
            for a in node.attribute:
                v = onnx.helper.get_attribute_value(a)
                if a.name == "value":
                    self.consts[node.output[0]] = numpy_helper.to_array(v)
                elif a.name in ("value_float", "value_floats"):
                    self.consts[node.output[0]] = np.asarray(v, dtype=np.float32)
                elif a.name in ("value_int", "value_ints"):
                    self.consts[node.output[0]] = np.asarray(v, dtype=np.int64)
                else:
                    self.refuse(node, f"holds a {a.name} constant")
            return
        ins = [i for i in node.input if i]
        chain_ins = [i for i in ins if i in self.chains]
        if not chain_ins:
            if all(i in self.consts for i in ins):
                vals = self.evaluate(node, [self.consts.get(i) for i in node.input])
                if vals is None:
                    self.refuse(node, "could not be evaluated on its constant inputs")
                for name, v in zip(node.output, vals):
                    self.consts[name] = v
                return
            if all(i in self.consts or i in self.helpers for i in ins):
                known = all(i in self.consts or self.helpers[i] is not None for i in ins)
                vals = None
                if known:
                    vals = self.evaluate(node, [self.consts[i] if i in self.consts else self.helpers.get(i)
                                                for i in node.input])
                for k, name in enumerate(node.output):
                    self.helpers[name] = vals[k] if vals is not None else None
                return
            self.refuse(node, "is off the input-to-output chain")
        x = self.chains[chain_ins[0]]
        if op in ("Shape", "Size"):
            if op == "Shape":
                full = np.array((self.batch,) + x.shape, dtype=np.int64)
                start, end = self.attr(node, "start", 0), self.attr(node, "end", None)
                self.helpers[node.output[0]] = full[start:end]
            else:
                self.helpers[node.output[0]] = None
            return
        if x.stripped and op not in _META:
            self.refuse(node, f"follows the final {x.stripped}, which is only supported as the last operator")
        handler = getattr(self, "op_" + op, None)
        if handler is None:
            self.refuse(node, "is not supported")
        try:
            y = handler(node, x)
        except BnnError:
            raise
        except Exception as exc:  # a malformed or unusual node: still one line naming it
            first = str(exc).splitlines()[0] if str(exc) else ""
            self.refuse(node, f"could not be read ({type(exc).__name__}: {first})")
        if op not in _STRIP:
            self.check_shape(node, y)
        self.chains[node.output[0]] = y

    def check_shape(self, node, y: _Chain) -> None:
        dims = self.inferred().get(node.output[0])
        if dims and len(dims) >= 1 and all(d for d in dims[1:]):
            if tuple(dims[1:]) != tuple(y.shape):
                self.refuse(node, f"gives shape {tuple(y.shape)} here but {tuple(dims[1:])} by ONNX "
                            "shape inference")
