"""The "VIP channel": Java's broker serves the same requests on ``listenPort - 2`` as well
(its fastRemotingServer).  Apache 4.9 slaves always fetch the master's topic configs there
(BrokerOuterAPI.getAllTopicConfig uses ``MixAll.brokerVIPChannel(true, addr)``), and clients
with ``vipChannelEnabled`` send there, so a master without it cannot keep an Apache slave's
topics in sync.

A port that cannot be bound is logged, not fatal: everything else still works on listenPort.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import trio

from actors.remoting.router import Router
from actors.remoting.server import remoting_server

log = logging.getLogger(__name__)

VIP_PORT_OFFSET = -2


async def vip_channel(
    router: Router,
    *,
    host: str,
    listen_port: int,
    idle_timeout: float | None,
    on_close: Callable[[Any], None] | None = None,
    net: Any = None,  # actors.remoting.netconfig.ServerNetConfig: TLS and limits as listenPort
    task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
) -> None:
    port = listen_port + VIP_PORT_OFFSET
    try:
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(
                functools.partial(
                    remoting_server,
                    router,
                    host=host,
                    port=port,
                    name="broker-vip",
                    idle_timeout=idle_timeout,
                    on_close=on_close,
                    net=net,
                )
            )
            task_status.started(handle)
    except* OSError as group:
        log.warning("VIP channel: cannot listen on %d: %s", port, group.exceptions[0])
        task_status.started(None)
