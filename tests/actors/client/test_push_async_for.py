"""``async for`` over a PushConsumer made without a listener (issue 18): when a message
counts as consumed, and when it comes again."""

from __future__ import annotations

import pytest
import trio

from actors.client import (
    ClientError,
    ConsumeFromWhere,
    ConsumerSettings,
    ConsumeStatus,
    Message,
    MessageQueue,
    Producer,
    PushConsumer,
)
from tests.actors.client.fake_cluster import FakeBroker, start_fake_cluster


async def produce(ns_addr: str, topic: str, bodies: list[bytes]) -> None:
    async with Producer("af_pg", namesrv=ns_addr) as producer:
        for body in bodies:
            await producer.send(Message(topic, body))


def consumer_of(ns_addr: str, group: str, topic: str, **kw) -> PushConsumer:  # type: ignore[no-untyped-def]
    consumer = PushConsumer(
        group,
        namesrv=ns_addr,
        consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET,
        **kw,
    )
    consumer.subscribe(topic)
    return consumer


def committed(broker: FakeBroker, group: str, topic: str) -> int | None:
    return broker.offsets.get((group, topic, 0))


async def test_a_message_is_consumed_when_the_loop_asks_for_the_next(
    autojump_clock, nursery
) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    broker.ensure_topic("AF1", 1)
    await produce(ns.addr, "AF1", [b"m0", b"m1", b"m2"])
    mq = MessageQueue(topic="AF1", broker_name="broker-a", queue_id=0)
    consumer = consumer_of(ns.addr, "af1", "AF1")
    seen: list[bytes] = []
    local: list[int | None] = []
    with trio.fail_after(60):
        async with consumer:
            async for msg in consumer:
                await trio.sleep(1)  # the body works a while; nothing is committed meanwhile
                local.append(consumer.core.offset_store.table.get(mq))
                seen.append(msg.body)
                if len(seen) == 3:
                    break
            # broke off while holding m2: m0 and m1 are consumed, m2 not yet
            assert consumer.core.offset_store.table.get(mq) == 2
    assert seen == [b"m0", b"m1", b"m2"]
    assert local == [0, 1, 2]  # m0 consumed once the loop asked for m1, ...
    assert committed(broker, "af1", "AF1") == 3  # the block ended normally: m2 consumed too


async def test_reconsume_later_brings_the_message_again(autojump_clock, nursery) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    broker.ensure_topic("AF2", 1)
    await produce(ns.addr, "AF2", [b"ok", b"bad", b"ok2"])
    consumer = consumer_of(ns.addr, "af2", "AF2")
    seen: list[tuple[bytes, int]] = []
    with trio.fail_after(120):
        async with consumer:
            async for msg in consumer:
                seen.append((msg.body, msg.reconsume_times))
                if msg.body == b"bad" and msg.reconsume_times == 0:
                    consumer.reconsume_later()
                if len(seen) == 4:
                    break
    assert sorted(seen) == [(b"bad", 0), (b"bad", 1), (b"ok", 0), (b"ok2", 0)]
    assert [h.origin_topic for h in broker.send_backs] == ["AF2"]
    assert committed(broker, "af2", "AF2") == 3


async def test_an_exception_in_the_body_leaves_the_message_unconsumed(
    autojump_clock, nursery
) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    broker.ensure_topic("AF3", 1)
    await produce(ns.addr, "AF3", [b"m0", b"boom", b"m2"])
    consumer = consumer_of(ns.addr, "af3", "AF3")

    async def consume_until_boom() -> None:
        async with consumer:
            async for msg in consumer:
                if msg.body == b"boom":
                    raise ValueError("handler failed")

    with trio.fail_after(60), pytest.raises(ValueError, match="handler failed"):
        await consume_until_boom()
    # m0 was consumed; "boom" was not: it comes again to the group's next consumer
    assert committed(broker, "af3", "AF3") == 1
    again = consumer_of(ns.addr, "af3", "AF3")
    with trio.fail_after(120):
        async with again:
            async for msg in again:
                if msg.body == b"boom":
                    break
    assert msg.body == b"boom"


async def test_orderly_async_for_keeps_order_and_retries_in_place(autojump_clock, nursery) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    broker.ensure_topic("AF4", 1)
    await produce(ns.addr, "AF4", [b"0", b"1", b"2", b"3"])
    consumer = consumer_of(ns.addr, "af4", "AF4", orderly=True)
    seen: list[bytes] = []
    with trio.fail_after(60):
        async with consumer:
            async for msg in consumer:
                seen.append(msg.body)
                if msg.body == b"1" and seen.count(b"1") == 1:
                    consumer.reconsume_later(suspend_seconds=0.5)
                if msg.body == b"3":
                    break
    assert seen == [b"0", b"1", b"1", b"2", b"3"]
    assert committed(broker, "af4", "AF4") == 4
    assert broker.send_backs == []  # orderly retries stay in the queue


async def test_batches_are_consumed_as_a_whole(autojump_clock, nursery) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    broker.ensure_topic("AF5", 1)
    await produce(ns.addr, "AF5", [b"a", b"b", b"c", b"d"])
    consumer = consumer_of(
        ns.addr, "af5", "AF5", settings=ConsumerSettings(consume_batch_size=4, consume_workers=1)
    )
    seen: list[bytes] = []
    with trio.fail_after(60):
        async with consumer:
            async for msg in consumer:
                seen.append(msg.body)
                if msg.body == b"b" and seen.count(b"b") == 1:
                    consumer.reconsume_later()  # b fails its batch: c and d are not shown now
                if len(set(seen)) == 4:
                    break
    assert seen[:2] == [b"a", b"b"]
    assert sorted(set(seen[2:])) == [b"a", b"b", b"c", b"d"]  # the batch came again
    assert len(broker.send_backs) == 4


async def test_async_for_needs_a_started_consumer_without_listener(autojump_clock, nursery) -> None:
    ns, _ = await start_fake_cluster(nursery)

    async def ok(msgs, ctx):  # type: ignore[no-untyped-def]
        return ConsumeStatus.CONSUME_SUCCESS

    idle = PushConsumer("af6", namesrv=ns.addr)
    with pytest.raises(ClientError, match="not started"):
        aiter(idle)
    async with PushConsumer("af6b", namesrv=ns.addr, listener=ok) as with_listener:
        with pytest.raises(ClientError, match="has a listener"):
            aiter(with_listener)
        with pytest.raises(ClientError, match="async for"):
            with_listener.reconsume_later()
    async with PushConsumer("af6c", namesrv=ns.addr) as bare:
        with pytest.raises(ClientError, match="holds"):
            bare.reconsume_later()  # nothing taken yet


async def test_the_consume_timeout_counts_from_when_the_loop_takes_a_message(
    autojump_clock, nursery
) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    broker.ensure_topic("AF7", 1)
    await produce(ns.addr, "AF7", [b"slow", b"m1", b"m2", b"m3"])
    consumer = consumer_of(ns.addr, "af7", "AF7", settings=ConsumerSettings(consume_timeout=10.0))
    seen: list[tuple[bytes, int]] = []
    with trio.fail_after(300):
        async with consumer:
            async for msg in consumer:
                seen.append((msg.body, msg.reconsume_times))
                # 6 s each: none past 10 s from when the loop took it, though the last
                # arrived 18 s after the first was taken
                await trio.sleep(11 if seen == [(b"slow", 0)] else 6)
                if len(seen) == 5:
                    break
    # only the one body that took 11 s was cut: it came again, the others once
    assert sorted(seen) == [(b"m1", 0), (b"m2", 0), (b"m3", 0), (b"slow", 0), (b"slow", 1)]
    assert len(broker.send_backs) == 1
