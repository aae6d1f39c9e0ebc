"""Running apps/namesrv.py or apps/broker.py the way a user does: from the repository root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 20.0


def env_for(home: Path, **extra: str) -> dict[str, str]:
    """The test's environment with ``home`` as ``~`` (default store, kvConfigPath live there).

    ROCKETMQ_HOME and NAMESRV_ADDR are dropped: the apps read them, and a developer's shell
    may set them.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("ROCKETMQ_HOME", "NAMESRV_ADDR")}
    env["HOME"] = str(home)
    env.update(extra)
    return env


def run_app(app: str, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``apps/<app>.py`` to completion; its exit status and text output."""
    return subprocess.run(
        [sys.executable, f"apps/{app}.py", *args],
        cwd=REPO,
        env=env_for(home, **env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
