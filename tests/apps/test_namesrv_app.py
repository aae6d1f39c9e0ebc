"""apps/namesrv.py as a user runs it: a subprocess started from the repository root."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.frame import FrameDecoder, encode_command
from protocol.properties import parse_properties
from tests.apps.app_process import REPO, TIMEOUT, env_for, run_app

BOOT = re.compile(r"boot success\. serializeType=JSON, listening on [0-9.]+:(\d+)")


def run_cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_app("namesrv", home, *args, **env)


def test_print_config_from_file_and_overrides(tmp_path: Path) -> None:
    conf = tmp_path / "ns.conf"
    conf.write_text("listenPort=19876\norderMessageEnable=true\nlistenprot=1\nclusterTest=true\n")
    done = run_cli(tmp_path, "-c", str(conf), "-p", "--serverChannelMaxIdleTimeSeconds=30")
    assert done.returncode == 0, done.stderr
    props = parse_properties(done.stdout)
    assert props["listenPort"] == "19876"
    assert props["orderMessageEnable"] == "true"
    assert props["serverChannelMaxIdleTimeSeconds"] == "30"
    assert props["kvConfigPath"] == str(tmp_path / "namesrv" / "kvConfig.json")
    assert props["rocketmqHome"] == ""
    assert "unknown config key 'listenprot' ignored (did you mean 'listenPort'?)" in done.stderr
    assert "unknown config key 'clusterTest' ignored" in done.stderr


def test_rocketmq_home_is_honoured(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "-p", ROCKETMQ_HOME="/opt/rmq")
    assert done.returncode == 0, done.stderr
    assert parse_properties(done.stdout)["rocketmqHome"] == "/opt/rmq"


def test_shipped_config_loads_without_warnings(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "-c", "conf/namesrv.conf", "-p")
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr
    assert parse_properties(done.stdout)["listenPort"] == "9876"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-c", "/nonexistent/ns.conf"], "cannot read config file"),
        (["--listenPort=abc", "-p"], "listenPort: expected an integer"),
    ],
)
def test_bad_config_is_one_line_and_exit_1(tmp_path: Path, args: list[str], message: str) -> None:
    done = run_cli(tmp_path, *args)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr


async def _read_boot_port(proc: trio.Process, seen: bytearray) -> int:
    assert proc.stderr is not None
    while (match := BOOT.search(seen.decode(errors="replace"))) is None:
        chunk = await proc.stderr.receive_some(4096)
        assert chunk, f"namesrv exited before booting:\n{seen.decode(errors='replace')}"
        seen += chunk
    return int(match.group(1))


async def _ask(port: int, cmd: RemotingCommand) -> RemotingCommand:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(encode_command(cmd))
        decoder = FrameDecoder()
        while (reply := decoder.next_command()) is None:
            data = await stream.receive_some(65536)
            assert data
            decoder.feed(data)
        return reply


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_serves_then_stops_cleanly_on_signal(tmp_path: Path, signum: int) -> None:
    with trio.fail_after(TIMEOUT):
        proc = await trio.lowlevel.open_process(
            [sys.executable, "apps/namesrv.py", "-c", "conf/namesrv.conf", "--listenPort=0"],
            cwd=REPO,
            env=env_for(tmp_path),
            stderr=subprocess.PIPE,
        )
        seen = bytearray()
        try:
            port = await _read_boot_port(proc, seen)
            put = RemotingCommand.request(
                RequestCode.PUT_KV_CONFIG, {"namespace": "NS", "key": "k", "value": "v"}
            )
            assert (await _ask(port, put)).code == ResponseCode.SUCCESS
            missing = RemotingCommand.request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": "T"})
            assert (await _ask(port, missing)).code == ResponseCode.TOPIC_NOT_EXIST
            proc.send_signal(signum)
            assert proc.stderr is not None
            while chunk := await proc.stderr.receive_some(4096):
                seen += chunk
            assert await proc.wait() == 0, seen.decode(errors="replace")
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    log = seen.decode(errors="replace")
    assert f"received {signal.Signals(signum).name}" in log
    assert "namesrv stopped" in log
    assert (tmp_path / "namesrv" / "kvConfig.json").exists()


async def test_port_in_use_is_exit_1(tmp_path: Path) -> None:
    listeners = await trio.open_tcp_listeners(0, host="0.0.0.0")
    port = listeners[0].socket.getsockname()[1]
    try:
        done = await trio.run_process(
            [sys.executable, "apps/namesrv.py", f"--listenPort={port}"],
            cwd=REPO,
            env=env_for(tmp_path),
            capture_stderr=True,
            check=False,
        )
    finally:
        for listener in listeners:
            await listener.aclose()
    assert done.returncode == 1
    assert b"Address already in use" in done.stderr
    assert b"Traceback" not in done.stderr


def test_damaged_kv_config_refuses_to_start(tmp_path: Path) -> None:
    kv = tmp_path / "kvConfig.json"
    kv.write_text('{"configTable":{"NS":')
    done = run_cli(tmp_path, "--listenPort=0", f"--kvConfigPath={kv}")
    assert done.returncode == 1
    assert "ConfigFileError" in done.stderr
    assert str(kv) in done.stderr
    assert kv.read_text() == '{"configTable":{"NS":'  # left alone for the operator
