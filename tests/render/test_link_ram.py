"""The board-budget check sizes the example's link buffers exactly as the C macros do."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from bnnembed._resources import resource_dir
from bnnembed.render.project import app_link_ram

SIZES = (1, 64, 253, 784, 4096)


def test_app_link_ram_equals_the_c_buffer_macros(tmp_path):
    cc = shutil.which("gcc")
    if cc is None:
        pytest.skip("host gcc not installed")
    src = tmp_path / "sizes.c"
    src.write_text('#include <stdio.h>\n#include "bnn_app.h"\nint main(void) {\n'
                   + "".join(f'    printf("%lu\\n", (unsigned long)(BNN_APP_TX_SIZE({n}) + BNN_APP_RX_SIZE));\n'
                             for n in SIZES)
                   + "    return 0;\n}\n")
    exe = tmp_path / "sizes"
    subprocess.run([cc, "-std=c99", f"-I{resource_dir('firmware')}", str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()
    assert [int(v) for v in out] == [app_link_ram(n) for n in SIZES]
