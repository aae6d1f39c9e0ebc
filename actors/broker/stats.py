"""Counters behind GET_BROKER_RUNTIME_INFO and GET_CONSUME_STATS' tps (pure; time is a parameter).

Java keeps per-minute snapshots of running totals and reports the rate over the last window;
so do we, with one window of ``WINDOW_MS`` advanced whenever a figure is read.
"""

from __future__ import annotations

import collections

import attrs

WINDOW_MS = 60_000


@attrs.define
class _Rate:
    total: int = 0
    # (time_ms, total) samples, oldest first, pruned to one window.
    samples: collections.deque[tuple[int, int]] = attrs.Factory(collections.deque)

    def add(self, n: int) -> None:
        self.total += n

    def per_second(self, now_ms: int) -> float:
        self.samples.append((now_ms, self.total))
        while len(self.samples) > 1 and now_ms - self.samples[0][0] > WINDOW_MS:
            self.samples.popleft()
        start_ms, start_total = self.samples[0]
        elapsed = now_ms - start_ms
        return (self.total - start_total) * 1000.0 / elapsed if elapsed > 0 else 0.0


@attrs.define
class BrokerStats:
    put_nums: _Rate = attrs.Factory(_Rate)
    put_bytes: _Rate = attrs.Factory(_Rate)
    get_nums: _Rate = attrs.Factory(_Rate)
    get_bytes: _Rate = attrs.Factory(_Rate)
    put_by_topic: collections.Counter[str] = attrs.Factory(collections.Counter)
    get_by_group_topic: dict[tuple[str, str], _Rate] = attrs.Factory(dict)
    send_failures: int = 0
    busy_rejections: int = 0

    def on_put(self, topic: str, count: int, size: int) -> None:
        self.put_nums.add(count)
        self.put_bytes.add(size)
        self.put_by_topic[topic] += count

    def on_get(self, group: str, topic: str, count: int, size: int) -> None:
        self.get_nums.add(count)
        self.get_bytes.add(size)
        self.get_by_group_topic.setdefault((group, topic), _Rate()).add(count)

    def consume_tps(self, group: str, topic: str, now_ms: int) -> float:
        rate = self.get_by_group_topic.get((group, topic))
        return rate.per_second(now_ms) if rate is not None else 0.0
