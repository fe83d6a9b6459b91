"""Explanation lookups: a SQLite store in the artifact's workspace (``DIR/workspace/explanations.sqlite``).

Every explanation is keyed by its *decision id* (:func:`bnnembed.model.decision_id.decision_id`: a hash
of the artifact's model hash and the input's thermometer bits) plus what was asked (kind, scope,
parameters), so a second request is a lookup. The store also remembers the bits (and the raw row
when known) of every decision it has seen, so ``bnnembed explain DIR --id ID`` can explain a
decision id it met before. The file changes as it is used, so it is not hashed in the manifest;
its rows carry the model hash and rows of another model are never returned.
"""

from __future__ import annotations

import json
import sqlite3
import time

import numpy as np

from ...model.packing import pack_bits, unpack_bits

STORE_NAME = "explanations.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    id TEXT NOT NULL,
    model_hash TEXT NOT NULL,
    n_bits INTEGER NOT NULL,
    bits BLOB NOT NULL,
    x TEXT,
    decision INTEGER NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (id, model_hash)
);
CREATE TABLE IF NOT EXISTS explanations (
    id TEXT NOT NULL,
    model_hash TEXT NOT NULL,
    request TEXT NOT NULL,
    result TEXT NOT NULL,
    seconds REAL NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (id, model_hash, request)
);
"""


class ExplanationStore:
    """The SQLite lookup table of one artifact."""

    def __init__(self, artifact_dir: str, model_hash: str) -> None:
        from ...artifact import workspace_path

        self.path = workspace_path(artifact_dir, STORE_NAME, create=True)
        self.model_hash = model_hash
        self.db = sqlite3.connect(self.path, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "ExplanationStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def put_decision(self, did: str, bits: np.ndarray, decision: int, x: np.ndarray | None = None) -> None:
        bits = np.asarray(bits, dtype=np.uint8).reshape(-1)
        blob = pack_bits(bits).astype("<u4").tobytes()
        xs = None if x is None else json.dumps([float(v) for v in np.asarray(x).reshape(-1)])
        with self.db:
            self.db.execute(
                "INSERT INTO decisions (id, model_hash, n_bits, bits, x, decision, created) VALUES (?,?,?,?,?,?,?) "
                "ON CONFLICT (id, model_hash) DO UPDATE SET x = COALESCE(excluded.x, decisions.x)",
                (did, self.model_hash, int(bits.size), blob, xs, int(decision), time.time()),
            )

    def get_decision(self, did: str) -> tuple[np.ndarray, np.ndarray | None, int] | None:
        """``(bits, raw row or None, decision)`` of a known decision id."""
        row = self.db.execute("SELECT n_bits, bits, x, decision FROM decisions WHERE id=? AND model_hash=?",
                              (did, self.model_hash)).fetchone()
        if row is None:
            return None
        n_bits, blob, xs, decision = row
        words = np.frombuffer(blob, dtype="<u4").astype(np.uint32)
        bits = unpack_bits(words[None, :], n_bits)[0]
        x = None if xs is None else np.array(json.loads(xs), dtype=np.float32)
        return bits, x, int(decision)

    def get(self, did: str, request: dict) -> dict | None:
        row = self.db.execute("SELECT result FROM explanations WHERE id=? AND model_hash=? AND request=?",
                              (did, self.model_hash, _key(request))).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, did: str, request: dict, result: dict, seconds: float) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO explanations (id, model_hash, request, result, seconds, created) "
                "VALUES (?,?,?,?,?,?)",
                (did, self.model_hash, _key(request), json.dumps(result), float(seconds), time.time()),
            )

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM explanations WHERE model_hash=?",
                                   (self.model_hash,)).fetchone()[0])


def _key(request: dict) -> str:
    return json.dumps(request, sort_keys=True, separators=(",", ":"))
