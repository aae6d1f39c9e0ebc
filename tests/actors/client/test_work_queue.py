"""WorkQueue: FIFO, bounded, wakes one worker at a time and spreads work that blocks."""

from __future__ import annotations

import trio
import trio.testing

from actors.client.work_queue import WorkQueue


async def test_items_come_out_in_order_and_put_waits_for_room(autojump_clock) -> None:
    queue: WorkQueue[int] = WorkQueue(capacity=2)
    put_done: list[int] = []

    async def producer() -> None:
        for i in range(5):
            await queue.put(i)
            put_done.append(i)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(producer)
        await trio.testing.wait_all_tasks_blocked()
        assert put_done == [0, 1]  # the third put waits for room
        assert len(queue) == 2
        got = [await queue.take() for _ in range(5)]
    assert got == [0, 1, 2, 3, 4]
    assert put_done == [0, 1, 2, 3, 4]


async def test_take_ready_takes_only_what_is_there_and_makes_room(autojump_clock) -> None:
    queue: WorkQueue[str] = WorkQueue(capacity=1)
    assert queue.take_ready() is None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(queue.put_all, ["a", "b"])
        await trio.testing.wait_all_tasks_blocked()
        assert queue.take_ready() == "a"  # and the waiting put goes on
        await trio.testing.wait_all_tasks_blocked()
        assert queue.take_ready() == "b"
    assert queue.take_ready() is None


async def test_put_all_waits_for_room_and_wakes_a_taker_first(autojump_clock) -> None:
    queue: WorkQueue[int] = WorkQueue(capacity=2)
    got: list[int] = []

    async def taker() -> None:
        while True:
            got.append(await queue.take())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(taker)
        await trio.testing.wait_all_tasks_blocked()
        with trio.fail_after(5):  # a full queue that woke nobody would wait forever
            await queue.put_all(range(7))
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert got == list(range(7))


async def _pool(
    queue: WorkQueue[int], workers: int, handle, nursery: trio.Nursery
) -> list[list[int]]:  # type: ignore[no-untyped-def]
    done: list[list[int]] = [[] for _ in range(workers)]

    async def worker(me: int) -> None:
        while True:
            item = await queue.take()
            queue.spread()
            await handle(item)
            done[me].append(item)

    for i in range(workers):
        nursery.start_soon(worker, i)
    await trio.testing.wait_all_tasks_blocked()
    return done


async def test_work_that_never_blocks_runs_on_one_worker(autojump_clock) -> None:
    queue: WorkQueue[int] = WorkQueue(capacity=100)
    switches = 0

    async def handle(item: int) -> None:
        pass

    async with trio.open_nursery() as nursery:
        done = await _pool(queue, 4, handle, nursery)
        for i in range(50):
            await queue.put(i)
        before = trio.lowlevel.current_statistics().tasks_runnable
        assert before == 1  # one woken worker, not one per item
        await trio.testing.wait_all_tasks_blocked()
        switches = sum(1 for d in done if d)
        nursery.cancel_scope.cancel()
    assert switches == 1
    assert sorted(i for d in done for i in d) == list(range(50))


async def test_work_that_blocks_spreads_over_every_worker(autojump_clock) -> None:
    queue: WorkQueue[int] = WorkQueue(capacity=100)

    async def handle(item: int) -> None:
        await trio.sleep(1)

    async with trio.open_nursery() as nursery:
        done = await _pool(queue, 4, handle, nursery)
        start = trio.current_time()
        for i in range(8):
            await queue.put(i)
        await trio.sleep(2)
        await trio.testing.wait_all_tasks_blocked()
        elapsed = trio.current_time() - start
        nursery.cancel_scope.cancel()
    assert all(len(d) == 2 for d in done)  # four at a time: two rounds of one second
    assert elapsed == 2


async def test_a_taker_cancelled_while_parked_does_not_stall_the_queue(autojump_clock) -> None:
    queue: WorkQueue[int] = WorkQueue(capacity=10)
    got: list[int] = []
    scopes: list[trio.CancelScope] = []

    async def taker() -> None:
        with trio.CancelScope() as scope:
            scopes.append(scope)
            got.append(await queue.take())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(taker)
        nursery.start_soon(taker)
        await trio.testing.wait_all_tasks_blocked()
        scopes[0].cancel()
        await trio.testing.wait_all_tasks_blocked()
        await queue.put(7)
    assert got == [7]
