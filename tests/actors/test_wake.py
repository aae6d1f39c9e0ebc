"""actors/wake.py: who waits when ``set`` is called wakes; nobody else, and nothing is remembered."""

from __future__ import annotations

import trio
import trio.testing

from actors.wake import Wake


async def test_set_wakes_every_current_waiter_and_is_not_remembered(autojump_clock) -> None:
    wake = Wake()
    woken: list[int] = []

    async def waiter(i: int) -> None:
        await wake.wait()
        woken.append(i)

    wake.set()  # nobody waits: forgotten
    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(waiter, i)
        await trio.testing.wait_all_tasks_blocked()
        assert woken == []
        wake.set()
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(woken) == [0, 1, 2]
        nursery.start_soon(waiter, 3)
        await trio.testing.wait_all_tasks_blocked()
        assert len(woken) == 3  # a waiter after the set waits for the next one
        wake.set()
    assert sorted(woken) == [0, 1, 2, 3]
