"""Data sources and the one-line errors for bad input."""

import gzip
import os

import numpy as np
import pytest

from bnnembed.learn.data import load_data, read_idx
from bnnembed.model.encoding import fit_thermometer
from bnnembed.errors import BnnError


def test_builtin_sets():
    bc = load_data("breast_cancer")
    assert bc.X.shape == (569, 30) and bc.positive == (0,) and bc.label_names[0] == "malignant"
    dg = load_data("digits", positive="5,6,7,8,9")
    assert dg.image_shape == (8, 8) and dg.positive == (5, 6, 7, 8, 9)
    assert dg.y_yes().mean() == pytest.approx(np.isin(dg.y, [5, 6, 7, 8, 9]).mean())


def _csv(tmp_path, text):
    p = tmp_path / "d.csv"
    p.write_text(text)
    return str(p)


def test_csv_and_npz(tmp_path):
    ds = load_data(_csv(tmp_path, "a,b,label\n1,2,0\n3,4,1\n"))
    assert ds.X.tolist() == [[1, 2], [3, 4]] and ds.positive == (1,)
    ds = load_data(_csv(tmp_path, "a,b,cls\n1,2,cat\n3,4,dog\n"), label="cls", positive="dog")
    assert ds.y_yes().tolist() == [False, True]
    np.savez(tmp_path / "d.npz", X=np.ones((3, 2)), y=np.array([0, 1, 1]))
    assert load_data(str(tmp_path / "d.npz")).X.shape == (3, 2)


@pytest.mark.parametrize("text,kwargs,message", [
    ("a,b,label\n1,nan,0\n3,4,1\n", {}, "missing or infinite feature value(s), first at row 0, feature 'b'"),
    ("a,b,label\n1,,0\n3,4,1\n", {}, "first at row 0"),
    ("a,b,label\n1,2\n", {}, "row 1 has 2 columns, the header has 3"),
    ("a,b,label\n1,x,0\n", {}, "'x' is not a number"),
    ("a,b\n1,2\n", {}, "no labels found"),
    ("a,b,label\n1,2,cat\n3,4,dog\n", {}, "say which label means yes with --positive"),
    ("a,b,label\n1,2,0\n3,4,1\n", {"positive": "7"}, "--positive '7' is not a label"),
])
def test_bad_csv_gives_one_line_error(tmp_path, text, kwargs, message):
    with pytest.raises(BnnError) as err:
        load_data(_csv(tmp_path, text), **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_source_and_missing_file():
    with pytest.raises(BnnError, match="unknown data source"):
        load_data("iris")
    with pytest.raises(BnnError, match="no such file"):
        load_data("nope.csv")


def test_idx_reader(tmp_path):
    body = np.arange(2 * 3 * 4, dtype=np.uint8)
    header = bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + (4).to_bytes(4, "big")
    p = tmp_path / "x-images-idx3-ubyte.gz"
    with gzip.open(p, "wb") as fh:
        fh.write(header + body.tobytes())
    assert np.array_equal(read_idx(str(p)), body.reshape(2, 3, 4))
    with gzip.open(p, "wb") as fh:
        fh.write(header + body.tobytes()[:-1])
    with pytest.raises(BnnError, match="truncated"):
        read_idx(str(p))


def test_mnist_loader(mnist_dir):
    ds = load_data(f"mnist:{mnist_dir}", positive="5,6,7,8,9")
    assert ds.X.shape == (10000, 784) and ds.image_shape == (28, 28)
    assert np.bincount(ds.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_thermometer_semantics():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=500), np.zeros(500), rng.integers(0, 3, 500)]).astype(np.float32)
    enc, dropped = fit_thermometer(X, 4)
    assert dropped == [1] and enc.feature_index.tolist() == [0, 2]
    bits = enc.encode(X)
    for f in range(enc.n_kept):
        t = enc.feature_thresholds(f)
        assert np.all(np.diff(t) > 0)
        fb = bits[:, enc.offsets[f]:enc.offsets[f + 1]]
        assert np.all(fb[:, 1:] <= fb[:, :-1])  # thermometer: bit k+1 implies bit k
        assert np.array_equal(fb, (X[:, [enc.feature_index[f]]] >= t[None]).astype(np.uint8))
    assert np.array_equal(enc.bits_from_levels(enc.levels(bits)), bits)
