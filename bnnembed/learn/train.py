"""Training binarized bounds with the straight-through estimator, and folding them to integers.

A bound network maps thermometer bits ``b`` (value ``1 - 2b``, so a set bit is -1) through hidden
binary dense layers (``sign(W)`` weights, a BatchNorm, a ``sign`` activation) to one binary output
neuron whose dot product, scaled, is the logit of the bound's answer. Gradients pass through
``sign`` by the straight-through estimator (identity clipped to ``|x| <= 1``).

Distillation: the target is the DNN's decision, never the label. The *upper* bound learns "the
DNN says yes", the *lower* bound "the DNN says no"; the asymmetric weight makes a wrong answer
(saying yes where the DNN says no, for the upper bound) cost ``asymmetry`` times a missed one.

:func:`fold_batchnorm` turns a trained network into the :class:`~bnnembed.model.intmodel.BoundNet`
integer model. It evaluates the *same* float32 BatchNorm expression the torch model uses in eval
mode on every possible dot product, so the integer thresholds reproduce the torch model exactly,
rounding included.
"""

from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..model.intmodel import BoundNet, IntLayer
from ..model.packing import pack_bits


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of bound training."""

    hidden: tuple[int, ...] = (256, 256)
    epochs: int = 30
    batch_size: int = 128
    lr: float = 5e-3
    asymmetry: float = 4.0  # cost of a wrong answer relative to a missed one
    seed: int = 0
    select_alpha: float = 0.05  # the epoch kept is the one answering most at this wrong-answer rate
    stability: float = 0.0  # weight of the neuron-stability penalty (0 = none; see instability)
    mask_first_layer: float = 0.0  # final share of first-layer weights masked, "input not read" (0 = dense)
    margin_weight: float = 0.0  # weight of the squared error between the bound's logit and the DNN-margin target


class _SignSTE(torch.autograd.Function):
    """sign with sign(0) = +1 forward; identity clipped to |x| <= 1 backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


@contextmanager
def torch_threads(n: int = 1):
    """Run torch with ``n`` intra-op threads. These MLPs are too small to gain from more, and on a
    busy machine extra OpenMP threads spin against the other jobs: measured, a digits build took
    13 s with one thread and more than 15 minutes with two while two other jobs ran."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    return _SignSTE.apply(x)


class BinaryDense(nn.Module):
    """Dense layer with binary (+-1) weights held as latent reals."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.n_in, self.n_out = n_in, n_out
        self.weight = nn.Parameter(torch.empty(n_out, n_in).uniform_(-1, 1) * 0.1)

    def dot(self, v: torch.Tensor) -> torch.Tensor:
        """Exact integer-valued dot products of +-1 inputs with the binary weights."""
        return v @ sign_ste(self.weight).t()

    def weight_bits(self) -> np.ndarray:
        """Weight bits (1 means -1), ``(n_out, n_in)``."""
        return (self.weight.detach().cpu().numpy() < 0).astype(np.uint8)


class MaskedBinaryDense(BinaryDense):
    """Ternary weights: ``sign(w)`` where the layer's mask reads the input bit, 0 where it does not.

    The mask (a buffer, saved with the weights) keeps the weights of largest magnitude:
    :meth:`set_sparsity` masks the share ``s`` of the layer's weights with the smallest ``|w|``
    (a magnitude threshold that :func:`train_bound` raises epoch by epoch). A masked weight gets
    no gradient, so the mask only grows. Folded, the mask is the integer layer's mask."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__(n_in, n_out)
        self.register_buffer("read", torch.ones(n_out, n_in))

    def set_sparsity(self, share: float) -> None:
        with torch.no_grad():
            mag = self.weight.abs() * self.read  # a masked weight stays masked
            k = int(round(float(share) * mag.numel()))
            if k <= 0:
                return
            thr = torch.kthvalue(mag.flatten(), k).values
            self.read.copy_((mag > thr).to(self.read.dtype))

    def dot(self, v: torch.Tensor) -> torch.Tensor:
        """Exact integer-valued dot products over the read bits (``2 c - n_j``)."""
        return v @ (sign_ste(self.weight) * self.read).t()

    def weight_bits(self) -> np.ndarray:
        """Weight bits (1 means -1), 0 where the bit is not read (the canonical form)."""
        return super().weight_bits() & self.read_bits()

    def read_bits(self) -> np.ndarray:
        """``(n_out, n_in)`` 1 where the neuron reads the input bit."""
        return (self.read.detach().cpu().numpy() > 0).astype(np.uint8)


class ThresholdNorm(nn.Module):
    """BatchNorm whose eval-mode expression is spelled out so folding can replay it exactly."""

    def __init__(self, n: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(n, eps=eps, momentum=0.1)

    def forward(self, dot: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.bn(dot)
        return self.eval_expr(dot)

    def eval_expr(self, dot: torch.Tensor) -> torch.Tensor:
        bn = self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return (dot - bn.running_mean) * scale + bn.bias


class BoundMLP(nn.Module):
    """The trainable form of a bound (see module docstring)."""

    def __init__(self, n_in: int, hidden: tuple[int, ...], mask_first: bool = False) -> None:
        super().__init__()
        widths = [n_in, *hidden]
        self.hidden = nn.ModuleList((MaskedBinaryDense if mask_first and i == 0 else BinaryDense)(a, b)
                                    for i, (a, b) in enumerate(zip(widths, widths[1:])))
        self.norms = nn.ModuleList(ThresholdNorm(b) for b in hidden)
        self.out = BinaryDense(widths[-1], 1)
        self.log_scale = nn.Parameter(torch.tensor(math.log(4.0)))
        self.bias = nn.Parameter(torch.zeros(()))
        # the margin-distillation read-out: its own affine map of the same output dot product, so
        # regressing the DNN's margin shapes the score's order without fighting the answer's logit
        self.margin_scale = nn.Parameter(torch.tensor(math.log(4.0)))
        self.margin_bias = nn.Parameter(torch.zeros(()))

    def features(self, bits: torch.Tensor) -> list[torch.Tensor]:
        """+-1 activations of every hidden layer (-1 where the integer neuron fires)."""
        v = 1.0 - 2.0 * bits
        acts = []
        for layer, norm in zip(self.hidden, self.norms):
            v = sign_ste(norm(layer.dot(v)))
            acts.append(v)
        return acts

    def logit_and_instability(self, bits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`dot_and_instability` with the dot product turned into :meth:`forward`'s logit."""
        dot, unstable = self.dot_and_instability(bits)
        return self.logit_of(dot), unstable

    def dot_and_instability(self, bits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The output dot product in one pass with the mean over hidden neurons and inputs of
        ``relu(1 - |BN(dot)|)``: how close the
        pre-activations sit to their threshold. Penalising it (``TrainConfig.stability``) pushes
        each neuron's dot product away from its threshold, so fewer input bits can flip it and a
        solver fixes more neurons once a few features are known (a simple form of the
        cardinality-bound decay of Jia & Rinard, NeurIPS 2020)."""
        v = 1.0 - 2.0 * bits
        terms = []
        for layer, norm in zip(self.hidden, self.norms):
            pre = norm(layer.dot(v))
            terms.append(torch.relu(1.0 - pre.abs()).mean())
            v = sign_ste(pre)
        return self.out.dot(v)[:, 0], (torch.stack(terms).mean() if terms else torch.zeros(()))

    def logit_of(self, out_dot: torch.Tensor) -> torch.Tensor:
        """The answer's logit of an output dot product (see :meth:`forward`)."""
        return torch.exp(self.log_scale) * out_dot / self.out.n_in + self.bias

    def margin_logit(self, out_dot: torch.Tensor) -> torch.Tensor:
        """The margin read-out of an output dot product (see ``margin_scale``)."""
        return torch.exp(self.margin_scale) * out_dot / self.out.n_in + self.margin_bias

    def out_dot(self, bits: torch.Tensor) -> torch.Tensor:
        acts = self.features(bits)
        v = acts[-1] if acts else 1.0 - 2.0 * bits
        return self.out.dot(v)[:, 0]

    def forward(self, bits: torch.Tensor) -> torch.Tensor:
        """The logit of the bound's answer."""
        return self.logit_of(self.out_dot(bits))

    def scores(self, bits: torch.Tensor) -> torch.Tensor:
        """Integer score (agreement count of the output neuron), as the integer model computes it."""
        return (self.out_dot(bits) + self.out.n_in) / 2

    def center(self) -> float:
        """Score at which the logit is 0: the network's own decision boundary."""
        n = self.out.n_in
        dot0 = -self.bias.item() * n / torch.exp(self.log_scale).item()
        return (dot0 + n) / 2

    def clip_weights(self) -> None:
        with torch.no_grad():
            for layer in [*self.hidden, self.out]:
                layer.weight.clamp_(-1, 1)


def train_bound(bits: np.ndarray, target: np.ndarray, cfg: TrainConfig, progress=None,
                margin: np.ndarray | None = None) -> BoundMLP:
    """Train a bound to answer where ``target`` is true (a wrong answer costs ``cfg.asymmetry``).

    ``margin`` (logit units, oriented so > 0 means the bound should answer; see
    :func:`bnnembed.learn.distill.margin_targets`) adds ``cfg.margin_weight`` times the squared error
    between the bound's logit and it: margin distillation."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    x = torch.from_numpy(np.asarray(bits, dtype=np.float32))
    t = torch.from_numpy(np.asarray(target, dtype=np.float32))
    weight = torch.where(t > 0.5, torch.ones_like(t), torch.full_like(t, cfg.asymmetry))
    m = None if margin is None or not cfg.margin_weight else torch.from_numpy(np.asarray(margin, np.float32))
    masking = cfg.mask_first_layer > 0 and len(cfg.hidden) > 0
    model = BoundMLP(x.shape[1], cfg.hidden, mask_first=masking)
    ramp = max(1, math.ceil(cfg.epochs / 2))  # masked share grows linearly over the first half
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps = cfg.epochs * math.ceil(len(x) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(steps, 1))
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    model.train()
    probe = torch.randperm(len(x), generator=torch.Generator().manual_seed(cfg.seed + 1))[:8192]
    best = (-1.0, None)
    for epoch in range(cfg.epochs):
        if masking:
            model.hidden[0].set_sparsity(cfg.mask_first_layer * min(1.0, (epoch + 1) / ramp))
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            if len(idx) < 2:
                continue
            opt.zero_grad()
            dot, unstable = model.dot_and_instability(x[idx]) if cfg.stability else (model.out_dot(x[idx]), None)
            loss = (loss_fn(model.logit_of(dot), t[idx]) * weight[idx]).mean()
            if unstable is not None:
                loss = loss + cfg.stability * unstable
            if m is not None:
                loss = loss + cfg.margin_weight * ((model.margin_logit(dot) - m[idx]) ** 2).mean()
            loss.backward()
            opt.step()
            sched.step()
            model.clip_weights()
        quality = _answer_coverage(model, x[probe], t[probe], cfg.select_alpha)
        if masking and epoch + 1 < ramp:  # an epoch kept reads no more than the share asked for
            quality = -1.0
        if quality >= best[0]:  # ties: the later epoch (trained longer, measured to generalise better)
            best = (quality, copy.deepcopy(model.state_dict()))
        if progress is not None:
            progress.update(1)
    if best[1] is not None:
        model.load_state_dict(best[1])
    model.eval()
    return model


def _answer_coverage(model: BoundMLP, x: torch.Tensor, t: torch.Tensor, alpha: float) -> float:
    """Share of ``x`` the bound could answer with at most ``alpha`` wrong answers among them, in
    eval mode.

    Binary training is chaotic: keeping the best epoch by this figure (on training inputs only)
    makes the result robust to late collapses of a run."""
    from .calibrate import coverage_at_alpha

    was = model.training
    model.eval()
    with torch.no_grad():
        s = model.scores(x).numpy()
    model.train(was)
    return coverage_at_alpha(s, t.numpy() > 0.5, alpha)


def fold_neuron_thresholds(norm: ThresholdNorm, n_in: int,
                           n_read: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Integer thresholds and weight flips that reproduce ``sign(BN(dot)) == -1`` exactly.

    The torch neuron outputs -1 (bit 1) iff ``y(dot) < 0`` with ``dot = 2c - n`` and ``c`` the
    agreement count. ``y`` is monotone in ``c`` (each float op rounds monotonically), so the set
    of ``c`` where the bit is 1 is a prefix or a suffix of ``0..n``. A suffix ``c >= T`` is the
    integer neuron as is; a prefix ``c < c0`` becomes a suffix after flipping the neuron's
    weights (``c' = n - c``): ``c' >= n - c0 + 1``. ``n_read`` (a masked layer) gives each
    neuron its own ``n = n_j``, the bits it reads (its flip is then within its mask).
    """
    if n_read is None:
        c = torch.arange(n_in + 1, dtype=torch.float32)
        dots = (2.0 * c - n_in)[:, None].expand(-1, norm.bn.num_features).contiguous()
        ns = np.full(norm.bn.num_features, n_in, np.int64)
    else:
        ns = np.asarray(n_read, np.int64)
        c = torch.arange(int(ns.max(initial=0)) + 1, dtype=torch.float32)
        dots = (2.0 * c[:, None] - torch.from_numpy(ns.astype(np.float32))[None, :]).contiguous()
    with torch.no_grad():
        fires = (norm.eval_expr(dots) < 0).numpy()  # (n+1, n_out)
    n_out = fires.shape[1]
    thresholds = np.empty(n_out, dtype=np.int64)
    flips = np.zeros(n_out, dtype=bool)
    for j in range(n_out):
        n = int(ns[j])
        col = fires[: n + 1, j]
        d = np.diff(col.astype(np.int8))
        if np.all(d >= 0):  # suffix: fires for c >= first one
            ones = np.flatnonzero(col)
            thresholds[j] = ones[0] if ones.size else n + 1
        elif np.all(d <= 0):  # prefix: fires for c < c0
            zeros = np.flatnonzero(~col)
            c0 = zeros[0] if zeros.size else n + 1
            thresholds[j] = n - c0 + 1
            flips[j] = True
        else:  # pragma: no cover - impossible for a monotone expression
            raise RuntimeError(f"neuron {j}: BatchNorm output is not monotone in the dot product")
    return thresholds.astype(np.int32), flips


def fold_batchnorm(model: BoundMLP, answer: str, tau: int | None = None) -> BoundNet:
    """The integer model of a trained bound (``tau`` defaults to the network's own center)."""
    layers = []
    for layer, norm in zip(model.hidden, model.norms):
        if isinstance(layer, MaskedBinaryDense):  # ternary: the integer layer's mask
            read = layer.read_bits()
            thresholds, flips = fold_neuron_thresholds(norm, layer.n_in, read.sum(1))
            wbits = layer.weight_bits()
            wbits[flips] ^= read[flips]
            layers.append(IntLayer(layer.n_in, pack_bits(wbits), thresholds, pack_bits(read)))
            continue
        thresholds, flips = fold_neuron_thresholds(norm, layer.n_in)
        wbits = layer.weight_bits()
        wbits[flips] ^= 1
        layers.append(IntLayer(layer.n_in, pack_bits(wbits), thresholds))
    if tau is None:
        tau = int(math.ceil(model.center()))
    n_last = model.out.n_in
    layers.append(IntLayer(n_last, pack_bits(model.out.weight_bits()), np.array([tau], dtype=np.int32)))
    return BoundNet(answer, tuple(layers))


def torch_scores(model: BoundMLP, bits: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Integer scores of the torch model in eval mode (float arithmetic, exact integers)."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(bits), batch):
            xb = torch.from_numpy(np.asarray(bits[i : i + batch], dtype=np.float32))
            out.append(model.scores(xb).numpy())
    return np.rint(np.concatenate(out)).astype(np.int64) if out else np.zeros(0, np.int64)


def torch_hidden_bits(model: BoundMLP, bits: np.ndarray) -> list[np.ndarray]:
    """Hidden-layer output bits of the torch model (1 where the activation is -1)."""
    model.eval()
    with torch.no_grad():
        acts = model.features(torch.from_numpy(np.asarray(bits, dtype=np.float32)))
    return [(a.numpy() < 0).astype(np.uint8) for a in acts]
