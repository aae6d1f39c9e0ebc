"""Store actors under autojump_clock: reput, flushers (async and group commit), checkpoint, cleaner."""

from __future__ import annotations

import functools
import os
import threading

import attrs
import pytest
import trio
import trio.testing

from actors.store import (
    FlushWake,
    checkpointer,
    cleaner,
    commit_log_flusher,
    consume_queue_flusher,
    reput_dispatcher,
    store_services,
)
from actors.store.reput import InlineDispatch
from actors.waiters import OffsetWaiters
from actors.wake import Wake
from storage.config import FlushDiskType
from storage.message_store import Arrived
from tests.actors.store.conftest import msg

PAGE = 4096


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


async def test_reput_wakes_on_put_and_on_safety_interval(
    make_store, autojump_clock, inline_threads
) -> None:  # type: ignore[no-untyped-def]
    store = make_store()
    store.put_message(msg())  # before start: dispatched during the catch-up
    wake = Wake()
    send, recv = trio.open_memory_channel[Arrived](16)
    async with trio.open_nursery() as nursery:
        await nursery.start(reput_dispatcher, store, send, wake)
        assert store.max_offset_in_queue("T", 0) == 1
        for _ in range(3):
            store.put_message(msg(queue_id=1))
        wake.set()
        first = await recv.receive()
        assert (first.queue_id, first.max_offset) == (1, 3)  # three arrivals coalesced into one
        assert trio.current_time() == 0
        await trio.testing.wait_all_tasks_blocked()
        store.put_message(msg(queue_id=2))  # nobody fires wake: the safety net picks it up
        second = await recv.receive()
        assert (second.queue_id, second.max_offset) == (2, 1)
        assert trio.current_time() == 1.0
        nursery.cancel_scope.cancel()


async def test_sync_flush_group_commit(make_store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The flush thread is a real thread, so no virtual clock here (and nothing waits on time).
    store = make_store(flushDiskType=FlushDiskType.SYNC_FLUSH)
    calls: list[int] = []
    real = store.flush_commit_log

    def counting(least_pages: int = 0) -> int:
        calls.append(store.max_phy_offset)
        return real(least_pages)

    monkeypatch.setattr(store, "flush_commit_log", counting)
    waiters = OffsetWaiters()
    wake = FlushWake()  # rings the flush thread directly
    acked: list[int] = []

    async def sender() -> None:
        for _ in range(4):
            end = store.put_message(msg()).append.end_offset
            wake.set()
            assert await waiters.wait_for(end, timeout=30.0)
            assert store.flushed_offset >= end
            acked.append(end)

    async with trio.open_nursery() as nursery:
        await nursery.start(commit_log_flusher, store, store.config, waiters, wake)
        async with trio.open_nursery() as senders:
            for _ in range(64):
                senders.start_soon(sender)
        nursery.cancel_scope.cancel()
    assert len(acked) == 4 * 64
    assert len(calls) < 4 * 64 / 4  # one fdatasync per group, not per message
    assert store.flushed_offset == store.max_phy_offset


async def test_sync_flush_thread_ends_with_the_actor(make_store) -> None:  # type: ignore[no-untyped-def]
    store = make_store(flushDiskType=FlushDiskType.SYNC_FLUSH)
    wake = FlushWake()
    with trio.move_on_after(0.05):
        await commit_log_flusher(store, store.config, OffsetWaiters(), wake)
    store.put_message(msg())
    wake.set()  # detached again: rings the trio event, no thread is left to ring
    assert store.flushed_offset < store.max_phy_offset


async def test_sync_flush_failure_stops_writes(make_store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = make_store(flushDiskType=FlushDiskType.SYNC_FLUSH)

    def broken(least_pages: int = 0) -> int:
        raise OSError(5, "Input/output error")

    real = store.flush_commit_log
    monkeypatch.setattr(store, "flush_commit_log", broken)
    wake = FlushWake()

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(commit_log_flusher, store, store.config, OffsetWaiters(), wake)
            store.put_message(msg())
            wake.set()

    with pytest.raises(ExceptionGroup) as caught:
        await run()
    assert caught.group_contains(OSError, match="Input/output")
    monkeypatch.setattr(store, "flush_commit_log", real)
    assert not store.flags.writeable
    assert store.put_message(msg()).status.name == "SERVICE_NOT_AVAILABLE"


async def test_async_flush_least_pages_and_thorough(
    make_store, autojump_clock, inline_threads
) -> None:  # type: ignore[no-untyped-def]
    store = make_store()
    waiters = OffsetWaiters()
    async with trio.open_nursery() as nursery:
        await nursery.start(commit_log_flusher, store, store.config, waiters, FlushWake())
        store.put_message(msg(body=b"x" * 100))
        await trio.sleep(0.6)
        assert store.flushed_offset == 0  # under 4 dirty pages: wait
        while store.max_phy_offset < 4 * PAGE:
            store.put_message(msg(body=b"x" * 1000))
        await trio.sleep(0.5)
        assert store.flushed_offset == store.max_phy_offset == waiters.current
        store.put_message(msg(body=b"tail"))
        await trio.sleep(9.0)  # t = 10.1: the thorough flush takes even one byte
        assert trio.current_time() >= 10.0
        assert store.flushed_offset == store.max_phy_offset
        nursery.cancel_scope.cancel()


async def test_consume_queue_flusher_and_checkpointer(
    make_store, autojump_clock, inline_threads, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    store = make_store()
    flushed: list[tuple[float, int]] = []
    real = store.flush_consume_queues

    def spy(least_pages: int = 0) -> None:
        flushed.append((trio.current_time(), least_pages))
        real(least_pages)

    monkeypatch.setattr(store, "flush_consume_queues", spy)
    async with trio.open_nursery() as nursery:
        await nursery.start(consume_queue_flusher, store, store.config)
        await nursery.start(checkpointer, store, 1.0)
        r = store.put_message(msg()).append
        store.reput()
        store.flush_commit_log()
        # the consume queues' time moves only with a round that flushed every queue whole (the
        # thorough one at 60 s: one dirty page is under flushConsumeQueueLeastPages), and the
        # checkpointer writes it at its next tick
        await trio.sleep(61.5)
        nursery.cancel_scope.cancel()
    assert flushed[0] == (1.0, 2)
    assert (60.0, 0) in flushed  # the thorough flush every 60 s
    data = _read(store.config.checkpoint_path)
    assert len(data) == 4096
    assert int.from_bytes(data[:8], "big") == r.store_timestamp
    assert int.from_bytes(data[8:16], "big") == r.store_timestamp


async def test_cleaner_schedule(make_store, autojump_clock, inline_threads, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = make_store()
    rounds: list[float] = []

    def spy(now_ms: int, force: bool = False) -> int:
        rounds.append(trio.current_time())
        assert now_ms == 42
        return 0

    monkeypatch.setattr(store, "clean_expired", spy)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda **kw: cleaner(store, store.config, now_ms=lambda: 42, **kw))
        await trio.sleep(85)
        nursery.cancel_scope.cancel()
    assert rounds == [60.0, 70.0, 80.0]


async def test_cleaner_deletes_at_delete_when_hour(
    make_store, autojump_clock, inline_threads, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import datetime

    store = make_store(mappedFileSizeCommitLog=4096, deleteWhen="04")
    for _ in range(60):
        store.put_message(msg(body=b"x" * 300))
    store.reput()
    cl_dir = store.config.commit_log_dir
    before = len(os.listdir(cl_dir))
    old = datetime.datetime(2026, 11, 20).timestamp()
    for name in os.listdir(cl_dir):
        os.utime(os.path.join(cl_dir, name), (old, old))
    # virtual t=0 is 03:58 local; the first round (t=60 s) is 03:59, the next at 04:00:xx
    start = int(datetime.datetime(2026, 11, 27, 3, 58).timestamp() * 1000)

    def wall() -> int:
        return start + int(trio.current_time() * 1000)

    counts: list[tuple[float, int]] = []
    real = store.clean_expired

    def spy(now_ms: int, force: bool = False) -> int:
        n = real(now_ms, force)
        counts.append((trio.current_time(), n))
        return n

    monkeypatch.setattr(store, "clean_expired", spy)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda **kw: cleaner(store, store.config, now_ms=wall, **kw))
        await trio.sleep(200)
        nursery.cancel_scope.cancel()
    assert counts[0] == (60.0, 0)
    first_delete = next(t for t, n in counts if n)
    assert first_delete == 120.0
    assert sum(n for _, n in counts) == before - 1
    assert len(os.listdir(cl_dir)) == 1  # the file being written stays


async def test_store_services_start_together(make_store, autojump_clock, inline_threads) -> None:  # type: ignore[no-untyped-def]
    store = make_store()
    async with trio.open_nursery() as nursery:
        await nursery.start(store_services, store, store.config)
        store.put_message(msg())
        store.reput()
        store.flush_commit_log()
        await trio.sleep(1.5)
        assert len(_read(store.config.checkpoint_path)) == 4096
        nursery.cancel_scope.cancel()


async def test_slow_disk_gives_flush_timeout(make_store, autojump_clock, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A sender waits syncFlushTimeout for its group commit, then gives up (FLUSH_DISK_TIMEOUT);
    the flush itself still completes later and releases whoever still waits."""
    store = make_store(flushDiskType=FlushDiskType.SYNC_FLUSH)
    real = store.flush_commit_log
    disk_done = threading.Event()

    def slow(least_pages: int = 0) -> int:  # the flush thread blocks here until released
        disk_done.wait(30)
        return real(least_pages)

    monkeypatch.setattr(store, "flush_commit_log", slow)
    waiters = OffsetWaiters()
    wake = FlushWake()
    async with trio.open_nursery() as nursery:
        await nursery.start(commit_log_flusher, store, store.config, waiters, wake)
        end = store.put_message(msg()).append.end_offset
        wake.set()
        timeout = store.config.syncFlushTimeout / 1000
        # the virtual clock jumps to the deadline while the thread is stuck in the "disk"
        assert not await waiters.wait_for(end, timeout=timeout)
        assert trio.current_time() == timeout
        disk_done.set()
        assert await waiters.wait_for(end)  # no deadline: time stands still until it lands
        assert trio.current_time() == timeout
        nursery.cancel_scope.cancel()


async def test_flusher_creates_the_next_file_ahead_of_need(
    make_store, autojump_clock, inline_threads
) -> None:  # type: ignore[no-untyped-def]
    store = make_store(mappedFileSizeCommitLog=16 * 1024)
    async with trio.open_nursery() as nursery:
        await nursery.start(commit_log_flusher, store, store.config, OffsetWaiters(), FlushWake())
        while store.max_phy_offset < 9 * 1024:
            store.put_message(msg(body=b"x" * 500))
        await trio.sleep(10.5)  # a thorough flush, then the successor is prepared
        names = sorted(os.listdir(store.config.commit_log_dir))
        assert names == [f"{0:020d}", f"{16 * 1024:020d}"]
        assert len(store.commit_log.queue.files) == 1
        while store.max_phy_offset < 17 * 1024:
            store.put_message(msg(body=b"x" * 500))
        assert [f.file_from_offset for f in store.commit_log.queue.files] == [0, 16 * 1024]
        nursery.cancel_scope.cancel()


async def test_flusher_prefaults_pages_ahead_of_the_writer(
    make_store, autojump_clock, inline_threads
) -> None:  # type: ignore[no-untyped-def]
    store = make_store(mappedFileSizeCommitLog=256 * 1024)
    async with trio.open_nursery() as nursery:
        await nursery.start(commit_log_flusher, store, store.config, OffsetWaiters(), FlushWake())
        store.put_message(msg(body=b"x" * 500))
        mf = store.commit_log.queue.last()
        assert mf.prefaulted_to == 0
        await trio.sleep(0.6)  # the flusher's first tick finds nothing populated ahead
        assert mf.prefaulted_to == mf.file_size  # the window exceeds this small file
        nursery.cancel_scope.cancel()


async def test_reput_makes_a_lone_new_queues_file_itself_and_a_bursts_in_one_thread_call(
    make_store, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """A new queue's file (mkdir, create, map: ~0.1-0.3 ms here) is made on the loop when it
    is the only one dispatch waits for, so a new topic's first message is dispatched as
    promptly as any other; a burst of new queues (a sender round robin over new topics) is
    made in one worker-thread call while sends go on."""
    from storage.mapped_file_queue import MappedFileQueue

    made: list[tuple[str, bool]] = []  # (topic, on the event loop's thread)
    real_new_file = MappedFileQueue._new_file

    def recording(self, start_offset):  # type: ignore[no-untyped-def]
        if "consumequeue" in self.directory:
            topic = os.path.basename(os.path.dirname(self.directory))
            made.append((topic, threading.current_thread() is threading.main_thread()))
        return real_new_file(self, start_offset)

    monkeypatch.setattr(MappedFileQueue, "_new_file", recording)
    thread_calls = 0
    real_run_sync = trio.to_thread.run_sync

    async def counting(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal thread_calls
        thread_calls += 1
        return await real_run_sync(fn, *args, **kwargs)

    monkeypatch.setattr(trio.to_thread, "run_sync", counting)
    store = make_store()
    wake = Wake()
    send, recv = trio.open_memory_channel[Arrived](64)
    async with trio.open_nursery() as nursery:
        await nursery.start(reput_dispatcher, store, send, wake)
        store.put_message(attrs.evolve(msg(), topic="Lone"))
        wake.set()
        assert (await recv.receive()).topic == "Lone"
        assert made == [("Lone", True)]
        assert thread_calls == 0
        for queue_id in range(4):
            store.put_message(attrs.evolve(msg(queue_id=queue_id), topic="Burst"))
        wake.set()
        arrived = {(await recv.receive()).queue_id for _ in range(4)}
        assert arrived == {0, 1, 2, 3}
        assert made[1:] == [("Burst", False)] * 4
        assert thread_calls == 1
        nursery.cancel_scope.cancel()


class _Sink:
    """An arrivals sink that takes ``room`` arrivals without waiting, then only by ``send``."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.offered: list[Arrived] = []
        self.sent: list[Arrived] = []

    def offer(self, value: Arrived) -> bool:
        if self.room <= 0:
            return False
        self.room -= 1
        self.offered.append(value)
        return True

    async def send(self, value: Arrived) -> None:
        self.sent.append(value)


async def test_inline_dispatch_runs_in_the_caller_only_while_the_actor_waits(
    make_store, autojump_clock, inline_threads
) -> None:  # type: ignore[no-untyped-def]
    """A connection's reader dispatches what its read appended itself (Router.after_read),
    without a turn of the reput actor, but only while the actor waits caught up."""
    store = make_store()
    wake = Wake()
    sink = _Sink(room=1)
    inline = InlineDispatch(store, sink, wake)
    for queue_id in range(4):  # queues with files already (a new one's file is the actor's)
        store.put_message(msg(queue_id=queue_id))
    inline.run()  # the actor is not waiting (not even started): it is rung, nothing dispatched
    assert store.max_offset_in_queue("T", 0) == 0
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(reput_dispatcher, store, sink, wake, inline=inline))
        await trio.testing.wait_all_tasks_blocked()
        assert inline.idle
        store.put_message(msg(queue_id=1))
        inline.run()
        assert store.max_offset_in_queue("T", 1) == 2  # dispatched here, no checkpoint between
        assert [a.queue_id for a in sink.offered] == [1]
        # two queues' arrivals, room for none: the actor is rung and sends them
        store.put_message(msg(queue_id=2))
        store.put_message(msg(queue_id=3))
        inline.run()
        assert store.max_offset_in_queue("T", 3) == 2
        assert sink.sent == []
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(a.queue_id for a in sink.sent) == [2, 3]
        assert inline.left == []
        assert inline.idle
        assert trio.current_time() == 0  # no safety ring was needed
        nursery.cancel_scope.cancel()
