"""``build --distill-margin W``: the bounds also regress their logit onto the DNN's signed margin.
The margin's sign must be the DNN's decision for every output convention, its scale must not
depend on the DNN's, and a bound trained with it must rank inputs more like the DNN does."""

from __future__ import annotations

import numpy as np
import pytest

from bnnembed.learn.distill import MARGIN_CLIP, MARGIN_TYPICAL, margin_targets
from bnnembed.learn.dnn import Output, margin_from_output, yes_from_output
from bnnembed.learn.train import TrainConfig, fold_batchnorm, torch_scores, torch_threads, train_bound
from bnnembed.model.intmodel import bound_scores


@pytest.mark.parametrize("output,cols,positive", [(Output.LOGIT, 1, ()), (Output.PROBABILITY, 1, ()),
                                                  (Output.CLASSES, 10, (5, 6, 7, 8, 9)), (Output.CLASSES, 2, (1,))])
def test_margin_sign_is_the_decision(output, cols, positive):
    rng = np.random.default_rng(1)
    out = rng.normal(0, 3, (5000, cols)).astype(np.float32)
    if output == Output.PROBABILITY:
        out = 1 / (1 + np.exp(-out))
    z = margin_from_output(out, positive, output)
    yes = yes_from_output(out, positive, output)
    assert np.array_equal(z > 0, yes)


def test_margin_of_class_scores_is_best_yes_minus_best_other():
    out = np.array([[1.0, 4.0, 2.5], [3.0, 0.5, 1.0]], np.float32)  # column 1 means yes
    np.testing.assert_allclose(margin_from_output(out, (1,), Output.CLASSES), [4.0 - 2.5, 0.5 - 3.0])
    np.testing.assert_allclose(margin_from_output(np.array([[0.8]]), (), Output.PROBABILITY), [np.log(4.0)])


def test_margin_targets_scale_free_and_clipped():
    z_train = np.array([-4.0, -1.0, 1.0, 2.0, 8.0])  # median |z| = 2
    got = margin_targets(np.array([2.0, -2.0, 1.0, 100.0, -100.0]), z_train)
    np.testing.assert_allclose(got, [MARGIN_TYPICAL, -MARGIN_TYPICAL, MARGIN_TYPICAL / 2, MARGIN_CLIP, -MARGIN_CLIP])
    np.testing.assert_allclose(margin_targets(z_train * 1000, z_train * 1000), margin_targets(z_train, z_train))
    assert np.all(np.isfinite(margin_targets(np.zeros(3), np.zeros(3))))  # degenerate scale


def test_margin_regression_ranks_like_the_dnn_and_folds_exactly():
    """The DNN's margin is a count of ten bits, its decision that count above 5. A bound trained
    with the margin term orders each side by the margin better than one trained on the decisions
    alone, and its integer model still equals torch."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, (3000, 40)).astype(np.uint8)
    z = bits[:, :10].sum(1) - 5.5
    yes = z > 0
    cfg = TrainConfig(hidden=(32,), epochs=20, seed=0, asymmetry=1.0)
    with torch_threads(1):
        plain = train_bound(bits, yes, cfg)
        margin = train_bound(bits, yes, TrainConfig(**{**cfg.__dict__, "margin_weight": 5.0}),
                             margin=margin_targets(z, z))

    def within_sides(m) -> list[float]:  # rank agreement with the margin inside each side
        s = torch_scores(m, bits).astype(float)
        return [spearmanr(s[side], z[side]).statistic for side in (yes, ~yes)]

    rho = np.array([within_sides(m) for m in (plain, margin)])
    assert np.all(rho[1] > rho[0] + 0.04), rho
    assert np.array_equal(torch_scores(margin, bits), bound_scores(fold_batchnorm(margin, "yes"), bits))


def test_auto_weight_images_only_and_recorded(digits_artifact, bc_artifact):
    """The default resolves per data kind at build time and metrics.json records the weight used,
    so config_of rebuilds with it; artifacts from before the option read back as 0."""
    from bnnembed.artifact import load_artifact
    from bnnembed.learn.config import AUTO_MARGIN_IMAGES, BuildConfig, auto_distill_margin, config_of

    assert BuildConfig().distill_margin is None
    assert auto_distill_margin(True) == AUTO_MARGIN_IMAGES > 0 and auto_distill_margin(False) == 0.0
    for path, want in ((digits_artifact, AUTO_MARGIN_IMAGES), (bc_artifact, 0.0)):
        m = load_artifact(path).metrics
        assert m["settings"]["distill_margin"] == want and config_of(m).distill_margin == want
    old = {k: v for k, v in load_artifact(bc_artifact).metrics["settings"].items() if k != "distill_margin"}
    assert config_of({**load_artifact(bc_artifact).metrics, "settings": old}).distill_margin == 0.0


@pytest.mark.parametrize("bad", ["-1", "nan", "inf"])
def test_bad_weight_is_one_line_error(tmp_path, capsys, bad):
    from bnnembed.cli import main

    code = main(["build", "--data", "breast_cancer", "--distill-margin", bad, "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--distill-margin must be a finite weight of 0 or more" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "a").exists()


def test_margin_term_also_applies_with_the_stability_penalty():
    """Both terms at once: the margin changes the trained weights with --stability on too."""
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, (600, 20)).astype(np.uint8)
    z = bits[:, :6].sum(1) - 3.5
    with torch_threads(1):
        runs = [train_bound(bits, z > 0, TrainConfig(hidden=(8,), epochs=2, seed=0, stability=0.1, margin_weight=w),
                            margin=margin_targets(z, z)) for w in (0.0, 3.0)]
    assert any(not np.array_equal(a.weight_bits(), b.weight_bits()) or
               not np.allclose(a.weight.detach().numpy(), b.weight.detach().numpy())
               for a, b in zip(runs[0].hidden, runs[1].hidden))
