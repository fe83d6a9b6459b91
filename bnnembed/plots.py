"""Pictures: risk–coverage curves of the calibration record, explanations and certificates on images."""

from __future__ import annotations

import os

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_risk_coverage(curves: dict, chosen_taus: dict, alpha: float, delta: float, title: str, path: str) -> None:
    """One panel per variant: disagreement rate and its Clopper–Pearson bound against coverage.

    ``curves`` maps a variant name to :func:`bnnembed.learn.calibrate.side_curve` output; ``chosen_taus``
    maps the same names to the calibrated threshold (or None when nothing was certified).
    """
    fig, axes = plt.subplots(1, len(curves), figsize=(5.2 * len(curves), 4), squeeze=False)
    for ax, (name, curve) in zip(axes[0], curves.items()):
        cov, rate, bound = curve["coverage"], curve["disagreement_rate"], curve["bound"]
        ax.plot(cov, rate, label="observed disagreement", color="tab:blue")
        ax.plot(cov, bound, label=f"{1 - delta:.0%} upper bound", color="tab:orange")
        ax.axhline(alpha, color="grey", linestyle="--", linewidth=1, label=f"alpha = {alpha:g}")
        tau = chosen_taus.get(name)
        if tau is not None and tau in curve["tau"]:
            i = curve["tau"].index(tau)
            what = "margin" if curve.get("kind") == "margin" else "tau"
            ax.plot([cov[i]], [bound[i]], "o", color="tab:red", label=f"chosen {what} = {tau}")
            ax.axvline(cov[i], color="tab:red", linewidth=0.8, alpha=0.6)
        ax.set_xlim(0, min(1.0, max(cov) * 1.05 + 0.02))
        ax.set_ylim(0, min(1.0, max(4 * alpha, 0.05)))
        ax.set_xlabel("coverage (share of calibration inputs answered)")
        ax.set_ylabel("disagreement with the DNN among answered")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _image_panel(ax, x, shape, marked: list[int], colour: str, title: str) -> None:
    """An image with the given raw pixel columns outlined."""
    h, w = shape
    ax.imshow(np.asarray(x, dtype=np.float64).reshape(h, w), cmap="gray_r")
    for col in marked:
        r, c = divmod(int(col), w)
        ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor=colour, linewidth=1.5))
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_explanation(x, shape, columns: list[int], title: str, path: str) -> None:
    """The input with the explanation's pixels outlined in red."""
    fig, ax = plt.subplots(figsize=(4, 4))
    _image_panel(ax, x, shape, columns, "red", title)
    _save(fig, path)


def plot_certificate(x, shape, columns: list[int], record: dict, path: str) -> None:
    """A certification outcome on an image: the input with the bound's explanation (red); for a
    refuted explanation also the DNN's counterexample, with the pixels it changed (blue), which
    meets the explanation and gets the other decision."""
    cex = (record.get("verification") or {}).get("counterexample")
    n = 2 if cex is not None else 1
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 4), squeeze=False)
    _image_panel(axes[0, 0], x, shape, columns, "red",
                 f"row {record['row']}: {record['decision']}, explanation {record['size']} pixels\n"
                 f"DNN on its box: {record['status']}")
    if cex is not None:
        cex = np.asarray(cex, dtype=np.float64)
        changed = np.flatnonzero(np.abs(cex - np.asarray(x, dtype=np.float64)) > 1e-6).tolist()
        out = record["verification"].get("runtime_output")
        _image_panel(axes[0, 1], cex, shape, changed, "blue",
                     f"counterexample ({len(changed)} pixels changed)\nDNN output {np.round(out, 3).tolist()}")
    _save(fig, path)
