"""The int8 peer: a little int8 MLP distilled and calibrated exactly like the bounds, side by side.

    .venv/bin/python bench/int8_peer.py --artifact DIR --data SRC [--hidden 64,32] [--logit-weight 0.5]
        [--seeds 0,1,2] [--alphas 0.01,0.005] [--name NAME] [--out bench/int8_peer.json]

For a bounds artifact written by ``bnnembed build`` (its split.npz, DNN and metrics.json, so the
rows, the DNN and the calibration split are the ones the bounds saw), this script

1. remakes the bounds' distillation inputs the way the build made them (the training rows plus
   ``augment_inputs`` copies from the build's seed and copy count, labelled by the DNN);
2. trains a little float MLP on them, in two variants: cross-entropy on the DNN's yes/no, and the
   same plus ``--logit-weight`` times a squared error on the DNN's logit clipped to +-8; each
   variant once per ``--seeds`` (the input scale is folded into the first layer);
3. quantises it to int8 with bench/run.py's ``int8_quantize`` (the TFLite Micro int8 scheme), the
   clipping quantile chosen on the training rows;
4. calibrates it with the bounds' procedure: its int32 logit is mapped onto an integer grid of
   ``--grid`` steps (score ``s``; the yes side reads ``s``, the no side ``grid - s``, like the
   one-network baseline of the build), centred at logit 0 (the build centres the baseline and the
   bounds at their training-split medians), and ``calibrate`` picks one margin by
   fixed-sequence Clopper-Pearson testing on the calibration split (start margin from the training
   split); the device answers yes iff ``acc >= T_yes``, no iff ``acc <= T_no``;
5. recalibrates the bounds at the same alphas with the same ``calibrate`` (median centres from the
   training split, as the build does);
6. reports test-split coverage, disagreements and their Clopper-Pearson bound for both (the peers:
   the first seed, and the range over the seeds), and flash bytes and instructions per input on
   the Cortex-M4 (mps2-an386) and Cortex-M0 (microbit) under QEMU on the first test rows: the
   first seed's int8 network as plain C (bench/c/int8_dense.c answering on the two thresholds of
   the first alpha, every answer checked against the host), the bounds through
   ``bnnembed qemu --json`` (its default kernel).

Results are merged into ``--out`` under ``--name`` (one entry per data set) and the markdown
table of every entry in it is printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import _parse, dense_device, get_machine, int8_emulate, int8_logits, int8_quantize  # noqa: E402

from bnnembed.artifact import load_artifact  # noqa: E402
from bnnembed.learn.calibrate import Centers, PairScores, calibrate, decisions_at, median_centers  # noqa: E402
from bnnembed.learn.config import auto_augment, auto_epochs, config_of  # noqa: E402
from bnnembed.learn.data import load_data  # noqa: E402
from bnnembed.learn.distill import augment_inputs, domain_inputs  # noqa: E402
from bnnembed.learn.metrics import decision_metrics  # noqa: E402
from bnnembed.model.intmodel import Decision, bound_scores  # noqa: E402
from bnnembed.render.c import deployed_macs  # noqa: E402

MACHINES = ("mps2-an386", "microbit")  # Cortex-M4, Cortex-M0


# ------------------------------------------------------------------------------------------
# the student
# ------------------------------------------------------------------------------------------


def distillation_inputs(art, X_train: np.ndarray, dnn) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """The build's distillation set: training rows plus augment copies (same seed, same count)."""
    cfg = config_of(art.metrics)
    split = art.metrics.get("split") or {}
    rng = np.random.default_rng(cfg.seed)
    copies = cfg.augment if cfg.augment is not None else auto_augment(len(X_train))
    shape = (art.manifest.get("dataset") or {}).get("image_shape")
    X_aug = augment_inputs(X_train, copies, rng, tuple(shape) if shape else None)
    if cfg.domain_samples:
        X_aug = np.concatenate([X_aug, domain_inputs(X_train, cfg.domain_samples, rng)])
    X_fit = np.concatenate([X_train, X_aug]).astype(np.float32)
    raw = dnn.raw(X_fit)
    yes = dnn.says_yes(X_fit)
    info = {"distillation_inputs": int(len(X_aug)), "augment": int(copies),
            "build_distillation_inputs": split.get("distillation_inputs"),
            "build_extra_inputs_not_remade": int(split.get("extra_inputs") or 0)}
    return X_fit, yes, raw[:, 0] if raw.shape[1] == 1 else None, info


def train_student(X: np.ndarray, yes: np.ndarray, logit: np.ndarray | None, hidden: tuple[int, ...],
                  epochs: int, seed: int, logit_weight: float, logit_clip: float = 8.0):
    """Float MLP (ReLU hidden layers, one logit) on ``X / x_scale``; returns the layers as
    ``[(W, b), ...]`` with ``x_scale`` folded into the first layer."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    x_scale = float(np.abs(X).max()) or 1.0
    dims = [X.shape[1], *hidden, 1]
    mods: list = []
    for i in range(len(dims) - 1):
        mods.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            mods.append(nn.ReLU())
    net = nn.Sequential(*mods)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    xt = torch.from_numpy((X / x_scale).astype(np.float32))
    yt = torch.from_numpy(yes.astype(np.float32))
    use_logit = logit_weight > 0 and logit is not None
    lt = torch.from_numpy(np.clip(logit, -logit_clip, logit_clip).astype(np.float32)) if use_logit else None
    g = torch.Generator().manual_seed(seed)
    bce = nn.BCEWithLogitsLoss()
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(xt), generator=g).split(128):
            z = net(xt[idx])[:, 0]
            loss = bce(z, yt[idx])
            if use_logit:
                loss = loss + logit_weight * torch.mean((z - lt[idx]) ** 2) / logit_clip
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    lins = [m for m in net if isinstance(m, nn.Linear)]
    layers = [(m.weight.detach().numpy().astype(np.float64).copy(), m.bias.detach().numpy().astype(np.float64).copy())
              for m in lins]
    layers[0] = (layers[0][0] / x_scale, layers[0][1])
    return [(W.astype(np.float32), b.astype(np.float32)) for W, b in layers]


class Grid:
    """The int32 logit on an integer grid 0..n: ``s = clip(floor(acc / step) + n/2, 0, n)``; the yes
    side reads ``s``, the no side ``n - s`` (the one-network baseline's reading)."""

    def __init__(self, train_acc: np.ndarray, n: int):
        self.n = n
        self.half = n // 2
        self.step = int(max(1, np.ceil(np.quantile(np.abs(train_acc), 0.99) / self.half)))

    def scores(self, acc: np.ndarray, dnn_yes: np.ndarray) -> PairScores:
        s = np.clip(np.floor_divide(acc, self.step) + self.half, 0, self.n).astype(np.int64)
        return PairScores(s, self.n - s, np.asarray(dnn_yes, bool))

    def centers(self) -> Centers:
        return Centers(self.half, self.n - self.half, self.n)

    def acc_thresholds(self, tau_yes: int, tau_no: int) -> tuple[int, int]:
        """yes iff acc >= T_yes, no iff acc <= T_no (exact equivalents of s >= tau_yes, n - s >= tau_no)."""
        big = 2**31 - 1
        t_yes = -big - 1 if tau_yes <= 0 else (big if tau_yes > self.n else (tau_yes - self.half) * self.step)
        t_no = big if tau_no <= 0 else (-big - 1 if tau_no > self.n else (self.half - tau_no + 1) * self.step - 1)
        return int(t_yes), int(t_no)


# ------------------------------------------------------------------------------------------
# calibration, both models the same way
# ------------------------------------------------------------------------------------------


def calibrated(scores: dict[str, PairScores], centers: Centers, alpha: float, delta: float) -> dict:
    cal = calibrate(scores["calibration"], scores["train"], centers, alpha, delta)
    margin = cal.margin if cal.certified else centers.score_range + 1
    dec = decisions_at(scores["test"], centers, margin)
    m = decision_metrics(dec, scores["test"].dnn_yes, delta)
    step = next((s for s in cal.steps if s["margin"] == cal.margin), None)
    return {"alpha": alpha, "certified": cal.certified, "margin": cal.margin, "tau_yes": cal.tau_yes,
            "tau_no": cal.tau_no, "start_margin": cal.start_margin,
            "calibration": step, "test": {k: m[k] for k in ("rows", "coverage", "coverage_yes", "coverage_no",
                                                             "decided", "disagreements", "disagreement_rate",
                                                             "disagreement_bound")},
            "_decisions": dec}


# ------------------------------------------------------------------------------------------
# the device
# ------------------------------------------------------------------------------------------


def peer_sources(in_scale, q_layers, t_yes: int, t_no: int, work: Path):
    """bench/run.py's int8 sources, with the three-way answer on the two thresholds."""
    from run import int8_sources

    srcs, flags = int8_sources(in_scale, q_layers, work)
    text = (HERE / "c" / "int8_dense.c").read_text()
    old = "return acc > 0 ? 1 : 0;"
    if old not in text:
        raise SystemExit("bench/c/int8_dense.c: the decision line changed; update int8_peer.py")
    new = (f"return acc >= (int32_t)({t_yes}LL) ? {int(Decision.YES)} : "
           f"(acc <= (int32_t)({t_no}LL) ? {int(Decision.NO)} : {int(Decision.UNKNOWN)});")
    (work / "int8_peer.c").write_text(text.replace(old, new))
    return [srcs[0], str(work / "int8_peer.c")], flags


def peer_device(in_scale, q_layers, t_yes: int, t_no: int, machine: str, X: np.ndarray,
                host_dec: np.ndarray) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        srcs, flags = peer_sources(in_scale, q_layers, t_yes, t_no, work)
        r = dense_device("int8_peer", srcs, flags, machine, X, work, host_dec == int(Decision.YES))
        r.pop("agreement_with_dnn")  # here: yes answers against the host's; all three are checked below
        if r.get("instructions") is None:
            return r
        dec = _parse((work / "bnn_out.txt").read_text(), len(X), get_machine(machine))[0]
    r["mismatches_with_host"] = int(np.sum(dec != host_dec))
    return r


def bounds_device(art_dir: str, data: str, machine: str, rows: int) -> dict:
    cmd = [sys.executable, "-m", "bnnembed", "qemu", art_dir, "--machine", machine, "--data", data,
           "--rows", str(rows), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"bounds on {machine}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


# ------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------


def run(args) -> dict:
    import torch

    torch.set_num_threads(1)
    art = load_artifact(args.artifact)
    delta = float(art.metrics.get("delta", 0.05))
    split = np.load(Path(args.artifact) / "split.npz")
    X = load_data(args.data, require_labels=False).X.astype(np.float32)
    Xs = {k: X[split[k]] for k in ("train", "calibration", "test")}
    dnn = art.load_dnn()
    dnn_yes = {k: dnn.says_yes(v) for k, v in Xs.items()}
    alphas = [float(a) for a in args.alphas.split(",")]

    # bounds, recalibrated at each alpha with the build's procedure
    t0 = time.time()
    bits = {k: art.encoder.encode(v) for k, v in Xs.items()}
    b_scores = {k: PairScores(bound_scores(art.upper, b), bound_scores(art.lower, b), dnn_yes[k])
                for k, b in bits.items()}
    b_centers = median_centers(b_scores["train"], art.upper.score_range)
    _, stored_up, stored_lo = art.model.device_parts  # with shifted copies: the stored bounds, run k times
    bounds = {"shape": [list(stored_up.shape), list(stored_lo.shape)],
              "copies": 1 if art.copies is None else art.copies.k,
              "design": art.model.design, "binary_macs": deployed_macs(art.model),
              "at_alpha": {}}
    for a in alphas:
        r = calibrated(b_scores, b_centers, a, delta)
        r.pop("_decisions")
        bounds["at_alpha"][str(a)] = r
    # sanity: the build's own alpha reproduces metrics.json
    build_alpha = float(art.metrics.get("alpha", 0.05))
    check = calibrated(b_scores, b_centers, build_alpha, delta)
    bounds["build_alpha_reproduces_metrics"] = bool(
        check["test"]["decided"] == art.metrics.get("decided")
        and check["test"]["disagreements"] == art.metrics.get("disagreements"))

    # the peers: each variant over each seed, trained on the same distillation inputs
    X_fit, y_fit, logit_fit, dist = distillation_inputs(art, Xs["train"], dnn)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    epochs = args.epochs or auto_epochs(len(X_fit))
    seeds = [int(v) for v in args.seeds.split(",")]
    variants = {"cross-entropy": 0.0}
    if args.logit_weight > 0:
        variants[f"cross-entropy + {args.logit_weight:g} x logit regression"] = args.logit_weight
    a0 = alphas[0]
    X_dev = Xs["test"][: args.device_rows]
    peers = {}
    for vname, weight in variants.items():
        runs = []
        for seed in seeds:
            runs.append(train_peer(X_fit, y_fit, logit_fit, hidden, epochs, seed, weight, Xs, dnn_yes, alphas,
                                   delta, args.grid))
        first = runs[0]
        device = {}
        if not args.no_device:  # the first seed's network at the first alpha's thresholds
            th = first["at_alpha"][str(a0)]
            for m in MACHINES:
                in_scale, q_layers = first["_int8"]
                device[m] = peer_device(in_scale, q_layers, th["acc_t_yes"], th["acc_t_no"], m, X_dev,
                                        first["_decisions"][a0][: len(X_dev)])
                print(f"  {vname} {m}: {device[m]['instructions']} instructions", flush=True)
        for r in runs:
            r.pop("_int8")
            r.pop("_decisions")
        peers[vname] = {**{k: v for k, v in first.items() if k != "at_alpha"}, "at_alpha": first["at_alpha"],
                        "seeds": seeds, "by_seed": [{"seed": sd, "at_alpha": r["at_alpha"],
                                                     "int8_agreement": r["int8_agreement"]}
                                                    for sd, r in zip(seeds, runs)],
                        "device": device, "device_seed": seeds[0], "device_thresholds_alpha": a0}
    bounds["device"] = {}
    if not args.no_device:
        for m in MACHINES:
            q = bounds_device(args.artifact, args.data, m, args.device_rows)
            bounds["device"][m] = {k: q.get(k) for k in ("rows", "mismatches", "instructions_per_inference",
                                                         "encode_instructions", "bounds_instructions",
                                                         "model_flash_bytes", "runtime_flash_bytes", "flash_bytes")}
            print(f"  bounds {m}: {q.get('instructions_per_inference')} instructions", flush=True)
    return {"data": args.data.split(":")[0], "positive": art.manifest["positive"]["values"],
            "split": {k: int(len(v)) for k, v in Xs.items()}, "delta": delta,
            "dnn": art.manifest["dnn"].get("description"), "dnn_test_accuracy": art.metrics.get("dnn_accuracy"),
            "distillation": dist, "device_rows": int(len(X_dev)), "bounds": bounds, "peers": peers,
            "seconds": round(time.time() - t0, 1), "when": time.strftime("%Y-%m-%d")}


def train_peer(X_fit, y_fit, logit_fit, hidden, epochs, seed, weight, Xs, dnn_yes, alphas, delta, grid_n) -> dict:
    """Train, quantise and calibrate one int8 peer; keys starting with _ are for the device run."""
    layers = train_student(X_fit, y_fit, logit_fit, hidden, epochs, seed, weight)
    float_agree = {}
    for k, v in Xs.items():
        h = v.astype(np.float64)
        for i, (W, b) in enumerate(layers):
            h = h @ W.T.astype(np.float64) + b
            if i < len(layers) - 1:
                h = np.maximum(h, 0)
        float_agree[k] = float(np.mean((h[:, 0] > 0) == dnn_yes[k]))
    best = None
    for q in (1.0, 0.999, 0.99):  # chosen on the training rows only
        in_scale, q_layers = int8_quantize(layers, Xs["train"], clip_quantile=q)
        agree = float(np.mean((int8_logits(in_scale, q_layers, Xs["train"]) > 0) == dnn_yes["train"]))
        if best is None or agree > best[0]:
            best = (agree, q, in_scale, q_layers)
    _, clip_q, in_scale, q_layers = best
    acc = {k: int8_logits(in_scale, q_layers, v) for k, v in Xs.items()}
    for k, v in Xs.items():  # the accumulator is run.py's int8 model, bit for bit
        assert np.array_equal(acc[k] > 0, int8_emulate(in_scale, q_layers, v))
    grid = Grid(acc["train"], grid_n)
    s_scores = {k: grid.scores(acc[k], dnn_yes[k]) for k in Xs}
    out = {"layers": [Xs["train"].shape[1], *hidden, 1], "int8_macs": int(sum(W.size for W, _ in layers)),
           "epochs": epochs, "logit_weight": weight, "clip_quantile": clip_q, "grid": grid_n,
           "grid_step": grid.step, "float_agreement": float_agree,
           "int8_agreement": {k: float(np.mean((acc[k] > 0) == dnn_yes[k])) for k in Xs},
           # weights, biases, multipliers and shifts as stored in the C tables (no code)
           "model_table_bytes": int(sum(Wq.size + 4 * bq.size + 4 * m.size + s.size for Wq, bq, m, s in q_layers)),
           "at_alpha": {}, "_decisions": {}, "_int8": (in_scale, q_layers)}
    for a in alphas:
        r = calibrated(s_scores, grid.centers(), a, delta)
        out["_decisions"][a] = r.pop("_decisions")
        r["acc_t_yes"], r["acc_t_no"] = grid.acc_thresholds(r["tau_yes"], r["tau_no"])
        out["at_alpha"][str(a)] = r
    return out


def _cov(r: dict) -> str:
    t = r["test"]
    if not r["certified"]:
        return "not certified"
    return (f"{100 * t['coverage']:.1f}% ({t['disagreements']} / {t['decided']} disagree, "
            f"bound {100 * t['disagreement_bound']:.2f}%)")


def _spread(p: dict, a: str) -> str:
    covs = [100 * r["at_alpha"][a]["test"]["coverage"] if r["at_alpha"][a]["certified"] else 0.0 for r in p["by_seed"]]
    return f"{min(covs):.1f}-{max(covs):.1f}%" if max(covs) > 0 else "no seed certified"


def markdown(results: dict) -> str:
    out = []
    for name, w in results.items():
        alphas = list(w["bounds"]["at_alpha"])
        head = ["model", "flash B (M4 / M0)", "MACs per input", "instr per input M4 / M0",
                *[f"test coverage at a certified {100 * float(a):g}%" for a in alphas]]
        seeds = ",".join(map(str, next(iter(w["peers"].values()))["seeds"]))
        out += [f"**{name}** (split {w['split']['train']} / {w['split']['calibration']} / {w['split']['test']}, "
                f"{w['distillation']['distillation_inputs']:,} distillation inputs, DNN test accuracy "
                f"{100 * (w['dnn_test_accuracy'] or 0):.1f}%, delta {w['delta']}; int8 rows: seed "
                f"{seeds.split(',')[0]}, [range over seeds {seeds}])", "",
                "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

        def cell(dev, m, key):
            r = dev.get(m)
            return "n/a" if not r or r.get(key) is None else f"{r[key]:,.0f}"

        def pair(dev, key):
            return f"{cell(dev, 'mps2-an386', key)} / {cell(dev, 'microbit', key)}"

        b = w["bounds"]
        if b.get("design") == "one":  # one network read both ways: one shape, its hidden layers run once
            bname = f"one network {'-'.join(map(str, b['shape'][0]))}, read both ways"
        else:
            bname = "bound pair " + " + ".join("-".join(map(str, s)) for s in b["shape"])
        if b.get("copies", 1) > 1:
            bname += f", over {b['copies']} shifted copies"
        out.append(f"| {bname} | {pair(b['device'], 'flash_bytes')} | {b['binary_macs']:,} binary | "
                   f"{pair(b['device'], 'instructions_per_inference')} | "
                   + " | ".join(_cov(b["at_alpha"][a]) for a in alphas) + " |")
        for vname, p in w["peers"].items():
            out.append(f"| int8 MLP {'-'.join(map(str, p['layers']))}, {vname} | {pair(p['device'], 'flash_bytes')} | "
                       f"{p['int8_macs']:,} int8 | {pair(p['device'], 'instructions')} | "
                       + " | ".join(f"{_cov(p['at_alpha'][a])} [{_spread(p, a)}]" for a in alphas) + " |")
        out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifact", required=True, help="bounds artifact directory from 'bnnembed build'")
    ap.add_argument("--data", required=True, help="the data the artifact was built on (digits, mnist:DIR)")
    ap.add_argument("--name", help="entry name in the results (default: the data set's name)")
    ap.add_argument("--hidden", default="64,32", help="the int8 MLP's hidden widths")
    ap.add_argument("--epochs", type=int, default=None, help="default: the build's rule for the input count")
    ap.add_argument("--logit-weight", type=float, default=0.5,
                    help="a second peer variant adds this weight times a squared error on the DNN's clipped "
                         "logit (0: only the cross-entropy peer)")
    ap.add_argument("--seeds", default="0,1,2", help="training seeds of each peer (the device runs the first)")
    ap.add_argument("--grid", type=int, default=256, help="integer grid steps of the calibrated score")
    ap.add_argument("--alphas", default="0.01,0.005")
    ap.add_argument("--device-rows", type=int, default=50)
    ap.add_argument("--no-device", action="store_true")
    ap.add_argument("--out", default=str(HERE / "int8_peer.json"))
    args = ap.parse_args(argv)
    name = args.name or args.data.split(":")[0]
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    results[name] = run(args)
    out.write_text(json.dumps(results, indent=1, default=float) + "\n")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
