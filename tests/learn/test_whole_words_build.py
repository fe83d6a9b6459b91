"""A build whose thermometer spills a few bits over a word boundary trims them, says so, and the
trimmed artifact renders to C that agrees with numpy bit for bit (host gcc)."""

from __future__ import annotations

import json
import shutil

import pytest

from bnnembed.artifact import load_artifact
from bnnembed.cli import main
from bnnembed.device.qemu import check_against_numpy

from firmware_fixtures import rows_for


def test_breast_cancer_at_12_bits_a_feature_is_trimmed_to_whole_words(tmp_path, capsys):
    out = tmp_path / "a"
    assert main(["build", "--data", "breast_cancer", "--bits-per-feature", "12", "--epochs", "2", "--no-cnf",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    art = load_artifact(str(out))
    trimmed = m["model"]["trimmed_bits"]
    assert 0 < trimmed <= 8 and art.encoder.n_bits % 32 == 0 and m["model"]["input_bits"] == art.encoder.n_bits
    assert m["model"]["trimmed_unread"] == []  # every breast_cancer feature keeps some of its 12 bits
    assert f"left out the {trimmed} least informative input bit(s)" in printed
    assert art.upper.layers[0].n_in == art.encoder.n_bits == art.lower.layers[0].n_in
    if shutil.which("gcc") is None:
        pytest.skip("host gcc not installed")
    rep = check_against_numpy(art, "host", rows_for(art, "breast_cancer", 1000))
    assert rep.rows == 1000 and rep.mismatches == 0 and rep.score_mismatches == 0
