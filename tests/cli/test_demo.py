"""`bnnembed demo --quick` end to end: every file it promises exists, and the figures it prints
agree with each other, with the files it wrote and with the artifact recomputed here."""

from __future__ import annotations

import ast
import csv
import os
import re
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _tools import need_qemu_arm  # noqa: E402

from bnnembed.artifact import load_artifact  # noqa: E402
from bnnembed.cli import main  # noqa: E402
from bnnembed.learn.data import load_data  # noqa: E402
from bnnembed.model.decision_id import decision_id  # noqa: E402
from bnnembed.model.intmodel import Decision  # noqa: E402

pytestmark = [pytest.mark.qemu, pytest.mark.slow]
ROWS = 60
BOARD = "nucleo_f401re"


def _one(pattern: str, text: str) -> re.Match:
    found = list(re.finditer(pattern, text, re.M))
    assert len(found) == 1, f"expected one line matching {pattern!r}, got {len(found)}:\n{text[-3000:]}"
    return found[0]


def _csv(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_demo_quick_end_to_end(tmp_path, capsys):
    need_qemu_arm()
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--rows", str(ROWS)]) == 0
    text = capsys.readouterr().out
    art_dir = out / "artifact"
    art = load_artifact(str(art_dir))  # verifies every hash the manifest lists
    ds = load_data("digits", positive="5,6,7,8,9")
    n = len(ds.X)

    # the six steps ran, in order, and the demo says where everything is
    steps = [int(m.group(1)) for m in re.finditer(r"^=== (\d)\. ", text, re.M)]
    assert steps == [1, 2, 3, 4, 5, 6], steps
    assert _one(r"^demo finished: everything is in (.+)$", text).group(1) == str(out)

    # 1. build: the split and the test-split table are metrics.json's
    for name in ("manifest.json", "bounds.npz", "dnn.onnx", "metrics.json", "split.npz",
                 "risk_coverage_upper.png", "risk_coverage_lower.png", "workspace/cnf.json",
                 "workspace/cnf_upper.cnf", "workspace/cnf_lower.cnf"):
        assert (art_dir / name).is_file(), name
    plots = _one(r"^risk-coverage plots: (\S+), (\S+)$", text)
    assert all(os.path.isfile(p) and os.path.getsize(p) > 0 for p in plots.groups())
    m = art.metrics
    s = m["split"]
    b = _one(r"^digits: train (\d+) \(\+(\d+) distillation inputs\), calibration (\d+), test (\d+);", text)
    assert [int(v) for v in b.groups()] == [s["train"], s["distillation_inputs"], s["calibration"], s["test"]]
    assert s["train"] + s["calibration"] + s["test"] == n
    assert s["distillation_inputs"] == 4 * s["train"] and m["model"]["epochs"] == 6  # --quick
    t = _one(r"^(?:two networks|one network)\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+)%\s+(\d+)\s+(\d+)\s", text)
    assert float(t.group(1)) == pytest.approx(100 * m["coverage"], abs=0.051)
    assert (int(t.group(4)), int(t.group(5))) == (m["decided"], m["disagreements"])

    # 2. predict: every row once, split between the bounds and the DNN as numpy decides
    dec_all = art.decide(ds.X)
    p = _one(r"^(\d+) rows: (\d+) decided by the bounds \(numpy\), (\d+) deferred to the DNN -> (\S+)$", text)
    rows, by_bnn, by_dnn = (int(v) for v in p.groups()[:3])
    assert p.group(4) == str(out / "predictions.csv")
    pred = _csv(out / "predictions.csv")
    assert rows == n == len(pred) and by_bnn + by_dnn == n
    assert by_dnn == int((dec_all == Decision.UNKNOWN).sum()) == sum(r["source"] == "dnn" for r in pred) > 0

    # 3. codegen: the project holds as many files as it says, the model among them
    proj = out / f"project-{BOARD}"
    c = _one(r"^wrote (\d+) files to (\S+) for ", text)
    assert c.group(2) == str(proj)
    files = [f for f in proj.rglob("*") if f.is_file()]
    assert len(files) == int(c.group(1)), sorted(map(str, files))
    assert (proj / "platformio.ini").is_file() and (proj / "src" / "bnn_model.c").is_file()

    # 4. QEMU: no mismatch, and the decision counts are numpy's on the first ROWS rows
    dec = dec_all[:ROWS]
    # the digits pixels are bytes: the demo's QEMU run feeds them as such (bnn_decide_u8)
    q = _one(r"^machine \S+ \(\S+\), \S+ encoding, uint8 input: (\d+) rows, (\d+) decision mismatches, "
             r"(\d+) score mismatches", text)
    assert [int(v) for v in q.groups()] == [ROWS, 0, 0]
    counts = ast.literal_eval(_one(r"^decisions: (\{.*\})$", text).group(1))
    assert counts == {d.label: int((dec == d).sum()) for d in Decision}, counts
    n_unknown = counts["unknown"]
    assert 0 < n_unknown < ROWS  # the demo's task leaves some rows to the DNN

    # 5. simulate: the deferred rows are exactly the unknown ones, all answered and logged
    sim = _csv(out / "simulated.csv")
    assert [int(r["row"]) for r in sim] == list(range(ROWS))
    v = _one(r"^(\d+) rows on \S+ \(uint8 input\): (\d+) decided on the device, (\d+) deferred \((\d+) answered by the host DNN, "
             r"(\d+) undecided\); wrote (\S+)$", text)
    assert [int(x) for x in v.groups()[:5]] == [ROWS, ROWS - n_unknown, n_unknown, n_unknown, 0]
    assert v.group(6) == str(out / "simulated.csv")
    deferred = [int(r["row"]) for r in sim if r["source"] == "dnn"]
    assert deferred == np.flatnonzero(dec == Decision.UNKNOWN).tolist()
    dnn_yes = art.load_dnn().says_yes(ds.X[:ROWS])
    for i in deferred:
        assert sim[i]["final"] == ("yes" if dnn_yes[i] else "no")
    for r, d in zip(sim, dec):
        if d != Decision.UNKNOWN:
            assert (r["source"], r["final"]) == ("bnn", Decision(int(d)).label)
    assert int(_one(r"^row (\d+) was deferred: ", text).group(1)) == deferred[0]
    summary = dict(kv.split("=") for kv in _one(r"^summary: (.+)$", text).group(1).split(", "))
    assert (int(summary["records"]), int(summary["deferrals"]), int(summary["reports"])) == \
        (ROWS, n_unknown, ROWS - n_unknown)
    assert int(summary["refused"]) == 0
    assert (art_dir / "workspace" / "decisions.sqlite").is_file()

    # 6. explain: the first row the device decided, its decision and id recomputed here
    first = next(int(r["row"]) for r in sim if r["source"] == "bnn")
    e = _one(r"^\$ bnnembed explain (\S+) --data digits --row (\d+) .*--png (\S+)$", text)
    assert e.group(1) == str(art_dir) and int(e.group(2)) == first
    assert os.path.isfile(e.group(3)) and os.path.getsize(e.group(3)) > 0
    x = ds.X[first : first + 1]
    want_id = decision_id(art.model_hash, art.encode(x)[0])
    # two explanations of that decision: over the whole data box, then within 1 grey level
    decisions = re.findall(r"^decision (\w+) \(id ([0-9a-f]{16})\)", text, re.M)
    assert decisions == [(Decision(int(dec[first])).label, want_id)] * 2
    near = _one(r"^\$ bnnembed explain (\S+) --data digits --row (\d+) --delta 1 ", text)
    assert int(near.group(2)) == first
    sizes = [(int(a), int(b)) for a, b in re.findall(r"sufficient: these (\d+) of (\d+) features", text)]
    robust = re.findall(r"^  robust: it holds for every input", text, re.M)
    assert len(sizes) + len(robust) == 2 and len(sizes) >= 1  # the whole box is never robust here
    assert all(0 < k <= n == art.encoder.n_kept for k, n in sizes)
    assert "within delta 1 of the input" in text
