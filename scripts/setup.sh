#!/usr/bin/env bash
# Create .venv at the repository root (if missing) and install the project into it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
# FUSE for the power-loss tests (tests/powerloss): Debian's fuse3 (fusermount3, the kernel
# interface) and libfuse3-dev + pkg-config, which pip needs to build pyfuse3 (the test extra).
# apt-get update runs only when one of them is missing.
if command -v dpkg >/dev/null 2>&1; then
    need_install=()
    for pkg in fuse3 libfuse3-dev pkg-config; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need_install+=("$pkg")
    done
    if ((${#need_install[@]})); then
        sudo_cmd=()
        [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
        "${sudo_cmd[@]}" apt-get update -q
        DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${need_install[@]}"
    fi
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[test]'
    rm -f .venv/.installed-*
    touch "$stamp"
fi
