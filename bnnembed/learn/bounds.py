"""The bounds stage of the build: train the design's networks, fold them to integer bounds, calibrate.

Two designs give the pair of bounds (``BuildConfig.design``):

- ``pair``: two networks, the upper bound trained to answer yes and the lower bound to answer no,
  each with the asymmetric cost of a wrong answer; the one-network baseline is trained beside them
  for comparison (``metrics.json`` ``baseline``);
- ``one``: one network trained symmetrically on the DNN's decisions (and margin), read both ways:
  the upper bound is the network, the lower bound the same hidden layers with the output neuron
  flipped (:func:`~bnnembed.model.intmodel.flip_output`), each side with its own calibrated
  threshold. The artifact and the C runtime store and run the hidden layers once.

Both are calibrated the same way: the margin grid centred at the training rows' median scores,
the fixed sequence on the calibration split (:mod:`bnnembed.learn.calibrate`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from typing import TYPE_CHECKING

import numpy as np

from ..errors import BnnError
from ..model.intmodel import bound_scores, flip_output
from ..model.shifts import SHIFT_SETS, ShiftCopies, check_shifts, expand_copies
from .calibrate import PairScores, calibrate, decisions_at, median_centers, pair_curve, side_curve
from .config import BuildConfig, auto_epochs, design_hidden
from .metrics import decision_metrics
from .train import BoundMLP, TrainConfig, fold_batchnorm, torch_scores, train_bound

if TYPE_CHECKING:  # the build's stage records (build imports this module)
    from .build import _Dnn, _FitSet

ONE = "one network"  # the name of the one-network design's training job, curves and table row


def design_label(design: str) -> str:
    """How tables and plots name a design: ``one network`` or ``two networks``."""
    return ONE if design == "one" else "two networks"


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="epoch", disable=not enabled, leave=False)


def tables_bytes(model) -> int:
    """Flash of the generated model tables (float input encoding; runtime code excluded)."""
    from ..render.footprint import deployed_footprint
    return deployed_footprint(model).flash_bytes


def image_shape_for_copies(ds_shape, dnn_input_shape, n_features: int) -> tuple[int, int]:
    """The image the copies move: the data's own shape, else the DNN's input (its last two
    dimensions, a CNN's height and width) when they hold every feature."""
    if ds_shape:
        return tuple(ds_shape)
    dims = tuple(int(v) for v in (dnn_input_shape or ()) if v is not None)
    if len(dims) >= 2 and dims[-2] * dims[-1] == n_features and min(dims[-2:]) >= 2:
        return dims[-2], dims[-1]
    raise BnnError("--shift-copies moves images, and neither the data (mnist:, digits) nor the DNN's input shape "
                   f"gives an image of {n_features} pixels; give --image-shape HxW or build without --shift-copies")


def check_copies_fit(shape, k: int, n_features: int) -> None:
    """Refuse, before training, copies the image cannot take (one line naming the fix)."""
    try:
        check_shifts(shape, SHIFT_SETS[k], n_features)
    except ValueError as exc:
        raise BnnError(f"--shift-copies {k} on a {shape[0]}x{shape[1]} image: {exc}; "
                       "use fewer copies (3 moves left and right only) or build without --shift-copies") from None


def shift_copies(fit: _FitSet, rows: dict, upper, lower, shape, k: int, one_network: bool):
    """The trained bounds run on ``k`` shifted copies (:mod:`bnnembed.model.shifts`): returns the
    fit set re-encoded over the copies' grid (for calibration), the expanded bounds (summed
    thresholds still to calibrate) and the :class:`~bnnembed.model.shifts.ShiftCopies` stored."""
    copies = ShiftCopies(shape, SHIFT_SETS[k], fit.encoder, upper, lower, one_network)
    wide, up, lo = expand_copies(copies, 0, 0)
    bits = {name: wide.encode(X) for name, X in rows.items()}
    return replace(fit, encoder=wide, bits=bits), up, lo, copies


def train_bounds(fit: _FitSet, cfg: BuildConfig, progress: bool):
    """Train the design's networks (and, for a pair, the one-network baseline) and fold them to
    integer bounds, checked against torch on the calibration and test rows. Returns ``(models,
    upper, lower, mismatches, rows checked, hidden, epochs)``."""
    epochs = cfg.epochs or auto_epochs(len(fit.bits_fit))
    hidden = design_hidden(cfg, fit.encoder)
    tcfg = TrainConfig(hidden=hidden, epochs=epochs, asymmetry=cfg.asymmetry, seed=cfg.seed,
                       select_alpha=cfg.alpha, stability=cfg.stability, mask_first_layer=cfg.mask_first_layer,
                       margin_weight=cfg.distill_margin)
    symmetric = TrainConfig(**{**asdict(tcfg), "asymmetry": 1.0})  # one network answers both sides
    models: dict[str, BoundMLP] = {}
    z = fit.z_fit
    if cfg.design == "one":
        jobs = [(ONE, fit.y_fit, symmetric, z)]
    else:
        jobs = [("upper", fit.y_fit, tcfg, z), ("lower", ~fit.y_fit, tcfg, None if z is None else -z)]
        if cfg.baseline:
            jobs.append(("baseline", fit.y_fit, symmetric, z))
    for name, target, c, margin in jobs:
        with _progress(c.epochs, f"training {name}" + ("" if name == ONE else " bound"), progress) as bar:
            models[name] = train_bound(fit.bits_fit, target, c, progress=bar, margin=margin)
    if cfg.design == "one":
        upper = fold_batchnorm(models[ONE], "yes")
        lower = flip_output(upper, "no")
    else:
        upper = fold_batchnorm(models["upper"], "yes")
        lower = fold_batchnorm(models["lower"], "no")
    check_rows = np.concatenate([fit.bits["calibration"], fit.bits["test"]])
    mismatches = {name: int(np.sum(torch_scores(models[name], check_rows)
                                   != bound_scores(fold_batchnorm(models[name], "yes"), check_rows)))
                  for name in models}
    if any(mismatches.values()):  # pragma: no cover - a bug, not a user error
        raise RuntimeError(f"integer model differs from the torch model: {mismatches}")
    return models, upper, lower, mismatches, int(len(check_rows)), hidden, epochs


def _pair_scores(up, lo, fit: _FitSet, d: _Dnn, split_name: str) -> PairScores:
    bits = fit.bits[split_name]
    return PairScores(bound_scores(up, bits), bound_scores(lo, bits), d.yes[split_name])


def _side_names(design: str) -> tuple[str, str]:
    label = design_label(design)
    return ((f"{label}: yes side", f"{label}: no side") if design == "one"
            else (f"{label}: upper bound", f"{label}: lower bound"))


def calibrate_bounds(upper, lower, fit: _FitSet, d: _Dnn, cfg: BuildConfig, notes: list):
    """Centre the margin grid on the training rows, calibrate on the calibration split, measure on
    the test split. Returns ``(upper, lower with tau, centers, calibration, test decisions,
    test metrics, test scores, curves, chosen thresholds)``."""
    n_out = upper.score_range
    centers = median_centers(_pair_scores(upper, lower, fit, d, "train"), n_out)
    cal = calibrate(_pair_scores(upper, lower, fit, d, "calibration"), _pair_scores(upper, lower, fit, d, "train"),
                    centers, cfg.alpha, cfg.delta)
    upper, lower = upper.with_tau(cal.tau_yes), lower.with_tau(cal.tau_no)
    test_scores = _pair_scores(upper, lower, fit, d, "test")
    dec_test = decisions_at(test_scores, centers, cal.margin if cal.certified else n_out + 1)
    main = decision_metrics(dec_test, d.yes["test"], cfg.delta)
    notes += cal.notes
    label = design_label(cfg.design)
    yes_side, no_side = _side_names(cfg.design)
    curves = {"upper": {}, "lower": {}, "pair": {}}
    cal_scores = _pair_scores(upper, lower, fit, d, "calibration")
    curves["pair"][label] = {**pair_curve(cal_scores, centers, cfg.delta), "kind": "margin"}
    curves["upper"][yes_side] = side_curve(cal_scores.yes, d.yes["calibration"], n_out, cfg.delta)
    curves["lower"][no_side] = side_curve(cal_scores.no, ~d.yes["calibration"], n_out, cfg.delta)
    chosen = {yes_side: cal.tau_yes if cal.certified else None,
              no_side: cal.tau_no if cal.certified else None,
              label: cal.margin}
    return upper, lower, centers, cal, dec_test, main, test_scores, curves, chosen


def plain_agreement(models: dict, test_scores: PairScores, centers, d: _Dnn, copies: int = 1) -> float:
    """``bnn_agreement`` without a baseline: one network at its own decision boundary (its logit 0,
    times the copies its scores are summed over), a pair's upper bound at its median centre
    (docs/metrics.md)."""
    boundary = math.ceil(copies * models[ONE].center()) if ONE in models else centers.yes
    return float(np.mean((test_scores.yes >= boundary) == d.yes["test"]))


def baseline_result(model: BoundMLP, n_out: int, fit: _FitSet, d: _Dnn, cfg: BuildConfig, curves: dict,
                    chosen: dict) -> tuple[dict, float]:
    """The one-network baseline of a pair build, calibrated the same way; adds its curves; returns
    ``(metrics block, plain agreement with the DNN at its own logit-0 boundary)``."""
    b_up = fold_batchnorm(model, "yes")
    b_lo = flip_output(b_up, "no")
    boundary = int(math.ceil(model.center()))  # its own decision boundary, for the plain agreement
    b_cfg = replace(cfg, design="one")
    _, _, _, b_cal, _, block, b_test, b_curves, b_chosen = calibrate_bounds(b_up, b_lo, fit, d, b_cfg, [])
    block["calibration"] = {k: v for k, v in b_cal.to_dict().items() if k != "steps"}
    agreement = float(np.mean((b_test.yes >= boundary) == d.yes["test"]))
    for side in curves:
        curves[side].update(b_curves[side])
    chosen.update(b_chosen)
    return block, agreement


__all__ = ["baseline_result", "calibrate_bounds", "check_copies_fit", "design_label", "image_shape_for_copies",
           "plain_agreement",
           "shift_copies", "tables_bytes", "train_bounds"]
