"""Versioned on-disk formats are refused when this code cannot read them: an artifact manifest's
format_version, a decision log's schema version (its meta table)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3

import pytest

from bnnembed.artifact import FORMAT_VERSION, load_artifact
from bnnembed.cli import main
from bnnembed.link.decision_log import SCHEMA_VERSION, DecisionLog
from bnnembed.errors import ArtifactError, BnnError


def _with_version(src: str, tmp_path, version) -> str:
    dst = str(tmp_path / "art")
    shutil.copytree(src, dst)
    mpath = os.path.join(dst, "manifest.json")
    with open(mpath) as fh:
        m = json.load(fh)
    if version is _MISSING:
        del m["format_version"]
    else:
        m["format_version"] = version
    with open(mpath, "w") as fh:
        json.dump(m, fh)
    return dst


_MISSING = object()


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1, err
    return err


def test_current_format_loads(bc_artifact, tmp_path):
    assert load_artifact(_with_version(bc_artifact, tmp_path, FORMAT_VERSION)).manifest["format_version"] == FORMAT_VERSION


@pytest.mark.parametrize("version", [0, -1, -FORMAT_VERSION, "2", str(FORMAT_VERSION), 2.0, True, None, [2], _MISSING],
                         ids=["zero", "minus-one", "negative-current", "string-2", "string-current", "float", "bool",
                              "null", "list", "missing"])
def test_invalid_format_version_is_refused(bc_artifact, tmp_path, capsys, version):
    """A version that no build ever wrote (below 1, not an integer) is refused, not read as the
    current format; on the command line as one line and exit 2."""
    path = _with_version(bc_artifact, tmp_path, version)
    with pytest.raises(ArtifactError, match="format_version"):
        load_artifact(path)
    assert main(["eval", path, "--data", "breast_cancer"]) == 2
    err = _one_line_error(capsys)
    assert "format_version" in err and "manifest.json" in err


def test_newer_format_version_is_refused(bc_artifact, tmp_path, capsys):
    path = _with_version(bc_artifact, tmp_path, FORMAT_VERSION + 1)
    with pytest.raises(ArtifactError, match="newer than this bnnembed reads"):
        load_artifact(path)
    assert main(["predict", path, "--data", "breast_cancer", "--out", str(tmp_path / "p.csv")]) == 2
    assert "newer than this bnnembed reads" in _one_line_error(capsys)
    assert not (tmp_path / "p.csv").exists()


# ------------------------------------------------------------------------------ decision log


def _log(tmp_path) -> str:
    path = str(tmp_path / "decisions.sqlite")
    DecisionLog(path).close()  # a fresh log records the code's schema version
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    return path


def _set_schema(path: str, value) -> None:
    with sqlite3.connect(path) as db:
        if value is None:
            db.execute("DELETE FROM meta WHERE key='schema_version'")
        else:
            db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(value),))
    sqlite3.connect(path).close()


def test_current_log_schema_reads(tmp_path, capsys):
    path = _log(tmp_path)
    assert main(["log", str(tmp_path), "--log", path, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["records"] == 0


@pytest.mark.parametrize("value", [SCHEMA_VERSION + 1, 99, None], ids=["next", "99", "missing"])
def test_log_with_newer_or_missing_schema_is_refused(tmp_path, capsys, value):
    """`bnnembed log` refuses (one line, exit 2) a log whose schema version is newer than the
    code's, or absent; the writer (the host) refuses a newer one too and leaves it alone."""
    path = _log(tmp_path)
    _set_schema(path, value)
    assert main(["log", str(tmp_path), "--log", path]) == 2
    err = _one_line_error(capsys)
    if value is None:  # upgrading would not help: it is not a log this tool wrote
        assert "schema version None" in err and "upgrade" not in err and path in err
    else:
        assert f"decision log schema {value} is newer" in err and "upgrade bnnembed" in err and path in err
    with pytest.raises(BnnError, match="schema"):
        DecisionLog(path, readonly=True)
    if value is None:
        DecisionLog(path).close()  # the writer fills a missing version in with its own
        want = str(SCHEMA_VERSION)
    else:
        with pytest.raises(BnnError, match="decision log schema"):
            DecisionLog(path)  # the host refuses to write into a newer log ...
        want = str(value)  # ... and leaves its version alone
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (want,)


def test_log_with_garbage_schema_is_refused_in_one_line(tmp_path, capsys):
    path = _log(tmp_path)
    _set_schema(path, "two")
    assert main(["log", str(tmp_path), "--log", path]) == 2
    assert "schema" in _one_line_error(capsys)


def test_log_schema_refusal_names_the_version(tmp_path, capsys):
    path = _log(tmp_path)
    _set_schema(path, SCHEMA_VERSION + 1)
    assert main(["log", str(tmp_path), "--log", path]) == 2
    assert f"decision log schema {SCHEMA_VERSION + 1} " in _one_line_error(capsys)
