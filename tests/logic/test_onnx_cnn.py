"""Reading exported CNNs (and MLP extensions) into the piecewise-linear network of certify.

Every model is a tiny randomly initialised torch module exported with the TorchScript exporter
(``dynamo=False``); the network read by :func:`read_onnx` must agree with onnxruntime (with and
without its graph optimisations, which fuse operators) to float32 accuracy, and its
floating-point error bound must cover the actual difference on a box holding the inputs.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from bnnembed.logic.certify import Status, VerifyConfig, read_onnx, verify_box
from bnnembed.logic.certify.plnet import Op, PlNet
from bnnembed.errors import BnnError

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def export(model, in_shape, path, opset=None):
    """Export ``model`` taking ``(batch, *in_shape)`` with a dynamic batch axis."""
    model.eval()
    kw = {} if opset is None else {"opset_version": opset}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros((2,) + tuple(in_shape)),), str(path), dynamo=False,
                          input_names=["features"], dynamic_axes={"features": {0: "batch"}}, **kw)
    return str(path)


def run_ort(path, X, optimize=True):
    """onnxruntime outputs as ``(n, outputs)`` float32; ``X`` is flat, reshaped to the input."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dims = tuple(int(d) for d in inp.shape[1:])
    out = sess.run(None, {inp.name: np.asarray(X, np.float32).reshape((len(X),) + dims)})[0]
    return np.asarray(out).reshape(len(X), -1)


def inputs(n_features, n=300, seed=0, scale=1.0):
    return (np.random.default_rng(seed).normal(size=(n, n_features)) * scale).astype(np.float32)


def check_against_runtime(net: PlNet, path, X, logits_path=None):
    """forward == onnxruntime (logits from ``logits_path`` when the output op was stripped), and
    the error bound on the inputs' box covers the float32 runtime."""
    ref_path = logits_path or path
    fw = net.forward(X)
    err = net.fp_error_bound(X.min(0), X.max(0))
    assert np.all(np.isfinite(err))
    for optimize in (True, False):
        out = run_ort(ref_path, X, optimize).astype(np.float64)
        assert out.shape == fw.shape
        diff = np.abs(fw - out)
        assert diff.max() <= 1e-4 * max(1.0, np.abs(out).max()), diff.max()
        assert np.all(diff <= err), (diff.max(), err.min())
    return fw


# --------------------------------------------------------------------------------------------
# CNNs
# --------------------------------------------------------------------------------------------


class FlatCNN(torch.nn.Module):
    """Flat 64-feature rows viewed as 1x8x8 images inside the model."""

    def __init__(self, view: str):
        super().__init__()
        self.view = view
        self.c1 = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.c2 = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.pool = torch.nn.AvgPool2d(2)
        self.fc = torch.nn.Linear(6, 10)
        _randomise_bn(self.bn)

    def forward(self, x):
        x = x.view(-1, 1, 8, 8) if self.view == "const" else x.view(x.size(0), 1, 8, 8)
        x = torch.nn.functional.max_pool2d(torch.relu(self.bn(self.c1(x))), 2)
        x = self.pool(torch.relu(self.c2(x)))
        return self.fc(torch.flatten(x, 1))


def _randomise_bn(bn):
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.3, 0.3)


@pytest.mark.parametrize("view", ["const", "size"])
@pytest.mark.parametrize("opset", [13, 17, None])
def test_flat_cnn_with_internal_view(tmp_path, view, opset):
    torch.manual_seed(0)
    path = export(FlatCNN(view), (64,), tmp_path / "cnn.onnx", opset)
    net = read_onnx(path)
    assert net.in_shape == (64,) and net.n_in == 64 and net.n_out == 10
    assert [op.kind for op in net.ops].count("max") == 1
    check_against_runtime(net, path, inputs(64))


def test_cnn_with_4d_input(tmp_path):
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(3, 4, 2), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(36, 2))
    path = export(model, (1, 8, 8), tmp_path / "cnn4d.onnx")
    net = read_onnx(path)
    assert net.in_shape == (1, 8, 8) and net.n_in == 64 and net.n_out == 2
    X = inputs(64)
    fw = check_against_runtime(net, path, X)
    with torch.no_grad():
        ref = model(torch.from_numpy(X.reshape(-1, 1, 8, 8))).double().numpy()
    assert np.allclose(fw, ref, atol=1e-4)


def test_grouped_dilated_and_same_padded_convs(tmp_path):
    torch.manual_seed(2)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, groups=2, dilation=2, padding=2), torch.nn.ReLU(),
        torch.nn.Conv2d(4, 4, 3, groups=4, stride=2, padding=1, bias=False),  # depthwise
        torch.nn.Conv2d(4, 6, (2, 3), padding="same"), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(6 * 4 * 4, 3))
    path = export(model, (2, 7, 7), tmp_path / "grouped.onnx")
    net = read_onnx(path)
    check_against_runtime(net, path, inputs(2 * 49))


def test_conv1d(tmp_path):
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 3, stride=2, padding=1), torch.nn.ReLU(),
                                torch.nn.MaxPool1d(2), torch.nn.Flatten(), torch.nn.Linear(6, 1))
    path = export(model, (2, 9), tmp_path / "c1d.onnx")
    check_against_runtime(read_onnx(path), path, inputs(18))


POOLS = {
    "max2": lambda: torch.nn.MaxPool2d(2),
    "max3_s2_p1": lambda: torch.nn.MaxPool2d(3, stride=2, padding=1),
    "max3_ceil": lambda: torch.nn.MaxPool2d(3, stride=2, ceil_mode=True),
    "max2_dil2": lambda: torch.nn.MaxPool2d(2, dilation=2),
    "avg3_pad_incl": lambda: torch.nn.AvgPool2d(3, stride=2, padding=1),
    "avg3_pad_excl": lambda: torch.nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
    "avg2_ceil": lambda: torch.nn.AvgPool2d(2, ceil_mode=True),
    "global_avg": lambda: torch.nn.AdaptiveAvgPool2d(1),
    "global_max": lambda: torch.nn.AdaptiveMaxPool2d(1),
}


class _Reduce(torch.nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    def forward(self, x):
        return x.mean((2, 3), keepdim=True) if self.kind == "mean" else x.amax((2, 3), keepdim=True)


@pytest.mark.parametrize("relu", [False, True], ids=["signed", "after_relu"])
@pytest.mark.parametrize("pool", list(POOLS) + ["reduce_mean", "reduce_max"])
def test_pools(tmp_path, pool, relu):
    """Pools after a ReLU (inputs >= 0) and after a plain conv (signed inputs, the general max fold)."""
    torch.manual_seed(4)
    p = POOLS[pool]() if pool in POOLS else _Reduce(pool.split("_")[1])
    layers = [torch.nn.Conv2d(1, 2, 2)] + ([torch.nn.ReLU()] if relu else []) + [p, torch.nn.Flatten()]
    probe = torch.nn.Sequential(*layers)(torch.zeros(1, 1, 7, 7))
    model = torch.nn.Sequential(*layers, torch.nn.Linear(probe.shape[1], 3))
    path = export(model, (1, 7, 7), tmp_path / "pool.onnx")
    net = read_onnx(path)
    X = inputs(49)
    fw = check_against_runtime(net, path, X)
    with torch.no_grad():
        ref = model(torch.from_numpy(X.reshape(-1, 1, 7, 7))).double().numpy()
    assert np.allclose(fw, ref, atol=1e-4)


def test_batchnorm_ops_in_the_graph(tmp_path):
    """BatchNormalization not right after a Conv stays in the exported graph (2-D and 1-D)."""
    torch.manual_seed(5)
    bn2, bn1 = torch.nn.BatchNorm2d(3), torch.nn.BatchNorm1d(8)
    _randomise_bn(bn2)
    _randomise_bn(bn1)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3), torch.nn.ReLU(), bn2, torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(12, 8), torch.nn.ReLU(), bn1, torch.nn.Linear(8, 1))
    path = export(model, (1, 6, 6), tmp_path / "bn.onnx")
    net = read_onnx(path)
    assert sum(op.rounding == "bn" for op in net.ops) == 2
    check_against_runtime(net, path, inputs(36, scale=3.0))


class _Consts(torch.nn.Module):
    """Per-channel (C, 1, 1) constants, a constant minus the tensor, a division, a transpose."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 3, 3)
        self.s = torch.nn.Parameter(torch.rand(3, 1, 1) + 0.5)
        self.t = torch.nn.Parameter(torch.randn(3, 1, 1))
        self.row = torch.nn.Parameter(torch.randn(1, 4))  # broadcast over (C, H, W=4)
        self.fc = torch.nn.Linear(48, 2)

    def forward(self, x):
        x = self.conv(x) * self.s + self.t
        x = 1.5 - x + self.row
        x = torch.relu(x / 3.0)
        return self.fc(x.permute(0, 2, 3, 1).reshape(x.size(0), -1))


def test_broadcast_constants_and_transpose(tmp_path):
    torch.manual_seed(6)
    model = _Consts()
    path = export(model, (1, 6, 6), tmp_path / "consts.onnx")
    net = read_onnx(path)
    X = inputs(36)
    fw = check_against_runtime(net, path, X)
    with torch.no_grad():
        ref = model(torch.from_numpy(X.reshape(-1, 1, 6, 6))).double().numpy()
    assert np.allclose(fw, ref, atol=1e-4)


def test_matmul_on_the_last_axis(tmp_path):
    torch.manual_seed(7)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(15, 2))
    path = export(model, (3, 4), tmp_path / "mm3d.onnx")
    net = read_onnx(path)
    assert net.in_shape == (3, 4)
    check_against_runtime(net, path, inputs(12))


# --------------------------------------------------------------------------------------------
# stripped output functions
# --------------------------------------------------------------------------------------------


class _Squash(torch.nn.Module):
    def __init__(self, body, squash):
        super().__init__()
        self.body, self.squash = body, squash

    def forward(self, x):
        y = self.body(x)
        if self.squash == "softmax":
            return torch.softmax(y, 1)
        if self.squash == "log_softmax":
            return torch.log_softmax(y, 1)
        if self.squash == "sigmoid":
            return torch.sigmoid(y)
        return y


@pytest.mark.parametrize("squash,name", [("softmax", "Softmax"), ("log_softmax", "LogSoftmax")])
def test_final_softmax_is_stripped(tmp_path, squash, name):
    torch.manual_seed(8)
    body = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(32, 4))
    path = export(_Squash(body, squash), (1, 6, 6), tmp_path / "sm.onnx")
    logits = export(_Squash(body, None), (1, 6, 6), tmp_path / "logits.onnx")
    net = read_onnx(path)
    assert net.output_stripped == name and net.n_out == 4
    X = inputs(36)
    fw = check_against_runtime(net, path, X, logits_path=logits)
    probs = run_ort(path, X)
    z = fw - fw.max(1, keepdims=True)
    want = z - np.log(np.exp(z).sum(1, keepdims=True))
    want = np.exp(want) if squash == "softmax" else want
    assert np.allclose(probs, want, atol=1e-5)
    assert np.array_equal(probs.argmax(1), fw.argmax(1))


def test_sigmoid_mlp_one_output(tmp_path):
    torch.manual_seed(9)
    body = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    path = export(_Squash(body, "sigmoid"), (5,), tmp_path / "sig.onnx")
    logits = export(_Squash(body, None), (5,), tmp_path / "logit.onnx")
    net = read_onnx(path)
    assert net.output_stripped == "Sigmoid" and net.n_out == 1
    X = inputs(5)
    fw = check_against_runtime(net, path, X, logits_path=logits)
    p = run_ort(path, X)
    assert np.allclose(p, 1 / (1 + np.exp(-fw)), atol=1e-6)
    away = np.abs(fw[:, 0]) > 1e-3
    assert np.array_equal((p[away, 0] > 0.5), fw[away, 0] > 0)


def test_sigmoid_over_several_outputs_is_refused(tmp_path):
    model = _Squash(torch.nn.Linear(3, 2), "sigmoid")
    path = export(model, (3,), tmp_path / "sig2.onnx")
    with pytest.raises(BnnError, match="Sigmoid"):
        read_onnx(path)


# --------------------------------------------------------------------------------------------
# branches
# --------------------------------------------------------------------------------------------


class _Branches(torch.nn.Module):
    """Two linear branches of the same tensor joined by Add/Sub, and an identity branch."""

    def __init__(self):
        super().__init__()
        self.c0 = torch.nn.Conv2d(1, 3, 3, padding=1)
        self.c1 = torch.nn.Conv2d(3, 3, 3, padding=1)
        self.c2 = torch.nn.Conv2d(3, 3, 1)
        self.c3 = torch.nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.fc1 = torch.nn.Linear(48, 48)
        self.fc2 = torch.nn.Linear(48, 2)

    def forward(self, x):
        h = torch.relu(self.c0(x))
        y = self.c1(h) + self.c2(h) * 0.5 - self.c3(h)
        h = torch.relu(y + h).flatten(1)
        return self.fc2(torch.relu(self.fc1(h) + h))


def test_add_of_linear_branches(tmp_path):
    torch.manual_seed(10)
    model = _Branches()
    path = export(model, (1, 4, 4), tmp_path / "branches.onnx")
    net = read_onnx(path)
    assert sum(op.kind == "sum" for op in net.ops) >= 2
    assert sum(op.kind == "relu" for op in net.ops) == 3
    X = inputs(16)
    fw = check_against_runtime(net, path, X)
    with torch.no_grad():
        ref = model(torch.from_numpy(X.reshape(-1, 1, 4, 4))).double().numpy()
    assert np.allclose(fw, ref, atol=1e-4)


# --------------------------------------------------------------------------------------------
# refusals
# --------------------------------------------------------------------------------------------


def test_refuses_tanh_naming_it(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Tanh(), torch.nn.Flatten(),
                                torch.nn.Linear(8, 1))
    path = export(model, (1, 4, 4), tmp_path / "tanh.onnx")
    with pytest.raises(BnnError) as e:
        read_onnx(path)
    msg = str(e.value)
    assert "Tanh" in msg and "/1/Tanh" in msg and "Conv" in msg and "MaxPool" in msg
    assert "\n" not in msg


class _Residual(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(4, 4)
        self.b = torch.nn.Linear(4, 4)

    def forward(self, x):
        h = self.a(x)
        return h + torch.relu(self.b(h))


def test_refuses_residual_across_relu(tmp_path):
    path = export(_Residual(), (4,), tmp_path / "res.onnx")
    with pytest.raises(BnnError, match=r"operator Add .*residual connection around a nonlinearity"):
        read_onnx(path)


def test_refuses_softmax_before_the_end(tmp_path):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(3, 3)

        def forward(self, x):
            return self.a(torch.softmax(self.a(x), 1))

    path = export(M(), (3,), tmp_path / "sm_mid.onnx")
    with pytest.raises(BnnError, match="only supported as the last operator"):
        read_onnx(path)


def test_refuses_product_of_computed_tensors(tmp_path):
    class M(torch.nn.Module):
        def forward(self, x):
            return x * x

    path = export(M(), (3,), tmp_path / "sq.onnx")
    with pytest.raises(BnnError, match="Mul"):
        read_onnx(path)


# --------------------------------------------------------------------------------------------
# the max fold itself
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("after_relu", [False, True], ids=["signed", "after_relu"])
@pytest.mark.parametrize("twice", [False, True], ids=["one_max", "max_of_max"])
def test_max_fold_computes_the_max(after_relu, twice):
    rng = np.random.default_rng(11)
    A, c = rng.normal(size=(9, 5)), rng.normal(size=9)
    windows = ((0,), (0, 1), (1, 2, 3), (2, 3, 4, 5, 6), (3, 4, 5, 6, 7, 8), (8, 0, 4), (5,))
    windows2 = ((0, 1, 2), (6,), (3, 4, 5, 6), (1, 5))
    ops = [Op("affine", A, c, "dot")] + ([Op("relu")] if after_relu else []) + [Op("max", windows=windows)]
    if twice:
        ops.append(Op("max", windows=windows2))
    n = len(windows2) if twice else len(windows)
    ops.append(Op("affine", np.eye(n), np.zeros(n), "dot"))
    net = PlNet(5, ops)
    X = rng.normal(size=(2000, 5)) * 3
    H = X @ A.T + c
    if after_relu:
        H = np.maximum(H, 0)
    want = np.stack([H[:, list(w)].max(1) for w in windows], 1)
    if twice:
        want = np.stack([want[:, list(w)].max(1) for w in windows2], 1)
    assert np.allclose(net.forward(X), want, atol=1e-12)
    # interval bounds and the error bound hold on the box
    lo, hi = X.min(0), X.max(0)
    zl, zh = net.ibp(lo, hi)[-1]
    assert np.all(want >= zl - 1e-9) and np.all(want <= zh + 1e-9)
    assert np.all(net.fp_error_bound(lo, hi) > 0)
    # inputs known >= 0 need one pass-through row per element, signed ones two
    rows = net.layers[1 if after_relu else 0][0].shape[0]
    pairs = sum(len(w) // 2 for w in windows)
    assert rows <= (2 if after_relu else 3) * (pairs + len(windows))


# --------------------------------------------------------------------------------------------
# verification of a box on a CNN
# --------------------------------------------------------------------------------------------


def test_verify_box_on_tiny_cnn(tmp_path):
    from bnnembed.learn.dnn import load_dnn

    torch.manual_seed(12)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 2), torch.nn.ReLU(), torch.nn.MaxPool2d(2, stride=1),
        torch.nn.Flatten(), torch.nn.Linear(12, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    path = export(model, (1, 4, 4), tmp_path / "tiny.onnx")
    net = read_onnx(path)
    dnn = load_dnn(path, 16)
    rng = np.random.default_rng(0)
    seen = set()
    for i, w in enumerate((0.01, 0.3, 3.0, 0.01, 0.3, 3.0)):
        centre = rng.normal(size=16)
        lo, hi = centre - w, centre + w
        claim = "yes" if run_ort(path, centre[None, :])[0, 0] > 0 else "no"
        cfg = VerifyConfig(time_limit=20)
        if i >= 3:  # the MILP alone, without IBP shortcut's attack
            cfg = VerifyConfig(time_limit=20, attack_points=0, attack_steps=0, tighten=False)
        r = verify_box(net, dnn, lo, hi, claim, cfg)
        seen.add(r.status)
        assert r.status in (Status.CERTIFIED, Status.REFUTED), r
        if r.status == Status.REFUTED:
            c = r.counterexample.astype(np.float32)
            assert np.all(c >= lo.astype(np.float32)) and np.all(c <= hi.astype(np.float32))
            assert (run_ort(path, c[None, :])[0, 0] > 0) != (claim == "yes")
        else:
            X = (lo + rng.random((3000, 16)) * (hi - lo)).astype(np.float32)
            assert np.all((run_ort(path, X)[:, 0] > 0) == (claim == "yes"))
    assert seen == {Status.CERTIFIED, Status.REFUTED}
