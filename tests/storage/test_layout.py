"""Our files, decoded by an independent struct-based reader written from the reference tables."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from protocol.message import java_hash
from storage.index_file import key_hash
from storage.message_store import MessageStore
from tests.storage import layout_reader as lr
from tests.storage.conftest import message


def _fill(store: MessageStore) -> list[tuple[int, int]]:
    acks = []
    for i in range(120):
        m = message(
            queue_id=i % 3, tags=f"T{i % 4}", keys=f"key{i} common", body=os.urandom(i * 7 % 400)
        )
        if i % 10 == 0:
            m.born_host = "[2001:db8::7]:41000"
        r = store.put_message(m).append
        acks.append((r.wrote_offset, r.wrote_bytes))
    store.reput()
    return acks


def test_commit_log_consume_queue_index_and_checkpoint_layout(open_store, store_config) -> None:  # type: ignore[no-untyped-def]
    store = open_store()
    acks = _fill(store)
    store.flush_commit_log()
    store.flush_consume_queues()
    store.write_checkpoint()

    records = lr.read_commit_log(store_config.commit_log_dir, store_config.mappedFileSizeCommitLog)
    assert [(r.offset, r.total) for r in records] == acks
    v6 = [r for r in records if r.sys_flag & 0x10]
    assert len(v6) == 12
    assert all(len(r.born_host[0]) == 16 for r in v6)
    assert {r.store_host for r in records} == {(bytes([192, 168, 0, 1]), 10911)}
    for r in records:
        raw = store.select_one_message_by_offset(r.offset)
        assert raw == r.raw

    by_offset = {r.offset: r for r in records}
    for qid in range(3):
        units = lr.read_consume_queue(
            os.path.join(store_config.consume_queue_dir, "TopicTest", str(qid)),
            store_config.mappedFileSizeConsumeQueue,
        )
        assert [u[0] for u in units] == list(range(40))
        for qoff, phys, size, tags in units:
            rec = by_offset[phys]
            assert (rec.queue_id, rec.queue_offset, rec.total) == (qid, qoff, size)
            assert (
                tags
                == java_hash(rec.properties["TAGS"])
                == lr.java_string_hash(rec.properties["TAGS"])
            )

    # every key of every record is reachable through some index file's chain
    indexed: set[tuple[int, int]] = set()
    index_dir = store_config.index_dir
    names = sorted(os.listdir(index_dir))
    assert len(names) > 1
    assert all(len(n) == 17 and n.isdigit() for n in names)
    for name in names:
        header, chains = lr.read_index_file(
            os.path.join(index_dir, name), store_config.maxHashSlotNum, store_config.maxIndexNum
        )
        assert header.begin_ts <= header.end_ts
        for slot, chain in chains.items():
            for kh, phy, diff in chain:
                assert kh % store_config.maxHashSlotNum == slot
                assert header.begin_phy <= phy <= header.end_phy
                assert header.begin_ts + diff * 1000 <= by_offset[phy].store_ts
                indexed.add((kh, phy))
    for r in records:
        keys = [r.properties["UNIQ_KEY"], *r.properties["KEYS"].split(" ")]
        for k in keys:
            assert (lr.index_key_hash(f"TopicTest#{k}"), r.offset) in indexed

    physic, logics, index_ts = lr.read_checkpoint(store_config.checkpoint_path)
    assert physic == records[-1].store_ts
    assert logics == records[-1].store_ts
    assert index_ts > 0


def test_lock_file_contents(open_store, store_config) -> None:  # type: ignore[no-untyped-def]
    open_store()
    with open(store_config.lock_path, "rb") as f:
        assert f.read() == b"lock"
    assert os.path.exists(store_config.abort_path)


@given(st.text(alphabet="ABCDEF0123456789#%_-abc", max_size=60) | st.text(max_size=40))
def test_index_key_hash_is_java_string_hash(key: str) -> None:
    # key_hash takes a shortcut through cached prefixes; the reader hashes the plain way
    assert key_hash(key) == lr.index_key_hash(key)
    assert key_hash(key) == key_hash(key)  # again, now with the prefix cached
