"""The frozen Model value: what every renderer takes, its hash and its read-only arrays."""

from __future__ import annotations

import numpy as np
import pytest

from bnnembed.artifact import BOUNDS, load_artifact, sha256_file
from bnnembed.learn.data import load_data
from bnnembed.model.model import Model


def test_model_hash_is_the_stored_bytes_hash(bc_artifact):
    art = load_artifact(bc_artifact)
    m = art.model
    assert m.model_hash == art.model_hash == sha256_file(f"{bc_artifact}/{BOUNDS}")[:16]
    with open(f"{bc_artifact}/{BOUNDS}", "rb") as fh:
        assert m.to_npz_bytes() == fh.read()  # the artifact stores exactly the model's serialisation
    assert m.feature_names == tuple(art.feature_names) and m.positive == art.positive


def test_model_is_read_only_and_round_trips(bc_artifact):
    m = load_artifact(bc_artifact).model
    with pytest.raises(ValueError):
        m.upper.layers[0].weights[0, 0] = 0
    with pytest.raises(ValueError):
        m.encoder.thresholds[0] = 0.0
    with pytest.raises(AttributeError):
        m.upper = m.lower  # frozen
    again = Model.from_arrays(m.to_arrays(), m.feature_names, m.positive)
    X = load_data("breast_cancer").X
    assert again.model_hash == m.model_hash
    assert np.array_equal(again.decide(X), m.decide(X))


def test_one_network_stores_its_hidden_layers_once(tmp_path):
    """One network read both ways: bounds.npz holds the hidden layers once (``lower_shared_layers``),
    loads back to the same decisions and hash, is format 4, and a reader of format 3 refuses it."""
    import json

    import bnnembed.artifact as artifact_mod
    from bnnembed.errors import ArtifactError
    from firmware_fixtures import make_artifact

    art = make_artifact(tmp_path / "one", "digits", one_network=True)
    m = art.model
    assert m.one_network and m.design == "one"
    arrays = m.to_arrays()
    assert int(arrays["lower_shared_layers"]) == len(m.lower.layers) - 1
    assert not any(k.startswith("lower_l0_") or k.startswith("lower_l1_") for k in arrays)
    back = Model.from_arrays(arrays)
    assert back.model_hash == m.model_hash and back.one_network
    assert all(a is b for a, b in zip(back.lower.layers[:-1], back.upper.layers[:-1]))
    X = load_data("digits").X
    assert np.array_equal(back.decide(X), m.decide(X))
    with open(tmp_path / "one" / "manifest.json") as fh:
        assert json.load(fh)["format_version"] == artifact_mod.ONE_NETWORK_FORMAT_VERSION == 4
    old = artifact_mod.FORMAT_VERSION
    artifact_mod.FORMAT_VERSION = artifact_mod.MASKED_FORMAT_VERSION
    try:
        with pytest.raises(ArtifactError, match=r"artifact format 4 is newer than this bnnembed reads \(3\)"):
            load_artifact(str(tmp_path / "one"))
    finally:
        artifact_mod.FORMAT_VERSION = old
    # a pair writes no lower_shared_layers: its bounds.npz is what it was before one network existed
    pair = make_artifact(tmp_path / "pair", "digits")
    assert not pair.model.one_network and "lower_shared_layers" not in pair.model.to_arrays()
    # a shared count that does not fit is a one-line artifact error, not a crash
    bad = dict(arrays, lower_shared_layers=np.array(5, np.int32))
    with pytest.raises(ValueError, match="lower_shared_layers = 5 does not fit"):
        Model.from_arrays(bad)
