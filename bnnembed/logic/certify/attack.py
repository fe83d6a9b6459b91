"""Searching a box for inputs where the DNN runtime contradicts a claim.

:func:`attack` runs projected sign-gradient steps on the exact piecewise-linear model from the
box centre, an optional start point and random points, minimising the claim's slack
(:func:`_grad_slack`); :func:`to_float32_in_box` rounds candidates to float32 inputs that stay
inside the box (below ``hi`` on half-open sides) and :func:`replay` runs them through the
runtime: only a point where the runtime itself disagrees refutes a claim.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .claims import Sides, _scores, runtime_says
from .plnet import PlNet

if TYPE_CHECKING:
    from .dnn_milp import VerifyConfig


def _grad_slack(net: PlNet, X: np.ndarray, sides: Sides, claim: str) -> tuple[np.ndarray, np.ndarray]:
    """Claim slack (see :func:`claim_margin`) and its gradient w.r.t. the input, per row."""
    masks = []
    h = X
    for k, (W, bias) in enumerate(net.layers):
        z = h @ W.T + bias
        if k < len(net.layers) - 1:
            masks.append(z > 0)
            h = np.maximum(z, 0)
        else:
            h = z
    s = _scores(h, sides)
    B, A = sides.split(claim)
    diffs = s[:, list(B)][:, :, None] - s[:, list(A)][:, None, :]
    inner = diffs.argmin(2)  # (n, |B|)
    mins = diffs.min(2)
    bi = mins.argmax(1)
    ai = inner[np.arange(len(X)), bi]
    g = np.zeros((len(X), s.shape[1]))
    g[np.arange(len(X)), np.array(B)[bi]] += 1.0
    g[np.arange(len(X)), np.array(A)[ai]] -= 1.0
    g = g[:, : net.n_out]
    for k in range(len(net.layers) - 1, -1, -1):
        W, _ = net.layers[k]
        g = g @ W
        if k > 0:
            g = g * masks[k - 1]
    return mins.max(1), g


def attack(net: PlNet, lo: np.ndarray, hi: np.ndarray, sides: Sides, claim: str, cfg: VerifyConfig,
           start: np.ndarray | None = None) -> np.ndarray:
    """Candidate inputs of the box that minimise the claim's slack (projected sign-gradient)."""
    rng = np.random.default_rng(cfg.seed)
    pts = [(lo + hi) / 2]
    if start is not None:
        pts.append(np.atleast_2d(start))
    if cfg.attack_points:
        pts.append(lo + rng.random((cfg.attack_points, len(lo))) * (hi - lo))
    X = np.vstack(pts)
    width = hi - lo
    for step in range(cfg.attack_steps):
        _, g = _grad_slack(net, X, sides, claim)
        size = 0.25 * (1 - step / max(cfg.attack_steps, 1)) + 0.01
        X = np.clip(X - size * np.sign(g) * width, lo, hi)
    return X


def to_float32_in_box(X: np.ndarray, lo: np.ndarray, hi: np.ndarray, hi_open: np.ndarray | None) -> np.ndarray:
    """Round candidate inputs to float32 inside ``[lo, hi]`` (``[lo, hi)`` where ``hi_open``)."""
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    X = np.clip(X, lo, hi)
    X32 = X.astype(np.float32)
    lo32 = np.asarray(lo, np.float64)
    hi32 = np.asarray(hi, np.float64)
    over = X32.astype(np.float64) > hi32
    X32[over] = np.nextafter(X32[over], np.float32(-np.inf))
    under = X32.astype(np.float64) < lo32
    X32[under] = np.nextafter(X32[under], np.float32(np.inf))
    if hi_open is not None:
        at = (X32.astype(np.float64) >= hi32) & hi_open[None, :]
        X32[at] = np.nextafter(X32[at], np.float32(-np.inf))
    return X32


def replay(dnn, X32: np.ndarray, claim: str) -> tuple[int | None, np.ndarray]:
    """Index of the first row where the runtime contradicts the claim (None if none)."""
    out, yes = runtime_says(dnn, X32)
    bad = yes != (claim == "yes")
    return (int(np.flatnonzero(bad)[0]) if bad.any() else None), out
