"""The real-client battery (../shared/clients/run_battery.sh) against apps/namesrv.py + apps/broker.py.

Both C++-based clients produce and consume through our broker.  The default groups: sync,
async, oneway and batch sends, compressed bodies, orderly consumption with queue locks, tag
filtering, broadcasting.  The delay and retry groups (``BATTERY_DELAY=1``'s additions) run on
their own: messages sent with delay level 2 (5 s) must not arrive before 4.5 s, and a group
that answers RECONSUME_LATER (so CONSUMER_SEND_MSG_BACK) must get every message again through
``%RETRY%<group>``.  The transaction group (``BATTERY_TX=1``'s addition, official200 only):
commit, rollback, unknown -> the broker's CHECK_TRANSACTION_STATE -> commit, then exactly the six
committed messages are consumed (none rolled back).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.compat.ours import start_ours

pytestmark = pytest.mark.compat


def run_battery(
    clients: Path,
    work_dir: Path,
    checks: str | None,
    timeout: float,
    extra_env: dict[str, str] | None = None,
) -> str:
    """run_battery.sh against our servers, started afresh in ``work_dir``; its summary line.

    ``checks`` is the CHECKS variable (None: the default groups).  Fails the test on any FAIL.
    """
    target = start_ours(work_dir)
    try:
        env = {**os.environ, "NAMESRV_ADDR": target.namesrv_addr}
        for key in ("CHECKS", "CLIENTS", "BATTERY_DELAY", "BATTERY_TX"):
            env.pop(key, None)
        if checks is not None:
            env["CHECKS"] = checks
        env.update(extra_env or {})
        run = subprocess.run(
            [str(clients / "run_battery.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    finally:
        target.stop()
    failures = [line for line in run.stdout.splitlines() if line.startswith("FAIL")]
    report = "\n".join([*failures, run.stdout[-3000:], *(p.describe() for p in target.processes)])
    assert not failures, report
    assert run.returncode == 0, report
    return run.stdout.strip().splitlines()[-1]


def test_default_battery_passes(real_clients: Path, tmp_path: Path) -> None:
    summary = run_battery(real_clients, tmp_path, None, timeout=900)
    assert summary.endswith(" passed, 0 failed")
    assert int(summary.split()[0]) >= 34
    # An orderly stop removes the abort file: the next start is a normal recovery.
    assert not (tmp_path / "store" / "abort").exists()


def test_delay_and_retry_battery_passes(real_clients: Path, tmp_path: Path) -> None:
    assert run_battery(real_clients, tmp_path, "delay retry", timeout=600) == "8 passed, 0 failed"


def test_transaction_battery_passes(real_clients: Path, tmp_path: Path) -> None:
    # Our servers check unresolved transactions every second (servers.broker_properties), but
    # the C++ producer's first heartbeat (which names its group) comes 30 s after its start:
    # only then is there a producer to ask, so the "unknown" producer waits 60 s, not 20.
    summary = run_battery(
        real_clients, tmp_path, "tx", timeout=300, extra_env={"TX_CHECK_WAIT": "60"}
    )
    assert summary == "5 passed, 0 failed"
