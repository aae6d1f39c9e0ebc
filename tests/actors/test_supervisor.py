"""Supervision under autojump_clock: restart with backoff, escalation, ordered shutdown."""

from __future__ import annotations

import logging
from functools import partial

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from actors.supervisor import (
    ActorFailed,
    RestartPolicy,
    RestartTracker,
    open_supervisor,
    supervise,
)


class Boom(Exception):
    pass


def test_tracker_backoff_doubles_caps_and_escalates() -> None:
    policy = RestartPolicy(max_restarts=3, within_seconds=10, backoff_initial=1, backoff_max=3)
    tracker = RestartTracker(policy)
    assert tracker.crashed(0.0) == 1
    assert tracker.crashed(1.0) == 2
    assert tracker.crashed(3.0) == 3  # 4 capped at 3
    assert tracker.crashed(6.0) is None  # a 4th crash within 10 s


def test_tracker_window_slides_and_backoff_resets() -> None:
    policy = RestartPolicy(max_restarts=2, within_seconds=10, backoff_initial=1, backoff_max=8)
    tracker = RestartTracker(policy)
    assert tracker.crashed(0.0) == 1
    assert tracker.crashed(5.0) == 2
    # The crash at 0 left the window: one recent crash, so the backoff is 2 again.
    assert tracker.crashed(10.5) == 2
    # Quiet for a whole window: the streak starts over.
    assert tracker.crashed(100.0) == 1


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="max_restarts"):
        RestartPolicy(max_restarts=-1)
    with pytest.raises(ValueError, match="within_seconds"):
        RestartPolicy(within_seconds=0)


async def test_restarts_after_backoff_then_keeps_running(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    starts: list[float] = []

    async def flaky(*, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        starts.append(trio.current_time())
        task_status.started("handle")
        await trio.sleep(1)
        if len(starts) <= 2:
            raise Boom(f"crash {len(starts)}")
        await trio.sleep_forever()

    policy = RestartPolicy(max_restarts=3, within_seconds=60, backoff_initial=0.5, backoff_max=5)
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(partial(supervise, policy=policy), "flaky", flaky)
        assert handle == "handle"
        await trio.sleep(100)
        nursery.cancel_scope.cancel(reason="test over")
    # crash at 1 -> restart at 1.5; crash at 2.5 -> backoff 1 -> restart at 3.5.
    assert starts == [0, 1.5, 3.5]
    crashes = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(crashes) == 2
    assert all("flaky" in r.getMessage() for r in crashes)
    assert isinstance(crashes[0].exc_info[1], Boom)


async def test_escalates_after_too_many_restarts(autojump_clock: trio.abc.Clock) -> None:
    starts: list[float] = []

    async def doomed(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        starts.append(trio.current_time())
        task_status.started()
        raise Boom("always")

    policy = RestartPolicy(max_restarts=2, within_seconds=60, backoff_initial=1, backoff_max=10)
    with pytest.RaisesGroup(pytest.RaisesExc(ActorFailed, match="doomed")) as info:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(supervise, policy=policy), "doomed", doomed)
            await trio.sleep_forever()
    assert starts == [0, 1, 3]
    failed = info.value.exceptions[0]
    assert isinstance(failed.__cause__, Boom)


async def test_start_waits_through_crashes_before_started(autojump_clock: trio.abc.Clock) -> None:
    attempts = 0

    async def slow_to_start(
        *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise Boom("not yet")
        task_status.started(attempts)
        await trio.sleep_forever()

    policy = RestartPolicy(max_restarts=5, backoff_initial=2)
    async with trio.open_nursery() as nursery:
        t0 = trio.current_time()
        assert await nursery.start(partial(supervise, policy=policy), "slow", slow_to_start) == 3
        assert trio.current_time() - t0 == 2 + 4
        nursery.cancel_scope.cancel()


async def test_no_policy_escalates_the_crash_itself(autojump_clock: trio.abc.Clock) -> None:
    async def store_actor(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep(1)
        raise Boom("disk error")

    with pytest.RaisesGroup(Boom):
        async with trio.open_nursery() as nursery:
            await nursery.start(supervise, "store", store_actor)
            await trio.sleep_forever()


async def test_supervisor_stops_children_in_reverse_start_order(
    autojump_clock: trio.abc.Clock,
) -> None:
    events: list[str] = []

    def make(name: str, cleanup: float) -> object:
        async def child(*, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
            events.append(f"start {name}")
            task_status.started(name)
            try:
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    await trio.sleep(cleanup)
                events.append(f"stopped {name} at {trio.current_time():g}")

        return child

    with trio.CancelScope() as outer:
        async with open_supervisor("tree") as sup:
            assert await sup.start("store", make("store", 1)) == "store"
            assert await sup.start("reput", make("reput", 2)) == "reput"
            assert await sup.start("server", make("server", 3)) == "server"
            assert sup.children == ["store", "reput", "server"]
            # Cancelling the whole tree still stops the children one by one, last first.
            outer.cancel(reason="SIGTERM")
            await trio.sleep_forever()
    starts = [e for e in events if e.startswith("start")]
    stops = [e for e in events if e.startswith("stopped")]
    assert starts == ["start store", "start reput", "start server"]
    assert stops == ["stopped server at 3", "stopped reput at 5", "stopped store at 6"]


async def test_cancel_reason_reaches_the_child(autojump_clock: trio.abc.Clock) -> None:
    seen: list[str] = []

    async def child(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()
        except trio.Cancelled as exc:
            seen.append(str(exc))
            raise

    async with open_supervisor("tree") as sup:
        await sup.start("worker", child)
    assert len(seen) == 1
    assert "tree: shutting down" in seen[0]


async def test_escalation_stops_siblings_in_order_then_propagates(
    autojump_clock: trio.abc.Clock,
) -> None:
    stopped: list[str] = []

    async def steady(
        name: str, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            stopped.append(name)

    async def failing(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep(1)
        raise Boom("registrar broke")

    policy = RestartPolicy(max_restarts=1, backoff_initial=1)
    with pytest.RaisesGroup(pytest.RaisesExc(ActorFailed, match="registrar")):
        async with open_supervisor("broker") as sup:
            await sup.start("a", steady, "a")
            await sup.start("registrar", failing, policy=policy)
            await sup.start("b", steady, "b")
            await trio.sleep_forever()
    assert stopped == ["b", "a"]
    assert trio.current_time() == 3  # crash at 1, restart at 2, crash at 3 -> escalate


@given(
    gaps=st.lists(st.floats(min_value=0, max_value=50, allow_nan=False), max_size=30),
    max_restarts=st.integers(min_value=0, max_value=5),
)
def test_tracker_matches_the_sliding_window_model(gaps: list[float], max_restarts: int) -> None:
    policy = RestartPolicy(
        max_restarts=max_restarts, within_seconds=20, backoff_initial=0.5, backoff_max=4
    )
    tracker = RestartTracker(policy)
    restarts: list[float] = []  # model: times of crashes that were restarted
    now = 0.0
    for gap in gaps:
        now += gap
        recent = [t for t in restarts if t > now - 20]
        delay = tracker.crashed(now)
        if len(recent) >= max_restarts:
            assert delay is None
            return  # escalated: supervision ends here
        assert delay == min(0.5 * 2 ** len(recent), 4)
        restarts.append(now)


async def test_a_child_that_returns_is_not_restarted(autojump_clock: trio.abc.Clock) -> None:
    runs = 0

    async def one_shot(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal runs
        runs += 1
        task_status.started()
        await trio.sleep(1)

    async with open_supervisor("tree") as sup:
        await sup.start("once", one_shot, policy=RestartPolicy())
        await trio.sleep(10)
        assert sup.children == []
    assert runs == 1
