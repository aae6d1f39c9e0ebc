"""Consumers keep consuming from the slave while the master is down (reference §6.6): our
PushConsumer, routed by the name server to the only broker left, pulls there; the slave
answers pulls (slaveReadEnable) and offset queries."""

from __future__ import annotations

import trio

from actors.client.message import Message, SendStatus
from actors.client.producer import Producer
from actors.client.push_consumer import ConsumeFromWhere, PushConsumer
from protocol.codes import ResponseCode
from tests.actors.broker.conftest import start_broker
from tests.actors.broker.wire import pull
from tests.actors.client.test_push_consumer import Collector
from tests.actors.ha.test_replication import TOPIC as TOPIC_HA
from tests.actors.ha.test_replication import caught_up, send, start_pair, until

TOPIC = "TopicFromSlave"


async def test_push_consumer_consumes_from_the_slave_while_the_master_is_down(
    nursery, tmp_path, namesrv_addr
) -> None:
    master, slave = await start_pair(nursery, tmp_path, namesrv_addr, slave_read=True)
    with trio.fail_after(60):
        async with Producer("pg_slave_read", namesrv=namesrv_addr) as producer:
            for i in range(30):
                result = await producer.send(Message(TOPIC, b"m%d" % i))
                assert result.status is SendStatus.SEND_OK
        await caught_up(slave, master)
        await until(lambda: TOPIC in slave.ctx.topics)  # the slave's metadata sync
        master.stop()
        await master.stopped.wait()  # unregistered: the route lists the slave alone
        collect = Collector(30)
        consumer = PushConsumer(
            "cg_slave_read",
            namesrv=namesrv_addr,
            listener=collect,
            consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET,
        )
        consumer.subscribe(TOPIC)
        async with consumer:
            await collect.done.wait()
    assert {m.body for m in collect.got} == {b"m%d" % i for i in range(30)}


async def test_a_consumer_far_behind_is_sent_to_the_slave(
    nursery, tmp_path, namesrv_addr, client, monkeypatch
) -> None:
    """§6.6/§6.7: with slaveReadEnable, a pull whose data is further behind than
    accessMessageInMemoryMaxRatio of RAM gets suggestWhichBrokerId = the group's
    whichBrokerWhenConsumeSlowly (1); one near the end gets the group's brokerId (0)."""
    monkeypatch.setattr("storage.message_store._physical_memory", lambda: 20_000)  # 40%: 8 kB
    master = await start_broker(nursery, tmp_path / "m", namesrv_addr, slaveReadEnable=True)
    await send(client, master, 40, b"x" * 1000)
    far = await client.invoke(master.address, pull(TOPIC_HA, offset=0, suspend_ms=0), 5)
    assert far.code == ResponseCode.SUCCESS, far.remark
    assert far.ext_fields["suggestWhichBrokerId"] == "1"
    near = await client.invoke(master.address, pull(TOPIC_HA, offset=19, suspend_ms=0), 5)
    assert near.code == ResponseCode.SUCCESS, near.remark
    assert near.ext_fields["suggestWhichBrokerId"] == "0"
