"""Decision ids: computed by hand from the documented recipe for inputs of any shape and type."""

import hashlib
import struct

import numpy as np

from bnnembed.model.decision_id import decision_id, decision_ids


def _by_hand(model_hash: str, bits) -> str:
    bits = [int(b != 0) for b in np.asarray(bits).reshape(-1)]
    words = [sum(b << i for i, b in enumerate(bits[s : s + 32])) for s in range(0, len(bits), 32)]
    return hashlib.sha256(model_hash.encode("ascii") + struct.pack(f"<{len(words)}I", *words)).hexdigest()[:16]


def test_ids_of_a_row_vector_a_bool_row_and_65_bits():
    rng = np.random.default_rng(5)
    bits = rng.integers(0, 2, 65).astype(np.uint8)
    did = decision_id("a1b2c3d4", bits)
    assert len(did) == 16 and did == _by_hand("a1b2c3d4", bits)
    assert decision_id("a1b2c3d4", bits.reshape(1, -1)) == did  # a (1, n) row: the same input
    assert decision_id("a1b2c3d4", bits.reshape(5, 13)) == did  # any shape: its bits in C order
    assert decision_id("a1b2c3d4", bits.astype(bool)) == did
    assert decision_id("a1b2c3d4", bits.astype(np.int64)) == did
    # the all-ones word and the empty input
    assert decision_id("00", np.ones(32, np.uint8)) == _by_hand("00", [1] * 32)
    assert decision_id("00", np.zeros(0, np.uint8)) == hashlib.sha256(b"00").hexdigest()[:16]


def test_decision_ids_keeps_row_order():
    bits = np.eye(3, 40, dtype=np.uint8)
    assert decision_ids("ff", bits) == [_by_hand("ff", row) for row in bits]
    assert len(set(decision_ids("ff", bits))) == 3
