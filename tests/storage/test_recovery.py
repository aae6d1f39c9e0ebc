"""Recovery (§5.9): torn and corrupted tails end at the last whole record; queues and index agree."""

from __future__ import annotations

import os
import random
import tempfile

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.message import decode_record
from storage.config import MessageStoreConfig
from storage.message_store import GetStatus, MessageStore, PutStatus
from tests.storage import layout_reader as lr
from tests.storage.conftest import STORE_HOST, FakeClock, message

CONFIG = MessageStoreConfig(
    storePathRootDir="",
    mappedFileSizeCommitLog=4096,
    mappedFileSizeConsumeQueue=8 * 20,
    maxHashSlotNum=32,
    maxIndexNum=40,
)


def _open(root: str, clock: FakeClock) -> MessageStore:
    store = MessageStore(
        attrs.evolve(CONFIG, storePathRootDir=root), store_host=STORE_HOST, now_ms=clock
    )
    store.load()
    return store


# TOPICLEN + "TopicTest" + PROPERTIESLEN + properties of conftest.message(keys="key-N")
_TAIL_BYTES = 1 + 9 + 2 + len("UNIQ_KEY\x01" + "U" + "0" * 29 + "\x02TAGS\x01TagA\x02KEYS\x01key-")


def _fill(store: MessageStore, rng: random.Random, n: int) -> list[tuple[int, int, str, int]]:
    """Put n messages over 3 queues; (offset, size, key, queue id) of each."""
    acks = []
    for i in range(n):
        key = f"key-{i}"
        m = message(queue_id=i % 3, keys=key, body=rng.randbytes(rng.randrange(0, 300)))
        r = store.put_message(m)
        assert r.status is PutStatus.PUT_OK
        acks.append((r.append.wrote_offset, r.append.wrote_bytes, key, i % 3))
    return acks


def _data_file(root: str, offset: int) -> str:
    name = f"{offset - offset % CONFIG.mappedFileSizeCommitLog:020d}"
    return os.path.join(root, "commitlog", name)


def _assert_consistent(
    store: MessageStore, root: str, survivors: list[tuple[int, int, str, int]]
) -> None:
    """Commit log holds exactly the survivors; consume queues and index agree with it."""
    end = survivors[-1][0] + survivors[-1][1] if survivors else 0
    assert store.max_phy_offset in (end, end + (-end % 4096) if end % 4096 else end)
    records = lr.read_commit_log(os.path.join(root, "commitlog"), CONFIG.mappedFileSizeCommitLog)
    assert [(r.offset, r.total) for r in records] == [(o, s) for o, s, _, _ in survivors]
    for qid in range(3):
        mine = [(o, s) for o, s, _, q in survivors if q == qid]
        assert store.max_offset_in_queue("TopicTest", qid) == len(mine)
        got: list[bytes] = []
        offset = 0
        while offset < len(mine):  # one read stops at the end of a consume-queue file
            r = store.get_message("g", "TopicTest", qid, offset, 1000)
            assert r.status is GetStatus.FOUND
            got.extend(r.buffers)
            offset = r.next_begin_offset
        assert [(decode_record(b).commit_log_offset, len(b)) for b in got] == mine
        for n, (o, _s) in enumerate(mine):
            assert store.commit_log_offset_in_queue("TopicTest", qid, n) == o
    for o, _s, key, _q in survivors:
        hits = store.query_message("TopicTest", key, 10, 0, 2**62).records
        assert [decode_record(h).commit_log_offset for h in hits] == [o]


@settings(max_examples=40)
@given(
    n=st.integers(1, 60),
    seed=st.integers(0, 2**32),
    where=st.floats(0, 1),
    garbage=st.booleans(),
    abort=st.booleans(),
)
def test_torn_tail_recovers_to_last_whole_record(
    n: int, seed: int, where: float, garbage: bool, abort: bool
) -> None:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as root:
        clock = FakeClock()
        store = _open(root, clock)
        acks = _fill(store, rng, n)
        if rng.random() < 0.5:
            store.reput()  # consume queues may be ahead of the cut, or behind it
        store.abandon()
        end = acks[-1][0] + acks[-1][1]
        last_file_start = end - (end - 1) % CONFIG.mappedFileSizeCommitLog - 1
        if garbage:
            # Random bytes are caught by the body CRC and the checked header fields, so the
            # garbage starts no later than a body's end (RocketMQ's CRC does not cover the
            # properties; an unwritten tail, the crash case, is zeros and is tested below).
            tail = [a for a in acks if a[0] >= last_file_start]
            off, size, _, _ = tail[int(where * (len(tail) - 1))]
            cut = off + int(where * (size - _TAIL_BYTES))
        else:
            cut = last_file_start + int((end - last_file_start) * where)
        path = _data_file(root, cut if cut < end else end - 1)
        with open(path, "r+b") as f:
            f.seek(cut % CONFIG.mappedFileSizeCommitLog)
            tail = end - cut
            f.write(rng.randbytes(tail) if garbage else bytes(tail))
        if not abort:
            os.unlink(os.path.join(root, "abort"))
        store = _open(root, clock)
        try:
            survivors = [a for a in acks if a[0] + a[1] <= cut]
            _assert_consistent(store, root, survivors)
            # the store carries on right after the last whole record
            r = store.put_message(message(queue_id=0, keys="after"))
            assert r.status is PutStatus.PUT_OK
            store.reput()
            q0 = [a for a in survivors if a[3] == 0]
            assert r.append.queue_offset == len(q0)
            hits = store.query_message("TopicTest", "after", 4, 0, 2**62).records
            assert [decode_record(h).commit_log_offset for h in hits] == [r.append.wrote_offset]
            for _o, _s, key, _q in acks[len(survivors) :]:
                assert store.query_message("TopicTest", key, 4, 0, 2**62).records == []
        finally:
            store.shutdown()


@settings(max_examples=25)
@given(n=st.integers(2, 40), seed=st.integers(0, 2**32), pick=st.floats(0, 1))
def test_corrupt_body_ends_valid_data_at_that_record(n: int, seed: int, pick: float) -> None:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as root:
        clock = FakeClock()
        store = _open(root, clock)
        acks = _fill(store, rng, n)
        store.reput()
        store.abandon()
        # records whose body has at least 16 bytes (the flipped byte must land in the body)
        with_body = [
            i
            for i, a in enumerate(acks)
            if a[1] - 91 - _TAIL_BYTES - 2 >= 16 and i >= len(acks) - 6
        ]
        if not with_body:
            return
        victim = with_body[int(pick * (len(with_body) - 1))]
        off, size, _, _ = acks[victim]
        with open(_data_file(root, off), "r+b") as f:
            pos = off % CONFIG.mappedFileSizeCommitLog + size - _TAIL_BYTES - 8  # in the body
            f.seek(pos)
            byte = f.read(1)
            f.seek(pos)
            f.write(bytes([byte[0] ^ 0x5A]))
        store = _open(root, clock)
        try:
            assert not store.last_exit_ok
            _assert_consistent(store, root, acks[:victim])
        finally:
            store.shutdown()


def test_consume_queue_lost_is_rebuilt_from_commit_log(tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = str(tmp_path)
    clock = FakeClock()
    store = _open(root, clock)
    acks = _fill(store, random.Random(1), 30)
    store.shutdown()
    import shutil

    shutil.rmtree(os.path.join(root, "consumequeue"))
    shutil.rmtree(os.path.join(root, "index"))
    store = _open(root, clock)
    try:
        _assert_consistent(store, root, acks)
    finally:
        store.shutdown()


def test_no_commit_log_destroys_consume_queues(tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = str(tmp_path)
    clock = FakeClock()
    store = _open(root, clock)
    _fill(store, random.Random(2), 10)
    store.shutdown()
    import shutil

    shutil.rmtree(os.path.join(root, "commitlog"))
    store = _open(root, clock)
    try:
        assert store.topic_queue_ids() == {}
        r = store.get_message("g", "TopicTest", 0, 0, 1)
        assert r.status is GetStatus.NO_MESSAGE_IN_QUEUE
        assert store.put_message(message()).append.queue_offset == 0
    finally:
        store.shutdown()


def test_wrong_file_size_refuses_to_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from storage.errors import StoreError

    root = str(tmp_path)
    store = _open(root, FakeClock())
    store.put_message(message())
    store.shutdown()
    with open(os.path.join(root, "commitlog", "00000000000000000000"), "r+b") as f:
        f.truncate(100)
    with pytest.raises(StoreError, match="differs from the configured"):
        _open(root, FakeClock())
    # the failed load released the lock
    os.unlink(os.path.join(root, "commitlog", "00000000000000000000"))
    _open(root, FakeClock()).shutdown()


def test_crash_with_dispatch_behind_rebuilds_the_rest(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Consume queues and index lag the commit log at the crash: the recovery scan finds the
    first record they miss (a record boundary, whatever the index's own bookkeeping says)."""
    root = str(tmp_path)
    clock = FakeClock()
    store = _open(root, clock)
    acks = _fill(store, random.Random(1), 30)
    store.reput(2000)  # dispatch stops mid-log
    assert 0 < store.dispatched_offset < store.max_phy_offset
    store.abandon()
    store = _open(root, clock)
    try:
        assert not store.flags.logics_error
        assert not store.flags.corrupt_log
        _assert_consistent(store, root, acks)
    finally:
        store.shutdown()
