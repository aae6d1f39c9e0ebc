#!/usr/bin/env bash
# Set up, then run namesrv + broker on an embedded default config with a temporary store,
# drive them with a short produce/consume, and stop both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python apps/demo.py "$@"
