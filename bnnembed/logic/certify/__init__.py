"""Formal certificates that the bounds and their explanations agree with the DNN.

- :mod:`.onnx_net` reads the DNN's ONNX graph as a piecewise-linear network;
- :mod:`.dnn_milp` decides "the DNN gives decision d on every input of a box" (IBP, attack, MILP);
- :mod:`.bound_milp` encodes a bound (thermometer bits and binary layers) as MILP rows;
- :mod:`.domain` proves a bound sound on a whole input domain, with a repair loop;
- :mod:`.explanations` certifies the bounds' abductive explanations against the DNN;
- :mod:`.report` stores the certified share in ``metrics.json``.

See docs/certification.md.
"""

from .dnn_milp import BoxResult, Status, VerifyConfig, verify_box
from .onnx_net import PlNet, read_onnx

__all__ = ["BoxResult", "PlNet", "Status", "VerifyConfig", "read_onnx", "verify_box"]
