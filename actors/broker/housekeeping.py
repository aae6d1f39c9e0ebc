"""Client channel expiry (reference §7.8): every 10 s, drop clients silent for 120 s."""

from __future__ import annotations

import trio

from actors.broker.context import BrokerContext
from actors.broker.handlers.client_manage import expire_silent_channels

SCAN_INTERVAL = 10.0


async def client_housekeeping(
    ctx: BrokerContext, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    task_status.started()
    while True:
        await trio.sleep(SCAN_INTERVAL)
        expire_silent_channels(ctx, ctx.config.channelExpiredTimeoutMillis)
