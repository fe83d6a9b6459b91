"""Coverage of test-time shifted copies: the bounds run on k shifted copies of an image, scores summed.

    .venv/bin/python bench/test_time_shifts.py --data mnist:DIR ART [ART ...] [--alphas 0.01,0.005]
        [--out bench/test_time_shifts.json]

The design study behind ``bnnembed build --shift-copies 3|5`` (docs/coverage.md "Shifted copies"),
kept to measure the copies on artifacts built without them. For each artifact written by
``bnnembed build`` on an image data set (its split.npz and DNN), every split row is decided from
the sum of each bound's integer score over k copies of the image moved by one pixel (zero fill):
``1`` (the bounds as built), ``3h`` (left, none, right) and ``5`` (the four neighbours too).
The summed scores are calibrated with the build's own procedure (median centres from the training
split, fixed-sequence Clopper-Pearson testing on the calibration split, one shared margin), and
test-split coverage is reported with disagreements, at each alpha. Summing keeps the guarantee's
form: the sum is one integer score per bound, calibrated on rows the bounds never trained on.

What it costs on the device: k inferences per decision (the flash is unchanged). What it costs in
explanations: the SAT question holds k copies of the hidden layers, and each copy compares a pixel
with its neighbour's thresholds (the thermometer's cut points differ per pixel), so explanations are
over a finer input grid (measured in docs/explanations.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from int8_peer import calibrated  # noqa: E402

from bnnembed.artifact import load_artifact  # noqa: E402
from bnnembed.learn.calibrate import PairScores, median_centers  # noqa: E402
from bnnembed.learn.data import load_data  # noqa: E402
from bnnembed.model.shifts import SHIFT_SETS as BUILD_SHIFT_SETS, cut_points, summed_scores  # noqa: E402

#: the copies of each design (rows down, columns right): the build's own sets
SHIFT_SETS = {"1": BUILD_SHIFT_SETS[1], "3h": BUILD_SHIFT_SETS[3], "5": BUILD_SHIFT_SETS[5]}


def study(art_dir: str, data: str, alphas: list[float], delta: float = 0.05) -> dict:
    art = load_artifact(art_dir)
    shape = (art.manifest.get("dataset") or {}).get("image_shape")
    if not shape:
        raise SystemExit(f"{art_dir}: not an image data set (no image_shape in the manifest)")
    split = np.load(Path(art_dir) / "split.npz")
    X = load_data(data, require_labels=False).X.astype(np.float32)
    dnn = art.load_dnn()
    rows = {k: X[split[k]] for k in ("train", "calibration", "test")}
    yes = {k: dnn.says_yes(v) for k, v in rows.items()}
    out = {}
    for name, shifts in SHIFT_SETS.items():
        scores = {k: PairScores(summed_scores(art.upper, art.encoder, rows[k], tuple(shape), shifts),
                                summed_scores(art.lower, art.encoder, rows[k], tuple(shape), shifts), yes[k])
                  for k in rows}
        centers = median_centers(scores["train"], art.upper.score_range * len(shifts))
        res = {}
        for a in alphas:
            r = calibrated(scores, centers, a, delta)
            t = r["test"]
            res[str(a)] = {"certified": bool(r["certified"]), "coverage": t["coverage"],
                           "disagreements": t["disagreements"], "decided": t["decided"]}
        grid = [len(g) for g in cut_points(art.encoder, tuple(shape), shifts)]
        out[name] = {"copies": len(shifts), "at": res, "cut_points": int(sum(grid)),
                     "max_cut_points_per_pixel": int(max(grid))}
        print(Path(art_dir).name, name, f"({sum(grid)} cut points, at most {max(grid)} a pixel)", " | ".join(
            f"{a}: {v['coverage']:.1%} ({v['disagreements']}/{v['decided']})" if v["certified"] else f"{a}: none"
            for a, v in res.items()), flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", nargs="+", metavar="ART")
    ap.add_argument("--data", required=True, help="the data the artifacts were built on (mnist:DIR, digits)")
    ap.add_argument("--alphas", default="0.01,0.005")
    ap.add_argument("--out", default=None, help="write the results as JSON")
    args = ap.parse_args(argv)
    alphas = [float(a) for a in args.alphas.split(",")]
    results = {Path(a).name: study(a, args.data, alphas) for a in args.artifacts}
    means = {}
    for name in SHIFT_SETS:
        means[name] = {str(a): float(np.mean([r[name]["at"][str(a)]["coverage"] for r in results.values()]))
                       for a in alphas}
        print(f"mean over {len(results)} artifact(s), {name}: " +
              " | ".join(f"{a}: {v:.1%}" for a, v in means[name].items()))
    if args.out:
        Path(args.out).write_text(json.dumps({"artifacts": results, "means": means}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
