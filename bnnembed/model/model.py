"""The thing we deploy, as one frozen value: the thermometer encoder, the two integer bounds,
the feature names and what "yes" means (and, for a decision over shifted copies of an image,
the :class:`~bnnembed.model.shifts.ShiftCopies` the device stores; ``encoder``, ``upper`` and
``lower`` are then their exact expansion, :func:`~bnnembed.model.shifts.expand_copies`).

Every rendering (numpy decisions here, C sources, CNF, a PlatformIO project) is a function of a
``Model``; the artifact directory is one way to store it (``bnnembed.artifact``). Its arrays are
read-only, so a renderer cannot change what another one sees. ``model_hash`` names the integer
model everywhere (C banners, decision ids, the protocol's model tag): the first 16 hex digits of
the SHA-256 of its ``.npz`` serialisation, which is byte-for-byte what the artifact stores.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, fields
from functools import cached_property

import numpy as np

from .encoding import Thermometer
from .intmodel import BoundNet, Decision, IntLayer, decide, invalid_rows, shares_hidden
from .shifts import ShiftCopies, expand_copies


def bound_to_arrays(net: BoundNet, prefix: str, shared_layers: int = 0) -> dict[str, np.ndarray]:
    """One bound as named arrays (the layout of bounds.npz, docs/artifact.md). Its first
    ``shared_layers`` layers are the upper bound's (one network read both ways): they are not
    written again, ``<p>shared_layers`` says how many (absent when 0, so a pair's file is byte for
    byte what it was before one-network artifacts existed)."""
    arrays = {f"{prefix}n_layers": np.array(len(net.layers), np.int32),
              f"{prefix}answer": np.array(net.answer)}
    if shared_layers:
        arrays[f"{prefix}shared_layers"] = np.array(shared_layers, np.int32)
    for i, layer in enumerate(net.layers):
        if i < shared_layers:
            continue
        arrays[f"{prefix}l{i}_n_in"] = np.array(layer.n_in, np.int32)
        arrays[f"{prefix}l{i}_weights"] = layer.weights
        arrays[f"{prefix}l{i}_thresholds"] = layer.thresholds
        if layer.mask is not None:  # dense layers write no mask: today's layout, byte for byte
            arrays[f"{prefix}l{i}_mask"] = layer.mask
    return arrays


def has_masks(*nets: BoundNet) -> bool:
    """Does any layer of these bounds read only some of its input bits (a mask)?"""
    return any(layer.mask is not None for net in nets for layer in net.layers)


def bound_from_arrays(arrays, prefix: str, base: BoundNet | None = None) -> BoundNet:
    """The bound stored under ``prefix``; its ``<p>shared_layers`` leading layers are ``base``'s."""
    n_layers = int(arrays[f"{prefix}n_layers"])
    shared = int(arrays[f"{prefix}shared_layers"]) if f"{prefix}shared_layers" in arrays else 0
    if shared and (base is None or shared != n_layers - 1 or len(base.layers) != n_layers):
        raise ValueError(f"{prefix}shared_layers = {shared} does not fit the bounds (it must be every hidden layer)")
    layers = (tuple(base.layers[:shared]) if shared else ()) + tuple(
        IntLayer(int(arrays[f"{prefix}l{i}_n_in"]), arrays[f"{prefix}l{i}_weights"],
                 arrays[f"{prefix}l{i}_thresholds"],
                 arrays[f"{prefix}l{i}_mask"] if f"{prefix}l{i}_mask" in arrays else None)
        for i in range(shared, n_layers)
    )
    return BoundNet(str(arrays[f"{prefix}answer"]), layers)


def _freeze(obj) -> None:
    """Make every numpy array held by a (nested) dataclass read-only."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
        elif isinstance(value, tuple):
            for item in value:
                if hasattr(item, "__dataclass_fields__"):
                    _freeze(item)
        elif hasattr(value, "__dataclass_fields__"):
            _freeze(value)


@dataclass(frozen=True)
class Model:
    """Encoder + upper bound + lower bound (+ feature names, positive label values)."""

    encoder: Thermometer
    upper: BoundNet
    lower: BoundNet
    feature_names: tuple[str, ...] = ()
    positive: tuple = ()
    stored_one_network: bool | None = None  # how bounds.npz stored it (from_arrays); None: from the tables
    copies: ShiftCopies | None = None  # what the device runs k times; None: the bounds as they are

    def __post_init__(self) -> None:
        object.__setattr__(self, "feature_names", tuple(self.feature_names))
        object.__setattr__(self, "positive", tuple(self.positive))
        if self.stored_one_network and not shares_hidden(self.upper, self.lower):
            raise ValueError("stored as one network, but the lower bound's hidden layers are not the upper's")
        c = self.copies
        if c is not None and (c.encoder.n_features != self.encoder.n_features
                              or self.upper.layers[-1].n_in != c.k * c.upper.layers[-1].n_in):
            raise ValueError("the shifted copies do not fit the bounds (expand them with expand_copies)")
        for part in (self.encoder, self.upper, self.lower) + ((c.encoder, c.upper, c.lower) if c else ()):
            _freeze(part)

    # -- serialisation (the artifact's bounds.npz)

    @cached_property
    def one_network(self) -> bool:
        """Is this one network read both ways (the lower bound's hidden layers are the upper's,
        :func:`~bnnembed.model.intmodel.shares_hidden`) rather than a pair of networks? A loaded
        model answers as its file stored it, so it serialises back to the same bytes (an older
        pair whose hidden tables happen to be equal stays a pair)."""
        if self.stored_one_network is not None:
            return self.stored_one_network
        return shares_hidden(self.upper, self.lower)

    @property
    def design(self) -> str:
        """``"one"`` (one network read both ways) or ``"pair"``, as ``bnnembed build --design`` and
        the manifest's ``bounds.design`` name it."""
        return "one" if self.one_network else "pair"

    def to_arrays(self) -> dict[str, np.ndarray]:
        """bounds.npz's arrays: with shifted copies, the stored bounds and encoder, the copies
        (``copies_shape``, ``copies_shifts``) and the summed thresholds (``copies_tau``: yes, no)."""
        c = self.copies
        if c is None:
            shared = len(self.lower.layers) - 1 if self.one_network else 0
            return {**self.encoder.to_arrays(), **bound_to_arrays(self.upper, "upper_"),
                    **bound_to_arrays(self.lower, "lower_", shared)}
        shared = len(c.lower.layers) - 1 if c.one_network else 0
        return {**c.encoder.to_arrays(), **bound_to_arrays(c.upper, "upper_"),
                **bound_to_arrays(c.lower, "lower_", shared),
                "copies_shape": np.array(c.shape, np.int32),
                "copies_shifts": np.array(c.shifts, np.int32).reshape(-1, 2),
                "copies_tau": np.array([self.upper.tau, self.lower.tau], np.int32)}

    def to_npz_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, **self.to_arrays())
        return buf.getvalue()

    @classmethod
    def from_arrays(cls, arrays, feature_names=(), positive=()) -> "Model":
        upper = bound_from_arrays(arrays, "upper_")
        lower = bound_from_arrays(arrays, "lower_", upper)
        encoder, one = Thermometer.from_arrays(arrays), "lower_shared_layers" in arrays
        if "copies_shifts" not in arrays:
            return cls(encoder, upper, lower, tuple(feature_names), tuple(positive), stored_one_network=one)
        copies = ShiftCopies(tuple(arrays["copies_shape"]), tuple(map(tuple, arrays["copies_shifts"])),
                             encoder, upper, lower, one)
        tau = np.asarray(arrays["copies_tau"])
        wide, up, lo = expand_copies(copies, int(tau[0]), int(tau[1]))
        return cls(wide, up, lo, tuple(feature_names), tuple(positive), stored_one_network=one, copies=copies)


    @cached_property
    def model_hash(self) -> str:
        return hashlib.sha256(self.to_npz_bytes()).hexdigest()[:16]

    @property
    def device_parts(self) -> tuple[Thermometer, BoundNet, BoundNet]:
        """The encoder and bounds the device stores: with shifted copies the trained ones (run on
        every copy; their output thresholds are the summed ones of ``upper`` / ``lower``), else the
        model's own."""
        c = self.copies
        return (self.encoder, self.upper, self.lower) if c is None else (c.encoder, c.upper, c.lower)

    # -- the numpy rendering

    def encode(self, X: np.ndarray) -> np.ndarray:
        return self.encoder.encode(X)

    def decide(self, X: np.ndarray) -> np.ndarray:
        """Decisions (:class:`~bnnembed.model.intmodel.Decision` codes) for raw inputs: a row with
        a non-finite feature is INVALID without running the bounds, as on the device."""
        invalid = invalid_rows(X)
        out = np.full(invalid.shape, int(Decision.INVALID), dtype=np.int8)
        if not invalid.all():
            out[~invalid] = decide(self.upper, self.lower, self.encode(np.asarray(X)[~invalid]))
        return out
