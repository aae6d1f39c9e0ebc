"""The role scope (anchors §2.5): the actors of the current role run in their own nursery.

Switching roles (a later issue) sets ``ctx.role``; the scope of the old role is cancelled -
every role actor runs its ``finally`` - and the new role's actors start.  The master scope runs
delayed delivery (delivery.py) and the transaction check service (transaction.py).
"""

from __future__ import annotations

import functools
import logging
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import trio

from actors.broker.context import BrokerContext
from actors.broker.delivery import delayed_delivery
from actors.broker.transaction import transaction_checker
from storage.config import BrokerRole

log = logging.getLogger(__name__)

RoleActor = Callable[..., Any]  # async def actor(ctx, *, task_status)

ROLE_ACTORS: dict[BrokerRole, list[RoleActor]] = {
    BrokerRole.ASYNC_MASTER: [delayed_delivery, transaction_checker],
    BrokerRole.SYNC_MASTER: [delayed_delivery, transaction_checker],
    BrokerRole.SLAVE: [],
}


async def role_supervisor(
    ctx: BrokerContext,
    role_actors: Mapping[BrokerRole, Sequence[RoleActor]] = ROLE_ACTORS,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    first = True
    while True:
        role = ctx.role.value  # re-read: the role may have flapped back meanwhile
        async with trio.open_nursery() as scope:
            for actor in role_actors.get(role, ()):
                await scope.start(actor, ctx)
            log.info("role %s: %d actors running", role.name, len(role_actors.get(role, ())))
            if first:
                task_status.started()
                first = False
            await ctx.role.wait_value(functools.partial(operator.is_not, role))
            scope.cancel_scope.cancel(reason=f"role {role.name} -> {ctx.role.value.name}")
