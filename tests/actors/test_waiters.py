"""OffsetWaiters under autojump_clock."""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from actors.waiters import OffsetWaiters


async def test_reached_offset_returns_at_once() -> None:
    waiters = OffsetWaiters(current=100)
    assert await waiters.wait_for(100, timeout=0)
    assert await waiters.wait_for(5)


async def test_advance_wakes_exactly_the_waiters_due(autojump_clock: trio.abc.Clock) -> None:
    waiters = OffsetWaiters()
    woken: dict[int, float] = {}

    async def wait(offset: int) -> None:
        assert await waiters.wait_for(offset, timeout=100)
        woken[offset] = trio.current_time()

    async with trio.open_nursery() as nursery:
        for offset in (30, 10, 20, 40):
            nursery.start_soon(wait, offset)
        await trio.sleep(1)
        waiters.advance(20)
        await trio.sleep(1)
        assert woken == {10: 1, 20: 1}
        waiters.advance(15)  # going back is ignored
        assert waiters.current == 20
        waiters.advance(40)
    assert woken == {10: 1, 20: 1, 30: 2, 40: 2}
    assert len(waiters) == 0


async def test_timeout_returns_false_and_late_advance_is_harmless(
    autojump_clock: trio.abc.Clock,
) -> None:
    waiters = OffsetWaiters()
    t0 = trio.current_time()
    assert not await waiters.wait_for(10, timeout=5)
    assert trio.current_time() - t0 == 5
    waiters.advance(10)
    assert len(waiters) == 0


async def test_abandoned_waiters_are_swept_when_advance_stalls(
    autojump_clock: trio.abc.Clock,
) -> None:
    waiters = OffsetWaiters()

    async def give_up(offset: int) -> None:
        assert not await waiters.wait_for(offset, timeout=1)

    async with trio.open_nursery() as nursery:
        for offset in range(1, 1001):
            nursery.start_soon(give_up, offset)
    assert len(waiters) < 200


async def test_cancelled_waiter_leaves_no_live_entry(autojump_clock: trio.abc.Clock) -> None:
    waiters = OffsetWaiters()
    with trio.move_on_after(1):
        await waiters.wait_for(10)
    # The entry is garbage now; advancing past it wakes nobody and clears it.
    waiters.advance(10)
    assert len(waiters) == 0
    assert await waiters.wait_for(10, timeout=0)


async def test_cancelled_keeper_hands_its_timer_on(autojump_clock: trio.abc.Clock) -> None:
    """The first waiter of a group holds the group's timer; cancelling it must not leave the
    others waiting past their deadline, nor wake them as timed out early."""
    waiters = OffsetWaiters()
    results: list[tuple[bool, float]] = []

    async def wait() -> None:
        results.append((await waiters.wait_for(10, timeout=5), trio.current_time()))

    keeper = trio.CancelScope()

    async def first() -> None:
        with keeper:
            await waiters.wait_for(10, timeout=5)

    with trio.fail_after(30):  # without a handed-on timer the others would wait forever
        async with trio.open_nursery() as nursery:
            nursery.start_soon(first)
            await trio.testing.wait_all_tasks_blocked()  # first becomes the keeper
            for _ in range(3):
                nursery.start_soon(wait)
            await trio.sleep(1)
            keeper.cancel()
    assert results == [(False, 5.0)] * 3
    assert len(waiters) == 0


async def test_one_advance_wakes_a_group_and_leaves_later_offsets_waiting(
    autojump_clock: trio.abc.Clock,
) -> None:
    waiters = OffsetWaiters()
    done: list[int] = []

    async def wait(offset: int) -> None:
        assert await waiters.wait_for(offset, timeout=60)
        done.append(offset)

    async with trio.open_nursery() as nursery:
        for offset in range(1, 65):
            nursery.start_soon(wait, offset)
        await trio.sleep(1)
        assert len(waiters) == 64
        waiters.advance(32)
        await trio.sleep(1)
        assert sorted(done) == list(range(1, 33))
        assert len(waiters) == 32  # the rest regrouped, still waiting
        waiters.advance(64)
    assert sorted(done) == list(range(1, 65))


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("wait"), st.integers(0, 50), st.integers(0, 5)),
        st.tuples(st.just("advance"), st.integers(0, 50), st.just(0)),
    ),
    max_size=25,
)


@given(ops=_ops)
def test_waiters_match_a_model(ops: list[tuple[str, int, int]]) -> None:
    """Op i happens at virtual time i; a waiter's timeout is n + 0.5 s to avoid ties."""
    clock = trio.testing.MockClock(autojump_threshold=0)
    results: dict[int, bool] = {}

    async def scenario() -> None:
        waiters = OffsetWaiters()

        async def wait(i: int, offset: int, timeout: float) -> None:
            results[i] = await waiters.wait_for(offset, timeout)

        async with trio.open_nursery() as nursery:
            for i, (op, value, timeout) in enumerate(ops):
                if op == "wait":
                    nursery.start_soon(wait, i, value, timeout + 0.5)
                else:
                    waiters.advance(value)
                await trio.sleep(1)

    trio.run(scenario, clock=clock)  # a fresh run and clock per example
    level, history = 0, []  # history[i] = current after op i
    for op, value, _ in ops:
        if op == "advance":
            level = max(level, value)
        history.append(level)
    for i, (op, offset, timeout) in enumerate(ops):
        if op != "wait":
            continue
        # Ops i .. i+timeout happen before the deadline i + timeout + 0.5.
        reached = [history[j] for j in range(i, min(i + timeout + 1, len(ops)))]
        assert results[i] == (max(reached) >= offset), (i, ops)
