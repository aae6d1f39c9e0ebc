"""Topic and group creations are answered only once durable and routed (issue 13, defects 2, 6).

A kill -9 right after an answer leaves exactly what was on disk at that moment; these tests
take a copy of the config directory at that moment and load a broker's tables from it, which
is what a restarted broker does.  (Page-cache loss is the power-loss harness's business.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import trio

from actors.broker.config import BrokerConfig
from actors.broker.context import load_tables
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from storage.message_store import MessageInner, MessageStore
from storage.topic_config import TopicConfigTable
from tests.actors.broker.conftest import broker_config, small_store, start_broker
from tests.actors.broker.wire import heartbeat, send_v2
from tests.actors.remoting.test_backpressure import wait_for

T = 5
ROUNDS = 30


def req(code: RequestCode, body: bytes = b"", **ext: object) -> RemotingCommand:
    return RemotingCommand.request(code, {k: str(v) for k, v in ext.items()}, body)


def tables_after_crash(config_dir: Path, tmp: Path, config: BrokerConfig | None = None):
    """The topics and groups a broker restarted from this moment's files would have."""
    copy = tmp / "copy"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(config_dir, copy / "config")
    store_config = small_store(copy)
    topics, groups, _, _ = load_tables(config or broker_config(), store_config, 0)
    return topics, groups


async def test_auto_created_topic_is_routed_and_durable_when_the_send_is_answered(
    broker_handle, client, namesrv_addr, tmp_path
):
    addr = broker_handle.address
    for i in range(ROUNDS):
        topic = f"Fresh{i}"
        reply = await client.invoke(addr, send_v2(topic), T)
        assert reply.code == ResponseCode.SUCCESS, reply.remark
        # no wait, no retry: Apache registers before it answers, and so must we
        route = await client.invoke(
            namesrv_addr, req(RequestCode.GET_ROUTEINFO_BY_TOPIC, topic=topic), T
        )
        assert route.code == ResponseCode.SUCCESS, f"round {i}: {route.remark}"
        topics, _ = tables_after_crash(broker_handle.ctx.config_dir, tmp_path)
        assert topic in topics, f"round {i}: acknowledged topic lost by a crash"


async def test_admin_created_topics_and_groups_survive_a_crash_at_once(
    broker_handle, client, tmp_path
):
    addr = broker_handle.address
    for i in range(ROUNDS):
        create = req(
            RequestCode.UPDATE_AND_CREATE_TOPIC,
            topic=f"Admin{i}",
            defaultTopic="TBW102",
            readQueueNums=2,
            writeQueueNums=2,
            perm=6,
            topicFilterType="SINGLE_TAG",
            order="false",
        )
        assert (await client.invoke(addr, create, T)).code == ResponseCode.SUCCESS
        body = json.dumps({"groupName": f"G{i}", "retryMaxTimes": 3}).encode()
        group = req(RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, body)
        assert (await client.invoke(addr, group, T)).code == ResponseCode.SUCCESS
        topics, groups = tables_after_crash(broker_handle.ctx.config_dir, tmp_path)
        assert f"Admin{i}" in topics
        saved = groups.get(f"G{i}")
        assert saved is not None
        assert saved.retry_max_times == 3
    deleted = req(RequestCode.DELETE_TOPIC_IN_BROKER, topic="Admin0")
    assert (await client.invoke(addr, deleted, T)).code == ResponseCode.SUCCESS
    topics, _ = tables_after_crash(broker_handle.ctx.config_dir, tmp_path)
    assert "Admin0" not in topics
    assert "Admin1" in topics


async def test_group_auto_created_by_heartbeat_is_durable_when_answered(
    broker_handle, client, tmp_path
):
    reply = await client.invoke(broker_handle.address, heartbeat("c1@1", "AutoGroup", ["T"]), T)
    assert reply.code == ResponseCode.SUCCESS
    topics, groups = tables_after_crash(broker_handle.ctx.config_dir, tmp_path)
    assert groups.get("AutoGroup") is not None
    assert "%RETRY%AutoGroup" in topics


async def test_journal_is_folded_into_the_json_files_at_shutdown(nursery, tmp_path, client):
    handle = await start_broker(nursery, tmp_path / "store")
    assert (await client.invoke(handle.address, send_v2("Folded"), T)).code == 0
    config_dir = handle.ctx.config_dir
    handle.stop()
    await handle.stopped.wait()
    assert not (config_dir / "configChanges.journal").exists()
    assert "Folded" in (config_dir / "topics.json").read_text()


def test_topic_with_consume_queues_but_no_config_is_recreated(tmp_path: Path) -> None:
    config = small_store(tmp_path)
    store = MessageStore(config, store_host="127.0.0.1:10911")
    store.load()
    for qid in (0, 2):
        store.put_message(
            MessageInner(topic="Orphan", queue_id=qid, body=b"x", born_host="10.0.0.9:5555")
        )
    store.reput()
    store.shutdown()
    store = MessageStore(config, store_host="127.0.0.1:10911")
    store.load()
    try:
        topics, _, _, _ = load_tables(broker_config(), config, 0, store.topic_queue_ids())
    finally:
        store.shutdown()
    orphan = topics.get("Orphan")
    assert orphan is not None
    assert orphan.read_queue_nums == orphan.write_queue_nums == 3
    # and the recovered config is on disk, so the next start does not depend on the queues
    again = TopicConfigTable()
    again.load(tmp_path / "config")
    assert again.get("Orphan") == orphan


async def test_sends_that_create_topics_do_not_hold_up_the_connection_for_the_journal(
    broker_handle, client, monkeypatch
):
    """A send that created a topic is answered only once the journal has it (and the name
    servers), but the wait is not the connection's: the requests behind it are read and
    stored meanwhile, and one journal append covers the topics they create.  Before, the
    reader itself waited, a journal fsync and a registration per new topic (~5 ms each here,
    so a sender round robin over new topics ran at ~200 msg/s)."""
    import threading

    from actors.broker import persist

    release = threading.Event()
    appends: list[int] = []
    real_append = persist.append_changes

    def slow_append(config_dir, lines):  # type: ignore[no-untyped-def]
        appends.append(len(lines))
        release.wait(30)
        return real_append(config_dir, lines)

    monkeypatch.setattr(persist, "append_changes", slow_append)
    store, topics = broker_handle.ctx.store, broker_handle.ctx.topics
    before = store.max_phy_offset
    replies: list[RemotingCommand] = []

    async def send(topic: str) -> None:
        replies.append(await client.invoke(broker_handle.address, send_v2(topic), T))

    try:
        async with trio.open_nursery() as nursery:
            for i in range(8):
                nursery.start_soon(send, f"Pipelined{i}")
            await wait_for(lambda: all(f"Pipelined{i}" in topics for i in range(8)), T)
            assert store.max_phy_offset > before
            assert replies == []  # stored, not answered: the journal does not have them yet
            release.set()
    finally:
        release.set()
    assert [r.code for r in replies] == [ResponseCode.SUCCESS] * 8
    assert len(appends) <= 3, appends  # the eight creations share appends
