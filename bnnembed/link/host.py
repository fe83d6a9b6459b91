"""The host's request handling: bytes from the device in, reply bytes out, the decision log updated.

:class:`HostCore` is pure frame handling (no sockets; tests feed it bytes). For each well-formed
request it

1. looks up ``(session, seq, SHA-256 of the request bytes)`` in the log; if present (a retry
   whose reply was lost) it answers with the stored reply and counts the retry;
2. otherwise checks the model tag and feature count (a mismatch is answered with NACK), refuses
   a non-finite input (NACK INVALID_INPUT), runs the DNN (DEFER) or records the device's own
   decision (REPORT), computes the decision id and the numpy bounds' decision on the same input,
   **commits** the record, and only then returns the reply (DECISION or ACK), so a reply the
   device saw is always in the log.

Malformed frames are dropped and counted by the :class:`~bnnembed.link.protocol.FrameReader` of
their connection. The service that moves bytes between devices and the core is
:mod:`bnnembed.link.service`; the links it serves are :mod:`bnnembed.link.endpoints`.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter

import numpy as np

from . import protocol as P
from ..model.decision_id import decision_id
from .decision_log import DecisionLog


class HostCore:
    """Frame handling and logging for one artifact (no I/O)."""

    def __init__(self, artifact, log: DecisionLog, dnn=None) -> None:
        self.artifact = artifact
        self.log = log
        self.dnn = dnn if dnn is not None else artifact.load_dnn()
        self.tag = P.model_tag(artifact.model_hash)
        self.n_features = artifact.encoder.n_features
        self.reader = P.FrameReader()  # the default connection's (tests feed bytes straight in)
        self._readers: list[P.FrameReader] = [self.reader]
        self.counts: Counter = Counter()
        self.dnn_seconds = 0.0
        self._lock = threading.RLock()  # connections are served by threads; one request at a time

    def new_connection(self) -> P.FrameReader:
        """A frame reader for a new connection (partial frames never cross connections; the
        drop counters of every connection add up in :meth:`stats`)."""
        reader = P.FrameReader()
        with self._lock:
            self._readers.append(reader)
            self.counts["connections"] += 1
        return reader

    def feed(self, data: bytes, reader: P.FrameReader | None = None) -> bytes:
        """Bytes received from the device -> wire bytes to send back (possibly empty)."""
        out = bytearray()
        for payload, msg in (reader or self.reader).feed(data):
            with self._lock:
                reply = self.handle(payload, msg)
            if reply is not None:
                out += P.frame(reply)
        return bytes(out)

    def handle(self, payload: bytes, msg: P.Message) -> bytes | None:
        """One well-formed frame -> the reply payload (None for frames that need no reply).

        An input with a non-finite feature never gets a yes/no: a DEFER of one is refused
        (NACK INVALID_INPUT) and a REPORT of one is logged as it came; neither runs the DNN,
        and its reference decision is INVALID, as the device's own check gives.
        """
        from ..model.intmodel import Decision, invalid_rows

        if not isinstance(msg, (P.Defer, P.Report)):
            self.counts["unexpected_replies"] += 1
            return None
        received_at = time.time()
        self.counts["requests"] += 1
        sha = hashlib.sha256(payload).hexdigest()
        crc = P.payload_crc(payload)
        found = self.log.find(msg.session, msg.seq, sha)
        if found is not None:
            row_id, reply_type, reply_value = found
            self.log.count_retry(row_id)
            self.counts["retries_answered_from_log"] += 1
            return self._reply(msg, crc, reply_type, reply_value, payload[0])
        kind = "defer" if isinstance(msg, P.Defer) else "report"
        x = np.asarray(msg.features, np.float32)
        device = msg.decision if isinstance(msg, P.Report) else None
        dnn_decision = reference = did = None
        if msg.model_tag != self.tag:
            reply_type, reply_value = P.MsgType.NACK, int(P.NackReason.MODEL_MISMATCH)
        elif x.size != self.n_features:
            reply_type, reply_value = P.MsgType.NACK, int(P.NackReason.FEATURE_COUNT)
        elif invalid_rows(x[None, :])[0]:
            self.counts["invalid_inputs"] += 1
            reference = int(Decision.INVALID)
            if kind == "defer":
                reply_type, reply_value = P.MsgType.NACK, int(P.NackReason.INVALID_INPUT)
            else:
                reply_type, reply_value = P.MsgType.ACK, None
        else:
            try:
                t0 = time.perf_counter()
                dnn_decision = int(bool(self.dnn.says_yes(x[None, :])[0]))
                self.dnn_seconds += time.perf_counter() - t0
                bits = self.artifact.encode(x[None, :])
                reference = int(self.artifact.decide(x[None, :])[0])
                did = decision_id(self.artifact.model_hash, bits[0])
            except Exception:  # noqa: BLE001 - a DNN failure on one input must not stop the service
                dnn_decision = None
                reply_type, reply_value = P.MsgType.NACK, int(P.NackReason.HOST_ERROR)
            else:
                if kind == "defer":
                    reply_type, reply_value = P.MsgType.DECISION, dnn_decision
                else:
                    reply_type, reply_value = P.MsgType.ACK, None
        if device == Decision.INVALID:
            self.counts["invalid_reports"] += 1
        if reply_type == P.MsgType.NACK:
            self.counts["refused"] += 1
        self.log.add(session=msg.session, seq=msg.seq, kind=kind, request_sha=sha, request_crc=crc,
                     model_hash=self.artifact.model_hash, decision_id=did, features=x, device_decision=device,
                     dnn_decision=dnn_decision, reference_decision=reference, reply_type=int(reply_type),
                     reply_value=reply_value, received_at=received_at)
        self.counts[f"new_{kind}s"] += 1
        return self._reply(msg, crc, reply_type, reply_value, payload[0])

    def _reply(self, msg, crc: int, reply_type: int, reply_value: int | None, version: int) -> bytes:
        self.counts["replies"] += 1
        if reply_type == P.MsgType.DECISION:
            reply = P.DecisionReply(msg.session, msg.seq, crc, int(reply_value))
        elif reply_type == P.MsgType.ACK:
            reply = P.Ack(msg.session, msg.seq, crc)
        else:
            reply = P.Nack(msg.session, msg.seq, crc, int(reply_value))
        return P.encode_payload(reply, version)  # the request's version, so a version-1 device reads it

    def stats(self) -> dict:
        with self._lock:
            dropped: Counter = Counter()
            for r in self._readers:
                dropped.update(r.dropped)
            frames = {"frames_ok": sum(r.frames_ok for r in self._readers),
                      "frames_dropped": sum(r.frames_dropped for r in self._readers), "dropped": dict(dropped)}
            return {**frames, **dict(self.counts), "dnn_seconds": round(self.dnn_seconds, 6)}

    def count(self, name: str, n: float = 1) -> None:
        with self._lock:
            self.counts[name] += n
