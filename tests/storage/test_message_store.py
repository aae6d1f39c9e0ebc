"""MessageStore: puts, reads with the §6.7 statuses, offsets, queries, lock, restart."""

from __future__ import annotations

import os

import pytest

from protocol.message import MessageSysFlag, decode_record, decode_records, java_hash
from protocol.msgid import decode_offset_msg_id
from storage.errors import StoreLockedError
from storage.message_store import GetStatus, MessageStore, PutStatus
from tests.storage.conftest import STORE_HOST, message


def put_many(store: MessageStore, n: int, **kw: object) -> list[int]:
    offsets = []
    for _ in range(n):
        r = store.put_message(message(**kw))  # type: ignore[arg-type]
        assert r.status is PutStatus.PUT_OK
        assert r.append is not None
        offsets.append(r.append.wrote_offset)
    return offsets


def test_put_assigns_offsets_and_ids(open_store) -> None:  # type: ignore[no-untyped-def]
    store = open_store()
    a = store.put_message(message(queue_id=1)).append
    b = store.put_message(message(queue_id=1)).append
    c = store.put_message(message(queue_id=2)).append
    assert (a.queue_offset, b.queue_offset, c.queue_offset) == (0, 1, 0)
    assert a.wrote_offset == 0
    assert b.wrote_offset == a.end_offset
    assert decode_offset_msg_id(b.msg_ids[0]) == (STORE_HOST, b.wrote_offset)
    assert store.max_phy_offset == c.end_offset
    # the consume queue is built by reput, not on the put path
    assert store.max_offset_in_queue("TopicTest", 1) == 0
    arrived = store.reput()
    # the newest per queue and tag: long polling needs no more
    assert [(x.queue_id, x.max_offset) for x in arrived] == [(1, 2), (2, 1)]
    assert store.max_offset_in_queue("TopicTest", 1) == 2
    assert arrived[0].tags_code == java_hash("TagA")


def test_get_message_statuses(open_store) -> None:  # type: ignore[no-untyped-def]
    store = open_store()
    r = store.get_message("g", "TopicTest", 0, 0, 32)
    assert (r.status, r.next_begin_offset) == (GetStatus.NO_MESSAGE_IN_QUEUE, 0)
    put_many(store, 5)
    store.reput()
    r = store.get_message("g", "TopicTest", 0, 0, 3)
    assert r.status is GetStatus.FOUND
    assert (r.next_begin_offset, r.message_count, r.min_offset, r.max_offset) == (3, 3, 0, 5)
    msgs = decode_records(b"".join(r.buffers), check_crc=True)
    assert [m.queue_offset for m in msgs] == [0, 1, 2]
    assert all(m.store_host == STORE_HOST for m in msgs)
    r = store.get_message("g", "TopicTest", 0, 5, 3)
    assert (r.status, r.next_begin_offset) == (GetStatus.OFFSET_OVERFLOW_ONE, 5)
    r = store.get_message("g", "TopicTest", 0, 9, 3)
    assert (r.status, r.next_begin_offset) == (GetStatus.OFFSET_OVERFLOW_BADLY, 5)


def test_tag_filter_by_hash_code(open_store) -> None:  # type: ignore[no-untyped-def]
    store = open_store()
    for i in range(6):
        store.put_message(message(tags="A" if i % 3 == 0 else "B"))
    store.reput()
    r = store.get_message("g", "TopicTest", 0, 0, 32, tag_codes={java_hash("A")})
    assert r.status is GetStatus.FOUND
    assert [decode_record(b).queue_offset for b in r.buffers] == [0, 3]
    assert r.next_begin_offset == 6
    r = store.get_message("g", "TopicTest", 0, 4, 32, tag_codes={java_hash("A")})
    assert (r.status, r.next_begin_offset) == (GetStatus.NO_MATCHED_MESSAGE, 6)


def test_transfer_limits(open_store) -> None:  # type: ignore[no-untyped-def]
    store = open_store(maxTransferCountOnMessageInMemory=4)
    put_many(store, 10)
    store.reput()
    r = store.get_message("g", "TopicTest", 0, 0, 32)
    assert (r.message_count, r.next_begin_offset) == (4, 4)
    r = store.get_message("g", "TopicTest", 0, 0, 32, max_total_bytes=1)
    assert r.message_count == 1


def test_batch_put(open_store) -> None:  # type: ignore[no-untyped-def]
    store = open_store()
    store.put_message(message())
    r = store.put_messages([message(), message(), message()])
    assert r.status is PutStatus.PUT_OK
    app = r.append
    assert (app.queue_offset, app.msg_num) == (1, 3)
    ids = app.msg_ids
    assert len(ids) == 3
    assert app.msg_id == ",".join(ids)
    offsets = [decode_offset_msg_id(i)[1] for i in ids]
    assert offsets[0] == app.wrote_offset
    assert sum(len(store.select_one_message_by_offset(o)) for o in offsets) == app.wrote_bytes
    assert store.put_messages([message(), message(queue_id=3)]).status is PutStatus.MESSAGE_ILLEGAL
    store.reput()
    assert store.max_offset_in_queue("TopicTest", 0) == 4


def test_records_never_straddle_files(open_store, store_config) -> None:  # type: ignore[no-untyped-def]
    store = open_store()
    offsets = put_many(store, 80, body=b"x" * 300)
    size = store_config.mappedFileSizeCommitLog
    lengths = [len(store.select_one_message_by_offset(o)) for o in offsets]
    for off, n in zip(offsets, lengths, strict=True):
        assert off // size == (off + n - 1) // size
    assert len(os.listdir(store_config.commit_log_dir)) > 5
    batch = store.put_messages([message(body=b"y" * 1200) for _ in range(3)])
    assert batch.append.wrote_offset % size == 0  # the whole batch moved to a fresh file


def test_limits_refused_with_statuses(open_store) -> None:  # type: ignore[no-untyped-def]
    store = open_store(maxMessageSize=100)
    assert store.put_message(message(body=b"x" * 101)).status is PutStatus.MESSAGE_ILLEGAL
    big = message()
    big.properties["p"] = "v" * 40000
    assert store.put_message(big).status is PutStatus.PROPERTIES_SIZE_EXCEEDED
    assert store.put_message(message(topic="t" * 128)).status is PutStatus.MESSAGE_ILLEGAL
    bad_host = message()
    bad_host.born_host = "nowhere"
    assert store.put_message(bad_host).status is PutStatus.MESSAGE_ILLEGAL
    assert store.put_message(message(body=b"x" * 100)).status is PutStatus.PUT_OK


def test_record_larger_than_a_file_is_illegal(open_store) -> None:  # type: ignore[no-untyped-def]
    store = open_store()
    assert store.put_message(message(body=b"x" * 5000)).status is PutStatus.MESSAGE_ILLEGAL
    assert store.put_message(message()).status is PutStatus.PUT_OK


def test_transaction_types(open_store) -> None:  # type: ignore[no-untyped-def]
    store = open_store()
    half = store.put_message(message(sys_flag=MessageSysFlag.TRANSACTION_PREPARED)).append
    commit = store.put_message(message(sys_flag=MessageSysFlag.TRANSACTION_COMMIT)).append
    rollback = store.put_message(message(sys_flag=MessageSysFlag.TRANSACTION_ROLLBACK)).append
    assert (half.queue_offset, commit.queue_offset, rollback.queue_offset) == (0, 0, 0)
    assert [a.max_offset for a in store.reput()] == [1]
    assert store.max_offset_in_queue("TopicTest", 0) == 1


def test_slave_refuses_puts(open_store) -> None:  # type: ignore[no-untyped-def]
    from storage.config import BrokerRole

    store = open_store(brokerRole=BrokerRole.SLAVE)
    assert store.put_message(message()).status is PutStatus.SERVICE_NOT_AVAILABLE


def test_offsets_times_and_lookups(open_store, clock) -> None:  # type: ignore[no-untyped-def]
    store = open_store()
    stamps = []
    for _ in range(25):
        r = store.put_message(message(queue_id=3)).append
        stamps.append(r.store_timestamp)
        clock.now += 1000
    store.reput()
    assert store.earliest_message_time("TopicTest", 3) == stamps[0]
    assert store.message_store_timestamp("TopicTest", 3, 7) == stamps[7]
    assert store.offset_in_queue_by_time("TopicTest", 3, stamps[10]) == 10
    assert store.offset_in_queue_by_time("TopicTest", 3, stamps[10] - 1) == 10
    assert store.offset_in_queue_by_time("TopicTest", 3, 0) == 0
    # No exact match: the nearer neighbour, as Java's binary search answers (§7.7).
    assert store.offset_in_queue_by_time("TopicTest", 3, stamps[10] + 400) == 10
    assert store.offset_in_queue_by_time("TopicTest", 3, stamps[10] + 600) == 11
    assert store.offset_in_queue_by_time("TopicTest", 3, stamps[-1] + 1) == 24
    assert store.offset_in_queue_by_time("Nope", 0, stamps[0]) == 0
    phys = store.commit_log_offset_in_queue("TopicTest", 3, 4)
    msg = store.look_message_by_offset(phys)
    assert msg is not None
    assert msg.queue_offset == 4
    assert store.look_message_by_offset(phys + 1) is None
    assert store.topic_queue_ids() == {"TopicTest": [3]}
    assert store.earliest_message_time("Nope", 0) == -1


def test_query_by_key_and_time(open_store, clock) -> None:  # type: ignore[no-untyped-def]
    store = open_store()
    first = store.put_message(message(keys="order-1 shared")).append
    clock.now += 5000
    for i in range(60):  # enough to rotate several index files (maxIndexNum=32)
        store.put_message(message(keys=f"k{i} shared"))
    last = store.put_message(message(keys="order-1")).append
    store.reput()
    found = store.query_message("TopicTest", "order-1", 10, 0, 2**62)
    assert sorted(decode_record(r).commit_log_offset for r in found.records) == [
        first.wrote_offset,
        last.wrote_offset,
    ]
    early = store.query_message("TopicTest", "order-1", 10, 0, first.store_timestamp + 1000)
    assert [decode_record(r).commit_log_offset for r in early.records] == [first.wrote_offset]
    assert len(store.query_message("TopicTest", "shared", 100, 0, 2**62).records) == 61
    assert len(store.query_message("TopicTest", "shared", 5, 0, 2**62).records) == 5
    uniq = decode_record(found.records[0]).uniq_key
    assert len(store.query_message("TopicTest", uniq, 10, 0, 2**62).records) == 1
    assert store.query_message("Other", "order-1", 10, 0, 2**62).records == []


def test_schedule_topic_tags_code_is_delivery_time(open_store) -> None:  # type: ignore[no-untyped-def]
    store = open_store()
    m = message(topic="SCHEDULE_TOPIC_XXXX", queue_id=2)
    m.properties["DELAY"] = "3"
    r = store.put_message(m).append
    (a,) = store.reput()
    assert a.tags_code == r.store_timestamp + 10_000


def test_second_store_on_same_directory_is_refused(open_store, store_config) -> None:  # type: ignore[no-untyped-def]
    open_store()
    with pytest.raises(StoreLockedError, match="Lock failed"):
        MessageStore(store_config, store_host=STORE_HOST).load()


def test_restart_keeps_everything(open_store, store_config) -> None:  # type: ignore[no-untyped-def]
    store = open_store()
    put_many(store, 40, queue_id=1)
    put_many(store, 40, queue_id=2)
    store.shutdown()
    assert not os.path.exists(store_config.abort_path)
    again = open_store()
    assert again.last_exit_ok
    assert again.max_offset_in_queue("TopicTest", 1) == 40
    assert again.put_message(message(queue_id=1)).append.queue_offset == 40
    assert again.get_message("g", "TopicTest", 2, 39, 1).status is GetStatus.FOUND


def test_delete_topics(open_store, store_config) -> None:  # type: ignore[no-untyped-def]
    store = open_store()
    put_many(store, 3, topic="Gone")
    put_many(store, 3, topic="Kept")
    store.reput()
    store.delete_topics({"Gone"})
    assert store.topic_queue_ids() == {"Kept": [0]}
    assert not os.path.exists(os.path.join(store_config.consume_queue_dir, "Gone"))
    assert store.get_message("g", "Gone", 0, 0, 1).status is GetStatus.NO_MESSAGE_IN_QUEUE


def test_reput_reports_the_newest_arrival_per_queue_and_tag(open_store) -> None:  # type: ignore[no-untyped-def]
    store = open_store()
    for queue_id, tags in [(0, "A"), (0, "A"), (0, "B"), (1, "A"), (0, "A")]:
        store.put_message(message(queue_id=queue_id, tags=tags))
    got = store.reput()
    assert sorted((x.queue_id, x.tags_code, x.max_offset) for x in got) == sorted(
        [(0, java_hash("A"), 4), (0, java_hash("B"), 3), (1, java_hash("A"), 1)]
    )
