"""The NameServer supervision tree (anchors §2.5).

```
namesrv
├─ broker_scanner ...... every 10 s: expire brokers idle > 120 s
├─ kv_persister ........ KV change -> kvConfig.json
├─ namesrv_http ........ /metrics /healthz /readyz (metricsExporterType=PROM)
└─ remoting_server ..... last to start; a closed broker connection removes its routes
```

The signal watcher sits above this, in apps/namesrv.py, so tests and the broker's tests
can run a name server in-process: ``addr = await nursery.start(namesrv, config)``.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import trio

from actors.namesrv.config import NamesrvConfig
from actors.namesrv.handlers import Namesrv, make_router
from actors.namesrv.kvconfig import KvTable, load_kv_file
from actors.namesrv.observe import NamesrvHealth, namesrv_http
from actors.namesrv.persister import KvStore, kv_persister
from actors.namesrv.scanner import broker_scanner
from actors.namesrv.state import RouteTable
from actors.remoting.netconfig import ServerNetConfig
from actors.remoting.router import Channel
from actors.remoting.server import remoting_server

log = logging.getLogger(__name__)


async def namesrv(
    config: NamesrvConfig,
    *,
    host: str | None = None,
    net: ServerNetConfig | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a name server until cancelled; ``started()`` reports its "ip:port" address.

    ``host`` (default: ``net.bindAddress``, else all interfaces) is where it listens."""
    if host is None:
        host = net.bindAddress if net is not None else "0.0.0.0"
    kv_path = Path(config.kvConfigPath)
    table = await trio.to_thread.run_sync(load_kv_file, kv_path)
    ns = Namesrv(config=config, routes=RouteTable(), kv=KvStore(kv_path, KvTable(table)))
    if table:
        log.info("loaded %d KV namespaces from %s", len(table), kv_path)

    def on_close(channel: Channel) -> None:
        addr = ns.routes.remove_by_channel(channel, channel.peer)
        if addr is not None:
            log.info("broker %s removed: its connection %s closed", addr, channel.peer)

    health = NamesrvHealth()
    async with trio.open_nursery() as nursery:
        await nursery.start(broker_scanner, ns.routes)
        await nursery.start(kv_persister, ns.kv)
        await nursery.start(namesrv_http, config, ns.routes, health)
        server = await nursery.start(
            functools.partial(
                remoting_server,
                make_router(ns),
                host=host,
                port=config.listenPort,
                name="namesrv",
                idle_timeout=config.serverChannelMaxIdleTimeSeconds,
                on_close=on_close,
                net=net,
            )
        )
        log.info(
            "The Name Server boot success. serializeType=JSON, listening on %s:%d",
            server.host,
            server.port,
        )
        health.serving = True
        task_status.started(server.address)
