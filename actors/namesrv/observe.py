"""The name server's /metrics, /healthz and /readyz (``metricsExporterType=PROM``), served by
actors/httpd.py beside the remoting server.

RocketMQ 5's name server exports only RPC figures; what an operator watches on a name server
is which brokers it routes to and how fresh their registrations are, so these are ours:
``rocketmq_namesrv_brokers`` per cluster, ``rocketmq_namesrv_topics``, and per broker address
``rocketmq_namesrv_broker_idle_seconds`` (time since its last registration; the scanner drops
a broker past 120 s).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import attrs
import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from actors.httpd import HttpServerHandle, Reply, http_server
from actors.namesrv.config import NamesrvConfig
from actors.namesrv.state import RouteTable


class NamesrvCollector:
    def __init__(self, routes: RouteTable) -> None:
        self.routes = routes

    def collect(self) -> Iterator[Metric]:
        routes = self.routes
        brokers = GaugeMetricFamily(
            "rocketmq_namesrv_brokers", "Broker names registered, per cluster", labels=["cluster"]
        )
        for cluster, names in sorted(routes.clusters.items()):
            brokers.add_metric([cluster], len(names))
        yield brokers
        topics = GaugeMetricFamily("rocketmq_namesrv_topics", "Topics with a route")
        topics.add_metric([], len(routes.topic_queues))
        yield topics
        idle = GaugeMetricFamily(
            "rocketmq_namesrv_broker_idle_seconds",
            "Seconds since the broker's last registration",
            labels=["broker_addr"],
        )
        now = trio.current_time()
        for addr, live in sorted(routes.live.items()):
            idle.add_metric([addr], max(now - live.last_seen, 0.0))
        yield idle


@attrs.define
class NamesrvHealth:
    """Ready once the remoting server listens (set by the app)."""

    serving: bool = False


async def namesrv_http(
    config: NamesrvConfig,
    routes: RouteTable,
    health: NamesrvHealth,
    *,
    task_status: trio.TaskStatus[HttpServerHandle | None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the endpoints when enabled; otherwise report None and return."""
    if config.metricsExporterType.upper() != "PROM":
        task_status.started(None)
        return
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NamesrvCollector(routes))
    await http_server(
        functools.partial(_handle, registry, health),
        host=config.metricsPromExporterHost or "0.0.0.0",
        port=config.metricsPromExporterPort,
        name="namesrv metrics",
        task_status=task_status,
    )


async def _handle(
    registry: CollectorRegistry, health: NamesrvHealth, method: str, path: str
) -> Reply:
    if path == "/metrics":
        return Reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
    if path == "/healthz":
        return Reply(200, b"ok\n")
    if path == "/readyz":
        if health.serving:
            return Reply(200, b"ready\n")
        return Reply(503, b"not ready: remoting server not listening yet\n")
    return Reply(404, b"not found: /metrics, /healthz, /readyz\n")
