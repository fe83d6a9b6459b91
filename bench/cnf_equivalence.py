"""CNF vs numpy on many inputs: python bench/cnf_equivalence.py DIR SRC [N]

Real rows of SRC plus random valid thermometer codes, N in all (default 10,000), per bound; prints
the number checked and the number of mismatches (must be 0), using the artifact's DIMACS files.
"""

import os
import sys
import time

import numpy as np

from bnnembed.artifact import load_artifact
from bnnembed.cnf import cnf_answers, encode_bound, read_dimacs, split_clauses
from bnnembed.data import load_data
from bnnembed.intmodel import bound_answers


def main() -> None:
    path, src = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
    art = load_artifact(path)
    ds = load_data(src)
    real = art.encoder.encode(ds.X[: n // 2])
    rng = np.random.default_rng(0)
    m = n - len(real)
    levels = np.stack([rng.integers(0, k + 1, m) for k in np.diff(art.encoder.offsets)], 1)
    bits = np.concatenate([real, art.encoder.bits_from_levels(levels)])
    for name, net in (("upper", art.upper), ("lower", art.lower)):
        t0 = time.perf_counter()
        _, _, flat = read_dimacs(os.path.join(path, f"cnf_{name}.cnf"))
        cnf = encode_bound(net, art.encoder)
        got, _, solved = cnf_answers(cnf, bits, clauses=split_clauses(flat))
        bad = int(np.sum(got != bound_answers(net, bits)))
        print(f"{name}: {len(bits)} inputs ({len(real)} real), {bad} mismatches, {solved} needed a full solve, "
              f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
