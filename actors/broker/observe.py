"""The broker's operators' services: stats sampling for VIEW_BROKER_STATS_DATA and, with
``metricsExporterType=PROM``, /metrics, /healthz and /readyz over HTTP (actors/httpd.py).

Metrics are collected at scrape time from the counters the broker already keeps
(``BrokerStats``, the store, the client tables): a prometheus-client custom collector, so the
send path pays nothing for Prometheus beyond the histogram bucket it already fills.  Names and
labels are RocketMQ 5's (BrokerMetricsConstant, RemotingMetricsConstant,
DefaultStoreMetricsConstant) where one exists; the rest follow rocketmq-exporter or are ours
(README, "Metrics and health", has the table).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator

import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from actors.broker.context import BrokerContext
from actors.broker.handlers.ops import stats_sampler
from actors.broker.stats import LatencyHistogram
from actors.httpd import Reply, http_server

log = logging.getLogger(__name__)


def disk_space(path: str) -> tuple[int, int]:
    """(total, free) bytes of the file system holding ``path`` (0, 0 if unknown)."""
    try:
        st = os.statvfs(path if os.path.exists(path) else os.path.dirname(path) or ".")
    except OSError:
        return 0, 0
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize


def _histogram(family: HistogramMetricFamily, labels: list[str], hist: LatencyHistogram) -> None:
    buckets = [
        ("+Inf" if bound == float("inf") else repr(float(bound)), float(n))
        for bound, n in hist.cumulative()
    ]
    family.add_metric(labels, buckets, hist.total_ms)


class BrokerCollector:
    """Reads the broker's state when Prometheus scrapes; runs in the trio thread."""

    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx
        self.disk: tuple[int, int] = (0, 0)

    def collect(self) -> Iterator[Metric]:
        ctx = self.ctx
        stats, store, config = ctx.stats, ctx.store, ctx.config
        base_names = ["cluster", "node_type", "node_id"]
        base = [config.brokerClusterName, "broker", config.brokerName]

        msgs_in = CounterMetricFamily(
            "rocketmq_messages_in_total",
            "Messages stored, per topic",
            labels=[*base_names, "topic"],
        )
        bytes_in = CounterMetricFamily(
            "rocketmq_throughput_in_total", "Bytes stored, per topic", labels=[*base_names, "topic"]
        )
        for topic, count in sorted(stats.put_by_topic.items()):
            msgs_in.add_metric([*base, topic], count)
            bytes_in.add_metric([*base, topic], stats.put_bytes_by_topic[topic])
        yield msgs_in
        yield bytes_in

        out_labels = [*base_names, "topic", "consumer_group"]
        msgs_out = CounterMetricFamily(
            "rocketmq_messages_out_total", "Messages pulled, per topic and group", labels=out_labels
        )
        bytes_out = CounterMetricFamily(
            "rocketmq_throughput_out_total", "Bytes pulled, per topic and group", labels=out_labels
        )
        for (group, topic), rate in sorted(stats.get_by_group_topic.items()):
            msgs_out.add_metric([*base, topic, group], rate.total)
            bytes_out.add_metric(
                [*base, topic, group], stats.get_bytes_by_group_topic[(group, topic)]
            )
        yield msgs_out
        yield bytes_out

        latency = HistogramMetricFamily(
            "rocketmq_rpc_latency",
            "Request handling time in ms (send: to the reply, SYNC_FLUSH wait included; "
            "pull: answered at once, held pulls excluded)",
            labels=[*base_names, "protocol_type", "request_code"],
        )
        _histogram(latency, [*base, "remoting", "send_message"], stats.put_latency)
        _histogram(latency, [*base, "remoting", "pull_message"], stats.pull_latency)
        yield latency

        lag = GaugeMetricFamily(
            "rocketmq_consumer_lag_messages",
            "Messages stored but not yet consumed (committed offsets), per group and topic",
            labels=[*base_names, "topic", "consumer_group"],
        )
        queue_lag = GaugeMetricFamily(
            "rocketmq_consumer_queue_lag_messages",
            "The same per queue (ours; rocketmq-exporter: rocketmq_group_diff per topic)",
            labels=[*base_names, "topic", "consumer_group", "queue_id"],
        )
        for group, topic, per_queue in _lags(ctx):
            lag.add_metric([*base, topic, group], sum(per_queue.values()))
            for queue_id, behind in sorted(per_queue.items()):
                queue_lag.add_metric([*base, topic, group, str(queue_id)], behind)
        yield lag
        yield queue_lag

        total, free = self.disk
        ratio = GaugeMetricFamily(
            "rocketmq_brokeruntime_commitlog_disk_ratio",
            "Used share of the commit log's file system (rocketmq-exporter's name)",
            labels=base_names,
        )
        ratio.add_metric(base, (total - free) / total if total else 0.0)
        yield ratio
        size = GaugeMetricFamily(
            "rocketmq_storage_size", "Bytes of commit log held", labels=base_names
        )
        size.add_metric(base, max(store.max_phy_offset - store.min_phy_offset, 0))
        yield size
        flush = GaugeMetricFamily(
            "rocketmq_storage_flush_behind_bytes",
            "Commit log bytes written but not yet flushed",
            labels=base_names,
        )
        flush.add_metric(base, max(store.max_phy_offset - store.flushed_offset, 0))
        yield flush
        dispatch = GaugeMetricFamily(
            "rocketmq_storage_dispatch_behind_bytes",
            "Commit log bytes not yet in consume queues and index",
            labels=base_names,
        )
        dispatch.add_metric(base, store.dispatch_behind_bytes())
        yield dispatch
        yield from _replication(ctx, base_names, base)

        producers = GaugeMetricFamily(
            "rocketmq_producer_connections", "Producer connections", labels=base_names
        )
        producers.add_metric(base, _producer_count(ctx))
        yield producers
        consumers = GaugeMetricFamily(
            "rocketmq_consumer_connections",
            "Consumer connections per group",
            labels=[*base_names, "consumer_group"],
        )
        for group, entry in sorted(ctx.consumers.groups.items()):
            consumers.add_metric([*base, group], len(entry.channels))
        yield consumers
        held = GaugeMetricFamily(
            "rocketmq_pull_held_requests",
            "Long-polling pulls held now (ours)",
            labels=base_names,
        )
        held.add_metric(base, len(ctx.holds))
        yield held
        perm = GaugeMetricFamily(
            "rocketmq_broker_permission",
            "Broker permission (6 = read and write)",
            labels=base_names,
        )
        perm.add_metric(base, config.brokerPermission)
        yield perm


def _replication(ctx: BrokerContext, base_names: list[str], base: list[str]) -> Iterator[Metric]:
    """Replication lag (ours: RocketMQ 5 exports no HA metric; its GET_BROKER_HA_STATUS has
    the same figures).  A master reports each connected slave's distance from its commit
    log's end (a slave that has not reported yet counts from offset 0); a slave reports how
    long ago its master's last bytes or heartbeat arrived, -1 while not connected."""
    lag = GaugeMetricFamily(
        "rocketmq_ha_slave_lag_bytes",
        "Master: commit log bytes a connected slave has not acknowledged",
        labels=[*base_names, "slave_addr"],
    )
    slaves = GaugeMetricFamily(
        "rocketmq_ha_slaves",
        "Master: slaves connected, and of them in sync",
        labels=[*base_names, "state"],
    )
    quiet = GaugeMetricFamily(
        "rocketmq_ha_master_silence_seconds",
        "Slave: seconds since the master's last frame (-1: not connected)",
        labels=base_names,
    )
    if ctx.is_slave:
        following = ctx.following
        connected = following.master_addr is not None and following.last_read_ms
        quiet.add_metric(
            base, (ctx.now_ms() - following.last_read_ms) / 1000 if connected else -1.0
        )
    else:
        end, gap = ctx.store.max_phy_offset, ctx.store_config.haSlaveFallbehindMax
        behind = {addr: end - max(acked, 0) for addr, acked in ctx.replication.slaves.items()}
        for addr, n in sorted(behind.items()):
            lag.add_metric([*base, addr], n)
        slaves.add_metric([*base, "connected"], len(behind))
        in_sync = sum(a >= 0 and end - a < gap for a in ctx.replication.slaves.values())
        slaves.add_metric([*base, "in_sync"], in_sync)
    yield lag
    yield slaves
    yield quiet


def _lags(ctx: BrokerContext) -> Iterator[tuple[str, str, dict[int, int]]]:
    offsets = ctx.offsets
    for topic, group in sorted(offsets.pairs()):
        if ctx.topics.get(topic) is None:
            continue
        per_queue = {
            queue_id: max(ctx.store.max_offset_in_queue(topic, queue_id) - consumed, 0)
            for queue_id, consumed in offsets.offsets(group, topic).items()
        }
        yield group, topic, per_queue


def _producer_count(ctx: BrokerContext) -> int:
    return sum(len(members) for members in ctx.producers.groups.values())


def readiness(ctx: BrokerContext) -> list[str]:
    """What keeps the broker from being ready; empty when ready."""
    missing = []
    if not ctx.ops.registered_ms:
        missing.append("not registered with any name server")
    if ctx.role.value is None:
        missing.append("role unknown")
    return missing


async def ops_services(
    ctx: BrokerContext, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Stats sampling always; the HTTP endpoints when ``metricsExporterType=PROM``.

    Started after the store layer, so a broker whose /healthz answers has recovered its store.
    """
    async with trio.open_nursery() as nursery:
        await nursery.start(stats_sampler, ctx)
        config = ctx.config
        if config.metricsExporterType.upper() == "PROM":
            collector = BrokerCollector(ctx)
            registry = CollectorRegistry(auto_describe=False)
            registry.register(collector)
            handler = functools.partial(_handle, ctx, collector, registry)
            handle = await nursery.start(
                functools.partial(
                    http_server,
                    handler,
                    host=config.metricsPromExporterHost or "0.0.0.0",
                    port=config.metricsPromExporterPort,
                    name=f"broker {config.brokerName} metrics",
                )
            )
            ctx.ops.http_port = handle.port
        elif config.metricsExporterType.upper() not in ("DISABLE", ""):
            log.warning(
                "metricsExporterType %s not supported (PROM or DISABLE); no /metrics",
                config.metricsExporterType,
            )
        task_status.started()


async def _handle(
    ctx: BrokerContext,
    collector: BrokerCollector,
    registry: CollectorRegistry,
    method: str,
    path: str,
) -> Reply:
    if path == "/metrics":
        # statvfs may block (a network mount): a worker thread, then the tables in the loop
        collector.disk = await trio.to_thread.run_sync(disk_space, ctx.store_config.commit_log_dir)
        return Reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
    if path == "/healthz":
        return Reply(200, b"ok\n")
    if path == "/readyz":
        missing = readiness(ctx)
        if missing:
            return Reply(503, ("not ready: " + "; ".join(missing) + "\n").encode())
        return Reply(200, b"ready\n")
    return Reply(404, b"not found: /metrics, /healthz, /readyz\n")
