"""Changing a running broker's role (MASTER <-> SLAVE), and the admin request that asks for it.

The role is one value, ``ctx.role``; ``switch_role`` tells the store first (so a demoted
broker refuses the very next put), then sets the value: the role supervisor cancels the old
role's scope and starts the new one's actors (HA server and delayed delivery for a master, HA
client and metadata sync for a slave).  Connections, the store layer and every other service
keep running.  Sends already appended get their durability answer as usual (a SYNC_MASTER
send whose slave went away: FLUSH_SLAVE_TIMEOUT); later ones SERVICE_NOT_AVAILABLE.

A promoted slave continues from its own commit log and registers with brokerId 0 at once; a
demoted master may drop a tail its new master lacks: ``truncateTo`` in the request, or the
new master's first frame (see actors/ha/client.py).  The first frame decides by offset only,
which is not enough once both brokers were written to after the promotion: with the slave
promoted at P, the old master's bytes from P on are its own, not the new master's, yet every
frame continues the log at its offset and is appended (B < A bytes written after P: the old
master keeps its [P, P+B); B >= A: it keeps [P, P+A) and appends from P+A, mid-record).  Only
P - the promotion reply's maxPhyOffset - tells, or the records themselves: a demotion without
``truncateTo`` compares its log with the new master's record by record before following
(actors/ha/divergence.py); automatic failover cuts back to its epoch's start instead.

SWITCH_BROKER_ROLE (30001, ours; Apache 4.9 has no such request - its roles change only by a
restart or, in 5.x, by the controller).  Header fields: ``brokerRole`` (ASYNC_MASTER,
SYNC_MASTER or SLAVE), ``brokerId`` (a slave's id, default its current one or 1),
``truncateTo`` (optional, demotion only), ``haMasterAddress`` (optional, SLAVE only: the
master's HA address to follow, as the config key; else the one the name servers name; a
promotion clears it).  The reply carries ``maxPhyOffset``: a promoted
slave's commit-log end, the ``truncateTo`` for the old master's later demotion (offsets alone
cannot tell where two logs diverge once both were written to).  Who may ask: as for topic
administration, an admin account under ACL (``aclEnable``; protocol/acl/plain.py ADMIN_CODES),
anyone without it.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import trio

from actors.remoting.router import RequestContext, RequestError, Router
from protocol.codes import SWITCH_BROKER_ROLE, RequestCode, ResponseCode
from protocol.command import RemotingCommand
from storage.config import BrokerRole
from storage.errors import StoreError

log = logging.getLogger(__name__)

_SEND_CODES = (
    RequestCode.SEND_MESSAGE,
    RequestCode.SEND_MESSAGE_V2,
    RequestCode.SEND_BATCH_MESSAGE,
)


def switch_role(
    ctx: Any,  # actors.broker.context.BrokerContext
    role: BrokerRole,
    *,
    broker_id: int | None = None,
    truncate_to: int | None = None,
    ha_master_addr: str | None = None,
) -> bool:
    """Switch to ``role`` now (no checkpoint); False if nothing changed."""
    old = ctx.role.value
    if role is BrokerRole.SLAVE:
        broker_id = broker_id if broker_id is not None else max(ctx.config.brokerId, 1)
        if broker_id <= 0:
            raise ValueError("a SLAVE broker needs brokerId > 0")
    else:
        if truncate_to is not None:
            raise ValueError("only a demotion truncates")
        if ha_master_addr:
            raise ValueError("only a SLAVE follows a master's HA address")
        broker_id = 0
    if ha_master_addr is not None and ha_master_addr != ctx.store_config.haMasterAddress:
        # a slave told whom to follow: its HA client reads this on every (re)connect
        ctx.store_config = attrs.evolve(ctx.store_config, haMasterAddress=ha_master_addr)
        if role is old and broker_id == ctx.config.brokerId and truncate_to is None:
            log.warning("master HA address %s: followed from the next (re)connect", ha_master_addr)
            return True
    if role is old and broker_id == ctx.config.brokerId and truncate_to is None:
        return False
    ctx.store.set_role(role)
    if role is BrokerRole.SLAVE and truncate_to is not None:
        ctx.store.truncate_replicated(truncate_to)
    ctx.demoted = old is not BrokerRole.SLAVE and role is BrokerRole.SLAVE
    # without truncateTo only the records themselves tell where the logs diverge
    ctx.following.verify_prefix = ctx.demoted and truncate_to is None
    if role is not BrokerRole.SLAVE:
        ctx.master_addr = ctx.master_ha_addr = None  # stale: we are the master now
        if ctx.store_config.haMasterAddress:
            ctx.store_config = attrs.evolve(ctx.store_config, haMasterAddress="")
    ctx.config = attrs.evolve(ctx.config, brokerId=broker_id)
    ctx.role.value = role
    ctx.topic_table_changed()  # re-register at once, under the new broker id
    log.warning("role %s -> %s (brokerId %d)", old.name, role.name, broker_id)
    return True


def sends_inline(ctx: Any, role: BrokerRole) -> bool:
    """Whether a send never waits long (reader-inline): not under SYNC_FLUSH, not on a
    SYNC_MASTER (which waits for a slave's ack)."""
    return not ctx.sync_flush and role is not BrokerRole.SYNC_MASTER


async def send_mode_follows_role(
    ctx: Any, router: Router, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Keep the send handlers inline exactly while sends cannot wait (a waiting send must not
    stall its connection's other requests)."""
    role = ctx.role.value
    for code in _SEND_CODES:
        router.set_inline(code, sends_inline(ctx, role))
    task_status.started()
    while True:
        role = await ctx.role.wait_value(lambda r, seen=role: r is not seen)
        for code in _SEND_CODES:
            router.set_inline(code, sends_inline(ctx, role))


class RoleSwitchHandler:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def register(self, router: Router) -> None:
        router.register(SWITCH_BROKER_ROLE, self.handle, limit=1)

    async def handle(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        fields = req.ext_fields
        try:
            role = BrokerRole[fields.get("brokerRole", "")]
            broker_id = int(fields["brokerId"]) if fields.get("brokerId") else None
            truncate = int(fields["truncateTo"]) if fields.get("truncateTo") else None
            follow = fields.get("haMasterAddress") or None
        except (KeyError, ValueError) as exc:
            raise RequestError(
                ResponseCode.SYSTEM_ERROR, f"bad role switch request: {exc}"
            ) from exc
        try:
            changed = switch_role(
                self.ctx, role, broker_id=broker_id, truncate_to=truncate, ha_master_addr=follow
            )
        except (ValueError, StoreError) as exc:
            raise RequestError(ResponseCode.SYSTEM_ERROR, str(exc)) from exc
        return req.reply(
            ResponseCode.SUCCESS,
            None if changed else "already in this role",
            {
                "brokerRole": role.name,
                "brokerId": str(self.ctx.config.brokerId),
                # a promoted slave's log end: where a demoted old master must truncate to
                "maxPhyOffset": str(self.ctx.store.max_phy_offset),
            },
        )
