"""Whole-domain repair by retraining: counterexamples become hard negatives of a rebuilt artifact.

Raising a bound's threshold (the tighten repair of :mod:`.cell_search`) only removes answers; when
the counterexamples sit at the bound's highest scores it removes all of them. The other repair
is to teach the bounds where they are wrong::

    A_0 = the artifact;  H = {}
    for r = 1 .. rounds:
        D_r = whole-domain result of A_(r-1) (cells engine, falsification samples drawn afresh:
              A_(r-1) was trained on the previous ones); H += its replayed disagreements
        stop if both bounds are certified at a tau that keeps coverage
        A_r = build on the same data, split, DNN and settings, with H (each point `weight` times)
              as extra distillation inputs; calibrate as usual
    report, per round: both bounds' tau before / certified / reached, coverage before / after

Each rebuilt artifact is a normal artifact (calibrated, with its own metrics.json), written to
``OUT/round_r``; nothing is overwritten.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

import numpy as np

from ...artifact import load_artifact
from ...learn.build import build_artifact
from ...learn.config import config_of
from ...learn.data import Dataset
from .cell_search import CellSearchConfig
from .domain import DomainConfig
from .pipeline import run_domain


def retrain_repair(art, ds: Dataset, lo: np.ndarray, hi: np.ndarray, cfg: DomainConfig, rounds: int, out: str,
                   engine: str = "cells", scfg=None, weight: int = 5, max_points: int = 20_000,
                   log=None, first: tuple[dict, list] | None = None) -> dict:
    """Alternate whole-domain certification and rebuilding with the counterexamples (module doc).
    ``first``: the result of :func:`run_domain` on ``art`` and what it collected, if already run."""
    t0 = time.perf_counter()
    build_cfg = config_of(art.metrics)
    dnn_file = art.file(art.manifest["dnn"]["file"])
    base = scfg or CellSearchConfig()
    hard: list[np.ndarray] = []
    history = []
    current = art
    for r in range(rounds + 1):
        if r == 0 and first is not None:
            dom, found = first
        else:
            found = []
            # fresh falsification samples each round: the rebuilt bounds were trained on the last ones
            dom = run_domain(current, ds, lo, hi, cfg, engine, replace(base, seed=base.seed + r), collect=found)
        rec = {"round": r, "artifact": current.path, "coverage": current.metrics.get("coverage"),
               "bounds": {k: {kk: v.get(kk) for kk in ("certified", "tau_before", "tau_certified", "coverage_before",
                                                          "coverage_after", "coverage_at_tau_reached")}
                          for k, v in dom.items()},
               "counterexamples": int(sum(len(f) for f in found))}
        history.append(rec)
        if log is not None:
            log(rec)
        done = all(v["certified"] and (v["coverage_after"] or 0) > 0 for v in dom.values())
        if done or r == rounds:
            break
        hard.extend(found)
        pts = np.concatenate(hard) if hard else np.zeros((0, ds.X.shape[1]), np.float32)
        if len(pts) > max_points:  # keep an even sample of what was found so far
            pts = pts[np.random.default_rng(r).choice(len(pts), max_points, replace=False)]
        path = os.path.join(out, f"round_{r + 1}")
        build_artifact(ds, path, build_cfg, dnn_path=dnn_file, progress=False,
                       extra_inputs=np.repeat(pts, weight, axis=0))
        current = load_artifact(path)
    return {"rounds": history, "seconds": round(time.perf_counter() - t0, 1), "final_artifact": current.path,
            "weight": weight}
