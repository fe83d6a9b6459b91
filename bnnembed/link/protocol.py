"""The deferral protocol: framed binary messages between the device and the host DNN.

The device answers what its two bounds can; an input they leave UNKNOWN is *deferred*: the device
sends its feature vector to the host, the host runs the DNN and replies with the decision. The
same link carries *reports* of the decisions the device made itself, so the host's decision log
is complete. Documented in docs/protocol.md; the C side is firmware/bnn_protocol.[ch], and the two
are tested against each other byte for byte.

A frame on the wire is ``0x00 COBS(payload) 0x00`` (empty frames are skipped). The payload (all integers little-endian)::

    0  version  u8    PROTOCOL_VERSION (3; versions 1 and 2 are still read, and answered in theirs)
    1  type     u8    MsgType
    2  session  u32   chosen by the device per boot (a retry keeps it)
    6  seq      u32   request number within the session; a reply carries the request's seq
    10 body           depends on the type (see the message classes below)
    -4 crc      u32   CRC-32/IEEE (zlib.crc32) of every byte before it

A frame whose COBS, length, CRC, version or type is wrong is dropped and counted, never guessed
at. Every reply also echoes the CRC of the request it answers (``req_crc``), so a device only
accepts a reply computed from the exact bytes it sent.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from .._enum import CodeEnum

PROTOCOL_VERSION = 3
OLDEST_VERSION = 1  # still accepted: float32 features and no width byte; replies keep the request's version
#: Feature widths of a version-2 DEFER/REPORT: uint8, int16 (little-endian) or float32.
FEATURE_WIDTHS = {1: "<u1", 2: "<i2", 4: "<f4"}
#: Version 3's width for uint8 features sent as zero runs (:func:`u8_runs`): segments
#: ``zeros u8, count u8, count bytes``, each standing for ``zeros`` zero features then the bytes.
WIDTH_U8_RUNS = 0x81
#: A uint8 sender of at least this many features sends them as zero runs (images: mostly zero
#: words); shorter rows go as plain uint8 (firmware/bnn_protocol.c makes the same choice).
RUNS_MIN_FEATURES = 256
RUN_GROUP = 4  # features per run unit: the device tests one 32-bit word of pixels at a time
MAX_RUN_GROUPS = 63  # units per zeros or count field (63 x 4 = 252 <= 255)
HEADER = struct.Struct("<BBII")  # version, type, session, seq
CRC = struct.Struct("<I")
HEADER_SIZE = HEADER.size  # 10
CRC_SIZE = CRC.size  # 4
MIN_PAYLOAD = HEADER_SIZE + CRC_SIZE
MAX_FEATURES = 4096
#: Largest payload either side accepts (a REPORT of MAX_FEATURES floats); longer frames are dropped.
MAX_PAYLOAD = HEADER_SIZE + 8 + 4 * MAX_FEATURES + CRC_SIZE


class MsgType(CodeEnum):
    """Message types. Device -> host requests are < 0x80, host -> device replies >= 0x80."""

    DEFER = 0x01, "device -> host: an input the bounds left UNKNOWN; the host replies DECISION"
    REPORT = 0x02, "device -> host: a decision the device made itself; the host replies ACK"
    DECISION = 0x81, "host -> device: the DNN's decision for a DEFER"
    ACK = 0x82, "host -> device: a REPORT is logged"
    NACK = 0x83, "host -> device: the request is refused (the reason says why); do not retry"


class NackReason(CodeEnum):
    """Why the host refused a request (a device treats any NACK as "stays undecided")."""

    MODEL_MISMATCH = 1, "the device runs another model than the host's artifact"
    FEATURE_COUNT = 2, "the feature vector's length is not the model's"
    HOST_ERROR = 3, "the DNN failed on this input"
    INVALID_INPUT = 4, "a DEFER with a NaN or infinite feature: no DNN answer exists for it"


class FrameStatus(CodeEnum):
    """Outcome of receiving one frame: OK, or the reason it was dropped."""

    OK = 0, "a well-formed frame"
    E_COBS = 1, "malformed COBS block"
    E_OVERSIZE = 2, "longer than the receive buffer"
    E_SHORT = 3, "shorter than header + CRC"
    E_CRC = 4, "CRC mismatch"
    E_VERSION = 5, "another protocol version"
    E_TYPE = 6, "unknown message type"
    E_LENGTH = 7, "body length does not match the type"
    E_VALUE = 8, "a field out of range (DECISION decision > 1, REPORT decision not 0, 1 or 3, feature count 0 or too big, feature width not 1, 2, 4 or 0x81, an empty zero-run segment)"


class LinkStatus(CodeEnum):
    """Outcome of one request on the device's end of the link."""

    OK = 0, "answered (decision or acknowledgement)"
    NO_REPLY = 1, "no valid reply after every attempt: the input stays undecided"
    REFUSED = 2, "the host sent a NACK (link->last_reason says why)"
    TOO_BIG = 3, "the request does not fit the transmit buffer"


class FrameError(ValueError):
    """A payload that must be dropped; ``reason`` is the counter it is filed under."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


#: Decision values a REPORT may carry: NO, YES, or INVALID (a non-finite input, never deferred);
#: the values of :class:`~bnnembed.model.intmodel.Decision`. A DECISION reply carries only NO or YES.
REPORT_DECISIONS = (0, 1, 3)

#: Counter names for dropped frames, in the order of :class:`FrameStatus` (C: ``bnn_proto_status``).
DROP_REASONS = tuple(s.name[2:].lower() for s in FrameStatus if s is not FrameStatus.OK)


def crc32(data: bytes) -> int:
    """CRC-32/IEEE (reflected, poly 0xEDB88320, init and xorout 0xFFFFFFFF); check 0xCBF43926."""
    return zlib.crc32(data) & 0xFFFFFFFF


def model_tag(model_hash: str) -> int:
    """The 32-bit model tag a request carries: the first 8 hex digits of the artifact's model hash."""
    return int(model_hash[:8], 16)


# --------------------------------------------------------------------------------------- COBS

def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: the result has no 0x00 byte (the frame delimiter)."""
    out = bytearray()
    code_pos = 0
    out.append(0)
    code = 1
    for b in data:
        if b == 0:
            out[code_pos] = code
            code_pos = len(out)
            out.append(0)
            code = 1
        else:
            out.append(b)
            code += 1
            if code == 0xFF:
                out[code_pos] = code
                code_pos = len(out)
                out.append(0)
                code = 1
    out[code_pos] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Inverse of :func:`cobs_encode`; raises :class:`FrameError` ("cobs") on a malformed block."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise FrameError("cobs", "zero byte inside a frame")
        end = i + code
        if end > n:
            raise FrameError("cobs", "block runs past the frame end")
        block = data[i + 1 : end]
        if 0 in block:
            raise FrameError("cobs", "zero byte inside a frame")
        out += block
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


# ------------------------------------------------------------------------------------ messages

def exact_width(features: np.ndarray) -> int:
    """The narrowest width that carries every feature exactly: 1 (uint8) if each is +0.0 or a whole
    number up to 255, 2 (int16) if each is +0.0 or a whole number of magnitude up to 32,767, else 4
    (float32; also for -0.0, NaN and infinities). The device makes the same choice per frame
    (firmware/bnn_protocol.c, ``exact_width``), so 8-bit pixels travel as one byte each."""
    x = np.ascontiguousarray(features, dtype=np.float32).ravel()
    with np.errstate(invalid="ignore"):  # a signalling NaN is not whole, without a warning
        whole = np.isfinite(x) & (x == np.round(x)) & ~((x == 0) & np.signbit(x))
    if np.all(whole & (x >= 0) & (x <= 255)):
        return 1
    if np.all(whole & (np.abs(x) <= 32767)):
        return 2
    return 4


def u8_runs(values: np.ndarray) -> bytes:
    """Zero runs of uint8 features, as the device lays them out: the features in units of 4
    (:data:`RUN_GROUP`, one 32-bit word of pixels), each segment up to 63 all-zero units then up to
    63 other units (``zeros = 4 x units``, ``count = 4 x units``, then those units' bytes), and the
    last ``n % 4`` features as a final segment ``0, n % 4, bytes``."""
    b = np.ascontiguousarray(values, dtype=np.uint8).ravel()
    units = b.size // RUN_GROUP
    busy = b[:RUN_GROUP * units].reshape(units, RUN_GROUP).any(axis=1)
    out = bytearray()
    g = 0
    while g < units:
        z = 0
        while g < units and not busy[g] and z < MAX_RUN_GROUPS:
            z, g = z + 1, g + 1
        first = g
        while g < units and busy[g] and g - first < MAX_RUN_GROUPS:
            g += 1
        out += bytes([RUN_GROUP * z, RUN_GROUP * (g - first)]) + b[RUN_GROUP * first:RUN_GROUP * g].tobytes()
    tail = b.size - RUN_GROUP * units
    if tail:
        out += bytes([0, tail]) + b[RUN_GROUP * units:].tobytes()
    return bytes(out)


def _u8_from_runs(body: bytes, offset: int, n: int) -> np.ndarray:
    """The ``n`` features of a zero-run body starting at ``offset`` (it must end with them)."""
    out = np.zeros(n, np.uint8)
    i, pos = 0, offset
    while i < n:
        if pos + 2 > len(body):
            raise FrameError("length", f"zero runs end after {i} of {n} features")
        zeros, count = body[pos], body[pos + 1]
        pos += 2
        if zeros + count == 0:
            raise FrameError("value", "an empty zero-run segment")
        if i + zeros + count > n:
            raise FrameError("length", f"zero runs hold more than {n} features")
        i += zeros
        if pos + count > len(body):
            raise FrameError("length", "a zero-run segment runs past the body")
        out[i:i + count] = np.frombuffer(body, np.uint8, count, pos)
        i, pos = i + count, pos + count
    if pos != len(body):
        raise FrameError("length", f"{len(body) - pos} bytes after the zero runs")
    return out


def _feature_bytes(features: np.ndarray, version: int, runs: bool = False) -> tuple[bytes, bytes]:
    """(width field, packed features) of a DEFER/REPORT body; version 1 has no width field.
    ``runs``: a uint8 sender's row, which goes as zero runs from version 3 on when it has at least
    :data:`RUNS_MIN_FEATURES` features, all uint8-exact (what the device does)."""
    x = np.ascontiguousarray(features, dtype="<f4").ravel()
    if version < 2:
        return b"", x.tobytes()
    width = exact_width(x)
    if runs and version >= 3 and width == 1 and x.size >= RUNS_MIN_FEATURES:
        return bytes([WIDTH_U8_RUNS]), u8_runs(x.astype(np.uint8))
    return bytes([width]), x.astype(FEATURE_WIDTHS[width]).tobytes()


@dataclass(frozen=True)
class Defer:
    """Device -> host: features of an input the bounds left UNKNOWN.

    Body: ``model_tag u32, n u16, width u8, n x feature`` with each feature a uint8, int16 or
    float32 (``width`` 1, 2 or 4, the narrowest exact one: :func:`exact_width`), or from a uint8
    sender (``runs``) of at least 256 features ``width`` 0x81 and the zero runs (:func:`u8_runs`);
    version 1: ``model_tag u32, n u16, n x f32``.
    """

    session: int
    seq: int
    model_tag: int
    features: np.ndarray = field(compare=False)
    runs: bool = field(default=False, compare=False)  # sent by a uint8 sender (bnn_link_defer_u8)

    TYPE = MsgType.DEFER

    def body(self, version: int = PROTOCOL_VERSION) -> bytes:
        width, data = _feature_bytes(self.features, version, self.runs)
        return struct.pack("<IH", self.model_tag, np.size(self.features)) + width + data


@dataclass(frozen=True)
class Report:
    """Device -> host: a decision the device made itself (0 = NO, 1 = YES, 3 = INVALID: a
    non-finite feature) and its features.

    Body: ``model_tag u32, decision u8, n u16, width u8, n x feature`` (as :class:`Defer`; version 1:
    ``model_tag u32, decision u8, n u16, n x f32``).
    """

    session: int
    seq: int
    model_tag: int
    decision: int
    features: np.ndarray = field(compare=False)
    runs: bool = field(default=False, compare=False)  # sent by a uint8 sender (bnn_link_report_u8)

    TYPE = MsgType.REPORT

    def body(self, version: int = PROTOCOL_VERSION) -> bytes:
        width, data = _feature_bytes(self.features, version, self.runs)
        return struct.pack("<IBH", self.model_tag, self.decision, np.size(self.features)) + width + data


@dataclass(frozen=True)
class DecisionReply:
    """Host -> device: the DNN's decision (0 = NO, 1 = YES). Body: ``req_crc u32, decision u8``."""

    session: int
    seq: int
    req_crc: int
    decision: int

    TYPE = MsgType.DECISION

    def body(self, version: int = PROTOCOL_VERSION) -> bytes:
        return struct.pack("<IB", self.req_crc, self.decision)


@dataclass(frozen=True)
class Ack:
    """Host -> device: a REPORT is in the log. Body: ``req_crc u32``."""

    session: int
    seq: int
    req_crc: int

    TYPE = MsgType.ACK

    def body(self, version: int = PROTOCOL_VERSION) -> bytes:
        return struct.pack("<I", self.req_crc)


@dataclass(frozen=True)
class Nack:
    """Host -> device: the request is refused for good. Body: ``req_crc u32, reason u8``."""

    session: int
    seq: int
    req_crc: int
    reason: int

    TYPE = MsgType.NACK

    def body(self, version: int = PROTOCOL_VERSION) -> bytes:
        return struct.pack("<IB", self.req_crc, self.reason)


Message = Defer | Report | DecisionReply | Ack | Nack


def encode_payload(msg: Message, version: int = PROTOCOL_VERSION) -> bytes:
    """Header + body + CRC (not yet COBS-framed). A reply goes in its request's ``version``."""
    if not OLDEST_VERSION <= version <= PROTOCOL_VERSION:
        raise ValueError(f"protocol version {version} is not one of {OLDEST_VERSION}..{PROTOCOL_VERSION}")
    head = HEADER.pack(version, int(msg.TYPE), msg.session & 0xFFFFFFFF, msg.seq & 0xFFFFFFFF)
    data = head + msg.body(version)
    return data + CRC.pack(crc32(data))


def frame(payload: bytes) -> bytes:
    """Wire bytes of one frame: 0x00, COBS(payload), 0x00.

    The leading delimiter ends whatever fragment the receiver holds from a garbled earlier
    transmission, so one lost delimiter costs one frame, not two; receivers skip empty frames.
    """
    return b"\x00" + cobs_encode(payload) + b"\x00"


def encode_frame(msg: Message, version: int = PROTOCOL_VERSION) -> bytes:
    return frame(encode_payload(msg, version))


def payload_crc(payload: bytes) -> int:
    """The CRC field of a well-formed payload (what a reply echoes as ``req_crc``)."""
    return CRC.unpack_from(payload, len(payload) - CRC_SIZE)[0]


def _features(body: bytes, offset: int, n: int, version: int) -> tuple[np.ndarray, bool]:
    """The features of a DEFER/REPORT body whose count field ends at ``offset``, as float32, and
    whether they came as zero runs."""
    if n == 0 or n > MAX_FEATURES:
        raise FrameError("value", f"feature count {n}")
    width = 4
    if version >= 2:
        if len(body) <= offset:
            raise FrameError("length", "no feature width")
        width = body[offset]
        offset += 1
        if width == WIDTH_U8_RUNS and version >= 3:
            return _u8_from_runs(body, offset, n).astype(np.float32), True
        if width not in FEATURE_WIDTHS:
            raise FrameError("value", f"feature width {width}")
    if len(body) != offset + width * n:
        raise FrameError("length", f"body of {len(body)} bytes for {n} features of {width} byte(s)")
    return np.frombuffer(body, dtype=FEATURE_WIDTHS[width], count=n, offset=offset).astype(np.float32), False


def decode_payload(payload: bytes) -> Message:
    """Parse one COBS-decoded payload; raises :class:`FrameError` naming the drop reason."""
    if len(payload) > MAX_PAYLOAD:
        raise FrameError("oversize", f"{len(payload)} bytes")
    if len(payload) < MIN_PAYLOAD:
        raise FrameError("short", f"{len(payload)} bytes")
    data, (crc,) = payload[:-CRC_SIZE], CRC.unpack_from(payload, len(payload) - CRC_SIZE)
    if crc32(data) != crc:
        raise FrameError("crc")
    version, mtype, session, seq = HEADER.unpack_from(data, 0)
    if not OLDEST_VERSION <= version <= PROTOCOL_VERSION:
        raise FrameError("version", str(version))
    body = data[HEADER_SIZE:]
    if mtype == MsgType.DEFER:
        if len(body) < 6:
            raise FrameError("length")
        tag, n = struct.unpack_from("<IH", body, 0)
        return Defer(session, seq, tag, *_features(body, 6, n, version))
    if mtype == MsgType.REPORT:
        if len(body) < 7:
            raise FrameError("length")
        tag, decision, n = struct.unpack_from("<IBH", body, 0)
        if decision not in REPORT_DECISIONS:
            raise FrameError("value", f"decision {decision}")
        return Report(session, seq, tag, decision, *_features(body, 7, n, version))
    if mtype == MsgType.DECISION:
        if len(body) != 5:
            raise FrameError("length")
        req_crc, decision = struct.unpack("<IB", body)
        if decision > 1:
            raise FrameError("value", f"decision {decision}")
        return DecisionReply(session, seq, req_crc, decision)
    if mtype == MsgType.ACK:
        if len(body) != 4:
            raise FrameError("length")
        return Ack(session, seq, struct.unpack("<I", body)[0])
    if mtype == MsgType.NACK:
        if len(body) != 5:
            raise FrameError("length")
        req_crc, reason = struct.unpack("<IB", body)
        return Nack(session, seq, req_crc, reason)
    raise FrameError("type", f"0x{mtype:02x}")


class FrameReader:
    """Splits a byte stream at 0x00 delimiters and decodes each frame; counts what it drops.

    ``feed(data)`` returns ``(payload, message)`` pairs for the frames completed by ``data``.
    Bytes before the first delimiter after a start or a resynchronisation form a frame like any
    other: if they are a fragment, their CRC fails and they are dropped. A frame longer than
    :data:`MAX_PAYLOAD` is discarded up to its delimiter without buffering it.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_wire = max_payload + max_payload // 254 + 2
        self._buf = bytearray()
        self._overflow = False
        self.frames_ok = 0
        self.dropped: dict[str, int] = {r: 0 for r in DROP_REASONS}

    @property
    def frames_dropped(self) -> int:
        return sum(self.dropped.values())

    def _drop(self, reason: str) -> None:
        self.dropped[reason] += 1

    def feed(self, data: bytes) -> list[tuple[bytes, Message]]:
        out = []
        start = 0
        while True:
            end = data.find(b"\x00", start)
            if end < 0:
                self._append(data[start:])
                return out
            self._append(data[start:end])
            wire, overflow = bytes(self._buf), self._overflow
            self._buf.clear()
            self._overflow = False
            start = end + 1
            if overflow:
                self._drop("oversize")
                continue
            if not wire:
                continue  # back-to-back delimiters: an idle line, not a frame
            try:
                payload = cobs_decode(wire)
                msg = decode_payload(payload)
            except FrameError as exc:
                self._drop(exc.reason)
                continue
            self.frames_ok += 1
            out.append((payload, msg))

    def _append(self, chunk: bytes) -> None:
        if self._overflow:
            return
        if len(self._buf) + len(chunk) > self.max_wire:
            self._overflow = True
            self._buf.clear()
            return
        self._buf += chunk

    def stats(self) -> dict:
        return {"frames_ok": self.frames_ok, "frames_dropped": self.frames_dropped, "dropped": dict(self.dropped)}
