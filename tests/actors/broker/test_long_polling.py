"""The long-polling actor under virtual time: arrivals, timeouts, the periodic queue check."""

from __future__ import annotations

import functools

import attrs
import trio
import trio.testing

from actors.broker.clients import build_subscription
from actors.broker.long_polling import (
    CHECK_INTERVAL,
    HeldOnly,
    HeldPull,
    PullHoldTable,
    long_polling,
)
from protocol.message import java_hash


@attrs.frozen
class Arrival:
    topic: str
    queue_id: int
    max_offset: int
    tags_code: int


def held(offset: int, deadline: float, expression: str = "*") -> HeldPull:
    return HeldPull("T", 0, offset, build_subscription("T", expression), deadline)


async def start(nursery, table, max_offsets):
    resumed: list[tuple[float, HeldPull]] = []

    async def resume(pull: HeldPull) -> None:
        resumed.append((trio.current_time(), pull))

    send, recv = trio.open_memory_channel(16)
    await nursery.start(
        functools.partial(
            long_polling, table, recv, resume, lambda t, q: max_offsets.get((t, q), 0)
        )
    )
    return send, resumed


async def test_arrival_releases_matching_pull_at_once(nursery, autojump_clock):
    table = PullHoldTable()
    send, resumed = await start(nursery, table, {})
    tagged = held(3, 15, "TagB")
    plain = held(3, 15)
    table.hold(tagged)
    table.hold(plain)
    await trio.sleep(2)
    await send.send(Arrival("T", 0, 4, java_hash("TagA")))
    await trio.testing.wait_all_tasks_blocked()
    assert resumed == [(2, plain)]
    await send.send(Arrival("T", 0, 5, java_hash("TagB")))
    await trio.testing.wait_all_tasks_blocked()
    assert resumed[1] == (2, tagged)
    assert not table  # both released: later arrivals skip the table
    await send.send(Arrival("T", 0, 6, java_hash("TagB")))
    await trio.testing.wait_all_tasks_blocked()
    assert len(resumed) == 2
    table.hold(held(6, 15))
    assert table


async def test_timeout_releases_pull_on_time(nursery, autojump_clock):
    table = PullHoldTable()
    _, resumed = await start(nursery, table, {})
    table.hold(held(0, trio.current_time() + 15))
    await trio.sleep(14.9)
    assert resumed == []
    await trio.sleep(1.2)  # at most MAX_SLEEP late
    assert len(resumed) == 1
    assert 15 <= resumed[0][0] <= 16


async def test_periodic_check_catches_missed_arrivals(nursery, autojump_clock):
    table = PullHoldTable()
    offsets = {("T", 0): 0}
    _, resumed = await start(nursery, table, offsets)
    table.hold(held(0, 100, "TagB"))
    offsets[("T", 0)] = 1  # grew without an arrival announcement
    await trio.sleep(CHECK_INTERVAL + 1.1)
    assert len(resumed) == 1
    assert resumed[0][0] <= CHECK_INTERVAL + 1.1


async def test_actor_ends_when_arrivals_close(nursery, autojump_clock):
    table = PullHoldTable()
    send, _ = await start(nursery, table, {})
    await send.aclose()
    await trio.testing.wait_all_tasks_blocked()
    assert not nursery.child_tasks


async def test_held_only_passes_arrivals_for_queues_with_held_pulls():
    table = PullHoldTable()
    send, recv = trio.open_memory_channel(16)
    sink = HeldOnly(send, table)
    await sink.send(Arrival("T", 0, 5, 0))  # nobody waits: dropped, no channel hop
    assert recv.statistics().current_buffer_used == 0
    table.hold(held(4, 10.0))
    await sink.send(Arrival("T", 1, 5, 0))  # another queue
    await sink.send(Arrival("T", 0, 5, 0))
    assert recv.receive_nowait() == Arrival("T", 0, 5, 0)
    assert recv.statistics().current_buffer_used == 0
