"""Client instance timers (§8.1) under autojump_clock, and small helpers."""

from __future__ import annotations

import pytest
import trio

from actors.client.consume_service import ConsumeStatus
from actors.client.errors import ClientError
from actors.client.instance import parse_namesrv
from actors.client.message import Message
from actors.client.producer import Producer
from actors.client.push_consumer import PushConsumer
from protocol.codes import RequestCode
from tests.actors.client.fake_cluster import start_fake_cluster


def test_parse_namesrv() -> None:
    assert parse_namesrv("a:1; b:2;") == ["a:1", "b:2"]
    assert parse_namesrv(["a:1"]) == ["a:1"]
    with pytest.raises(ClientError):
        parse_namesrv(" ; ")


async def test_heartbeat_and_route_refresh_periods(autojump_clock, nursery) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    async with Producer("pg", namesrv=ns.addr) as producer:
        t0 = trio.current_time()
        await producer.send(Message("I1", b"x"))
        refreshes = ns.route_requests.count("I1")
        await trio.sleep_until(t0 + 1.5)
        assert broker.requests.count(RequestCode.HEART_BEAT) == 1  # first after 1 s
        await trio.sleep_until(t0 + 31.5)
        assert broker.requests.count(RequestCode.HEART_BEAT) == 2  # then every 30 s
        assert ns.route_requests.count("I1") == refreshes + 1  # route refreshed every 30 s
        await trio.sleep_until(t0 + 61.5)
        assert broker.requests.count(RequestCode.HEART_BEAT) == 3
        assert ns.route_requests.count("I1") == refreshes + 2


async def test_offsets_are_persisted_every_5_seconds(autojump_clock, nursery) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    broker.ensure_topic("I2", 1)

    async def ok(msgs, ctx):
        return ConsumeStatus.CONSUME_SUCCESS

    consumer = PushConsumer("ig", namesrv=ns.addr, listener=ok)
    consumer.subscribe("I2")
    async with consumer:
        t0 = trio.current_time()
        await trio.sleep_until(t0 + 9.5)
        assert broker.requests.count(RequestCode.UPDATE_CONSUMER_OFFSET) == 0  # first after 10 s
        await trio.sleep_until(t0 + 10.5)
        first = broker.requests.count(RequestCode.UPDATE_CONSUMER_OFFSET)
        assert first >= 1
        await trio.sleep_until(t0 + 15.5)
        assert broker.requests.count(RequestCode.UPDATE_CONSUMER_OFFSET) == 2 * first
