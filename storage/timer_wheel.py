"""Exact-time delivery timers on disk: a hashed timing wheel over an append-only timer log.

RocketMQ 5 delivers a message at a given millisecond (properties ``TIMER_DELIVER_MS``,
``TIMER_DELAY_SEC``, ``TIMER_DELAY_MS``) with a TimerWheel + TimerLog pair; this is the same
idea, sized so that pending timers cost disk, not heap, and a tick costs O(messages due in it):

* The **timer log** is a sequence of fixed-size segment files (mmapped) of 52-byte units, one
  per pending timer: ``magic, flags, prev_pos, tick_ms, deliver_ms, phys_offset, size,
  queue_offset``.  Units of one tick form a singly linked list through ``prev_pos`` (newest
  first), so nothing ever moves.
* The **wheel** is one mmapped file of ``slots`` x 24 bytes: ``tick_ms, last_pos, count``.
  Slot ``(tick / precision) % slots`` heads the list of the tick it currently holds; a slot
  whose ``tick_ms`` is not the tick asked for is stale (already delivered) and reads as empty.
* A timer further out than the wheel spans is **rolled**: parked in the last tick the wheel can
  hold and re-added when that tick is processed (the caller sees ``entry.due`` is False).
* ``timercheck`` (atomic JSON) holds the progress: the next timer-topic queue offset to enqueue,
  the next tick to process, each segment's latest tick (so fully delivered segments can be
  deleted) and a clean-shutdown flag.  After a crash the wheel is rebuilt from the log:
  units are re-linked, the torn tail is cut, and the enqueue progress is taken from the log
  itself, so no acknowledged timer is lost (a tick being processed at the crash is processed
  again: delivery is at least once).

Single-threaded and synchronous like the rest of storage/; ``flush`` does the fsyncs and is meant
to run in a worker thread.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from storage.json_store import load_text, save_text

log = logging.getLogger(__name__)

UNIT = struct.Struct(">iiqqqqiq")  # magic flags prev tick deliver phys size queue_offset
UNIT_SIZE = UNIT.size  # 52
UNIT_MAGIC = 0x54494D52  # "TIMR"
SLOT = struct.Struct(">qqi")  # tick_ms last_pos count (+4 spare bytes)
SLOT_SIZE = 24
FLAG_ROLLED = 0x1
NO_POS = -1

WHEEL_FILE = "timerwheel"
LOG_DIR = "timerlog"
CHECK_FILE = "timercheck"


@attrs.frozen(kw_only=True)
class TimerConfig:
    """RocketMQ 5's timer keys (MessageStoreConfig), with its defaults."""

    timerWheelEnable: bool = True
    timerPrecisionMs: int = 1000
    timerMaxDelaySec: int = 3 * 24 * 3600
    # 100 MiB in RocketMQ; rounded down to whole units here so a unit never straddles files
    mappedFileSizeTimerLog: int = 100 * 1024 * 1024

    def validate(self) -> None:
        if self.timerPrecisionMs <= 0:
            raise ValueError("timerPrecisionMs must be positive")
        if self.timerMaxDelaySec <= 0:
            raise ValueError("timerMaxDelaySec must be positive")
        if self.mappedFileSizeTimerLog < UNIT_SIZE:
            raise ValueError(f"mappedFileSizeTimerLog must hold at least one {UNIT_SIZE}-byte unit")


@attrs.frozen
class TimerEntry:
    pos: int
    tick_ms: int
    deliver_ms: int
    phys_offset: int
    size: int
    queue_offset: int
    rolled: bool

    @property
    def due(self) -> bool:
        """False for a rolled timer parked in an earlier tick than its own."""
        return not self.rolled


@attrs.frozen
class FlushJob:
    fds: list[int]
    progress: dict[str, object]

    def run(self) -> None:
        """fdatasync every file (blocking); on Linux it also writes back pages dirtied via mmap."""
        for fd in self.fds:
            os.fdatasync(fd)


class TimerWheelError(Exception):
    """The timer files are unusable (not merely torn by a crash)."""


def _parse_check(text: str) -> dict[str, Any]:
    data = json.loads(text)
    if (
        not isinstance(data, dict)
        or not {"enqueueOffset", "dequeueTick", "segments"} <= data.keys()
    ):
        raise ValueError("not a timer checkpoint")
    return data


def ceil_tick(ms: int, precision: int) -> int:
    """The tick a timer fires in: never before its time, at most one precision late."""
    return -(-ms // precision) * precision


class _Segment:
    def __init__(self, path: Path, start: int, size: int) -> None:
        self.path = path
        self.start = start
        self.size = size
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if os.fstat(self.fd).st_size != size:
            os.ftruncate(self.fd, size)
        self.map = mmap.mmap(self.fd, size)

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)


class TimerWheel:
    """The wheel and its log in ``directory``; open() before use, close() when done."""

    def __init__(
        self, directory: Path | str, config: TimerConfig, *, slots: int | None = None
    ) -> None:
        config.validate()
        self.dir = Path(directory)
        self.config = config
        self.precision = config.timerPrecisionMs
        # One more slot than the longest allowed delay so that, with processing on time, only a
        # backlog (a long stop, a slave that became master) ever rolls.
        self.slots = slots or (config.timerMaxDelaySec * 1000 // self.precision + 2)
        self.segment_size = config.mappedFileSizeTimerLog // UNIT_SIZE * UNIT_SIZE
        self.enqueue_offset = 0
        self.dequeue_tick = 0
        self._end = 0  # log write position
        self._segments: list[_Segment] = []
        self._segment_last_tick: dict[int, int] = {}
        self._wheel_fd = -1
        self._wheel: mmap.mmap | None = None
        self.recovered = False  # True when open() had to rebuild after an unclean stop
        self._checked: dict[str, object] = {}  # progress last written to the check file

    # ------------------------------------------------------------------ lifecycle

    @property
    def span_ms(self) -> int:
        return self.slots * self.precision

    def open(self, now_ms: int) -> None:
        try:
            self._open(now_ms)
        except BaseException:
            self._release()
            raise

    def _open(self, now_ms: int) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / LOG_DIR).mkdir(exist_ok=True)
        check: dict[str, Any] | None = load_text(self.dir / CHECK_FILE, _parse_check)
        self._wheel_fd = os.open(self.dir / WHEEL_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        wheel_bytes = self.slots * SLOT_SIZE
        resized = os.fstat(self._wheel_fd).st_size != wheel_bytes
        if resized:
            os.ftruncate(self._wheel_fd, 0)
            os.ftruncate(self._wheel_fd, wheel_bytes)
        self._wheel = mmap.mmap(self._wheel_fd, wheel_bytes)
        self._open_segments()
        if check is None:
            self.dequeue_tick = ceil_tick(now_ms, self.precision)
            if self._segments:
                # a log without its progress file: keep every timer, from now on
                self._rebuild()
        else:
            self.enqueue_offset = int(check["enqueueOffset"])
            self.dequeue_tick = int(check["dequeueTick"])
            self._segment_last_tick = {int(k): int(v) for k, v in check["segments"].items()}
            # a wheel of another size maps ticks to other slots: rebuild it from the log too
            if check.get("clean") and not resized:
                self._end = int(check["logEnd"])
            else:
                self._rebuild()
        self._write_check(self._progress(), clean=False)

    def close(self) -> None:
        """Flush and mark clean; a later open() trusts the wheel file as it is."""
        if self._wheel is None:
            return
        job = self.begin_flush()
        job.run()
        self._write_check(job.progress, clean=True)
        self._release()

    def _release(self) -> None:
        if self._wheel is not None:
            self._wheel.close()
            self._wheel = None
        if self._wheel_fd >= 0:
            os.close(self._wheel_fd)
            self._wheel_fd = -1
        for seg in self._segments:
            seg.close()
        self._segments.clear()

    def flush(self) -> None:
        """Flush everything now (blocking)."""
        job = self.begin_flush()
        job.run()
        self.checkpoint(job)

    def begin_flush(self) -> FlushJob:
        """Snapshot the progress, then ``run()`` the job in a thread and ``checkpoint()`` it.

        The snapshot is taken first, so timers added while the fsyncs run are not counted as
        durable by the checkpoint that follows.
        """
        fds = [seg.fd for seg in self._segments]
        if self._wheel_fd >= 0:
            fds.append(self._wheel_fd)
        return FlushJob(fds=fds, progress=self._progress())

    def checkpoint(self, job: FlushJob | None = None) -> None:
        """Persist progress (that of a finished flush job, or the current one), if it moved."""
        progress = job.progress if job is not None else self._progress()
        if progress != self._checked:
            self._write_check(progress, clean=False)

    def _progress(self) -> dict[str, object]:
        return {
            "enqueueOffset": self.enqueue_offset,
            "dequeueTick": self.dequeue_tick,
            "logEnd": self._end,
            "segments": {str(k): v for k, v in sorted(self._segment_last_tick.items())},
        }

    def _write_check(self, progress: dict[str, object], *, clean: bool) -> None:
        save_text(self.dir / CHECK_FILE, json.dumps({**progress, "clean": clean}, sort_keys=True))
        self._checked = progress

    # ------------------------------------------------------------------ segments

    def _open_segments(self) -> None:
        for path in sorted((self.dir / LOG_DIR).iterdir()):
            if not path.name.isdigit():
                continue
            if path.stat().st_size != self.segment_size:
                raise TimerWheelError(
                    f"{path} is {path.stat().st_size} bytes, mappedFileSizeTimerLog says "
                    f"{self.segment_size}: the timer log was written with another setting"
                )
            self._segments.append(_Segment(path, int(path.name), self.segment_size))

    def _segment_for(self, pos: int) -> _Segment:
        first = self._segments[0].start
        index = (pos - first) // self.segment_size
        if pos < first or index >= len(self._segments):
            raise TimerWheelError(f"timer log position {pos} is not on disk")
        return self._segments[index]

    def _append_segment(self) -> _Segment:
        start = self._end
        seg = _Segment(self.dir / LOG_DIR / f"{start:020d}", start, self.segment_size)
        self._segments.append(seg)
        return seg

    def delete_delivered_segments(self) -> int:
        """Drop segments whose every timer fired before ``dequeue_tick``; returns files removed."""
        removed = 0
        while len(self._segments) > 1:
            seg = self._segments[0]
            if self._segment_last_tick.get(seg.start, 0) >= self.dequeue_tick:
                break
            seg.close()
            seg.path.unlink()
            self._segments.pop(0)
            self._segment_last_tick.pop(seg.start, None)
            removed += 1
        return removed

    @property
    def log_files(self) -> int:
        return len(self._segments)

    # ------------------------------------------------------------------ slots

    def _slot_pos(self, tick: int) -> int:
        return (tick // self.precision) % self.slots * SLOT_SIZE

    def _read_slot(self, tick: int) -> tuple[int, int, int]:
        assert self._wheel is not None
        slot_tick, last, count = SLOT.unpack_from(self._wheel, self._slot_pos(tick))
        return slot_tick, last, count

    def _link(self, tick: int, pos: int) -> int:
        """Make ``pos`` the newest unit of ``tick``; returns the previous head."""
        assert self._wheel is not None
        slot_pos = self._slot_pos(tick)
        slot_tick, last, count = self._read_slot(tick)
        if slot_tick != tick or count == 0:
            last, count = NO_POS, 0
        SLOT.pack_into(self._wheel, slot_pos, tick, pos, count + 1)
        return last

    def pending_in(self, tick: int) -> int:
        slot_tick, _last, count = self._read_slot(tick)
        return count if slot_tick == tick else 0

    # ------------------------------------------------------------------ add / read

    def add(self, deliver_ms: int, phys_offset: int, size: int, queue_offset: int) -> int:
        """Schedule a timer; returns the tick it is filed under (rolled when beyond the span).

        A timer already due goes to the next tick to be processed.
        """
        tick = max(ceil_tick(deliver_ms, self.precision), self.dequeue_tick)
        flags = 0
        if tick >= self.dequeue_tick + self.span_ms:
            tick = self.dequeue_tick + self.span_ms - self.precision
            flags = FLAG_ROLLED
        if not self._segments or self._end >= self._segments[-1].start + self.segment_size:
            self._append_segment()
        seg = self._segments[-1]
        pos = self._end
        prev = self._link(tick, pos)
        UNIT.pack_into(
            seg.map,
            pos - seg.start,
            UNIT_MAGIC,
            flags,
            prev,
            tick,
            deliver_ms,
            phys_offset,
            size,
            queue_offset,
        )
        self._end = pos + UNIT_SIZE
        if self._segment_last_tick.get(seg.start, -1) < tick:
            self._segment_last_tick[seg.start] = tick
        return tick

    def head(self, tick: int) -> int:
        """Position of the newest unit filed under ``tick`` (NO_POS if none)."""
        slot_tick, last, count = self._read_slot(tick)
        return last if slot_tick == tick and count else NO_POS

    def read_chain(self, pos: int, limit: int) -> tuple[list[TimerEntry], int]:
        """Up to ``limit`` units from ``pos`` back along the chain, and where to continue."""
        out: list[TimerEntry] = []
        while pos != NO_POS and len(out) < limit:
            seg = self._segment_for(pos)
            magic, flags, prev, tick, deliver, phys, size, qoff = UNIT.unpack_from(
                seg.map, pos - seg.start
            )
            if magic != UNIT_MAGIC:
                raise TimerWheelError(f"broken timer chain at log position {pos}")
            out.append(TimerEntry(pos, tick, deliver, phys, size, qoff, bool(flags & FLAG_ROLLED)))
            pos = prev
        return out, pos

    def entries(self, tick: int) -> Iterator[TimerEntry]:
        pos = self.head(tick)
        while pos != NO_POS:
            batch, pos = self.read_chain(pos, 256)
            yield from batch

    def finish_tick(self, tick: int) -> None:
        """Every timer of ``tick`` was handled: empty its slot and move on to the next tick."""
        if tick != self.dequeue_tick:
            raise TimerWheelError(f"finishing tick {tick} but the next tick is {self.dequeue_tick}")
        assert self._wheel is not None
        slot_tick, _last, _count = self._read_slot(tick)
        if slot_tick == tick:
            SLOT.pack_into(self._wheel, self._slot_pos(tick), tick, NO_POS, 0)
        self.dequeue_tick = tick + self.precision

    # ------------------------------------------------------------------ recovery

    def _units(self) -> Iterator[tuple[_Segment, int, tuple[int, ...]]]:
        for seg in self._segments:
            for off in range(0, self.segment_size, UNIT_SIZE):
                fields = UNIT.unpack_from(seg.map, off)
                if fields[0] != UNIT_MAGIC:
                    return
                yield seg, off, fields

    def _rebuild(self) -> None:
        """Unclean stop: cut the torn tail, re-link every undelivered unit, recover progress."""
        assert self._wheel is not None
        self.recovered = True
        self._wheel[:] = bytes(len(self._wheel))
        self._segment_last_tick.clear()
        end = self._segments[0].start if self._segments else 0
        linked = 0
        for seg, off, fields in self._units():
            _magic, flags, _prev, tick, deliver, phys, size, qoff = fields
            pos = seg.start + off
            end = pos + UNIT_SIZE
            if not flags & FLAG_ROLLED:
                # the log is written in queue order, so its last plain unit is the true progress
                self.enqueue_offset = max(self.enqueue_offset, qoff + 1)
            if self._segment_last_tick.get(seg.start, -1) < tick:
                self._segment_last_tick[seg.start] = tick
            if tick >= self.dequeue_tick:
                prev = self._link(tick, pos)
                UNIT.pack_into(
                    seg.map, off, UNIT_MAGIC, flags, prev, tick, deliver, phys, size, qoff
                )
                linked += 1
        self._end = end
        # zero everything after the last whole unit so a later scan stops at the same place
        for seg in self._segments:
            if seg.start + self.segment_size > end:
                cut = max(end - seg.start, 0)
                seg.map[cut:] = bytes(self.segment_size - cut)
        while len(self._segments) > 1 and self._segments[-1].start >= end:
            dead = self._segments.pop()
            dead.close()
            dead.path.unlink()
        log.warning(
            "timer wheel rebuilt after an unclean stop: %d pending timers re-linked, "
            "enqueue offset %d, next tick %d",
            linked,
            self.enqueue_offset,
            self.dequeue_tick,
        )
