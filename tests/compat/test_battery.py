"""The real-client battery (../shared/clients/run_battery.sh) against apps/namesrv.py + apps/broker.py.

Both C++-based clients produce and consume through our broker: sync/async/oneway/batch sends,
compressed bodies, orderly consumption with queue locks, tag filtering, broadcasting.  The
delay/retry and transaction groups belong to later issues and are not run here.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import pytest

from tests.compat.ours import start_ours

pytestmark = pytest.mark.compat

REPO = Path(__file__).resolve().parents[2]
CLIENTS = REPO.parent / "shared" / "clients"


@pytest.fixture(scope="module")
def clients_ready() -> None:
    if (platform.system(), platform.machine()) != ("Linux", "x86_64"):
        pytest.skip("the real clients' librocketmq.so is built for Linux x86_64 only")
    setup = subprocess.run(
        [str(CLIENTS / "setup_clients.sh")], capture_output=True, text=True, timeout=900
    )
    assert setup.returncode == 0, setup.stderr[-2000:]


def test_default_battery_passes(clients_ready, tmp_path):
    target = start_ours(tmp_path)
    try:
        env = {**os.environ, "NAMESRV_ADDR": target.namesrv_addr}
        for key in ("CHECKS", "CLIENTS", "BATTERY_DELAY", "BATTERY_TX"):
            env.pop(key, None)
        run = subprocess.run(
            [str(CLIENTS / "run_battery.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        target.stop()
    failures = [line for line in run.stdout.splitlines() if line.startswith("FAIL")]
    report = "\n".join([*failures, run.stdout[-3000:], *(p.describe() for p in target.processes)])
    assert not failures, report
    assert run.returncode == 0, report
    summary = run.stdout.strip().splitlines()[-1]
    assert summary.endswith(" passed, 0 failed")
    assert int(summary.split()[0]) >= 34
    # An orderly stop removes the abort file: the next start is a normal recovery.
    assert not (tmp_path / "store" / "abort").exists()
