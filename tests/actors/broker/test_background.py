"""The broker's background actors under virtual time: config persister, client housekeeping."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import trio
import trio.testing

from actors.broker.clients import ClientChannelInfo
from actors.broker.context import BrokerContext
from actors.broker.housekeeping import SCAN_INTERVAL, client_housekeeping
from actors.broker.persist import config_persister
from protocol import fastjson
from storage.consumer_offsets import ConsumerOffsetTable
from storage.delay_offsets import DelayOffsetTable
from storage.message_store import MessageStore
from storage.subscription_groups import SubscriptionGroupTable
from storage.topic_config import TopicConfigTable
from tests.actors.broker.conftest import broker_config, small_store


def virtual_ms() -> int:
    return int(trio.current_time() * 1000)


async def inline(fn: Callable[..., Any], *args: Any) -> Any:
    # in the event loop: virtual time cannot pass while a file is half written
    return fn(*args)


def context(tmp_path) -> BrokerContext:
    store_config = small_store(tmp_path)
    return BrokerContext(
        broker_config(),
        store_config,
        # never loaded: the actors here only ask it how far the commit log goes
        MessageStore(store_config, store_host="127.0.0.1:10911"),
        TopicConfigTable(),
        SubscriptionGroupTable(),
        ConsumerOffsetTable(),
        DelayOffsetTable(),
        now_ms=virtual_ms,
    )


async def test_offsets_every_5_s_topics_at_once_all_on_exit(tmp_path, autojump_clock):
    ctx = context(tmp_path)
    offsets_file = tmp_path / "config" / "consumerOffset.json"
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(config_persister, ctx, offload=inline))
        ctx.offsets.commit("g", "T", 0, 5)
        await trio.sleep(4.9)
        assert not offsets_file.exists()
        await trio.sleep(0.2)
        assert fastjson.loads(offsets_file.read_text()) == {"offsetTable": {"T@g": {0: 5}}}
        ctx.topics.create_if_absent("New", 1, 6, 0, virtual_ms())
        ctx.topic_table_changed()
        # journaled at once (fsynced; what a request that created it waits for) ...
        with trio.fail_after(1):
            await ctx.config_durable.wait_for(ctx.config_version)
        journal = tmp_path / "config" / "configChanges.journal"
        assert b'"n":"New"' in journal.read_bytes()
        # ... and folded into topics.json on the next round
        await trio.sleep(5.1)
        assert "New" in (tmp_path / "config" / "topics.json").read_text()
        assert not journal.exists()
        ctx.offsets.commit("g", "T", 0, 9)
        nursery.cancel_scope.cancel()
    assert fastjson.loads(offsets_file.read_text()) == {"offsetTable": {"T@g": {0: 9}}}
    assert (tmp_path / "config" / "delayOffset.json").exists()


class FakeChannel:
    peer = "127.0.0.1:1"

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


async def test_silent_clients_dropped_within_one_scan_after_120_s(tmp_path, autojump_clock):
    ctx = context(tmp_path)
    silent, chatty = FakeChannel(), FakeChannel()
    for channel, name in ((silent, "silent"), (chatty, "chatty")):
        ctx.producers.register("pg", ClientChannelInfo(channel, name, "JAVA", 409, virtual_ms()))
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(client_housekeeping, ctx))
        for _ in range(12):  # chatty heartbeats every 10 s, silent never again
            await trio.sleep(10)
            ctx.producers.register(
                "pg", ClientChannelInfo(chatty, "chatty", "JAVA", 409, virtual_ms())
            )
        assert not silent.closed
        await trio.sleep(SCAN_INTERVAL + 0.1)
        assert silent.closed
        assert not chatty.closed
        assert [info.client_id for info in ctx.producers.channels("pg")] == ["chatty"]
        nursery.cancel_scope.cancel()
