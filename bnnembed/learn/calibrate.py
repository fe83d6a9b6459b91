"""Calibration with a guarantee: fixed-sequence testing of Clopper–Pearson bounds over a margin grid.

Both bounds are thresholded relative to their own centre (its median score over the training rows
where its answer is right, :func:`median_centers`): at margin ``m`` the upper bound answers yes iff ``score_yes >= c_yes + m``
and the lower bound answers no iff ``score_no >= c_no + m``. The grid of margins is the integers
from ``+n`` (nothing decided) down to ``-n``; it, the centres and the starting point are fixed from
the training split before the calibration split is looked at.

Algorithm (fixed-sequence testing, family-wise error ``delta``)::

    for m in grid starting at start:            # from conservative to liberal
        k, n = disagreements, decided inputs on the calibration split at margin m
        if ClopperPearsonUpper(k, n, 1 - delta) <= alpha: accept m
        else: stop
    choose, among the accepted margins, the one deciding the most calibration inputs
    (none accepted: the bounds never answer)

Each test is the exact binomial test of "the disagreement rate of decided inputs at margin m
exceeds alpha" (conditionally on the decided count), so with probability >= 1 - delta every
accepted margin, the chosen one included, has a true conditional disagreement rate <= alpha.
Because the guarantee holds for all accepted margins at once, choosing among them by coverage
keeps it. (Coverage is not monotone in the margin: far past the centres both bounds answer and
the pair says unknown, which is why the last accepted margin is not always the best one.)

The start is the most conservative margin at which the *training* split already decides enough
inputs that a calibration split of this size could certify alpha (``2.5 x`` the zero-error
minimum, at most half the training inputs but never below ``1.5 x``; see :func:`start_margin`),
so the sequence does not stop on a margin that decides almost nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import beta as beta_dist

from ..model.intmodel import Decision, combine


def clopper_pearson_upper(k: int, n: int, delta: float) -> float:
    """One-sided Clopper–Pearson upper confidence bound at level ``1 - delta`` for ``k/n``."""
    if n <= 0 or k >= n:
        return 1.0
    return float(beta_dist.ppf(1.0 - delta, k + 1, n - k))


def min_decided_for(alpha: float, delta: float) -> int:
    """Smallest number of decided inputs that certifies ``alpha`` with zero disagreements."""
    return int(math.ceil(math.log(delta) / math.log(1.0 - alpha)))


def decided_needed(rate: float, alpha: float, delta: float, limit: int = 10_000_000) -> int | None:
    """Decided inputs needed to certify ``alpha`` if disagreements keep occurring at ``rate``."""
    if rate >= alpha:
        return None
    n = min_decided_for(alpha, delta)
    while n <= limit:
        if clopper_pearson_upper(int(math.ceil(rate * n)), n, delta) <= alpha:
            return n
        n = int(n * 1.05) + 1
    return None


@dataclass(frozen=True)
class PairScores:
    """Scores of both bounds on one split, with the DNN's decisions."""

    yes: np.ndarray  # upper-bound scores
    no: np.ndarray  # lower-bound scores
    dnn_yes: np.ndarray


@dataclass(frozen=True)
class Centers:
    yes: int
    no: int
    score_range: int  # n of the output layer (same for both bounds)

    def taus(self, margin: int) -> tuple[int, int]:
        hi = self.score_range + 1
        return (int(np.clip(self.yes + margin, 0, hi)), int(np.clip(self.no + margin, 0, hi)))


def coverage_at_alpha(scores: np.ndarray, correct: np.ndarray, alpha: float) -> float:
    """Largest share of inputs one score threshold can answer with at most ``alpha`` wrong
    answers among them (0 when none can)."""
    s = np.asarray(scores)
    ok = np.asarray(correct, bool)
    order = np.argsort(-s, kind="stable")
    s, ok = s[order], ok[order]
    n = np.arange(1, len(s) + 1)
    last = np.r_[s[1:] != s[:-1], True]  # cut only between distinct scores
    good = last & (np.cumsum(~ok) <= alpha * n)
    return float(n[good].max() / len(s)) if good.any() else 0.0


def median_centers(train: PairScores, score_range: int) -> Centers:
    """Centres at each bound's median score over the training rows where its answer is right
    (the build guarantees the DNN says both yes and no on the training rows).

    A bound's logit-0 point is a poor origin when scores saturate (measured: a digits 5..9 upper
    bound whose DNN-yes rows nearly all score 31 of 32 had its logit-0 point at 22, so the shared
    margin that suited the lower bound put the upper's threshold past 32 and it answered
    nothing). At the median both bounds answer half of the rows they should, so one margin
    moves both from comparable places. Training data only, so the calibration split's guarantee
    is untouched."""
    dnn_yes = np.asarray(train.dnn_yes, bool)
    return Centers(int(np.floor(np.median(train.yes[dnn_yes]))), int(np.floor(np.median(train.no[~dnn_yes]))),
                   score_range)


def decisions_at(scores: PairScores, centers: Centers, margin: int) -> np.ndarray:
    t_yes, t_no = centers.taus(margin)
    return combine(scores.yes >= t_yes, scores.no >= t_no)


def disagreements(dec: np.ndarray, dnn_yes: np.ndarray) -> tuple[int, int]:
    """(disagreements, decided) of three-way decisions against the DNN."""
    decided = dec != int(Decision.UNKNOWN)
    wrong = decided & ((dec == int(Decision.YES)) != np.asarray(dnn_yes, bool))
    return int(wrong.sum()), int(decided.sum())


@dataclass
class Calibration:
    """The outcome of calibration and the record that justifies it."""

    alpha: float
    delta: float
    margin: int | None  # None: nothing certified, the bounds never answer
    tau_yes: int
    tau_no: int
    start_margin: int
    steps: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def certified(self) -> bool:
        return self.margin is not None

    def to_dict(self) -> dict:
        return {
            "method": "fixed-sequence testing over a margin grid, one-sided Clopper-Pearson",
            "alpha": self.alpha,
            "delta": self.delta,
            "certified": self.certified,
            "margin": self.margin,
            "tau_yes": self.tau_yes,
            "tau_no": self.tau_no,
            "start_margin": self.start_margin,
            "steps": self.steps,
            "notes": self.notes,
        }


START_FACTOR = 2.5  # times the zero-disagreement minimum of decided calibration inputs
START_CAP = 0.5  # ... but not past half the training inputs decided
START_FLOOR = 1.5  # ... and never below 1.5x the minimum (the cap must not start where too few decide)


def start_margin(train: PairScores, centers: Centers, n_cal: int, alpha: float, delta: float) -> int:
    """Most conservative margin whose training coverage could certify alpha on n_cal points.

    The training split decides more than the calibration split at the same margin (the bounds
    were trained on it), most of all at the conservative end: with a factor of 1.5, MNIST bounds
    distilled with the DNN's margin started at 3.5% training coverage, decided 55 of 2,500
    calibration inputs there (59 are needed with no disagreement) and certified nothing at 5%.
    Hence :data:`START_FACTOR`; :data:`START_CAP` keeps the start conservative on mid-sized
    calibration splits, where the factor alone would ask for nearly every input decided, but never
    below :data:`START_FLOOR` times the minimum, since on a split of fewer than about twice the
    minimum a start at half the inputs could not certify even with no disagreement."""
    least = min_decided_for(alpha, delta) / max(n_cal, 1)
    need = min(1.0, max(min(START_CAP, START_FACTOR * least), START_FLOOR * least))
    n = centers.score_range
    for m in range(n, -n - 1, -1):
        dec = decisions_at(train, centers, m)
        if np.mean(dec != int(Decision.UNKNOWN)) >= need:
            return m
    return -n


def calibrate(cal: PairScores, train: PairScores, centers: Centers, alpha: float, delta: float) -> Calibration:
    """Choose the margin by fixed-sequence testing (see the module docstring)."""
    n_cal = len(cal.dnn_yes)
    m0 = start_margin(train, centers, n_cal, alpha, delta)
    never = centers.score_range + 1
    result = Calibration(alpha, delta, None, never, never, m0)
    best = -1
    for m in range(m0, -centers.score_range - 1, -1):
        k, n = disagreements(decisions_at(cal, centers, m), cal.dnn_yes)
        bound = clopper_pearson_upper(k, n, delta)
        result.steps.append({"margin": m, "decided": n, "disagreements": k, "bound": round(bound, 6)})
        if bound > alpha:
            break
        if n > best:
            best = n
            result.margin = m
            result.tau_yes, result.tau_no = centers.taus(m)
    floor = clopper_pearson_upper(0, n_cal, delta)
    if floor > alpha:
        need = min_decided_for(alpha, delta)
        result.notes.append(
            f"the calibration split has {n_cal} points: even with every point decided and no "
            f"disagreement its bound is {floor:.2%} > alpha={alpha:.2%}; certifying alpha needs at "
            f"least {need} decided calibration points"
        )
    if not result.certified:
        first = result.steps[0] if result.steps else {"decided": 0, "disagreements": 0}
        rate = first["disagreements"] / first["decided"] if first["decided"] else 0.0
        cov = first["decided"] / max(n_cal, 1)
        needed = decided_needed(rate, alpha, delta)
        if needed is None:
            result.notes.append(
                f"not certified: the bounds disagree with the DNN on {rate:.2%} of decided calibration "
                f"inputs at the first margin, at or above alpha={alpha:.2%}; no calibration size can "
                "certify it (train longer, use more distillation data, or raise --alpha)"
            )
        else:
            total = int(math.ceil(needed / max(cov, 1e-9)))
            result.notes.append(
                f"not certified at alpha={alpha:.2%}: {first['decided']} decided calibration inputs with "
                f"{first['disagreements']} disagreement(s) are too few; about {needed} decided inputs "
                f"(~{total} calibration points at this coverage) would be needed; the bounds answer nothing"
            )
    return result


def side_curve(scores: np.ndarray, answer_agrees: np.ndarray, score_range: int, delta: float) -> dict:
    """Risk–coverage curve of one bound over every integer threshold (for plots)."""
    taus = np.arange(score_range + 1, -1, -1)
    cov, rate, bound = [], [], []
    n = len(scores)
    for t in taus:
        ans = scores >= t
        d = int(ans.sum())
        k = int((ans & ~answer_agrees).sum())
        cov.append(d / n if n else 0.0)
        rate.append(k / d if d else 0.0)
        bound.append(clopper_pearson_upper(k, d, delta))
    return {"tau": taus.tolist(), "coverage": cov, "disagreement_rate": rate, "bound": bound}


def pair_curve(scores: PairScores, centers: Centers, delta: float) -> dict:
    """Risk–coverage curve of the pair over the margin grid (what calibration walks along)."""
    n = centers.score_range
    margins = list(range(n, -n - 1, -1))
    cov, rate, bound, taus = [], [], [], []
    for m in margins:
        k, d = disagreements(decisions_at(scores, centers, m), scores.dnn_yes)
        cov.append(d / len(scores.dnn_yes))
        rate.append(k / d if d else 0.0)
        bound.append(clopper_pearson_upper(k, d, delta))
        taus.append(m)
    return {"tau": taus, "coverage": cov, "disagreement_rate": rate, "bound": bound}
