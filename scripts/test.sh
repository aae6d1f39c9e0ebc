#!/usr/bin/env bash
# The whole check: lint, types, import boundaries, then the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:randomly "$@"
