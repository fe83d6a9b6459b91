"""Using an artifact on new rows: the cascade's decisions and their evaluation against the DNN.

The cascade: the bounds answer what they can; every unknown is decided by the DNN (on the device
this is the deferral to the host). ``predict_table`` gives, per row, the bound pair's answer
(yes/no/unknown), the final answer (yes/no) and its source (bnn or dnn). A row with a NaN or
infinite feature is ``invalid`` (bound, final) with source ``none``: neither the bounds nor the DNN
answer it, as on the device.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np

from .artifact import Artifact
from .learn.data import Dataset, check_columns
from .model.intmodel import Decision
from .learn.metrics import decision_metrics


class Engine:
    """Where the bounds run: ``numpy`` (the reference) or ``qemu`` (the generated firmware)."""

    NUMPY = "numpy"
    QEMU = "qemu"
    ALL = (NUMPY, QEMU)


@dataclass(frozen=True)
class Prediction:
    bound: np.ndarray  # Decision codes from the bounds (INVALID: a non-finite feature)
    final: np.ndarray  # bool: final yes (False for an INVALID row, which has no final yes/no)
    source_dnn: np.ndarray  # bool: decided by the DNN

    @property
    def invalid(self) -> np.ndarray:
        """bool: rows with a non-finite feature, answered by nobody."""
        return self.bound == int(Decision.INVALID)


def bound_decisions(art: Artifact, X: np.ndarray, engine: str = Engine.NUMPY, machine: str | None = None) -> np.ndarray:
    """Decision codes of the bound pair for raw rows, computed by the chosen engine."""
    if engine == Engine.NUMPY:
        return art.decide(X)
    from .device.qemu import run_on_qemu  # the firmware path: same generated C, run under QEMU

    return np.asarray(run_on_qemu(art, machine, X).decisions)


def predict(art: Artifact, ds: Dataset, engine: str = Engine.NUMPY, machine: str | None = None) -> Prediction:
    check_columns(ds, art.feature_names)
    bound = bound_decisions(art, ds.X, engine, machine)
    unknown = bound == int(Decision.UNKNOWN)
    final = bound == int(Decision.YES)
    if unknown.any():
        final = final.copy()
        final[unknown] = art.load_dnn().says_yes(ds.X[unknown])
    return Prediction(bound, final, unknown)


def write_predictions_csv(pred: Prediction, path: str) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "bound", "final", "source"])
        for i, (b, f, s) in enumerate(zip(pred.bound, pred.final, pred.source_dnn)):
            if b == Decision.INVALID:
                w.writerow([i, Decision.INVALID.label, Decision.INVALID.label, "none"])
            else:
                w.writerow([i, Decision(int(b)).label, "yes" if f else "no", "dnn" if s else "bnn"])


def evaluate(art: Artifact, ds: Dataset) -> dict:
    """Metrics of the artifact's bounds on every row of ``ds`` (against the artifact's DNN)."""
    check_columns(ds, art.feature_names)
    dnn = art.load_dnn()
    dnn_yes = dnn.says_yes(ds.X)
    dec = art.decide(ds.X)
    out = decision_metrics(dec, dnn_yes, art.metrics.get("delta", 0.05))
    out["alpha"] = art.metrics.get("alpha")
    out["delta"] = art.metrics.get("delta", 0.05)
    if ds.y is not None and len(ds.positive):
        out["dnn_accuracy"] = float(np.mean(dnn_yes == ds.y_yes()))
    final = np.where(dec == int(Decision.UNKNOWN), dnn_yes, dec == int(Decision.YES))
    out["cascade_agreement"] = float(np.mean(final == dnn_yes))
    out["note"] = ("measured on every row given; rows the artifact was trained or calibrated on "
                   "make these figures optimistic")
    return out
