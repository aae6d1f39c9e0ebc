"""apps/brokers.py: N broker processes as N broker groups of one cluster (issue 17)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import trio

from actors.remoting.client import open_remoting_client
from actors.remoting.errors import RemotingConnectError
from protocol import fastjson
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from tests.apps.app_process import REPO, TIMEOUT, env_for
from tests.compat.processes import free_port
from tests.store_sizes import SMALL_FILES


async def test_two_processes_register_as_two_groups_and_stop_in_order(tmp_path: Path) -> None:
    ns_port = free_port()
    base = free_port()
    namesrv_argv = [sys.executable, "apps/namesrv.py", f"--listenPort={ns_port}"]
    brokers_argv = [
        sys.executable,
        "apps/brokers.py",
        "--processes",
        "2",
        "-c",
        "conf/broker.conf",
        f"-n127.0.0.1:{ns_port}",
        f"--listenPort={base}",
        "--mappedFileSizeCommitLog=1048576",
        *(f"--{k}={v}" for k, v in SMALL_FILES.items()),
    ]
    env = env_for(tmp_path)
    log = tmp_path / "brokers.log"
    with log.open("wb") as out:
        namesrv = await trio.lowlevel.open_process(
            namesrv_argv, cwd=REPO, env=env, stdout=out, stderr=out
        )
        brokers = await trio.lowlevel.open_process(
            brokers_argv, cwd=REPO, env=env, stdout=out, stderr=out
        )
    try:
        with trio.fail_after(3 * TIMEOUT):  # three interpreters start on a busy machine
            async with open_remoting_client() as client:
                names: set[str] = set()
                while len(names) < 2:
                    await trio.sleep(0.1)
                    try:
                        reply = await client.invoke(
                            f"127.0.0.1:{ns_port}",
                            RemotingCommand.request(RequestCode.GET_BROKER_CLUSTER_INFO),
                            2,
                        )
                    except RemotingConnectError:
                        continue
                    assert reply.code == ResponseCode.SUCCESS
                    info = fastjson.loads(reply.body)
                    names = set(info["brokerAddrTable"])
                assert names == {"broker-a-0", "broker-a-1"}
                addrs = {
                    addr
                    for table in info["brokerAddrTable"].values()
                    for addr in table["brokerAddrs"].values()
                }
                assert addrs == {f"127.0.0.1:{base}", f"127.0.0.1:{base + 10}"}
            brokers.send_signal(signal.SIGTERM)
            await brokers.wait()
    finally:
        for proc in (brokers, namesrv):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert brokers.returncode == 0, log.read_text()
    for name in ("broker-a-0", "broker-a-1"):
        store = tmp_path / "store" / name
        assert (store / "config" / "topics.json").exists(), name
        assert not (store / "abort").exists(), f"{name} did not shut down in order"
