"""Skip-or-fail for tests that need external tools (cross-compilers, QEMU, a host C compiler).

A missing tool is a skip on a developer machine and a failure when BNNEMBED_STRICT_QEMU=1 (CI),
so a CI run can never pass by skipping the firmware tests.
"""

from __future__ import annotations

import os
import shutil

import pytest

ARM_HINT = "apt-get install qemu-system-arm gcc-arm-none-eabi picolibc-arm-none-eabi"


def strict() -> bool:
    return os.environ.get("BNNEMBED_STRICT_QEMU") == "1"


def require_tools(*tools: str, hint: str = "") -> None:
    """Skip (or, in strict mode, fail) unless every tool is on PATH."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        msg = f"{', '.join(missing)} not installed" + (f" ({hint})" if hint else "")
        if strict():
            pytest.fail(msg + " [BNNEMBED_STRICT_QEMU=1]")
        pytest.skip(msg)


def need_qemu_arm() -> None:
    require_tools("qemu-system-arm", "arm-none-eabi-gcc", hint=ARM_HINT)
