"""Decision ids: the key that ties a logged decision to its explanation.

``decision_id(model_hash, bits)`` is the first 16 hex digits of SHA-256 over the model hash
(its ASCII text) followed by the input's thermometer bits packed as little-endian uint32 words
(:func:`bnnembed.model.packing.pack_bits`). It depends only on the integer model and the encoded input,
so the host log, the device reports and the explanation lookups compute the same id for the same
decision, and two raw inputs with the same encoding share it (they get the same explanation).
"""

from __future__ import annotations

import hashlib

import numpy as np

from .packing import pack_bits


def decision_id(model_hash: str, bits: np.ndarray) -> str:
    """Id of the decision on one input's encoded bits (a 1-D 0/1 array)."""
    words = pack_bits(np.asarray(bits, dtype=np.uint8).reshape(-1)).astype("<u4")
    h = hashlib.sha256(model_hash.encode("ascii"))
    h.update(words.tobytes())
    return h.hexdigest()[:16]


def decision_ids(model_hash: str, bits: np.ndarray) -> list[str]:
    """Ids of every row of a ``(n, n_bits)`` bit matrix."""
    return [decision_id(model_hash, row) for row in np.asarray(bits)]
