"""The send path's side of the in-sync set (actors/broker/failover.py): kept apart so the
durability module imports it without the elector's dependencies."""

from __future__ import annotations

import logging
from typing import Any

import trio

log = logging.getLogger(__name__)


async def replicas_durable(ctx: Any, end_offset: int, timeout: float) -> bool:
    """A SYNC_MASTER send under failover: every member of the in-sync set (written or joining)
    has ``end_offset``, or the laggards were removed from it in etcd.  False: neither within
    ``timeout`` (the send is not acknowledged)."""
    fo = ctx.failover  # actors.failover.actor.Failover
    rep = ctx.replication
    deadline = trio.current_time() + timeout
    keeper = fo.syncset
    while True:
        lagging = frozenset(
            m for m in keeper.written.value | keeper.wanted.value if rep.acked_by(m) < end_offset
        )
        if not lagging:
            fo.acked_end = max(fo.acked_end, end_offset)
            return True
        if trio.current_time() >= deadline:
            break
        with trio.move_on_at(deadline):
            await rep.reported.wait()
    log.warning("in-sync members %s lag behind %d: removing them", sorted(lagging), end_offset)
    if not await keeper.drop(lagging, timeout):
        return False
    fo.acked_end = max(fo.acked_end, end_offset)
    return True
