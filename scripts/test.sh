#!/usr/bin/env bash
# The whole check on a fresh machine: set up, lint, types, then the entire test suite
# (unit, loopback, crash, and compat tests against real C++ and Java RocketMQ clients).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Real third-party clients for the compat tests (idempotent; ~5 s when already installed).
if [ -x ../shared/clients/setup_clients.sh ] || [ -f ../shared/clients/setup_clients.sh ]; then
    bash ../shared/clients/setup_clients.sh
fi
# Java 17 + Maven (installed if missing) and the tests/compat/java module, built once into ~/.m2.
bash scripts/java-setup.sh
# etcd (Debian etcd-server) for the failover tests (tests/failover); apt-get only when missing.
bash scripts/etcd.sh install
# Debian's chromium and its driver for the dashboard's browser test (only when missing).
if ! command -v chromium >/dev/null || [ ! -x /usr/bin/chromedriver ]; then
    SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium chromium-driver
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# Two workers (pytest-xdist), each module kept on one worker (tests/conftest.py says why);
# PYTEST_WORKERS=0 runs everything in this one process.
workers=${PYTEST_WORKERS:-2}
if [ "$workers" = 0 ]; then
    .venv/bin/python -m pytest -q "$@"
else
    .venv/bin/python -m pytest -q -n "$workers" --dist loadfile --no-loadscope-reorder "$@"
fi
