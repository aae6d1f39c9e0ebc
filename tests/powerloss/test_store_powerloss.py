"""A MessageStore on the LazyFS mount: what it flushed and checkpointed survives a power loss.

Storage level, no broker: the store is driven by hand (put, reput, flush the commit log, flush
the consume queues and the index, write the checkpoint), then the mount loses power and the
store is opened again (abnormal start).  Small files, so a few hundred messages span several
commit-log files and the checkpoint moves past the first ones: abnormal recovery then replays
only from a late commit-log file, and whatever the consume queues or the index lost before that
file is not rebuilt.
"""

from __future__ import annotations

import os

import attrs
import pytest

from protocol.message import decode_record
from storage.config import MessageStoreConfig
from storage.message_store import GetStatus, MessageStore, PutStatus
from tests.powerloss.mount import LazyMount
from tests.storage.conftest import STORE_HOST, message

pytestmark = [pytest.mark.crash, pytest.mark.powerloss]

COMMIT_LOG_FILE = 64 * 1024
CQ_FILE = 100 * 20  # 100 units: the queues rotate files too
TOPIC = "PowerLossTopic"  # created after the power-loss model last made everything durable
OLD = "OldTopic"
QUEUES = 2
MESSAGES = 1200  # ~150 bytes each: about 3 commit-log files
STEP_MS = 100  # store-time step per message: each commit-log file spans ~40 s


class StepClock:
    """Store time advanced by hand, so the checkpoint's timestamps leave the first files behind."""

    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


def _config(root: str, *, index: bool) -> MessageStoreConfig:
    return MessageStoreConfig(
        storePathRootDir=root,
        mappedFileSizeCommitLog=COMMIT_LOG_FILE,
        mappedFileSizeConsumeQueue=CQ_FILE,
        messageIndexEnable=index,
        maxHashSlotNum=64,
        maxIndexNum=400,  # a few index files
    )


Ack = tuple[str, int, int, str, int]  # topic, queue id, commit-log offset, key, store time


def _put(store: MessageStore, clock: StepClock, topic: str, qid: int, key: str) -> Ack:
    clock.now += STEP_MS
    r = store.put_message(message(topic=topic, queue_id=qid, keys=key))
    assert r.status is PutStatus.PUT_OK
    assert r.append is not None
    return topic, qid, r.append.wrote_offset, key, clock.now


def _flush_all(store: MessageStore) -> None:
    """Dispatch, flush the commit log, the queues and the index, checkpoint: as the store's
    services do, everything up to here is durable afterwards."""
    store.reput()
    assert store.dispatch_behind_bytes() == 0
    assert store.flush_commit_log() == store.max_phy_offset
    store.flush_consume_queues()
    store.write_checkpoint()


def _power_loss(mount: LazyMount, store: MessageStore) -> None:
    mount.crash()  # nothing unsynced survives from here on
    store.abandon()  # close the files, so the mount can go
    mount.unmount()
    mount.mount()


def _after_an_earlier_life(
    mount: LazyMount, cfg: MessageStoreConfig, clock: StepClock
) -> tuple[MessageStore, list[Ack]]:
    """The store opened again after an earlier life: topic OLD exists, and the file system has
    long since made every name durable (a journaling file system commits within seconds; the
    model only on "sync")."""
    store = MessageStore(cfg, store_host=STORE_HOST, now_ms=clock)
    store.load()
    acks = [_put(store, clock, OLD, 0, "old-0")]
    _flush_all(store)
    store.shutdown()
    mount.ctl("sync")
    store = MessageStore(cfg, store_host=STORE_HOST, now_ms=clock)
    store.load()
    return store, acks


def _run(mount: LazyMount, *, index: bool) -> tuple[MessageStore, list[Ack]]:
    """A broker that has run before gets a new topic, flushes and checkpoints it, and loses
    power; returns the store opened again and what it had acknowledged."""
    root = os.path.join(mount.path, "store")
    cfg = _config(root, index=index)
    clock = StepClock()
    store, acks = _after_an_earlier_life(mount, cfg, clock)
    for i in range(MESSAGES):
        acks.append(_put(store, clock, TOPIC, i % QUEUES, f"key-{i}"))
        if i % 50 == 49:  # OLD's queue goes on too (its one file has room for all of it)
            acks.append(_put(store, clock, OLD, 0, f"old-{i}"))
    _flush_all(store)
    assert len(os.listdir(cfg.commit_log_dir)) >= 3
    # abnormal recovery will start past the first two commit-log files: whatever the queues or
    # the index lose of those is never dispatched again
    third_file_first = next(a[4] for a in acks if a[2] >= 2 * COMMIT_LOG_FILE)
    assert store.checkpoint.min_timestamp >= third_file_first
    _power_loss(mount, store)
    clock.now += 1000
    store = MessageStore(cfg, store_host=STORE_HOST, now_ms=clock)
    store.load()
    assert not store.last_exit_ok
    return store, acks


def _assert_all_pullable(store: MessageStore, acks: list[Ack]) -> None:
    """Every acknowledged message is pulled by its queue offset, from offset 0 on."""
    for topic, qid in [(OLD, 0)] + [(TOPIC, q) for q in range(QUEUES)]:
        mine = [o for t, q, o, _k, _ts in acks if (t, q) == (topic, qid)]
        assert store.min_offset_in_queue(topic, qid) == 0
        assert store.max_offset_in_queue(topic, qid) == len(mine)
        got: list[int] = []
        offset = 0
        while offset < len(mine):  # one read stops at the end of a consume-queue file
            r = store.get_message("g", topic, qid, offset, 1000)
            assert r.status is GetStatus.FOUND, (topic, qid, offset, r.status, r.min_offset)
            got.extend(decode_record(b).commit_log_offset for b in r.buffers)
            offset = r.next_begin_offset
        assert got == mine


def _reopened_all_pullable(cfg: MessageStoreConfig, clock: StepClock, acks: list[Ack]) -> None:
    """The store opened after the power loss has every acknowledged message."""
    store = MessageStore(cfg, store_host=STORE_HOST, now_ms=clock)
    store.load()
    try:
        _assert_all_pullable(store, acks)
    finally:
        store.shutdown()


def test_flushed_consume_queue_units_survive_power_loss(lazy_mount: LazyMount) -> None:
    """Every message flushed and checkpointed before the power loss can be pulled by its queue
    offset afterwards: a consume-queue file whose data was fdatasynced must keep its name."""
    store, acks = _run(lazy_mount, index=False)
    try:
        _assert_all_pullable(store, acks)
    finally:
        store.shutdown()


def test_flushed_index_entries_survive_power_loss(lazy_mount: LazyMount) -> None:
    """Every message flushed before the power loss is found by its key afterwards: an index
    file whose data was fdatasynced must keep its name."""
    store, acks = _run(lazy_mount, index=True)
    try:
        lost = [
            key
            for topic, _q, o, key, _ts in acks
            if [
                decode_record(h).commit_log_offset
                for h in store.query_message(topic, key, 10, 0, 2**62).records
            ]
            != [o]
        ]
        assert lost == [], f"{len(lost)} of {len(acks)} keys lost, first {lost[:3]}"
    finally:
        store.shutdown()


def _killed_then_power_loss(mount: LazyMount, *, queues_flushed: bool) -> None:
    """A process puts to a new topic and is killed; the next one (abnormal start) puts a few
    more without creating a queue file, flushes and checkpoints; then the power goes.
    ``queues_flushed``: the killed process had fdatasynced its queue files but was killed
    before the directory fsync that follows (or ran a version without it)."""
    root = os.path.join(mount.path, "store")
    cfg = _config(root, index=False)
    clock = StepClock()
    store, acks = _after_an_earlier_life(mount, cfg, clock)
    # the queues' last files keep some room
    acks.extend(
        _put(store, clock, TOPIC, i % QUEUES, f"key-{i}") for i in range(MESSAGES - QUEUES * 10)
    )
    store.reput()
    store.flush_commit_log()
    if queues_flushed:
        for qid in range(QUEUES):
            store._queues[(TOPIC, qid)].queue.names_pending = False  # killed before it
        store.flush_consume_queues()
    store.abandon()  # kill -9: unflushed queue pages stay in the page cache

    store = MessageStore(cfg, store_host=STORE_HOST, now_ms=clock)
    store.load()
    assert not store.last_exit_ok
    for qid in range(QUEUES):  # the queues' last files have room: no new file is created
        assert store._queues[(TOPIC, qid)].queue.last().remaining >= 20  # type: ignore[union-attr]
        acks.append(_put(store, clock, TOPIC, qid, f"after-{qid}"))
    acks.append(_put(store, clock, OLD, 0, "old-last"))
    _flush_all(store)
    third_file_first = next(a[4] for a in acks if a[2] >= 2 * COMMIT_LOG_FILE)
    assert store.checkpoint.min_timestamp >= third_file_first
    _power_loss(mount, store)
    _reopened_all_pullable(cfg, clock, acks)


def test_queue_file_names_left_by_a_killed_process_are_made_durable(lazy_mount: LazyMount) -> None:
    """Files a killed process flushed but whose names it never made durable: the next process
    loads them and must fsync their directory before its checkpoint covers their units, even
    when it creates no queue file itself."""
    _killed_then_power_loss(lazy_mount, queues_flushed=True)


def test_queue_units_a_killed_process_left_unflushed_survive_power_loss(
    lazy_mount: LazyMount,
) -> None:
    """Units a killed process dispatched but never flushed (its pages in the page cache): the
    next process must fdatasync them before its checkpoint moves past their records."""
    _killed_then_power_loss(lazy_mount, queues_flushed=False)


def test_units_a_partial_flush_skipped_survive_power_loss(lazy_mount: LazyMount) -> None:
    """A routine flusher round (flushConsumeQueueLeastPages) leaves a queue with one dirty page
    unflushed: the checkpoint's consume-queue time must not move past its units."""
    root = os.path.join(lazy_mount.path, "store")
    cfg = attrs.evolve(_config(root, index=False), mappedFileSizeConsumeQueue=1000 * 20)
    clock = StepClock()
    store, acks = _after_an_earlier_life(lazy_mount, cfg, clock)
    acks.extend(_put(store, clock, TOPIC, 0, f"key-{i}") for i in range(MESSAGES))
    acks.append(_put(store, clock, OLD, 0, "old-1"))
    _flush_all(store)  # thorough: everything, OLD's queue file included, is durable
    # 150 more units for TOPIC (bytes 4,000-7,000 of its second file: one page dirty, under
    # flushConsumeQueueLeastPages), then a routine round of the flusher
    acks.extend(_put(store, clock, TOPIC, 0, f"more-{i}") for i in range(150))
    # enough commit log after them that the checkpoint leaves them behind
    acks.extend(_put(store, clock, OLD, 0, f"old-late-{i}") for i in range(700))
    store.reput()
    assert store.flush_commit_log() == store.max_phy_offset
    store.flush_consume_queues(cfg.flushConsumeQueueLeastPages)
    store.write_checkpoint()
    first_more = next(a for a in acks if a[3] == "more-0")
    # the commit log's time is far past them: only the queues' time can keep recovery there
    assert store.checkpoint.physic_msg_timestamp > first_more[4] + 3000
    _power_loss(lazy_mount, store)
    _reopened_all_pullable(cfg, clock, acks)


def test_a_queue_file_made_just_before_a_power_loss_does_not_stop_the_store(
    lazy_mount: LazyMount,
) -> None:
    """A consume-queue file is created without an fsync of its size (it costs ~1.4 of ~1.9 ms a
    file, the bound of a storm of new topics).  A flush with nothing to write yet (the reput
    actor has the file made in a worker thread before it dispatches the first unit) makes its
    name durable on an empty file; after the power loss the store drops that file, starts, and
    every acknowledged message is there."""
    root = os.path.join(lazy_mount.path, "store")
    cfg = _config(root, index=False)
    clock = StepClock()
    store = MessageStore(cfg, store_host=STORE_HOST, now_ms=clock)
    store.load()
    acks = [_put(store, clock, OLD, 0, "old-0")]
    _flush_all(store)
    acks.append(_put(store, clock, TOPIC, 0, "first"))
    assert store.flush_commit_log() == store.max_phy_offset
    store.reput(create_files=False)  # stops before the record: TOPIC-0 has no file
    preparers = store.queue_file_preparers()
    assert len(preparers) == 1
    preparers[0]()  # what the reput actor runs in a worker thread
    store.flush_consume_queues()  # nothing to write in it: only the directory is synced
    _power_loss(lazy_mount, store)
    path = os.path.join(cfg.consume_queue_dir, TOPIC, "0", "0" * 20)
    assert os.path.getsize(path) == 0  # the name survived, its size did not

    store = MessageStore(cfg, store_host=STORE_HOST, now_ms=clock)
    store.load()
    try:
        assert not store.last_exit_ok
        assert os.path.getsize(path) > 0  # dropped at load, made again by replaying "first"
        acks.append(_put(store, clock, TOPIC, 0, "after"))
        _flush_all(store)
        for topic in (OLD, TOPIC):
            r = store.get_message("g", topic, 0, 0, 10)
            assert r.status is GetStatus.FOUND
            got = [decode_record(b).commit_log_offset for b in r.buffers]
            assert got == [offset for t, _q, offset, _k, _ts in acks if t == topic]
    finally:
        store.shutdown()
