"""The build pipeline: data -> DNN -> encoding -> bounds -> integer model -> calibration -> artifact.

Orchestration only; each stage lives in its own module. ``build_artifact`` is what
``bnnembed build`` runs.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.model_selection import train_test_split

from ..artifact import METRICS, ONNX_EXPORT, SPLIT, write_artifact
from .calibrate import Centers, PairScores, calibrate, decisions_at, median_centers, pair_curve, side_curve
from .data import Dataset
from .distill import augment_inputs, domain_inputs
from .dnn import Output, export_onnx_for_certify, guess_output, load_dnn, train_default_dnn
from ..model.encoding import fit_thermometer
from ..model.model import Model
from ..errors import BnnError
from ..model.intmodel import Decision, bound_scores
from .metrics import decision_metrics
from .train import BoundMLP, TrainConfig, flip_output, fold_batchnorm, torch_scores, torch_threads, train_bound


@dataclass(frozen=True)
class BuildConfig:
    """Everything ``bnnembed build`` can be told (None = chosen from the data)."""

    alpha: float = 0.05
    delta: float = 0.05
    seed: int = 0
    bits_per_feature: int | None = None
    hidden: tuple[int, ...] | None = None
    epochs: int | None = None
    augment: int | None = None
    domain_samples: int = 0  # distillation inputs drawn uniformly from the training box
    asymmetry: float = 4.0
    cal_fraction: float = 0.25
    test_fraction: float = 0.25
    baseline: bool = True
    dnn_output: str | None = None  # the DNN's output convention; None = guess (see bnnembed.learn.dnn)


@dataclass
class BuildResult:
    path: str
    metrics: dict
    notes: list[str] = field(default_factory=list)
    model: Model | None = None  # what was written, for renderers that follow the build


def auto_bits_per_feature(n_features: int) -> int:
    """About 256 input bits for small tables, at least 2 bits a feature for images."""
    return int(np.clip(round(256 / max(n_features, 1)), 2, 8))


def auto_hidden(n_bits: int) -> tuple[int, ...]:
    """64-32 hidden neurons up to 512 input bits, else 256-256.

    Measured (docs/cnf.md): on digits 5..9 and breast_cancer, 64-32 bounds reach the coverage of
    256-256 ones (93.8% vs 94.4%, 96.5% vs 92.3%) while their exact explanations are tractable
    (seconds instead of minutes); MNIST-sized inputs keep the wider layers."""
    return (64, 32) if n_bits <= 512 else (256, 256)


def auto_augment(n_train: int) -> int:
    """Distillation copies per training row: about 20k training inputs in all."""
    return int(np.clip(round(20_000 / max(n_train, 1)), 2, 20))


def auto_epochs(n_inputs: int) -> int:
    """About 4,000 optimisation steps of 128 inputs, between 8 and 40 epochs."""
    return int(np.clip(round(4_000 * 128 / max(n_inputs, 1)), 8, 40))


def split_rows(ds: Dataset, cfg: BuildConfig) -> dict[str, np.ndarray]:
    """Stratified train / calibration / test split with a fixed seed."""
    idx = np.arange(ds.n_rows)
    yes = ds.y_yes()
    holdout = cfg.cal_fraction + cfg.test_fraction
    if not 0 < holdout < 1:
        raise BnnError("calibration and test fractions must be positive and sum to less than 1")
    try:
        train, rest = train_test_split(idx, test_size=holdout, random_state=cfg.seed, stratify=yes)
        cal, test = train_test_split(rest, test_size=cfg.test_fraction / holdout,
                                     random_state=cfg.seed + 1, stratify=yes[rest])
    except ValueError as exc:
        raise BnnError(f"{ds.name}: cannot split {ds.n_rows} rows into train/calibration/test ({exc})") from None
    return {"train": np.sort(train), "calibration": np.sort(cal), "test": np.sort(test)}


def _check_trainable(ds: Dataset) -> None:
    yes = ds.y_yes()
    if yes.all() or not yes.any():
        which = "yes" if yes.all() else "no"
        raise BnnError(
            f"{ds.name}: every row is '{which}' for --positive {','.join(map(str, ds.positive))}; "
            "bounds need both classes (check --positive / --label)"
        )
    if ds.n_rows < 40:
        raise BnnError(f"{ds.name}: {ds.n_rows} rows are too few to train, calibrate and test (need >= 40)")


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="epoch", disable=not enabled, leave=False)


def config_of(metrics: dict) -> BuildConfig:
    """The build configuration an artifact's metrics.json records (defaults where it is silent),
    so a rebuild on the same data reproduces its split and its training set-up."""
    model, split = metrics.get("model") or {}, metrics.get("split") or {}
    return BuildConfig(
        alpha=metrics.get("alpha", 0.05), delta=metrics.get("delta", 0.05), seed=split.get("seed", 0),
        bits_per_feature=model.get("bits_per_feature"), hidden=tuple(model["hidden"]) if model.get("hidden") else None,
        epochs=model.get("epochs"), augment=split.get("augment"), domain_samples=split.get("domain_samples", 0),
        asymmetry=model.get("asymmetry", 4.0), cal_fraction=split.get("cal_fraction", 0.25),
        test_fraction=split.get("test_fraction", 0.25), baseline=metrics.get("baseline") is not None,
        dnn_output=(metrics.get("settings") or {}).get("dnn_output"))


def build_artifact(ds: Dataset, out: str, cfg: BuildConfig, dnn_path: str | None = None,
                   progress: bool = True, extra_inputs: np.ndarray | None = None) -> BuildResult:
    """Run the whole build and write the artifact directory ``out``. ``extra_inputs`` are more
    distillation inputs (labelled by the DNN like the others), e.g. counterexamples that
    ``certify --domain --retrain-rounds`` feeds back as hard negatives."""
    with torch_threads(1):
        return _build_artifact(ds, out, cfg, dnn_path, progress, extra_inputs)


def _build_artifact(ds: Dataset, out: str, cfg: BuildConfig, dnn_path: str | None, progress: bool,
                    extra_inputs: np.ndarray | None) -> BuildResult:
    t0 = time.time()
    if dnn_path is not None and not os.path.isfile(dnn_path):
        raise BnnError(f"--dnn {dnn_path}: no such file")
    _check_trainable(ds)
    notes: list[str] = []
    split = split_rows(ds, cfg)
    tr, ca, te = (ds.subset(split[k]) for k in ("train", "calibration", "test"))

    # --- the DNN -------------------------------------------------------------------------
    if dnn_path is None:
        dnn_file = "dnn.onnx"
        os.makedirs(out, exist_ok=True)
        train_default_dnn(tr.X, tr.y_yes(), os.path.join(out, dnn_file), seed=cfg.seed)
        dnn_kind = "default"
    else:
        dnn_file = "dnn" + os.path.splitext(dnn_path)[1]
        # read the user's file first, so that a DNN that cannot be used is named as given
        load_dnn(dnn_path, ds.X.shape[1], ds.positive, ds.y, image_shape=ds.image_shape)
        os.makedirs(out, exist_ok=True)
        if os.path.abspath(dnn_path) != os.path.abspath(os.path.join(out, dnn_file)):
            shutil.copyfile(dnn_path, os.path.join(out, dnn_file))
        dnn_kind = "user"
    dnn = load_dnn(os.path.join(out, dnn_file), ds.X.shape[1], ds.positive, ds.y, image_shape=ds.image_shape)
    dnn.output = cfg.dnn_output or guess_output(dnn, tr.X)
    if dnn.output == Output.CLASSES and dnn.n_outputs == 1 or dnn.output != Output.CLASSES and dnn.n_outputs > 1:
        raise BnnError(f"--dnn-output {dnn.output} does not fit a DNN with {dnn.n_outputs} output column(s)")
    onnx_export = export_onnx_for_certify(dnn, os.path.join(out, ONNX_EXPORT)) if dnn.kind == "torchscript" else None
    if onnx_export is not None and not onnx_export:
        notes.append("the TorchScript DNN could not be exported to ONNX; 'certify' needs an ONNX DNN")
    dnn_yes = {k: dnn.says_yes(d.X) for k, d in (("train", tr), ("calibration", ca), ("test", te))}
    dnn_accuracy = float(np.mean(dnn_yes["test"] == te.y_yes()))
    if dnn_yes["train"].all() or not dnn_yes["train"].any():
        raise BnnError("the DNN gives the same answer on every training row; nothing to bound")

    # --- encoding and distillation data ----------------------------------------------------
    k_bits = cfg.bits_per_feature or auto_bits_per_feature(ds.X.shape[1])
    encoder, dropped = fit_thermometer(tr.X, k_bits)
    if dropped:
        notes.append(f"dropped {len(dropped)} constant feature(s): "
                     + ", ".join(ds.feature_names[c] for c in dropped[:8]) + (" ..." if len(dropped) > 8 else ""))
    rng = np.random.default_rng(cfg.seed)
    copies = cfg.augment if cfg.augment is not None else auto_augment(len(tr.X))
    X_aug = augment_inputs(tr.X, copies, rng, ds.image_shape)
    if cfg.domain_samples:
        X_aug = np.concatenate([X_aug, domain_inputs(tr.X, cfg.domain_samples, rng)])
    n_extra = 0
    if extra_inputs is not None and len(extra_inputs):
        X_aug = np.concatenate([X_aug, np.asarray(extra_inputs, dtype=np.float32)])
        n_extra = len(extra_inputs)
    X_fit = np.concatenate([tr.X, X_aug])
    y_fit = np.concatenate([dnn_yes["train"], dnn.says_yes(X_aug) if len(X_aug) else np.zeros(0, bool)])
    bits_fit = encoder.encode(X_fit)
    bits = {"train": encoder.encode(tr.X), "calibration": encoder.encode(ca.X), "test": encoder.encode(te.X)}

    # --- the bounds ----------------------------------------------------------------------
    epochs = cfg.epochs or auto_epochs(len(X_fit))
    hidden = tuple(cfg.hidden) if cfg.hidden else auto_hidden(encoder.n_bits)
    tcfg = TrainConfig(hidden=hidden, epochs=epochs, asymmetry=cfg.asymmetry, seed=cfg.seed,
                       select_alpha=cfg.alpha)
    models: dict[str, BoundMLP] = {}
    jobs = [("upper", y_fit, tcfg), ("lower", ~y_fit, tcfg)]
    if cfg.baseline:
        jobs.append(("baseline", y_fit, TrainConfig(**{**asdict(tcfg), "asymmetry": 1.0})))
    for name, target, c in jobs:
        with _progress(c.epochs, f"training {name} bound", progress) as bar:
            models[name] = train_bound(bits_fit, target, c, progress=bar)

    upper = fold_batchnorm(models["upper"], "yes")
    lower = fold_batchnorm(models["lower"], "no")
    check_rows = np.concatenate([bits["calibration"], bits["test"]])
    mismatches = {name: int(np.sum(torch_scores(models[name], check_rows)
                                   != bound_scores(fold_batchnorm(models[name], "yes"), check_rows)))
                  for name in models}
    if any(mismatches.values()):  # pragma: no cover - a bug, not a user error
        raise RuntimeError(f"integer model differs from the torch model: {mismatches}")

    # --- calibration ------------------------------------------------------------------------
    n_out = upper.score_range

    def pair_scores(up, lo, split_name):
        return PairScores(bound_scores(up, bits[split_name]), bound_scores(lo, bits[split_name]), dnn_yes[split_name])

    centers = median_centers(pair_scores(upper, lower, "train"), n_out)
    cal = calibrate(pair_scores(upper, lower, "calibration"), pair_scores(upper, lower, "train"),
                    centers, cfg.alpha, cfg.delta)
    upper, lower = upper.with_tau(cal.tau_yes), lower.with_tau(cal.tau_no)
    test_scores = pair_scores(upper, lower, "test")
    dec_test = decisions_at(test_scores, centers, cal.margin if cal.certified else n_out + 1)
    main = decision_metrics(dec_test, dnn_yes["test"], cfg.delta)
    notes += cal.notes

    curves = {"upper": {}, "lower": {}, "pair": {}}
    cal_scores = pair_scores(upper, lower, "calibration")
    curves["pair"]["two networks"] = {**pair_curve(cal_scores, centers, cfg.delta), "kind": "margin"}
    curves["upper"]["two networks: upper bound"] = side_curve(cal_scores.yes, dnn_yes["calibration"], n_out, cfg.delta)
    curves["lower"]["two networks: lower bound"] = side_curve(cal_scores.no, ~dnn_yes["calibration"], n_out, cfg.delta)
    chosen = {"two networks: upper bound": cal.tau_yes if cal.certified else None,
              "two networks: lower bound": cal.tau_no if cal.certified else None,
              "two networks": cal.margin}

    baseline_block = None
    base_plain_agreement = None
    if cfg.baseline:
        b_up = fold_batchnorm(models["baseline"], "yes")
        b_lo = flip_output(b_up, "no")
        c = models["baseline"].center()
        b_centers = Centers(int(math.ceil(c)), int(math.ceil(n_out - c)), n_out)
        b_cal = calibrate(pair_scores(b_up, b_lo, "calibration"), pair_scores(b_up, b_lo, "train"),
                          b_centers, cfg.alpha, cfg.delta)
        b_test = pair_scores(b_up, b_lo, "test")
        baseline_block = decision_metrics(
            decisions_at(b_test, b_centers, b_cal.margin if b_cal.certified else n_out + 1), dnn_yes["test"], cfg.delta)
        baseline_block["calibration"] = {k: v for k, v in b_cal.to_dict().items() if k != "steps"}
        base_plain_agreement = float(np.mean((b_test.yes >= b_centers.yes) == dnn_yes["test"]))
        b_cal_scores = pair_scores(b_up, b_lo, "calibration")
        curves["pair"]["one network"] = {**pair_curve(b_cal_scores, b_centers, cfg.delta), "kind": "margin"}
        chosen["one network"] = b_cal.margin
        curves["upper"]["one network: yes side"] = side_curve(b_cal_scores.yes, dnn_yes["calibration"], n_out, cfg.delta)
        curves["lower"]["one network: no side"] = side_curve(b_cal_scores.no, ~dnn_yes["calibration"], n_out, cfg.delta)
        chosen["one network: yes side"] = b_cal.tau_yes if b_cal.certified else None
        chosen["one network: no side"] = b_cal.tau_no if b_cal.certified else None

    final = np.where(dec_test == int(Decision.UNKNOWN), dnn_yes["test"], dec_test == int(Decision.YES))
    metrics = {
        **main,
        "alpha": cfg.alpha,
        "delta": cfg.delta,
        "split": {"train": len(tr.X), "calibration": len(ca.X), "test": len(te.X),
                  "distillation_inputs": len(X_aug),
                  "domain_samples": cfg.domain_samples, "extra_inputs": n_extra, "augment": copies,
                  "cal_fraction": cfg.cal_fraction, "test_fraction": cfg.test_fraction, "seed": cfg.seed},
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
        "dnn_accuracy": dnn_accuracy,
        "bnn_agreement": base_plain_agreement if base_plain_agreement is not None
        else float(np.mean((test_scores.yes >= centers.yes) == dnn_yes["test"])),
        "cascade_agreement": float(np.mean(final == dnn_yes["test"])),
        "calibration": cal.to_dict(),
        "baseline": baseline_block,
        "torch_numpy_mismatches": mismatches,
        "torch_numpy_rows_checked": int(len(check_rows)),
        "model": {"input_bits": encoder.n_bits, "bits_per_feature": k_bits, "hidden": list(hidden),
                  "epochs": epochs, "asymmetry": cfg.asymmetry,
                  "upper_shape": upper.shape, "lower_shape": lower.shape},
        "build_seconds": None,
        "notes": notes,
    }

    # --- the artifact ------------------------------------------------------------------------
    np.savez(os.path.join(out, SPLIT), **split)
    from ..plots import plot_risk_coverage

    for side, title in (("upper", "upper bound (answers yes)"), ("lower", "lower bound (answers no)"),
                        ("pair", "bound pair over the calibrated margin grid")):
        plot_risk_coverage(curves[side], chosen, cfg.alpha, cfg.delta,
                           f"{ds.name}: {title}, calibration split", os.path.join(out, f"risk_coverage_{side}.png"))
    manifest = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dataset": {"name": ds.name, "rows": ds.n_rows,
                    "image_shape": list(ds.image_shape) if ds.image_shape else None},
        "features": {"count": int(ds.X.shape[1]), "names": list(ds.feature_names),
                     "dropped": [ds.feature_names[c] for c in dropped]},
        "encoding": {"kind": "thermometer", "bits_per_feature": k_bits, "input_bits": encoder.n_bits,
                     "bit_semantics": "bit k of a feature is 1 iff float32(x) >= threshold k; "
                                      "a set bit means -1 to the first layer"},
        "positive": {"values": [_jsonable(v) for v in ds.positive],
                     "names": [ds.label_names.get(v, str(v)) for v in ds.positive]},
        "dnn": {"file": dnn_file, "kind": dnn.kind, "origin": dnn_kind,
                "output": dnn.output, "outputs": dnn.n_outputs,
                "positive_columns": list(dnn.positive_columns),
                "input_shape": list(dnn.input_shape), "description": dnn.describe(),
                "onnx_export": ONNX_EXPORT if onnx_export else None},
        "bounds": {"upper": {"answer": "yes", "shape": upper.shape, "tau": upper.tau},
                   "lower": {"answer": "no", "shape": lower.shape, "tau": lower.tau}},
        "files": {dnn_file: None, SPLIT: None, METRICS: None, **({ONNX_EXPORT: None} if onnx_export else {})},
    }
    metrics["build_seconds"] = round(time.time() - t0, 1)
    with open(os.path.join(out, METRICS), "w") as fh:
        json.dump(metrics, fh, indent=2)
        fh.write("\n")
    write_artifact(out, manifest, encoder, upper, lower)
    model = Model(encoder, upper, lower, tuple(ds.feature_names), tuple(manifest["positive"]["values"]))
    return BuildResult(out, metrics, notes, model)


def _jsonable(v):
    return v.item() if hasattr(v, "item") else v


__all__ = ["BuildConfig", "BuildResult", "build_artifact", "config_of"]
