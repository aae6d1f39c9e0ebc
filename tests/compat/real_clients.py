"""The real C++-based RocketMQ clients (../shared/clients): their scripts and their set-up."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import pytest

CLIENTS = Path(__file__).resolve().parents[3] / "shared" / "clients"
NAMES = ("rocketmqcvs", "official200")


def install_real_clients() -> Path:
    """Install (or just check) the clients; the folder of their scripts.  Skips off Linux x86_64."""
    if (platform.system(), platform.machine()) != ("Linux", "x86_64"):
        pytest.skip("the real clients' librocketmq.so is built for Linux x86_64 only")
    done = subprocess.run(
        [str(CLIENTS / "setup_clients.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, f"setup_clients.sh failed:\n{done.stdout}\n{done.stderr[-2000:]}"
    return CLIENTS
