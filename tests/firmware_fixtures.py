"""Small artifacts for the firmware tests: a fitted thermometer and random integer bounds.

Thresholds are set at each neuron's median agreement count on the data, so hidden bits are
balanced and the three decisions all occur; no training needed, built in well under a second.
"""

from __future__ import annotations

import numpy as np

from bnnembed.artifact import load_artifact, write_artifact
from bnnembed.learn.data import load_data
from bnnembed.model.encoding import fit_thermometer
from bnnembed.model.intmodel import BoundNet, IntLayer, agreement_counts, bound_scores, flip_output, layer_forward
from bnnembed.model.packing import n_words, pack_bits
from bnnembed.model.shifts import SHIFT_SETS, ShiftCopies, expand_copies


def random_mask(width: int, n_in: int, density: float, rng) -> np.ndarray:
    """0/1 ``(width, n_in)``: each bit read with probability ``density``; the first row reads
    every bit and the second none (when there are that many rows), the shapes at the ends."""
    m = (rng.random((width, n_in)) < density).astype(np.uint8)
    if width >= 3:
        m[0] = 1
        m[1] = 0
    return m


def random_bound(answer: str, bits: np.ndarray, hidden: tuple[int, ...], rng,
                 mask_density: float | None = None) -> BoundNet:
    """Random weights, thresholds at the median count; ``mask_density`` masks every layer."""
    layers = []
    x = bits
    widths = list(hidden) + [1]
    for width in widths:
        n_in = x.shape[1]
        wbits = rng.integers(0, 2, size=(width, n_in), dtype=np.uint8)
        mask = None
        if mask_density is not None:
            mbits = random_mask(width, n_in, mask_density, rng)
            wbits &= mbits
            mask = pack_bits(mbits)
        weights = pack_bits(wbits)
        probe = IntLayer(n_in, weights, np.zeros(width, np.int32), mask)
        counts = agreement_counts(probe, pack_bits(x))
        thresholds = np.median(counts, axis=0).astype(np.int32)
        layer = IntLayer(n_in, weights, thresholds, mask)
        layers.append(layer)
        x = layer_forward(layer, pack_bits(x))
    return BoundNet(answer, tuple(layers))


def one_network_lower(upper: BoundNet, gap: int = 2) -> BoundNet:
    """The lower bound of one network read both ways: the upper bound's hidden layers, its output
    neuron flipped, answering on scores ``gap`` or more below the upper's tau (the scores between
    are UNKNOWN)."""
    return flip_output(upper, "no").with_tau(upper.score_range - upper.tau + gap)


def make_artifact(path, source: str = "digits", hidden=(64, 32), bits_per_feature: int = 3,
                  seed: int = 0, mask_density: float | None = None, one_network: bool = False,
                  copies: int = 1):
    """Write and load a fixture artifact for ``source`` (a built-in data set name); with
    ``mask_density`` every layer of both bounds is masked (:func:`random_mask`); ``one_network``:
    the lower bound is the upper read backwards (:func:`one_network_lower`); ``copies`` > 1 (an
    image data set): the bounds decide over that many shifted copies, each summed threshold one
    above its median summed score."""
    ds = load_data(source)
    rng = np.random.default_rng(seed)
    enc, _ = fit_thermometer(ds.X, bits_per_feature)
    bits = enc.encode(ds.X)
    upper = random_bound("yes", bits, hidden, rng, mask_density)
    if one_network:  # tau one above the upper's median score: each decision gets a good share
        upper = upper.with_tau(int(np.median(bound_scores(upper, bits))) + 1)
    lower = one_network_lower(upper) if one_network else random_bound("no", bits, hidden, rng, mask_density)
    stored = None
    if copies > 1:
        stored = ShiftCopies(tuple(ds.image_shape), SHIFT_SETS[copies], enc, upper, lower, one_network)
        enc, upper, lower = expand_copies(stored, 0, 0)
        wide_bits = enc.encode(ds.X)
        upper = upper.with_tau(int(np.median(bound_scores(upper, wide_bits))) + 1)
        lower = lower.with_tau(int(np.median(bound_scores(lower, wide_bits))) + 1)
    manifest = {
        "features": {"names": list(ds.feature_names)},
        "dataset": {"name": source, "image_shape": list(ds.image_shape) if ds.image_shape else None},
        "positive": {"values": [int(v) if isinstance(v, (int, np.integer)) else v for v in ds.positive]},
    }
    write_artifact(str(path), manifest, enc, upper, lower, copies=stored)
    return load_artifact(str(path))


def boundary_rows(encoder, X: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` rows built from real rows with some features moved exactly onto a threshold or one
    float32 ulp below/above it: the inputs where an inexact compare would show."""
    rng = np.random.default_rng(seed)
    X = np.asarray(X, dtype=np.float32)
    rows = X[rng.integers(0, X.shape[0], size=n)].copy()
    owner = encoder.bit_owner()
    for r in range(n):
        for b in rng.choice(encoder.n_bits, size=max(1, encoder.n_bits // 4), replace=False):
            t = np.float32(encoder.thresholds[b])
            col = encoder.feature_index[owner[b]]
            rows[r, col] = [t, np.nextafter(t, np.float32(-np.inf)), np.nextafter(t, np.float32(np.inf))][r % 3]
    return rows


def rows_for(artifact, source: str, n: int = 1000) -> np.ndarray:
    """At least ``n`` rows of a built-in data set: the real rows, topped up with boundary rows."""
    X = load_data(source).X
    if X.shape[0] >= n:
        return X[:n]
    return np.concatenate([X, boundary_rows(artifact.encoder, X, n - X.shape[0])])


def build_example_app(project, exe) -> None:
    """A generated PlatformIO project's example application (src/main.c) built natively with the
    stdio port and its platformio.ini's -D flags (the board's kernel: a model generated for the
    `columns` kernel refuses to build under another one)."""
    import re
    import subprocess
    from pathlib import Path

    from bnnembed._resources import resource_dir

    project = Path(project)
    lib = project / "lib" / "bnnembed_runtime" / "src"
    srcs = [project / "src" / "main.c", project / "src" / "bnn_model.c",
            resource_dir("firmware") / "ports" / "bnn_port_stdio.c", *sorted(lib.glob("*.c"))]
    defines = [f"-D{d}" for d in re.findall(r"^\s+-D (\S+)$", (project / "platformio.ini").read_text(), re.M)]
    assert any(d.startswith("-DBNN_POPCOUNT_STRATEGY=") for d in defines), defines
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", *defines,
                    f"-I{project / 'src'}", f"-I{lib}", *map(str, srcs), "-o", str(exe)],
                   check=True, capture_output=True, text=True)
