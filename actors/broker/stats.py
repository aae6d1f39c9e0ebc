"""Counters behind GET_BROKER_RUNTIME_INFO, GET_CONSUME_STATS' tps, VIEW_BROKER_STATS_DATA and
/metrics (pure; time is a parameter).

Java keeps per-minute snapshots of running totals and reports the rate over the last window;
so do we, with one window of ``WINDOW_MS`` advanced whenever a figure is read.  The hot path
only adds to plain counters; VIEW_BROKER_STATS_DATA's minute/hour/day figures come from
snapshots ``StatsWindows.sample`` takes every 10 s (Java's StatsItem sampling), and /metrics
reads the same counters at scrape time.
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Iterator

import attrs

WINDOW_MS = 60_000

# Upper bounds (ms, inclusive) of the latency histograms.  They contain Java's
# putMessageDistributeTime bucket edges (1, 10, 50, 100, 200, 500, 1000 ms) so that
# table is derived from them, with finer steps below 10 ms for Prometheus.
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    0.1,
    0.25,
    0.5,
    1,
    2,
    5,
    10,
    20,
    50,
    100,
    200,
    500,
    1000,
    2000,
    5000,
)
# Java's labels for its eight put-latency buckets, upper edges in LATENCY_BOUNDS_MS (None: rest)
JAVA_PUT_BUCKETS: tuple[tuple[str, float | None], ...] = (
    ("<=0ms", 1),
    ("0~10ms", 10),
    ("10~50ms", 50),
    ("50~100ms", 100),
    ("100~200ms", 200),
    ("200~500ms", 500),
    ("500ms~1s", 1000),
    (">=1s", None),
)


@attrs.define
class LatencyHistogram:
    """Cumulative-free bucket counts over ``LATENCY_BOUNDS_MS`` plus an overflow bucket."""

    counts: list[int] = attrs.Factory(lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))
    total_ms: float = 0.0
    max_ms: float = 0.0
    count: int = 0

    def observe(self, ms: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BOUNDS_MS, ms)] += 1
        self.total_ms += ms
        self.count += 1
        if ms > self.max_ms:
            self.max_ms = ms

    def cumulative(self) -> Iterator[tuple[float, int]]:
        """(upper bound, observations <= it) as Prometheus wants, ending with +Inf."""
        running = 0
        for bound, n in zip((*LATENCY_BOUNDS_MS, float("inf")), self.counts, strict=True):
            running += n
            yield bound, running

    def quantile(self, q: float) -> float:
        """The upper bound of the bucket holding the q-quantile (0 when empty)."""
        if not self.count:
            return 0.0
        rank = q * self.count
        for bound, running in self.cumulative():
            if running >= rank:
                return bound if bound != float("inf") else self.max_ms
        return self.max_ms

    def java_distribution(self) -> str:
        """putMessageDistributeTime's text: ``[<=0ms]:n [0~10ms]:n ... [>=1s]:n``."""
        parts = []
        below = 0
        cumulative = dict(self.cumulative())
        for label, edge in JAVA_PUT_BUCKETS:
            upto = cumulative[edge] if edge is not None else self.count
            parts.append(f"[{label}]:{upto - below}")
            below = upto
        return " ".join(parts)


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
    put_bytes_by_topic: collections.Counter[str] = attrs.Factory(collections.Counter)
    put_times_by_topic: collections.Counter[str] = attrs.Factory(collections.Counter)
    get_by_group_topic: dict[tuple[str, str], _Rate] = attrs.Factory(dict)
    get_bytes_by_group_topic: collections.Counter[tuple[str, str]] = attrs.Factory(
        collections.Counter
    )
    get_times_by_group_topic: collections.Counter[tuple[str, str]] = attrs.Factory(
        collections.Counter
    )
    send_failures: int = 0
    busy_rejections: int = 0
    # a send request from its decode to its reply (SYNC_FLUSH: including the flush wait)
    put_latency: LatencyHistogram = attrs.Factory(LatencyHistogram)
    # a pull answered at once (a held pull's wait is the consumer's choice, not latency)
    pull_latency: LatencyHistogram = attrs.Factory(LatencyHistogram)

    def on_put(self, topic: str, count: int, size: int) -> None:
        self.put_nums.add(count)
        self.put_bytes.add(size)
        self.put_by_topic[topic] += count
        self.put_bytes_by_topic[topic] += size
        self.put_times_by_topic[topic] += 1

    def on_get(self, group: str, topic: str, count: int, size: int) -> None:
        self.get_nums.add(count)
        self.get_bytes.add(size)
        key = (group, topic)
        self.get_by_group_topic.setdefault(key, _Rate()).add(count)
        self.get_bytes_by_group_topic[key] += size
        self.get_times_by_group_topic[key] += 1

    def stats_item(self, name: str, key: str) -> tuple[int, int] | None:
        """(value, times) of one of Java's BrokerStatsManager items, or None if never seen.

        Keys as Java builds them: a topic, ``topic@group`` for the group items.
        """
        if name in ("TOPIC_PUT_NUMS", "TOPIC_PUT_SIZE"):
            if key not in self.put_times_by_topic:
                return None
            table = self.put_by_topic if name == "TOPIC_PUT_NUMS" else self.put_bytes_by_topic
            return table[key], self.put_times_by_topic[key]
        if name in ("GROUP_GET_NUMS", "GROUP_GET_SIZE"):
            topic, _, group = key.partition("@")
            pair = (group, topic)
            if pair not in self.get_times_by_group_topic:
                return None
            if name == "GROUP_GET_NUMS":
                value = self.get_by_group_topic[pair].total
            else:
                value = self.get_bytes_by_group_topic[pair]
            return value, self.get_times_by_group_topic[pair]
        if name in ("BROKER_PUT_NUMS", "BROKER_GET_NUMS"):
            rate = self.put_nums if name == "BROKER_PUT_NUMS" else self.get_nums
            return rate.total, rate.total
        return None

    def stats_keys(self) -> Iterator[tuple[str, str]]:
        for topic in list(self.put_times_by_topic):
            yield "TOPIC_PUT_NUMS", topic
            yield "TOPIC_PUT_SIZE", topic
        for group, topic in list(self.get_times_by_group_topic):
            yield "GROUP_GET_NUMS", f"{topic}@{group}"
            yield "GROUP_GET_SIZE", f"{topic}@{group}"

    def consume_tps(self, group: str, topic: str, now_ms: int) -> float:
        rate = self.get_by_group_topic.get((group, topic))
        return rate.per_second(now_ms) if rate is not None else 0.0


# Java's StatsItem: 10 s samples for the minute, 10 min for the hour, 1 h for the day.
_WINDOWS: tuple[tuple[str, int, int], ...] = (
    ("minute", 10_000, 7),
    ("hour", 600_000, 7),
    ("day", 3_600_000, 25),
)


@attrs.frozen
class StatsSnapshot:
    sum: int
    tps: float
    avgpt: float


@attrs.define
class StatsWindows:
    """Snapshots of (time, value, times) per stats item for VIEW_BROKER_STATS_DATA.

    ``sample`` is called every 10 s; each window keeps its own spacing and length, so
    memory is bounded by (items x 39) tuples.
    """

    samples: dict[tuple[str, str, str], collections.deque[tuple[int, int, int]]] = attrs.Factory(
        dict
    )
    last_sample_ms: dict[str, int] = attrs.Factory(dict)

    def sample(self, stats: BrokerStats, now_ms: int) -> None:
        due = [
            (window, keep)
            for window, spacing, keep in _WINDOWS
            if now_ms - self.last_sample_ms.get(window, -(10**18)) >= spacing
        ]
        if not due:
            return
        for name, key in stats.stats_keys():
            item = stats.stats_item(name, key)
            if item is None:
                continue
            for window, keep in due:
                series = self.samples.get((window, name, key))
                if series is None:
                    series = self.samples[(window, name, key)] = collections.deque(maxlen=keep)
                    # a new item counted from zero since the previous sampling
                    series.append((self._zero_ms(window, now_ms), 0, 0))
                series.append((now_ms, item[0], item[1]))
        for window, _ in due:
            self.last_sample_ms[window] = now_ms

    def _zero_ms(self, window: str, now_ms: int) -> int:
        spacing = next(s for w, s, _ in _WINDOWS if w == window)
        return self.last_sample_ms.get(window, now_ms - spacing)

    def view(
        self, stats: BrokerStats, name: str, key: str, now_ms: int
    ) -> dict[str, StatsSnapshot] | None:
        """statsMinute / statsHour / statsDay as Java's computeStatsData, or None if unknown.

        The current totals count as the newest sample, so a figure is never a full
        sampling period stale.
        """
        item = stats.stats_item(name, key)
        if item is None:
            return None
        out = {}
        for window, _, _ in _WINDOWS:
            series = list(self.samples.get((window, name, key), ()))
            if not series:  # seen since the last sampling: counted from zero
                series.append((self._zero_ms(window, now_ms), 0, 0))
            series.append((now_ms, item[0], item[1]))
            first, last = series[0], series[-1]
            total = last[1] - first[1]
            elapsed = last[0] - first[0]
            times = last[2] - first[2]
            out[window] = StatsSnapshot(
                sum=total,
                tps=total * 1000.0 / elapsed if elapsed > 0 else 0.0,
                avgpt=total / times if times > 0 else 0.0,
            )
        return out


@attrs.define
class OpsState:
    """What the operators' side (VIEW_BROKER_STATS_DATA, /metrics, /readyz) keeps."""

    windows: StatsWindows = attrs.Factory(StatsWindows)
    # name server address -> wall-clock ms of its last successful REGISTER_BROKER
    registered_ms: dict[str, int] = attrs.Factory(dict)
    # the /metrics port once it listens (metricsPromExporterPort may be 0: any free port)
    http_port: int | None = None
