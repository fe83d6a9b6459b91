"""The one-network baseline is calibrated the same way as the pair: its margin grid is centred at
its median scores on the training rows each side should answer, not at the network's logit-0
point. With the logit-0 centre, a network whose two sides saturate at different distances from it
had its no side swept into its dense scores before the yes side answered anything, and the fixed
sequence stopped there (digits 5..9, seed 0: 38.9% coverage, no yes answer at all)."""

from __future__ import annotations

import math

import numpy as np
import torch

from bnnembed.learn.bounds import baseline_result
from bnnembed.learn.build import _Dnn, _FitSet
from bnnembed.learn.calibrate import PairScores, calibrate, median_centers
from bnnembed.learn.config import BuildConfig
from bnnembed.learn.train import BoundMLP

N = 32  # input bits, read directly by the output neuron: score = number of zero bits


def _rows(scores: list[int]) -> np.ndarray:
    """One row per score: ``N - s`` one bits, so the score is ``s``."""
    return np.array([[1] * (N - s) + [0] * s for s in scores], dtype=np.uint8)


def _model(center: float) -> BoundMLP:
    """No hidden layer, all output weights +1, logit 0 at score ``center``."""
    model = BoundMLP(N, ())
    with torch.no_grad():
        model.out.weight.fill_(1.0)
        model.log_scale.fill_(math.log(4.0))
        model.bias.fill_(-(2 * center - N) * 4.0 / N)
    assert math.isclose(model.center(), center)
    return model


def test_baseline_centres_at_its_median_scores_not_its_logit_zero_point():
    # DNN-yes rows score 28 (yes side), DNN-no rows score 4 (no side: 32 - 4 = 28): both sides
    # saturate at 28, but the logit-0 point 17.5 puts the centres at 18 and 15. The calibration
    # split also has DNN-yes rows at score 5, which the no side answers (wrongly) from 27 down.
    model = _model(17.5)
    train = [28] * 100 + [4] * 100
    cal = [28] * 100 + [4] * 100 + [5] * 10
    test = [28] * 100 + [4] * 100
    yes = {"train": np.array([s > 16 or s == 5 for s in train]),
           "calibration": np.array([s > 16 or s == 5 for s in cal]),
           "test": np.array([s > 16 for s in test])}
    bits = {"train": _rows(train), "calibration": _rows(cal), "test": _rows(test)}
    fit = _FitSet(encoder=None, dropped=[], bits_per_feature=1, augment=0, n_aug=0, n_extra=0,
                  bits_fit=bits["train"], y_fit=yes["train"], bits=bits)
    d = _Dnn(dnn=None, file="", origin="default", onnx_export=None, yes=yes, accuracy=1.0)
    cfg = BuildConfig()
    curves = {"pair": {}, "upper": {}, "lower": {}}
    block, agreement = baseline_result(model, N, fit, d, cfg, curves, {})

    # calibrated as the pair is: centres from the training medians (28 and 28)
    train_scores = PairScores(np.array(train), N - np.array(train), yes["train"])
    cal_scores = PairScores(np.array(cal), N - np.array(cal), yes["calibration"])
    centers = median_centers(train_scores, N)
    assert (centers.yes, centers.no) == (28, 28)
    want = calibrate(cal_scores, train_scores, centers, cfg.alpha, cfg.delta)
    assert want.certified
    got = block["calibration"]
    assert (got["margin"], got["tau_yes"], got["tau_no"]) == (want.margin, want.tau_yes, want.tau_no)
    # both sides answer: every test row is decided, none wrongly
    assert block["coverage_yes"] == 0.5 and block["coverage_no"] == 0.5
    assert block["disagreements"] == 0
    # the plain agreement still reads the network at its own decision boundary (score >= 18)
    assert agreement == 1.0
