"""Offset stores: the table, the broadcasting file (Java's format), the remote store."""

from __future__ import annotations

import pytest
import trio

from actors.client.consumer import ConsumerCore, ConsumerSettings, build_subscription, matches
from actors.client.errors import InvalidSubscriptionError
from actors.client.instance import ClientConfig, open_client_instance
from actors.client.offset_store import (
    NO_OFFSET,
    READ_ERROR,
    LocalFileOffsetStore,
    OffsetTable,
    ReadFrom,
    RemoteOffsetStore,
    read_offsets_file,
    write_offsets_file,
)
from protocol.bodies.common import ConsumeFromWhere, MessageQueue
from protocol.message import MessageExt
from tests.actors.client.fake_cluster import start_fake_cluster

MQ0 = MessageQueue(topic="T", broker_name="broker-a", queue_id=0)
MQ1 = MessageQueue(topic="T", broker_name="broker-a", queue_id=1)


def test_table_increase_only() -> None:
    t = OffsetTable()
    t.update(MQ0, 5, increase_only=True)
    t.update(MQ0, 3, increase_only=True)
    assert t.get(MQ0) == 5
    t.update(MQ0, 3, increase_only=False)
    assert t.get(MQ0) == 3


def test_offsets_file_uses_fastjson_object_keys_and_keeps_a_backup(tmp_path) -> None:
    path = tmp_path / "c" / "g" / "offsets.json"
    write_offsets_file(path, {MQ0: 7})
    text = path.read_text()
    assert '{"brokerName":"broker-a","queueId":0,"topic":"T"}:7' in text.replace("\t", "").replace(
        "\n", ""
    )
    write_offsets_file(path, {MQ0: 9, MQ1: 1})
    assert read_offsets_file(path) == {MQ0: 9, MQ1: 1}
    path.write_text("{garbage")
    assert read_offsets_file(path) == {MQ0: 7}  # the previous version, from .bak
    assert read_offsets_file(tmp_path / "missing.json") == {}


async def test_local_store_round_trip(tmp_path) -> None:
    store = LocalFileOffsetStore.for_client("1.2.3.4@DEFAULT", "g", tmp_path)
    await store.load()
    assert await store.read(MQ0, ReadFrom.MEMORY_THEN_STORE) == NO_OFFSET
    store.update(MQ0, 11, increase_only=True)
    await store.persist_all([MQ0], wait=False)
    again = LocalFileOffsetStore.for_client("1.2.3.4@DEFAULT", "g", tmp_path)
    await again.load()
    assert await again.read(MQ0, ReadFrom.MEMORY) == 11
    assert await again.read(MQ0, ReadFrom.STORE) == 11
    assert store.path == tmp_path / "1.2.3.4@DEFAULT" / "g" / "offsets.json"


async def test_remote_store_and_start_offsets(nursery) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    broker.ensure_topic("T", 2)
    for _ in range(3):
        broker.put(MessageExt(topic="T", body=b"x", queue_id=1))
    with trio.fail_after(10):
        async with open_client_instance(ClientConfig(namesrv_addrs=[ns.addr])) as inst:
            await inst.update_route("T")
            store = RemoteOffsetStore(inst, "g")
            broker.query_not_found = True
            assert await store.read(MQ1, ReadFrom.STORE) == NO_OFFSET
            store.update(MQ1, 2, increase_only=True)
            await store.persist_all([MQ1], wait=True)
            assert broker.offsets[("g", "T", 1)] == 2
            assert await store.read(MQ1, ReadFrom.STORE) == 2

            core = ConsumerCore(inst, "g2", ConsumerSettings(), RemoteOffsetStore(inst, "g2"))
            assert await core.compute_pull_from_where(MQ1) == 3  # LAST_OFFSET: the max offset
            core.settings.consume_from_where = ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET
            assert await core.compute_pull_from_where(MQ1) == 0
            retry = MessageQueue(topic="%RETRY%g2", broker_name="broker-a", queue_id=0)
            core.settings.consume_from_where = ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET
            assert await core.compute_pull_from_where(retry) == 0

            ns.brokers.clear()
            gone = MessageQueue(topic="nowhere", broker_name="broker-x", queue_id=0)
            assert await store.read(gone, ReadFrom.STORE) == READ_ERROR
            assert await core.compute_pull_from_where(gone) == -1


def test_subscription_expressions() -> None:
    sub = build_subscription("T", "TagA || TagB ||", 5)
    assert sub.tags_set == ("TagA", "TagB")
    assert sub.code_set == (2598919, 2598920)  # Java String.hashCode, as in the reference example
    assert sub.sub_version == 5
    assert build_subscription("T", "*", 0).sub_string == "*"
    assert build_subscription("T", "", 0).sub_string == "*"
    tagged = MessageExt(topic="T", body=b"", properties={"TAGS": "TagB"})
    assert matches(sub, tagged)
    assert not matches(sub, MessageExt(topic="T", body=b"", properties={"TAGS": "TagC"}))
    assert not matches(sub, MessageExt(topic="T", body=b""))
    assert matches(build_subscription("T", "*", 0), tagged)


def test_an_expression_without_tags_is_refused() -> None:
    with pytest.raises(InvalidSubscriptionError):
        build_subscription("T", " || ", 0)
