"""Data sources: built-in scikit-learn sets, CSV, NPZ and MNIST IDX directories.

A source string names where the rows come from:

- ``breast_cancer`` (positive = malignant, label value 0) and ``digits`` (8x8 images, labels
  0..9, positive class 0 unless ``--positive`` says otherwise) ship with scikit-learn;
- ``mnist:PATH``: a directory with ``t10k-images-idx3-ubyte[.gz]`` and
  ``t10k-labels-idx1-ubyte[.gz]`` (or the ``train-`` pair);
- ``FILE.csv``: a header row, one column of labels (``--label``, default ``label``), every other
  column a numeric feature;
- ``FILE.npz``: arrays ``X`` (rows x features) and optionally ``y`` and ``feature_names``.

Every loader validates what it reads (NaN, infinities, ragged rows, missing labels) and raises
:class:`~bnnembed.errors.BnnError` with a one-line message.
"""

from __future__ import annotations

import csv
import gzip
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from ..errors import BnnError

BUILTIN = ("breast_cancer", "digits")


@dataclass(frozen=True)
class Dataset:
    """Rows of raw features, their labels and what "yes" means."""

    name: str
    X: np.ndarray  # float32 (n, F)
    y: np.ndarray | None  # labels (n,) as given, or None for unlabeled rows
    feature_names: list[str]
    positive: tuple = ()  # label values that mean "yes"
    image_shape: tuple[int, int] | None = None
    label_names: dict = field(default_factory=dict)  # label value -> human name

    @property
    def n_rows(self) -> int:
        return int(self.X.shape[0])

    def y_yes(self) -> np.ndarray:
        """Boolean ground truth: is the row's label a positive class."""
        if self.y is None:
            raise BnnError(f"data '{self.name}' has no labels; this step needs them")
        return np.isin(self.y, np.array(self.positive, dtype=self.y.dtype))

    def some_names(self, columns, limit: int = 8) -> str:
        """The names of the first ``limit`` of ``columns``, for a one-line note."""
        return ", ".join(self.feature_names[c] for c in columns[:limit]) + (" ..." if len(columns) > limit else "")

    def subset(self, idx: np.ndarray) -> "Dataset":
        return Dataset(
            self.name,
            self.X[idx],
            None if self.y is None else self.y[idx],
            self.feature_names,
            self.positive,
            self.image_shape,
            self.label_names,
        )


def parse_positive(spec: str | None, labels: np.ndarray | None, default) -> tuple:
    """Turn ``--positive 5,6,7`` into label values of the data's own type."""
    if spec is None or spec == "":
        return tuple(default)
    parts = [p.strip() for p in str(spec).split(",") if p.strip()]
    if labels is None:
        return tuple(parts)
    values = []
    present = set(np.unique(labels).tolist())
    for part in parts:
        value = _coerce_like(part, labels)
        if value not in present:
            shown = ", ".join(str(v) for v in sorted(present, key=str)[:12])
            raise BnnError(f"--positive {part!r} is not a label in the data (labels: {shown})")
        values.append(value)
    return tuple(values)


def _coerce_like(text: str, labels: np.ndarray):
    if np.issubdtype(labels.dtype, np.integer):
        try:
            return int(text)
        except ValueError:
            raise BnnError(f"--positive {text!r}: labels are integers") from None
    if np.issubdtype(labels.dtype, np.floating):
        try:
            return float(text)
        except ValueError:
            raise BnnError(f"--positive {text!r}: labels are numbers") from None
    return text


def _to_float32(X: np.ndarray) -> np.ndarray:
    """float32 features; values beyond float32's range become inf (and are refused as such)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(X, dtype=np.float32)


def check_features(X: np.ndarray, name: str, feature_names: list[str] | None = None) -> np.ndarray:
    """Reject NaN and infinite features with the first offending row and column."""
    X = _to_float32(X)
    if X.ndim != 2:
        raise BnnError(f"{name}: features must be a 2-D table, got shape {X.shape}")
    if X.shape[0] == 0:
        raise BnnError(f"{name}: no rows")
    bad = ~np.isfinite(X)
    if bad.any():
        r, c = map(int, np.argwhere(bad)[0])
        col = feature_names[c] if feature_names else f"column {c}"
        raise BnnError(
            f"{name}: {int(bad.sum())} missing or infinite feature value(s), first at row {r}, "
            f"feature '{col}' (NaN, inf or beyond float32); impute or drop those rows first"
        )
    return X


def load_data(
    source: str,
    *,
    label: str = "label",
    positive: str | None = None,
    require_labels: bool = True,
    resolve_positive: bool = True,
) -> Dataset:
    """Load a data source (see the module docstring) and resolve the positive class (the
    build's job; later commands use :func:`load_rows`, which takes it from the artifact)."""
    if source in BUILTIN:
        ds = _load_sklearn(source)
    elif source.startswith("mnist:"):
        ds = _load_mnist(source[len("mnist:") :])
    elif source.lower().endswith(".csv"):
        ds = _load_csv(source, label)
    elif source.lower().endswith(".npz"):
        ds = _load_npz(source)
    else:
        raise BnnError(
            f"unknown data source {source!r}: use breast_cancer, digits, mnist:DIR, "
            "a .csv file or an .npz file"
        )
    check_features(ds.X, ds.name, ds.feature_names)
    if ds.y is None:
        if require_labels:
            raise BnnError(f"{ds.name}: no labels found; this step needs labelled rows")
        return Dataset(ds.name, ds.X, None, ds.feature_names, parse_positive(positive, None, ()),
                       ds.image_shape, ds.label_names)
    if not resolve_positive:
        return ds
    pos = parse_positive(positive, ds.y, ds.positive)
    if not pos:
        classes = np.unique(ds.y)
        if set(classes.tolist()) <= {0, 1}:
            pos = (classes.dtype.type(1).item(),)
        else:
            shown = ", ".join(str(v) for v in classes[:12])
            raise BnnError(f"{ds.name}: say which label means yes with --positive (labels: {shown})")
    return Dataset(ds.name, ds.X, ds.y, ds.feature_names, pos, ds.image_shape, ds.label_names)


def _load_sklearn(name: str) -> Dataset:
    from sklearn import datasets

    if name == "breast_cancer":
        raw = datasets.load_breast_cancer()
        names = {0: "malignant", 1: "benign"}
        return Dataset(name, raw.data.astype(np.float32), raw.target.astype(np.int64),
                       [str(n) for n in raw.feature_names], (0,), None, names)
    raw = datasets.load_digits()
    feats = [f"pixel ({r},{c})" for r in range(8) for c in range(8)]
    return Dataset(name, raw.data.astype(np.float32), raw.target.astype(np.int64), feats, (0,), (8, 8),
                   {k: str(k) for k in range(10)})


def _open_maybe_gz(path: str):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed or not."""
    with _open_maybe_gz(path) as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise BnnError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise BnnError(f"{path}: truncated IDX file ({body.size} of {int(np.prod(dims))} bytes)")
    return body.reshape(dims)


def _find(directory: str, stem: str) -> str | None:
    for suffix in ("", ".gz"):
        p = os.path.join(directory, stem + suffix)
        if os.path.exists(p):
            return p
    return None


def _load_mnist(directory: str) -> Dataset:
    if not os.path.isdir(directory):
        raise BnnError(f"mnist:{directory}: not a directory")
    for prefix in ("t10k", "train"):
        img = _find(directory, f"{prefix}-images-idx3-ubyte")
        lab = _find(directory, f"{prefix}-labels-idx1-ubyte")
        if img and lab:
            images = read_idx(img)
            labels = read_idx(lab).astype(np.int64)
            if images.shape[0] != labels.shape[0]:
                raise BnnError(f"mnist:{directory}: {images.shape[0]} images but {labels.shape[0]} labels")
            h, w = images.shape[1:]
            feats = [f"pixel ({r},{c})" for r in range(h) for c in range(w)]
            return Dataset("mnist", images.reshape(len(images), -1).astype(np.float32), labels, feats,
                           (0,), (h, w), {k: str(k) for k in range(10)})
    raise BnnError(f"mnist:{directory}: no t10k-/train- images and labels IDX files found there")


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise BnnError(f"{path}: no such file")
    if os.path.isdir(path):
        raise BnnError(f"{path}: is a folder, not a data file")
    if os.path.getsize(path) == 0:
        raise BnnError(f"{path}: empty file")


def _load_csv(path: str, label: str) -> Dataset:
    _check_file(path)
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise BnnError(f"{path}: empty file") from None
        rows = list(reader)
    has_label = label in header
    li = header.index(label) if has_label else -1
    feats = [h for i, h in enumerate(header) if i != li]
    X = np.empty((len(rows), len(feats)), dtype=np.float64)  # float32 after the range check
    y_text = []
    for r, row in enumerate(rows):
        if len(row) != len(header):
            raise BnnError(f"{path}: row {r + 1} has {len(row)} columns, the header has {len(header)}")
        vals = [v for i, v in enumerate(row) if i != li]
        for c, v in enumerate(vals):
            v = v.strip()
            try:
                X[r, c] = float(v) if v else np.nan
            except ValueError:
                raise BnnError(f"{path}: row {r + 1}, column '{feats[c]}': {v!r} is not a number") from None
        if has_label:
            y_text.append(row[li].strip())
    y = _labels_from_text(y_text) if has_label else None
    return Dataset(os.path.basename(path), _to_float32(X), y, feats, (), None, {})


def _labels_from_text(values: list[str]) -> np.ndarray:
    try:
        as_int = np.array([int(v) for v in values], dtype=np.int64)
        return as_int
    except ValueError:
        pass
    try:
        return np.array([float(v) for v in values], dtype=np.float64)
    except ValueError:
        return np.array(values, dtype=str)


def _load_npz(path: str) -> Dataset:
    _check_file(path)
    with open(path, "rb") as fh:
        if fh.read(2) != b"PK":  # an .npz is a zip archive
            raise BnnError(f"{path}: not an .npz file (numpy.savez writes one: np.savez(path, X=X, y=y))")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "X" not in z.files:
                raise BnnError(f"{path}: no array 'X' (found: {', '.join(z.files)})")
            X = np.asarray(z["X"])
            y = np.asarray(z["y"]) if "y" in z.files else None
            names = [str(n) for n in z["feature_names"]] if "feature_names" in z.files else None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise BnnError(f"{path}: not a readable .npz without pickled objects ({str(exc).splitlines()[0]})") from None
    if X.ndim != 2:
        raise BnnError(f"{path}: X must be 2-D (rows x features), got shape {X.shape}")
    if y is not None and y.shape != (X.shape[0],):
        raise BnnError(f"{path}: y has shape {y.shape}, expected ({X.shape[0]},)")
    names = names or [f"x{i}" for i in range(X.shape[1])]
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
        raise BnnError(f"{path}: X holds {X.dtype} values, not numbers; store the features as floats")
    return Dataset(os.path.basename(path), _to_float32(X), y, names, (), None, {})


def load_rows(source: str, feature_names: list[str], artifact_positive: tuple, *, label: str = "label",
              positive: str | None = None) -> Dataset:
    """Load rows for a built artifact: labels are optional, "yes" is the artifact's.

    Deciding, simulating and explaining need no labels. When the rows carry labels, they are
    read with the artifact's positive set; ``positive`` (a later command's ``--positive``) only
    maps labels of another labelling (say 0/1 in a file for a "digit is 3" artifact) for the
    accuracy figures, and is refused when it contradicts the artifact on its own labels.
    """
    ds = load_data(source, label=label, positive=None, require_labels=False, resolve_positive=False)
    check_columns(ds, feature_names)
    art_pos = tuple(artifact_positive)
    if ds.y is None:
        if positive:
            raise BnnError(f"{ds.name}: --positive maps labels, but the rows have no label column "
                           f"'{label}'; drop --positive (the artifact records what yes means)")
        return Dataset(ds.name, ds.X, None, ds.feature_names, art_pos, ds.image_shape, ds.label_names)
    present = set(np.unique(ds.y).tolist())
    own = tuple(_coerce_known(v, ds.y) for v in art_pos)
    speaks_artifact_labels = any(v in present for v in own if v is not None)
    if positive:
        given = parse_positive(positive, ds.y, ())
        if speaks_artifact_labels and set(given) != set(own):
            shown = ",".join(str(v) for v in art_pos)
            raise BnnError(f"--positive {positive} contradicts the artifact, whose yes is label(s) {shown}; "
                           "drop --positive (the artifact records what yes means)")
        pos = given
    elif speaks_artifact_labels:
        pos = tuple(v for v in own if v is not None)
    elif present <= {0, 1}:
        pos = (ds.y.dtype.type(1).item(),)  # a yes/no file: 1 means yes
    else:
        shown = ", ".join(str(v) for v in sorted(present, key=str)[:12])
        raise BnnError(f"{ds.name}: none of the labels ({shown}) is the artifact's yes "
                       f"({','.join(map(str, art_pos))}); say which label means yes with --positive")
    return Dataset(ds.name, ds.X, ds.y, ds.feature_names, pos, ds.image_shape, ds.label_names)


def _coerce_known(value, labels: np.ndarray):
    """An artifact's positive value in the dtype of a file's labels (None if it cannot be)."""
    try:
        return _coerce_like(str(value), labels)
    except BnnError:
        return None


def check_columns(ds: Dataset, expected: list[str]) -> None:
    """Refuse data whose columns differ from the ones the artifact was built on."""
    if ds.X.shape[1] != len(expected):
        raise BnnError(
            f"{ds.name}: {ds.X.shape[1]} feature columns, but the artifact expects {len(expected)} "
            f"({', '.join(expected[:4])}{', ...' if len(expected) > 4 else ''})"
        )
