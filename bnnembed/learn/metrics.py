"""Metrics of a bound pair, always measured against the DNN (never the ground-truth label).

- ``coverage``: share of inputs where a bound answers (``coverage_yes`` / ``coverage_no`` per side);
- ``disagreements``: decided inputs whose answer differs from the DNN;
  ``disagreement_rate`` = disagreements / decided;
- ``disagreement_bound``: one-sided Clopper–Pearson upper bound at confidence ``1 - delta`` on the
  disagreement rate of decided inputs (per side under ``sides``);
- ``joint_rate`` / ``joint_bound``: P(decided and disagrees) and its bound.
"""

from __future__ import annotations

import numpy as np

from .calibrate import clopper_pearson_upper
from ..model.intmodel import Decision


def decision_metrics(dec: np.ndarray, dnn_yes: np.ndarray, delta: float) -> dict:
    """The metric block for three-way decisions ``dec`` against the DNN's ``dnn_yes``."""
    dec = np.asarray(dec)
    dnn_yes = np.asarray(dnn_yes, dtype=bool)
    n = len(dec)
    yes = dec == int(Decision.YES)
    no = dec == int(Decision.NO)
    decided = yes | no
    wrong_yes = yes & ~dnn_yes
    wrong_no = no & dnn_yes
    k = int(wrong_yes.sum() + wrong_no.sum())
    d = int(decided.sum())

    def side(mask, wrong):
        ds, ks = int(mask.sum()), int(wrong.sum())
        return {
            "decided": ds,
            "disagreements": ks,
            "disagreement_rate": ks / ds if ds else 0.0,
            "disagreement_bound": clopper_pearson_upper(ks, ds, delta),
        }

    return {
        "rows": n,
        "coverage": d / n if n else 0.0,
        "coverage_yes": int(yes.sum()) / n if n else 0.0,
        "coverage_no": int(no.sum()) / n if n else 0.0,
        "decided": d,
        "disagreements": k,
        "disagreement_rate": k / d if d else 0.0,
        "disagreement_bound": clopper_pearson_upper(k, d, delta),
        "joint_rate": k / n if n else 0.0,
        "joint_bound": clopper_pearson_upper(k, n, delta),
        "sides": {"yes": side(yes, wrong_yes), "no": side(no, wrong_no)},
    }
