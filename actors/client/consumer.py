"""State shared by the push and the lite pull consumer: subscriptions, settings, the table
of assigned queues and the start offset of a newly assigned queue (§8.4).

``ConsumerCore`` implements the instance's ``ConsumerHooks`` (heartbeat data, topics,
offset persistence, NOTIFY_CONSUMER_IDS_CHANGED -> rebalance now).
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import attrs
import trio

from actors.client import api
from actors.client.allocate import AllocateAveragely, AllocateStrategy
from actors.client.errors import ClientError, InvalidSubscriptionError
from actors.client.instance import ClientInstance
from actors.client.offset_store import READ_ERROR, OffsetStore, ReadFrom
from actors.client.process_queue import FlowLimits, ProcessQueue
from protocol.bodies.common import (
    ConsumeFromWhere,
    ConsumeType,
    ExpressionType,
    MessageModel,
    MessageQueue,
)
from protocol.bodies.heartbeat import ConsumerData, SubscriptionData
from protocol.headers.offset import GetMaxOffsetRequestHeader, SearchOffsetRequestHeader
from protocol.message import MessageExt, java_hash

log = logging.getLogger(__name__)

RETRY_PREFIX = "%RETRY%"
SUB_ALL = "*"


def retry_topic(group: str) -> str:
    return f"{RETRY_PREFIX}{group}"


def build_subscription(topic: str, expression: str | None, now_ms: int) -> SubscriptionData:
    """FilterAPI.buildSubscriptionData for TAG expressions: ``"TagA || TagB"`` or ``*``."""
    expr = (expression or "").strip()
    if not expr or expr == SUB_ALL:
        return SubscriptionData(topic=topic, sub_string=SUB_ALL, sub_version=now_ms)
    tags = tuple(t.strip() for t in expr.split("||") if t.strip())
    if not tags:
        raise InvalidSubscriptionError(f"subscription expression {expression!r} has no tag")
    return SubscriptionData(
        topic=topic,
        sub_string=expr,
        tags_set=tags,
        code_set=tuple(java_hash(t) for t in tags),
        sub_version=now_ms,
        expression_type=ExpressionType.TAG,
    )


def wanted_tags(sub: SubscriptionData) -> frozenset[str] | None:
    """The tags a message must carry one of, or None when the subscription takes all."""
    if not sub.tags_set or sub.sub_string == SUB_ALL:
        return None
    return frozenset(sub.tags_set)


def matches(sub: SubscriptionData, msg: MessageExt) -> bool:
    """Client-side tag filter (the broker filters by hash code; collisions end here)."""
    tags = wanted_tags(sub)
    return tags is None or msg.tags in tags


def timestamp_of(consume_timestamp: str) -> int:
    """``yyyyMMddHHmmss`` (local time, as Java's UtilAll.parseDate) -> epoch ms."""
    try:
        parsed = datetime.datetime.strptime(consume_timestamp, "%Y%m%d%H%M%S")
    except ValueError:
        raise ClientError(
            f"consume timestamp {consume_timestamp!r} is not yyyyMMddHHmmss"
        ) from None
    return int(parsed.timestamp() * 1000)


def half_hour_ago() -> str:
    return time.strftime("%Y%m%d%H%M%S", time.localtime(time.time() - 1800))


@attrs.define(eq=False)
class ConsumerSettings:
    """A consumer's tuning, Java's defaults (DefaultMQPushConsumer's fields, in seconds):
    batch sizes per pull and per listener call, flow limits of the local cache, workers,
    rebalance/lock periods, retries and timeouts."""

    message_model: MessageModel = MessageModel.CLUSTERING
    consume_from_where: ConsumeFromWhere = ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET
    consume_timestamp: str = attrs.Factory(half_hour_ago)
    strategy: AllocateStrategy = attrs.Factory(AllocateAveragely)
    pull_batch_size: int = 32
    consume_batch_size: int = 1
    flow: FlowLimits = attrs.Factory(FlowLimits)
    pull_interval: float = 0.0
    broker_suspend_ms: int = 15000
    pull_timeout: float = 30.0
    consume_workers: int = 20
    max_reconsume_times: int = -1  # -1: 16 (concurrent) / unlimited (orderly)
    suspend_current_queue_time: float = 1.0
    rebalance_interval: float = 20.0
    lock_interval: float = 20.0
    pull_delay_on_exception: float = 3.0
    pull_delay_on_flow_control: float = 0.05
    send_back_timeout: float = 5.0
    consume_timeout: float = 15 * 60.0  # concurrent: a longer listener call counts as failed
    local_retry_delay: float = 5.0


@attrs.define(eq=False)
class AssignedQueue:
    """One queue this consumer currently holds: its cache and its pull loop's lifetime."""

    mq: MessageQueue
    pq: ProcessQueue
    next_offset: int
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    lock: trio.Lock = attrs.Factory(trio.Lock)  # orderly: one consumer of this queue at a time
    previously_locked: bool = False


PullStarter = Callable[[AssignedQueue], None]


@attrs.define(eq=False)
class Pending:
    """What ``subscribe`` returns: the subscription is recorded at once; on a running consumer
    the brokers learn of it in the background.  ``await`` it to wait for that and to get its
    error; a dropped one only logs the error.  Not a coroutine, so calling ``subscribe``
    before ``async with`` without awaiting is fine (and the same call awaited works too)."""

    _done: trio.Event = attrs.Factory(trio.Event)
    _error: ClientError | None = None

    @classmethod
    def finished(cls) -> Pending:
        pending = cls()
        pending._done.set()
        return pending

    async def run(self, work: Callable[[], Awaitable[None]]) -> None:
        try:
            await work()
        except ClientError as exc:
            log.warning("subscription update failed: %s", exc)
            self._error = exc
        finally:
            self._done.set()

    async def wait(self) -> None:
        await self._done.wait()
        if self._error is not None:
            raise self._error

    def __await__(self) -> Generator[Any, None, None]:
        return self.wait().__await__()


@attrs.define(eq=False)
class Wakeup:
    """A wake-up that is never lost: a set() during the work it triggers is kept for the
    next wait (unlike RepeatedEvent.wait, which only sees future sets)."""

    _event: trio.Event = attrs.Factory(trio.Event)

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> None:
        with trio.move_on_after(timeout):
            await self._event.wait()
        self._event = trio.Event()


@attrs.define(eq=False)
class ConsumerCore:
    instance: ClientInstance
    group: str
    settings: ConsumerSettings
    offset_store: OffsetStore
    consume_type: ConsumeType = ConsumeType.CONSUME_PASSIVELY
    orderly: bool = False
    subscriptions: dict[str, SubscriptionData] = attrs.Factory(dict)
    table: dict[MessageQueue, AssignedQueue] = attrs.Factory(dict)
    rebalance_wake: Wakeup = attrs.Factory(Wakeup)
    # Set by the owner: starts the pull loop of a newly assigned queue in its nursery.
    start_pull: PullStarter | None = None

    @property
    def clustering(self) -> bool:
        return self.settings.message_model is MessageModel.CLUSTERING

    def now_ms(self) -> int:
        return int(trio.current_time() * 1000)

    # ------------------------------------------------------------ ConsumerHooks

    def topics(self) -> set[str]:
        return set(self.subscriptions)

    def consumer_data(self) -> ConsumerData:
        return ConsumerData(
            group_name=self.group,
            consume_type=self.consume_type,
            message_model=self.settings.message_model,
            consume_from_where=self.settings.consume_from_where,
            subscription_data_set=tuple(self.subscriptions[t] for t in sorted(self.subscriptions)),
        )

    def on_ids_changed(self) -> None:
        self.rebalance_wake.set()

    async def persist_offsets(self) -> None:
        await self.offset_store.persist_all(list(self.table), wait=False)

    async def reset_offsets(self, topic: str, offsets: dict[MessageQueue, int]) -> None:
        """Move to the offsets an admin's resetOffsetByTime chose (Java's resetOffset).

        The topic's queues are dropped first, so nothing consumed meanwhile commits an older
        position; the new offsets are committed to the broker and forgotten locally, and the
        rebalance that follows at once takes the queues up again from the broker's offsets.
        """
        for aq in [aq for mq, aq in self.table.items() if mq.topic == topic]:
            self.drop(aq)
        for mq, offset in offsets.items():
            self.offset_store.update(mq, offset, increase_only=False)
            await self.offset_store.persist(mq)
            self.offset_store.remove(mq)
        self.rebalance_wake.set()

    # ------------------------------------------------------------ subscriptions

    def subscribe(self, topic: str, expression: str | None) -> None:
        self.subscriptions[topic] = build_subscription(topic, expression, int(time.time() * 1000))
        if self.clustering and self.consume_type is ConsumeType.CONSUME_PASSIVELY:
            retry = retry_topic(self.group)
            self.subscriptions.setdefault(
                retry, build_subscription(retry, SUB_ALL, int(time.time() * 1000))
            )

    def unsubscribe(self, topic: str) -> None:
        self.subscriptions.pop(topic, None)

    # ------------------------------------------------------------ offsets

    async def _max_offset(self, mq: MessageQueue) -> int:
        addr = await self.instance.find_broker_addr(mq.broker_name, mq.topic)
        header = GetMaxOffsetRequestHeader(
            topic=mq.topic, queue_id=mq.queue_id, bname=mq.broker_name
        )
        return await api.get_max_offset(self.instance.remoting, addr, header, self.instance.timeout)

    async def _search_offset(self, mq: MessageQueue, timestamp_ms: int) -> int:
        addr = await self.instance.find_broker_addr(mq.broker_name, mq.topic)
        header = SearchOffsetRequestHeader(
            topic=mq.topic, queue_id=mq.queue_id, timestamp=timestamp_ms, bname=mq.broker_name
        )
        return await api.search_offset(self.instance.remoting, addr, header, self.instance.timeout)

    async def compute_pull_from_where(self, mq: MessageQueue) -> int:
        """The start offset of a newly assigned queue (§8.4 table); -1 means skip it for now."""
        stored = await self.offset_store.read(mq, ReadFrom.STORE)
        if stored >= 0:
            return stored
        if stored == READ_ERROR:
            return -1
        where = self.settings.consume_from_where
        is_retry = mq.topic.startswith(RETRY_PREFIX)
        try:
            if where is ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET:
                return 0
            if where is ConsumeFromWhere.CONSUME_FROM_TIMESTAMP:
                if is_retry:
                    return await self._max_offset(mq)
                return await self._search_offset(mq, timestamp_of(self.settings.consume_timestamp))
            return 0 if is_retry else await self._max_offset(mq)
        except ClientError as exc:
            log.info("computing the start offset of %s failed: %s", mq, exc)
            return -1

    # ------------------------------------------------------------ assigned queues

    def assign(self, mq: MessageQueue, offset: int, *, locked: bool = False) -> AssignedQueue:
        pq = ProcessQueue(last_pull_ms=self.now_ms())
        if locked:
            pq.locked = True
            pq.last_lock_ms = self.now_ms()
        aq = AssignedQueue(mq, pq, offset)
        self.table[mq] = aq
        if self.start_pull is not None:
            self.start_pull(aq)
        return aq

    def drop(self, aq: AssignedQueue) -> None:
        aq.pq.dropped = True
        aq.scope.cancel(reason=f"queue {aq.mq} no longer assigned")
        if self.table.get(aq.mq) is aq:
            del self.table[aq.mq]
