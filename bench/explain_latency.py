"""Explanation latency, size and robustness verdicts on an artifact's test split.

Usage: python bench/explain_latency.py DIR SRC [N]   (DIR must hold the CNF: bnnembed cnf DIR)
Prints median / p95 latency and mean size of abductive explanations over N decided test rows,
and robustness verdicts for R = 1, 2, 3 (every counterexample replayed through numpy).
"""

import sys

import numpy as np

from bnnembed.artifact import load_artifact
from bnnembed.data import load_data
from bnnembed.explain import Explainer


def main() -> None:
    path, src = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    art = load_artifact(path)
    ds = load_data(src)
    with np.load(art.file("split.npz")) as z:
        rows = z["test"]
    with Explainer(art, use_store=False) as ex:
        times, sizes, minimal = [], [], 0
        decided = [i for i in rows if ex.case(ds.X[i]).decision.label != "unknown"][:n]
        for i in decided:
            r = ex.explain(ex.case(ds.X[i]), "abductive")
            times.append(r["seconds"])
            sizes.append(r["size"])
            minimal += r["minimal"]
        t = np.array(times) * 1000
        print(f"abductive: {len(t)} decided test rows, median {np.median(t):.1f} ms, p95 "
              f"{np.percentile(t, 95):.1f} ms, mean size {np.mean(sizes):.1f} of {ex.oracle.n_features} "
              f"features, proven minimal {minimal}/{len(t)}")
        for R in (1, 2, 3):
            verdicts, ts = [], []
            for i in decided[:100]:
                r = ex.verify(ex.case(ds.X[i]), radius=R)
                verdicts.append(r["robust"])
                ts.append(r["seconds"])
            print(f"R={R}: robust {sum(v is True for v in verdicts)}, counterexample (replayed) "
                  f"{sum(v is False for v in verdicts)}, undecided {sum(v is None for v in verdicts)}; "
                  f"median {np.median(ts) * 1000:.1f} ms per query")


if __name__ == "__main__":
    main()
