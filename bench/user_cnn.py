"""A user's multi-class CNN through every command, as a user runs them.

    .venv/bin/python bench/user_cnn.py [--out DIR] [--positive 3] [--epochs 30] [--certify-rows 20]

Trains a small 10-class CNN on the built-in digits (75% of the rows; the rest are the user's
"test file"), exports it to ONNX with a flat input reshaped inside the graph (what most
exported CNNs look like), writes CSV files with 0..9 labels and without labels, and then runs
the commands without ``--positive``: build, eval (labels / none), predict, qemu (Cortex-M4 and
M0), simulate (deferrals answered by the host DNN), explain, certify. Prints one table and writes
``DIR/user_cnn.json``. Every figure comes from the commands' own ``--json`` output.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import sys
import time

import numpy as np


def train_cnn(X, y, epochs: int, seed: int = 0):
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class Cnn(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                                   nn.Conv2d(8, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 10))

        def forward(self, x):
            return self.f(x.view(-1, 1, 8, 8) / 16.0)

    model = Cnn()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(X))
        for i in range(0, len(X), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()
    return model


def write_csv(path, X, y=None):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([f"p{i}" for i in range(X.shape[1])] + (["label"] if y is not None else []))
        for i, row in enumerate(X):
            w.writerow([f"{v:g}" for v in row] + ([int(y[i])] if y is not None else []))


def run(argv: list[str]) -> tuple[int, dict | None, float]:
    """One bnnembed command in-process; its --json output parsed."""
    from bnnembed.cli import main

    buf = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(buf):
        rc = main(argv)
    text = buf.getvalue().strip()
    try:
        out = json.loads(text) if text else None
    except json.JSONDecodeError:
        out = None
    return rc, out, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench/user_cnn_out")
    ap.add_argument("--positive", default="3")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--certify-rows", type=int, default=20)
    args = ap.parse_args()
    import torch
    from sklearn.datasets import load_digits

    os.makedirs(args.out, exist_ok=True)
    d = load_digits()
    X, y = d.data.astype(np.float32), d.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(X))
    X, y = X[order], y[order]
    n_build = int(0.75 * len(X))
    model = train_cnn(X[:n_build], y[:n_build], args.epochs)
    onnx_path = os.path.join(args.out, "cnn.onnx")
    torch.onnx.export(model, (torch.zeros(2, 64),), onnx_path, input_names=["features"],
                      dynamic_axes={"features": {0: "batch"}}, dynamo=False)
    with torch.no_grad():
        acc = float((model(torch.from_numpy(X[n_build:])).argmax(1).numpy() == y[n_build:]).mean())
    f = {k: os.path.join(args.out, k) for k in ("build.csv", "test.csv", "test_nolabel.csv")}
    write_csv(f["build.csv"], X[:n_build], y[:n_build])
    write_csv(f["test.csv"], X[n_build:], y[n_build:])
    write_csv(f["test_nolabel.csv"], X[n_build:])
    art = os.path.join(args.out, "A")
    res: dict = {"cnn_10class_test_accuracy": acc, "positive": args.positive, "test_rows": int(len(X) - n_build)}

    rc, m, s = run(["build", "--data", f["build.csv"], "--positive", args.positive, "--dnn", onnx_path,
                    "--out", art, "--json"])
    assert rc == 0, "build failed"
    res["build"] = {"seconds": round(s, 1), "coverage_test_split": m["coverage"], "decided": m["decided"],
                    "disagreements": m["disagreements"], "disagreement_bound": m["disagreement_bound"]}
    for name, data in (("labels", f["test.csv"]), ("nolabels", f["test_nolabel.csv"])):
        rc, m, _ = run(["eval", art, "--data", data, "--json"])
        res[f"eval_{name}"] = {k: m.get(k) for k in ("rows", "coverage", "decided", "disagreements",
                                                     "disagreement_rate", "dnn_accuracy")} if rc == 0 else rc
    rc, m, _ = run(["predict", art, "--data", f["test_nolabel.csv"], "--out", os.path.join(args.out, "p.csv"), "--json"])
    res["predict"] = m if rc == 0 else rc
    for machine in ("mps2-an386", "microbit"):
        rc, m, _ = run(["qemu", art, "--machine", machine, "--data", f["test.csv"], "--json"])
        res[f"qemu_{machine}"] = {k: m.get(k) for k in ("rows", "mismatches", "score_mismatches",
                                                        "instructions_per_inference", "flash_bytes")} if m else rc
    rc, m, _ = run(["simulate", art, "--machine", "mps2-an386", "--data", f["test_nolabel.csv"],
                    "--out", os.path.join(args.out, "sim.csv"), "--log", os.path.join(args.out, "log.sqlite"), "--json"])
    res["simulate"] = {k: m.get(k) for k in ("rows", "decided_on_device", "deferred", "answered_by_host",
                                             "deferred_agree_with_dnn", "undecided")} if m else rc
    rc, m, s = run(["explain", art, "--data", f["test.csv"], "--row", "0", "--json"])
    res["explain_row0"] = {"size": m["size"], "n_features": m["n_features"], "minimal": m["minimal"],
                           "seconds": round(s, 2)} if m else rc
    rc, m, s = run(["certify", art, "--data", f["test_nolabel.csv"], "--rows", f"0-{args.certify_rows - 1}",
                    "--limit", str(args.certify_rows), "--time-limit", "30", "--out",
                    os.path.join(args.out, "cert.jsonl"), "--json", "--no-metrics"])
    res["certify"] = ({k: m.get(k) for k in ("decided", "certified", "refuted", "timeout", "spurious",
                                             "cell_certified", "median_certificate_seconds")}
                      if m else rc)
    res["certify_seconds"] = round(s, 1)
    with open(os.path.join(args.out, "user_cnn.json"), "w") as fh:
        json.dump(res, fh, indent=2)
    json.dump(res, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
