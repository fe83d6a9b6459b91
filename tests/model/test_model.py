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
