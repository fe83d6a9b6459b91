"""Integer enums whose members carry a one-line description.

The codes the device and the host share (decisions, message types, NACK reasons, drop reasons,
link outcomes, popcount kernels) are defined once, in Python, as :class:`CodeEnum` members; the
description becomes the comment of the generated C constant (:mod:`bnnembed.render.codes`).
"""

from __future__ import annotations

import enum


class CodeEnum(enum.IntEnum):
    """``NAME = value, "what it means"``: an IntEnum whose members also have ``.doc``."""

    def __new__(cls, value: int, doc: str = ""):
        member = int.__new__(cls, value)
        member._value_ = value
        member.doc = doc
        return member
