"""A committed version-1 artifact (written by bnnembed before format 2) pins the on-disk format:
it must keep loading, deciding and answering exactly as it did when it was written.

``tests/golden/artifact_v1`` was built on breast_cancer (16-8 bounds, 2 bits a feature, alpha 0.1) by the
format-1 code; ``artifact_v1_expected.csv`` holds that code's decisions and DNN answers on every
row. The PNG plots are left out (they are not hashed).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bnnembed.artifact import load_artifact
from bnnembed.cli import main
from _paths import GOLDEN
from bnnembed.learn.data import load_data

V1 = str(GOLDEN / "artifact_v1")


@pytest.fixture()
def v1(tmp_path) -> str:
    out = str(tmp_path / "v1")
    shutil.copytree(V1, out)  # commands may write caches into an artifact
    return out


def _expected():
    rows = np.loadtxt(GOLDEN / "artifact_v1_expected.csv", delimiter=",", skiprows=1, dtype=int)
    return rows[:, 1], rows[:, 2].astype(bool)


def test_v1_artifact_loads_and_decides_as_written(v1):
    art = load_artifact(v1)
    assert art.manifest["format_version"] == 1
    assert art.dnn_output == "logit"  # format 1 recorded a sentence for a one-logit DNN
    X = load_data("breast_cancer").X
    dec, dnn_yes = _expected()
    assert np.array_equal(art.decide(X), dec)
    assert np.array_equal(art.load_dnn().says_yes(X), dnn_yes)
    assert set(np.unique(dec)) == {0, 1, 2}  # the pin covers every decision


def test_v1_artifact_through_the_commands(v1, tmp_path, capsys):
    assert main(["eval", v1, "--data", "breast_cancer", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    dec, dnn_yes = _expected()
    decided = dec != 2
    assert m["decided"] == int(decided.sum())
    assert m["disagreements"] == int(((dec == 1) != dnn_yes)[decided].sum())
    assert main(["codegen", v1, "--board", "nucleo_f401re", "--out", str(tmp_path / "proj")]) == 0
    assert (tmp_path / "proj" / "platformio.ini").exists()
