"""Calibration, pinned down for mutation testing: closed forms of the Clopper–Pearson bound,
hand-counted decisions and disagreements, the clipped thresholds, the choice among accepted
margins, the explanatory notes, and the risk–coverage curves on inputs small enough to count."""

import math

import numpy as np
import pytest
from scipy.stats import binom

from bnnembed.learn.calibrate import (Calibration, Centers, PairScores, calibrate, clopper_pearson_upper,
                                      coverage_at_alpha, decided_needed, decisions_at, disagreements,
                                      median_centers, min_decided_for, pair_curve, side_curve, start_margin)


def _stacked(groups):
    """PairScores from (count, upper score, lower score, dnn_yes) groups."""
    yes = np.concatenate([np.full(c, sy) for c, sy, _, _ in groups])
    no = np.concatenate([np.full(c, sn) for c, _, sn, _ in groups])
    dnn = np.concatenate([np.full(c, d, bool) for c, _, _, d in groups])
    return PairScores(yes, no, dnn)


def test_clopper_pearson_closed_forms_and_edges():
    # k = 0: the bound solves (1 - p)^n = delta
    for n in (1, 10, 299):
        assert clopper_pearson_upper(0, n, 0.05) == pytest.approx(1 - 0.05 ** (1 / n), rel=1e-9)
    # k = n - 1: the bound solves 1 - p^n = delta
    assert clopper_pearson_upper(4, 5, 0.1) == pytest.approx(0.9 ** (1 / 5), rel=1e-9)
    assert binom.cdf(2, 7, clopper_pearson_upper(2, 7, 0.2)) == pytest.approx(0.2, abs=1e-9)
    for k, n in ((0, 0), (3, 3), (4, 3), (0, -1)):
        assert clopper_pearson_upper(k, n, 0.05) == 1.0
    assert type(clopper_pearson_upper(1, 9, 0.05)) is float


def test_min_decided_for_and_decided_needed():
    assert (min_decided_for(0.05, 0.05), min_decided_for(0.5, 0.2), min_decided_for(0.01, 0.05)) == (59, 3, 299)
    assert decided_needed(0.0, 0.05, 0.05) == 59
    assert decided_needed(0.05, 0.05, 0.05) is None and decided_needed(0.06, 0.05, 0.05) is None
    assert decided_needed(0.049, 0.05, 0.05, limit=5000) is None  # would need far more than 5,000
    assert decided_needed(0.0, 0.05, 0.05, limit=59) == 59 and decided_needed(0.0, 0.05, 0.05, limit=58) is None

    def passes(m, rate):
        return clopper_pearson_upper(math.ceil(rate * m), m, 0.05) <= 0.01

    for rate in (0.002, 0.005):
        n = decided_needed(rate, 0.01, 0.05)
        smallest = next(m for m in range(299, 100_000) if passes(m, rate))
        assert passes(n, rate) and smallest <= n <= 1.2 * smallest, (rate, n, smallest)


def test_center_thresholds_are_clipped_to_the_score_range():
    c = Centers(5, 7, 10)
    assert c.taus(0) == (5, 7) and c.taus(4) == (9, 11) and c.taus(10) == (11, 11)
    assert c.taus(-6) == (0, 1) and c.taus(-20) == (0, 0)
    assert all(type(t) is int for t in c.taus(1))


def test_coverage_at_alpha_counts_from_the_top_score():
    s = np.array([0, 3, 1, 2])  # unsorted; from the top: 3 ok, 2 wrong, 1 ok, 0 ok
    ok = np.array([True, True, True, False])
    assert coverage_at_alpha(s, ok, 0.25) == 1.0  # 1 wrong of 4 is exactly alpha
    assert coverage_at_alpha(s, ok, 0.24) == 0.25  # only the top row
    assert coverage_at_alpha(s, ~ok, 0.0) == 0.0
    assert coverage_at_alpha(np.array([2, 2, 1]), np.array([True, False, True]), 0.5) == 1.0
    # no cut inside the tied 3s, and 0/1 integers read as booleans
    assert coverage_at_alpha(np.array([5, 3, 3]), np.array([1, 1, 0]), 0.0) == pytest.approx(1 / 3)


def test_median_centers_floor_the_median_of_the_right_rows():
    train = PairScores(np.array([1, 2, 30, 30, 9]), np.array([40, 40, 0, 0, 3]),
                       np.array([True, True, False, False, False]))
    c = median_centers(train, 50)
    assert (c.yes, c.no, c.score_range) == (1, 0, 50)  # median(1, 2) = 1.5 -> 1; median(0, 0, 3) = 0
    assert type(c.yes) is int and type(c.no) is int
    as_ints = PairScores(train.yes, train.no, train.dnn_yes.astype(int))
    assert median_centers(as_ints, 50) == c


def test_decisions_and_disagreements_by_hand():
    scores = PairScores(np.array([6, 6, 2, 9, 3]), np.array([1, 8, 8, 9, 2]), np.array([True, True, False, False, True]))
    c = Centers(4, 5, 10)
    # margin 1: yes iff upper >= 5, no iff lower >= 6
    dec = decisions_at(scores, c, 1)
    assert dec.tolist() == [1, 2, 0, 2, 2]
    assert disagreements(dec, scores.dnn_yes) == (0, 2)
    dec = decisions_at(scores, c, -2)  # yes iff upper >= 2, no iff lower >= 3: everything both but row 0
    assert dec.tolist() == [1, 2, 2, 2, 1]
    assert disagreements(np.array([1, 0, 2, 1, 0]), np.array([True, True, False, False, False])) == (2, 4)
    assert all(type(v) is int for v in disagreements(dec, scores.dnn_yes))


def test_calibrate_picks_the_accepted_margin_deciding_most_and_records_every_step():
    # centres 50: the upper answers yes iff its score >= 50 + m, the lower no iff its score >= 50 + m
    cal = _stacked([(100, 90, 0, True),  # YES for margins 40..-49
                    (100, 70, 0, True),  # YES for 20..-49
                    (100, 0, 75, False)])  # NO for 25..-49; from -50 down both bounds answer everyone
    centers = Centers(50, 50, 100)
    res = calibrate(cal, cal, centers, alpha=0.05, delta=0.05)
    assert res.start_margin == 25  # 200 of 300 decided >= 2.5 x 59 / 300 (100 of 300 at 40..26 is not)
    # decided: 200 at 25..21, 300 at 20..-49 (first reached at 20), 0 at -50: stop
    assert res.certified and res.margin == 20 and (res.tau_yes, res.tau_no) == (70, 70)
    assert res.steps[0] == {"margin": 25, "decided": 200, "disagreements": 0,
                            "bound": round(clopper_pearson_upper(0, 200, 0.05), 6)}
    assert [s["margin"] for s in res.steps] == list(range(25, -51, -1))
    assert [s["decided"] for s in res.steps[4:6]] == [200, 300] and res.steps[-1]["bound"] == 1.0
    assert res.notes == []
    # ties keep the most conservative margin
    flat = _stacked([(200, 90, 0, True), (10, 0, 0, False)])  # 200 decided from 40 to -49
    res = calibrate(flat, flat, centers, alpha=0.05, delta=0.05)
    assert res.margin == 40 and res.steps[0]["decided"] == 200
    assert (res.alpha, res.delta) == (0.05, 0.05)
    # every margin accepted: the sequence runs down to -score_range, bounds kept to 6 digits
    allright = _stacked([(150, 2, 0, True)])
    res = calibrate(allright, allright, Centers(0, 5, 2), alpha=0.05, delta=0.05)
    cp = clopper_pearson_upper(0, 150, 0.05)
    assert round(cp, 6) != round(cp, 7)
    assert [s["margin"] for s in res.steps] == [2, 1, 0, -1, -2] and res.margin == 2
    assert all(s["bound"] == round(cp, 6) for s in res.steps) and res.notes == []
    # 60 points certify 5% at zero disagreements (59 needed): no note
    sixty = _stacked([(60, 90, 0, True)])
    assert calibrate(sixty, sixty, centers, alpha=0.05, delta=0.05).notes == []


def test_calibration_record():
    res = Calibration(0.05, 0.1, None, 11, 11, 3, steps=[{"margin": 3}], notes=["n"])
    assert not res.certified
    assert res.to_dict() == {"method": "fixed-sequence testing over a margin grid, one-sided Clopper-Pearson",
                             "alpha": 0.05, "delta": 0.1, "certified": False, "margin": None, "tau_yes": 11,
                             "tau_no": 11, "start_margin": 3, "steps": [{"margin": 3}], "notes": ["n"]}
    assert Calibration(0.05, 0.1, 0, 1, 2, 3).certified and Calibration(0.05, 0.1, 0, 1, 2, 3).steps == []


def test_uncertified_bounds_never_answer_and_say_why():
    centers = Centers(50, 50, 100)
    # 20% disagreement at every margin: no size can certify alpha = 5%
    bad = _stacked([(80, 90, 0, True), (20, 90, 0, False)])
    res = calibrate(bad, bad, centers, alpha=0.05, delta=0.05)
    assert not res.certified and (res.margin, res.tau_yes, res.tau_no) == (None, 101, 101)
    assert len(res.steps) == 1 and res.steps[0]["disagreements"] == 20
    assert len(res.notes) == 1 and "20.00% of decided" in res.notes[0] and "no calibration size" in res.notes[0]
    assert res.notes[0].endswith("(train longer, use more distillation data, or raise --alpha)")
    # 2% disagreement on 100 decided (bound 6.2% > 5%): more decided inputs would certify it
    few = _stacked([(98, 90, 0, True), (2, 90, 0, False)])
    res = calibrate(few, few, centers, alpha=0.05, delta=0.05)
    need = decided_needed(0.02, 0.05, 0.05)
    assert not res.certified and len(res.notes) == 1 and len(res.steps) == 1
    assert "100 decided calibration inputs with 2 disagreement(s)" in res.notes[0]
    assert f"about {need} decided inputs (~{need} calibration points" in res.notes[0]
    # a split too small for alpha even with no disagreement
    tiny = _stacked([(30, 90, 0, True)])
    res = calibrate(tiny, tiny, centers, alpha=0.05, delta=0.05)
    assert not res.certified and "has 30 points" in res.notes[0] and "at least 59 decided" in res.notes[0]
    assert "0 disagreement(s)" in res.notes[1] and "about 59 decided inputs (~59" in res.notes[1]
    # nothing decided at the first margin: zero coverage, a rate of 0
    nothing = _stacked([(100, 0, 0, True)])
    res = calibrate(nothing, nothing, centers, alpha=0.05, delta=0.05)
    assert res.start_margin == -100 and res.steps[0]["decided"] == 0
    assert "0 decided calibration inputs with 0 disagreement(s)" in res.notes[0]
    assert "about 59 decided inputs (~59000000000 calibration points" in res.notes[0]
    # one calibration point, decided: 100% coverage
    one = _stacked([(1, 90, 0, True)])
    res = calibrate(one, one, centers, alpha=0.05, delta=0.05)
    assert "1 decided calibration inputs" in res.notes[1] and "about 59 decided inputs (~59 calibration" in res.notes[1]


def test_start_margin_when_nothing_decides_enough():
    train = _stacked([(10, 60, 0, True), (90, 0, 0, False)])  # at most 10% decided (margins 10..-49)
    assert start_margin(train, Centers(50, 50, 100), 800, 0.05, 0.05) == -100  # 2.5 x 59 / 800 > 10%
    assert start_margin(train, Centers(50, 50, 100), 10_000, 0.05, 0.05) == 10  # 1.5% needed
    assert start_margin(train, Centers(50, 50, 100), 0, 0.05, 0.05) == -100  # need capped at 100%
    # a mid-sized calibration split: the need (2.5 x 59 / 200) is capped at half the training inputs,
    # a small one keeps 1.5 x 59 / 100 (the cap would start where too few decide)
    half = _stacked([(60, 90, 0, True), (40, 0, 0, False)])  # 60% decided from margin 40 down
    assert start_margin(half, Centers(50, 50, 100), 200, 0.05, 0.05) == 40
    assert start_margin(half, Centers(50, 50, 100), 100, 0.05, 0.05) == -100
    assert start_margin(half, Centers(50, 50, 100), 10_000, 0.05, 0.05) == 40
    # score range 2: the upper bound answers every row from margin -1 down, the lower never
    everyone = _stacked([(5, 0, 0, True)])
    for n_cal in (1, 5, 1000):  # a need above 100% is capped: deciding every row is enough
        assert start_margin(everyone, Centers(1, 5, 2), n_cal, 0.05, 0.05) == -1


def test_side_and_pair_curves_by_hand():
    curve = side_curve(np.array([0, 1, 2, 2]), np.array([True, False, True, True]), 2, 0.05)
    assert curve["tau"] == [3, 2, 1, 0]
    assert curve["coverage"] == [0.0, 0.5, 0.75, 1.0]
    assert curve["disagreement_rate"] == [0.0, 0.0, 1 / 3, 0.25]
    assert curve["bound"] == [1.0, clopper_pearson_upper(0, 2, 0.05), clopper_pearson_upper(1, 3, 0.05),
                              clopper_pearson_upper(1, 4, 0.05)]
    assert side_curve(np.array([], int), np.array([], bool), 1, 0.05)["coverage"] == [0.0, 0.0, 0.0]
    scores = PairScores(np.array([2, 0]), np.array([0, 2]), np.array([True, True]))
    pc = pair_curve(scores, Centers(1, 1, 2), 0.05)
    # margins 2..-2: thresholds 3, 2, 1, 0, 0 for both bounds
    assert pc["tau"] == [2, 1, 0, -1, -2]
    assert pc["coverage"] == [0.0, 1.0, 1.0, 0.0, 0.0]
    assert pc["disagreement_rate"] == [0.0, 0.5, 0.5, 0.0, 0.0]
    assert pc["bound"][0] == 1.0 and pc["bound"][1] == clopper_pearson_upper(1, 2, 0.05)
    right = PairScores(np.array([2, 0]), np.array([0, 2]), np.array([True, False]))
    assert pair_curve(right, Centers(1, 1, 2), 0.05)["disagreement_rate"] == [0.0] * 5


def test_a_small_calibration_split_in_full_agreement_certifies():
    """100 calibration rows, all agreeing, spread over the yes scores: the start must decide at least
    the zero-disagreement minimum (59), or the first test fails and nothing is certified."""
    s = np.repeat(np.arange(51, 101), 2)
    scores = PairScores(s, np.zeros(100, int), np.ones(100, bool))
    res = calibrate(scores, scores, Centers(50, 50, 100), alpha=0.05, delta=0.05)
    assert res.steps[0]["decided"] >= min_decided_for(0.05, 0.05)
    assert res.certified and res.steps[0]["disagreements"] == 0
