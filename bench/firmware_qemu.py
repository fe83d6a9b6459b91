"""Per-machine table of the generated firmware under QEMU: mismatches vs numpy, ELF sizes, instructions.

    python bench/firmware_qemu.py ARTIFACT_DIR DATA_SOURCE [--rows 1000] [--encoding float|int16]
        [--machines microbit,mps2-an386,...] [--json]

Rows beyond the data set's size are topped up with boundary rows (real rows with features moved
exactly onto a thermometer threshold or one float32 ulp either side), where an inexact compare
would show. Prints one markdown row per machine.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from bnnembed.artifact import load_artifact
from bnnembed.render.quantize import Encoding
from bnnembed.learn.data import load_data
from bnnembed.device.machines import qemu_machines
from bnnembed.device.qemu import BuildOptions, check_against_numpy


def boundary_rows(encoder, X: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = X[rng.integers(0, X.shape[0], size=n)].copy()
    owner = encoder.bit_owner()
    for r in range(n):
        for b in rng.choice(encoder.n_bits, size=max(1, encoder.n_bits // 4), replace=False):
            t = np.float32(encoder.thresholds[b])
            rows[r, encoder.feature_index[owner[b]]] = [
                t, np.nextafter(t, np.float32(-np.inf)), np.nextafter(t, np.float32(np.inf))][r % 3]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("artifact")
    ap.add_argument("data")
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--encoding", default="float", choices=[e.value for e in Encoding])
    ap.add_argument("--machines", default=",".join(qemu_machines()))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    art = load_artifact(args.artifact)
    X = load_data(args.data, require_labels=False).X
    if X.shape[0] < args.rows:
        X = np.concatenate([X, boundary_rows(art.encoder, X, args.rows - X.shape[0])])
    else:
        X = X[: args.rows]
    shape = " / ".join("-".join(map(str, b.shape)) for b in (art.upper, art.lower))
    print(f"{args.artifact}: {args.data}, bounds {shape}, {args.encoding} encoding, {X.shape[0]} rows")
    print("| machine | core | rows | mismatches | flash B (model+runtime) | RAM B | instr/inference "
          "(encode + bounds) | instr/binary MAC |")
    print("|---|---|---|---|---|---|---|---|")
    for m in args.machines.split(","):
        r = check_against_numpy(art, m, X, BuildOptions(encoding=Encoding(args.encoding)))
        if args.json:
            print(json.dumps(r.as_dict()))
        extra = "" if r.float_mismatches is None else f" (vs float: {r.float_mismatches})"
        print(f"| {r.machine} | {r.core} | {r.rows} | {r.mismatches} / {r.score_mismatches} scores{extra} | "
              f"{r.flash_bytes} ({r.model_flash_bytes}+{r.runtime_flash_bytes}) | {r.ram_bytes} | "
              f"{r.instructions_per_inference:.0f} ({r.encode_instructions:.0f} + {r.bounds_instructions:.0f}) | "
              f"{r.instructions_per_bmac:.3f} |")


if __name__ == "__main__":
    main()
