"""Risk–coverage pictures of the calibration record."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_risk_coverage(curves: dict, chosen_taus: dict, alpha: float, delta: float, title: str, path: str) -> None:
    """One panel per variant: disagreement rate and its Clopper–Pearson bound against coverage.

    ``curves`` maps a variant name to :func:`bnnembed.calibrate.side_curve` output; ``chosen_taus``
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
