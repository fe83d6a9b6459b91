"""Translating the shape-only ONNX operators and the final squashing of the output.

Handlers (:class:`ShapeOps`, mixed into the reader of :mod:`.onnx_read`) that only change the
tracked shape after the batch dimension (``Identity``, ``Dropout``, ``Cast`` to float,
``Flatten`` at axis 1, ``Squeeze``/``Unsqueeze`` off the batch axis, ``Reshape`` to a constant
target or one computed by shape helpers), ``Transpose`` keeping the batch first (an exact
permutation op), and a final ``Softmax``/``LogSoftmax``/``Sigmoid``, which is stripped and
recorded on the chain (the network verified computes the logits before it).
"""

from __future__ import annotations

import numpy as np

from .onnx_ops import _Chain
from .plnet import Op


class ShapeOps:
    """Handlers of the shape-only operators and the final squashing. Relies on the reader's
    ``attr``, ``refuse``, ``const``, ``inferred``, ``consts``, ``helpers``, ``batch``, ``opset``
    and ``g`` (see :class:`~.onnx_read._Reader`)."""

    # ---------------------------------------------------------------- shape-only operators

    def op_Identity(self, node, x):
        return x

    def op_Dropout(self, node, x):
        if len(node.output) > 1 and node.output[1] and any(node.output[1] in n.input for n in self.g.node):
            self.refuse(node, "has its mask output used")
        return x

    def op_Cast(self, node, x):
        if self.attr(node, "to", 1) != 1:
            self.refuse(node, "casts the input to a type other than float")
        return x

    def op_Flatten(self, node, x):
        axis = self.attr(node, "axis", 1)
        if axis < 0:
            axis += len(x.shape) + 1
        if axis != 1:
            self.refuse(node, "flattens the batch dimension with features (axis must be 1)")
        return x.then(None, (x.size,))

    def _axes(self, node, x, out_rank):
        axes = self.attr(node, "axes", None)
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self.const(node, node.input[1], "constant axes").reshape(-1).tolist()
        if axes is None:
            return None
        axes = sorted(int(a) + out_rank if int(a) < 0 else int(a) for a in axes)
        if 0 in axes:
            self.refuse(node, "acts on the batch axis")
        return axes

    def op_Squeeze(self, node, x):
        axes = self._axes(node, x, len(x.shape) + 1)
        if axes is None:
            return x.then(None, tuple(d for d in x.shape if d != 1))
        if any(x.shape[a - 1] != 1 for a in axes):
            self.refuse(node, "squeezes an axis of size other than 1")
        return x.then(None, tuple(d for i, d in enumerate(x.shape) if i + 1 not in axes))

    def op_Unsqueeze(self, node, x):
        n_ax = len(self.attr(node, "axes", None) or []) or (
            self.const(node, node.input[1], "constant axes").size if len(node.input) > 1 else 0)
        axes = self._axes(node, x, len(x.shape) + 1 + n_ax)
        if not axes:
            self.refuse(node, "has no axes")
        full = [None] + list(x.shape)
        for a in axes:
            full.insert(a, 1)
        return x.then(None, tuple(full[1:]))

    def op_Reshape(self, node, x):
        size = x.size
        shp = node.input[1]
        target = None
        if shp in self.consts:
            target = [int(v) for v in np.asarray(self.consts[shp]).reshape(-1)]
            allowzero = self.attr(node, "allowzero", 0)
            if not allowzero:
                full = (self.batch,) + tuple(x.shape)
                target = [full[i] if v == 0 and i < len(full) else v for i, v in enumerate(target)]
        else:
            # a computed target: ONNX shape inference (with data propagation) when it knows every
            # dimension after the batch (their product then pins the first one as the batch),
            # else the shape helpers evaluated with a stand-in batch size
            dims = self.inferred().get(node.output[0])
            if dims and len(dims) >= 2 and all(dims[1:]) and int(np.prod(dims[1:])) == size:
                target = [self.batch] + list(dims[1:])
            elif self.helpers.get(shp) is not None:
                target = [int(v) for v in np.asarray(self.helpers[shp]).reshape(-1)]
                if not self.attr(node, "allowzero", 0):
                    full = (self.batch,) + tuple(x.shape)
                    target = [full[i] if v == 0 and i < len(full) else v for i, v in enumerate(target)]
            else:
                self.refuse(node, "has a target shape that could not be worked out")
        if len(target) < 2:
            self.refuse(node, f"reshapes to {target}, without a separate batch dimension")
        first, rest = target[0], list(target[1:])
        if any(v < -1 or v == 0 for v in rest) or rest.count(-1) > 1:
            self.refuse(node, f"reshapes to {target}")
        if first == -1:
            if -1 in rest or int(np.prod(rest)) != size:
                self.refuse(node, f"reshapes to {target}, mixing the batch dimension with features")
        elif first == self.batch:
            if -1 in rest:
                known = int(np.prod([v for v in rest if v != -1]))
                if known <= 0 or size % known:
                    self.refuse(node, f"reshapes {size} features to {target}")
                rest[rest.index(-1)] = size // known
            if int(np.prod(rest)) != size:
                self.refuse(node, f"reshapes {size} features to {target}")
        else:
            self.refuse(node, f"reshapes to {target}, changing the batch dimension")
        return x.then(None, tuple(rest))

    def op_Transpose(self, node, x):
        r = len(x.shape) + 1
        perm = list(self.attr(node, "perm", list(range(r))[::-1]))
        if perm[0] != 0:
            self.refuse(node, "moves the batch axis")
        p = [a - 1 for a in perm[1:]]
        idx = np.arange(x.size).reshape(x.shape).transpose(p).reshape(-1)
        P = np.zeros((x.size, x.size))
        P[np.arange(x.size), idx] = 1.0
        return x.then(Op("affine", P, np.zeros(x.size), "exact"), tuple(x.shape[a] for a in p))

    # ---------------------------------------------------------------- final squashing

    def _strip(self, node, x, what):
        return _Chain(x.prefix, x.base, x.lin, x.shape, what)

    def op_Sigmoid(self, node, x):
        if x.size != 1:
            self.refuse(node, f"is over {x.size} outputs (a final Sigmoid is supported for one output)")
        return self._strip(node, x, "Sigmoid")

    def op_Softmax(self, node, x):
        r = len(x.shape) + 1
        axis = int(self.attr(node, "axis", -1 if self.opset >= 13 else 1))
        axis = axis + r if axis < 0 else axis
        if axis == 0:
            self.refuse(node, "is over the batch axis")
        if self.opset >= 13:
            others = int(np.prod([d for i, d in enumerate(x.shape) if i + 1 != axis]))
            if others != 1:
                self.refuse(node, f"is over one axis of the shape {x.shape}, not over all features")
        elif axis != 1:
            self.refuse(node, f"is over axes {axis}.. of the shape {x.shape}, not over all features")
        return self._strip(node, x, node.op_type)

    op_LogSoftmax = op_Softmax
