"""The COLUMNS kernel's arithmetic (bnnembed/render/columns.py): a dense layer stored by columns,
32 neurons per word, counted in bit planes over the input's minority side, decides exactly as the
row-wise definition ``popcount(a XOR w) <= max_mismatch`` — in numpy exhaustively on small layers,
and in C (the firmware header, built natively with sanitizers) on random layers of every shape."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bnnembed._resources import resource_dir
from bnnembed.render.c import PopcountStrategy
from bnnembed.render.columns import (column_counters, column_table, column_words, columns_forward, columns_top,
                                     fires_dense, side_scalar)

from _tools import require_tools  # noqa: E402


def pack(bits: np.ndarray) -> np.ndarray:
    """Rows of 0/1 packed as the runtime does (bit i of word i // 32 at position i % 32)."""
    n = bits.shape[-1]
    padded = np.zeros(bits.shape[:-1] + (-(-n // 32) * 32,), np.uint8)
    padded[..., :n] = bits
    return np.packbits(padded, axis=-1, bitorder="little").view("<u4")


def random_layer(rng, n_in: int, n_out: int):
    w = rng.integers(0, 2, (n_out, n_in)).astype(np.uint8)
    w[0] = 0  # the extremes of pop(w)
    if n_out > 1:
        w[1] = 1
    m = rng.integers(-3, n_in + 4, n_out)  # below 0 (never fires) and above n_in (always)
    return pack(w), m


@pytest.mark.parametrize("n_in", range(1, 9))
def test_exhaustive_small_layers(n_in):
    """Every input and every threshold -2 .. n_in + 1 of 33 neurons (two groups, one padded)."""
    rng = np.random.default_rng(n_in)
    inputs = np.array(list(itertools.product([0, 1], repeat=n_in)), np.uint8)
    for m_value in range(-2, n_in + 2):
        w, _ = random_layer(rng, n_in, 33)
        m = np.full(33, m_value)
        table = column_table(w, n_in, m)
        assert table.size == column_words(n_in, 33)
        for a in inputs:
            assert np.array_equal(columns_forward(table, n_in, 33, a), fires_dense(w, n_in, m, a)), (m_value, a)


def test_counters_stay_in_range():
    """I + S never leaves 0 .. 2^(top+1) - 1 (so bit top is the test), on both sides, at every h,
    for the extreme constants and weights."""
    rng = np.random.default_rng(0)
    for n_in in list(range(1, 70)) + [255, 256, 257, 672]:
        w, m = random_layer(rng, n_in, 40)
        m[:4] = [-50, n_in + 50, -1, n_in]
        table = column_table(w, n_in, m)
        for h in range(0, n_in + 1, max(1, n_in // 40)):
            for a in (np.r_[np.ones(h), np.zeros(n_in - h)], np.r_[np.zeros(n_in - h), np.ones(h)]):
                v, _ = column_counters(table, n_in, 40, a)
                assert v.min() >= 0 and v.max() < 2 ** (columns_top(n_in) + 1), (n_in, h)
                assert 0 <= side_scalar(n_in, h) < 2 ** (columns_top(n_in) + 1)  # the kernel keeps top + 1 planes of it


def test_random_layers_in_numpy():
    rng = np.random.default_rng(1)
    for _ in range(150):
        n_in, n_out = int(rng.integers(1, 300)), int(rng.integers(1, 80))
        w, m = random_layer(rng, n_in, n_out)
        table = column_table(w, n_in, m)
        for a in (rng.random((8, n_in)) < rng.random((8, 1))).astype(np.uint8):
            assert np.array_equal(columns_forward(table, n_in, n_out, a), fires_dense(w, n_in, m, a))


@pytest.fixture(scope="module")
def columns_exe(tmp_path_factory) -> Path:
    require_tools("gcc")
    fw = resource_dir("firmware")
    exe = tmp_path_factory.mktemp("columns") / "columns_check"
    src = Path(__file__).resolve().parents[1] / "c" / "columns_check.c"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-fsanitize=undefined,address",
                    "-fno-sanitize-recover=all", f"-DBNN_POPCOUNT_STRATEGY={int(PopcountStrategy.COLUMNS)}",
                    f"-I{fw}", str(src), "-o", str(exe)], check=True, capture_output=True, text=True)
    return exe


def run_c(exe: Path, table: np.ndarray, n_in: int, n_out: int, rows: np.ndarray) -> np.ndarray:
    data = np.array([n_in, n_out, table.size, len(rows)], "<u4").tobytes() + table.astype("<u4").tobytes()
    data += pack(rows).astype("<u4").tobytes()
    out = subprocess.run([str(exe)], input=data, capture_output=True, timeout=60, check=True).stdout
    words = np.frombuffer(out, "<u4").reshape(len(rows), -(-n_out // 32))
    return np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")


SHAPES = [(1, 1), (2, 3), (15, 32), (16, 33), (31, 31), (32, 64), (33, 65), (64, 96), (151, 64), (256, 256),
          (672, 256), (700, 40), (1025, 33)]


@pytest.mark.parametrize("n_in,n_out", SHAPES)
def test_c_kernel_equals_the_definition(columns_exe, n_in, n_out):
    """The firmware's layer function on the host, with sanitizers: densities 0 .. 1, both sides of
    h = n_in / 2, the block-of-16 boundaries of the minority list; padding output bits stay 0."""
    rng = np.random.default_rng(n_in * 1000 + n_out)
    w, m = random_layer(rng, n_in, n_out)
    table = column_table(w, n_in, m)
    rows = [np.zeros(n_in), np.ones(n_in)]
    for h in {n_in // 2, n_in // 2 + 1, (n_in + 1) // 2, 15, 16, 17, 31, 32, 33}:
        if h <= n_in:
            rows.append(rng.permutation(np.r_[np.ones(h), np.zeros(n_in - h)]))
    rows += list(rng.random((60, n_in)) < rng.random((60, 1)))
    rows = np.array(rows, np.uint8)
    got = run_c(columns_exe, table, n_in, n_out, rows)
    for a, bits in zip(rows, got):
        assert np.array_equal(bits[:n_out], fires_dense(w, n_in, m, a)), (a.sum(), np.flatnonzero(bits[:n_out] != fires_dense(w, n_in, m, a)))
        assert not bits[n_out:].any()


def test_c_kernel_catches_a_wrong_constant(columns_exe):
    """The check can fail: one neuron's ones-side plane flipped in the table changes its output."""
    rng = np.random.default_rng(5)
    n_in, n_out = 64, 32
    w, m = random_layer(rng, n_in, n_out)
    m[:] = n_in // 2
    table = column_table(w, n_in, m)
    table[n_in + columns_top(n_in) - 1] ^= 1  # neuron 0, top plane of its ones-side constant
    rows = np.array([rng.permutation(np.r_[np.ones(h), np.zeros(n_in - h)]) for h in range(0, 33)], np.uint8)
    got = run_c(columns_exe, table, n_in, n_out, rows)
    assert any(bits[0] != fires_dense(w, n_in, m, a)[0] for a, bits in zip(rows, got))
