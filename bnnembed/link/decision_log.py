"""The host's decision log: one SQLite row per distinct request from a device, with its reply.

Every DEFER (an input the device's bounds left UNKNOWN, answered by the DNN) and every REPORT
(a decision the device made itself) is stored once, keyed by ``(session, seq, request_sha)``:
the device's boot session, its request number, and the SHA-256 of the exact request bytes. A
retry of a request whose reply was lost has the same key; it is answered from the stored reply
and only its ``retries`` count grows, so the log never holds a request twice. A rebooted device
that reuses a session and sequence number with different content gets a new row, never the old
reply.

The row is committed *before* the reply is sent, so a reply the device received is always in
the log; a host killed between the commit and the send answers the device's retry from the log
after it restarts. The database runs in WAL mode (readers such as ``bnnembed log`` never block
the service) with ``synchronous=NORMAL``, which survives a killed process.

Columns: ``id``, ``received_at``/``replied_at``/``last_seen_at`` (Unix seconds), ``session``,
``seq``, ``kind`` ("defer" or "report"), ``request_sha``, ``request_crc``, ``model_hash``,
``decision_id`` (the key of the explanation lookups, see :mod:`bnnembed.model.decision_id`),
``n_features``, ``features`` (float32 little-endian), ``device_decision`` (REPORT: 0 NO, 1 YES,
3 INVALID), ``dnn_decision`` (NULL for a non-finite input), ``reference_decision`` (the numpy
bounds on the same input: 0 NO, 1 YES, 2 UNKNOWN, 3 INVALID), ``reply_type``/``reply_value``
(the protocol reply), ``retries``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass

import numpy as np

from ..errors import BnnError

LOG_NAME = "decisions.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL NOT NULL,
    replied_at REAL NOT NULL,
    last_seen_at REAL NOT NULL,
    session INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('defer', 'report')),
    request_sha TEXT NOT NULL,
    request_crc INTEGER NOT NULL,
    model_hash TEXT NOT NULL,
    decision_id TEXT,
    n_features INTEGER NOT NULL,
    features BLOB NOT NULL,
    device_decision INTEGER,
    dnn_decision INTEGER,
    reference_decision INTEGER,
    reply_type INTEGER NOT NULL,
    reply_value INTEGER,
    retries INTEGER NOT NULL DEFAULT 0,
    UNIQUE (session, seq, request_sha)
);
CREATE INDEX IF NOT EXISTS requests_decision_id ON requests (decision_id);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    transport TEXT NOT NULL,
    stats TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,     -- open, close, lost, back, refused
    peer TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class LogRecord:
    """One logged request and the reply it got."""

    id: int
    received_at: float
    replied_at: float
    session: int
    seq: int
    kind: str
    request_sha: str
    request_crc: int
    model_hash: str
    decision_id: str | None
    features: np.ndarray
    device_decision: int | None
    dnn_decision: int | None
    reference_decision: int | None
    reply_type: int
    reply_value: int | None
    retries: int

    def to_json(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "features"}
        d["features"] = [float(v) for v in self.features]
        return d


_COLUMNS = ("id, received_at, replied_at, session, seq, kind, request_sha, request_crc, model_hash, decision_id, "
            "features, device_decision, dnn_decision, reference_decision, reply_type, reply_value, retries")


def _record(row) -> LogRecord:
    values = list(row)
    values[10] = np.frombuffer(values[10], dtype="<f4").astype(np.float32)
    return LogRecord(*values)


def default_log_path(artifact_dir: str) -> str:
    """``DIR/workspace/decisions.sqlite`` (or an older artifact's ``DIR/decisions.sqlite``)."""
    from ..artifact import workspace_path

    return workspace_path(artifact_dir, LOG_NAME)


class DecisionLog:
    """The SQLite decision log (one writer: the host service; any number of readers)."""

    def __init__(self, path: str, *, readonly: bool = False) -> None:
        self.path = path
        if readonly and not os.path.exists(path):
            raise BnnError(f"{path}: no decision log yet; run 'bnnembed host' (or 'bnnembed simulate') first")
        try:
            if readonly:
                self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10, check_same_thread=False)
            else:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
                self.db = sqlite3.connect(path, timeout=10, check_same_thread=False)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self.db.executescript(_SCHEMA)
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                self.db.commit()
            version = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise BnnError(f"{path}: not a readable decision log ({exc}); move it away and start again") from None
        shown = None if version is None else version[0]
        try:
            number = int(shown)
        except (TypeError, ValueError):
            raise BnnError(f"{path}: not a bnnembed decision log (schema version {shown!r}); move it away and "
                           "start again") from None
        if number > SCHEMA_VERSION:
            raise BnnError(f"{path}: decision log schema {number} is newer than this bnnembed reads "
                           f"({SCHEMA_VERSION}); upgrade bnnembed")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "DecisionLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----------------------------------------------------------------------- writer side
    def find(self, session: int, seq: int, request_sha: str) -> tuple[int, int, int | None] | None:
        """``(id, reply_type, reply_value)`` of a logged request, or None."""
        return self.db.execute(
            "SELECT id, reply_type, reply_value FROM requests WHERE session=? AND seq=? AND request_sha=?",
            (session, seq, request_sha),
        ).fetchone()

    def add(self, *, session: int, seq: int, kind: str, request_sha: str, request_crc: int, model_hash: str,
            decision_id: str | None, features: np.ndarray, device_decision: int | None, dnn_decision: int | None,
            reference_decision: int | None, reply_type: int, reply_value: int | None, received_at: float) -> int:
        """Insert and commit one request with its reply (before the reply is sent)."""
        x = np.ascontiguousarray(features, dtype="<f4")
        now = time.time()
        cur = self.db.execute(
            "INSERT INTO requests (received_at, replied_at, last_seen_at, session, seq, kind, request_sha, request_crc,"
            " model_hash, decision_id, n_features, features, device_decision, dnn_decision, reference_decision,"
            " reply_type, reply_value) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (received_at, now, now, session, seq, kind, request_sha, request_crc, model_hash, decision_id, x.size,
             x.tobytes(), device_decision, dnn_decision, reference_decision, reply_type, reply_value),
        )
        self.db.commit()
        return int(cur.lastrowid)

    def count_retry(self, row_id: int) -> None:
        self.db.execute("UPDATE requests SET retries = retries + 1, last_seen_at = ? WHERE id = ?", (time.time(), row_id))
        self.db.commit()

    def start_run(self, transport: str) -> int:
        now = time.time()
        cur = self.db.execute("INSERT INTO runs (started_at, updated_at, transport, stats) VALUES (?,?,?,?)",
                              (now, now, transport, "{}"))
        self.db.commit()
        return int(cur.lastrowid)

    def update_run(self, run_id: int, stats: dict) -> None:
        self.db.execute("UPDATE runs SET updated_at=?, stats=? WHERE id=?", (time.time(), json.dumps(stats), run_id))
        self.db.commit()

    # ----------------------------------------------------------------------- reader side
    def records(self, limit: int | None = None) -> list[LogRecord]:
        """Every record in arrival order (only the last ``limit`` when given)."""
        if limit is None:
            rows = self.db.execute(f"SELECT {_COLUMNS} FROM requests ORDER BY id")
        else:
            rows = self.db.execute(f"SELECT {_COLUMNS} FROM requests WHERE id IN "
                                   "(SELECT id FROM requests ORDER BY id DESC LIMIT ?) ORDER BY id", (int(limit),))
        return [_record(r) for r in rows]

    def by_decision_id(self, decision_id: str) -> list[LogRecord]:
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM requests WHERE decision_id=? ORDER BY id", (decision_id,))
        return [_record(r) for r in rows]

    def add_event(self, run_id: int, kind: str, peer: str, detail: str) -> None:
        """A link event of a host run: a connection opened or closed (and why), a serial port
        lost or back (with the gap), a device refused."""
        self.db.execute("INSERT INTO events (run_id, at, kind, peer, detail) VALUES (?,?,?,?,?)",
                        (run_id, time.time(), kind, peer or "", detail))
        self.db.commit()

    def events(self, run_id: int | None = None) -> list[dict]:
        q = "SELECT id, run_id, at, kind, peer, detail FROM events"
        args: tuple = ()
        if run_id is not None:
            q, args = q + " WHERE run_id=?", (run_id,)
        try:
            rows = self.db.execute(q + " ORDER BY id", args).fetchall()
        except sqlite3.OperationalError:  # a log written before events were kept
            return []
        return [{"id": r[0], "run_id": r[1], "at": r[2], "kind": r[3], "peer": r[4], "detail": r[5]} for r in rows]

    def runs(self) -> list[dict]:
        return [{"id": r[0], "started_at": r[1], "updated_at": r[2], "transport": r[3], "stats": json.loads(r[4])}
                for r in self.db.execute("SELECT id, started_at, updated_at, transport, stats FROM runs ORDER BY id")]

    def summary(self) -> dict:
        q = self.db.execute(
            "SELECT COUNT(*), SUM(kind='defer'), SUM(kind='report'), COALESCE(SUM(retries),0),"
            " SUM(reply_type=131),"
            " SUM(kind='report' AND dnn_decision IS NOT NULL AND device_decision != dnn_decision)"
            " FROM requests").fetchone()
        return {"records": q[0], "deferrals": q[1] or 0, "reports": q[2] or 0, "retries_answered_from_log": q[3],
                "refused": q[4] or 0, "device_disagrees_with_dnn": q[5] or 0}
