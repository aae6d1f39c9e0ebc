"""Latency fault tolerance: the §8.3 thresholds and the least-bad fallback."""

from __future__ import annotations

import pytest

from actors.client.fault import LatencyFaultTolerance, not_available_duration


@pytest.mark.parametrize(
    ("latency", "duration"),
    [
        (0, 0),
        (99, 0),
        (549, 0),
        (550, 30000),
        (999, 30000),
        (1000, 60000),
        (2000, 120000),
        (3000, 180000),
        (15000, 600000),
        (30000, 600000),
    ],
)
def test_not_available_duration(latency: int, duration: int) -> None:
    assert not_available_duration(latency) == duration


def test_failure_isolates_for_ten_minutes() -> None:
    ft = LatencyFaultTolerance()
    ft.update("a", 5, isolation=True, now_ms=1000)
    assert not ft.is_available("a", 1000 + 599_999)
    assert ft.is_available("a", 1000 + 600_000)
    assert ft.is_available("unknown", 0)


def test_fast_send_keeps_broker_available() -> None:
    ft = LatencyFaultTolerance()
    ft.update("a", 40, isolation=False, now_ms=0)
    assert ft.is_available("a", 0)


def test_pick_one_at_least_prefers_the_better_half() -> None:
    ft = LatencyFaultTolerance()
    ft.update("slow", 3000, isolation=False, now_ms=0)
    ft.update("bad", 0, isolation=True, now_ms=0)
    ft.update("ok", 600, isolation=False, now_ms=0)
    ft.update("worse", 15000, isolation=False, now_ms=0)
    # All four are isolated at 1 ms: ranked by their real latency, as Apache's FaultItem
    # (a failure isolates like 30 s but keeps the latency it had, here 0).
    picks = {ft.pick_one_at_least(now_ms=1) for _ in range(10)}
    assert picks == {"bad", "ok"}
    assert LatencyFaultTolerance().pick_one_at_least(0) is None
