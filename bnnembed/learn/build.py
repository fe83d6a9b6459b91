"""The build pipeline: data -> DNN -> encoding -> bounds -> integer model -> calibration -> artifact.

Orchestration only; each stage lives in its own module. ``build_artifact`` is what
``bnnembed build`` runs.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from sklearn.model_selection import train_test_split

from ..artifact import METRICS, ONNX_EXPORT, SPLIT, write_artifact
from .bounds import (baseline_result, calibrate_bounds, check_copies_fit, image_shape_for_copies, plain_agreement,
                     shift_copies, tables_bytes, train_bounds)
from .config import (DESIGNS, BuildConfig, auto_augment, auto_bits_per_feature, auto_design, auto_distill_margin,
                     auto_epochs, auto_hidden, design_hidden)
from .data import Dataset
from .distill import augment_inputs, domain_inputs, margin_targets
from .dnn import Output, export_onnx_for_certify, guess_output, load_dnn, train_default_dnn
from ..model.encoding import fit_packed_thermometer
from ..render.quantize import is_uint8_data
from ..model.model import Model
from ..errors import BnnError
from ..model.intmodel import Decision
from ..model.shifts import SHIFT_SETS
from .train import torch_threads


@dataclass
class BuildResult:
    path: str
    metrics: dict
    notes: list[str] = field(default_factory=list)
    model: Model | None = None  # what was written, for renderers that follow the build


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


def build_artifact(ds: Dataset, out: str, cfg: BuildConfig, dnn_path: str | None = None,
                   progress: bool = True, extra_inputs: np.ndarray | None = None) -> BuildResult:
    """Run the whole build and write the artifact directory ``out``. ``extra_inputs`` are more
    distillation inputs (labelled by the DNN like the others), e.g. counterexamples that
    ``certify --domain --retrain-rounds`` feeds back as hard negatives."""
    with torch_threads(1):
        return _build_artifact(ds, out, cfg, dnn_path, progress, extra_inputs)


@dataclass
class _Dnn:
    """The DNN stage: the loaded DNN, where it sits in the artifact, its answers per split."""

    dnn: object
    file: str
    origin: str  # "default" or "user"
    onnx_export: bool | None  # TorchScript only: was the ONNX export for certify written
    yes: dict[str, np.ndarray]
    accuracy: float


@dataclass
class _FitSet:
    """The distillation stage: the encoder and the inputs the bounds are trained on."""

    encoder: object
    dropped: list[int]
    bits_per_feature: int
    augment: int
    n_aug: int
    n_extra: int
    bits_fit: np.ndarray
    y_fit: np.ndarray
    bits: dict[str, np.ndarray]  # encoded train / calibration / test rows
    selection: dict | None = None  # what --features chose (None: every feature is read)
    z_fit: np.ndarray | None = None  # margin-distillation logit targets of bits_fit (None: not asked for)
    trimmed_bits: int = 0  # input bits left out so the input fills whole words (fit_packed_thermometer)
    trimmed_unread: list = field(default_factory=list)  # names of features the trim left unread


def copies_image(ds: Dataset, cfg: BuildConfig, dnn_path: str | None) -> tuple[int, int] | None:
    """The image ``--shift-copies`` moves (None without copies): the data's shape, else the
    user's DNN's input shape (the default DNN takes flat rows); refused in one line if the copies
    cannot move it."""
    if cfg.shift_copies == 1:
        return None
    dnn_shape = None
    if not ds.image_shape and dnn_path is not None:
        dnn_shape = load_dnn(dnn_path, ds.X.shape[1], ds.positive, ds.y).input_shape
    shape = image_shape_for_copies(ds.image_shape, dnn_shape, ds.X.shape[1])
    check_copies_fit(shape, cfg.shift_copies, ds.X.shape[1])
    return shape


def prepare_dnn(ds: Dataset, out: str, cfg: BuildConfig, dnn_path: str | None, parts: dict, notes: list) -> _Dnn:
    """Train the default DNN (or check and copy the user's) into ``out`` and record its answers."""
    tr = parts["train"]
    if dnn_path is None:
        dnn_file, origin = "dnn.onnx", "default"
        os.makedirs(out, exist_ok=True)
        # image pixels share one scale (per-pixel standardisation magnifies near-constant borders)
        train_default_dnn(tr.X, tr.y_yes(), os.path.join(out, dnn_file), seed=cfg.seed,
                          scale="uniform" if ds.image_shape else "feature")
    else:
        dnn_file, origin = "dnn" + os.path.splitext(dnn_path)[1], "user"
        # read the user's file first, so that a DNN that cannot be used is named as given
        load_dnn(dnn_path, ds.X.shape[1], ds.positive, ds.y, image_shape=ds.image_shape)
        os.makedirs(out, exist_ok=True)
        if os.path.abspath(dnn_path) != os.path.abspath(os.path.join(out, dnn_file)):
            shutil.copyfile(dnn_path, os.path.join(out, dnn_file))
    dnn = load_dnn(os.path.join(out, dnn_file), ds.X.shape[1], ds.positive, ds.y, image_shape=ds.image_shape)
    dnn.output = cfg.dnn_output or guess_output(dnn, tr.X)
    if dnn.output == Output.CLASSES and dnn.n_outputs == 1 or dnn.output != Output.CLASSES and dnn.n_outputs > 1:
        raise BnnError(f"--dnn-output {dnn.output} does not fit a DNN with {dnn.n_outputs} output column(s)")
    onnx_export = export_onnx_for_certify(dnn, os.path.join(out, ONNX_EXPORT)) if dnn.kind == "torchscript" else None
    if onnx_export is not None and not onnx_export:
        notes.append("the TorchScript DNN could not be exported to ONNX; 'certify' needs an ONNX DNN")
    yes = {k: dnn.says_yes(d.X) for k, d in parts.items()}
    accuracy = float(np.mean(yes["test"] == parts["test"].y_yes()))
    if yes["train"].all() or not yes["train"].any():
        raise BnnError("the DNN gives the same answer on every training row; nothing to bound")
    return _Dnn(dnn, dnn_file, origin, onnx_export, yes, accuracy)


def distillation_set(ds: Dataset, cfg: BuildConfig, parts: dict, d: _Dnn, extra_inputs, notes: list) -> _FitSet:
    """Fit the thermometer encoder on the training rows and label the distillation inputs."""
    tr = parts["train"]
    k_bits = cfg.bits_per_feature or auto_bits_per_feature(ds.X.shape[1])
    encoder, dropped, trimmed, unread = fit_packed_thermometer(tr.X, k_bits, trim=cfg.features is None)
    if trimmed:
        note = (f"left out the {trimmed} least informative input bit(s), so the {encoder.n_bits} input bits "
                "fill whole 32-bit words")
        if unread:
            note += f"; {len(unread)} feature(s) lost their only bit and are not read: {ds.some_names(unread)}"
        notes.append(note)
    if dropped:
        notes.append(f"dropped {len(dropped)} constant feature(s): {ds.some_names(dropped)}")
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
    y_fit = np.concatenate([d.yes["train"], d.dnn.says_yes(X_aug) if len(X_aug) else np.zeros(0, bool)])
    z_fit = None
    if cfg.distill_margin:
        z = d.dnn.margin(X_fit)
        z_fit = margin_targets(z, z[: len(tr.X)])
    bits = {k: encoder.encode(part.X) for k, part in parts.items()}
    return _FitSet(encoder, dropped, k_bits, copies, len(X_aug), n_extra, encoder.encode(X_fit), y_fit, bits,
                   z_fit=z_fit, trimmed_bits=trimmed, trimmed_unread=[ds.feature_names[c] for c in unread])


def select_features(ds: Dataset, fit: _FitSet, cfg: BuildConfig, notes: list) -> _FitSet:
    """``--features K``: prune the encoder's features to K with gate networks trained on the DNN's
    decisions (see :mod:`bnnembed.learn.select`). The returned set's encoder
    reads only those features and its bits are the matching columns of the full encoding."""
    from .select import features_to_keep, select_features as keep_best

    enc = fit.encoder
    k = features_to_keep(cfg.features, ds.X.shape[1], enc.n_kept)
    if k >= enc.n_kept:
        notes.append(f"--features {cfg.features:g}: all {enc.n_kept} non-constant features are read")
        return replace(fit, selection={"requested": cfg.features, "read": enc.n_kept, "columns": ds.X.shape[1],
                                       "ranked": None})
    epochs = cfg.epochs or auto_epochs(len(fit.bits_fit))
    hidden = tuple(cfg.hidden) if cfg.hidden else auto_hidden(enc.n_bits)  # the gate network's (not --flash-budget's)
    keep, order = keep_best(fit.bits_fit, fit.y_fit, enc.bit_owner(), enc.n_kept, k,
                            hidden=hidden, epochs=epochs, seed=cfg.seed)
    cols = enc.bit_columns(keep)
    sub = enc.restrict(keep)
    notes.append(f"--features {cfg.features:g}: the bounds read {k} of {ds.X.shape[1]} features "
                 f"({sub.n_bits} of {enc.n_bits} input bits)")
    selection = {"requested": cfg.features, "read": k, "columns": ds.X.shape[1],
                 "ranked": [ds.feature_names[int(enc.feature_index[f])] for f in order]}
    return replace(fit, encoder=sub, bits_fit=np.ascontiguousarray(fit.bits_fit[:, cols]),
                   bits={name: np.ascontiguousarray(b[:, cols]) for name, b in fit.bits.items()}, selection=selection)


def _build_artifact(ds: Dataset, out: str, cfg: BuildConfig, dnn_path: str | None, progress: bool,
                    extra_inputs: np.ndarray | None) -> BuildResult:
    t0 = time.time()
    if dnn_path is not None and not os.path.isfile(dnn_path):
        raise BnnError(f"--dnn {dnn_path}: no such file")
    _check_trainable(ds)
    if cfg.distill_margin is None:  # resolved here so metrics.json records the weight used
        cfg = replace(cfg, distill_margin=auto_distill_margin(ds.image_shape is not None))
    if cfg.design is None:  # likewise the design
        cfg = replace(cfg, design=auto_design(ds.image_shape is not None))
    if cfg.design not in DESIGNS:
        raise BnnError(f"--design {cfg.design}: choose one of {', '.join(DESIGNS)}")
    if cfg.shift_copies not in SHIFT_SETS:
        raise BnnError(f"--shift-copies {cfg.shift_copies}: choose one of {', '.join(map(str, SHIFT_SETS))}")
    if cfg.shift_copies > 1 and cfg.features is not None:
        raise BnnError("--shift-copies and --features: the copies read the neighbours of the selected pixels, so the "
                       "selection would not hold; choose one")
    notes: list[str] = []
    split = split_rows(ds, cfg)
    parts = {k: ds.subset(split[k]) for k in ("train", "calibration", "test")}
    if cfg.flash_budget is not None and cfg.features is None:  # refuse a budget too small before writing anything
        k_bits = cfg.bits_per_feature or auto_bits_per_feature(ds.X.shape[1])
        design_hidden(cfg, fit_packed_thermometer(parts["train"].X, k_bits)[0])
    shape = copies_image(ds, cfg, dnn_path)  # refused here, before a DNN is trained or anything written
    d = prepare_dnn(ds, out, cfg, dnn_path, parts, notes)
    fit = distillation_set(ds, cfg, parts, d, extra_inputs, notes)
    if cfg.features is not None:
        fit = select_features(ds, fit, cfg, notes)
    models, upper, lower, mismatches, n_checked, hidden, epochs = train_bounds(fit, cfg, progress)
    n_out = upper.score_range
    fit_cal, copies = fit, None
    if shape is not None:
        fit_cal, upper, lower, copies = shift_copies(fit, {k: parts[k].X for k in ("train", "calibration", "test")},
                                                     upper, lower, shape, cfg.shift_copies, cfg.design == "one")
    upper, lower, centers, cal, dec_test, main, test_scores, curves, chosen = calibrate_bounds(
        upper, lower, fit_cal, d, cfg, notes)
    baseline_block, base_plain_agreement = (baseline_result(models["baseline"], n_out, fit, d, cfg, curves, chosen)
                                            if "baseline" in models else (None, None))
    if copies is not None:
        notes.append(f"the bounds decide over {copies.k} shifted copies of the {copies.shape[0]}x{copies.shape[1]} image "
                     f"(scores summed; {copies.k}x the device's work per decision, explanations slower and larger: "
                     "docs/coverage.md)")
        if baseline_block is not None:
            notes.append("the one-network baseline beside the pair decides one copy of the image (no shifted copies)")

    final = np.where(dec_test == int(Decision.UNKNOWN), d.yes["test"], dec_test == int(Decision.YES))
    tr, ca, te = parts["train"], parts["calibration"], parts["test"]
    metrics = {
        **main,
        "alpha": cfg.alpha,
        "delta": cfg.delta,
        "split": {"train": len(tr.X), "calibration": len(ca.X), "test": len(te.X),
                  "distillation_inputs": fit.n_aug,
                  "domain_samples": cfg.domain_samples, "extra_inputs": fit.n_extra, "augment": fit.augment,
                  "cal_fraction": cfg.cal_fraction, "test_fraction": cfg.test_fraction, "seed": cfg.seed},
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
        "dnn_accuracy": d.accuracy,
        "bnn_agreement": base_plain_agreement if base_plain_agreement is not None
        else plain_agreement(models, test_scores, centers, d, cfg.shift_copies),
        "cascade_agreement": float(np.mean(final == d.yes["test"])),
        "calibration": cal.to_dict(),
        "baseline": baseline_block,
        "torch_numpy_mismatches": mismatches,
        "torch_numpy_rows_checked": n_checked,
        "model": {"design": cfg.design, "input_bits": fit.encoder.n_bits, "bits_per_feature": fit.bits_per_feature, "hidden": list(hidden),
                  "trimmed_bits": fit.trimmed_bits, "trimmed_unread": fit.trimmed_unread, "epochs": epochs, "asymmetry": cfg.asymmetry if cfg.design == "pair" else 1.0,
                  "upper_shape": upper.shape, "lower_shape": lower.shape, "flash_bytes": None,
                  **({"shift_copies": {"copies": copies.k, "shifts": [list(v) for v in copies.shifts],
                                       "image_shape": list(copies.shape), "input_bits": fit_cal.encoder.n_bits}}
                     if copies else {}),
                  **({"features_read": fit.selection["read"]} if fit.selection else {})},
        **({"feature_selection": fit.selection} if fit.selection else {}),
        "build_seconds": None,
        "notes": notes,
    }
    model = Model(fit_cal.encoder, upper, lower, tuple(ds.feature_names), tuple(_jsonable(v) for v in ds.positive),
                  copies=copies)
    metrics["model"]["flash_bytes"] = tables_bytes(model)
    write_build(out, ds, split, model, d, fit, metrics, curves, chosen, cfg, t0)
    return BuildResult(out, metrics, notes, model)


def write_build(out: str, ds: Dataset, split: dict, model: Model, d: _Dnn, fit: _FitSet, metrics: dict,
                curves: dict, chosen: dict, cfg: BuildConfig, t0: float) -> None:
    """Write the artifact directory: split, plots, metrics.json, then bounds.npz and the manifest."""
    np.savez(os.path.join(out, SPLIT), **split)
    from ..plots import plot_risk_coverage

    for side, title in (("upper", "upper bound (answers yes)"), ("lower", "lower bound (answers no)"),
                        ("pair", "bound pair over the calibrated margin grid")):
        plot_risk_coverage(curves[side], chosen, cfg.alpha, cfg.delta,
                           f"{ds.name}: {title}, calibration split", os.path.join(out, f"risk_coverage_{side}.png"))
    upper, lower, dnn = model.upper, model.lower, d.dnn
    encoder = model.device_parts[0]  # what the device encodes (a shifted copy's grid is wider)
    manifest = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dataset": {"name": ds.name, "rows": ds.n_rows,
                    "image_shape": list(ds.image_shape) if ds.image_shape else None},
        "features": {"count": int(ds.X.shape[1]), "names": list(ds.feature_names),
                     # bytes at the source (pixels): the device may take and defer them as uint8
                     "native": "uint8" if is_uint8_data(ds.X) else "float32",
                     "dropped": [ds.feature_names[c] for c in fit.dropped],
                     **({"read": [ds.feature_names[int(c)] for c in encoder.feature_index],
                         "selected_by": f"--features {cfg.features:g}"} if fit.selection else {})},
        "encoding": {"kind": "thermometer", "bits_per_feature": fit.bits_per_feature, "input_bits": encoder.n_bits,
                     "bit_semantics": "bit k of a feature is 1 iff float32(x) >= threshold k; "
                                      "a set bit means -1 to the first layer"},
        "positive": {"values": [_jsonable(v) for v in ds.positive],
                     "names": [ds.label_names.get(v, str(v)) for v in ds.positive]},
        "dnn": {"file": d.file, "kind": dnn.kind, "origin": d.origin,
                "output": dnn.output, "outputs": dnn.n_outputs,
                "positive_columns": list(dnn.positive_columns),
                "input_shape": list(dnn.input_shape), "description": dnn.describe(),
                "onnx_export": ONNX_EXPORT if d.onnx_export else None},
        "bounds": {"design": model.design,
                   "upper": {"answer": "yes", "shape": upper.shape, "tau": upper.tau},
                   "lower": {"answer": "no", "shape": lower.shape, "tau": lower.tau,
                             **({"hidden_layers_of": "upper"} if model.one_network else {})},
                   **({"copies": {"count": model.copies.k, "image_shape": list(model.copies.shape),
                                  "shifts": [list(v) for v in model.copies.shifts],
                                  "stored_shape": model.copies.upper.shape}} if model.copies else {})},
        "files": {d.file: None, SPLIT: None, METRICS: None, **({ONNX_EXPORT: None} if d.onnx_export else {})},
    }
    metrics["build_seconds"] = round(time.time() - t0, 1)
    with open(os.path.join(out, METRICS), "w") as fh:
        json.dump(metrics, fh, indent=2)
        fh.write("\n")
    write_artifact(out, manifest, model.encoder, upper, lower, copies=model.copies)


def _jsonable(v):
    return v.item() if hasattr(v, "item") else v


__all__ = ["BuildResult", "build_artifact", "split_rows"]
