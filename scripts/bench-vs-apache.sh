#!/usr/bin/env bash
# Apache RocketMQ 4.9.7's broker and ours under the same loads, alternated; prints msgs/s,
# broker CPU per message and the ratio (issue 17).  Needs Java + Maven (scripts/java-setup.sh
# installs them and builds tests/compat/java, the bench module included).
#   bash scripts/bench-vs-apache.sh [--seconds 25] [--rounds 2] [--loads java-sync,raw-sync,...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/java-setup.sh
exec .venv/bin/python scripts/bench_vs_apache.py "$@"
