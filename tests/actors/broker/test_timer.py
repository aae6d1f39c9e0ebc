"""Exact-time delivery (RocketMQ 5 timer messages) against a real store, on virtual time."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from actors.broker.delay import TIMER_TOPIC, TimerConst
from actors.broker.timer import TimerService
from protocol.message import MessageConst
from storage.timer_wheel import TimerWheel
from tests.actors.broker.delay_harness import T0, StoreHarness, clock_ms

PRECISION = 1000


def service(h: StoreHarness) -> TimerService:
    wheel = TimerWheel(h.root / "timer", h.timer, slots=120)
    svc = TimerService(h.store, wheel, clock_ms, on_put=h.dispatch, idle_poll=3600.0)
    h.listeners.append(svc)
    return svc


def deliver_at(ms: int) -> dict[str, str]:
    return {TimerConst.TIMER_DELIVER_MS: str(ms)}


async def test_each_message_is_delivered_within_its_tick(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    h = StoreHarness(tmp_path)
    svc = service(h)
    wanted = {
        "abs": (deliver_at(T0 + 3_500), T0 + 3_500),
        "sec": ({TimerConst.TIMER_DELAY_SEC: "7"}, T0 + 7_000),
        "ms": ({TimerConst.TIMER_DELAY_MS: "1234"}, T0 + 1_234),
        "far": ({TimerConst.TIMER_DELAY_SEC: "100"}, T0 + 100_000),
    }
    for key, (props, _) in wanted.items():
        h.send("T", {**props, MessageConst.KEYS: key, MessageConst.TAGS: "TagT"}, queue_id=2)
    assert [m.topic for m in h.read(TIMER_TOPIC)] == [TIMER_TOPIC] * 4
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.run)
        await trio.sleep(101)
        nursery.cancel_scope.cancel()
    got = {m.properties[MessageConst.KEYS]: m for m in h.read("T", 2)}
    assert got.keys() == wanted.keys()
    for key, (_, deliver_ms) in wanted.items():
        msg = got[key]
        assert deliver_ms <= msg.store_timestamp < deliver_ms + PRECISION, key
        assert msg.properties[TimerConst.TIMER_OUT_MS] == str(deliver_ms)
        assert MessageConst.REAL_TOPIC not in msg.properties
        assert msg.properties[MessageConst.TAGS] == "TagT"
    assert svc.delivered == 4


async def test_pending_timers_survive_a_restart(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    h = StoreHarness(tmp_path)
    for i in range(5):
        h.send("T", {**deliver_at(T0 + 20_000 + i * 1000), MessageConst.KEYS: str(i)})
    async with trio.open_nursery() as nursery:
        await nursery.start(service(h).run)
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    # sent while the timer service is down: enqueued from the topic after the restart
    h.send("T", {**deliver_at(T0 + 21_500), MessageConst.KEYS: "late"})
    h.restart()
    h.listeners.clear()
    again = service(h)
    async with trio.open_nursery() as nursery:
        await nursery.start(again.run)
        await trio.sleep(30 - trio.current_time())
        nursery.cancel_scope.cancel()
    got = sorted((m.store_timestamp - T0, m.properties[MessageConst.KEYS]) for m in h.read("T"))
    assert got == [
        (20_000, "0"),
        (21_000, "1"),
        (22_000, "2"),
        (22_000, "late"),
        (23_000, "3"),
        (24_000, "4"),
    ]


async def test_overdue_timers_fire_at_once_after_downtime(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    h = StoreHarness(tmp_path)
    h.send("T", deliver_at(T0 + 2_000))
    await trio.sleep(60)  # no timer service for a minute
    async with trio.open_nursery() as nursery:
        await nursery.start(service(h).run)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    [msg] = h.read("T")
    assert T0 + 60_000 <= msg.store_timestamp <= T0 + 61_000


async def test_second_start_does_nothing(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    h = StoreHarness(tmp_path)
    svc = service(h)
    async with trio.open_nursery() as nursery:
        assert await nursery.start(svc.run) is svc
        assert await nursery.start(svc.run) is svc
        h.send("T", deliver_at(T0 + 1_500))
        await trio.sleep(3)
        nursery.cancel_scope.cancel()
    assert len(h.read("T")) == 1
    assert not svc.running


async def test_failed_put_is_retried_without_losing_the_tick(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    h = StoreHarness(tmp_path)
    svc = service(h)
    for i in range(3):
        h.send("T", {**deliver_at(T0 + 2_000), MessageConst.KEYS: str(i)})
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.run)
        await trio.sleep(1.5)
        h.store.flags.writeable = False
        await trio.sleep(2)
        assert h.read("T") == []
        h.store.flags.writeable = True
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    assert sorted(m.properties[MessageConst.KEYS] for m in h.read("T")) == ["0", "1", "2"]


async def test_unusable_wheel_files_turn_exact_time_delivery_off_not_the_broker(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    h = StoreHarness(tmp_path)
    svc = service(h)
    (svc.wheel.dir / "timerlog").mkdir(parents=True)
    (svc.wheel.dir / "timerlog" / f"{0:020d}").write_bytes(b"too short")
    async with trio.open_nursery() as nursery:
        assert await nursery.start(svc.run) is svc  # starts, logs, and ends
        h.send("T", deliver_at(T0 + 1_000))
        await trio.sleep(2)
    assert not svc.running
    assert h.read("T") == []  # the timed message waits in its topic
    assert len(h.read(TIMER_TOPIC)) == 1
