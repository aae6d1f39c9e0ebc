"""Broker lifecycle: config preparation, registration and unregistration, silent clients, restart."""

from __future__ import annotations

import functools

import attrs
import pytest
import trio

from actors.broker.app import prepare_configs
from actors.broker.config import BrokerConfig, resolve_defaults
from actors.broker.handlers.client_manage import expire_silent_channels
from actors.broker.registration import (
    register_all,
    register_once,
    register_period,
    register_request,
)
from actors.namesrv.app import namesrv
from actors.namesrv.config import NamesrvConfig
from actors.remoting.client import open_remoting_client
from actors.remoting.router import Router
from actors.remoting.server import remoting_server
from protocol.bodies.topic import decode_register_broker_body
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from storage.config import BrokerRole, MessageStoreConfig
from storage.errors import StoreLockedError
from tests.actors.broker.conftest import start_broker
from tests.actors.broker.wire import heartbeat, send_v2

T = 5


def test_defaults_match_reference():
    config = BrokerConfig()
    assert (config.brokerClusterName, config.brokerId, config.brokerPermission) == (
        "DefaultCluster",
        0,
        6,
    )
    assert (config.defaultTopicQueueNums, config.autoCreateTopicEnable, config.listenPort) == (
        8,
        True,
        10911,
    )
    assert (config.flushConsumerOffsetInterval, config.registerNameServerPeriod) == (5000, 30000)
    resolved = resolve_defaults(config)
    assert resolved.brokerIP1
    assert resolved.brokerIP2 == resolved.brokerIP1
    assert resolved.brokerName


def test_prepare_configs_forces_master_id_and_ha_port(tmp_path):
    config, store = prepare_configs(
        BrokerConfig(brokerIP1="127.0.0.1", brokerId=3, listenPort=0),
        MessageStoreConfig(storePathRootDir=str(tmp_path)),
        "127.0.0.1",
    )
    assert config.brokerId == 0
    assert config.listenPort > 0
    assert store.haListenPort == config.listenPort + 1
    with pytest.raises(ValueError, match="brokerId"):
        prepare_configs(
            BrokerConfig(brokerIP1="127.0.0.1", brokerId=0),
            MessageStoreConfig(storePathRootDir=str(tmp_path), brokerRole=BrokerRole.SLAVE),
            "127.0.0.1",
        )


@pytest.mark.parametrize(("configured", "period"), [(30000, 30), (1000, 10), (600000, 60)])
def test_register_period_is_clamped(configured, period):
    assert register_period(configured) == period


async def test_register_request_carries_every_topic(broker_handle):
    ctx = broker_handle.ctx
    req = register_request(ctx)
    assert req.ext_fields["brokerAddr"] == broker_handle.address
    assert req.ext_fields["haServerAddr"] == f"127.0.0.1:{broker_handle.port + 1}"
    body = decode_register_broker_body(req.body)
    table = body.topic_config_serialize_wrapper.topic_config_table
    assert set(table) == set(ctx.topics.all())
    ctx.config = attrs.evolve(ctx.config, brokerPermission=4)
    readonly = decode_register_broker_body(register_request(ctx).body)
    assert {
        t.perm for t in readonly.topic_config_serialize_wrapper.topic_config_table.values()
    } == {4}


async def test_stop_unregisters_from_the_namesrv(nursery, tmp_path, client, namesrv_addr):
    handle = await start_broker(nursery, tmp_path / "u", namesrv_addr)
    route = RemotingCommand.request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": "TBW102"})
    assert (await client.invoke(namesrv_addr, route, T)).code == ResponseCode.SUCCESS
    handle.stop()
    with trio.fail_after(T):
        await handle.stopped.wait()
    assert (await client.invoke(namesrv_addr, route, T)).code == ResponseCode.TOPIC_NOT_EXIST


async def test_silent_client_channels_are_closed_and_dropped(broker_handle, client):
    ctx = broker_handle.ctx
    await client.invoke(broker_handle.address, heartbeat("c1", "G", ["T"]), T)
    now = ctx.now_ms()
    ctx.now_ms = lambda: now + 121_000
    assert expire_silent_channels(ctx, 120_000) == 1
    assert ctx.consumers.get("G") is None
    assert ctx.producers.channels("G") == []


async def test_restart_keeps_topics_offsets_and_messages(nursery, tmp_path, client):
    first = await start_broker(nursery, tmp_path / "r")
    for i in range(3):
        await client.invoke(first.address, send_v2("Keep", str(i).encode()), T)
    commit = RemotingCommand.request(
        RequestCode.UPDATE_CONSUMER_OFFSET,
        {"consumerGroup": "g", "topic": "Keep", "queueId": "0", "commitOffset": "2"},
    )
    await client.invoke(first.address, commit, T)
    first.stop()
    await first.stopped.wait()
    client.close_channel(first.address)
    second = await start_broker(nursery, tmp_path / "r")
    assert second.ctx.topics.get("Keep").write_queue_nums == 4
    assert second.ctx.offsets.query("g", "Keep", 0) == 2
    assert second.ctx.store.max_offset_in_queue("Keep", 0) == 3


async def test_second_broker_on_the_same_store_is_refused(nursery, tmp_path):
    await start_broker(nursery, tmp_path / "locked")
    with pytest.RaisesGroup(pytest.RaisesExc(StoreLockedError, match="already started")):
        async with trio.open_nursery() as inner:
            await start_broker(inner, tmp_path / "locked")


async def test_order_topic_config_from_the_namesrv(nursery, tmp_path, client):
    ns_config = attrs.evolve(NamesrvConfig.in_dir(tmp_path / "ns2"), orderMessageEnable=True)
    ns_addr = await nursery.start(functools.partial(namesrv, ns_config, host="127.0.0.1"))
    put = RemotingCommand.request(
        RequestCode.PUT_KV_CONFIG,
        {"namespace": "ORDER_TOPIC_CONFIG", "key": "Ordered", "value": "broker-a:4"},
    )
    assert (await client.invoke(ns_addr, put, T)).code == ResponseCode.SUCCESS
    handle = await start_broker(nursery, tmp_path / "o", ns_addr)
    await client.invoke(handle.address, send_v2("Ordered"), T)
    await client.invoke(handle.address, send_v2("Plain"), T)
    await register_all(handle.ctx, client, [ns_addr])
    assert handle.ctx.topics.get("Ordered").order
    assert not handle.ctx.topics.get("Plain").order


async def test_registers_with_every_namesrv_even_if_one_is_down(
    nursery, tmp_path, client, namesrv_addr
):
    second = await nursery.start(
        functools.partial(namesrv, NamesrvConfig.in_dir(tmp_path / "ns3"), host="127.0.0.1")
    )
    dead = "127.0.0.1:1"
    await start_broker(nursery, tmp_path / "m", f"{dead};{namesrv_addr}; {second}")
    route = RemotingCommand.request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": "TBW102"})
    for addr in (namesrv_addr, second):
        assert (await client.invoke(addr, route, T)).code == ResponseCode.SUCCESS


async def test_malformed_registration_reply_is_survived(broker_handle, nursery):
    async def garbage(_ctx, req):
        return req.reply(ResponseCode.SUCCESS, None, {}, b"{not json")

    router = Router("fake-namesrv")
    router.register(RequestCode.REGISTER_BROKER, garbage)
    server = await nursery.start(functools.partial(remoting_server, router, host="127.0.0.1"))
    async with open_remoting_client() as client:
        assert await register_once(broker_handle.ctx, client, server.address)


async def test_a_topic_change_registers_only_the_changed_topics(nursery, tmp_path, client):
    """The first round carries the whole table; a round caused by creating a topic carries
    only that topic (Java's registerIncrementBrokerData): the whole table is O(topics) to
    encode and decode, and with topics being created it was most of the broker's time."""
    bodies: list[set[str]] = []
    arrived = trio.Event()

    async def record(_ctx, req):
        nonlocal arrived
        body = decode_register_broker_body(req.body)
        bodies.append(set(body.topic_config_serialize_wrapper.topic_config_table))
        arrived.set()
        return req.reply(ResponseCode.SUCCESS, None, {})

    router = Router("recording-namesrv")
    router.register(RequestCode.REGISTER_BROKER, record)
    router.register(RequestCode.UNREGISTER_BROKER, record)
    server = await nursery.start(functools.partial(remoting_server, router, host="127.0.0.1"))
    handle = await start_broker(nursery, tmp_path / "inc", server.address)
    assert "TBW102" in bodies[0]
    assert len(bodies[0]) == len(handle.ctx.topics)
    arrived = trio.Event()
    reply = await client.invoke(handle.address, send_v2("Incremental"), T)
    assert reply.code == ResponseCode.SUCCESS, reply.remark
    with trio.fail_after(T):
        await arrived.wait()
    assert bodies[-1] == {"Incremental"}

    # a round asked for with no topic changed (a brokerPermission update), and one after the
    # broker's id changed (a role switch): the name server must see every topic again
    everything = set(handle.ctx.topics.all())
    arrived = trio.Event()
    handle.ctx.topic_changes.value += 1
    with trio.fail_after(T):
        await arrived.wait()
    assert bodies[-1] == everything
    arrived = trio.Event()
    handle.ctx.config = attrs.evolve(handle.ctx.config, brokerId=1)
    handle.ctx.topics.create_if_absent("AfterSwitch", 4, 6, 0, handle.ctx.now_ms())
    handle.ctx.topic_table_changed()
    with trio.fail_after(T):
        await arrived.wait()
    assert bodies[-1] == everything | {"AfterSwitch"}
