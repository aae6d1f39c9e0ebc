"""broker_scanner: drop brokers that stopped registering (reference §9.3, "expiry scan").

A broker re-registers every 30 s; one not heard from for 120 s is gone, with its queue data,
and its connection (if still open) is closed.  The first scan runs 5 s after start, then
every 10 s, on a fixed schedule rather than "10 s after the previous scan finished".
"""

from __future__ import annotations

import logging
from typing import cast

import trio

from actors.namesrv.state import RouteTable
from actors.remoting.router import Channel

log = logging.getLogger(__name__)

SCAN_INTERVAL = 10.0
BROKER_MAX_IDLE = 120.0
FIRST_SCAN_DELAY = 5.0


async def broker_scanner(
    routes: RouteTable,
    *,
    interval: float = SCAN_INTERVAL,
    max_idle: float = BROKER_MAX_IDLE,
    first_delay: float = FIRST_SCAN_DELAY,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    task_status.started()
    deadline = trio.current_time() + first_delay
    while True:
        await trio.sleep_until(deadline)
        for gone in routes.expire(trio.current_time(), max_idle):
            log.warning(
                "broker %s expired: no registration for over %.0f s", gone.broker_addr, max_idle
            )
            if gone.channel is not None:
                cast(Channel, gone.channel).close()
        deadline += interval
