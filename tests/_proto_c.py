"""Build the C protocol codec for the host and load it with ctypes (shared by the protocol tests).

The library is firmware/bnn_protocol.c plus tests/c/proto_port_posix.c (the link's byte I/O over
a TCP socket), compiled with the host gcc; tests skip when no host compiler is installed.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess

import numpy as np
import pytest

from bnnembed._resources import resource_dir

HERE = os.path.dirname(os.path.abspath(__file__))
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-g"]


def host_cc() -> str:
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        if os.environ.get("BNNEMBED_STRICT_QEMU") == "1":
            pytest.fail("no host C compiler (apt-get install gcc)")
        pytest.skip("no host C compiler (apt-get install gcc)")
    return cc


def build(out_dir: str, *, sanitize: bool = False, shared: bool = True, main: str = "proto_port_posix.c",
          name: str = "libbnnproto.so", extra_flags: tuple[str, ...] = ()) -> str:
    fw = str(resource_dir("firmware"))
    out = os.path.join(out_dir, name)
    cmd = [host_cc(), *CFLAGS, f"-I{fw}", os.path.join(HERE, "c", main), os.path.join(fw, "bnn_protocol.c"),
           "-o", out]
    cmd[1:1] = list(extra_flags)
    if shared:
        cmd[1:1] = ["-shared", "-fPIC"]
    if sanitize:
        cmd[1:1] = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out


class CProto:
    """ctypes view of the C codec and the test link."""

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)
        u8p = ctypes.POINTER(ctypes.c_uint8)
        lib.bnn_crc32.restype = ctypes.c_uint32
        lib.bnn_crc32.argtypes = [u8p, ctypes.c_size_t]
        lib.bnn_cobs_encode.restype = ctypes.c_size_t
        lib.bnn_cobs_encode.argtypes = [u8p, ctypes.c_size_t, u8p, ctypes.c_size_t]
        lib.bnn_cobs_decode.restype = ctypes.c_int
        lib.bnn_cobs_decode.argtypes = [u8p, ctypes.c_size_t, u8p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
        lib.bnn_proto_build_request.restype = ctypes.c_size_t
        lib.bnn_proto_build_request.argtypes = [u8p, ctypes.c_size_t, ctypes.c_uint8, ctypes.c_uint32,
                                                ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint8,
                                                ctypes.POINTER(ctypes.c_float), ctypes.c_uint16]
        lib.bnn_proto_build_request_frame.restype = ctypes.c_size_t
        lib.bnn_proto_build_request_frame.argtypes = [u8p, ctypes.c_size_t, ctypes.c_uint8, ctypes.c_uint32,
                                                      ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint8,
                                                      ctypes.POINTER(ctypes.c_float), ctypes.c_uint16,
                                                      ctypes.POINTER(ctypes.c_uint32)]
        lib.bnn_proto_build_request_frame_u8.restype = ctypes.c_size_t
        lib.bnn_proto_build_request_frame_u8.argtypes = [u8p, ctypes.c_size_t, ctypes.c_uint8, ctypes.c_uint32,
                                                         ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint8,
                                                         u8p, ctypes.c_uint16, ctypes.POINTER(ctypes.c_uint32)]
        lib.bnn_proto_build_reply.restype = ctypes.c_size_t
        lib.bnn_proto_build_reply.argtypes = [u8p, ctypes.c_size_t, ctypes.c_uint8, ctypes.c_uint32,
                                              ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint8]
        lib.bnn_test_parse.restype = ctypes.c_int
        lib.bnn_test_parse.argtypes = [u8p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint32)]
        lib.bnn_test_frame_sizes.restype = None
        lib.bnn_test_frame_sizes.argtypes = [ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32)]
        lib.bnn_test_parse_features.restype = ctypes.c_int
        lib.bnn_test_parse_features.argtypes = [u8p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t]
        lib.bnn_test_connect.restype = ctypes.c_int
        lib.bnn_test_connect.argtypes = [ctypes.c_int]
        lib.bnn_test_link_setup.argtypes = [ctypes.c_uint32] * 4
        lib.bnn_test_defer.restype = ctypes.c_int
        lib.bnn_test_defer.argtypes = [ctypes.POINTER(ctypes.c_float), ctypes.c_uint16, u8p]
        lib.bnn_test_report.restype = ctypes.c_int
        lib.bnn_test_report.argtypes = [ctypes.POINTER(ctypes.c_float), ctypes.c_uint16, ctypes.c_uint8]
        lib.bnn_test_defer_u8.restype = ctypes.c_int
        lib.bnn_test_defer_u8.argtypes = [u8p, ctypes.c_uint16, u8p]
        lib.bnn_test_report_u8.restype = ctypes.c_int
        lib.bnn_test_report_u8.argtypes = [u8p, ctypes.c_uint16, ctypes.c_uint8]
        lib.bnn_test_link_stats.argtypes = [ctypes.POINTER(ctypes.c_uint32)]
        self.lib = lib

    @staticmethod
    def _buf(data: bytes):
        return (ctypes.c_uint8 * max(1, len(data))).from_buffer_copy(data or b"\0")

    def crc32(self, data: bytes) -> int:
        return self.lib.bnn_crc32(self._buf(data), len(data))

    def cobs_encode(self, data: bytes) -> bytes:
        cap = len(data) + len(data) // 254 + 1
        out = (ctypes.c_uint8 * cap)()
        n = self.lib.bnn_cobs_encode(self._buf(data), len(data), out, cap)
        assert n > 0
        return bytes(out[:n])

    def cobs_decode(self, data: bytes) -> tuple[int, bytes]:
        out = (ctypes.c_uint8 * max(1, len(data)))()
        n = ctypes.c_size_t(0)
        st = self.lib.bnn_cobs_decode(self._buf(data), len(data), out, len(data), ctypes.byref(n))
        return st, bytes(out[: n.value]) if st == 0 else b""

    def build_request(self, mtype: int, session: int, seq: int, tag: int, decision: int, x) -> bytes:
        x = np.ascontiguousarray(x, dtype=np.float32)
        cap = 10 + 8 + 4 * x.size + 4
        out = (ctypes.c_uint8 * cap)()
        n = self.lib.bnn_proto_build_request(out, cap, mtype, session, seq, tag, decision,
                                             x.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), x.size)
        return bytes(out[:n])

    def build_request_frame(self, mtype: int, session: int, seq: int, tag: int, decision: int, x,
                            cap: int | None = None) -> tuple[bytes, int]:
        """The link's wire frame and the payload CRC it reports (``cap``: the buffer offered; by
        default BNN_PROTO_FRAME_SIZE)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        payload = 10 + 8 + 4 * x.size + 4
        full = payload + payload // 254 + 1 + 2
        cap = full if cap is None else cap
        out = (ctypes.c_uint8 * max(cap, 1))()
        crc = ctypes.c_uint32(0)
        n = self.lib.bnn_proto_build_request_frame(out, cap, mtype, session, seq, tag, decision,
                                                   x.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), x.size,
                                                   ctypes.byref(crc))
        return bytes(out[:n]), crc.value

    def build_request_frame_u8(self, mtype: int, session: int, seq: int, tag: int, decision: int, x,
                               cap: int | None = None, offset: int = 0) -> tuple[bytes, int]:
        """bnn_proto_build_request_frame_u8() on the bytes ``x``, placed ``offset`` bytes past a
        word boundary (the builder goes byte by byte up to the first aligned word)."""
        x = np.asarray(x, dtype=np.uint8)
        words = (ctypes.c_uint32 * ((offset + x.size + 3) // 4 + 1))()
        base = ctypes.addressof(words) + offset
        ctypes.memmove(base, x.tobytes(), x.size)
        payload = 10 + 8 + x.size + (2 * (x.size // 252) + 4 if x.size >= 256 else 0) + 4  # BNN_PROTO_REQUEST_SIZE_U8(n)
        full = payload + payload // 254 + 1 + 2
        cap = full if cap is None else cap
        out = (ctypes.c_uint8 * max(cap, 1))()
        crc = ctypes.c_uint32(0)
        n = self.lib.bnn_proto_build_request_frame_u8(out, cap, mtype, session, seq, tag, decision,
                                                      ctypes.cast(base, ctypes.POINTER(ctypes.c_uint8)), x.size,
                                                      ctypes.byref(crc))
        return bytes(out[:n]), crc.value

    def build_reply(self, mtype: int, session: int, seq: int, req_crc: int, value: int) -> bytes:
        out = (ctypes.c_uint8 * 32)()
        n = self.lib.bnn_proto_build_reply(out, 32, mtype, session, seq, req_crc, value)
        return bytes(out[:n])

    def frame_sizes(self, n: int) -> tuple[int, int]:
        """BNN_PROTO_FRAME_SIZE(n) and BNN_PROTO_FRAME_SIZE_U8(n)."""
        out = (ctypes.c_uint32 * 2)()
        self.lib.bnn_test_frame_sizes(n, out)
        return out[0], out[1]

    def parse_features(self, payload: bytes, n: int) -> tuple[int, np.ndarray]:
        """Parse status and the n features as bnn_proto_feature() reads them."""
        out = (ctypes.c_float * max(n, 1))()
        st = self.lib.bnn_test_parse_features(self._buf(payload), len(payload), out, n)
        return st, np.array(out[:n], np.float32)

    def parse(self, payload: bytes) -> tuple[int, list[int]]:
        out = (ctypes.c_uint32 * 8)()
        st = self.lib.bnn_test_parse(self._buf(payload), len(payload), out)
        return st, list(out)

    # ---- the device end of the link over TCP
    def connect(self, port: int) -> None:
        assert self.lib.bnn_test_connect(port) == 0, "C test port could not connect"

    def close(self) -> None:
        self.lib.bnn_test_close()

    def link_setup(self, session: int, tag: int, timeout_ms: int = 300, attempts: int = 5) -> None:
        self.lib.bnn_test_link_setup(session, tag, timeout_ms, attempts)

    @staticmethod
    def _features(x, dtype, ctype):
        """``x`` as a contiguous ``dtype`` array (kept alive by the caller) and its C pointer."""
        x = np.ascontiguousarray(x, dtype=dtype)
        return x, x.ctypes.data_as(ctypes.POINTER(ctype))

    def _defer(self, fn, x, dtype, ctype) -> tuple[int, int]:
        x, ptr = self._features(x, dtype, ctype)
        d = ctypes.c_uint8(255)
        return fn(ptr, x.size, ctypes.byref(d)), d.value

    def _report(self, fn, x, dtype, ctype, decision: int) -> int:
        x, ptr = self._features(x, dtype, ctype)
        return fn(ptr, x.size, decision)

    def defer(self, x) -> tuple[int, int]:
        return self._defer(self.lib.bnn_test_defer, x, np.float32, ctypes.c_float)

    def report(self, x, decision: int) -> int:
        return self._report(self.lib.bnn_test_report, x, np.float32, ctypes.c_float, decision)

    def defer_u8(self, x) -> tuple[int, int]:
        return self._defer(self.lib.bnn_test_defer_u8, x, np.uint8, ctypes.c_uint8)

    def report_u8(self, x, decision: int) -> int:
        return self._report(self.lib.bnn_test_report_u8, x, np.uint8, ctypes.c_uint8, decision)

    def link_stats(self) -> dict:
        out = (ctypes.c_uint32 * 8)()
        self.lib.bnn_test_link_stats(out)
        keys = ("requests", "retries", "no_reply", "refused", "stale", "rx_ok", "rx_dropped", "seq")
        return dict(zip(keys, list(out)))
