"""Consume services: run the user's listener on pulled messages and commit offsets (§8.4).

* Concurrent: a pool of workers takes batches (one listener call of ``consume_batch_size``
  messages each, as Java's consume thread pool) from one bounded work queue; a failed batch
  is sent back to the broker (CONSUMER_SEND_MSG_BACK) for a delayed retry, or — if even
  that fails — to ``%RETRY%<group>`` through the internal producer, or else re-consumed
  here after 5 s.  The committed offset is the lowest still cached.
* Orderly: a queue is consumed by one worker at a time (per-queue lock), only while its
  broker lock is held; a failure puts the batch back and suspends the queue for a moment.
"""

from __future__ import annotations

import enum
import logging
import math
import time
from collections.abc import Awaitable, Callable

import attrs
import trio

from actors.client import api
from actors.client.consumer import AssignedQueue, ConsumerCore, retry_topic
from actors.client.errors import ClientError
from actors.client.message import Message, client_msg_id
from actors.client.producer import ProducerCore
from actors.client.rebalance import lock_queues
from actors.client.work_queue import WorkQueue
from protocol.bodies.common import MessageQueue
from protocol.headers.send import ConsumerSendMsgBackRequestHeader
from protocol.message import MessageConst, MessageExt

log = logging.getLogger(__name__)

MAX_CONSUME_CONTINUOUSLY = 60.0  # an orderly worker yields its queue after this long
CONCURRENT_MAX_RECONSUME = 16
ORDERLY_MAX_RECONSUME = 2**31 - 1


class ConsumeStatus(enum.Enum):
    """Concurrent listener results."""

    CONSUME_SUCCESS = "CONSUME_SUCCESS"
    RECONSUME_LATER = "RECONSUME_LATER"


class ConsumeOrderlyStatus(enum.Enum):
    """Orderly listener results."""

    SUCCESS = "SUCCESS"
    SUSPEND_CURRENT_QUEUE_A_MOMENT = "SUSPEND_CURRENT_QUEUE_A_MOMENT"


_CONSUMED = ConsumeStatus.CONSUME_SUCCESS
_ORDERLY_CONSUMED = ConsumeOrderlyStatus.SUCCESS


@attrs.define(eq=False)
class ConsumeContext:
    """What a listener call is about (its queue) and what it may set for a failure."""

    mq: MessageQueue
    # Concurrent: the delay level of the retry (0 = let the broker pick 3 + reconsume times).
    delay_level_when_next_consume: int = 0
    # Orderly: how long to suspend the queue after a failure.
    suspend_seconds: float | None = None


Listener = Callable[
    [list[MessageExt], ConsumeContext], Awaitable[ConsumeStatus | ConsumeOrderlyStatus]
]


def _succeeded(status: object) -> bool:
    # identity, not set membership: Enum.__hash__ is Python code, and this runs per call
    return status is _CONSUMED or status is _ORDERLY_CONSUMED


def _begin_call(msgs: list[MessageExt], retry: str) -> None:
    """What the listener sees: the original topic of a retried message (it comes from
    %RETRY%<group>) and CONSUME_START_TIME, as Java's ConsumeRequest sets them."""
    now = str(int(time.time() * 1000))
    for msg in msgs:
        props = msg.properties
        if msg.topic == retry:
            original = props.get(MessageConst.RETRY_TOPIC)
            if original:
                msg.topic = original
        props[MessageConst.CONSUME_START_TIME] = now


async def _call_listener(
    listener: Listener, msgs: list[MessageExt], ctx: ConsumeContext, group: str
) -> bool:
    """The listener's verdict; an exception is a failure."""
    _begin_call(msgs, retry_topic(group))
    try:
        return _succeeded(await listener(msgs, ctx))
    except Exception:
        log.exception("%s: listener failed on %d messages of %s", group, len(msgs), ctx.mq)
        return False


_Work = tuple[AssignedQueue, list[MessageExt]]


@attrs.define(eq=False)
class _Worker:
    """One concurrent worker, as the consume timeout watchdog sees it."""

    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    started: float = math.inf  # trio time its current listener call began; inf: none
    current: tuple[AssignedQueue, list[MessageExt], ConsumeContext] | None = None


@attrs.define(eq=False)
class ConcurrentConsumeService:
    """Workers run listener calls of ``consume_batch_size`` messages from one bounded queue.

    The consume timeout is enforced by one watchdog for all workers rather than a cancel
    scope with a deadline around every call, which costs more than the rest of a call: each
    worker runs its calls inside one long-lived scope that the watchdog cancels when a call
    has run past the timeout (then the worker counts that call as failed and opens a new
    scope).  The watchdog sleeps until the oldest running call's deadline, or one timeout
    ahead when none runs: a call that starts later has a later deadline, so none is missed.
    """

    core: ConsumerCore
    listener: Listener
    inner_producer: ProducerCore
    _queue: WorkQueue[_Work] = attrs.field(init=False)
    _workers: list[_Worker] = attrs.field(init=False, factory=list)
    _nursery: trio.Nursery | None = None

    def __attrs_post_init__(self) -> None:
        self._queue = WorkQueue(2 * self.core.settings.consume_workers)

    async def submit(self, aq: AssignedQueue, msgs: list[MessageExt], dispatch: bool) -> None:
        size = max(1, self.core.settings.consume_batch_size)
        if size == 1:
            await self._queue.put_all([(aq, [msg]) for msg in msgs])
        else:
            await self._queue.put_all((aq, msgs[i : i + size]) for i in range(0, len(msgs), size))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for i in range(self.core.settings.consume_workers):
                worker = _Worker()
                self._workers.append(worker)
                nursery.start_soon(self._worker, worker, name=f"consume worker {i}")
            if self._workers:
                nursery.start_soon(self._watchdog, name="consume timeout watchdog")
            task_status.started()

    async def _watchdog(self) -> None:
        timeout = self.core.settings.consume_timeout
        while True:
            now = trio.current_time()
            oldest = min(self._workers, key=lambda w: w.started)
            if oldest.started + timeout <= now:
                oldest.started = math.inf  # cut once; the worker takes it from here
                oldest.scope.cancel(reason="listener call past the consume timeout")
                continue
            await trio.sleep_until(min(oldest.started, now) + timeout)

    async def _worker(self, me: _Worker) -> None:
        while True:
            with trio.CancelScope() as me.scope:
                await self._work(me)
            # The watchdog cut a listener call: it counts as failed.
            assert me.current is not None
            aq, msgs, ctx = me.current
            me.current = None
            log.warning(
                "%s: listener took longer than %gs on %d messages of %s",
                self.core.group,
                self.core.settings.consume_timeout,
                len(msgs),
                ctx.mq,
            )
            await self._failed(aq, msgs, ctx)

    async def _work(self, me: _Worker) -> None:
        """Listener calls until the watchdog cancels ``me.scope`` (then it returns)."""
        queue = self._queue
        listener = self.listener
        group = self.core.group
        retry = retry_topic(group)
        clock = trio.lowlevel.current_clock().current_time  # trio.current_time, minus two calls
        while True:
            work = queue.take_ready()  # no coroutine while calls are queued
            if work is None:
                work = await queue.take()
            aq, msgs = work
            if aq.pq.dropped:
                continue
            queue.spread()
            ctx = ConsumeContext(aq.mq)
            me.current = (aq, msgs, ctx)
            _begin_call(msgs, retry)
            me.started = clock()
            try:
                status = await listener(msgs, ctx)
                ok = status is _CONSUMED or status is _ORDERLY_CONSUMED
            except Exception:
                log.exception("%s: listener failed on %d messages of %s", group, len(msgs), aq.mq)
                ok = False
            me.started = math.inf
            if me.scope.cancel_called:
                return  # returned, but past the timeout (or it swallowed the cancellation)
            me.current = None
            if ok:
                self._consumed(aq, msgs, clock())
            else:
                await self._failed(aq, msgs, ctx)

    def _consumed(self, aq: AssignedQueue, msgs: list[MessageExt], now: float) -> None:
        """Done with ``msgs``: the queue's commit offset moves up to the lowest still cached."""
        pq = aq.pq
        if pq.dropped:
            return  # the queue moved to another consumer; it re-delivers from the committed offset
        offset = pq.remove(msgs, int(now * 1000))
        if offset >= 0 and not pq.dropped:
            self.core.offset_store.update(aq.mq, offset, increase_only=True)

    async def _failed(self, aq: AssignedQueue, msgs: list[MessageExt], ctx: ConsumeContext) -> None:
        """Send each message back for a delayed retry; those that cannot go back are retried
        here later (and still block the commit offset meanwhile)."""
        if aq.pq.dropped:
            return
        retry_here: list[MessageExt] = []
        if self.core.clustering:
            for msg in msgs:
                if not await self._send_back(msg, ctx.delay_level_when_next_consume, aq.mq):
                    msg.reconsume_times += 1
                    retry_here.append(msg)
        else:
            log.warning(
                "%s: broadcasting consumption failed, dropped %d messages",
                self.core.group,
                len(msgs),
            )
        again = {id(m) for m in retry_here}
        self._consumed(aq, [m for m in msgs if id(m) not in again], trio.current_time())
        if retry_here and self._nursery is not None:
            self._nursery.start_soon(self._retry_later, aq, retry_here)

    async def _retry_later(self, aq: AssignedQueue, msgs: list[MessageExt]) -> None:
        await trio.sleep(self.core.settings.local_retry_delay)
        if not aq.pq.dropped:
            await self._queue.put((aq, msgs))

    async def _send_back(self, msg: MessageExt, delay_level: int, mq: MessageQueue) -> bool:
        """CONSUMER_SEND_MSG_BACK; on failure the fallback send to %RETRY%; False if both fail."""
        core = self.core
        max_times = core.settings.max_reconsume_times
        max_times = CONCURRENT_MAX_RECONSUME if max_times < 0 else max_times
        header = ConsumerSendMsgBackRequestHeader(
            offset=msg.commit_log_offset,
            group=core.group,
            delay_level=delay_level,
            origin_msg_id=client_msg_id(msg),
            origin_topic=msg.topic,
            unit_mode=False,
            max_reconsume_times=max_times,
            bname=mq.broker_name,
        )
        try:
            addr = core.instance.broker_addr(mq.broker_name) or msg.store_host
            await api.send_back(
                core.instance.remoting, addr, header, core.settings.send_back_timeout
            )
            return True
        except ClientError as exc:
            log.info(
                "%s: send back of %s failed (%s); sending to the retry topic",
                core.group,
                client_msg_id(msg),
                exc,
            )
        return await send_to_retry_topic(self.inner_producer, core.group, msg, max_times)


async def send_to_retry_topic(
    producer: ProducerCore, group: str, msg: MessageExt, max_times: int
) -> bool:
    """The client-side retry path: a new message to %RETRY%<group> (§8.4)."""
    props = {
        k: v
        for k, v in msg.properties.items()
        if k not in (MessageConst.MIN_OFFSET, MessageConst.MAX_OFFSET, MessageConst.UNIQ_KEY)
    }
    props.setdefault(MessageConst.ORIGIN_MESSAGE_ID, client_msg_id(msg))
    props[MessageConst.RETRY_TOPIC] = props.get(MessageConst.RETRY_TOPIC, msg.topic)
    props[MessageConst.RECONSUME_TIME] = str(msg.reconsume_times + 1)
    props[MessageConst.MAX_RECONSUME_TIMES] = str(max_times)
    props.pop(MessageConst.TAGS, None)
    props.pop(MessageConst.KEYS, None)
    retry = Message(
        retry_topic(group),
        msg.body,
        tags=msg.tags,
        keys=msg.properties.get(MessageConst.KEYS),
        delay_level=min(18, 3 + msg.reconsume_times),
        flag=msg.flag,
        properties=props,
    )
    try:
        await producer.send(retry)
        return True
    except ClientError as exc:
        log.warning("%s: sending %s to the retry topic failed: %s", group, client_msg_id(msg), exc)
        return False


@attrs.define(eq=False)
class OrderlyConsumeService:
    core: ConsumerCore
    listener: Listener
    inner_producer: ProducerCore
    _send: trio.MemorySendChannel[AssignedQueue] = attrs.field(init=False)
    _recv: trio.MemoryReceiveChannel[AssignedQueue] = attrs.field(init=False)
    _nursery: trio.Nursery | None = None

    def __attrs_post_init__(self) -> None:
        # Bounded by the number of queues a consumer can hold in practice; a full channel
        # only delays the pull loop that dispatches.
        self._send, self._recv = trio.open_memory_channel[AssignedQueue](1024)

    async def submit(self, aq: AssignedQueue, msgs: list[MessageExt], dispatch: bool) -> None:
        if dispatch:
            await self._send.send(aq)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for i in range(self.core.settings.consume_workers):
                nursery.start_soon(self._worker, name=f"orderly worker {i}")
            task_status.started()

    async def _worker(self) -> None:
        async for aq in self._recv:
            await self._consume_queue(aq)

    def _later(self, aq: AssignedQueue, delay: float) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(self._resubmit, aq, delay)

    async def _resubmit(self, aq: AssignedQueue, delay: float) -> None:
        await trio.sleep(delay)
        if not aq.pq.dropped:
            await self._send.send(aq)

    async def _relock_later(self, aq: AssignedQueue) -> None:
        """Java's tryLockLaterAndReconsume: try the broker lock again, then resume."""
        await trio.sleep(0.1)
        if aq.pq.dropped:
            return
        if aq.mq in await lock_queues(self.core, [aq.mq]):
            aq.pq.locked = True
            aq.pq.last_lock_ms = self.core.now_ms()
            await self._resubmit(aq, 0.01)
        else:
            await self._resubmit(aq, 3.0)

    def _max_reconsume(self) -> int:
        m = self.core.settings.max_reconsume_times
        return ORDERLY_MAX_RECONSUME if m < 0 else m

    async def _consume_queue(self, aq: AssignedQueue) -> None:
        core, pq = self.core, aq.pq
        async with aq.lock:
            began = trio.current_time()
            while not pq.dropped:
                if core.clustering and (not pq.locked or pq.lock_expired(core.now_ms())):
                    if self._nursery is not None:
                        self._nursery.start_soon(self._relock_later, aq)
                    return
                if trio.current_time() - began > MAX_CONSUME_CONTINUOUSLY:
                    self._later(aq, 0.01)  # let other queues have the worker
                    return
                msgs = pq.take(max(1, core.settings.consume_batch_size), core.now_ms())
                if not msgs:
                    return
                ctx = ConsumeContext(aq.mq)
                ok = await _call_listener(self.listener, msgs, ctx, core.group)
                if pq.dropped:
                    return
                if ok:
                    offset = pq.commit()
                else:
                    offset = await self._on_failure(aq, msgs)
                    if offset < 0:
                        pause = ctx.suspend_seconds or core.settings.suspend_current_queue_time
                        self._later(aq, pause)
                        return
                if offset >= 0:
                    core.offset_store.update(aq.mq, offset, increase_only=False)

    async def _on_failure(self, aq: AssignedQueue, msgs: list[MessageExt]) -> int:
        """Put the batch back (-1), unless it exhausted its retries and went to the DLQ path."""
        limit = self._max_reconsume()
        exhausted = [m for m in msgs if m.reconsume_times >= limit]
        if exhausted and len(exhausted) == len(msgs):
            sent = True
            for msg in msgs:
                sent = (
                    await send_to_retry_topic(self.inner_producer, self.core.group, msg, limit)
                    and sent
                )
            if sent:
                return aq.pq.commit()
        for msg in msgs:
            msg.reconsume_times += 1
        aq.pq.make_consume_again(msgs)
        return -1
