"""An installed wheel must work outside the checkout: templates, firmware and boards ship inside it."""

import glob
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_ships_package_data(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
                   check=True, capture_output=True)
    names = set(zipfile.ZipFile(glob.glob(str(tmp_path / "bnnembed-*.whl"))[0]).namelist())
    for sub in ("templates", "firmware", "boards"):
        shipped = {n for n in names if n.startswith(f"bnnembed/{sub}/")}
        on_disk = {f"bnnembed/{sub}/{p.relative_to(ROOT / sub)}" for p in (ROOT / sub).rglob("*")
                   if p.is_file() and p.name != ".keep" and "__pycache__" not in p.parts}
        assert on_disk and on_disk <= shipped, sorted(on_disk - shipped)[:5]
