"""SEND_MESSAGE / SEND_MESSAGE_V2 / batches through the remoting client and raw frames (§7.1)."""

from __future__ import annotations

import threading

import attrs
import pytest
import trio

from protocol.codes import RequestCode, ResponseCode, SerializeType
from protocol.command import RemotingCommand
from protocol.message import (
    BatchEntry,
    decode_records,
    encode_batch,
    properties_to_string,
    string_to_properties,
)
from protocol.msgid import decode_offset_msg_id
from storage.config import FlushDiskType
from storage.message_store import MessageStore
from tests.actors.broker.conftest import start_broker
from tests.actors.broker.wire import props, pull, raw_call, send_v2
from tests.actors.remoting.test_backpressure import wait_for

T = 5
# PullSysFlag: SUSPEND | SUBSCRIPTION, a pull that long polling may hold
SUSPEND = 0x6


async def dispatched(store: MessageStore) -> None:
    """Until reput has dispatched everything stored: SEND_OK says a message is in the commit
    log, and a new queue's first unit waits for its file, made in a worker thread."""
    await wait_for(lambda: store.dispatch_behind_bytes() == 0)


async def test_v2_send_auto_creates_topic_and_answers_offsets(broker_handle, client):
    reply = await client.invoke(broker_handle.address, send_v2("NewTopic", queue_id=2), T)
    assert reply.code == ResponseCode.SUCCESS, reply.remark
    ext = reply.ext_fields
    assert ext["MSG_REGION"] == "DefaultRegion"
    assert ext["TRACE_ON"] == "true"
    assert (ext["queueId"], ext["queueOffset"]) == ("2", "0")
    host, offset = decode_offset_msg_id(ext["msgId"])
    assert host == broker_handle.address
    assert offset >= 0
    topic = broker_handle.ctx.topics.get("NewTopic")
    assert (topic.read_queue_nums, topic.write_queue_nums, topic.perm) == (4, 4, 6)
    again = await client.invoke(broker_handle.address, send_v2("NewTopic", queue_id=2), T)
    assert again.ext_fields["queueOffset"] == "1"


async def test_stored_properties_drop_wait_and_add_cluster(broker_handle, client):
    await client.invoke(
        broker_handle.address, send_v2("PropTopic", b"body", properties=props(k="v")), T
    )
    reply = await client.invoke(broker_handle.address, pull("PropTopic"), T)
    assert reply.code == ResponseCode.SUCCESS
    [msg] = decode_records(reply.body)
    assert msg.body == b"body"
    assert "WAIT" not in msg.properties
    assert msg.properties["CLUSTER"] == "DefaultCluster"
    assert msg.properties["k"] == "v"
    assert msg.born_host.startswith("127.0.0.1:")


async def test_cpp_style_frame_with_json_numbers_and_auth_fields(broker_handle):
    ext = {
        "AccessKey": "",
        "OnsChannel": "ALIYUN",
        "Signature": "N/YT7X6tJe5UfutmW+uNwTTJ7Fc=",
        "a": "pg",
        "b": "CppTopic",
        "c": "TBW102",
        "d": 4,
        "e": 0,
        "f": 0,
        "g": "1795741096560",
        "h": 0,
        "i": properties_to_string(props()),
        "j": "0",
        "k": "0",
        "l": 16,
        "m": "0",
    }
    header = {
        "code": 310,
        "extFields": ext,
        "flag": 0,
        "language": "CPP",
        "opaque": 7,
        "remark": "",
        "version": 333,
    }
    with trio.fail_after(T):
        reply = await raw_call(broker_handle.address, header, b"x" * 10)
    assert reply.code == ResponseCode.SUCCESS, reply.remark
    assert reply.opaque == 7
    assert reply.ext_fields["queueOffset"] == "0"


async def test_batch_as_310_with_m_1(broker_handle, client):
    entries = [
        BatchEntry(
            flag=0,
            body=f"m{i}".encode(),
            properties={"UNIQ_KEY": f"K{i}", "TAGS": "TagA", "KEYS": f"k{i}"},
        )
        for i in range(3)
    ]
    req = send_v2("BatchTopic", encode_batch(entries), properties={"WAIT": "true"}, m="1")
    reply = await client.invoke(broker_handle.address, req, T)
    assert reply.code == ResponseCode.SUCCESS, reply.remark
    ids = reply.ext_fields["msgId"].split(",")
    assert len(ids) == 3
    assert reply.ext_fields["queueOffset"] == "0"
    pulled = await client.invoke(broker_handle.address, pull("BatchTopic"), T)
    msgs = decode_records(pulled.body)
    assert [m.body for m in msgs] == [b"m0", b"m1", b"m2"]
    assert [m.queue_offset for m in msgs] == [0, 1, 2]
    assert [m.msg_id for m in msgs] == ids
    assert all(m.properties["CLUSTER"] == "DefaultCluster" for m in msgs)
    # Unlike a single send, a batch keeps its properties string as sent, WAIT included (§4.8).
    assert all(m.properties["WAIT"] == "true" for m in msgs)
    assert [m.properties["KEYS"] for m in msgs] == ["k0", "k1", "k2"]


async def test_batch_properties_stored_as_java_concatenates(broker_handle, client):
    # MessageExtBatchEncoder (4.9.8): the entry's bytes, a separator only where one is missing,
    # then the batch's properties; a key in both is stored twice, as Apache does.
    body = encode_batch([BatchEntry(body=b"a", properties={"UNIQ_KEY": "U1", "WAIT": "true"})])
    body += encode_batch([BatchEntry(body=b"b")])
    req = send_v2("ConcatBatch", body, properties={"WAIT": "true"}, m="1")
    reply = await client.invoke(broker_handle.address, req, T)
    assert reply.code == ResponseCode.SUCCESS, reply.remark
    store = broker_handle.ctx.store
    store.reput()
    raw = [
        store.select_one_message_by_offset(store.commit_log_offset_in_queue("ConcatBatch", 0, i))
        for i in range(2)
    ]
    batch_props = b"WAIT\x01true\x02CLUSTER\x01DefaultCluster"
    assert raw[0].endswith(b"UNIQ_KEY\x01U1\x02WAIT\x01true\x02" + batch_props)
    assert raw[1].endswith(b"\x00" + bytes([len(batch_props)]) + batch_props)


async def test_batch_code_320_and_v1_code_10(broker_handle, client):
    body = encode_batch([BatchEntry(flag=0, body=b"a", properties={"UNIQ_KEY": "U1"})])
    v2 = send_v2("CodesTopic", body, m="true")
    batch = RemotingCommand.request(RequestCode.SEND_BATCH_MESSAGE, v2.ext_fields, body)
    assert (await client.invoke(broker_handle.address, batch, T)).code == ResponseCode.SUCCESS
    v1 = RemotingCommand.request(
        RequestCode.SEND_MESSAGE,
        {
            "producerGroup": "pg",
            "topic": "CodesTopic",
            "defaultTopic": "TBW102",
            "defaultTopicQueueNums": "4",
            "queueId": "0",
            "sysFlag": "0",
            "bornTimestamp": "1",
            "flag": "0",
            "properties": properties_to_string(props()),
        },
        b"b",
    )
    reply = await client.invoke(broker_handle.address, v1, T)
    assert reply.code == ResponseCode.SUCCESS, reply.remark
    assert reply.ext_fields["queueOffset"] == "1"


async def test_batch_with_delay_is_illegal(broker_handle, client):
    body = encode_batch(
        [BatchEntry(flag=0, body=b"a", properties={"UNIQ_KEY": "U1", "DELAY": "2"})]
    )
    reply = await client.invoke(broker_handle.address, send_v2("DelayBatch", body, m="1"), T)
    assert reply.code == ResponseCode.MESSAGE_ILLEGAL


@pytest.mark.parametrize(
    ("topic", "code"),
    [
        ("bad topic", ResponseCode.SYSTEM_ERROR),
        ("x" * 128, ResponseCode.SYSTEM_ERROR),
        ("SCHEDULE_TOPIC_XXXX", ResponseCode.NO_PERMISSION),
        ("RMQ_SYS_TRANS_HALF_TOPIC", ResponseCode.NO_PERMISSION),
    ],
)
async def test_topic_checks(broker_handle, client, topic, code):
    reply = await client.invoke(broker_handle.address, send_v2(topic), T)
    assert reply.code == code
    assert reply.ext_fields["MSG_REGION"] == "DefaultRegion"


async def test_illegal_queue_id(broker_handle, client):
    await client.invoke(broker_handle.address, send_v2("QTopic"), T)
    reply = await client.invoke(broker_handle.address, send_v2("QTopic", queue_id=4), T)
    assert reply.code == ResponseCode.SYSTEM_ERROR
    assert "queueId[4] is illegal" in reply.remark


async def test_negative_queue_id_picks_a_queue(broker_handle, client):
    reply = await client.invoke(broker_handle.address, send_v2("AnyQueue", queue_id=-1), T)
    assert reply.code == ResponseCode.SUCCESS
    assert 0 <= int(reply.ext_fields["queueId"]) < 4


async def test_oversized_body_is_illegal(broker_handle, client):
    size = broker_handle.ctx.store_config.maxMessageSize + 1
    reply = await client.invoke(broker_handle.address, send_v2("Big", b"x" * size), T)
    assert reply.code == ResponseCode.MESSAGE_ILLEGAL


async def test_delay_level_parks_message_in_schedule_topic(broker_handle, client):
    reply = await client.invoke(
        broker_handle.address, send_v2("Later", properties=props(DELAY="2"), queue_id=1), T
    )
    assert reply.code == ResponseCode.SUCCESS
    store = broker_handle.ctx.store
    await dispatched(store)
    assert store.max_offset_in_queue("SCHEDULE_TOPIC_XXXX", 1) == 1
    assert store.max_offset_in_queue("Later", 1) == 0
    _, offset = decode_offset_msg_id(reply.ext_fields["msgId"])
    msg = store.look_message_by_offset(offset)
    assert (msg.properties["REAL_TOPIC"], msg.properties["REAL_QID"]) == ("Later", "1")


async def test_full_disk_refuses_with_service_not_available(broker_handle, client):
    broker_handle.ctx.store.flags.disk_full = True
    reply = await client.invoke(broker_handle.address, send_v2("Full"), T)
    assert reply.code == ResponseCode.SERVICE_NOT_AVAILABLE
    broker_handle.ctx.store.flags.disk_full = False
    reply = await client.invoke(broker_handle.address, send_v2("Full"), T)
    assert reply.code == ResponseCode.SUCCESS
    assert reply.ext_fields["queueOffset"] == "0"


async def test_stored_message_round_trips_properties(broker_handle, client):
    p = props(tags="TagZ", keys="a b")
    await client.invoke(broker_handle.address, send_v2("RT", b"\x00\x01binary", properties=p), T)
    [msg] = decode_records((await client.invoke(broker_handle.address, pull("RT"), T)).body)
    assert msg.body == b"\x00\x01binary"
    stored = string_to_properties(properties_to_string(msg.properties))
    assert stored["TAGS"] == "TagZ"
    assert stored["UNIQ_KEY"] == p["UNIQ_KEY"]


async def test_sync_flush_send_waits_for_the_flush(nursery, tmp_path, client):
    handle = await start_broker(
        nursery, tmp_path / "sync", store={"flushDiskType": FlushDiskType.SYNC_FLUSH}
    )
    async with trio.open_nursery() as senders:
        replies = []

        async def send(i: int) -> None:
            replies.append(await client.invoke(handle.address, send_v2("Sync", str(i).encode()), T))

        for i in range(20):
            senders.start_soon(send, i)
    assert sorted(int(r.ext_fields["queueOffset"]) for r in replies) == list(range(20))
    assert all(r.code == ResponseCode.SUCCESS for r in replies)
    assert handle.ctx.store.flushed_offset >= handle.ctx.store.max_phy_offset


async def test_sync_flush_timeout_answers_flush_disk_timeout(nursery, tmp_path, client):
    handle = await start_broker(
        nursery,
        tmp_path / "slow",
        store={"flushDiskType": FlushDiskType.SYNC_FLUSH, "syncFlushTimeout": 200},
    )
    store = handle.ctx.store
    real = store.flush_commit_log
    disk = threading.Event()

    def slow(least_pages: int = 0) -> int:  # a disk that hangs until the test lets it go
        disk.wait(10)
        return real(least_pages)

    store.flush_commit_log = slow
    try:
        reply = await client.invoke(handle.address, send_v2("Slow"), T)
    finally:
        disk.set()
    # stored, only not flushed in time: the reply still says where (§7.1)
    assert reply.code == ResponseCode.FLUSH_DISK_TIMEOUT
    assert reply.ext_fields["queueOffset"] == "0"
    assert reply.ext_fields["msgId"]


async def test_auto_create_disabled_gives_topic_not_exist(nursery, tmp_path, client):
    handle = await start_broker(nursery, tmp_path / "noauto", autoCreateTopicEnable=False)
    reply = await client.invoke(handle.address, send_v2("Nope"), T)
    assert reply.code == ResponseCode.TOPIC_NOT_EXIST
    assert "TBW102" not in handle.ctx.topics.all()


async def test_rocketmq_binary_header_is_answered_in_kind(broker_handle, client):
    req = attrs.evolve(send_v2("BinTopic"), serialize_type=SerializeType.ROCKETMQ)
    reply = await client.invoke(broker_handle.address, req, T)
    assert reply.code == ResponseCode.SUCCESS
    assert reply.serialize_type is SerializeType.ROCKETMQ
    assert reply.ext_fields["queueOffset"] == "0"


async def test_resend_to_retry_topic_goes_to_dlq_after_max(broker_handle, client):
    addr = broker_handle.address
    below = send_v2("%RETRY%rg", properties=props(), j="2", l="3")
    reply = await client.invoke(addr, below, T)
    assert reply.code == ResponseCode.SUCCESS, reply.remark
    await dispatched(broker_handle.ctx.store)
    assert broker_handle.ctx.store.max_offset_in_queue("%RETRY%rg", 0) == 1
    past = send_v2("%RETRY%rg", properties=props(DELAY="3"), j="3", l="3")
    reply = await client.invoke(addr, past, T)
    assert reply.code == ResponseCode.SUCCESS, reply.remark
    dlq = broker_handle.ctx.topics.get("%DLQ%rg")
    assert (dlq.write_queue_nums, dlq.perm) == (1, 6)
    store = broker_handle.ctx.store
    await dispatched(store)
    assert store.max_offset_in_queue("%DLQ%rg", 0) == 1
    assert store.max_offset_in_queue("SCHEDULE_TOPIC_XXXX", 2) == 0  # no delay for a dead letter


async def test_batch_as_code_10_with_batch_true(broker_handle, client):
    body = encode_batch(
        [
            BatchEntry(flag=0, body=f"b{i}".encode(), properties={"UNIQ_KEY": f"V{i}"})
            for i in range(2)
        ]
    )
    v1 = RemotingCommand.request(
        RequestCode.SEND_MESSAGE,
        {
            "producerGroup": "pg",
            "topic": "V1Batch",
            "defaultTopic": "TBW102",
            "defaultTopicQueueNums": "4",
            "queueId": "1",
            "sysFlag": "0",
            "bornTimestamp": "1",
            "flag": "0",
            "properties": "WAIT\x01true\x02",
            "batch": "true",
        },
        body,
    )
    reply = await client.invoke(broker_handle.address, v1, T)
    assert reply.code == ResponseCode.SUCCESS, reply.remark
    assert len(reply.ext_fields["msgId"].split(",")) == 2
    await dispatched(broker_handle.ctx.store)
    assert broker_handle.ctx.store.max_offset_in_queue("V1Batch", 1) == 2


async def test_sends_to_a_new_queue_are_answered_while_its_file_is_being_created(
    broker_handle, client, monkeypatch
):
    """SEND_OK says the message is in the commit log, as in Java: neither the send to a new
    queue nor the sends behind it on the same connection wait for the queue's file; dispatch
    does.  Before, each new queue held its sending connection for a worker thread's creation
    of the file."""
    from actors.store import reput
    from storage.mapped_file_queue import MappedFileQueue

    # every new queue's file in a worker thread, as in a burst (a lone one is made on the loop)
    monkeypatch.setattr(reput, "INLINE_FILES_MAX", 0)
    release = threading.Event()
    real_prepare = MappedFileQueue.prepare_first_file

    def held(self, start_offset=0):  # type: ignore[no-untyped-def]
        if "HeldTopic" in self.directory:
            release.wait(30)
        return real_prepare(self, start_offset)

    monkeypatch.setattr(MappedFileQueue, "prepare_first_file", held)
    store = broker_handle.ctx.store
    try:
        with trio.fail_after(10):
            codes: list[int] = []

            async def send(topic: str, queue_id: int) -> None:
                reply = await client.invoke(
                    broker_handle.address, send_v2(topic, queue_id=queue_id), T
                )
                codes.append(reply.code)

            async with trio.open_nursery() as nursery:
                for i in range(8):
                    nursery.start_soon(send, "HeldTopic", 0)
                    nursery.start_soon(send, "T", i % 4)
            assert codes == [ResponseCode.SUCCESS] * 16
            reply = await client.invoke(broker_handle.address, send_v2("HeldTopic", queue_id=1), T)
            assert reply.code == ResponseCode.SUCCESS, reply.remark
        assert store.max_offset_in_queue("HeldTopic", 0) == 0  # not dispatched yet
    finally:
        release.set()
    offset = 0
    while offset < 8:  # as a consumer does: each pull held by long polling until dispatch
        got = await client.invoke(
            broker_handle.address,
            pull("HeldTopic", queue_id=0, offset=offset, sys_flag=SUSPEND),
            T,
        )
        assert got.code == ResponseCode.SUCCESS, got.remark
        offset = int(got.ext_fields["nextBeginOffset"])
    await dispatched(store)
    assert store.max_offset_in_queue("HeldTopic", 0) == 8
    assert store.max_offset_in_queue("HeldTopic", 1) == 1
