#!/usr/bin/env bash
# Set-up and entry point. `./run.sh demo` runs the main job end to end, `./run.sh test` runs the
# test suite; both first install what is missing (Debian packages for the cross-compilers and
# QEMU, then a virtualenv in .venv with the package and its test dependencies).
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES="qemu-system-arm qemu-system-misc gcc-arm-none-eabi picolibc-arm-none-eabi \
gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf gcc-xtensa-lx106 picolibc-xtensa-lx106-elf"

ensure_system_packages() {
    local missing=""
    for p in $APT_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "==> installing Debian packages:$missing"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

find_python() {
    for py in python3.11 python3 python; do
        if command -v "$py" >/dev/null && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
            echo "$py"; return 0
        fi
    done
    echo "error: Python >= 3.11 is required (apt-get install python3.11 python3.11-venv)" >&2
    return 1
}

ensure_venv() {
    local stamp=.venv/.bnnembed-installed
    local want
    want=$(sha256sum pyproject.toml | cut -c1-16)
    if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    local py
    py=$(find_python)
    if [ ! -x .venv/bin/python ]; then
        echo "==> creating .venv"
        if ! "$py" -m venv .venv 2>/dev/null; then
            # Debian's python3 ships venv separately
            rm -rf .venv
            local sudo=""
            [ "$(id -u)" -ne 0 ] && sudo="sudo"
            $sudo apt-get update -qq
            DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
            "$py" -m venv .venv
        fi
    fi
    echo "==> installing bnnembed and its dependencies into .venv (torch==2.13.0, CPU build)"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    .venv/bin/python -m pip install -q "torch==2.13.0"
    .venv/bin/python -m pip install -q -e ".[test,bench]"
    echo "$want" > "$stamp"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
    demo)
        ensure_system_packages
        ensure_venv
        exec .venv/bin/bnnembed demo "$@"
        ;;
    test)
        ensure_system_packages
        ensure_venv
        exec .venv/bin/python -m pytest -n 2 "$@"
        ;;
    setup)
        ensure_system_packages
        ensure_venv
        ;;
    *)
        echo "usage: ./run.sh demo [demo options] | ./run.sh test [pytest options] | ./run.sh setup" >&2
        exit 2
        ;;
esac
