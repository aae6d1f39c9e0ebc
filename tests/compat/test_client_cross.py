"""Our client and the real C++-based clients (../shared/clients) through our namesrv + broker.

Messages our producer sends are consumed by the real clients, and messages they send are
consumed by ours: plain, compressed, batched, orderly.  Namesrv and broker run as the
subprocesses a user starts (apps/namesrv.py, apps/broker.py), as in test_battery.py.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from actors.client.consume_service import ConsumeOrderlyStatus, ConsumeStatus
from actors.client.message import Message, client_msg_id
from actors.client.producer import Producer
from actors.client.push_consumer import PushConsumer
from tests.compat.ours import start_ours
from tests.compat.real_clients import CLIENTS, NAMES
from tests.compat.servers import Target

pytestmark = pytest.mark.compat

REPO = Path(__file__).resolve().parents[2]
SCRIPT_TIMEOUT = 90


@pytest.fixture(scope="module")
def ours(real_clients: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    target = start_ours(tmp_path_factory.mktemp("cross"))
    yield target
    target.stop(grace=10.0)


_serial = iter(range(10**6))


def names(kind: str) -> tuple[str, str]:
    n = next(_serial)
    return f"cross_{kind}_{os.getpid()}_{n}", f"g_cross_{kind}_{os.getpid()}_{n}"


async def run_script(script: str, **options: object) -> str:
    """Run one of the real-client scripts; its output, failing the test on a bad exit.

    ``options`` are the script's command line: ``expect_size=256`` is ``--expect-size 256``.
    """
    args = [a for k, v in options.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    argv = [sys.executable, str(CLIENTS / script), *args]
    with trio.fail_after(SCRIPT_TIMEOUT + 10):
        proc = await trio.run_process(
            ["timeout", str(SCRIPT_TIMEOUT), *argv],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, (
        f"{script} {args} exited {proc.returncode}:\n{out[-3000:]}\n{proc.stderr.decode()[-2000:]}"
    )
    return out


def cpp_body(seq: int, size: int, key: str | None = None) -> bytes:
    """The body shape the scripts write and check (cpp_common.make_body)."""
    head = f"k={key};s={seq};" if key is not None else f"s={seq};"
    return (head + "x" * max(0, size - len(head))).encode()


def parse_body(body: bytes) -> dict[str, str]:
    return dict(
        p.split("=", 1) for p in body[:64].decode("ascii", "replace").split(";") if "=" in p
    )


async def consume_with_ours(
    namesrv: str, topic: str, group: str, count: int, *, orderly: bool = False
) -> list:
    got: list = []
    done = trio.Event()

    async def listener(msgs, ctx):
        got.extend(msgs)
        if len({client_msg_id(m) for m in got}) >= count:
            done.set()
        return ConsumeOrderlyStatus.SUCCESS if orderly else ConsumeStatus.CONSUME_SUCCESS

    consumer = PushConsumer(group, namesrv=namesrv, listener=listener, orderly=orderly)
    consumer.subscribe(topic, "*")
    with trio.fail_after(60):
        async with consumer:
            await done.wait()
    return got


@pytest.mark.parametrize("client", NAMES)
async def test_our_producer_their_consumer(ours: Target, client: str) -> None:
    topic, group = names(f"to_{client}")
    async with Producer("pg_cross", namesrv=ours.namesrv_addr) as producer:
        for i in range(20):
            await producer.send(Message(topic, cpp_body(i, 256), tags="TagA", keys=f"k-{i}"))
        await producer.send_batch([Message(topic, cpp_body(20 + i, 256)) for i in range(4)])
    out = await run_script(
        f"{client}_consume.py",
        namesrv=ours.namesrv_addr,
        topic=topic,
        group=group,
        count=24,
        timeout=60,
        expect_size=256,
    )
    assert "unique=24" in out


async def test_our_compressed_bodies_decompress_in_their_consumer(ours: Target) -> None:
    topic, group = names("large")
    async with Producer("pg_cross", namesrv=ours.namesrv_addr) as producer:
        for i in range(3):
            await producer.send(Message(topic, cpp_body(i, 70_000)))
    await run_script(
        "rocketmqcvs_consume.py",
        namesrv=ours.namesrv_addr,
        topic=topic,
        group=group,
        count=3,
        timeout=60,
        expect_size=70000,
    )


@pytest.mark.parametrize(
    ("client", "mode"),
    [
        ("rocketmqcvs", "sync"),
        ("rocketmqcvs", "async"),
        ("rocketmqcvs", "batch"),
        ("official200", "sync"),
    ],
)
async def test_their_producer_our_consumer(ours: Target, client: str, mode: str) -> None:
    topic, group = names(f"from_{client}_{mode}")
    await run_script(
        f"{client}_produce.py",
        namesrv=ours.namesrv_addr,
        topic=topic,
        count=20,
        size=256,
        mode=mode,
    )
    got = await consume_with_ours(ours.namesrv_addr, topic, group, 20)
    assert len({client_msg_id(m) for m in got}) == 20
    assert all(len(m.body) == 256 for m in got)
    assert {int(parse_body(m.body)["s"]) for m in got} == set(range(20))


async def test_our_orderly_producer_their_orderly_consumer(ours: Target) -> None:
    topic, group = names("orderly_to")
    async with Producer("pg_cross", namesrv=ours.namesrv_addr) as producer:
        for i in range(40):
            key = f"key{i % 4}"
            await producer.send_orderly(
                Message(topic, cpp_body(i // 4, 128, key)), sharding_key=key
            )
    out = await run_script(
        "rocketmqcvs_consume_orderly.py",
        namesrv=ours.namesrv_addr,
        topic=topic,
        group=group,
        count=40,
        timeout=60,
    )
    assert "order_errors=0" in out


async def test_their_orderly_producer_our_orderly_consumer(ours: Target) -> None:
    topic, group = names("orderly_from")
    await run_script(
        "official200_produce_orderly.py",
        namesrv=ours.namesrv_addr,
        topic=topic,
        count=40,
    )
    got = await consume_with_ours(ours.namesrv_addr, topic, group, 40, orderly=True)
    last: dict[str, int] = {}
    for m in got:
        fields = parse_body(m.body)
        seq = int(fields["s"])
        assert seq >= last.get(fields["k"], -1), f"order went back for {fields['k']}"
        last[fields["k"]] = seq
    assert len(last) == 4


async def test_quickstart_produce_and_consume(ours: Target) -> None:
    topic, group = names("quickstart")
    base = [sys.executable, "-m", "apps.quickstart"]
    with trio.fail_after(120):
        produced = await trio.run_process(
            [*base, "produce", "-n", ours.namesrv_addr, "-t", topic, "-g", "pg_qs", "--count", "5"],
            capture_stdout=True,
            cwd=REPO,
            check=False,
        )
        assert produced.returncode == 0
        lines = produced.stdout.decode().splitlines()
        assert len([line for line in lines if "sendStatus=SEND_OK" in line]) == 5
        consumed = await trio.run_process(
            [
                *base,
                "consume",
                "-n",
                ours.namesrv_addr,
                "-t",
                topic,
                "-g",
                group,
                "--count",
                "5",
                "--timeout",
                "60",
            ],
            capture_stdout=True,
            cwd=REPO,
            check=False,
        )
    assert consumed.returncode == 0
    assert consumed.stdout.decode().count("Receive New Messages") >= 5
