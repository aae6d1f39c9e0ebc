"""Reput without creating files (the reput actor's way): it stops before a new queue's first
record and says which files to create, looking ahead so one call creates a burst of them."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from storage.config import MessageStoreConfig
from storage.message_store import MessageStore, PutStatus
from tests.storage.conftest import STORE_HOST, FakeClock, message

HALF = 0x4  # MessageSysFlag.TRANSACTION_PREPARED_TYPE: no consume queue


def _queue_dir(store: MessageStore, topic: str, queue_id: int) -> str:
    return os.path.join(store.config.consume_queue_dir, topic, str(queue_id))


def test_reput_stops_for_a_new_queues_file_and_names_the_others_ahead(
    open_store: Callable[..., MessageStore],
) -> None:
    store = open_store()
    store.put_message(message("A"))
    store.reput()  # creates A-0's file itself, as recovery and the tools do
    for msg in (
        message("A"),
        message("B"),
        message("A"),
        message("C", queue_id=1),
        message("D", sys_flag=HALF),
        message("B"),
    ):
        assert store.put_message(msg).status == PutStatus.PUT_OK

    store.reput(create_files=False)
    assert store.max_offset_in_queue("A", 0) == 2  # dispatched up to B's first record
    assert store.max_offset_in_queue("B", 0) == 0
    assert store.dispatch_behind_bytes() > 0
    assert not os.path.exists(_queue_dir(store, "B", 0))

    preparers = store.queue_file_preparers()
    assert len(preparers) == 2  # B-0 and C-1; not A-0 (has one), not D (a half message)
    assert store.queue_file_preparers() == []  # handed out once
    for prepare in preparers:
        prepare()
    assert os.path.exists(_queue_dir(store, "C", 1))

    store.reput(create_files=False)
    assert store.dispatch_behind_bytes() == 0
    assert [store.max_offset_in_queue(t, q) for t, q in (("A", 0), ("B", 0), ("C", 1))] == [
        3,
        2,
        1,
    ]
    assert not os.path.exists(_queue_dir(store, "D", 0))
    assert store.queue_file_preparers() == []


def test_a_failed_file_creation_refuses_messages_until_dispatch_writes_again(
    open_store: Callable[..., MessageStore],
) -> None:
    store = open_store()
    store.put_message(message("A"))
    store.reput(create_files=False)
    assert store.queue_file_preparers()
    store.queue_file_failed(OSError(28, "No space left on device"))
    assert store.put_message(message("A")).status == PutStatus.DISK_FULL
    store.reput(create_files=False)  # stops again for the same file and names it again
    for prepare in store.queue_file_preparers():
        prepare()
    store.reput(create_files=False)
    assert store.max_offset_in_queue("A", 0) == 1
    assert store.put_message(message("A")).status == PutStatus.PUT_OK


puts = st.lists(
    st.tuples(st.sampled_from("ABCDE"), st.integers(0, 3), st.sampled_from([0, 0, 0, HALF])),
    min_size=1,
    max_size=60,
)


@settings(max_examples=30, deadline=None)
@given(puts, st.integers(1, 5), st.integers(1, 4))
def test_dispatch_with_files_made_aside_gives_the_queues_reput_makes_itself(
    sends: list[tuple[str, int, int]], lookahead: int, stop_every: int
) -> None:
    """Whatever the order of new queues, the stops and how far preparers look ahead, the
    consume queues end up unit for unit what dispatch creating its own files gives."""
    with tempfile.TemporaryDirectory() as root:
        stores = []
        for name in ("itself", "aside"):
            config = MessageStoreConfig(
                storePathRootDir=os.path.join(root, name),
                mappedFileSizeCommitLog=4096,
                mappedFileSizeConsumeQueue=200,
            )
            store = MessageStore(config, store_host=STORE_HOST, now_ms=FakeClock())
            store.load()
            stores.append(store)
        itself, aside = stores
        try:
            for n, (topic, queue_id, sys_flag) in enumerate(sends):
                for store in stores:
                    msg = message(topic, queue_id, body=f"m{n}".encode(), sys_flag=sys_flag)
                    assert store.put_message(msg).status == PutStatus.PUT_OK
                if n % stop_every == 0:
                    itself.reput()
                    aside.reput(create_files=False)
                    for prepare in aside.queue_file_preparers(limit=lookahead):
                        prepare()
            itself.reput()
            for _ in range(len(sends) + 1):
                aside.reput(create_files=False)
                for prepare in aside.queue_file_preparers(limit=lookahead):
                    prepare()
            assert aside.dispatch_behind_bytes() == 0
            for topic in "ABCDE":
                for queue_id in range(4):
                    want = itself.max_offset_in_queue(topic, queue_id)
                    assert aside.max_offset_in_queue(topic, queue_id) == want
                    for offset in range(want):
                        a = itself.commit_log_offset_in_queue(topic, queue_id, offset)
                        b = aside.commit_log_offset_in_queue(topic, queue_id, offset)
                        assert a == b
        finally:
            for store in stores:
                store.shutdown()
