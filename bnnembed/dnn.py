"""The DNN whose decisions the bounds approximate: load ONNX / TorchScript, or train a default.

Output convention (documented in docs/artifact.md):

- one output column: the logit of the positive class; the DNN says yes iff it is > 0;
- several columns: class scores. Column ``k`` scores label value ``k`` when the labels are the
  integers ``0..K-1``, otherwise the ``k``-th label in sorted order; the DNN says yes iff the
  argmax column is a positive class. ``--positive`` names those classes (one or several).

Anything else (a 3-D output, a column count that matches no labelling, several columns and no
positive class) is refused with a one-line error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .errors import BnnError

_BATCH = 4096


@dataclass
class Dnn:
    """A loaded DNN and the columns of its output that mean yes."""

    path: str
    kind: str  # "onnx" or "torchscript"
    n_features: int
    positive_columns: tuple[int, ...]  # empty when the output is a single logit
    _runner: object = None

    def raw(self, X: np.ndarray) -> np.ndarray:
        """Raw outputs, always 2-D ``(n, columns)``."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise BnnError(f"the DNN takes {self.n_features} features, the data has {X.shape[-1]}")
        outs = [self._run(X[i : i + _BATCH]) for i in range(0, len(X), _BATCH)]
        out = np.concatenate(outs, 0) if outs else np.zeros((0, 1), np.float32)
        return check_output_shape(out, len(X), self.path)

    def _run(self, X: np.ndarray) -> np.ndarray:
        if self.kind == "onnx":
            sess = self._runner
            return np.asarray(sess.run(None, {sess.get_inputs()[0].name: X})[0])
        import torch

        with torch.no_grad():
            out = self._runner(torch.from_numpy(X))
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.detach().cpu().numpy()

    def says_yes(self, X: np.ndarray) -> np.ndarray:
        """Boolean DNN decisions (see the module docstring for the output convention)."""
        out = self.raw(X)
        return yes_from_output(out, self.positive_columns)


def check_output_shape(out: np.ndarray, n_rows: int, path: str) -> np.ndarray:
    out = np.asarray(out, dtype=np.float32)
    if out.ndim == 1:
        out = out[:, None]
    if out.ndim != 2 or out.shape[0] != n_rows:
        raise BnnError(
            f"{path}: DNN output has shape {out.shape} for {n_rows} rows; expected (rows,) or "
            "(rows, classes): export a model that returns one logit or one score per class"
        )
    return out


def yes_from_output(out: np.ndarray, positive_columns: tuple[int, ...]) -> np.ndarray:
    if out.shape[1] == 1:
        return out[:, 0] > 0
    return np.isin(np.argmax(out, axis=1), np.array(positive_columns, dtype=np.int64))


def positive_columns_for(n_cols: int, positive: tuple, labels: np.ndarray | None, path: str) -> tuple[int, ...]:
    """Map the positive label values to output columns, or explain why that is impossible."""
    if n_cols == 1:
        return ()
    if not positive:
        raise BnnError(
            f"{path}: the DNN has {n_cols} outputs; say which classes mean yes with --positive"
        )
    classes = np.unique(labels) if labels is not None else None
    ints = all(isinstance(p, (int, np.integer)) for p in positive)
    if ints and (classes is None or np.issubdtype(classes.dtype, np.integer)):
        if classes is None or set(classes.tolist()) <= set(range(n_cols)):
            bad = [p for p in positive if not 0 <= p < n_cols]
            if bad:
                raise BnnError(f"{path}: positive class {bad[0]} has no column among the DNN's {n_cols} outputs")
            return tuple(int(p) for p in positive)
    if classes is None or len(classes) != n_cols:
        n = "unknown" if classes is None else len(classes)
        raise BnnError(
            f"{path}: the DNN has {n_cols} outputs but the data has {n} classes; "
            "export one column per class in sorted label order"
        )
    order = sorted(classes.tolist(), key=lambda v: (str(type(v)), v))
    return tuple(order.index(p) for p in positive)


def load_dnn(path: str, n_features: int, positive: tuple = (), labels: np.ndarray | None = None) -> Dnn:
    """Load an ONNX or TorchScript DNN and work out which output columns mean yes."""
    if not os.path.exists(path):
        raise BnnError(f"--dnn {path}: no such file")
    if path.endswith(".onnx"):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            runner = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises several private exception types
            raise BnnError(f"--dnn {path}: onnxruntime cannot load it ({str(exc).splitlines()[0]})") from None
        kind = "onnx"
    elif path.endswith((".pt", ".pth", ".torchscript", ".ts")):
        import torch

        try:
            runner = torch.jit.load(path, map_location="cpu")
        except Exception as exc:  # torch raises RuntimeError and friends
            raise BnnError(f"--dnn {path}: not a TorchScript file ({str(exc).splitlines()[0]})") from None
        runner.eval()
        kind = "torchscript"
    else:
        raise BnnError(f"--dnn {path}: use an .onnx model or a TorchScript file (.pt)")
    dnn = Dnn(path, kind, n_features, (), runner)
    probe = np.zeros((2, n_features), dtype=np.float32)
    try:
        out = check_output_shape(dnn._run(probe), 2, path)
    except BnnError:
        raise
    except Exception as exc:
        raise BnnError(f"--dnn {path}: running it on {n_features} features failed ({str(exc).splitlines()[0]})") from None
    dnn.positive_columns = positive_columns_for(out.shape[1], positive, labels, path)
    return dnn


def train_default_dnn(X: np.ndarray, yes: np.ndarray, path: str, *, seed: int = 0,
                      hidden: tuple[int, ...] | None = None, epochs: int | None = None) -> None:
    """Train a small float MLP on the training split and store it as ONNX at ``path``.

    The input standardisation is part of the exported graph, so the ONNX model takes raw
    features, exactly as the device sees them.
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    X = np.asarray(X, dtype=np.float32)
    n, f = X.shape
    if hidden is None:
        hidden = (128, 64) if f > 100 else (64, 32)
    if epochs is None:
        epochs = int(np.clip(60_000 // max(n, 1), 15, 300))
    mean = X.mean(0)
    std = X.std(0)
    std[std < 1e-6] = 1.0

    class Standardized(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.from_numpy(mean))
            self.register_buffer("inv_std", torch.from_numpy(1.0 / std))
            layers: list[nn.Module] = []
            width = f
            for h in hidden:
                layers += [nn.Linear(width, h), nn.ReLU()]
                width = h
            layers.append(nn.Linear(width, 1))
            self.mlp = nn.Sequential(*layers)

        def forward(self, x):
            return self.mlp((x - self.mean) * self.inv_std)

    model = Standardized()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    xt = torch.from_numpy(X)
    yt = torch.from_numpy(np.asarray(yes, dtype=np.float32))[:, None]
    loss_fn = nn.BCEWithLogitsLoss()
    batch = 64 if n < 5000 else 128
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch):
            idx = perm[i : i + batch]
            opt.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()
    torch.onnx.export(
        model, (xt[:2],), path, input_names=["features"], output_names=["logit"],
        dynamic_axes={"features": {0: "batch"}, "logit": {0: "batch"}}, dynamo=False,
    )
