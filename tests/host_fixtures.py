"""An artifact with a DNN for the host tests: fixture bounds plus a small ONNX MLP (seconds)."""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from firmware_fixtures import make_artifact  # noqa: E402

from bnnembed.artifact import load_artifact, read_manifest, write_manifest  # noqa: E402
from bnnembed.learn.data import load_data  # noqa: E402
from bnnembed.learn.dnn import train_default_dnn  # noqa: E402


def make_host_artifact(path, source: str = "digits", hidden=(32, 16), seed: int = 0):
    """Fixture bounds (random, median thresholds: all three decisions occur) + a trained DNN."""
    path = str(path)
    make_artifact(path, source, hidden=hidden, seed=seed)
    ds = load_data(source)
    yes = np.isin(ds.y, ds.positive)
    train_default_dnn(ds.X, yes, os.path.join(path, "dnn.onnx"), seed=seed, hidden=(32,), epochs=3)
    manifest = read_manifest(path)
    manifest["dnn"] = {"file": "dnn.onnx", "kind": "onnx", "positive_columns": []}
    manifest["files"]["dnn.onnx"] = None
    write_manifest(path, manifest)
    return load_artifact(path)
