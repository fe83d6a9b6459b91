"""Distillation inputs: extra unlabeled inputs near the training data, to be labeled by the DNN.

The bounds learn the DNN's decisions, not the labels, so any plausible input is training data once
the DNN has labeled it. For images: copies shifted by up to one pixel with a little noise. For
tables: copies with Gaussian noise scaled to each feature's spread, and mixup towards a random
partner. Values stay inside each feature's training range.

Margin distillation (``build --distill-margin W``): besides the DNN's decision, each input carries
the DNN's signed margin (:func:`margin_targets`), and a bound also regresses its logit onto it, so
it learns where the DNN is sure and not only which side it is on.

For whole-domain soundness (``bnnembed certify --domain``), the bounds must also be right far
from the data: :func:`domain_inputs` draws points uniformly from the training data's feature box,
where a bound trained on data alone is often confidently wrong.
"""

from __future__ import annotations

import numpy as np


def augment_inputs(X: np.ndarray, copies: int, rng: np.random.Generator,
                   image_shape: tuple[int, int] | None = None) -> np.ndarray:
    """``copies`` perturbed copies of every row of ``X`` (float32), clipped to the data range."""
    X = np.asarray(X, dtype=np.float32)
    if copies <= 0 or len(X) == 0:
        return np.zeros((0, X.shape[1]), dtype=np.float32)
    lo, hi = X.min(0), X.max(0)
    spread = X.std(0)
    out = []
    for _ in range(copies):
        if image_shape is not None:
            out.append(_shift_images(X, image_shape, rng) + rng.normal(0, 0.04, X.shape) * (hi - lo))
        else:
            partner = X[rng.integers(0, len(X), len(X))]
            lam = rng.uniform(0.6, 1.0, (len(X), 1))
            mixed = lam * X + (1 - lam) * partner
            out.append(mixed + rng.normal(0, 1, X.shape) * spread * rng.uniform(0.05, 0.3, (len(X), 1)))
    return np.clip(np.concatenate(out), lo, hi).astype(np.float32)


MARGIN_TYPICAL = 4.0  # the logit a bound is taught for an input at the DNN's median distance from its boundary
MARGIN_CLIP = 8.0


def margin_targets(z: np.ndarray, z_train: np.ndarray) -> np.ndarray:
    """Logit targets for margin distillation: the DNN's signed margins ``z`` rescaled so that the
    median ``|margin|`` of the training rows ``z_train`` maps to :data:`MARGIN_TYPICAL`, clipped to
    +-:data:`MARGIN_CLIP` (a DNN's raw scale, logits or class scores, is arbitrary; past the clip
    every input is "sure" alike). float32."""
    scale = float(np.median(np.abs(z_train))) if len(z_train) else 0.0
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    return np.clip(np.asarray(z, np.float64) * (MARGIN_TYPICAL / scale), -MARGIN_CLIP, MARGIN_CLIP).astype(np.float32)


def domain_inputs(X: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points drawn uniformly from the per-feature min/max box of ``X`` (float32)."""
    X = np.asarray(X, dtype=np.float32)
    if n <= 0 or len(X) == 0:
        return np.zeros((0, X.shape[1]), dtype=np.float32)
    lo, hi = X.min(0).astype(np.float64), X.max(0).astype(np.float64)
    return (lo + rng.random((n, X.shape[1])) * (hi - lo)).astype(np.float32)


def _shift_images(X: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = shape
    imgs = X.reshape(-1, h, w)
    out = np.empty_like(imgs)
    shifts = rng.integers(-1, 2, (len(imgs), 2))
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            sel = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
            if sel.any():
                rolled = np.roll(imgs[sel], (dy, dx), axis=(1, 2))
                if dy == 1:
                    rolled[:, 0, :] = 0
                elif dy == -1:
                    rolled[:, -1, :] = 0
                if dx == 1:
                    rolled[:, :, 0] = 0
                elif dx == -1:
                    rolled[:, :, -1] = 0
                out[sel] = rolled
    return out.reshape(len(X), -1)
