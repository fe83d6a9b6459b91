"""The row split, what calibration sees, the thermometer encoding's edge cases, decision ids."""

from __future__ import annotations

import hashlib
import os
import struct

import numpy as np
import pytest

import bnnembed.learn.bounds as bounds_mod
from bnnembed.artifact import load_artifact
from bnnembed.learn.build import build_artifact, split_rows
from bnnembed.learn.config import BuildConfig, config_of
from bnnembed.learn.data import load_data
from bnnembed.model.decision_id import decision_id, decision_ids
from bnnembed.model.encoding import fit_thermometer
from bnnembed.model.intmodel import bound_scores, invalid_rows


# ------------------------------------------------------------------------------- (a) the split


def _check_split(split: dict, yes: np.ndarray, cal_fraction: float, test_fraction: float) -> None:
    n = len(yes)
    parts = [np.asarray(split[k]) for k in ("train", "calibration", "test")]
    for p in parts:
        assert p.dtype.kind == "i" and len(np.unique(p)) == len(p) and p.min() >= 0 and p.max() < n
    train, cal, test = (set(p.tolist()) for p in parts)
    assert not train & cal and not train & test and not cal & test, "the splits overlap"
    assert train | cal | test == set(range(n)), "rows missing from the split"
    assert abs(len(parts[2]) - test_fraction * n) <= 2 and abs(len(parts[1]) - cal_fraction * n) <= 2
    # stratified: each part holds the yes share of the whole, to within a row or two
    share = yes.mean()
    for name, p in zip(("train", "calibration", "test"), parts):
        assert abs(int(yes[p].sum()) - share * len(p)) <= 2, (name, int(yes[p].sum()), share * len(p))


@pytest.mark.parametrize("source,positive", [("breast_cancer", None), ("digits", "5,6,7,8,9"), ("digits", None)])
@pytest.mark.parametrize("cfg", [BuildConfig(), BuildConfig(seed=3, cal_fraction=0.3, test_fraction=0.2)],
                         ids=["default", "seed3"])
def test_split_rows_disjoint_covering_stratified(source, positive, cfg):
    ds = load_data(source, positive=positive)
    split = split_rows(ds, cfg)
    _check_split(split, ds.y_yes(), cfg.cal_fraction, cfg.test_fraction)
    again = split_rows(ds, cfg)  # a fixed seed: the same rows every time
    assert all(np.array_equal(split[k], again[k]) for k in split)


def test_artifact_split_file_is_the_split(bc_artifact):
    """split.npz holds a disjoint, covering, stratified split, the one the recorded config gives,
    with the sizes metrics.json reports."""
    art = load_artifact(bc_artifact)
    ds = load_data("breast_cancer")
    with np.load(os.path.join(bc_artifact, "split.npz")) as z:
        split = {k: z[k] for k in z.files}
    assert set(split) == {"train", "calibration", "test"}
    cfg = config_of(art.metrics)
    _check_split(split, ds.y_yes(), cfg.cal_fraction, cfg.test_fraction)
    assert {k: len(v) for k, v in split.items()} == {k: art.metrics["split"][k] for k in split}
    want = split_rows(ds, cfg)
    assert all(np.array_equal(split[k], want[k]) for k in split)


# ------------------------------------------------------------- (b) calibration sees its split only


def _dnn_yes_direct(path: str, X: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(X, np.float32)})[0].reshape(len(X)) > 0


def test_calibration_uses_only_the_calibration_split(tmp_path, monkeypatch):
    """The scores and DNN answers calibrate() gets are those of exactly the calibration rows
    (recomputed here from the written artifact, the DNN run through onnxruntime); its reference
    set for the starting margin is the training split."""
    calls = []
    real = bounds_mod.calibrate

    def spy(cal, train, centers, alpha, delta):
        calls.append((cal, train))
        return real(cal, train, centers, alpha, delta)

    monkeypatch.setattr(bounds_mod, "calibrate", spy)
    ds = load_data("breast_cancer")
    out = str(tmp_path / "art")
    build_artifact(ds, out, BuildConfig(hidden=(8, 4), epochs=2, augment=1, baseline=False), progress=False)
    assert len(calls) == 1, "one bound pair, no baseline: calibrate runs once"
    cal, train = calls[0]
    with np.load(os.path.join(out, "split.npz")) as z:
        split = {k: z[k] for k in z.files}
    art = load_artifact(out)
    dnn_file = os.path.join(out, art.manifest["dnn"]["file"])
    for scores, rows in ((cal, split["calibration"]), (train, split["train"])):
        assert len(scores.dnn_yes) == len(scores.yes) == len(scores.no) == len(rows)
        X = ds.X[rows]
        np.testing.assert_array_equal(np.asarray(scores.dnn_yes, bool), _dnn_yes_direct(dnn_file, X))
        bits = art.encode(X)  # the scores do not depend on the last threshold, set after calibration
        np.testing.assert_array_equal(scores.yes, bound_scores(art.upper, bits))
        np.testing.assert_array_equal(scores.no, bound_scores(art.lower, bits))
    assert len(cal.dnn_yes) == art.metrics["split"]["calibration"] == len(split["calibration"]) > 0


# ---------------------------------------------------------------- (c) the thermometer encoding


def test_non_finite_values_encode_as_compares_give_them():
    """Today: bit k is float32(x) >= t_k, so +inf sets every bit of its feature, -inf none, and
    NaN none (every compare with NaN is false: NaN reads as "below every threshold"). The other
    features keep their bits. Such rows never reach the bounds: decide() calls them INVALID."""
    ds = load_data("breast_cancer")
    enc, dropped = fit_thermometer(ds.X, 4)
    assert dropped == []
    x = ds.X[:1].copy()
    base = enc.encode(x)[0]
    f = 3
    lo, hi = int(enc.offsets[f]), int(enc.offsets[f + 1])
    col = int(enc.feature_index[f])
    assert hi - lo == 4
    for value, want in ((np.inf, 1), (-np.inf, 0), (np.nan, 0)):
        row = x.copy()
        row[0, col] = value
        bits = enc.encode(row)[0]
        assert bits[lo:hi].tolist() == [want] * (hi - lo), (value, bits[lo:hi])
        assert np.array_equal(np.delete(bits, np.arange(lo, hi)), np.delete(base, np.arange(lo, hi)))
    art_X = np.repeat(x, 3, axis=0)
    art_X[:, col] = [np.inf, -np.inf, np.nan]
    assert invalid_rows(art_X).all()


def test_fit_thermometer_sparse_and_constant_features():
    """Quantile thresholds above the minimum, made distinct; a feature whose quantiles all sit at
    its minimum gets one threshold, the median of its distinct values above the minimum; a
    constant feature is dropped."""
    n = 100
    X = np.zeros((n, 4), np.float32)
    X[:, 0] = 3.0  # constant: dropped
    X[-5:, 1] = [1, 2, 3, 4, 5]  # 95 zeros: every quantile is the minimum -> median of {1..5} = 3
    X[:, 2] = np.arange(n) % 3  # three values: quantiles 0, 1, 1, 2 -> thresholds 1, 2
    X[:, 3] = np.arange(n)  # continuous
    enc, dropped = fit_thermometer(X, 4)
    assert dropped == [0]
    assert enc.feature_index.tolist() == [1, 2, 3] and enc.n_features == 4
    # 'higher' quantiles at k/5: the element of rank ceil(q * (n - 1)) in sorted order
    s3 = np.sort(X[:, 3])
    q3 = [float(s3[int(np.ceil(k / 5 * (n - 1)))]) for k in range(1, 5)]
    assert q3 == [20.0, 40.0, 60.0, 80.0]
    assert enc.feature_thresholds(0).tolist() == [3.0]
    assert enc.feature_thresholds(1).tolist() == [1.0, 2.0]
    assert enc.feature_thresholds(2).tolist() == q3
    assert enc.offsets.tolist() == [0, 1, 3, 7]
    # a value at a threshold sets its bit (>=); the sparse feature separates 0..2 from 3..5
    probe = np.array([[3, 0, 0, 0], [3, 2.99, 1, 20], [3, 3, 2, 79.9], [3, 5, 7, 1e9]], np.float32)
    assert enc.encode(probe).tolist() == [[0, 0, 0, 0, 0, 0, 0], [0, 1, 0, 1, 0, 0, 0],
                                          [1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1, 1]]
    # every column constant: nothing is kept
    enc0, dropped0 = fit_thermometer(np.ones((10, 2), np.float32), 3)
    assert dropped0 == [0, 1] and enc0.n_bits == 0


# ------------------------------------------------------------------------------ (d) decision ids


def _expected_id(model_hash: str, bits) -> str:
    """The docstring's recipe by hand: SHA-256 of the model hash's ASCII text, then the bits
    packed LSB first into little-endian uint32 words (padding 0), first 16 hex digits."""
    bits = [int(b) for b in bits]
    words = []
    for start in range(0, len(bits), 32):
        chunk = bits[start : start + 32]
        words.append(sum(b << i for i, b in enumerate(chunk)))
    data = model_hash.encode("ascii") + struct.pack(f"<{len(words)}I", *words)
    return hashlib.sha256(data).hexdigest()[:16]


def test_decision_id_known_answer():
    model_hash = "0123456789abcdef"
    bits = np.array([(i * 7 + 3) % 5 < 2 for i in range(40)], np.uint8)  # 40 bits: two words, padded
    did = decision_id(model_hash, bits)
    assert did == _expected_id(model_hash, bits)
    assert did == "0470900f22f6a837"  # words 0xa5294a52, 0x00000094
    # the all-zero input of one full word
    assert decision_id("ffffffffffffffff", np.zeros(32, np.uint8)) == _expected_id("ffffffffffffffff", [0] * 32)
    # one flipped bit, or another model, changes the id; rows are handled one by one
    flipped = bits.copy()
    flipped[39] ^= 1
    assert decision_id(model_hash, flipped) != did and decision_id("0123456789abcdee", bits) != did
    assert decision_ids(model_hash, np.stack([bits, flipped])) == [did, decision_id(model_hash, flipped)]


def test_decision_id_of_an_artifact_row(bc_artifact):
    art = load_artifact(bc_artifact)
    x = load_data("breast_cancer").X[:3]
    bits = art.encode(x)
    for row in bits:
        assert decision_id(art.model_hash, row) == _expected_id(art.model_hash, row)
