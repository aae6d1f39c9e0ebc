"""Exact-time delivery (RocketMQ 5 timer messages) over the on-disk wheel (storage/timer_wheel.py).

Three loops share one ``TimerWheel``:

* **enqueue** follows ``rmq_sys_wheel_timer`` queue 0 (where ``delay.to_timer`` parks timed
  messages) and files each message in the wheel under its ``TIMER_OUT_MS``;
* **dequeue** processes ticks in order: sleeps until the next tick is due, walks that tick's
  chain in the timer log, puts each message into its real topic and moves on; the work per
  tick is the number of messages due in it, whatever else is pending;
* **flush** fsyncs the wheel and its log and checkpoints the progress now and then.

Master-only, like the schedule service: the role supervisor starts ``run`` in the master scope;
starting it while it runs does nothing.  The wheel is opened when ``run`` starts (rebuilt from
its log after a crash) and closed cleanly when it ends.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import attrs
import trio

from actors.broker.delay import TIMER_TOPIC, TimerConst, restore_timed
from protocol.errors import RemoteProtocolError
from protocol.message import MessageExt, decode_record
from storage.message_store import GetResult, GetStatus, MessageInner, PutResult, PutStatus
from storage.timer_wheel import NO_POS, FlushJob, TimerWheel, TimerWheelError

log = logging.getLogger(__name__)

BATCH = 256  # timers handled between two checkpoints of the event loop
RETRY_AFTER_FAILURE = 0.1  # s
CLOSE_TIMEOUT = 10.0  # s; bound on the final flush at shutdown


class TimerStore(Protocol):
    def get_message(
        self, group: str, topic: str, queue_id: int, offset: int, max_msg_nums: int
    ) -> GetResult: ...

    def put_message(self, msg: MessageInner) -> PutResult: ...

    def look_message_by_offset(
        self, phys_offset: int, size: int | None = None
    ) -> MessageExt | None: ...


@attrs.define(eq=False)
class TimerService:
    store: TimerStore
    wheel: TimerWheel
    now_ms: Callable[[], int]
    on_put: Callable[[], None] = lambda: None
    # Until everything put so far is durable as configured (the broker's commit-log flush):
    # the checkpointed progress must never cover a delivery a power loss could still take.
    durable: Callable[[], Awaitable[bool]] | None = None
    flush_interval: float = 1.0  # s between checkpoints of the wheel's progress
    idle_poll: float = 1.0  # the timer topic is re-checked this often without a notification
    running: bool = False
    delivered: int = 0
    dropped: int = 0
    _arrived: trio.Event = attrs.Factory(trio.Event)
    # set once the enqueue loop has filed everything parked before the start: until then the
    # dequeue loop would pass over ticks whose timers are not in the wheel yet
    _caught_up: trio.Event = attrs.Factory(trio.Event)

    async def run(
        self, *, task_status: trio.TaskStatus[TimerService] = trio.TASK_STATUS_IGNORED
    ) -> None:
        if self.running:
            task_status.started(self)  # a second start does nothing
            return
        self.running = True
        self._caught_up = trio.Event()
        try:
            try:
                await trio.to_thread.run_sync(self.wheel.open, self.now_ms())
            except (TimerWheelError, OSError, ValueError):
                # Delay levels and everything else keep working; timed messages wait in their
                # topic until the wheel's files are fixed and the service starts again.
                log.exception(
                    "timer wheel in %s unusable: exact-time delivery is off", self.wheel.dir
                )
                task_status.started(self)
                return
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._enqueue_loop, name="timer.enqueue")
                    nursery.start_soon(self._dequeue_loop, name="timer.dequeue")
                    nursery.start_soon(self._flush_loop, name="timer.flush")
                    task_status.started(self)
            finally:
                with trio.move_on_after(CLOSE_TIMEOUT, shield=True):
                    if self.durable is not None:
                        await self.durable()
                    await trio.to_thread.run_sync(self.wheel.close)
        finally:
            self.running = False

    def notify_arrival(self, topic: str, queue_id: int) -> None:
        if topic == TIMER_TOPIC:
            self._arrived.set()

    # ------------------------------------------------------------ loops

    async def _enqueue_loop(self) -> None:
        while True:
            self._arrived = trio.Event()
            if self.enqueue_step():
                await trio.lowlevel.checkpoint()
            else:
                self._caught_up.set()
                with trio.move_on_after(self.idle_poll):
                    await self._arrived.wait()

    async def _dequeue_loop(self) -> None:
        cursor: int | None = None  # where the current tick's chain continues
        await self._caught_up.wait()
        while True:
            tick = self.wheel.dequeue_tick
            wait_ms = tick - self.now_ms()
            if wait_ms > 0:
                await trio.sleep(wait_ms / 1000)
                continue
            step = self.dequeue_step(tick, cursor)
            cursor = step.cursor
            if step.failed:
                await trio.sleep(RETRY_AFTER_FAILURE)
                continue
            if cursor is None:
                self.wheel.finish_tick(tick)
            await trio.lowlevel.checkpoint()

    async def _flush_loop(self) -> None:
        while True:
            await trio.sleep(self.flush_interval)
            job = self.wheel.begin_flush()
            if self.durable is not None and not await self.durable():
                continue  # the commit log missed its flush: checkpoint next time
            await trio.to_thread.run_sync(self._flush, job)
            self.wheel.delete_delivered_segments()

    def _flush(self, job: FlushJob) -> None:
        # in a worker thread: fsyncs, then the progress file (its own fsyncs and rename)
        job.run()
        self.wheel.checkpoint(job)

    # ------------------------------------------------------------ steps (synchronous)

    def enqueue_step(self, limit: int = 32) -> bool:
        """File the next timed messages in the wheel; False when there was nothing new."""
        offset = self.wheel.enqueue_offset
        result = self.store.get_message(TIMER_TOPIC, TIMER_TOPIC, 0, offset, limit)
        if result.status is not GetStatus.FOUND or not result.buffers:
            if (
                result.next_begin_offset > offset
                and result.status is not GetStatus.NO_MESSAGE_IN_QUEUE
            ):
                log.warning(
                    "timer topic offset %d invalid (%s), continuing at %d",
                    offset,
                    result.status.name,
                    result.next_begin_offset,
                )
                self.wheel.enqueue_offset = result.next_begin_offset
                return True
            return False
        for buf in result.buffers:
            try:
                ext = decode_record(buf)
            except RemoteProtocolError as exc:
                log.error("timer topic: unreadable record at queue offset %d: %s", offset, exc)
                offset += 1
                continue
            try:
                deliver_ms = int(ext.properties[TimerConst.TIMER_OUT_MS])
            except (KeyError, ValueError):
                deliver_ms = 0  # no usable time: deliver at once rather than never
            self.wheel.add(deliver_ms, ext.commit_log_offset, ext.store_size, ext.queue_offset)
            offset = ext.queue_offset + 1
            self.wheel.enqueue_offset = offset
        self.wheel.enqueue_offset = max(offset, result.next_begin_offset)
        return True

    def dequeue_step(self, tick: int, cursor: int | None, limit: int = BATCH) -> TickStep:
        """Handle up to ``limit`` timers of ``tick``, from ``cursor`` (None: from the start)."""
        pos = self.wheel.head(tick) if cursor is None else cursor
        if pos == NO_POS:
            return TickStep(None)
        entries, next_pos = self.wheel.read_chain(pos, limit)
        now = self.now_ms()
        for entry in entries:
            if not entry.due:
                self.wheel.add(entry.deliver_ms, entry.phys_offset, entry.size, entry.queue_offset)
                continue
            ext = self.store.look_message_by_offset(entry.phys_offset, entry.size)
            msg = restore_timed(ext, now) if ext is not None else None
            if msg is None:
                log.error(
                    "timer: message at commit-log offset %d is gone or has no real topic",
                    entry.phys_offset,
                )
                self.dropped += 1
                continue
            put = self.store.put_message(msg)
            if put.status is not PutStatus.PUT_OK:
                log.warning("timer: put into %s failed (%s), retrying", msg.topic, put.status.name)
                return TickStep(entry.pos, failed=True)
            self.delivered += 1
            self.on_put()
        return TickStep(None if next_pos == NO_POS else next_pos)


@attrs.frozen
class TickStep:
    cursor: int | None  # None: the tick is done
    failed: bool = False  # the put of the timer at ``cursor`` failed; retry it later
