"""The DNN's ONNX graph as a piecewise-linear network (kept as the historical entry point).

The work is split by job: :mod:`.onnx_read` walks the graph (:func:`read_onnx`; what is
supported is listed there), :mod:`.onnx_ops` / :mod:`.onnx_shape_ops` / :mod:`.onnx_geometry`
translate the operators, :mod:`.plnet` holds the network value (:class:`Op`, :class:`PlNet`,
its IBP and float32 error bound) and :mod:`.plfold` its fold into affine/ReLU layers
(:func:`fold_ops`). This module re-exports their public names.
"""

from .onnx_ops import chain_name
from .onnx_read import SUPPORTED, read_onnx
from .plfold import fold_ops
from .plnet import SIGMOID_SLACK, U32, Op, PlNet

__all__ = ["SIGMOID_SLACK", "SUPPORTED", "U32", "Op", "PlNet", "chain_name", "fold_ops", "read_onnx"]
