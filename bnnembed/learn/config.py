"""The build's settings: what ``bnnembed build`` can be told, the defaults chosen from the data,
and the settings read back from an artifact's metrics.json (so a rebuild reproduces it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import BnnError


@dataclass(frozen=True)
class BuildConfig:
    """Everything ``bnnembed build`` can be told (None = chosen from the data)."""

    alpha: float = 0.05
    delta: float = 0.05
    seed: int = 0
    bits_per_feature: int | None = None
    hidden: tuple[int, ...] | None = None
    epochs: int | None = None
    augment: int | None = None
    domain_samples: int = 0  # distillation inputs drawn uniformly from the training box
    asymmetry: float = 4.0
    cal_fraction: float = 0.25
    test_fraction: float = 0.25
    baseline: bool = True
    dnn_output: str | None = None  # the DNN's output convention; None = guess (see bnnembed.learn.dnn)
    features: float | None = None  # read at most this many features (a fraction < 1: of the columns); None = all
    stability: float = 0.0  # neuron-stability penalty weight in bound training (0 = none)
    mask_first_layer: float = 0.0  # share of first-layer weights masked ("input bit not read"); 0 = dense
    flash_budget: int | None = None  # bytes of model tables (both bounds + encoder) the hidden widths must fit
    distill_margin: float | None = None  # weight of the DNN-margin regression (0 = decisions only; None = auto)
    design: str | None = None  # "pair" (two networks) or "one" (one network read both ways); None = auto
    shift_copies: int = 1  # decide from the scores summed over this many shifted copies of an image (1, 3, 5)


DESIGNS = ("pair", "one")


def auto_design(is_image: bool) -> str:
    """One network read both ways for images, a pair of networks for tables (docs/coverage.md).

    Measured on the test split, seeds 0 / 1 / 2, one network at the pair's widths (half its flash,
    the default) against the pair: MNIST 5..9 at a certified 1% 96.3 / 92.5 / 92.7% against 93.2 /
    94.3 / 92.5%, at 0.5% 93.4 / 88.0 / 89.5% against 89.9 / 87.5 / 87.3%; digits 5..9 at 5% 97.3 /
    99.1 / 99.3% against 96.4 / 97.1 / 96.9%. On breast_cancer one network at the pair's flash
    covered 94.4 / 100 / 95.8% against the pair's 97.2 / 97.9 / 98.6%, so tables keep the pair."""
    return "one" if is_image else "pair"


def auto_bits_per_feature(n_features: int) -> int:
    """About 256 input bits for small tables, at least 2 bits a feature for images."""
    return int(np.clip(round(256 / max(n_features, 1)), 2, 8))


def auto_hidden(n_bits: int) -> tuple[int, ...]:
    """64-32 hidden neurons up to 512 input bits, else 256-256.

    Measured (docs/cnf.md): on digits 5..9 and breast_cancer, 64-32 bounds reach the coverage of
    256-256 ones (93.8% vs 94.4%, 96.5% vs 92.3%) while their exact explanations are tractable
    (seconds instead of minutes); MNIST-sized inputs keep the wider layers."""
    return (64, 32) if n_bits <= 512 else (256, 256)


def candidate_hidden(n_bits: int) -> list[tuple[int, ...]]:
    """The shapes ``--flash-budget`` chooses among, smallest first: the default's form at every
    width from 8 to 2,048 in steps of 8 (``(w, w)`` above 512 input bits, ``(w, w // 2)`` below,
    as :func:`auto_hidden`)."""
    wide = n_bits > 512
    return [(w, w) if wide else (w, max(w // 2, 1)) for w in range(8, 2049, 8)]


def _dense_bounds(encoder, hidden: tuple[int, ...], masked_first: bool = False, one_network: bool = False):
    """Bounds of these widths with all-zero tables (for their size): a pair, or one network whose
    lower bound takes the upper's hidden layers."""
    from ..model.intmodel import BoundNet, IntLayer
    from ..model.packing import n_words

    widths = [encoder.n_bits, *hidden, 1]

    def layers(threshold: int):
        return tuple(IntLayer(a, np.zeros((b, n_words(a)), np.uint32), np.full(b, threshold, np.int32),
                              mask=np.ones((b, n_words(a)), np.uint32) if masked_first and i == 0 else None)
                     for i, (a, b) in enumerate(zip(widths, widths[1:])))

    upper = BoundNet("yes", layers(0))
    # the pair's lower bound gets other thresholds: equal tables would be one network's
    return upper, BoundNet("no", upper.layers[:-1] + layers(1)[-1:] if one_network else layers(1))


def hidden_for_flash_budget(encoder, budget: int, masked_first: bool = False,
                            one_network: bool = False) -> tuple[int, ...] | None:
    """The widest :func:`candidate_hidden` shape whose model tables (both bounds and the encoder, in
    the default float input encoding, as the generated C lays them out; ``masked_first``: the first
    layer stores a mask row beside each weight row; ``one_network``: the hidden layers are stored
    once) fit ``budget`` bytes;
    None if even the narrowest does not. The runtime's code is extra (about 1 to 3 KB, per core
    and kernel: ``bnnembed qemu`` reports ``runtime_flash_bytes``)."""
    from ..render.footprint import model_footprint

    best = None
    for hidden in candidate_hidden(encoder.n_bits):
        if model_footprint(encoder, *_dense_bounds(encoder, hidden, masked_first, one_network)).flash_bytes > budget:
            break
        best = hidden
    return best


def design_hidden(cfg: BuildConfig, encoder) -> tuple[int, ...]:
    """The bounds' hidden widths: ``--hidden``, else the widest that fits ``--flash-budget``, else
    :func:`auto_hidden` for either design (``cfg.design`` resolved): one network keeps the pair's
    widths, so it has half the pair's flash and binary MACs.

    Measured (docs/coverage.md, docs/explanations.md): at the pair's flash one network covers a
    little more (MNIST 416-416: 94.7% at a certified 1% on seeds 0-2, 256-256: 93.8%, the pair
    93.3%; digits 104-52: 99.1% at 5%, 64-32: 98.6%, the pair 96.8%), but its wider layers slow the
    exact explanations (MNIST `--delta 6` with a 2 s budget: 13% of rows robust against 55% for the
    pair; digits: 1-4 pixels longer). At the pair's widths its explanations are the pair's or better
    (MNIST 256-256: 60% robust, 1.4 s median; digits 64-32: within one pixel)."""
    if cfg.hidden:
        return tuple(cfg.hidden)
    one = cfg.design == "one"
    if cfg.flash_budget is not None:
        hidden = hidden_for_flash_budget(encoder, cfg.flash_budget, masked_first=cfg.mask_first_layer > 0,
                                         one_network=one)
        if hidden is None:
            smallest = candidate_hidden(encoder.n_bits)[0]
            raise BnnError(f"--flash-budget {cfg.flash_budget}: even {','.join(map(str, smallest))} hidden neurons "
                           f"over {encoder.n_bits} input bits do not fit; raise the budget, or read fewer input bits "
                           "(--features K, --bits-per-feature K)")
        return hidden
    return auto_hidden(encoder.n_bits)


def auto_augment(n_train: int) -> int:
    """Distillation copies per training row: about 50k training inputs in all, 2 to 20 per row.

    Measured on MNIST 5..9 (5,000 training rows, margin distillation, alpha 1%): 4 copies (20k
    inputs) covered 93.7%, 10 copies 96.2%, 20 copies 95.6%. Smaller data sets hit the cap of 20
    (digits: 50 copies did no better, 95.1% against 97.3% at 5%)."""
    return int(np.clip(round(50_000 / max(n_train, 1)), 2, 20))


AUTO_MARGIN_IMAGES = 3.0


def auto_distill_margin(is_image: bool) -> float:
    """Margin distillation for images, not for tables (docs/coverage.md).

    Measured at seed 0: MNIST 5..9 at alpha 1% 87.6% -> 93.7% (weight 3; 1: 93.1%, 8: 93.6%),
    digits 5..9 at 5% 94.9% -> 97.3%; breast_cancer at 5% fell, 97.2% -> 82.5% (weight 3; 0.5:
    83.2%, 1: 88.8%), so tables keep the decisions alone."""
    return AUTO_MARGIN_IMAGES if is_image else 0.0


def auto_epochs(n_inputs: int) -> int:
    """About 12,000 optimisation steps of 128 inputs, between 8 and 40 epochs.

    Measured on MNIST 5..9 (55k distillation inputs, alpha 1%, seeds 0-2): 9 epochs (4,000 steps,
    the earlier rule) covered 96.2 / 92.7 / 89.7%, 30 epochs 95.6 / 94.0 / 93.7%. digits and
    breast_cancer reach the cap of 40 (digits 5..9 seed 0: 97.3% at 27 epochs, 96.4% at 40)."""
    return int(np.clip(round(12_000 * 128 / max(n_inputs, 1)), 8, 40))


def config_of(metrics: dict) -> BuildConfig:
    """The build configuration an artifact's metrics.json records (defaults where it is silent),
    so a rebuild on the same data reproduces its split and its training set-up."""
    model, split = metrics.get("model") or {}, metrics.get("split") or {}
    return BuildConfig(
        alpha=metrics.get("alpha", 0.05), delta=metrics.get("delta", 0.05), seed=split.get("seed", 0),
        bits_per_feature=model.get("bits_per_feature"), hidden=tuple(model["hidden"]) if model.get("hidden") else None,
        epochs=model.get("epochs"), augment=split.get("augment"), domain_samples=split.get("domain_samples", 0),
        asymmetry=model.get("asymmetry", 4.0), cal_fraction=split.get("cal_fraction", 0.25),
        test_fraction=split.get("test_fraction", 0.25), baseline=metrics.get("baseline") is not None,
        dnn_output=(metrics.get("settings") or {}).get("dnn_output"),
        features=(metrics.get("settings") or {}).get("features"),
        stability=(metrics.get("settings") or {}).get("stability", 0.0),
        mask_first_layer=(metrics.get("settings") or {}).get("mask_first_layer", 0.0),
        distill_margin=(metrics.get("settings") or {}).get("distill_margin", 0.0),
        flash_budget=(metrics.get("settings") or {}).get("flash_budget"),
        design=(metrics.get("settings") or {}).get("design") or "pair")
