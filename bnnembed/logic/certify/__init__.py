"""Formal certificates that the bounds and their explanations agree with the DNN.

- :mod:`.onnx_read` reads the DNN's ONNX graph (operators in :mod:`.onnx_ops`,
  :mod:`.onnx_shape_ops`, :mod:`.onnx_geometry`) as a piecewise-linear network, :mod:`.plnet`
  (folded into layers by :mod:`.plfold`);
- :mod:`.dnn_milp` decides "the DNN gives decision d on every input of a box" (IBP, attack, MILP),
  with :mod:`.claims` (the claim as score differences), :mod:`.attack` (attack and float32
  replay) and :mod:`.milp_encode` (ReLU encoding) on the MILP builder of :mod:`._milp`;
- :mod:`.bound_milp` encodes a bound (thermometer bits and binary layers) as MILP rows;
- :mod:`.domain` proves a bound sound on a whole input domain, with a repair loop;
- :mod:`.explanations` certifies the bounds' abductive explanations against the DNN;
- :mod:`.report` stores the certified share in the workspace (``certification.json``).

See docs/certification.md.
"""

from .dnn_milp import BoxResult, Status, VerifyConfig, verify_box
from .onnx_read import read_onnx
from .plnet import PlNet

__all__ = ["BoxResult", "PlNet", "Status", "VerifyConfig", "read_onnx", "verify_box"]
