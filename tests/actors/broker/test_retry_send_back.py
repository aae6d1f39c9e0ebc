"""CONSUMER_SEND_MSG_BACK end to end: handler + schedule service + real store, virtual time."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from actors.broker.config import BrokerConfig
from actors.broker.context import BrokerContext
from actors.broker.handlers.send_back import SendBackHandler
from actors.broker.schedule import ScheduleService
from actors.remoting.router import RequestContext, Router
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.message import MessageConst, MessageExt
from storage.delay_offsets import DelayOffsetTable
from storage.subscription_groups import SubscriptionGroupConfig
from tests.actors.broker.delay_harness import StoreHarness, clock_ms


@attrs.define
class _Peer:
    peer: str = "10.0.0.9:5555"


class Broker:
    """The pieces a send-back touches, wired as the broker app wires them."""

    def __init__(self, root: Path, **broker_config: object) -> None:
        self.h = StoreHarness(root)
        config = BrokerConfig(brokerIP1="127.0.0.1", brokerName="broker-a", **broker_config)  # type: ignore[arg-type]
        self.ctx = BrokerContext.create(config, self.h.store.config, self.h.store, now_ms=clock_ms)
        self.router = Router()
        SendBackHandler(self.ctx).register(self.router)
        self.schedule = ScheduleService(
            self.h.store,
            self.h.levels,
            DelayOffsetTable(),
            self.h.config_dir,
            clock_ms,
            on_put=self.h.dispatch,
            idle_poll=3600.0,
        )
        self.h.listeners.append(self.schedule)

    async def send_back(
        self, msg: MessageExt, group: str = "cg", **fields: object
    ) -> RemotingCommand:
        ext = {"offset": str(msg.commit_log_offset), "group": group, "delayLevel": "0"}
        ext.update({k: str(v) for k, v in fields.items()})
        req = RemotingCommand(code=RequestCode.CONSUMER_SEND_MSG_BACK, version=333, ext_fields=ext)
        reply = await self.router.dispatch(RequestContext(_Peer()), req)  # type: ignore[arg-type]
        assert reply is not None
        self.h.dispatch()  # what reput_wake triggers in the broker
        return reply

    def full_form(self, msg: MessageExt, max_times: int) -> dict[str, object]:
        """What the C++ 2.x / Java 4.x clients send (clients README fact 10)."""
        return {
            "originMsgId": msg.properties.get(MessageConst.UNIQ_KEY, ""),
            "originTopic": msg.properties.get(MessageConst.RETRY_TOPIC, msg.topic),
            "maxReconsumeTimes": max_times,
            "unitMode": "0",
        }


async def test_retry_then_dead_letter_after_max_reconsume_times(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    b = Broker(tmp_path)
    b.h.send("T", {MessageConst.TAGS: "TagA", MessageConst.UNIQ_KEY: "U1"}, body=b"work")
    [original] = b.h.read("T")
    current = original
    max_times = 3
    async with trio.open_nursery() as nursery:
        await nursery.start(b.schedule.run)
        for failures in range(1, max_times + 1):
            sent_ms = clock_ms()
            reply = await b.send_back(current, **b.full_form(current, max_times))
            assert reply.code == ResponseCode.SUCCESS, reply.remark
            delay_ms = b.h.levels.delay_ms(2 + failures)  # 10 s, 30 s, 1 min
            await trio.sleep(delay_ms / 1000 - 0.01)
            assert len(b.h.read("%RETRY%cg")) == failures - 1  # not yet
            await trio.sleep(0.02)
            current = b.h.read("%RETRY%cg")[-1]
            assert current.store_timestamp == sent_ms + delay_ms
            assert current.reconsume_times == failures
            assert current.properties[MessageConst.RETRY_TOPIC] == "T"
            assert current.properties[MessageConst.ORIGIN_MESSAGE_ID] == original.msg_id
            assert current.properties[MessageConst.TAGS] == "TagA"
            assert current.body == b"work"
        reply = await b.send_back(current, **b.full_form(current, max_times))
        assert reply.code == ResponseCode.SUCCESS
        nursery.cancel_scope.cancel()
    [dead] = b.h.read("%DLQ%cg")
    assert dead.reconsume_times == max_times + 1
    assert dead.properties[MessageConst.ORIGIN_MESSAGE_ID] == original.msg_id
    assert b.ctx.topics.get("%DLQ%cg") is not None
    assert b.ctx.topics.get("%RETRY%cg") is not None


async def test_short_form_uses_the_groups_retry_max_times(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    b = Broker(tmp_path)
    b.ctx.groups.put(SubscriptionGroupConfig(group_name="cg", retry_max_times=1), clock_ms())
    b.h.send("T", {MessageConst.UNIQ_KEY: "U1"})
    [original] = b.h.read("T")
    async with trio.open_nursery() as nursery:
        await nursery.start(b.schedule.run)
        assert (await b.send_back(original)).code == ResponseCode.SUCCESS  # no originMsgId, no max
        await trio.sleep(11)
        [retry] = b.h.read("%RETRY%cg")
        assert (await b.send_back(retry)).code == ResponseCode.SUCCESS
        nursery.cancel_scope.cancel()
    [dead] = b.h.read("%DLQ%cg")
    assert dead.reconsume_times == 2


async def test_negative_delay_level_goes_straight_to_the_dlq(tmp_path: Path) -> None:
    b = Broker(tmp_path)
    b.h.send("T")
    [original] = b.h.read("T")
    reply = await b.send_back(original, delayLevel=-1)
    assert reply.code == ResponseCode.SUCCESS
    assert [m.reconsume_times for m in b.h.read("%DLQ%cg")] == [1]
    assert b.h.read("%RETRY%cg") == []


async def test_client_chosen_delay_level(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    b = Broker(tmp_path)
    b.h.send("T")
    [original] = b.h.read("T")
    async with trio.open_nursery() as nursery:
        await nursery.start(b.schedule.run)
        await b.send_back(original, delayLevel=1)
        await trio.sleep(1.01)
        nursery.cancel_scope.cancel()
    assert len(b.h.read("%RETRY%cg")) == 1


@pytest.mark.parametrize(
    ("setup", "code", "remark"),
    [
        (
            "unknown-group",
            ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST,
            "subscription group not exist",
        ),
        ("bad-offset", ResponseCode.SYSTEM_ERROR, "look message by offset failed"),
        ("read-only-broker", ResponseCode.NO_PERMISSION, "sending message is forbidden"),
    ],
)
async def test_refusals(tmp_path: Path, setup: str, code: ResponseCode, remark: str) -> None:
    broker_config: dict[str, object] = {}
    if setup == "unknown-group":
        broker_config["autoCreateSubscriptionGroup"] = False
    if setup == "read-only-broker":
        broker_config["brokerPermission"] = 4
    b = Broker(tmp_path, **broker_config)
    b.h.send("T")
    [original] = b.h.read("T")
    if setup == "bad-offset":
        original = attrs.evolve(original, commit_log_offset=original.commit_log_offset + 7)
    reply = await b.send_back(original)
    assert reply.code == code
    assert remark in (reply.remark or "")
    assert b.h.read("%RETRY%cg") == []


async def test_group_without_retry_queues_drops_the_message(tmp_path: Path) -> None:
    b = Broker(tmp_path)
    b.ctx.groups.put(SubscriptionGroupConfig(group_name="cg", retry_queue_nums=0), clock_ms())
    b.h.send("T")
    [original] = b.h.read("T")
    assert (await b.send_back(original)).code == ResponseCode.SUCCESS
    assert b.h.read("SCHEDULE_TOPIC_XXXX", 2) == []
