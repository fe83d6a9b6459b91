"""An installed wheel must work outside the checkout: templates, firmware and boards ship inside it."""

import glob
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import _paths

ROOT = _paths.ROOT
DATA_DIRS = ("templates", "firmware", "boards")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the checkout (setuptools writes build/ and *.egg-info into
    the tree it builds), with the venv's setuptools (no build isolation, no network)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", "tests",
        "bench", "docs"))
    out = tmp / "dist"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (whl,) = glob.glob(str(out / "bnnembed-*.whl"))
    return Path(whl)


@pytest.mark.slow
def test_wheel_ships_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for sub in DATA_DIRS:
        shipped = {n for n in names if n.startswith(f"bnnembed/{sub}/")}
        on_disk = {f"bnnembed/{sub}/{p.relative_to(ROOT / sub)}" for p in (ROOT / sub).rglob("*")
                   if p.is_file() and p.name != ".keep" and "__pycache__" not in p.parts}
        assert on_disk and on_disk <= shipped, sorted(on_disk - shipped)[:5]


@pytest.mark.slow
def test_installed_wheel_builds_and_generates_code_outside_the_checkout(wheel, tmp_path):
    """pip install --target DIR, then build and codegen from a directory outside the checkout
    with only DIR on PYTHONPATH (the venv provides the dependencies): the package, its
    templates, firmware and boards all come from DIR."""
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                           str(site), str(wheel)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}

    def run(*args: str) -> str:
        p = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, f"{args}: exit {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
        return p.stdout

    probe = ("import json, bnnembed; from bnnembed._resources import resource_dir; "
             "print(json.dumps({'file': bnnembed.__file__, "
             f"**{{n: str(resource_dir(n)) for n in {DATA_DIRS!r}}}}}))")
    where = json.loads(run("-c", probe).strip().splitlines()[-1])
    site_pkg = (site / "bnnembed").resolve()
    assert Path(where["file"]).resolve() == site_pkg / "__init__.py", where
    for sub in DATA_DIRS:
        assert Path(where[sub]).resolve() == site_pkg / sub, where
        assert not (site_pkg / sub).is_symlink()  # copied into the wheel, not a link back to the checkout
    assert ROOT not in Path(where["file"]).resolve().parents

    out, proj = cwd / "art", cwd / "proj"
    run("-m", "bnnembed", "build", "--data", "breast_cancer", "--out", str(out), "--hidden", "8,4", "--epochs", "2",
        "--augment", "1", "--no-baseline")
    assert (out / "manifest.json").is_file() and (out / "bounds.npz").is_file()
    run("-m", "bnnembed", "codegen", str(out), "--board", "nucleo_f401re", "--out", str(proj))
    src = sorted(p.name for p in (proj / "src").iterdir())
    assert "bnn_model.c" in src and "main.c" in src, src
    # the runtime library in the project is the installed firmware, byte for byte
    runtime = [p for p in proj.glob("lib/*/src/*") if (site_pkg / "firmware" / p.name).is_file()]
    assert {p.name for p in runtime} >= {"bnn.c", "bnn.h"}, sorted(map(str, runtime))
    for p in runtime:
        assert p.read_bytes() == (site_pkg / "firmware" / p.name).read_bytes(), p
