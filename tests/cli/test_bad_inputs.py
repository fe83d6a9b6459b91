"""A table of user mistakes over every command: each one line on stderr, exit code 2, nothing else.

``main()`` runs in-process and lets any exception other than a user error through, so a
traceback anywhere fails the test. Output paths and counts are checked before any work starts
(no build or QEMU run before ``--out`` turns out to be wrong): the cases below that would run
long complete in well under a second.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
import pytest

from bnnembed.cli import main

BC_FEATURES = 30


def _csv(path, rows, header=None, label=True):
    header = header or [f"f{i}" for i in range(BC_FEATURES)] + (["label"] if label else [])
    with open(path, "w") as fh:
        fh.write(",".join(header) + "\n")
        for r in rows:
            fh.write(",".join(str(v) for v in r) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def env(tmp_path_factory, bc_artifact):
    """The artifact and the bad files the table refers to."""
    d = tmp_path_factory.mktemp("bad")
    good = [[1.0] * BC_FEATURES + [0], [2.0] * BC_FEATURES + [1]] * 30
    f = {"A": bc_artifact, "dir": str(d)}
    f["nan.csv"] = _csv(d / "nan.csv", [[float("nan")] + [1.0] * (BC_FEATURES - 1) + [0]] + good)
    f["big.csv"] = _csv(d / "big.csv", [[1e39] + [1.0] * (BC_FEATURES - 1) + [0]] + good)
    f["ragged.csv"] = _csv(d / "ragged.csv", [[1.0, 2.0]] + good)
    f["text.csv"] = _csv(d / "text.csv", [["abc"] + [1.0] * (BC_FEATURES - 1) + [0]] + good)
    f["wide.csv"] = _csv(d / "wide.csv", [[1.0] * (BC_FEATURES + 2) + [0]],
                         header=[f"f{i}" for i in range(BC_FEATURES + 2)] + ["label"])
    f["nolabel.csv"] = _csv(d / "nolabel.csv", [[1.0] * BC_FEATURES], label=False)
    f["classes.csv"] = _csv(d / "classes.csv", [[1.0] * BC_FEATURES + [k % 10] for k in range(60)])
    os.makedirs(d / "folder.csv")
    f["folder.csv"] = str(d / "folder.csv")
    (d / "zero.npz").write_bytes(b"")
    f["zero.npz"] = str(d / "zero.npz")
    np.savez(d / "strings.npz", X=np.array([["a"] * BC_FEATURES]))
    f["strings.npz"] = str(d / "strings.npz")
    (d / "garbage.npz").write_bytes(os.urandom(300))
    f["garbage.npz"] = str(d / "garbage.npz")
    (d / "garbage.onnx").write_bytes(os.urandom(300))
    f["garbage.onnx"] = str(d / "garbage.onnx")
    (d / "a-file").write_text("x")
    f["a-file"] = str(d / "a-file")
    # broken copies of the artifact
    for name in ("corrupt", "newer", "edited", "v0"):
        shutil.copytree(bc_artifact, d / name)
        f[name] = str(d / name)
    (d / "corrupt" / "manifest.json").write_text("{not json")
    for name, version in (("newer", 99), ("v0", 0)):
        m = json.loads((d / name / "manifest.json").read_text())
        m["format_version"] = version
        (d / name / "manifest.json").write_text(json.dumps(m))
    with open(d / "edited" / "bounds.npz", "ab") as fh:
        fh.write(b"\0")
    return f


# (id, argv with {placeholders}, what the one line must say)
CASES = [
    ("build: NaN feature", "build --data {nan.csv} --out {dir}/o1", "missing or infinite"),
    ("build: value beyond float32", "build --data {big.csv} --out {dir}/o2", "beyond float32"),
    ("build: ragged row", "build --data {ragged.csv} --out {dir}/o3", "columns, the header has"),
    ("build: text in a feature", "build --data {text.csv} --out {dir}/o4", "is not a number"),
    ("build: folder named .csv", "build --data {folder.csv} --out {dir}/o5", "is a folder"),
    ("build: empty .npz", "build --data {zero.npz} --out {dir}/o6", "empty file"),
    ("build: .npz of strings", "build --data {strings.npz} --out {dir}/o7", "not numbers"),
    ("build: corrupted .npz", "build --data {garbage.npz} --out {dir}/o8", "not an .npz file"),
    ("build: unknown source", "build --data data.xyz --out {dir}/o9", "unknown data source"),
    ("build: --out is a file", "build --data breast_cancer --out {a-file}", "is an existing file"),
    ("build: missing DNN", "build --data breast_cancer --dnn {dir}/none.onnx --out {dir}/o10", "no such file"),
    ("build: corrupted DNN", "build --data breast_cancer --dnn {garbage.onnx} --out {dir}/o11", "cannot load"),
    ("build: labels 0..9, no --positive", "build --data {classes.csv} --out {dir}/o12", "--positive"),
    ("build: --positive not a label", "build --data breast_cancer --positive 7 --out {dir}/o13", "not a label"),
    ("build: --alpha out of range", "build --data breast_cancer --alpha 2 --out {dir}/o14", "not in (0, 1)"),
    ("build: --epochs 0", "build --data breast_cancer --epochs 0 --out {dir}/o15", "at least 1"),
    ("eval: more feature columns", "eval {A} --data {wide.csv}", "32 feature columns, but the artifact expects 30"),
    ("eval: no such data file", "eval {A} --data {dir}/none.csv", "no such file"),
    ("eval: no artifact", "eval {dir}/none --data breast_cancer", "no such artifact directory"),
    ("eval: corrupted manifest", "eval {corrupt} --data breast_cancer", "corrupted manifest"),
    ("eval: newer artifact format", "eval {newer} --data breast_cancer", "upgrade bnnembed"),
    ("eval: format_version 0", "eval {v0} --data breast_cancer", "format_version"),
    ("eval: edited bounds.npz", "eval {edited} --data breast_cancer", "does not match its hash"),
    ("eval: --positive contradicts", "eval {A} --data breast_cancer --positive 1", "contradicts the artifact"),
    ("eval: --positive without labels", "eval {A} --data {nolabel.csv} --positive 0", "no label column"),
    ("predict: --out in a missing folder", "predict {A} --data breast_cancer --out {dir}/nodir/p.csv", "does not exist"),
    ("predict: --out is a folder", "predict {A} --data breast_cancer --out {dir}", "is a folder"),
    ("predict: unknown engine", "predict {A} --data breast_cancer --out {dir}/p.csv --engine gpu", "invalid choice"),
    ("codegen: unknown board", "codegen {A} --board uno --out {dir}/proj", "unknown board"),
    ("codegen: --out is a file", "codegen {A} --board nucleo_f401re --out {a-file}", "is an existing file"),
    ("qemu: unknown machine", "qemu {A} --machine pdp11 --data breast_cancer", "invalid choice"),
    ("qemu: --rows 0", "qemu {A} --machine mps2-an386 --data breast_cancer --rows 0", "at least 1"),
    ("simulate: --rows -5", "simulate {A} --machine mps2-an386 --data breast_cancer --rows -5 --out {dir}/s.csv",
     "at least 1"),
    ("simulate: --out in a missing folder",
     "simulate {A} --machine mps2-an386 --data breast_cancer --out {dir}/nodir/s.csv", "does not exist"),
    ("host: bad --tcp", "host {A} --tcp notaport", "expected PORT"),
    ("host: no such serial port", "host {A} --serial {dir}/ttyNONE --log {dir}/h.sqlite", "cannot open serial port"),
    ("host: no link given", "host {A}", "one of the arguments"),
    ("log: --limit -5", "log {A} --limit -5", "at least 1"),
    ("log: no log yet", "log {A} --log {dir}/none.sqlite", "no decision log yet"),
    ("explain: row out of range", "explain {A} --data breast_cancer --row 100000", "out of range"),
    ("explain: unknown decision id", "explain {A} --id 0000000000000000", "0000000000000000"),
    ("explain: --all without --out", "explain {A} --data breast_cancer --all", "--all needs"),
    ("explain: --row -1", "explain {A} --data breast_cancer --row -1", "at least 0"),
    ("verify: no radius or delta", "verify {A} --data breast_cancer --row 0", "exactly one of"),
    ("verify: --radius -1", "verify {A} --data breast_cancer --row 0 --radius -1", "at least 0"),
    ("certify: --limit -5", "certify {A} --data breast_cancer --limit -5", "at least 1"),
    ("certify: --rows -5", "certify {A} --data breast_cancer --rows -5", "row numbers are 0 or more"),
    ("certify: --rows 1-x", "certify {A} --data breast_cancer --rows 1-x", "use row numbers"),
    ("certify: --retrain without --domain", "certify {A} --data breast_cancer --retrain-rounds 1", "needs --domain"),
]


def _fill(arg: str, env: dict) -> str:
    for key, value in env.items():
        arg = arg.replace("{" + key + "}", value)
    return arg


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's usage errors
        return int(exc.code)


@pytest.mark.parametrize("case,argv,says", CASES, ids=[c[0] for c in CASES])
def test_user_mistake_is_one_line(env, case, argv, says, capsys):
    args = [_fill(a, env) for a in argv.split()]
    t0 = time.perf_counter()
    rc = run_cli(args)
    seconds = time.perf_counter() - t0
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert rc == 2, (case, rc, err)
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert says in err, err
    assert seconds < 20, f"{case}: the mistake was found only after {seconds:.1f} s of work"
    if args[0] == "build" and "is an existing file" not in says:  # a refused build leaves nothing behind
        assert not os.path.exists(args[args.index("--out") + 1])
