"""Certification of an artifact against data: which rows, which domain, both queries in one place.

The domain is the per-feature min/max of the artifact's training rows (``split.npz`` of the
built-in data) or of all given rows when the split does not apply, and each feature can be
overridden (``--range NAME=LO:HI``, ``*`` for every feature).
"""

from __future__ import annotations

import numpy as np

from ...artifact import SPLIT, Artifact
from ...learn.data import Dataset
from ...errors import BnnError
from .domain import DomainConfig, certify_domain, coverage_at, data_box
from .onnx_read import read_onnx


def split_of(art: Artifact, ds: Dataset) -> dict[str, np.ndarray] | None:
    """The artifact's train / calibration / test row indices, if they index these rows."""
    import os

    path = art.file(SPLIT)
    if not os.path.exists(path):
        return None
    with np.load(path) as z:
        split = {k: np.asarray(z[k], dtype=np.int64) for k in z.files}
    n = ds.n_rows
    if any(len(v) and v.max() >= n for v in split.values()):
        return None
    if sum(len(v) for v in split.values()) != n:
        return None
    return split


def parse_rows(spec: str | None, n_rows: int) -> np.ndarray:
    """``"0-99,120,200-"`` -> row indices (inclusive ranges; an open end runs to the last row)."""
    if not spec:
        return np.arange(n_rows)
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if part.startswith("-") and part[1:].strip().isdigit():
            raise BnnError(f"--rows {spec!r}: row numbers are 0 or more (write a range as A-B)")
        try:
            if "-" in part:
                a, b = part.split("-", 1)
                lo = int(a) if a else 0
                hi = int(b) if b else n_rows - 1
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise BnnError(f"--rows {spec!r}: use row numbers and ranges like 0-99,120") from None
    rows = np.array(out, dtype=np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= n_rows):
        raise BnnError(f"--rows {spec!r}: the data has rows 0..{n_rows - 1}")
    return rows


def domain_box(art: Artifact, ds: Dataset, ranges: list[str] = ()) -> tuple[np.ndarray, np.ndarray, str]:
    """``(lo, hi, source)`` of the certification domain (see the module docstring)."""
    split = split_of(art, ds)
    if split is not None and len(split.get("train", [])):
        lo, hi = data_box(ds.X[split["train"]])
        source = "training rows"
    else:
        lo, hi = data_box(ds.X)
        source = "all given rows"
    names = list(art.feature_names)
    for spec in ranges:
        try:
            name, rng = spec.rsplit("=", 1)
            a, b = rng.split(":", 1)
            a, b = float(a), float(b)
        except ValueError:
            raise BnnError(f"--range {spec!r}: use NAME=LO:HI (or *=LO:HI for every feature)") from None
        if a > b:
            raise BnnError(f"--range {spec!r}: LO must not exceed HI")
        if name == "*":
            lo[:], hi[:] = a, b
        elif name in names:
            lo[names.index(name)], hi[names.index(name)] = a, b
        else:
            raise BnnError(f"--range {spec!r}: no feature named {name!r} (features: {', '.join(names[:8])}...)")
        source += f", {spec}"
    return lo, hi, source


def default_rows(art: Artifact, ds: Dataset) -> np.ndarray:
    """The test split when it applies, else every row."""
    split = split_of(art, ds)
    if split is not None and "test" in split:
        return np.sort(split["test"])
    return np.arange(ds.n_rows)


def run_domain(art: Artifact, ds: Dataset, lo: np.ndarray, hi: np.ndarray, cfg: DomainConfig,
               engine: str = "cells", scfg=None, progress=None, collect: list | None = None) -> dict:
    """Whole-domain soundness of both bounds with coverage before/after on the test rows
    (``collect`` gathers the cells engine's replayed disagreements, see :func:`certify_domain_cells`).

    ``engine`` ``"cells"`` (default): branch and bound over level boxes with the DNN verified per
    box (:mod:`.cell_search`); ``"milp"``: one MILP of bound and DNN together (:mod:`.domain`)."""
    from .cell_search import CellSearchConfig, certify_domain_cells

    net = read_onnx(art.certify_onnx())
    dnn = art.load_dnn()
    bits = art.encode(ds.X[default_rows(art, ds)])
    split = split_of(art, ds)
    seen = ds.X[split["train"]] if split is not None else ds.X
    out = {}
    for name, bound in (("upper", art.upper), ("lower", art.lower)):
        if engine == "cells":
            tick = None if progress is None else (lambda n, s, tau, _name=name: progress(_name, n, s, tau))
            r = certify_domain_cells(net, dnn, art.encoder, bound, lo, hi, cfg, scfg or CellSearchConfig(),
                                     name=name, X_seen=seen, progress=tick, collect=collect)
        else:
            r = certify_domain(net, dnn, art.encoder, bound, lo, hi, cfg, name=name)
        r.coverage_before = coverage_at(bound, bits, bound.tau)
        r.coverage_after = coverage_at(bound, bits, r.tau_certified)
        d = r.to_dict()
        if "tau_reached" in r.search:  # the most a sound threshold could keep
            d["coverage_at_tau_reached"] = coverage_at(bound, bits, r.search["tau_reached"])
        out[name] = d
    return out
