"""Lite pull consumer against the fake cluster over loopback."""

from __future__ import annotations

import pytest
import trio

from actors.client.errors import ClientError
from actors.client.message import Message, MessageQueue, client_msg_id
from actors.client.producer import Producer
from actors.client.pull_consumer import LitePullConsumer
from protocol.bodies.common import ConsumeFromWhere
from protocol.codes import RequestCode
from tests.actors.client.fake_cluster import start_fake_cluster
from tests.actors.client.test_push_consumer import produce


async def poll_until(consumer: LitePullConsumer, n: int) -> list:
    got: list = []
    while len(got) < n:
        got += await consumer.poll(timeout=1.0)
    return got


async def test_subscribe_and_poll_with_auto_commit(nursery) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    with trio.fail_after(20):
        ids = await produce(ns.addr, "L1", 12)
        async with LitePullConsumer("lg1", namesrv=ns.addr) as consumer:
            await consumer.subscribe("L1")
            got = await poll_until(consumer, 12)
            assert await consumer.poll(timeout=0.2) == []
    assert sorted(client_msg_id(m) for m in got) == sorted(ids)
    committed = sum(o for (g, t, _), o in broker.offsets.items() if g == "lg1" and t == "L1")
    assert committed == 12


async def test_manual_commit_controls_redelivery(nursery) -> None:
    ns, _ = await start_fake_cluster(nursery)
    with trio.fail_after(20):
        await produce(ns.addr, "L2", 6)
        async with LitePullConsumer("lg2", namesrv=ns.addr, auto_commit=False) as consumer:
            await consumer.subscribe("L2")
            first = await poll_until(consumer, 6)
        # Nothing committed: a new consumer of the group gets everything again.
        async with LitePullConsumer("lg2", namesrv=ns.addr, auto_commit=False) as consumer:
            await consumer.subscribe("L2")
            again = await poll_until(consumer, 6)
            await consumer.commit()
        async with LitePullConsumer("lg2", namesrv=ns.addr, auto_commit=False) as consumer:
            await consumer.subscribe("L2")
            assert await consumer.poll(timeout=0.5) == []
    assert sorted(m.queue_offset for m in first) == sorted(m.queue_offset for m in again)


async def test_assign_and_seek(nursery) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    with trio.fail_after(20):
        mq = MessageQueue(topic="L3", broker_name="broker-a", queue_id=0)
        async with Producer("pg", namesrv=ns.addr) as producer:
            for i in range(5):
                await producer.send_to_queue(Message("L3", f"{i}".encode()), mq)
        async with LitePullConsumer(
            "lg3", namesrv=ns.addr, consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET
        ) as consumer:
            await consumer.assign([mq])
            assert consumer.assignment() == {mq}
            got = await poll_until(consumer, 5)
            assert [m.queue_offset for m in got] == [0, 1, 2, 3, 4]
            await consumer.seek(mq, 2)
            got = await poll_until(consumer, 3)
            assert [m.queue_offset for m in got] == [2, 3, 4]
            with pytest.raises(ClientError, match="out of range"):
                await consumer.seek(mq, 99)
    assert RequestCode.PULL_MESSAGE in broker.requests
