"""Our namesrv and broker (apps/namesrv.py, apps/broker.py) as a user starts them."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from tests.compat.processes import ManagedProcess, child_env, spawn
from tests.compat.servers import Target, start_pair

REPO = Path(__file__).resolve().parents[2]


def start_ours(
    work_dir: Path,
    broker_extra: Mapping[str, object] | None = None,
    namesrv_extra: Mapping[str, object] | None = None,
) -> Target:
    """Start namesrv then broker under ``work_dir`` (store, logs, configs); wait until serving."""
    # Defaults such as kvConfigPath live under ~; keep them in the test's folder.
    env = child_env(HOME=str(work_dir))

    def python(role: str, conf: Path) -> ManagedProcess:
        argv = [sys.executable, f"apps/{role}.py", "-c", str(conf)]
        return spawn(f"ours-{role}", argv, log_dir=work_dir / "logs", cwd=REPO, env=env)

    return start_pair("ours", work_dir, python, broker_extra, namesrv_extra)
