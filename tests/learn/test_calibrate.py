"""Clopper–Pearson bounds and fixed-sequence calibration."""

import numpy as np
import pytest
from scipy.stats import binom

from bnnembed.learn.calibrate import (Centers, PairScores, calibrate, clopper_pearson_upper, decided_needed,
                                min_decided_for)


@pytest.mark.parametrize("k,n", [(0, 10), (0, 300), (3, 100), (17, 2500), (50, 60)])
def test_clopper_pearson_is_the_exact_binomial_bound(k, n):
    ub = clopper_pearson_upper(k, n, 0.05)
    # at the bound, observing <= k has probability exactly delta
    assert binom.cdf(k, n, ub) == pytest.approx(0.05, abs=1e-9)


def test_zero_disagreements_bound_is_about_three_over_n():
    assert clopper_pearson_upper(0, 300, 0.05) == pytest.approx(3 / 300, rel=0.01)
    assert min_decided_for(0.01, 0.05) == 299
    assert clopper_pearson_upper(0, 299, 0.05) <= 0.01 < clopper_pearson_upper(0, 298, 0.05)


def test_decided_needed():
    n = decided_needed(0.005, 0.01, 0.05)
    assert clopper_pearson_upper(int(np.ceil(0.005 * n)), n, 0.05) <= 0.01
    assert decided_needed(0.02, 0.01, 0.05) is None


def _scores(rng, n, noise):
    dnn_yes = rng.random(n) < 0.4
    s_yes = np.clip(np.where(dnn_yes, 80, 20) + rng.normal(0, noise, n), 0, 100).astype(int)
    s_no = 100 - s_yes
    return PairScores(s_yes, s_no, dnn_yes)


def test_calibration_guarantee_holds_empirically():
    """Over many calibration draws the chosen margin's true rate exceeds alpha at most ~delta of the time."""
    rng = np.random.default_rng(0)
    centers = Centers(50, 50, 100)
    population = _scores(rng, 200_000, 22)
    failures = 0
    trials = 200
    for _ in range(trials):
        idx = rng.integers(0, len(population.dnn_yes), 600)
        cal = PairScores(population.yes[idx], population.no[idx], population.dnn_yes[idx])
        tr_idx = rng.integers(0, len(population.dnn_yes), 600)
        train = PairScores(population.yes[tr_idx], population.no[tr_idx], population.dnn_yes[tr_idx])
        res = calibrate(cal, train, centers, alpha=0.05, delta=0.1)
        if res.certified:
            yes = population.yes >= res.tau_yes
            no = population.no >= res.tau_no
            dec = yes ^ no
            wrong = (yes & ~no & ~population.dnn_yes) | (no & ~yes & population.dnn_yes)
            failures += wrong.sum() / dec.sum() > 0.05
    assert failures / trials <= 0.1 + 0.05


def test_too_small_calibration_says_how_many_points_it_needs():
    rng = np.random.default_rng(1)
    cal = _scores(rng, 40, 5)
    res = calibrate(cal, _scores(rng, 400, 5), Centers(50, 50, 100), alpha=0.01, delta=0.05)
    assert not res.certified
    assert any("at least 299" in n for n in res.notes)


def test_coverage_at_alpha_and_median_centers():
    """The best single threshold within alpha, cut only between distinct scores; centres at the
    median score of the rows each bound should answer."""
    from bnnembed.learn.calibrate import coverage_at_alpha, median_centers

    s = np.array([9, 9, 8, 7, 7, 3])
    ok = np.array([True, True, True, False, True, True])
    assert coverage_at_alpha(s, ok, 0.0) == pytest.approx(3 / 6)  # >= 8; cutting inside the 7s is not allowed
    assert coverage_at_alpha(s, ok, 0.2) == pytest.approx(1.0)  # 1 wrong in 6
    assert coverage_at_alpha(np.array([5]), np.array([False]), 0.1) == 0.0
    train = PairScores(np.array([30, 31, 31, 2]), np.array([1, 2, 3, 28]), np.array([True, True, True, False]))
    c = median_centers(train, 32)
    assert (c.yes, c.no, c.score_range) == (31, 28, 32)


def _stacked(groups):
    """PairScores from (count, upper score, lower score, dnn_yes) groups."""
    yes = np.concatenate([np.full(c, sy) for c, sy, _, _ in groups])
    no = np.concatenate([np.full(c, sn) for c, _, sn, _ in groups])
    dnn = np.concatenate([np.full(c, d) for c, _, _, d in groups])
    return PairScores(yes, no, dnn)


def test_fixed_sequence_stops_at_the_first_rejected_margin():
    """Margins are tested from the most conservative down and testing stops at the first whose
    bound exceeds alpha, even when a looser margin would pass again (testing on would spend the
    delta once per margin: the guarantee is for the sequence that stops)."""
    cal = _stacked([(300, 90, 0, True),   # decided from margin 40 down, right
                    (12, 80, 0, False),   # decided from margin 30 down, wrong
                    (3000, 70, 0, True)])  # decided from margin 20 down, right: the rate drops again
    centers = Centers(50, 50, 100)
    res = calibrate(cal, cal, centers, alpha=0.05, delta=0.05)
    assert res.certified and res.margin == 40 and (res.tau_yes, res.tau_no) == centers.taus(40)
    last = res.steps[-1]
    assert (last["margin"], last["decided"], last["disagreements"]) == (30, 312, 12) and last["bound"] > 0.05
    assert all(s["margin"] >= 30 for s in res.steps)  # nothing looser was tested
    # the looser margin would have passed on its own: only the stop keeps it out
    assert clopper_pearson_upper(12, 3312, 0.05) < 0.05


def test_start_margin_is_the_most_conservative_that_could_certify():
    from bnnembed.learn.calibrate import start_margin

    train = _stacked([(100, 90, 0, True), (900, 60, 0, True)])
    centers = Centers(50, 50, 100)
    # 2.5 x 59 decided of 2,000 calibration points: 7.4% coverage; margin 40 decides 10%
    assert min_decided_for(0.05, 0.05) == 59
    assert start_margin(train, centers, 2000, 0.05, 0.05) == 40
    # with 1,000 calibration points 14.75% is needed: only margin 10 (all 1,000 rows) reaches it
    assert start_margin(train, centers, 1000, 0.05, 0.05) == 10
    # the calibration split starts there and never tests a more conservative margin
    res = calibrate(train, train, centers, alpha=0.05, delta=0.05)
    assert res.steps[0]["margin"] == start_margin(train, centers, 1000, 0.05, 0.05)
