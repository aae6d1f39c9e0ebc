"""Rebalance: which queues this consumer holds (§8.4), and the orderly queue locks.

``wanted_queues`` is the pure decision; ``rebalance_topic`` asks the broker for the group
members and applies the difference to the consumer's table; ``rebalance_service`` runs it
for every subscribed topic every 20 s and at once when the broker notifies a membership
change.  ``lock_renewer`` re-takes the broker locks of an orderly consumer every 20 s.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Sequence

import trio

from actors.client import api
from actors.client.allocate import AllocateStrategy, AllocationError
from actors.client.consumer import AssignedQueue, ConsumerCore
from actors.client.errors import ClientError
from protocol.bodies.common import MessageModel, MessageQueue
from protocol.bodies.heartbeat import LockBatchRequestBody, UnlockBatchRequestBody

log = logging.getLogger(__name__)

UNLOCK_DELAY = 20.0  # an orderly queue with cached messages is unlocked this much later
LOCAL_LOCK_WAIT = 1.0


def wanted_queues(
    model: MessageModel,
    strategy: AllocateStrategy,
    group: str,
    client_id: str,
    mq_all: Sequence[MessageQueue],
    cid_all: Sequence[str],
) -> set[MessageQueue]:
    """The queues this client should hold: all (broadcasting) or its allocated share."""
    if model is MessageModel.BROADCASTING:
        return set(mq_all)
    if not mq_all or not cid_all:
        return set()
    try:
        return set(strategy.allocate(group, client_id, sorted(mq_all), sorted(cid_all)))
    except AllocationError as exc:
        log.warning("allocation for %s failed: %s", group, exc)
        return set()


async def _consumer_ids(core: ConsumerCore, topic: str) -> list[str] | None:
    inst = core.instance
    route = inst.routes.get(topic)
    if route is None:
        return None
    # Java asks a random broker of the topic (its master if present).
    candidates = [dict(bd.broker_addrs) for bd in route.broker_datas]
    random.shuffle(candidates)
    for addrs in candidates:
        addr = addrs.get(0) or next(iter(addrs.values()), None)
        if addr is None:
            continue
        try:
            return await api.get_consumer_ids(inst.remoting, addr, core.group, inst.timeout)
        except ClientError as exc:
            log.info("consumer list of %s from %s failed: %s", core.group, addr, exc)
    return None


def _per_broker(
    core: ConsumerCore, mqs: Sequence[MessageQueue]
) -> Iterator[tuple[str, str, tuple[MessageQueue, ...]]]:
    """(broker name, its address, its queues sorted) for every broker with a known address."""
    by_broker: dict[str, list[MessageQueue]] = {}
    for mq in mqs:
        by_broker.setdefault(mq.broker_name, []).append(mq)
    for broker, queues in by_broker.items():
        addr = core.instance.broker_addr(broker)
        if addr is not None:
            yield broker, addr, tuple(sorted(queues))


async def lock_queues(core: ConsumerCore, mqs: Sequence[MessageQueue]) -> set[MessageQueue]:
    """LOCK_BATCH_MQ per broker (master); the queues granted."""
    inst = core.instance
    granted: set[MessageQueue] = set()
    for broker, addr, queues in _per_broker(core, mqs):
        body = LockBatchRequestBody(
            consumer_group=core.group, client_id=inst.client_id, mq_set=queues
        )
        try:
            granted |= await api.lock_batch(inst.remoting, addr, body, inst.timeout)
        except ClientError as exc:
            log.info("locking %d queues on %s failed: %s", len(queues), broker, exc)
    return granted


async def unlock_queues(
    core: ConsumerCore, mqs: Sequence[MessageQueue], *, wait: bool = False
) -> None:
    inst = core.instance
    for broker, addr, queues in _per_broker(core, mqs):
        body = UnlockBatchRequestBody(
            consumer_group=core.group, client_id=inst.client_id, mq_set=queues
        )
        try:
            await api.unlock_batch(inst.remoting, addr, body, inst.timeout if wait else None)
        except ClientError as exc:
            log.info("unlocking %d queues on %s failed: %s", len(queues), broker, exc)


async def _delayed_unlock(core: ConsumerCore, mq: MessageQueue) -> None:
    await trio.sleep(UNLOCK_DELAY)
    if mq not in core.table:
        await unlock_queues(core, [mq])


async def release_queue(core: ConsumerCore, aq: AssignedQueue) -> bool:
    """Java's removeUnnecessaryMessageQueue: persist the offset and, for orderly
    clustering, give the broker lock back.  False if the queue is still being consumed
    (it stays, dropped, and the next rebalance tries again)."""
    aq.pq.dropped = True
    await core.offset_store.persist(aq.mq)
    core.offset_store.remove(aq.mq)
    if core.orderly and core.clustering:
        with trio.move_on_after(LOCAL_LOCK_WAIT):
            async with aq.lock:
                if aq.pq.msg_count > 0:
                    core.instance.nursery.start_soon(_delayed_unlock, core, aq.mq)
                else:
                    await unlock_queues(core, [aq.mq])
                return True
        aq.pq.try_unlock_times += 1
        return False
    return True


async def apply_assignment(core: ConsumerCore, topic: str, wanted: set[MessageQueue]) -> bool:
    """Drop queues no longer wanted, take new ones; True if the table changed."""
    changed = False
    for mq, aq in list(core.table.items()):
        if mq.topic == topic and mq not in wanted and await release_queue(core, aq):
            core.drop(aq)
            changed = True
    for mq in sorted(wanted - set(core.table)):
        locked = False
        if core.orderly and core.clustering:
            if mq not in await lock_queues(core, [mq]):
                log.info("%s: queue %s is locked by another consumer, skipped", core.group, mq)
                continue
            locked = True
        core.offset_store.remove(mq)  # a stale in-memory offset must not win over the broker's
        offset = await core.compute_pull_from_where(mq)
        if offset < 0:
            continue
        core.offset_store.update(mq, offset, increase_only=False)
        core.assign(mq, offset, locked=locked)
        changed = True
    return changed


async def rebalance_topic(core: ConsumerCore, topic: str) -> None:
    try:
        mq_all = await core.instance.subscribe_queues(topic)
    except ClientError as exc:
        log.info("%s: no queues for %s: %s", core.group, topic, exc)
        return
    if core.clustering:
        cid_all = await _consumer_ids(core, topic)
        if cid_all is None:
            return
    else:
        cid_all = [core.instance.client_id]
    wanted = wanted_queues(
        core.settings.message_model,
        core.settings.strategy,
        core.group,
        core.instance.client_id,
        mq_all,
        cid_all,
    )
    if await apply_assignment(core, topic, wanted):
        log.info("%s: rebalanced %s: %s", core.group, topic, sorted(m.queue_id for m in wanted))


async def rebalance_all(core: ConsumerCore) -> None:
    for topic in sorted(core.subscriptions):
        await rebalance_topic(core, topic)
    # Queues of topics no longer subscribed are dropped too.
    for mq, aq in list(core.table.items()):
        if mq.topic not in core.subscriptions and await release_queue(core, aq):
            core.drop(aq)


async def rebalance_service(
    core: ConsumerCore, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Rebalance now, then every ``rebalance_interval`` or when woken."""
    await rebalance_all(core)
    task_status.started()
    while True:
        await core.rebalance_wake.wait(core.settings.rebalance_interval)
        await rebalance_all(core)


async def lock_all(core: ConsumerCore) -> None:
    """Re-take every held queue's lock; queues not granted stop being consumed."""
    held = list(core.table)
    if not held:
        return
    granted = await lock_queues(core, held)
    now = core.now_ms()
    for mq in held:
        aq = core.table.get(mq)
        if aq is None:
            continue
        if mq in granted:
            aq.pq.locked = True
            aq.pq.last_lock_ms = now
        else:
            aq.pq.locked = False


async def lock_renewer(
    core: ConsumerCore, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    task_status.started()
    await trio.sleep(1.0)
    while True:
        await lock_all(core)
        await trio.sleep(core.settings.lock_interval)
