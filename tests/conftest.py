"""Shared fixtures: small artifacts built once per test session (real training, real DNN)."""

from __future__ import annotations

import os

import pytest

from bnnembed.learn.build import build_artifact
from bnnembed.learn.config import BuildConfig
from bnnembed.render.cnf import write_cnf
from bnnembed.learn.data import load_data

MNIST_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist")


def _build(tmp_path_factory, name: str, source: str, positive: str | None = None, **cfg) -> str:
    out = str(tmp_path_factory.mktemp(name))
    ds = load_data(source, positive=positive)
    config = BuildConfig(**{"hidden": (64, 32), "epochs": 6, "augment": 4, **cfg})
    build_artifact(ds, out, config, progress=False)
    write_cnf(out)
    return out


@pytest.fixture(scope="session")
def bc_artifact(tmp_path_factory) -> str:
    """A small breast_cancer artifact (64-32 hidden, 6 epochs)."""
    return _build(tmp_path_factory, "bc", "breast_cancer")


@pytest.fixture(scope="session")
def digits_artifact(tmp_path_factory) -> str:
    """A small digits artifact, positive = 0: a pair of 64-32 bounds, 6 epochs."""
    return _build(tmp_path_factory, "digits", "digits", design="pair")


@pytest.fixture(scope="session")
def digits_one_artifact(tmp_path_factory) -> str:
    """A small digits artifact, positive = 5..9: one 64-32 network read both ways (the images'
    default design), 6 epochs."""
    return _build(tmp_path_factory, "digits_one", "digits", positive="5,6,7,8,9", design="one")


@pytest.fixture(scope="session")
def digits_copies_artifact(tmp_path_factory) -> str:
    """The one-network digits artifact's build deciding over 3 shifted copies of the image."""
    return _build(tmp_path_factory, "digits_copies", "digits", positive="5,6,7,8,9", design="one", shift_copies=3)


@pytest.fixture(scope="session")
def mnist_dir() -> str:
    if not os.path.exists(os.path.join(MNIST_DIR, "t10k-images-idx3-ubyte.gz")):
        pytest.skip("MNIST test set not present beside the project")
    return os.path.abspath(MNIST_DIR)
