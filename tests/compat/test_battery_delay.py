"""The battery's delay and retry groups (``BATTERY_DELAY=1``) against apps/namesrv.py + apps/broker.py.

Both C++-based clients send with delay level 2 (5 s) and must not see the messages sooner than
4.5 s; a consumer group refuses every first delivery (RECONSUME_LATER, so CONSUMER_SEND_MSG_BACK)
and every message must come back through ``%RETRY%<group>``.  Only those two groups run here:
the default groups ``BATTERY_DELAY=1`` would add again are test_battery.py's.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.compat.ours import start_ours
from tests.compat.test_battery import CLIENTS, clients_ready

pytestmark = pytest.mark.compat

__all__ = ["clients_ready"]  # the module-scoped fixture, shared with test_battery.py


def test_delay_and_retry_battery_passes(clients_ready, tmp_path):
    target = start_ours(tmp_path)
    try:
        env = {**os.environ, "NAMESRV_ADDR": target.namesrv_addr, "CHECKS": "delay retry"}
        for key in ("CLIENTS", "BATTERY_DELAY", "BATTERY_TX"):
            env.pop(key, None)
        run = subprocess.run(
            [str(CLIENTS / "run_battery.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        target.stop()
    failures = [line for line in run.stdout.splitlines() if line.startswith("FAIL")]
    report = "\n".join([*failures, run.stdout[-3000:], *(p.describe() for p in target.processes)])
    assert not failures, report
    assert run.returncode == 0, report
    summary = run.stdout.strip().splitlines()[-1]
    assert summary == "8 passed, 0 failed", report
