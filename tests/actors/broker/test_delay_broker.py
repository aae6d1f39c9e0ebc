"""Delayed, timed and retried messages through a whole in-process broker on loopback."""

from __future__ import annotations

import functools
import time

import trio

from actors.broker.app import BrokerHandle, broker
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.message import MessageConst, MessageExt, decode_records
from storage.message_store import GetStatus
from storage.timer_wheel import TimerConfig
from tests.actors.broker.conftest import broker_config, small_store, start_broker
from tests.actors.broker.wire import props, send_v2

T = 5.0


def read(handle: BrokerHandle, topic: str, queue_id: int = 0) -> list[MessageExt]:
    got = handle.ctx.store.get_message("t", topic, queue_id, 0, 32)
    if got.status is not GetStatus.FOUND:
        return []
    return decode_records(b"".join(got.buffers))


async def wait_for(handle: BrokerHandle, topic: str, count: int) -> list[MessageExt]:
    while len(got := read(handle, topic)) < count:  # noqa: ASYNC110 - the store has no event
        await trio.sleep(0.02)
    return got


async def test_delay_timer_and_retry_through_the_broker(nursery, tmp_path, client) -> None:
    handle = await start_broker(nursery, tmp_path / "store")
    with trio.fail_after(10):
        sent_ms = time.time_ns() // 1_000_000
        reply = await client.invoke(
            handle.address, send_v2("D", properties=props(keys="d", DELAY="1")), T
        )
        assert reply.code == ResponseCode.SUCCESS
        reply = await client.invoke(
            handle.address, send_v2("D", properties=props(keys="t", TIMER_DELAY_MS="1500")), T
        )
        assert reply.code == ResponseCode.SUCCESS
        assert read(handle, "D") == []

        [delayed] = await wait_for(handle, "D", 1)
        assert delayed.properties[MessageConst.KEYS] == "d"
        assert delayed.store_timestamp - sent_ms >= 1000
        _, timed = await wait_for(handle, "D", 2)
        assert timed.properties[MessageConst.KEYS] == "t"
        assert timed.store_timestamp - sent_ms >= 1500

        # a consumer fails the delayed message: short form, client-chosen level 1 (1 s)
        back = RemotingCommand.request(
            RequestCode.CONSUMER_SEND_MSG_BACK,
            {"offset": str(delayed.commit_log_offset), "group": "g", "delayLevel": "1"},
        )
        reply = await client.invoke(handle.address, back, T)
        assert reply.code == ResponseCode.SUCCESS, reply.remark
        [retry] = await wait_for(handle, "%RETRY%g", 1)
        assert retry.reconsume_times == 1
        assert retry.properties[MessageConst.RETRY_TOPIC] == "D"
    assert handle.ctx.delivery.schedule.running


async def test_timed_messages_are_refused_when_the_wheel_is_off(nursery, tmp_path, client) -> None:
    handle: BrokerHandle = await nursery.start(
        functools.partial(
            broker,
            broker_config(),
            small_store(tmp_path / "store"),
            host="127.0.0.1",
            timer_config=TimerConfig(timerWheelEnable=False),
        )
    )
    with trio.fail_after(10):
        reply = await client.invoke(
            handle.address, send_v2("D", properties=props(TIMER_DELAY_SEC="5")), T
        )
        assert reply.code == ResponseCode.MESSAGE_ILLEGAL
        assert "not enabled" in (reply.remark or "")
        reply = await client.invoke(handle.address, send_v2("D", properties=props(DELAY="1")), T)
        assert reply.code == ResponseCode.SUCCESS  # delay levels do not need the wheel
    assert handle.ctx.delivery.timer is None
