"""The schedule service against a real store, on virtual time (autojump_clock)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.broker.schedule import ScheduleService
from protocol.message import MessageConst, java_hash
from storage.delay_offsets import FILE_NAME, DelayOffsetTable
from tests.actors.broker.delay_harness import T0, StoreHarness, clock_ms

HOUR = 3600.0


def service(
    h: StoreHarness, offsets: DelayOffsetTable | None = None, **kw: float
) -> ScheduleService:
    svc = ScheduleService(
        h.store,
        h.levels,
        offsets if offsets is not None else DelayOffsetTable.load(h.config_dir),
        h.config_dir,
        clock_ms,
        on_put=h.dispatch,
        idle_poll=kw.pop("idle_poll", HOUR),
        **kw,
    )
    h.listeners.append(svc)
    return svc


async def test_every_level_fires_at_its_time(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    h = StoreHarness(tmp_path)
    svc = service(h)
    for level in h.levels.levels():
        h.send(
            "T",
            {
                MessageConst.DELAY: str(level),
                MessageConst.TAGS: "TagA",
                MessageConst.KEYS: f"k{level}",
            },
            queue_id=level % 4,
            body=f"level {level}".encode(),
        )
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.run)
        await trio.sleep(2 * HOUR + 1)  # virtual: the 2-hour level does not take 2 hours
        nursery.cancel_scope.cancel()

    delivered = [m for q in range(4) for m in h.read("T", q)]
    assert len(delivered) == h.levels.max_level
    for msg in delivered:
        level = int(msg.properties[MessageConst.KEYS][1:])
        assert msg.store_timestamp == T0 + h.levels.delay_ms(level)  # exactly on time
        assert msg.queue_id == level % 4
        assert msg.body == f"level {level}".encode()
        assert msg.properties[MessageConst.DELAY] == str(level)  # kept, as Apache 4.9 does
        assert msg.properties[MessageConst.REAL_TOPIC] == "T"
        assert msg.properties[MessageConst.TAGS] == "TagA"
        assert msg.born_timestamp == T0
    # the real queue carries the tag's hash again, not a delivery time
    tagged = h.store.get_message("g", "T", 1, 0, 32, tag_codes={java_hash("TagA")})
    assert tagged.message_count == len(h.read("T", 1))
    assert svc.delivered == 18
    persisted = DelayOffsetTable.load(h.config_dir)
    assert all(persisted.get(level) == 1 for level in h.levels.levels())


async def test_not_due_messages_wait_and_order_is_kept(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    h = StoreHarness(tmp_path)
    svc = service(h)
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.run)
        for i in range(5):
            h.send("T", {MessageConst.DELAY: "2", MessageConst.KEYS: str(i)})
            await trio.sleep(0.25)
        await trio.sleep(4.9 - 1.25)
        assert h.read("T") == []  # the first is due at 5 s
        await trio.sleep(1.5)
        nursery.cancel_scope.cancel()
    got = h.read("T")
    assert [m.properties[MessageConst.KEYS] for m in got] == ["0", "1", "2", "3", "4"]
    assert [m.store_timestamp - T0 for m in got] == [5000, 5250, 5500, 5750, 6000]


def send_spread(h: StoreHarness) -> None:
    for i in range(6):
        h.send("T", {MessageConst.DELAY: "2", MessageConst.KEYS: f"a{i}"})  # 5 s
        h.send("T", {MessageConst.DELAY: "4", MessageConst.KEYS: f"b{i}"})  # 30 s


async def test_restart_in_the_middle_loses_nothing(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    h = StoreHarness(tmp_path)
    send_spread(h)
    async with trio.open_nursery() as nursery:
        await nursery.start(service(h).run)
        await trio.sleep(10)  # level 2 delivered, level 4 not yet
        nursery.cancel_scope.cancel()
    assert len(h.read("T")) == 6
    assert DelayOffsetTable.load(h.config_dir).as_dict() == {2: 6}

    h.restart()  # a new store and a new service: progress comes from delayOffset.json
    h.listeners.clear()
    again = service(h)
    async with trio.open_nursery() as nursery:
        await nursery.start(again.run)
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    keys = [m.properties[MessageConst.KEYS] for m in h.read("T")]
    assert sorted(keys) == sorted([f"a{i}" for i in range(6)] + [f"b{i}" for i in range(6)])
    assert again.delivered == 6  # exactly once across a clean restart


async def test_crash_redelivers_rather_than_loses(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    h = StoreHarness(tmp_path)
    send_spread(h)
    async with trio.open_nursery() as nursery:
        await nursery.start(service(h, persist_interval=8.0).run)
        await trio.sleep(8.5)  # level 2 delivered at 5 s and persisted at 8 s...
        # the write runs in a worker thread, which virtual time does not wait for
        while not (h.config_dir / FILE_NAME).exists():  # noqa: ASYNC110
            await trio.sleep(0.001)
        await trio.sleep(31 - trio.current_time())  # ...level 4 delivered at 30 s...
        crashed = (h.config_dir / FILE_NAME).read_text()  # ...but the process dies at 31 s
        nursery.cancel_scope.cancel()
    (h.config_dir / FILE_NAME).write_text(crashed)
    h.restart()
    h.listeners.clear()
    again = service(h)
    async with trio.open_nursery() as nursery:
        await nursery.start(again.run)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    keys = [m.properties[MessageConst.KEYS] for m in h.read("T")]
    assert set(keys) == {f"{p}{i}" for p in "ab" for i in range(6)}
    assert len(keys) == 12 + again.delivered  # repeats, never gaps
    assert again.delivered == 6  # level 4 again


async def test_second_start_does_nothing_and_a_stopped_service_starts_again(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    h = StoreHarness(tmp_path)
    svc = service(h)
    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as master_scope:  # what the role supervisor's MASTER scope is
            async with trio.open_nursery() as role:
                assert await role.start(svc.run) is svc
                assert await role.start(svc.run) is svc  # returns at once, starts nothing
                h.send("T", {MessageConst.DELAY: "1"})
                await trio.sleep(2)
                assert svc.delivered == 1
                master_scope.cancel()
        assert not svc.running
        h.send("T", {MessageConst.DELAY: "1"})
        await trio.sleep(5)
        assert len(h.read("T")) == 1  # a slave does not deliver
        await nursery.start(svc.run)  # master again
        await trio.sleep(1)
        assert len(h.read("T")) == 2
        nursery.cancel_scope.cancel()


async def test_failed_put_is_retried(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    h = StoreHarness(tmp_path)
    svc = service(h)
    h.send("T", {MessageConst.DELAY: "1"})
    h.store.flags.writeable = False
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.run)
        await trio.sleep(3)
        assert h.read("T") == []
        h.store.flags.writeable = True
        await trio.sleep(0.2)
        nursery.cancel_scope.cancel()
    assert [m.store_timestamp - T0 for m in h.read("T")] == [3000]


async def test_idle_poll_finds_messages_without_a_notification(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    h = StoreHarness(tmp_path)
    svc = service(h, idle_poll=1.0)
    h.listeners.clear()  # reput does not tell the service
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.run)
        h.send("T", {MessageConst.DELAY: "1"})
        await trio.sleep(2.5)
        nursery.cancel_scope.cancel()
    assert len(h.read("T")) == 1


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sends=st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=6), st.integers(min_value=0, max_value=90_000)
        ),
        min_size=1,
        max_size=25,
    ),
    stop_at=st.integers(min_value=0, max_value=200_000),
)
def test_any_mix_of_levels_with_a_restart_is_delivered_once_and_never_early(
    tmp_path_factory: pytest.TempPathFactory, sends: list[tuple[int, int]], stop_at: int
) -> None:
    root = tmp_path_factory.mktemp("schedule")

    async def main() -> tuple[dict[str, int], dict[str, int]]:
        h = StoreHarness(root)
        due: dict[str, int] = {}
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def run_first() -> None:
                with scope:
                    await service(h).run()

            nursery.start_soon(run_first)
            for i, (level, at_ms) in enumerate(sorted(sends, key=lambda s: s[1])):
                await trio.sleep(max(0, T0 + at_ms - clock_ms()) / 1000)
                h.send("T", {MessageConst.DELAY: str(level), MessageConst.KEYS: str(i)})
                due[str(i)] = clock_ms() + h.levels.delay_ms(level)
            await trio.sleep(max(0, T0 + stop_at - clock_ms()) / 1000)
            scope.cancel()
        h.restart()
        h.listeners.clear()
        async with trio.open_nursery() as nursery:
            await nursery.start(service(h).run)
            await trio.sleep(400)  # beyond every due time (level 6 = 2 min, sent by 90 s)
            nursery.cancel_scope.cancel()
        got = h.read("T")
        h.store.shutdown()
        assert sorted(m.properties[MessageConst.KEYS] for m in got) == sorted(due)  # once each
        return due, {m.properties[MessageConst.KEYS]: m.store_timestamp for m in got}

    due, delivered = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    for key, at in delivered.items():
        assert at >= due[key]  # never early
        if due[key] < T0 + stop_at:
            assert at == due[key]  # and on time while the service ran
