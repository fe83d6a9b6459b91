"""What the device application (firmware/bnn_app.c) reports for one input: the final answer and
who gave it. ``bnnembed simulate`` reads these codes from the firmware's output; the C constants
in firmware/bnn_codes.h are generated from these enums."""

from __future__ import annotations

from .._enum import CodeEnum


class FinalDecision(CodeEnum):
    """The final answer for one input (bnn_app_result.final)."""

    NO = 0, "no (from the bounds or from the host DNN)"
    YES = 1, "yes (from the bounds or from the host DNN)"
    UNDECIDED = 2, "the bounds said unknown and the host gave no answer (no reply after every retry, or a NACK)"
    INVALID = 3, "a feature was NaN or infinite: nobody answers it (equals BNN_INVALID)"

    @property
    def label(self) -> str:
        return self.name.lower()


class DecisionSource(CodeEnum):
    """Where a final decision came from."""

    BNN = 0, "the device's bounds answered"
    DNN = 1, "the bounds left it UNKNOWN; the host DNN answered"
    NONE = 2, "nobody answered: UNKNOWN without a host answer, or an INVALID input"
