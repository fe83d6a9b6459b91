"""Side-by-side benchmark: BNN kernels, the DNN on the device, the host side and the cascade.

    .venv/bin/python bench/run.py [--quick] [--digits DIR] [--mnist DIR] [--mnist-data DIR]

Everything is measured in one run and written to ``bench/results.json`` and ``bench/results.md``
(see docs/benchmarks.md for what each number means). Workloads: the digits bounds and, when the
MNIST files are present (``--mnist-data``, default ``../shared/data/mnist``), the MNIST bounds
(positive = 5..9). Missing artifacts are built with ``bnnembed build`` into the given directory.

Device numbers are QEMU instruction counts (``-icount``, deterministic), not cycles:
- the bound pair with every popcount kernel that runs on the machine (the reference SWAR, 1, the
  libgcc builtin, 2, and the optimized ones), every decision checked against numpy; the fewest
  instructions per binary MAC with 0 mismatches is the kernel the boards on that core name
  (``--write-boards`` writes it into boards/*.toml);
- the DNN (the artifact's ONNX MLP, normalisation folded into the first layer) as emlearn's
  generated float C (``emlearn.net`` "loadable" inference) and as a hand-written int8 dense
  reference (bench/c/int8_dense.c), on the same machines.
Host numbers are single-threaded wall-clock throughputs (median of 5) on the same rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bnnembed.artifact import load_artifact
from bnnembed.render.c import PopcountStrategy, decision_macs, deployed_macs
from bnnembed.learn.data import load_data
from bnnembed.model.intmodel import bound_scores, combine
from bnnembed.device.elf import elf_symbols
from bnnembed.device.machines import get_machine
from bnnembed.device.qemu import (BuildOptions, _parse, check_against_numpy, defer_frame_instructions, qemu_command,
                                  write_rows)
from bnnembed.device.toolchain import TOOLCHAINS, require_tool
from bnnembed.render.quantize import Encoding, is_uint8_data

HERE = Path(__file__).resolve().parent
BOARDS = HERE.parent / "boards"
#: Zbb's `cpop` is a RISC-V instruction; every other kernel is portable C (assembly where the core allows).
ZBB_TOOLCHAIN = "riscv"


def kernels_for(machine: str) -> list[PopcountStrategy]:
    """Every kernel that runs on ``machine`` (all of them are measured; the boards take the best)."""
    riscv = get_machine(machine).toolchain == ZBB_TOOLCHAIN
    return [s for s in PopcountStrategy if s is not PopcountStrategy.ZBB or riscv]


def best_kernel(entry: dict, allow_zbb: bool = False) -> str:
    """The measured best kernel of one machine: fewest instructions per binary MAC, 0 mismatches;
    Zbb only where asked (the RISC-V boards are rv32imc: the ESP32-C3 has no Zbb)."""
    ok = {k: r for k, r in entry.items() if isinstance(r, dict) and r["mismatches"] == 0
          and r["score_mismatches"] == 0 and (allow_zbb or k != "zbb")}
    return min(ok, key=lambda k: ok[k]["instructions_per_bmac"])


_BOUND_TABLE = re.compile(r"^bnn_(upper|lower)_l\d+_(weights|max_mismatch)$|^bnn_(upper|lower)(_layers)?$")


# ------------------------------------------------------------------------------------------
# workloads
# ------------------------------------------------------------------------------------------


def ensure_artifact(path: str, data: str, positive: str, quick: bool) -> str:
    if not (Path(path) / "manifest.json").exists():
        from bnnembed.cli import main as cli

        args = ["build", "--data", data, "--positive", positive, "--out", path]
        if quick:
            args += ["--epochs", "5"]
        print(f"building {path} ({' '.join(args)})", flush=True)
        code = cli(args)
        if code != 0:
            raise SystemExit(f"building {path} failed")
    return path


# ------------------------------------------------------------------------------------------
# BNN on the device
# ------------------------------------------------------------------------------------------


def bnn_device(art, machine: str, X: np.ndarray, strategy: PopcountStrategy) -> dict:
    with tempfile.TemporaryDirectory() as work:
        rep = check_against_numpy(art, machine, X, BuildOptions(popcount=strategy), workdir=work)
        m = get_machine(machine)
        syms = elf_symbols(Path(work) / "fw.elf", m)
        bound_bytes = sum(size for name, _, size in syms if _BOUND_TABLE.match(name))
    weights = decision_macs(*art.model.device_parts[1:])  # the stored binary weights: one network's hidden layers once
    return {
        "kernel": strategy.name.lower(), "rows": rep.rows, "mismatches": rep.mismatches,
        "score_mismatches": rep.score_mismatches,
        "bounds_instructions": rep.bounds_instructions, "encode_instructions": rep.encode_instructions,
        "instructions_per_inference": rep.instructions_per_inference,
        "instructions_per_bmac": rep.instructions_per_bmac, "binary_macs": rep.binary_macs,
        "model_flash_bytes": rep.model_flash_bytes, "runtime_flash_bytes": rep.runtime_flash_bytes,
        "flash_bytes": rep.flash_bytes, "bound_table_bytes": bound_bytes,
        "bits_per_weight": round(8 * bound_bytes / weights, 4), "popcountsi2": rep.popcountsi2,
        "decisions": rep.decisions,
    }


# ------------------------------------------------------------------------------------------
# the DNN on the device: emlearn float C and an int8 reference
# ------------------------------------------------------------------------------------------


def dnn_layers(art):
    from bnnembed.logic.certify import read_onnx

    net = read_onnx(art.file(art.manifest["dnn"]["file"]))
    if net.n_out != 1:
        raise SystemExit("the bench expects a one-logit DNN (the default build's)")
    return [(np.asarray(W, np.float32), np.asarray(b, np.float32)) for W, b in net.layers]


def emlearn_sources(layers, work: Path) -> list[str]:
    import emlearn
    from emlearn.net import Wrapper

    acts = ["relu"] * (len(layers) - 1) + ["logistic"]
    wrapper = Wrapper(acts, [W.T.copy() for W, _ in layers], [b.copy() for _, b in layers], classifier="loadable")
    code = wrapper.save(name="dnn")
    n_in = layers[0][0].shape[1]
    (work / "dense_model.h").write_text(
        f"#include <stdint.h>\n#define DENSE_N_IN {n_in}\nint dense_predict(const float *x);\n")
    (work / "dnn_model.c").write_text(
        code + "\n#include \"dense_model.h\"\nint dense_predict(const float *x)\n"
        f"{{\n    return (int)dnn_predict(x, {n_in});\n}}\n")
    return [str(work / "dnn_model.c")], [f"-I{emlearn.includedir}"]


def _fixed_point(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (multiplier, shift) with multiplier * 2**-shift ~= real, multiplier < 2**31."""
    shift = np.full(real.shape, 31, np.int64)
    for i, r in enumerate(real):
        while r * 2.0 ** shift[i] >= 2**31:
            shift[i] -= 1
    mult = np.round(real * 2.0**shift).astype(np.int64)
    return mult, shift


def int8_quantize(layers, X: np.ndarray, clip_quantile: float = 1.0):
    """int8 model calibrated on ``X``: symmetric int8 weights with one scale per output channel
    (the row's largest |w|, or its ``clip_quantile`` quantile with larger weights clipped), int8
    activations with one scale per layer (99.9th percentile of each row's largest activation),
    int32 biases, per-channel fixed-point requantisation (TFLite Micro's int8 scheme, no SIMD)."""
    h = X.astype(np.float64)
    in_scale = float(np.abs(h).max()) / 127.0 or 1.0
    q_layers = []
    s_in = in_scale
    for i, (W, b) in enumerate(layers):
        W = W.astype(np.float64)
        lim = np.quantile(np.abs(W), clip_quantile, axis=1) if clip_quantile < 1.0 else np.abs(W).max(axis=1)
        s_w = np.where(lim > 0, lim / 127.0, 1.0)
        Wq = np.clip(np.round(W / s_w[:, None]), -127, 127).astype(np.int8)
        bq = np.round(b / (s_in * s_w)).astype(np.int64)
        h = h @ W.T + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0)
            s_out = float(np.quantile(h.max(axis=1), 0.999)) / 127.0 or 1.0
            mult, shift = _fixed_point(s_in * s_w / s_out)
            q_layers.append((Wq, bq, mult, shift))
            s_in = s_out
        else:
            q_layers.append((Wq, bq, np.zeros(len(b), np.int64), np.ones(len(b), np.int64)))
    return in_scale, q_layers


def int8_logits(in_scale, q_layers, X: np.ndarray) -> np.ndarray:
    """The int8 model's last-layer int32 accumulator, exactly as bench/c/int8_dense.c computes it."""
    v = X.astype(np.float32) * np.float32(1.0 / in_scale)
    a = np.clip(np.where(v >= 0, np.floor(v + np.float32(0.5)), np.ceil(v - np.float32(0.5))), -128, 127).astype(np.int64)
    for i, (Wq, bq, mult, shift) in enumerate(q_layers):
        acc = a @ Wq.astype(np.int64).T + bq
        if i < len(q_layers) - 1:
            r = np.maximum(acc, 0) * mult[None, :]
            a = np.clip((r + (1 << (shift - 1))[None, :]) >> shift[None, :], -128, 127)
    return acc[:, 0]


def int8_emulate(in_scale, q_layers, X: np.ndarray) -> np.ndarray:
    """The int8 model's yes/no (accumulator > 0)."""
    return int8_logits(in_scale, q_layers, X) > 0


def int8_sources(in_scale, q_layers, work: Path):
    n_in = q_layers[0][0].shape[1]
    width = max(max(W.shape) for W, _, _, _ in q_layers)
    lines = ["#include \"dense_model.h\"", ""]
    join = lambda v: ", ".join(map(str, np.asarray(v).ravel().tolist()))
    for i, (Wq, bq, mult, shift) in enumerate(q_layers):
        lines.append(f"static const int8_t dense_w{i}[{Wq.size}] = {{{join(Wq)}}};")
        lines.append(f"static const int32_t dense_b{i}[{bq.size}] = {{{join(bq)}}};")
        lines.append(f"static const int32_t dense_m{i}[{bq.size}] = {{{join(mult)}}};")
        lines.append(f"static const int8_t dense_s{i}[{bq.size}] = {{{join(shift)}}};")
    lines.append(f"const dense_layer_t dense_layers[{len(q_layers)}] = {{")
    for i, (Wq, bq, mult, shift) in enumerate(q_layers):
        lines.append(f"    {{ {Wq.shape[1]}, {Wq.shape[0]}, dense_w{i}, dense_b{i}, dense_m{i}, dense_s{i} }},")
    lines.append("};")
    (work / "int8_model.c").write_text("\n".join(lines) + "\n")
    inv = np.float32(1.0 / in_scale)
    (work / "dense_model.h").write_text(f"""#include <stdint.h>
#define DENSE_N_IN {n_in}
#define DENSE_N_LAYERS {len(q_layers)}
#define DENSE_MAX_WIDTH {width}
#define DENSE_IN_SCALE_INV {float(inv).hex()}f
typedef struct {{ uint32_t n_in, n_out; const int8_t *weights; const int32_t *bias;
                 const int32_t *multiplier; const int8_t *shift; }} dense_layer_t;
extern const dense_layer_t dense_layers[DENSE_N_LAYERS];
int dense_predict(const float *x);
""")
    return [str(work / "int8_model.c"), str(HERE / "c" / "int8_dense.c")], []


def defer_sources(n_in: int, work: Path):
    from bnnembed._resources import resource_dir

    fw = resource_dir("firmware")
    (work / "dense_model.h").write_text(
        f"#include <stdint.h>\n#define DENSE_N_IN {n_in}\nint dense_predict(const float *x);\n")
    return [str(HERE / "c" / "defer_frame.c"), str(fw / "bnn_protocol.c")], [f"-I{fw}"]


_DNN_SYMBOL = re.compile(r"^(dnn_|eml_|dense_|q_buf_|clamp_q)")


def dense_device(kind: str, sources, extra_flags, machine_name: str, X: np.ndarray, work: Path,
                 expected: np.ndarray) -> dict:
    machine = get_machine(machine_name)
    # a coarser -icount step keeps millions of instructions inside SysTick's 24 bits
    if machine.toolchain == "arm":
        machine = dataclasses.replace(machine, icount_shift=3)
    tc = TOOLCHAINS[machine.toolchain]
    cc = require_tool(tc.cc, tc.apt)
    elf = work / "dense.elf"
    from bnnembed._resources import resource_dir

    counter = resource_dir("firmware") / "test"  # bnn_test_counter.h, shared with the QEMU drivers
    cmd = [cc, *tc.base_flags, *machine.cflags, "-O2", "-std=c99", "-Wall", f"-I{work}", f"-I{counter}", *extra_flags,
           *machine.memory_map_flags(),
           *sources, str(HERE / "c" / "dense_main.c"), "-lm", "-o", str(elf)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        over = re.search(r"region `(\w+)' overflowed by (\d+) bytes", proc.stderr)
        if over:  # e.g. float MNIST weights on a 256 KiB-flash Cortex-M0
            return {"kind": kind, "rows": 0, "instructions": None, "flash_bytes": None,
                    "agreement_with_dnn": None,
                    "does_not_fit": f"{over.group(1)} overflowed by {over.group(2)} bytes"}
        raise SystemExit(f"{kind} on {machine.name}: compile failed\n{proc.stderr[-2000:]}")
    write_rows(work / "bnn_rows.bin", X, Encoding.FLOAT)
    out = work / "bnn_out.txt"
    if out.exists():
        out.unlink()
    subprocess.run(qemu_command(machine, elf, out), cwd=work, capture_output=True, timeout=1200)
    dec, _, _, _, net = _parse(out.read_text(), X.shape[0], machine)
    flash = sum(size for name, kind_, size in elf_symbols(elf, machine)
                if _DNN_SYMBOL.match(name) and kind_.lower() in "trd")
    return {"kind": kind, "rows": int(X.shape[0]), "instructions": float(np.mean(net)),
            "flash_bytes": int(flash), "agreement_with_dnn": float(np.mean((dec == 1) == expected))}


# ------------------------------------------------------------------------------------------
# host side
# ------------------------------------------------------------------------------------------


def median_time(fn, repeat: int = 5) -> float:
    """Median wall time of ``repeat`` calls (the best one is not robust on a shared machine)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def torch_bounds(art):
    """The torch float forward of the same bounds: +-1 weights, bias-and-sign thresholds."""
    import torch

    def net(bound):
        mods = []
        for i, layer in enumerate(bound.layers):
            from bnnembed.model.packing import unpack_bits

            wb = unpack_bits(layer.weights, layer.n_in).astype(np.float32)
            lin = torch.nn.Linear(layer.n_in, layer.n_out)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(1.0 - 2.0 * wb))
                # agreement c = (n + a.w) / 2 >= T  <=>  a.w - (2T - n) >= 0
                lin.bias.copy_(torch.from_numpy(-(2.0 * layer.thresholds - layer.n_in).astype(np.float32)))
            mods.append(lin)
        return mods

    up, lo = net(art.upper), net(art.lower)

    def forward(bits_u8):
        with torch.no_grad():
            x0 = 1.0 - 2.0 * torch.from_numpy(bits_u8).float()
            outs = []
            for mods in (up, lo):
                x = x0
                for lin in mods[:-1]:
                    x = torch.where(lin(x) >= 0, -1.0, 1.0)  # fires -> bit 1 -> -1
                outs.append(mods[-1](x)[:, 0] >= 0)
            return outs

    return forward


def host(art, X: np.ndarray) -> dict:
    import onnxruntime as ort
    import torch

    torch.set_num_threads(1)
    bits = art.encoder.encode(X)

    def numpy_pair():
        su = bound_scores(art.upper, bits)
        sl = bound_scores(art.lower, bits)
        return combine(su >= art.upper.tau, sl >= art.lower.tau)

    fwd = torch_bounds(art)
    # the torch forward decides exactly like numpy
    tu, tl = fwd(bits)
    dec_np = numpy_pair()
    dec_torch = combine(tu.numpy(), tl.numpy())
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(art.file(art.manifest["dnn"]["file"]), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    t_np = median_time(numpy_pair)
    t_torch = median_time(lambda: fwd(bits))
    t_ort = median_time(lambda: sess.run(None, {name: X}))
    t_enc = median_time(lambda: art.encoder.encode(X))
    n = X.shape[0]
    return {
        "rows": n, "numpy_rows_per_s": n / t_np, "torch_rows_per_s": n / t_torch,
        "onnxruntime_dnn_rows_per_s": n / t_ort, "encode_rows_per_s": n / t_enc,
        "numpy_vs_torch": t_torch / t_np, "numpy_vs_onnxruntime": t_ort / t_np,
        "torch_equals_numpy": bool(np.array_equal(dec_np, dec_torch)),
    }


# ------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------


def run_workload(name: str, art_dir: str, data: str, quick: bool, machines: list[str],
                 kernels_only: bool = False) -> dict:
    art = load_artifact(art_dir)
    X = load_data(data, require_labels=False).X.astype(np.float32)
    split = Path(art_dir) / "split.npz"
    if split.exists():  # the test split first: rows neither training nor calibration saw
        test = np.load(split)["test"]
        X = np.concatenate([X[test], np.delete(X, test, axis=0)])
    n_dev = 100 if quick else 400
    n_dnn = 5 if quick else 20
    Xd = X[:n_dev]
    res = {"artifact": Path(art_dir).name, "model_hash": art.model_hash,
           "data": data.split(":")[0],
           "bounds": [list(b.shape) for b in (art.upper, art.lower)],
           "design": art.model.design,
           "binary_macs": deployed_macs(art.model),
           "hidden_macs": deployed_macs(art.model, hidden_only=True),
           "dnn_layers": None, "device": {}, "device_uint8": {}, "dnn_device": {}, "device_rows": n_dev,
           "artifact_note": art.manifest.get("notes")}
    layers = dnn_layers(art)
    res["dnn_layers"] = [layers[0][0].shape[1]] + [W.shape[0] for W, _ in layers]
    res["dnn_macs"] = int(sum(W.size for W, _ in layers))
    dnn = art.load_dnn()
    expected = dnn.says_yes(X[:n_dnn])
    in_scale, q_layers = int8_quantize(layers, X[: min(2000, len(X))], clip_quantile=0.99)
    res["int8_host_agreement"] = float(np.mean(int8_emulate(in_scale, q_layers, X) == dnn.says_yes(X)))
    for m in machines:
        entry = {}
        for strat in kernels_for(m):
            t0 = time.time()
            entry[strat.name.lower()] = bnn_device(art, m, Xd, strat)
            print(f"  {name} {m} {strat.name}: {entry[strat.name.lower()]['instructions_per_bmac']} instr/bMAC "
                  f"({time.time() - t0:.0f} s)", flush=True)
        entry["optimized"] = best_kernel(entry)  # what the boards on this core name
        if is_uint8_data(Xd):  # pixels: the same inference fed bytes (bnn_decide_u8), boards' kernel
            with tempfile.TemporaryDirectory() as work:
                rep = check_against_numpy(art, m, Xd, BuildOptions(popcount=PopcountStrategy[entry["optimized"].upper()],
                                                                   uint8_input=True), workdir=work)
            res["device_uint8"][m] = {"mismatches": rep.mismatches + rep.score_mismatches,
                                    "instructions_per_inference": rep.instructions_per_inference,
                                    "encode_instructions": rep.encode_instructions}
        if "zbb" in entry:
            entry["optimized_zbb"] = best_kernel(entry, allow_zbb=True)
        res["device"][m] = entry
        if kernels_only:
            continue
        dd = {}
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            srcs, flags = emlearn_sources(layers, work)
            dd["emlearn_float"] = dense_device("emlearn_float", srcs, flags, m, X[:n_dnn], work, expected)
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            srcs, flags = int8_sources(in_scale, q_layers, work)
            dd["int8"] = dense_device("int8", srcs, flags, m, X[:n_dnn], work, expected)
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            srcs, flags = defer_sources(layers[0][0].shape[1], work)
            dd["deferral_frame"] = dense_device("deferral_frame", srcs, flags, m, X[:n_dnn], work,
                                                np.ones(n_dnn, bool))
        if m in res["device_uint8"]:  # the frame the link builds from those bytes (word-wise CRC and COBS)
            dd["deferral_frame_uint8"] = {"instructions": defer_frame_instructions(
                X.shape[1], m, X[:n_dnn], uint8_input=True)}
        print(f"  {name} {m} DNN: {dd['emlearn_float']['instructions']} (float) "
              f"{dd['int8']['instructions']} (int8) instructions", flush=True)
        res["dnn_device"][m] = dd
    if kernels_only:
        return res
    # host
    n_host = 2000 if quick else 10000
    Xh = X[np.arange(n_host) % len(X)]
    res["host"] = host(art, Xh)
    # cascade: every input runs the pair; undecided inputs go to the host
    opt = res["device"][machines[0]][res["device"][machines[0]]["optimized"]]
    dec = opt["decisions"]
    decided = (dec.get("yes", 0) + dec.get("no", 0)) / max(1, sum(dec.values()))
    metrics_cov = art.metrics.get("coverage") if isinstance(art.metrics, dict) else None
    pair = {m: res["device"][m][res["device"][m]["optimized"]]["instructions_per_inference"] for m in machines}
    defer = {m: res["dnn_device"][m]["deferral_frame"]["instructions"] for m in machines}
    res["cascade"] = {
        "coverage_bench_rows": decided, "coverage_test_split": metrics_cov,
        "host_calls_per_1000": round(1000 * (1 - decided), 1),
        "pair_instructions_per_input": pair,
        "deferral_frame_instructions": defer,
        # decided inputs cost the pair; undecided ones the pair plus building the deferral frame
        "expected_device_instructions_per_input": {m: pair[m] + (1 - decided) * defer[m] for m in machines},
        # a DEFER frame as a share of one inference: float input, and bytes where the data are bytes
        "defer_frame_share": {m: defer[m] / pair[m] for m in machines},
        "dnn_on_device_instructions_per_input": {
            m: res["dnn_device"][m]["emlearn_float"]["instructions"] for m in machines},
        "int8_on_device_instructions_per_input": {
            m: res["dnn_device"][m]["int8"]["instructions"] for m in machines},
    }
    u8 = {m: (res["device_uint8"][m]["instructions_per_inference"],
              res["dnn_device"][m]["deferral_frame_uint8"]["instructions"])
          for m in machines if "deferral_frame_uint8" in res["dnn_device"][m]}
    if u8:
        res["cascade"]["uint8_input_instructions_per_input"] = {m: v[0] for m, v in u8.items()}
        res["cascade"]["deferral_frame_uint8_instructions"] = {m: v[1] for m, v in u8.items()}
        res["cascade"]["defer_frame_share_uint8"] = {m: v[1] / v[0] for m, v in u8.items()}
        res["cascade"]["expected_device_instructions_per_input_uint8"] = {
            m: v[0] + (1 - decided) * v[1] for m, v in u8.items()}
    return res


def _fmt(v, spec=".3f"):
    return "n/a" if v is None else format(v, spec)


def ratio(a, b):
    return None if (a is None or b is None or b == 0) else a / b


def markdown(results: dict) -> str:
    out = ["# bnnembed benchmark", "", f"{results['mode']} run, {results['when']}; instructions are QEMU "
           "`-icount` instruction counts (not cycles); host throughputs single-threaded, median of 5.", ""]
    for name, w in results["workloads"].items():
        out += [f"## {name}: bounds {' / '.join('-'.join(map(str, s)) for s in w['bounds'])}, "
                f"DNN {'-'.join(map(str, w['dnn_layers']))}", "",
                f"{w['binary_macs']} binary MACs per decision ({w.get('design', 'pair')}), {w['dnn_macs']} DNN MACs; "
                f"int8 model agrees with the DNN on {w['int8_host_agreement']:.4f} of all rows (host emulation).", "",
                *([f"**Note:** {w['artifact_note']}", ""] if w.get("artifact_note") else []),
                "| machine | kernel | mismatches | bounds instr | instr / binary MAC | vs reference | "
                "flash B (model + runtime) | bits / weight |", "|---|---|---|---|---|---|---|---|"]
        for m, e in w["device"].items():
            ref = e["swar"]["bounds_instructions"]
            for k, r in e.items():
                if not isinstance(r, dict):
                    continue
                star = (" (boards)" if k == e["optimized"] else
                        " (best with Zbb)" if k == e.get("optimized_zbb") else "")
                out.append(f"| {m} | {k}{star} | {r['mismatches']}/{r['score_mismatches']} | {r['bounds_instructions']:.0f} | "
                           f"{r['instructions_per_bmac']:.3f} | {ratio(ref, r['bounds_instructions']):.2f}x | "
                           f"{r['flash_bytes']} ({r['model_flash_bytes']} + {r['runtime_flash_bytes']}) | "
                           f"{r['bits_per_weight']:.3f} |")
        if "host" not in w:  # --kernels-only
            continue
        out += ["", "| machine | DNN as | instr / inference | flash B | agrees with DNN | DNN ÷ pair "
                "(encode + bounds, boards' kernel): instructions | flash |", "|---|---|---|---|---|---|---|"]
        for m, dd in w["dnn_device"].items():
            opt = w["device"][m][w["device"][m]["optimized"]]
            pair_i = opt["instructions_per_inference"]
            for k, r in dd.items():
                if k.startswith("deferral_frame"):  # in the cascade tables below
                    continue
                if r["instructions"] is None:
                    out.append(f"| {m} | {k} | does not fit ({r['does_not_fit']}) | | | | |")
                    continue
                out.append(f"| {m} | {k} | {r['instructions']:.0f} | {r['flash_bytes']} | "
                           f"{r['agreement_with_dnn']:.3f} | {ratio(r['instructions'], pair_i):.2f} | "
                           f"{ratio(r['flash_bytes'], opt['flash_bytes']):.2f} |")
        h = w["host"]
        out += ["", f"Host ({h['rows']} rows): numpy bit-packed pair {h['numpy_rows_per_s']:.0f} rows/s, "
                f"torch float forward of the same bounds {h['torch_rows_per_s']:.0f} rows/s "
                f"(numpy {h['numpy_vs_torch']:.1f}x), DNN in onnxruntime {h['onnxruntime_dnn_rows_per_s']:.0f} rows/s "
                f"(numpy {h['numpy_vs_onnxruntime']:.2f}x); thermometer encoding {h['encode_rows_per_s']:.0f} rows/s; "
                f"torch decisions equal numpy: {h['torch_equals_numpy']}.", ""]
        c = w["cascade"]
        out += [f"Cascade: coverage {c['coverage_bench_rows']:.3f} on the {w['device_rows']} device rows (from the "
                f"test split; whole test split in metrics.json: {_fmt(c['coverage_test_split'])}), "
                f"{c['host_calls_per_1000']} host calls per 1,000 inputs.", "",
                "| machine | encode + pair | deferral frame (build + COBS) | expected per input | "
                "DNN emlearn float / int8 per input | DNN ÷ cascade (float / int8) |", "|---|---|---|---|---|---|"]
        for m in c["pair_instructions_per_input"]:
            e = c["expected_device_instructions_per_input"][m]
            d = c["dnn_on_device_instructions_per_input"][m]
            q = c["int8_on_device_instructions_per_input"][m]
            out.append(f"| {m} | {c['pair_instructions_per_input'][m]:.0f} | {c['deferral_frame_instructions'][m]:.0f} | "
                       f"{e:.0f} | {_fmt(d, '.0f')} / {_fmt(q, '.0f')} | {_fmt(ratio(d, e), '.2f')} / "
                       f"{_fmt(ratio(q, e), '.2f')} |")
        if "defer_frame_share_uint8" in c:
            out += ["", "The same cascade fed bytes (the data are whole numbers 0..255: `bnn_decide_u8()`, and "
                    "`bnn_link_defer_u8()`'s frame, built a word at a time):", "",
                    "| machine | mismatches | encode + pair, uint8 input | DEFER frame, uint8 | frame ÷ inference, uint8 | "
                    "float input: frame ÷ inference | expected per input, uint8 |", "|---|---|---|---|---|---|---|"]
            for m, share in c["defer_frame_share_uint8"].items():
                out.append(f"| {m} | {w['device_uint8'][m]['mismatches']}/{w['device_rows']} | "
                           f"{c['uint8_input_instructions_per_input'][m]:.0f} | "
                           f"{c['deferral_frame_uint8_instructions'][m]:.0f} | {100 * share:.1f}% | "
                           f"{100 * c['defer_frame_share'][m]:.1f}% | "
                           f"{c['expected_device_instructions_per_input_uint8'][m]:.0f} |")
        out += ["", "UART transfer time of a deferral and the host's reply are not included.", ""]
    return "\n".join(out)


def write_boards(results: dict) -> list[str]:
    """Set each board file's ``popcount`` to the kernel measured best on its QEMU machine (the
    MNIST workload when it ran, else the last one); returns the lines changed."""
    w = results["workloads"].get("mnist") or list(results["workloads"].values())[-1]
    changed = []
    for path in sorted(BOARDS.glob("*.toml")):
        text = path.read_text()
        machine = re.search(r'^qemu_machine = "(.*)"$', text, re.M)
        if machine is None or machine.group(1) not in w["device"]:
            continue
        best = w["device"][machine.group(1)]["optimized"]
        new = re.sub(r'^popcount = ".*"$', f'popcount = "{best}"', text, count=1, flags=re.M)
        if new != text:
            path.write_text(new)
            changed.append(f"{path.name}: popcount = {best!r} (measured on {machine.group(1)})")
    return changed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rows (a few minutes)")
    ap.add_argument("--digits", default=str(HERE / "artifacts" / "digits"))
    ap.add_argument("--mnist", default=str(HERE / "artifacts" / "mnist"))
    ap.add_argument("--mnist-data", default="../shared/data/mnist")
    ap.add_argument("--machines", default="mps2-an386,mps2-an500,mps2-an385,microbit,riscv32-virt")
    ap.add_argument("--kernels-only", action="store_true",
                    help="only the bound pair with every kernel on the device (no DNN, host or cascade)")
    ap.add_argument("--write-boards", action="store_true",
                    help="set each board's popcount to the kernel measured best on its QEMU machine")
    ap.add_argument("--out", default=str(HERE))
    args = ap.parse_args(argv)
    machines = args.machines.split(",")
    work = [("digits", ensure_artifact(args.digits, "digits", "5,6,7,8,9", args.quick), "digits")]
    if Path(args.mnist_data).is_dir():
        src = f"mnist:{args.mnist_data}"
        work.append(("mnist", ensure_artifact(args.mnist, src, "5,6,7,8,9", args.quick), src))
    else:
        print(f"MNIST files not found in {args.mnist_data}: MNIST workload skipped", flush=True)
    results = {"mode": "quick" if args.quick else "full", "when": time.strftime("%Y-%m-%d %H:%M"),
               "workloads": {}}
    for name, path, data in work:
        print(f"workload {name}: {path}", flush=True)  # the report keeps only the directory name
        results["workloads"][name] = run_workload(name, path, data, args.quick, machines, args.kernels_only)
    out = Path(args.out)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float) + "\n")
    (out / "results.md").write_text(markdown(results) + "\n")
    print(markdown(results))
    if args.write_boards:
        for line in write_boards(results):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
