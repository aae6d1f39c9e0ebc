"""apps/broker.py as a user runs it: a subprocess started from the repository root."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from actors.remoting.client import open_remoting_client
from actors.remoting.errors import RemotingConnectError
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.properties import parse_properties
from tests.apps.app_process import REPO, TIMEOUT, env_for, run_app
from tests.compat.processes import free_port
from tests.store_sizes import SMALL_FILES


def run_cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_app("broker", home, *args, **env)


def test_shipped_conf_prints_with_defaults_under_home(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "-c", "conf/broker.conf", "-p")
    assert done.returncode == 0, done.stderr
    props = parse_properties(done.stdout)
    assert props["brokerName"] == "broker-a"
    assert props["listenPort"] == "10911"
    assert props["flushDiskType"] == "ASYNC_FLUSH"
    assert props["storePathRootDir"] == str(tmp_path / "store")
    assert props["defaultTopicQueueNums"] == "8"
    assert "unknown config key" not in done.stderr


def test_mixed_keys_unknown_keys_and_environment(tmp_path: Path) -> None:
    conf = tmp_path / "b.conf"
    conf.write_text(
        "brokerName=bx\nflushDiskTpye=SYNC_FLUSH\nmapedFileSizeCommitLog=65536\n"
        "deleteWhen=01;13\nfileReservedTime=12\nnamesrvAddr=10.0.0.1:9876\n"
    )
    done = run_cli(
        tmp_path, "-c", str(conf), "-p", "-n", "127.0.0.1:1;127.0.0.1:2", ROCKETMQ_HOME="/opt/rmq"
    )
    assert done.returncode == 0, done.stderr
    props = parse_properties(done.stdout)
    assert props["brokerName"] == "bx"
    assert props["mappedFileSizeCommitLog"] == "65536"
    assert props["deleteWhen"] == "01;13"
    assert props["fileReservedTime"] == "12"
    assert props["namesrvAddr"] == "127.0.0.1:1;127.0.0.1:2"
    assert props["rocketmqHome"] == "/opt/rmq"
    assert (
        "unknown config key 'flushDiskTpye' ignored (did you mean 'flushDiskType'?)" in done.stderr
    )


def test_namesrv_addr_from_environment(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "-p", NAMESRV_ADDR="127.0.0.1:9999")
    assert parse_properties(done.stdout)["namesrvAddr"] == "127.0.0.1:9999"


def test_bad_value_is_one_line_and_exit_1(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "-p", "--listenPort=abc")
    assert done.returncode == 1
    assert "listenPort" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_serves_and_stops_cleanly_on_signal(tmp_path: Path, signum: int) -> None:
    port = free_port()
    argv = [
        sys.executable,
        "apps/broker.py",
        "-c",
        "conf/broker.conf",
        f"--listenPort={port}",
        "--namesrvAddr=",
        "--mappedFileSizeCommitLog=1048576",
        *(f"--{k}={v}" for k, v in SMALL_FILES.items()),
    ]
    log = tmp_path / "broker.log"
    with log.open("wb") as out:
        proc = await trio.lowlevel.open_process(
            argv, cwd=REPO, env=env_for(tmp_path), stdout=out, stderr=out
        )
    try:
        with trio.fail_after(TIMEOUT):
            async with open_remoting_client() as client:
                while True:
                    try:
                        reply = await client.invoke(
                            f"127.0.0.1:{port}",
                            RemotingCommand.request(RequestCode.GET_BROKER_RUNTIME_INFO),
                            2,
                        )
                        break
                    except RemotingConnectError:
                        await trio.sleep(0.05)
            assert reply.code == ResponseCode.SUCCESS
            assert (tmp_path / "store" / "abort").exists()
            proc.send_signal(signum)
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 0, log.read_text()
    assert not (tmp_path / "store" / "abort").exists()
    assert (tmp_path / "store" / "config" / "topics.json").exists()
