"""The interval engine over level boxes is sound: on random boxes of a real bound, every input
of the box has a first-layer count and a score inside the ranges it gives, and a box it calls
certain is decided that way on every input enumerated."""

from __future__ import annotations

import itertools

import numpy as np

from bnnembed.artifact import load_artifact
from bnnembed.model.intervals import LevelBoxes
from bnnembed.model.intmodel import bound_answers, bound_scores


def test_score_range_and_certainty_are_sound(bc_artifact):
    art = load_artifact(bc_artifact)
    enc = art.encoder
    K = np.diff(enc.offsets)
    rng = np.random.default_rng(0)
    checked = certain = 0
    for bound in (art.upper, art.lower):
        boxes = LevelBoxes(bound, enc)
        for _ in range(60):
            center = rng.integers(0, K + 1)
            free = rng.choice(enc.n_kept, int(rng.integers(1, 4)), replace=False)
            lo, hi = center.copy(), center.copy()
            lo[free] = rng.integers(0, K[free] + 1)
            hi[free] = [int(rng.integers(a, k + 1)) for a, k in zip(lo[free], K[free])]
            grid = np.array(list(itertools.product(*[range(int(a), int(b) + 1) for a, b in zip(lo, hi)])))
            bits = enc.bits_from_levels(grid)
            s = bound_scores(bound, bits)
            s_lo, s_hi, _ = boxes.score_range(lo, hi)
            assert s_lo <= s.min() and s.max() <= s_hi
            ranges = {int(f): (int(lo[f]), int(hi[f])) for f in range(enc.n_kept)}
            answers = bound_answers(bound, bits)
            for want in (True, False):
                if boxes.entails(ranges, want):
                    certain += 1
                    assert (answers == want).all()
            checked += len(grid)
    assert checked > 1000 and certain > 0
