"""Latency fault tolerance of the producer (Java's MQFaultStrategy), pure.

After each send the producer reports how long it took; a broker that was slow or failed
is "not available" for a while (thresholds from §8.3), and queue selection skips it.
When every broker is isolated the least bad one is still used, so isolation can never
make a send impossible.  Time is a parameter (milliseconds).

Off by default, as in Apache (``sendLatencyFaultEnable=false``): one failed send isolates
a broker for ten minutes, which would starve a broker that was merely restarted.
The tables are Apache 4.9's MQFaultStrategy ``latencyMax`` and ``notAvailableDuration``.
"""

from __future__ import annotations

import attrs

LATENCY_MAX_MS = (50, 100, 550, 1000, 2000, 3000, 15000)
NOT_AVAILABLE_MS = (0, 0, 30000, 60000, 120000, 180000, 600000)
# A failed send is isolated as if it had taken this long; the item still records the real
# latency (MQFaultStrategy.updateFaultItem), which ranks it in pick_one_at_least.
FAILURE_LATENCY_MS = 30000


def not_available_duration(latency_ms: int) -> int:
    for limit, duration in zip(reversed(LATENCY_MAX_MS), reversed(NOT_AVAILABLE_MS), strict=True):
        if latency_ms >= limit:
            return duration
    return 0


@attrs.define
class FaultItem:
    broker_name: str
    latency_ms: int
    available_from_ms: int

    def available(self, now_ms: int) -> bool:
        return now_ms >= self.available_from_ms


@attrs.define(eq=False)
class LatencyFaultTolerance:
    _items: dict[str, FaultItem] = attrs.field(factory=dict, alias="_items")
    _which: int = attrs.field(default=0, alias="_which")

    def update(self, broker_name: str, latency_ms: int, *, isolation: bool, now_ms: int) -> None:
        until = now_ms + not_available_duration(FAILURE_LATENCY_MS if isolation else latency_ms)
        self._items[broker_name] = FaultItem(broker_name, latency_ms, until)

    def is_available(self, broker_name: str, now_ms: int) -> bool:
        item = self._items.get(broker_name)
        return item is None or item.available(now_ms)

    def remove(self, broker_name: str) -> None:
        self._items.pop(broker_name, None)

    def pick_one_at_least(self, now_ms: int) -> str | None:
        """Among known brokers, one of the better half (available first, then lowest latency)."""
        if not self._items:
            return None
        ranked = sorted(
            self._items.values(),
            key=lambda it: (not it.available(now_ms), it.latency_ms, it.available_from_ms),
        )
        half = ranked[: max(1, len(ranked) // 2)]
        self._which += 1
        return half[self._which % len(half)].broker_name
