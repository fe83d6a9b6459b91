"""Model -> nothing: the C header of every code the device and the host share (firmware/bnn_codes.h).

Decisions, message types, NACK reasons, frame drop reasons, link outcomes, final decisions and
their sources, popcount kernels and the versions are defined once, as Python enums; this module
renders them as C constants. The header is committed with the runtime (so the firmware builds
without running Python) and a test fails while it differs from :func:`render_codes_header`.
Regenerate with ``python -m bnnembed.render.codes --write``.
"""

from __future__ import annotations

import argparse
import enum
from pathlib import Path

from .. import __version__
from .._resources import resource_dir
from ..device.app_codes import DecisionSource, FinalDecision
from ..link.protocol import (
    CRC_SIZE, HEADER_SIZE, MAX_FEATURES, MAX_RUN_GROUPS, OLDEST_VERSION, PROTOCOL_VERSION, RUN_GROUP,
    RUNS_MIN_FEATURES, WIDTH_U8_RUNS, FrameStatus, LinkStatus, MsgType, NackReason,
)
from ..model.intmodel import Decision
from .c import Layout, PopcountStrategy, template_env

HEADER = "bnn_codes.h"


def _source(cls: type[enum.Enum]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _members(cls, prefix: str, hex_values: bool = False, suffix: str = "") -> list[dict]:
    return [
        {
            "name": m.name,
            "label": m.name.lower(),
            "doc": m.doc.replace("*/", "* /"),
            "c_name": f"{prefix}{m.name}",
            "c_value": (f"0x{int(m):02X}" if hex_values else str(int(m))) + suffix,
        }
        for m in cls
    ]


def _table(cls, prefix: str, c_type: str = "", count_name: str = "", **kw) -> dict:
    doc = (cls.__doc__ or cls.__name__).strip().splitlines()[0].rstrip(".")
    return {"doc": doc, "source": _source(cls), "c_type": c_type, "count_name": count_name,
            "members": _members(cls, prefix, **kw)}


def codes_context() -> dict:
    """Everything the header lays out, from the enums."""
    enums = [
        _table(MsgType, "BNN_MSG_", "bnn_msg_type", hex_values=True),
        _table(NackReason, "BNN_NACK_", "bnn_nack_reason"),
        _table(FrameStatus, "BNN_PROTO_", "bnn_proto_status", count_name="BNN_PROTO_N_STATUS"),
        _table(LinkStatus, "BNN_LINK_", "bnn_link_status"),
        _table(DecisionSource, "BNN_SOURCE_", "bnn_source_t"),
    ]
    defines = [
        _table(FinalDecision, "BNN_FINAL_", suffix="u"),
        _table(PopcountStrategy, "BNN_POPCOUNT_"),
        _table(Layout, "BNN_LAYOUT_", suffix="u"),
    ]
    classes = [Decision, MsgType, NackReason, FrameStatus, LinkStatus, DecisionSource, FinalDecision,
               PopcountStrategy, Layout]
    return {
        "version": __version__,
        "proto_version": PROTOCOL_VERSION,
        "proto_oldest_version": OLDEST_VERSION,
        "header_size": HEADER_SIZE,
        "crc_size": CRC_SIZE,
        "max_features": MAX_FEATURES,
        "width_u8_runs": f"0x{WIDTH_U8_RUNS:02X}",
        "runs_min_features": RUNS_MIN_FEATURES,
        "run_group": RUN_GROUP,
        "max_run_groups": MAX_RUN_GROUPS,
        "decisions": _table(Decision, "BNN_"),
        "decision_invalid": int(Decision.INVALID),
        "enums": enums,
        "defines": defines,
        "sources": sorted({c.__module__ for c in classes}),
    }


def render_codes_header() -> str:
    """The text of firmware/bnn_codes.h."""
    return template_env().get_template(f"runtime/{HEADER}.j2").render(**codes_context())


def committed_header() -> Path:
    return resource_dir("firmware") / HEADER


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bnnembed.render.codes", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite firmware/{HEADER} (else print it)")
    args = parser.parse_args(argv)
    text = render_codes_header()
    if args.write:
        committed_header().write_text(text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
