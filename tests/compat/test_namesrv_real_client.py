"""Real C++-based RocketMQ clients (../shared/clients) against our name server subprocess.

A producer asking for a topic nobody serves must fail at once with "No route info", not hang
until its timeout; and a producer given a route must parse our route data (quoted broker ids,
clients README fact 14) and go to the broker it names.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from actors.remoting.client import RemotingClient, open_remoting_client
from protocol.bodies.common import DataVersion
from protocol.bodies.topic import (
    RegisterBrokerBody,
    TopicConfig,
    TopicConfigSerializeWrapper,
    body_crc32,
    encode_register_broker_body,
)
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import encode_header
from protocol.frame import FrameDecoder
from protocol.headers.namesrv import RegisterBrokerRequestHeader
from tests.compat.jvm import Jvm
from tests.compat.real_clients import NAMES as CLIENT_NAMES

pytestmark = pytest.mark.compat

REPO = Path(__file__).resolve().parents[2]
BOOT = re.compile(r"boot success\. serializeType=JSON, listening on [0-9.]+:(\d+)")


@pytest.fixture
def namesrv_port(tmp_path: Path) -> Iterator[int]:
    """Our name server as a subprocess on a port the OS picks; stopped by its pid."""
    err = (tmp_path / "namesrv.log").open("w+b")
    proc = subprocess.Popen(
        [
            sys.executable,
            "apps/namesrv.py",
            "--listenPort=0",
            f"--kvConfigPath={tmp_path / 'kvConfig.json'}",
            f"--configStorePath={tmp_path / 'namesrv.properties'}",
        ],
        cwd=REPO,
        stderr=err,
    )
    try:
        deadline = time.monotonic() + 15
        while (match := BOOT.search((tmp_path / "namesrv.log").read_text())) is None:
            assert proc.poll() is None, (tmp_path / "namesrv.log").read_text()
            assert time.monotonic() < deadline, "namesrv did not boot within 15 s"
            time.sleep(0.05)
        yield int(match.group(1))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err.close()


def produce_one(clients: Path, client: str, namesrv: str, topic: str) -> list[str]:
    """The command line of one real client sending one message to ``topic``."""
    script = clients / f"{client}_produce.py"
    return [sys.executable, str(script), "--namesrv", namesrv, "--topic", topic, "--count", "1"]


async def register_fake_broker(
    registrar: RemotingClient,
    namesrv: str,
    *,
    topic: str,
    cluster: str,
    broker_name: str,
    broker_addr: str,
    ha_server_addr: str,
) -> None:
    """Register a broker that serves ``topic`` with 4 queues, as a broker's REGISTER_BROKER does.

    The registration's connection must stay open: closing it unregisters the broker.
    """
    body = encode_register_broker_body(
        RegisterBrokerBody(
            topic_config_serialize_wrapper=TopicConfigSerializeWrapper(
                topic_config_table={
                    topic: TopicConfig(topic_name=topic, read_queue_nums=4, write_queue_nums=4)
                },
                data_version=DataVersion(timestamp=1700000000000, counter=1),
            )
        )
    )
    header = RegisterBrokerRequestHeader(
        broker_name=broker_name,
        broker_addr=broker_addr,
        cluster_name=cluster,
        ha_server_addr=ha_server_addr,
        broker_id=0,
        body_crc32=body_crc32(body),
    )
    reply = await registrar.invoke(
        namesrv,
        RemotingCommand.request(RequestCode.REGISTER_BROKER, encode_header(header), body),
        5.0,
    )
    assert reply.code == ResponseCode.SUCCESS, reply.remark


@pytest.mark.parametrize("client", CLIENT_NAMES)
def test_missing_route_fails_fast(real_clients: Path, namesrv_port: int, client: str) -> None:
    namesrv = f"127.0.0.1:{namesrv_port}"
    started = time.monotonic()
    done = subprocess.run(
        ["timeout", "60", *produce_one(real_clients, client, namesrv, "NoSuchTopic")],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 1, output  # 124 would be the outer timeout: a hang
    assert "No route info of this topic: NoSuchTopic" in output
    assert elapsed < 10, f"took {elapsed:.1f} s: {output}"


async def _fake_broker(
    seen: list[RemotingCommand],
    got_send: trio.Event,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """A listener that records the frames sent to it and never answers."""

    async def handle(stream: trio.SocketStream) -> None:
        decoder = FrameDecoder()
        async with stream:
            while data := await stream.receive_some(65536):
                decoder.feed(data)
                seen.extend(decoder.commands())
                if any(c.code == RequestCode.SEND_MESSAGE_V2 for c in seen):
                    got_send.set()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handle, listeners)
        task_status.started(listeners[0].socket.getsockname()[1])


@pytest.fixture
async def client_proc() -> AsyncIterator[list[trio.Process]]:
    procs: list[trio.Process] = []
    yield procs
    for proc in procs:  # only the processes this test started
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize("client", CLIENT_NAMES)
async def test_client_follows_our_route_to_the_broker(
    real_clients: Path,
    namesrv_port: int,
    nursery: trio.Nursery,
    client_proc: list[trio.Process],
    client: str,
) -> None:
    seen: list[RemotingCommand] = []
    got_send = trio.Event()
    broker_port = await nursery.start(_fake_broker, seen, got_send)
    broker_addr = f"127.0.0.1:{broker_port}"
    namesrv = f"127.0.0.1:{namesrv_port}"
    with trio.fail_after(30):
        async with open_remoting_client(name="fake-broker") as registrar:
            await register_fake_broker(
                registrar,
                namesrv,
                topic="RoutedTopic",
                cluster="DefaultCluster",
                broker_name="broker-fake",
                broker_addr=broker_addr,
                ha_server_addr="127.0.0.1:1",
            )
            proc = await trio.lowlevel.open_process(
                produce_one(real_clients, client, namesrv, "RoutedTopic"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "RMQ_CLIENT_LOG_LEVEL": "error"},
            )
            client_proc.append(proc)
            await got_send.wait()
    send = next(c for c in seen if c.code == RequestCode.SEND_MESSAGE_V2)
    assert send.ext_fields["b"] == "RoutedTopic"
    assert int(send.ext_fields["e"]) in range(4)


async def _mqadmin(jvm: Jvm, work_dir: Path, *args: str) -> str:
    """One mqadmin command (Apache's 4.9.8 tools) in its own JVM; stdout and stderr."""
    await trio.Path(work_dir).mkdir(parents=True)
    cmd = jvm.command(
        "org.apache.rocketmq.tools.command.MQAdminStartup",
        args,
        server=False,
        work_dir=work_dir,
        heap="128m",
        extra_flags=("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"),
    )
    done = await trio.run_process(
        cmd, env=jvm.env(), cwd=work_dir, capture_stdout=True, capture_stderr=True, check=False
    )
    return (done.stdout + done.stderr).decode(errors="replace")


async def test_java_mqadmin_namesrv_commands(jvm: Jvm, namesrv_port: int, tmp_path: Path) -> None:
    """The name server commands of the real Java admin tool, end to end."""
    namesrv = f"127.0.0.1:{namesrv_port}"
    ns = ("-n", namesrv)
    work = tmp_path / "mqadmin"
    with trio.fail_after(180):
        async with open_remoting_client(name="fake-broker") as registrar:
            await register_fake_broker(
                registrar,
                namesrv,
                topic="AdminTopic",
                cluster="AdminCluster",
                broker_name="broker-x",
                broker_addr="127.0.0.1:1",
                ha_server_addr="127.0.0.1:2",
            )

            # Independent commands in parallel JVMs: JVM start-up dominates their cost.
            outs: dict[str, str] = {}

            async def admin(name: str, *args: str) -> None:
                outs[name] = await _mqadmin(jvm, work / name, *args, *ns)

            async with trio.open_nursery() as jvms:
                jvms.start_soon(admin, "route", "topicRoute", "-t", "AdminTopic")
                jvms.start_soon(admin, "no-route", "topicRoute", "-t", "NoSuchTopic")
                jvms.start_soon(admin, "wipe", "wipeWritePerm", "-b", "broker-x")
                jvms.start_soon(admin, "kv", "updateKvConfig", "-s", "NS", "-k", "k", "-v", "v")
                jvms.start_soon(
                    admin, "update", "updateNamesrvConfig", "-k", "orderMessageEnable", "-v", "true"
                )
            assert '"brokerName":"broker-x"' in outs["route"], outs["route"]
            assert '"127.0.0.1:1"' in outs["route"], outs["route"]
            assert "CODE: 17" in outs["no-route"], outs["no-route"]
            assert f"in name server[{namesrv}] OK, 1" in outs["wipe"], outs["wipe"]
            assert "success" in outs["kv"], outs["kv"]
            assert "update name server config success" in outs["update"], outs["update"]
            out = await _mqadmin(jvm, work / "get", "getNamesrvConfig", *ns)
        assert re.search(r"orderMessageEnable\s+=\s+true", out), out
