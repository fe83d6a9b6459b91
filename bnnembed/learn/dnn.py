"""The DNN whose decisions the bounds approximate: load ONNX / TorchScript, or train a default.

Output conventions (documented in docs/artifact.md), worked out once at build time and recorded
in the artifact, so that no later command asks again:

- ``logit``: one output column, the logit of the positive class; yes iff it is > 0;
- ``probability``: one output column, a probability in [0, 1] (a final sigmoid); yes iff > 0.5;
- ``classes``: K >= 2 columns of class scores (logits or softmax probabilities). Column ``k``
  scores label value ``k`` when the labels are the integers ``0..K-1``, otherwise the ``k``-th
  label in sorted order; yes iff the argmax column is a positive class (``--positive`` names
  one or several). Two classes are the case K = 2.

A one-column DNN is a probability when its ONNX graph ends in ``Sigmoid`` or when every output on
the build's rows lies in [0, 1]; otherwise a logit (``build --dnn-output`` overrides the guess).

Inputs: the DNN takes the rows' raw features. A DNN whose input is an image tensor
(``(batch, C, H, W)`` with ``C*H*W`` features) gets each row reshaped to it; the shape is read
from the ONNX graph, or for TorchScript found by trying the flat row and then the data's image
shape, and recorded as ``input_shape``.

Anything else (a 3-D output, a column count that matches no labelling, several columns and no
positive class) is refused with a one-line error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..errors import BnnError

_BATCH = 4096


class Output:
    """The DNN output conventions (the ``dnn.output`` value of the manifest)."""

    LOGIT = "logit"
    PROBABILITY = "probability"
    CLASSES = "classes"
    ALL = (LOGIT, PROBABILITY, CLASSES)


def describe_output(output: str, n_outputs: int, positive_columns: tuple[int, ...]) -> str:
    """One human line for reports and the manifest."""
    if output == Output.LOGIT:
        return "one logit (yes iff > 0)"
    if output == Output.PROBABILITY:
        return "one probability (yes iff > 0.5)"
    cols = ",".join(str(c) for c in positive_columns)
    return f"{n_outputs} class scores (yes iff the argmax is column {cols})"


@dataclass
class Dnn:
    """A loaded DNN, its output convention and the columns of its output that mean yes."""

    path: str
    kind: str  # "onnx" or "torchscript"
    n_features: int
    positive_columns: tuple[int, ...]  # empty when the output is one column
    _runner: object = None
    output: str = Output.LOGIT
    n_outputs: int = 1
    input_shape: tuple[int, ...] = ()  # dims after the batch; () = the flat row

    def _shaped(self, X: np.ndarray) -> np.ndarray:
        if self.input_shape and tuple(self.input_shape) != (self.n_features,):
            return X.reshape((len(X),) + tuple(self.input_shape))
        return X

    def raw(self, X: np.ndarray) -> np.ndarray:
        """Raw outputs, always 2-D ``(n, columns)``."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise BnnError(f"the DNN takes {self.n_features} features, the data has {X.shape[-1]}")
        outs = [self._run(self._shaped(X[i : i + _BATCH])) for i in range(0, len(X), _BATCH)]
        out = np.concatenate(outs, 0) if outs else np.zeros((0, self.n_outputs), np.float32)
        return check_output_shape(out, len(X), self.path)

    def _run(self, X: np.ndarray) -> np.ndarray:
        if self.kind == "onnx":
            sess = self._runner
            return np.asarray(sess.run(None, {sess.get_inputs()[0].name: X})[0])
        import torch

        with torch.no_grad():
            out = self._runner(torch.from_numpy(np.ascontiguousarray(X)))
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.detach().cpu().numpy()

    def says_yes(self, X: np.ndarray) -> np.ndarray:
        """Boolean DNN decisions (see the module docstring for the output conventions)."""
        return yes_from_output(self.raw(X), self.positive_columns, self.output)

    def margin(self, X: np.ndarray) -> np.ndarray:
        """How sure the DNN is, signed: > 0 where it says yes (see :func:`margin_from_output`)."""
        return margin_from_output(self.raw(X), self.positive_columns, self.output)

    def describe(self) -> str:
        return describe_output(self.output, self.n_outputs, self.positive_columns)


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


def yes_from_output(out: np.ndarray, positive_columns: tuple[int, ...], output: str = Output.LOGIT) -> np.ndarray:
    if out.shape[1] == 1:
        return out[:, 0] > (0.5 if output == Output.PROBABILITY else 0.0)
    return np.isin(np.argmax(out, axis=1), np.array(positive_columns, dtype=np.int64))


def margin_from_output(out: np.ndarray, positive_columns: tuple[int, ...], output: str = Output.LOGIT) -> np.ndarray:
    """The DNN's signed margin per row, positive exactly where :func:`yes_from_output` says yes: the
    logit (a probability's log-odds), or for class scores the best yes column minus the best other
    one (ties, where the argmax decides, count as 0)."""
    out = np.asarray(out, dtype=np.float64)
    if out.shape[1] == 1:
        if output == Output.PROBABILITY:
            p = np.clip(out[:, 0], 1e-7, 1 - 1e-7)
            return np.log(p / (1 - p))
        return out[:, 0]
    yes = np.zeros(out.shape[1], bool)
    yes[list(positive_columns)] = True
    return out[:, yes].max(1) - out[:, ~yes].max(1)


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
                raise BnnError(f"{path}: positive class {bad[0]} has no column among the DNN's {n_cols} outputs "
                               f"(classes 0..{n_cols - 1})")
            if len(set(positive)) == n_cols:
                raise BnnError(f"{path}: --positive names all {n_cols} classes; the DNN would always say yes")
            return tuple(int(p) for p in positive)
    if classes is None or len(classes) != n_cols:
        n = "unknown" if classes is None else len(classes)
        raise BnnError(
            f"{path}: the DNN has {n_cols} outputs but the data has {n} classes; "
            "export one column per class in sorted label order"
        )
    order = sorted(classes.tolist(), key=lambda v: (str(type(v)), v))
    return tuple(order.index(p) for p in positive)


def _onnx_ends_in_sigmoid(path: str) -> bool:
    try:
        import onnx

        g = onnx.load(path, load_external_data=False).graph
    except Exception:  # an unreadable graph is onnxruntime's to report
        return False
    out = g.output[0].name if g.output else None
    return any(n.op_type == "Sigmoid" and out in n.output for n in g.node)


def guess_output(dnn: Dnn, X: np.ndarray) -> str:
    """The output convention of a loaded DNN, from its graph and its outputs on ``X``."""
    if dnn.n_outputs > 1:
        return Output.CLASSES
    if dnn.kind == "onnx" and _onnx_ends_in_sigmoid(dnn.path):
        return Output.PROBABILITY
    out = dnn.raw(X[: 20_000])[:, 0]
    return Output.PROBABILITY if out.min() >= 0.0 and out.max() <= 1.0 else Output.LOGIT


def _onnx_input_shape(sess, n_features: int) -> tuple[int, ...]:
    dims = list(sess.get_inputs()[0].shape)[1:]
    if dims and all(isinstance(d, int) and d > 0 for d in dims) and int(np.prod(dims)) == n_features:
        return tuple(int(d) for d in dims)
    return (n_features,)


def _candidate_shapes(n_features: int, image_shape) -> list[tuple[int, ...]]:
    shapes = [(n_features,)]
    if image_shape:
        h, w = image_shape
        shapes += [(1, h, w), (h, w)]
    side = int(round(np.sqrt(n_features)))
    if side * side == n_features and not image_shape:
        shapes += [(1, side, side), (side, side)]
    return shapes


def load_dnn(path: str, n_features: int, positive: tuple = (), labels: np.ndarray | None = None, *,
             output: str | None = None, positive_columns: tuple[int, ...] | None = None,
             input_shape: tuple[int, ...] | None = None, image_shape=None) -> Dnn:
    """Load an ONNX or TorchScript DNN.

    At build time the caller gives the positive label values (and the labels, to map them to
    columns); a later command gives what the artifact recorded (``output``,
    ``positive_columns``, ``input_shape``) and is never asked for ``--positive``.
    """
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
        shapes = [tuple(input_shape)] if input_shape else [_onnx_input_shape(runner, n_features)]
    elif path.endswith((".pt", ".pth", ".torchscript", ".ts")):
        import torch

        try:
            runner = torch.jit.load(path, map_location="cpu")
        except Exception as exc:  # torch raises RuntimeError and friends
            raise BnnError(f"--dnn {path}: not a TorchScript file ({str(exc).splitlines()[0]})") from None
        runner.eval()
        kind = "torchscript"
        shapes = [tuple(input_shape)] if input_shape else _candidate_shapes(n_features, image_shape)
    else:
        raise BnnError(f"--dnn {path}: use an .onnx model or a TorchScript file (.pt)")
    dnn = Dnn(path, kind, n_features, (), runner)
    out, first_error = None, None
    for shape in shapes:
        dnn.input_shape = shape
        try:
            out = check_output_shape(dnn._run(dnn._shaped(np.zeros((2, n_features), np.float32))), 2, path)
            break
        except BnnError:
            raise
        except Exception as exc:
            first_error = first_error or str(exc).splitlines()[0]
    if out is None:
        tried = " or ".join("(rows, " + ", ".join(map(str, s)) + ")" for s in shapes)
        raise BnnError(f"--dnn {path}: running it on {n_features} features failed as {tried} ({first_error})")
    dnn.n_outputs = int(out.shape[1])
    if positive_columns is not None:
        if dnn.n_outputs > 1 and (not positive_columns or max(positive_columns) >= dnn.n_outputs):
            raise BnnError(f"{path}: the artifact's positive columns {list(positive_columns)} do not fit the "
                           f"DNN's {dnn.n_outputs} outputs; rebuild the artifact")
        dnn.positive_columns = tuple(int(c) for c in positive_columns) if dnn.n_outputs > 1 else ()
    else:
        dnn.positive_columns = positive_columns_for(dnn.n_outputs, positive, labels, path)
    if output is not None:
        if output not in Output.ALL:
            raise BnnError(f"{path}: unknown DNN output convention {output!r} (use {', '.join(Output.ALL)})")
        if (output == Output.CLASSES) != (dnn.n_outputs > 1):
            raise BnnError(f"{path}: the DNN has {dnn.n_outputs} output column(s), which does not fit "
                           f"the output convention {output!r}")
        dnn.output = output
    else:
        dnn.output = Output.CLASSES if dnn.n_outputs > 1 else Output.LOGIT
    return dnn


def export_onnx_for_certify(dnn: Dnn, path: str) -> bool:
    """Export a TorchScript DNN to ONNX (the graph 'certify' verifies); False if torch cannot.

    The export is checked on random rows against the TorchScript outputs; the DNN that answers
    stays the TorchScript one, and certify replays every counterexample through it."""
    import torch

    shape = (2,) + tuple(dnn.input_shape or (dnn.n_features,))
    try:
        torch.onnx.export(dnn._runner, (torch.zeros(shape),), path, input_names=["features"],
                          dynamic_axes={"features": {0: "batch"}}, dynamo=False)
        probe = np.random.default_rng(0).normal(size=(64, dnn.n_features)).astype(np.float32)
        exported = load_dnn(path, dnn.n_features, output=dnn.output, positive_columns=dnn.positive_columns,
                            input_shape=dnn.input_shape)
        if not np.allclose(exported.raw(probe), dnn.raw(probe), rtol=1e-4, atol=1e-4):
            raise ValueError("the exported graph computes something else")
        return True
    except Exception:  # torch's exporter raises many kinds; the build goes on without it
        if os.path.exists(path):
            os.remove(path)
        return False


def train_default_dnn(X: np.ndarray, yes: np.ndarray, path: str, *, seed: int = 0,
                      hidden: tuple[int, ...] | None = None, epochs: int | None = None,
                      scale: str = "feature") -> None:
    """Train a small float MLP on the training split and store it as ONNX at ``path``.

    The input standardisation is part of the exported graph, so the ONNX model takes raw
    features, exactly as the device sees them. ``scale="feature"`` standardises each feature by
    its own mean and deviation; ``"uniform"`` (images) uses one mean and deviation for every pixel,
    so a near-constant border pixel is not magnified into the most sensitive input (with per-pixel
    scaling the digits DNN changed its decision within a few grey levels of almost every image,
    which no explanation of it could survive; see docs/certification.md).
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
    if scale == "uniform":
        mean = np.full(f, X.mean(), np.float32)
        std = np.full(f, X.std(), np.float32)
    elif scale == "feature":
        mean = X.mean(0)
        std = X.std(0)
    else:
        raise ValueError(f"scale must be 'feature' or 'uniform', got {scale!r}")
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
