"""Batch mode: explain every row of a data source in worker processes, as JSON lines.

Each worker loads the artifact and its own oracle once, explains a share of the rows and sends
the results back; the parent writes them in row order to the JSON-lines file and into the
artifact's explanation store (a single writer), showing progress with tqdm.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from tqdm import tqdm

_WORKER = {}


def _init(path: str, backend: str, budget: int, seconds: float | None, strategy: str = "quickxplain") -> None:
    from ...artifact import load_artifact
    from . import Explainer

    _WORKER["ex"] = Explainer(load_artifact(path), backend=backend, use_store=False, budget=budget, seconds=seconds,
                              strategy=strategy)


def _one(job):
    i, x, kind, scope, delta, radius = job
    ex = _WORKER["ex"]
    case = ex.case(np.asarray(x, dtype=np.float32))
    domain = ex.domain(case, delta, radius)
    r = ex.explain(case, kind, scope, delta=delta, radius=radius)
    return i, case.bits, int(case.decision), r, ex.request("explain", domain, kind=kind, scope=scope,
                                                           search=ex.strategy)


def explain_all(path: str, X: np.ndarray, out: str, kind: str = "abductive", scope: str = "bound",
                workers: int = 1, backend: str = "card", progress: bool = True, budget: int = 2_000,
                seconds: float | None = None, delta: float | None = None, radius: int | None = None,
                strategy: str = "quickxplain") -> int:
    """Explain every row of ``X`` inside the domain of ``delta`` / ``radius`` (default: the whole
    box); write JSON lines (``{"row": i, ...explanation}``) to ``out``."""
    from ...artifact import load_artifact
    from .store import ExplanationStore

    art = load_artifact(path)
    from .domain import check_flags

    check_flags(art.encoder, delta, radius)
    jobs = [(i, X[i].tolist(), kind, scope, delta, radius) for i in range(len(X))]
    results = {}
    with ExplanationStore(path, art.model_hash) as store, open(out, "w") as fh:
        if workers <= 1:
            _init(path, backend, budget, seconds, strategy)
            it = map(_one, jobs)
            pool = None
        else:
            pool = ProcessPoolExecutor(max_workers=workers, initializer=_init, initargs=(path, backend, budget, seconds, strategy))
            it = pool.map(_one, jobs, chunksize=4)
        try:
            nxt = 0
            for i, bits, decision, r, request in tqdm(it, total=len(jobs), disable=not progress, desc="explain"):
                store.put_decision(r["decision_id"], bits, decision, X[i])
                store.put(r["decision_id"], request, r, r["seconds"])
                results[i] = r
                while nxt in results:
                    fh.write(json.dumps({"row": nxt, **results.pop(nxt)}) + "\n")
                    nxt += 1
        finally:
            if pool:
                pool.shutdown()
            _WORKER.clear()
    return len(jobs)
