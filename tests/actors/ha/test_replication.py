"""A master and a slave broker on loopback: the slave mirrors the master's commit log byte for
byte, builds its own queues, serves reads; SYNC_MASTER sends wait for a slave's ack (§6.5)."""

from __future__ import annotations

import functools
import socket

import attrs
import pytest
import trio

from actors.broker.app import broker
from protocol.codes import SWITCH_BROKER_ROLE, RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.ha import encode_report
from storage.config import BrokerRole
from tests.actors.broker.conftest import broker_config, small_store, start_broker
from tests.actors.broker.wire import pull, send_v2

TOPIC = "TopicHA"


def log_bytes(store) -> bytes:
    out, offset = b"", store.min_phy_offset
    while offset < store.max_phy_offset:
        chunk = store.read_replication(offset, 1 << 20)
        assert chunk
        out, offset = out + chunk, offset + len(chunk)
    return out


async def until(condition, limit: float = 60, step: float = 0.05) -> None:
    """Poll ``condition`` (virtual time): the stores and HA state announce nothing to tests."""
    with trio.fail_after(limit):
        while not condition():  # noqa: ASYNC110 - see the docstring
            await trio.sleep(step)


async def caught_up(slave, master, limit: float = 60) -> None:
    await until(lambda: slave.ctx.store.max_phy_offset == master.ctx.store.max_phy_offset, limit)
    await until(lambda: not slave.ctx.store.dispatch_behind_bytes(), limit)


async def start_pair(nursery, tmp_path, namesrv_addr, *, role="ASYNC_MASTER", slave_read=False):
    master = await start_broker(
        nursery, tmp_path / "m", namesrv_addr, store={"brokerRole": BrokerRole[role]}
    )
    slave = await start_broker(
        nursery,
        tmp_path / "s",
        namesrv_addr,
        brokerId=1,
        slaveReadEnable=slave_read,
        store={"brokerRole": BrokerRole.SLAVE},
    )
    return master, slave


async def send(client, broker, n: int, body: bytes = b"m") -> list[RemotingCommand]:
    return [
        await client.invoke(broker.address, send_v2(TOPIC, body + b"%d" % i, queue_id=i % 2), 10)
        for i in range(n)
    ]


async def test_slave_mirrors_master_and_serves_reads(
    nursery, tmp_path, namesrv_addr, client, ha_clock
):
    master, slave = await start_pair(nursery, tmp_path, namesrv_addr, slave_read=True)
    replies = await send(client, master, 40)
    assert {r.code for r in replies} == {ResponseCode.SUCCESS}
    await caught_up(slave, master)
    assert log_bytes(slave.ctx.store) == log_bytes(master.ctx.store)
    assert slave.ctx.store.max_offset_in_queue(TOPIC, 1) == 20
    await until(lambda: TOPIC in slave.ctx.topics)  # the metadata sync, every 10 s
    got = await client.invoke(slave.address, pull(TOPIC, queue_id=1, suspend_ms=0), 5)
    assert got.code == ResponseCode.SUCCESS, got.remark
    # the slave refuses writes as Apache does
    refused = await client.invoke(slave.address, send_v2(TOPIC, b"x"), 5)
    assert refused.code == ResponseCode.SERVICE_NOT_AVAILABLE
    assert slave.ctx.store.max_phy_offset == master.ctx.store.max_phy_offset
    # more data after the first catch-up streams on
    await send(client, master, 10, b"later")
    await caught_up(slave, master)
    assert log_bytes(slave.ctx.store) == log_bytes(master.ctx.store)
    assert master.ctx.replication.acked.current == master.ctx.store.max_phy_offset


async def test_slave_reconnects_after_the_master_restarts(
    nursery, tmp_path, namesrv_addr, client, ha_clock
):
    master, slave = await start_pair(nursery, tmp_path, namesrv_addr)
    await send(client, master, 5)
    await caught_up(slave, master)
    port = master.ctx.config.listenPort
    master.stop()
    await master.stopped.wait()
    master = await nursery.start(
        functools.partial(
            broker,
            attrs.evolve(broker_config(namesrv_addr), listenPort=port),
            small_store(tmp_path / "m"),
            host="127.0.0.1",
        )
    )
    await send(client, master, 5, b"again")
    await caught_up(slave, master)
    assert log_bytes(slave.ctx.store) == log_bytes(master.ctx.store)


async def test_sync_master_answers_only_once_a_slave_acked(
    nursery, tmp_path, namesrv_addr, client, ha_clock
):
    master = await start_broker(
        nursery, tmp_path / "m", namesrv_addr, store={"brokerRole": BrokerRole.SYNC_MASTER}
    )
    (alone,) = await send(client, master, 1)
    assert alone.code == ResponseCode.SLAVE_NOT_AVAILABLE  # stored, but no slave has it
    slave = await start_broker(
        nursery, tmp_path / "s", namesrv_addr, brokerId=1, store={"brokerRole": BrokerRole.SLAVE}
    )
    await until(lambda: master.ctx.replication.slaves, 30)
    for reply in await send(client, master, 5):
        assert reply.code == ResponseCode.SUCCESS, reply.remark
        # answered only after the slave acknowledged it
        end = int(reply.ext_fields["queueOffset"])
        assert end >= 0
        assert slave.ctx.store.max_phy_offset >= master.ctx.replication.acked.current
    assert master.ctx.replication.acked.current == master.ctx.store.max_phy_offset


async def test_sync_master_slave_timeout_does_not_stall_the_connection(
    nursery, tmp_path, namesrv_addr, client, ha_clock
):
    master = await start_broker(
        nursery, tmp_path / "m", namesrv_addr, store={"brokerRole": BrokerRole.SYNC_MASTER}
    )
    # a slave that reports once and then never acknowledges anything
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    await sock.connect(("127.0.0.1", master.ctx.store_config.haListenPort))
    await sock.send(encode_report(master.ctx.store.max_phy_offset))
    await until(lambda: master.ctx.replication.slaves, 5)
    answers: dict[str, float] = {}

    async def one_send() -> None:
        reply = await client.invoke(master.address, send_v2(TOPIC, b"waits"), 30)
        answers["send"] = trio.current_time()
        assert reply.code == ResponseCode.FLUSH_SLAVE_TIMEOUT

    start = trio.current_time()
    async with trio.open_nursery() as inner:
        inner.start_soon(one_send)
        await trio.sleep(0.5)
        config = await client.invoke(
            master.address, RemotingCommand.request(RequestCode.GET_ALL_TOPIC_CONFIG, {}), 5
        )
        answers["config"] = trio.current_time()
        assert config.code == ResponseCode.SUCCESS
    assert answers["config"] - start < 1  # not behind the waiting send
    assert answers["send"] - start >= master.ctx.store_config.slaveTimeout / 1000
    sock.close()


async def test_metadata_sync_copies_topics_and_offsets(
    nursery, tmp_path, namesrv_addr, client, ha_clock
):
    master, slave = await start_pair(nursery, tmp_path, namesrv_addr)
    created = await client.invoke(
        master.address,
        RemotingCommand.request(
            RequestCode.UPDATE_AND_CREATE_TOPIC,
            {"topic": "Synced", "defaultTopic": "TBW102", "readQueueNums": "3",
             "writeQueueNums": "3", "perm": "6", "topicFilterType": "SINGLE_TAG"},
        ),
        5,
    )  # fmt: skip
    assert created.code == ResponseCode.SUCCESS, created.remark
    master.ctx.offsets.commit("cg", "Synced", 2, 17)
    master.ctx.delay_offsets.update(3, 9)
    # rounds every 10 s: a few at most
    await until(lambda: slave.ctx.delay_offsets.get(3) == 9 and "Synced" in slave.ctx.topics)
    assert slave.ctx.topics.get("Synced").read_queue_nums == 3
    assert slave.ctx.offsets.query("cg", "Synced", 2) == 17
    assert slave.ctx.delay_offsets.get(3) == 9
    assert slave.ctx.topics.data_version == master.ctx.topics.data_version


@pytest.mark.parametrize("flaps", [3])
async def test_role_flapping_with_traffic(nursery, tmp_path, namesrv_addr, client, ha_clock, flaps):
    broker = await start_broker(nursery, tmp_path / "b", namesrv_addr)
    await send(client, broker, 1)  # the topic exists before the pulls begin
    store = broker.ctx.store
    hooks = len(store._append_hooks)
    unanswered = 0
    codes: list[int] = []
    slave_spans: list[tuple[int, int]] = []

    async def sender() -> None:
        nonlocal unanswered
        for i in range(150):
            unanswered += 1
            reply = await client.invoke(broker.address, send_v2(TOPIC, b"f%d" % i), 10)
            unanswered -= 1
            codes.append(reply.code)
            await trio.sleep(0.02)

    async def puller() -> None:
        for _ in range(40):
            reply = await client.invoke(broker.address, pull(TOPIC, suspend_ms=0), 10)
            assert reply.code in (
                ResponseCode.SUCCESS, ResponseCode.PULL_NOT_FOUND,
                ResponseCode.PULL_RETRY_IMMEDIATELY, ResponseCode.PULL_OFFSET_MOVED,
            )  # fmt: skip
            await trio.sleep(0.08)

    async def switch(role: str, **extra: str) -> RemotingCommand:
        return await client.invoke(
            broker.address,
            RemotingCommand.request(SWITCH_BROKER_ROLE, {"brokerRole": role, **extra}),
            5,
        )

    async with trio.open_nursery() as traffic:
        traffic.start_soon(sender)
        traffic.start_soon(puller)
        for _ in range(flaps):
            await trio.sleep(0.3)
            reply = await switch("SLAVE", brokerId="1")
            assert reply.code == ResponseCode.SUCCESS, reply.remark
            before = store.max_phy_offset
            await trio.sleep(0.4)
            slave_spans.append((before, store.max_phy_offset))
            assert broker.ctx.config.brokerId == 1
            reply = await switch("ASYNC_MASTER")
            assert reply.code == ResponseCode.SUCCESS, reply.remark
            assert broker.ctx.config.brokerId == 0
    assert unanswered == 0
    assert all(before == after for before, after in slave_spans)  # no write while SLAVE
    assert ResponseCode.SERVICE_NOT_AVAILABLE in codes
    assert ResponseCode.SUCCESS in codes
    assert len(store._append_hooks) == hooks  # every HA server term removed its hook
    bad = await switch("BOSS")
    assert bad.code == ResponseCode.SYSTEM_ERROR


async def test_promote_slave_then_demoted_master_follows_it(
    nursery, tmp_path, namesrv_addr, client, ha_clock
):
    master, slave = await start_pair(nursery, tmp_path, namesrv_addr)
    await send(client, master, 20)
    await caught_up(slave, master)

    async def switch(broker, role: str, **extra: str) -> RemotingCommand:
        reply = await client.invoke(
            broker.address,
            RemotingCommand.request(SWITCH_BROKER_ROLE, {"brokerRole": role, **extra}),
            5,
        )
        assert reply.code == ResponseCode.SUCCESS, reply.remark
        return reply

    promoted = await switch(slave, "ASYNC_MASTER")
    at = int(promoted.ext_fields["maxPhyOffset"])
    assert at == master.ctx.store.max_phy_offset
    await send(client, master, 5, b"lost-on-the-old-master")  # nobody will have these
    await send(client, slave, 3, b"new")
    await switch(master, "SLAVE", brokerId="1", truncateTo=str(at))
    # the old master learns its new master from the name server's registration reply
    await caught_up(master, slave)
    assert log_bytes(master.ctx.store) == log_bytes(slave.ctx.store)
    assert master.ctx.store.max_offset_in_queue(TOPIC, 0) == slave.ctx.store.max_offset_in_queue(
        TOPIC, 0
    )


async def test_demoted_master_drops_a_tail_the_new_master_lacks(
    nursery, tmp_path, namesrv_addr, client, ha_clock
):
    master, slave = await start_pair(nursery, tmp_path, namesrv_addr)
    await send(client, master, 10)
    await caught_up(slave, master)

    async def switch(broker, role: str, **extra: str) -> None:
        reply = await client.invoke(
            broker.address,
            RemotingCommand.request(SWITCH_BROKER_ROLE, {"brokerRole": role, **extra}),
            5,
        )
        assert reply.code == ResponseCode.SUCCESS, reply.remark

    await switch(slave, "ASYNC_MASTER")
    await send(client, master, 5, b"acknowledged-by-nobody")
    assert master.ctx.store.max_phy_offset > slave.ctx.store.max_phy_offset
    await switch(master, "SLAVE", brokerId="1")  # no truncateTo: the new master's end decides
    await caught_up(master, slave)
    assert log_bytes(master.ctx.store) == log_bytes(slave.ctx.store)
    assert master.ctx.store.max_offset_in_queue(TOPIC, 0) == 5
    assert not master.ctx.demoted


async def test_ha_server_listens_on_the_bind_address_only(
    nursery, tmp_path, namesrv_addr, ha_clock
):
    """bindAddress 127.0.0.1 (start_broker's host): the HA port, which streams the whole
    commit log, is not offered on another address (127.0.0.2 is loopback too on Linux)."""
    master = await start_broker(nursery, tmp_path / "m", namesrv_addr)
    assert master.ctx.listen_host == "127.0.0.1"
    port = master.ctx.store_config.haListenPort
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.aclose()
    with pytest.raises(OSError, match="connect"):
        await trio.open_tcp_stream("127.0.0.2", port)


async def test_demoted_master_without_truncate_to_drops_records_the_new_master_replaced(
    nursery, tmp_path, namesrv_addr, client, ha_clock
):
    """Both wrote after the promotion, the new master more: by offsets alone the old master
    would keep its own records below the new master's end (and append the new master's from
    the middle of one); compared by content, it keeps only the common prefix."""
    master, slave = await start_pair(nursery, tmp_path, namesrv_addr)
    await send(client, master, 10)
    await caught_up(slave, master)

    async def switch(broker, role: str, **extra: str) -> None:
        reply = await client.invoke(
            broker.address,
            RemotingCommand.request(SWITCH_BROKER_ROLE, {"brokerRole": role, **extra}),
            5,
        )
        assert reply.code == ResponseCode.SUCCESS, reply.remark

    await switch(slave, "ASYNC_MASTER")
    promoted_at = slave.ctx.store.max_phy_offset
    await send(client, master, 3, b"acknowledged-by-nobody")
    await send(client, slave, 12, b"new")
    assert slave.ctx.store.max_phy_offset > master.ctx.store.max_phy_offset > promoted_at
    await switch(master, "SLAVE", brokerId="1")  # no truncateTo
    await caught_up(master, slave)
    assert log_bytes(master.ctx.store) == log_bytes(slave.ctx.store)
    assert master.ctx.store.max_offset_in_queue(TOPIC, 1) == slave.ctx.store.max_offset_in_queue(
        TOPIC, 1
    )
    assert not master.ctx.following.verify_prefix
