"""The pytest11 plugin as a user meets it: pytester runs example user test files in a
subprocess (its own pytest, the installed entry point, real sockets)."""

from __future__ import annotations

import re
import textwrap

import pytest

pytest_plugins = ["pytester"]

ASYNC_USER_TEST = """
import trio

from actors.client.consume_service import ConsumeStatus
from actors.client.message import Message
from actors.client.push_consumer import ConsumeFromWhere


async def test_orders_round_trip(rocketmq_cluster):
    print(f"STARTUP {rocketmq_cluster.startup_seconds:.3f}")
    assert rocketmq_cluster.namesrv_addr.startswith("127.0.0.1:")
    await rocketmq_cluster.create_topic("Orders")
    got = []
    done = trio.Event()

    async def listener(msgs, ctx):
        got.extend(m.body for m in msgs)
        if len(got) >= 3:
            done.set()
        return ConsumeStatus.CONSUME_SUCCESS

    async with rocketmq_cluster.producer("orders-producer") as producer:
        for i in range(3):
            await producer.send(Message("Orders", f"order-{i}".encode()))
    consumer = rocketmq_cluster.push_consumer(
        "orders-consumer",
        listener=listener,
        consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET,
    )
    consumer.subscribe("Orders")
    async with consumer:
        with trio.fail_after(30):
            await done.wait()
    assert sorted(got) == [b"order-0", b"order-1", b"order-2"]


async def test_each_test_gets_its_own_cluster(rocketmq_cluster):
    async with rocketmq_cluster.lite_pull_consumer("g") as consumer:
        await rocketmq_cluster.create_topic("Orders")
        await consumer.subscribe("Orders")
        assert await consumer.poll(timeout=0.5) == []  # nothing left from the other test
"""

SYNC_USER_TEST = """
import socket

import trio

from actors.client.message import Message, SendStatus
from actors.client.producer import Producer


def test_addresses_for_any_client(rocketmq_cluster_sync):
    print(f"STARTUP {rocketmq_cluster_sync.startup_seconds:.3f}")
    host, port = rocketmq_cluster_sync.broker_addr.rsplit(":", 1)
    socket.create_connection((host, int(port)), timeout=5).close()
    rocketmq_cluster_sync.create_topic("Sync")

    async def send():  # any client in any thread: here ours, in its own Trio run
        async with Producer("p", namesrv=rocketmq_cluster_sync.namesrv_addr) as producer:
            return await producer.send(Message("Sync", b"hello"))

    assert trio.run(send).status is SendStatus.SEND_OK
"""


def _startup_times(output: str) -> list[float]:
    return [float(x) for x in re.findall(r"STARTUP (\d+\.\d+)", output)]


def test_async_fixture_with_pytest_trio(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ntrio_mode = true\nfilterwarnings = error\n")
    pytester.makepyfile(test_user=textwrap.dedent(ASYNC_USER_TEST))
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    times = _startup_times(result.stdout.str())
    assert times
    print(f"embedded cluster startup (async fixture): {times} s")


def test_async_fixture_with_the_trio_marker(pytester: pytest.Pytester) -> None:
    # a suite without trio_mode marks its Trio tests instead
    pytester.makepyfile(
        test_user=textwrap.dedent(ASYNC_USER_TEST)
        .replace("\nasync def", "\n@pytest.mark.trio\nasync def")
        .replace("import trio\n", "import pytest\nimport trio\n", 1)
    )
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_sync_fixture_for_a_suite_without_trio(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makepyfile(test_user=textwrap.dedent(SYNC_USER_TEST))
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider", "-p", "no:trio")
    result.assert_outcomes(passed=1)
    times = _startup_times(result.stdout.str())
    assert times
    print(f"embedded cluster startup (sync fixture): {times} s")
