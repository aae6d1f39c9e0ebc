"""The synchronous twin of the pytest plugin (``rocketmq_cluster_sync``, ``ThreadedCluster``)
serves the real C++-based clients (../shared/clients): a suite that is not Trio - and a client
that is not ours - produces to it and consumes from it in separate processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from actors.testing import ThreadedCluster
from tests.compat.real_clients import NAMES

pytestmark = pytest.mark.compat

SCRIPT_TIMEOUT = 90


def run_script(clients: Path, script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(clients / script), *args],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, (
        f"{script} {args} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
    )
    return done.stdout


@pytest.mark.parametrize("client", NAMES)
def test_a_real_client_produces_and_consumes_on_the_threaded_cluster(
    real_clients: Path, client: str, tmp_path: Path
) -> None:
    topic, group = f"Embedded_{client}", f"g_embedded_{client}"
    with ThreadedCluster(tmp_path / "store") as cluster:
        cluster.create_topic(topic)
        ns = cluster.namesrv_addr
        out = run_script(
            real_clients,
            f"{client}_produce.py",
            "--namesrv",
            ns,
            "--topic",
            topic,
            "--count",
            "10",
            "--size",
            "200",
        )
        assert "sent=10 failed=0" in out, out
        out = run_script(
            real_clients,
            f"{client}_consume.py",
            "--namesrv", ns, "--topic", topic, "--group", group, "--count", "10",
            "--timeout", "60", "--expect-size", "200",
        )  # fmt: skip
        assert "unique=10" in out, out
