"""``build --flash-budget BYTES``: the widest default-shaped bounds whose generated tables fit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bnnembed.cli import main
from bnnembed.learn.config import BuildConfig, candidate_hidden, design_hidden, hidden_for_flash_budget
from bnnembed.errors import BnnError
from bnnembed.model.encoding import fit_thermometer
from bnnembed.model.intmodel import BoundNet, IntLayer, shares_hidden
from bnnembed.model.packing import n_words
from bnnembed.render.footprint import model_footprint


def _tables(enc, hidden, one_network: bool = False) -> int:
    """Flash of a pair of these widths (each bound its own tables), or of one network."""
    widths = [enc.n_bits, *hidden, 1]

    def layers(t):
        return tuple(IntLayer(a, np.zeros((b, n_words(a)), np.uint32), np.full(b, t, np.int32))
                     for a, b in zip(widths, widths[1:]))

    up = layers(0)
    lo = up[:-1] + layers(1)[-1:] if one_network else layers(1)
    return model_footprint(enc, BoundNet("yes", up), BoundNet("no", lo)).flash_bytes


@pytest.mark.parametrize("n_features,k", [(30, 8), (100, 6)])  # under and over 512 input bits
def test_widest_shape_that_fits(n_features, k):
    enc, _ = fit_thermometer(np.random.default_rng(0).normal(size=(200, n_features)), k)
    shapes = candidate_hidden(enc.n_bits)
    wide = enc.n_bits > 512
    assert all(h == ((h[0], h[0]) if wide else (h[0], h[0] // 2)) for h in shapes)  # the default's form
    for i in (0, 7, 31):
        for budget in (_tables(enc, shapes[i]), _tables(enc, shapes[i + 1]) - 1):  # exactly fits; next just does not
            assert hidden_for_flash_budget(enc, budget) == shapes[i]
    assert hidden_for_flash_budget(enc, _tables(enc, shapes[0]) - 1) is None
    # one network stores its hidden layers once: the same budget holds wider layers
    for i in (0, 7, 31):
        budget = _tables(enc, shapes[i], one_network=True)
        assert hidden_for_flash_budget(enc, budget, one_network=True) == shapes[i]
        assert hidden_for_flash_budget(enc, _tables(enc, shapes[i + 1], True) - 1, one_network=True) == shapes[i]
    assert _tables(enc, shapes[31], one_network=True) < _tables(enc, shapes[31])
    with pytest.raises(BnnError, match="do not fit"):
        design_hidden(BuildConfig(flash_budget=100), enc)
    assert design_hidden(BuildConfig(flash_budget=100, hidden=(4, 2)), enc) == (4, 2)


def test_build_fits_its_budget_and_records_it(tmp_path, capsys):
    out = tmp_path / "a"
    assert main(["build", "--data", "breast_cancer", "--flash-budget", "4000", "--epochs", "2", "--no-cnf",
                 "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["settings"]["flash_budget"] == 4000 and m["model"]["flash_bytes"] <= 4000
    assert tuple(m["model"]["hidden"]) == hidden_for_flash_budget(
        __import__("bnnembed.artifact", fromlist=["x"]).load_artifact(str(out)).encoder, 4000)
    capsys.readouterr()
    assert main(["build", "--data", "breast_cancer", "--flash-budget", "300", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--flash-budget 300: even" in err and len(err.splitlines()) == 1 and not (tmp_path / "b").exists()
    assert main(["build", "--data", "breast_cancer", "--flash-budget", "9000", "--hidden", "8,8",
                 "--out", str(tmp_path / "c")]) == 2
    assert "not both" in capsys.readouterr().err


def test_a_masked_first_layer_is_counted():
    """--mask-first-layer stores a mask row beside each first-layer weight row: the budget counts it."""
    enc, _ = fit_thermometer(np.random.default_rng(0).normal(size=(200, 32)), 8)
    dense = hidden_for_flash_budget(enc, 8_000)
    masked = hidden_for_flash_budget(enc, 8_000, masked_first=True)
    assert masked[0] < dense[0]
    widths = [enc.n_bits, *masked, 1]

    def layers(t):  # the two bounds' tables differ (thresholds), as a pair's do
        return tuple(IntLayer(a, np.zeros((b, n_words(a)), np.uint32), np.full(b, t, np.int32),
                              mask=np.ones((b, n_words(a)), np.uint32) if i == 0 else None)
                     for i, (a, b) in enumerate(zip(widths, widths[1:])))
    up, lo = BoundNet("yes", layers(0)), BoundNet("no", layers(1))
    assert not shares_hidden(up, lo)
    assert model_footprint(enc, up, lo).flash_bytes <= 8_000
    wider = [enc.n_bits, masked[0] + 8, masked[1] + 4, 1]  # the next candidate does not fit as a pair
    nxt = [tuple(IntLayer(a, np.zeros((b, n_words(a)), np.uint32), np.full(b, t, np.int32),
                          mask=np.ones((b, n_words(a)), np.uint32) if i == 0 else None)
                 for i, (a, b) in enumerate(zip(wider, wider[1:]))) for t in (0, 1)]
    assert model_footprint(enc, BoundNet("yes", nxt[0]), BoundNet("no", nxt[1])).flash_bytes > 8_000
    assert design_hidden(BuildConfig(flash_budget=8_000, mask_first_layer=0.5), enc) == masked


def test_budget_with_feature_selection_is_checked_on_the_features_read(tmp_path):
    """With --features K the budget applies to the encoder of the K features read (a budget only
    the selected features fit is accepted)."""
    out = tmp_path / "a"
    assert main(["build", "--data", "breast_cancer", "--features", "5", "--flash-budget", "1200", "--epochs", "2",
                 "--no-cnf", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["model"]["flash_bytes"] <= 1200 and m["model"]["features_read"] == 5
