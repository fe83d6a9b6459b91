"""Choosing the few input features a pair of bounds may read (``bnnembed build --features K``).

An explanation of a bound's decision names features the bound reads; a bound that reads every
feature has long explanations (over the whole domain almost every feature can flip some neuron).
A bound that reads only K features has explanations of at most K features, found faster.

Both bounds share one encoder, so one feature set is chosen for the pair: a *gate network* — a
bound-shaped binary network whose first layer sees each feature's thermometer bits multiplied by a
gate ``g_f`` in ``[0, 1]`` — is trained on the DNN's decisions (both answers, so it ranks what the
yes side and the no side need alike) with an L1 penalty on the gates that grows linearly from 0 to
``l1`` over the epochs. The features are ranked by their final gate (ties: the L2 norm of their
first-layer latent weights, then feature order); the best 70% are kept and a new gate network is
trained on them, until K are left (:func:`select_features`). The bounds are then
trained as usual, dense, on the kept features' bits only: :meth:`~bnnembed.model.encoding.
Thermometer.restrict` removes the others from the encoder, so the integer model, its C and its
CNF have the ordinary format and just read fewer bits.

Scale note: BatchNorm after the first layer makes the loss blind to scaling all gates at once,
so the L1 pressure lowers every gate alike and the data's gradient holds up only the gates of
features it needs; that competition is what the ranking reads.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .train import BoundMLP, sign_ste


class GatedMLP(BoundMLP):
    """A :class:`BoundMLP` whose inputs are scaled by one gate per feature (``owner`` maps each
    input bit to its feature)."""

    def __init__(self, n_in: int, hidden: tuple[int, ...], owner: np.ndarray, n_features: int) -> None:
        super().__init__(n_in, hidden)
        self.register_buffer("owner", torch.from_numpy(np.asarray(owner, dtype=np.int64)))
        self.gate = nn.Parameter(torch.ones(n_features))

    def features(self, bits: torch.Tensor) -> list[torch.Tensor]:
        v = (1.0 - 2.0 * bits) * self.gate[self.owner]
        acts = []
        for layer, norm in zip(self.hidden, self.norms):
            v = sign_ste(norm(layer.dot(v)))
            acts.append(v)
        return acts

    def clip_weights(self) -> None:
        super().clip_weights()
        with torch.no_grad():
            self.gate.clamp_(0.0, 1.0)


def rank_features(bits: np.ndarray, target: np.ndarray, owner: np.ndarray, n_features: int, *,
                  hidden: tuple[int, ...], epochs: int, seed: int, l1: float = 0.5, lr: float = 5e-3,
                  batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Train the gate network on ``target`` (the DNN says yes) and return ``(order, gates)``: the
    features from most to least useful, and each feature's final gate."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.asarray(bits, dtype=np.float32))
    t = torch.from_numpy(np.asarray(target, dtype=np.float32))
    model = GatedMLP(x.shape[1], hidden, owner, n_features)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = max(1, math.ceil(len(x) / batch_size))
    total = max(1, epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    step = 0
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            if len(idx) < 2:
                continue
            opt.zero_grad()
            lam = l1 * min(1.0, step / (0.8 * total))  # grows to l1 over the first 80% of training
            loss = loss_fn(model(x[idx]), t[idx]) + lam * model.gate.abs().mean()
            loss.backward()
            opt.step()
            sched.step()
            model.clip_weights()
            step += 1
    gates = model.gate.detach().numpy().astype(np.float64)
    w = model.hidden[0].weight.detach().numpy() if model.hidden else model.out.weight.detach().numpy()
    wnorm = np.sqrt(np.bincount(np.asarray(owner), weights=(w ** 2).sum(0), minlength=n_features))
    order = np.lexsort((np.arange(n_features), -wnorm, -gates))
    return order, gates


def features_to_keep(requested: float, n_columns: int, n_kept: int) -> int:
    """How many features ``--features`` asks for: an integer count, or a fraction in (0, 1) of
    the data's columns; never more than the features the encoder keeps, never fewer than 1."""
    k = int(math.ceil(requested * n_columns - 1e-9)) if 0 < requested < 1 else int(requested)
    return max(1, min(k, n_kept))


def select_features(bits: np.ndarray, target: np.ndarray, owner: np.ndarray, n_features: int, k: int, *,
                    hidden: tuple[int, ...], epochs: int, seed: int, shrink: float = 0.7,
                    l1: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` features to keep (sorted) and a ranking of all features, best first.

    Pruning is iterative: train the gate network on the features still alive, keep the best
    ``shrink`` share of them (never fewer than ``k``), repeat until ``k`` are left. Measured on
    digits 5..9 at 32 of 64 pixels, this kept 89.8% coverage against 87.1% for one-shot ranking
    (dense 90.7%). Each round trains a third of the bounds' epochs."""
    alive = np.arange(n_features)
    removed: list[int] = []
    owner = np.asarray(owner)
    rounds = 0
    while len(alive) > k:
        cols = np.flatnonzero(np.isin(owner, alive))
        remap = np.full(n_features, -1)
        remap[alive] = np.arange(len(alive))
        order, _ = rank_features(bits[:, cols], target, remap[owner[cols]], len(alive), hidden=hidden,
                                 epochs=max(4, epochs // 3), seed=seed + rounds, l1=l1)
        n_next = max(k, int(len(alive) * shrink))
        removed = [int(f) for f in alive[order[n_next:]]] + removed
        alive = alive[np.sort(order[:n_next])]
        rounds += 1
    ranking = np.array(list(alive) + removed, dtype=np.int64)
    return np.sort(alive), ranking


__all__ = ["GatedMLP", "features_to_keep", "rank_features", "select_features"]
