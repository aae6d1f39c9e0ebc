"""Scheduled delivery of delay-level messages (reference §7.3): 4.9's ScheduleMessageService.

One task per level walks ``SCHEDULE_TOPIC_XXXX`` queue ``level - 1`` in order.  Within a level
every message waits the same delay, so the queue is sorted by due time: the task delivers the
due prefix, then sleeps exactly until the head is due (4.9 re-polls every 100 ms instead); an
empty queue waits for an arrival notification (``notify_arrival``) or the idle poll.  Progress
per level lives in the shared ``DelayOffsetTable`` and is persisted to ``delayOffset.json``
every ``flushDelayOffsetInterval`` and on the way out, so a restart resumes where it stopped
(a crash re-delivers what came after the last persist: at least once, never lost).

The service belongs to the master role's scope: the role supervisor starts ``run`` there and
cancels it on a switch to slave.  Starting it while it already runs does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import attrs
import trio

from actors.broker.delay import DelayLevels, queue_id_for_level, restore_delayed
from protocol.errors import RemoteProtocolError
from protocol.message import decode_record
from storage.delay_offsets import FILE_NAME, DelayOffsetTable
from storage.json_store import save_text
from storage.message_store import GetResult, GetStatus, MessageInner, PutResult, PutStatus
from storage.topic_config import SCHEDULE_TOPIC

log = logging.getLogger(__name__)

BATCH = 32  # messages delivered between two checkpoints of the event loop
RETRY_AFTER_FAILURE = 0.1  # s; 4.9.8's DELAY_FOR_A_WHILE after a failed put
PERSIST_TIMEOUT = 5.0  # s; bound on the final delayOffset.json write at shutdown


class ScheduleStore(Protocol):
    def get_message(
        self, group: str, topic: str, queue_id: int, offset: int, max_msg_nums: int
    ) -> GetResult: ...

    def put_message(self, msg: MessageInner) -> PutResult: ...


@attrs.define(eq=False)
class ScheduleService:
    store: ScheduleStore
    levels: DelayLevels
    offsets: DelayOffsetTable
    config_dir: Path
    now_ms: Callable[[], int]
    # called after every put, so the reput dispatcher makes the delivered message visible
    on_put: Callable[[], None] = lambda: None
    # flushDelayOffsetInterval in seconds; None when another task persists the table (the
    # broker's config persister writes every dirty table, so two writers never race on a file)
    persist_interval: float | None = 10.0
    idle_poll: float = 1.0  # an empty level re-checks this often without a notification
    running: bool = False
    delivered: int = 0
    dropped: int = 0
    _arrived: dict[int, trio.Event] = attrs.Factory(dict)

    # ------------------------------------------------------------ the actor

    async def run(
        self, *, task_status: trio.TaskStatus[ScheduleService] = trio.TASK_STATUS_IGNORED
    ) -> None:
        if self.running:
            task_status.started(self)  # a second start does nothing
            return
        self.running = True
        try:
            async with trio.open_nursery() as nursery:
                for level in self.levels.levels():
                    nursery.start_soon(self._level_loop, level, name=f"schedule.level{level}")
                if self.persist_interval is not None:
                    nursery.start_soon(
                        self._persist_loop, self.persist_interval, name="schedule.persist"
                    )
                task_status.started(self)
        finally:
            self.running = False
            if self.persist_interval is not None:
                with trio.move_on_after(PERSIST_TIMEOUT, shield=True):
                    await self.persist()

    def notify_arrival(self, topic: str, queue_id: int) -> None:
        """The reput dispatcher made a new schedule unit visible: wake that level."""
        if topic == SCHEDULE_TOPIC and (event := self._arrived.get(queue_id + 1)) is not None:
            event.set()

    async def persist(self) -> None:
        if not self.offsets.dirty:
            return
        # serialise here, write in a thread: the table keeps changing while the file is written
        text = self.offsets.to_json()
        self.offsets.dirty = False
        try:
            await trio.to_thread.run_sync(save_text, self.config_dir / FILE_NAME, text)
        except OSError:
            self.offsets.dirty = True
            raise

    async def _persist_loop(self, interval: float) -> None:
        while True:
            await trio.sleep(interval)
            try:
                await self.persist()
            except OSError as exc:
                log.error("persisting %s failed (will retry): %s", FILE_NAME, exc)

    async def _level_loop(self, level: int) -> None:
        while True:
            self._arrived[level] = trio.Event()
            wait = self.deliver_due(level)
            if wait is None:
                with trio.move_on_after(self.idle_poll):
                    await self._arrived[level].wait()
            else:
                await trio.sleep(wait)

    # ------------------------------------------------------------ one step (synchronous)

    def deliver_due(self, level: int, limit: int = BATCH) -> float | None:
        """Deliver up to ``limit`` due messages of ``level``.

        Returns seconds to sleep before the next step (0: more may be due now), or None when
        the queue is drained (wait for an arrival).
        """
        queue_id = queue_id_for_level(level)
        offset = self.offsets.get(level)
        result = self.store.get_message(SCHEDULE_TOPIC, SCHEDULE_TOPIC, queue_id, offset, limit)
        if result.status is not GetStatus.FOUND or not result.buffers:
            if result.status in _MOVED and result.next_begin_offset != offset:
                log.warning(
                    "schedule level %d: offset %d invalid (%s), continuing at %d",
                    level,
                    offset,
                    result.status.name,
                    result.next_begin_offset,
                )
                self.offsets.update(level, result.next_begin_offset)
                return 0.0
            return None
        now = self.now_ms()
        for buf in result.buffers:
            try:
                ext = decode_record(buf)
            except RemoteProtocolError as exc:
                log.error("schedule level %d: unreadable record at %d: %s", level, offset, exc)
                offset += 1
                self.offsets.update(level, offset)
                continue
            due = self.levels.correct_deliver_timestamp(
                level, self.levels.deliver_timestamp(level, ext.store_timestamp), now
            )
            if due > now:
                return (due - now) / 1000
            msg = restore_delayed(ext)
            if msg is None:
                log.error(
                    "schedule level %d: message %s has no real topic, dropped", level, ext.msg_id
                )
                self.dropped += 1
            else:
                put = self.store.put_message(msg)
                if put.status is not PutStatus.PUT_OK:
                    log.warning(
                        "schedule level %d: put into %s failed (%s), retrying",
                        level,
                        msg.topic,
                        put.status.name,
                    )
                    return RETRY_AFTER_FAILURE
                self.delivered += 1
                self.on_put()
            offset = ext.queue_offset + 1
            self.offsets.update(level, offset)
        # units the store skipped after the last record (if any) are behind us too
        self.offsets.update(level, max(offset, result.next_begin_offset))
        return 0.0


# Statuses after which the stored offset is not readable but next_begin_offset is.
_MOVED = frozenset(
    {
        GetStatus.OFFSET_TOO_SMALL,
        GetStatus.OFFSET_OVERFLOW_BADLY,
        GetStatus.OFFSET_FOUND_NULL,
        GetStatus.MESSAGE_WAS_REMOVING,
        GetStatus.NO_MATCHED_MESSAGE,
    }
)
