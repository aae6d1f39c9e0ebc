"""One lifecycle for every client kind (issue 18): configure, ``async with``, then subscribe
(or subscribe first, as before); a failed subscription reaches the caller; ``async for``."""

from __future__ import annotations

import pytest
import trio

from actors.broker.app import pick_free_port
from actors.client import (
    BrokerError,
    ClientError,
    ConsumeFromWhere,
    ConsumeStatus,
    InvalidSubscriptionError,
    LitePullConsumer,
    Message,
    Producer,
    PushConsumer,
)
from protocol.codes import ResponseCode
from tests.actors.client.fake_cluster import start_fake_cluster


async def produce(namesrv: str, topic: str, n: int) -> None:
    async with Producer("lc_pg", namesrv=namesrv) as producer:
        for i in range(n):
            await producer.send(Message(topic, f"{i}".encode()))


@pytest.mark.parametrize("subscribe_first", [False, True])
async def test_push_consumer_subscribes_inside_async_with(
    real_namesrv, real_broker, subscribe_first
) -> None:
    topic = f"LC_PUSH_{int(subscribe_first)}"
    await produce(real_namesrv, topic, 5)
    got: list[bytes] = []
    done = trio.Event()

    async def listener(msgs, ctx):
        got.extend(m.body for m in msgs)
        if len(got) >= 5:
            done.set()
        return ConsumeStatus.CONSUME_SUCCESS

    consumer = PushConsumer(
        f"lc_push_{int(subscribe_first)}",
        namesrv=real_namesrv,
        listener=listener,
        consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET,
    )
    with trio.fail_after(30):
        if subscribe_first:
            consumer.subscribe(topic)
        async with consumer:
            if not subscribe_first:
                await consumer.subscribe(topic)
            await done.wait()
    assert sorted(got) == [f"{i}".encode() for i in range(5)]


@pytest.mark.parametrize("subscribe_first", [False, True])
async def test_lite_pull_consumer_both_orders_and_async_for(
    real_namesrv, real_broker, subscribe_first
) -> None:
    topic = f"LC_LITE_{int(subscribe_first)}"
    await produce(real_namesrv, topic, 5)
    consumer = LitePullConsumer(
        f"lc_lite_{int(subscribe_first)}",
        namesrv=real_namesrv,
        consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET,
    )
    got: list[bytes] = []
    with trio.fail_after(30):
        if subscribe_first:
            consumer.subscribe(topic)
        async with consumer:
            if not subscribe_first:
                await consumer.subscribe(topic)
            async for msg in consumer:
                got.append(msg.body)
                if len(got) == 5:
                    break
    assert sorted(got) == [f"{i}".encode() for i in range(5)]


async def test_a_failed_subscription_reaches_the_caller() -> None:
    nobody = f"127.0.0.1:{pick_free_port('127.0.0.1')}"  # no name server there

    async def listener(msgs, ctx):
        return ConsumeStatus.CONSUME_SUCCESS

    with trio.fail_after(30):
        async with PushConsumer("lc_err", namesrv=nobody, listener=listener) as consumer:
            with pytest.raises(ClientError):
                await consumer.subscribe("LC_ERR")
        async with LitePullConsumer("lc_err2", namesrv=nobody) as lite:
            with pytest.raises(ClientError):
                await lite.subscribe("LC_ERR")


async def test_a_broker_refusing_the_heartbeat_reaches_the_awaited_subscription(
    autojump_clock, nursery
) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    broker.ensure_topic("LC_REFUSED")
    broker.refuse_heartbeats = ResponseCode.NO_PERMISSION

    async def listener(msgs, ctx):
        return ConsumeStatus.CONSUME_SUCCESS

    async with PushConsumer("lc_refused", namesrv=ns.addr, listener=listener) as consumer:
        with pytest.raises(BrokerError) as info:
            await consumer.subscribe("LC_REFUSED")
        assert info.value.code == ResponseCode.NO_PERMISSION
        with pytest.raises(BrokerError):
            await consumer.unsubscribe("LC_REFUSED")
        consumer.subscribe("LC_REFUSED")  # not awaited: only logged, the consumer carries on
        await trio.sleep(1)
        broker.refuse_heartbeats = None
        await consumer.subscribe("LC_REFUSED")  # and once the broker accepts, it works
    async with LitePullConsumer("lc_refused2", namesrv=ns.addr) as lite:
        broker.refuse_heartbeats = ResponseCode.NO_PERMISSION
        with pytest.raises(BrokerError):
            await lite.subscribe("LC_REFUSED")


@pytest.mark.parametrize("kind", [PushConsumer, LitePullConsumer])
async def test_a_bad_expression_raises_at_subscribe_before_or_after_start(
    autojump_clock, nursery, kind
) -> None:
    ns, _ = await start_fake_cluster(nursery)
    consumer = kind("lc_expr", namesrv=ns.addr)
    with pytest.raises(InvalidSubscriptionError):
        consumer.subscribe("LC_EXPR", "||")
    async with consumer:  # nothing of the refused subscription was kept
        with pytest.raises(InvalidSubscriptionError):
            consumer.subscribe("LC_EXPR", " || ")
        assert consumer.core.subscriptions == {}
