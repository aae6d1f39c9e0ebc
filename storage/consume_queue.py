"""One consume queue (§5.4): 20-byte units (commit-log offset, size, tags code) per topic/queue.

Unit n lives at byte n*20 of the queue's logical space.  Units are written only by reput, which is
idempotent by queue offset: a unit that already exists is skipped.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable, Iterator

from storage.mapped_file import MappedFile
from storage.mapped_file_queue import MappedFileQueue, zero_stale_tail

log = logging.getLogger(__name__)

UNIT_SIZE = 20
UNIT = struct.Struct(">qiq")
_BLANK_UNIT = UNIT.pack(0, 0x7FFFFFFF, 0)
INT_MAX = 0x7FFFFFFF
# blocks are allocated 64 KiB (3,276 units) at a time: one posix_fallocate per 3,276 messages
RESERVE_STEP = 64 * 1024


class ConsumeQueue:
    def __init__(self, root: str, topic: str, queue_id: int, file_size: int) -> None:
        self.topic = topic
        self.queue_id = queue_id
        self.file_size = file_size
        # file creation (on the event loop) skips the directory fsync: the flusher's first flush
        # after it does it, in its worker thread, before the checkpoint can cover the units; blocks
        # are allocated as units arrive (a queue file is 6 MB by default and most queues of
        # most topics hold a few units: 1,000 topics preallocated whole would take 48 GB)
        self.queue = MappedFileQueue(
            os.path.join(root, topic, str(queue_id)),
            file_size,
            sync_dir=False,
            small_folios=True,
            reserve_step=RESERVE_STEP,
        )
        self.min_logic_offset = 0  # bytes
        self.max_physic_offset = -1  # end (offset + size) of the last unit's record
        self.last_store_timestamp = 0

    # ------------------------------------------------------------ offsets (in units)

    @property
    def min_offset(self) -> int:
        return max(self.min_logic_offset, self.queue.min_offset) // UNIT_SIZE

    @property
    def max_offset(self) -> int:
        return self.queue.max_offset // UNIT_SIZE

    # ------------------------------------------------------------ load / recover

    def load(self, *, names_durable: bool = True) -> None:
        """``names_durable=False`` after a crash: the dead process may have left names no
        directory fsync covered, so the next flush fsyncs the directory."""
        self.queue.load(names_durable=names_durable)

    def recover(self) -> None:
        """Find the end of valid units (offset >= 0 and size > 0), starting at the 3rd-last file."""
        files = self.queue.files
        if not files:
            return
        index = max(0, len(files) - 3)
        end = files[index].file_from_offset
        self.max_physic_offset = -1
        for mf in files[index:]:
            valid = _valid_units(mf)
            end = mf.file_from_offset + valid
            if valid:
                phys, size, _tags = UNIT.unpack_from(mf.mm, valid - UNIT_SIZE)
                if size != INT_MAX:
                    self.max_physic_offset = phys + size
            if valid < mf.file_size:
                break
        self.queue.set_positions(end)

    def truncate_by_physical(self, phys_end: int) -> None:
        """Drop trailing units whose record starts at or beyond ``phys_end`` (commit-log end)."""
        cut = None
        for mf in reversed(self.queue.files):
            # units are ordered by physical offset: binary search the first one >= phys_end
            lo, hi = 0, mf.wrote_position // UNIT_SIZE
            while lo < hi:
                mid = (lo + hi) // 2
                phys, size, _ = UNIT.unpack_from(mf.mm, mid * UNIT_SIZE)
                if size != INT_MAX and phys >= phys_end:
                    hi = mid
                else:
                    lo = mid + 1
            cut = mf.file_from_offset + lo * UNIT_SIZE
            if lo > 0:
                break
        if cut is None or cut >= self.queue.max_offset:
            return
        self.queue.truncate_dirty(cut)
        self.max_physic_offset = -1
        last = self.queue.last()
        if last is not None and last.wrote_position >= UNIT_SIZE:
            phys, size, _ = UNIT.unpack_from(last.mm, last.wrote_position - UNIT_SIZE)
            if size != INT_MAX:
                self.max_physic_offset = phys + size

    def correct_min_offset(self, phy_min_offset: int) -> None:
        """Skip units whose record is below the commit log's first byte (deleted files)."""
        first = self.queue.first()
        if first is None:
            return
        for pos in range(0, first.wrote_position, UNIT_SIZE):
            phys, size, _ = UNIT.unpack_from(first.mm, pos)
            if size != INT_MAX and phys >= phy_min_offset:
                self.min_logic_offset = max(self.min_logic_offset, first.file_from_offset + pos)
                return
        self.min_logic_offset = max(
            self.min_logic_offset, first.file_from_offset + first.wrote_position
        )

    # ------------------------------------------------------------ write

    def put(
        self, cq_offset: int, phys: int, size: int, tags_code: int, store_timestamp: int = 0
    ) -> bool:
        """Write unit ``cq_offset``; False if it already exists (replay). OSError if no file."""
        expect = cq_offset * UNIT_SIZE
        last = self.queue.last()
        # the live case: the unit right after the last one, with room in the last file
        if (
            last is not None
            and expect == last.file_from_offset + last.wrote_position
            and last.append(UNIT.pack(phys, size, tags_code))
        ):
            self.max_physic_offset = phys + size
            if store_timestamp:
                self.last_store_timestamp = store_timestamp
            return True
        if last is None:
            mf = self.queue.file_for_write(expect)
            if expect > mf.file_from_offset:
                # the first file of a queue that starts past zero (files deleted, offset reset)
                self.min_logic_offset = expect
            self.queue.flushed_where = mf.file_from_offset
        else:
            if expect < self.queue.max_offset:
                return False
            mf = self.queue.file_for_write()
        while mf.file_from_offset + mf.wrote_position < expect:
            # a hole (should not happen): keep unit n at byte n*20 with blank units
            if not mf.append(_BLANK_UNIT):
                mf = self.queue.file_for_write()
        if mf.is_full:
            mf = self.queue.file_for_write()
        mf.append(UNIT.pack(phys, size, tags_code))
        self.max_physic_offset = phys + size
        if store_timestamp:
            self.last_store_timestamp = store_timestamp
        return True

    # ------------------------------------------------------------ read

    def unit(self, cq_offset: int) -> tuple[int, int, int] | None:
        pos = cq_offset * UNIT_SIZE
        mf = self.queue.find(pos)
        if mf is None:
            return None
        rel = pos - mf.file_from_offset
        if rel + UNIT_SIZE > mf.wrote_position:
            return None
        try:
            phys, size, tags = UNIT.unpack_from(mf.mm, rel)
        except ValueError:  # unmapped by the cleaner meanwhile
            return None
        return int(phys), int(size), int(tags)

    def units_from(self, cq_offset: int, max_units: int) -> bytes | None:
        """Raw units from ``cq_offset`` to at most the end of its file; None if not mapped."""
        pos = cq_offset * UNIT_SIZE
        if pos < self.min_logic_offset:
            return None
        mf = self.queue.find(pos)
        if mf is None:
            return None
        rel = pos - mf.file_from_offset
        end = min(mf.wrote_position, rel + max_units * UNIT_SIZE)
        if end <= rel:
            return None
        try:
            return mf.mm[rel:end]
        except ValueError:  # unmapped by the cleaner meanwhile
            return None

    def iter_units(self, cq_offset: int, max_units: int) -> Iterator[tuple[int, int, int, int]]:
        """(cq offset, phys, size, tags) for up to ``max_units`` units in one file."""
        data = self.units_from(cq_offset, max_units)
        if data is None:
            return
        for i, (phys, size, tags) in enumerate(UNIT.iter_unpack(data)):
            yield cq_offset + i, phys, size, tags

    def offset_by_time(
        self, timestamp_ms: int, store_time: Callable[[int, int], int], phy_min_offset: int
    ) -> int:
        """The queue offset whose message was stored nearest to ``timestamp_ms`` (§7.7).

        Java's binary search: an exact store-time match wins; otherwise the nearer of the two
        neighbours, so a time after everything gives the last message's offset and a time
        before everything the first one.  An empty queue gives 0.
        """
        lo = self.min_offset
        hi = self.max_offset - 1
        if hi < lo:
            return 0
        left = right = -1
        left_ts = right_ts = -1
        while lo <= hi:
            mid = (lo + hi) // 2
            unit = self.unit(mid)
            if unit is None or unit[1] == INT_MAX or unit[0] < phy_min_offset:
                lo = mid + 1
                continue
            ts = store_time(unit[0], unit[1])
            if ts == timestamp_ms:
                return mid
            if ts > timestamp_ms:
                right, right_ts = mid, ts
                hi = mid - 1
            else:
                left, left_ts = mid, ts
                lo = mid + 1
        if left < 0:
            return right if right >= 0 else 0
        if right < 0:
            return left
        return right if abs(timestamp_ms - left_ts) > abs(timestamp_ms - right_ts) else left

    # ------------------------------------------------------------ flush / cleanup

    def flush(self, least_pages: int = 0) -> int:
        """fdatasync (if ``least_pages`` pages are dirty; 0: anything); the new flushed end."""
        return self.queue.flush(least_pages)

    def resync_from(self, phys: int) -> None:
        """After an abnormal start: count files holding units of records at or after ``phys``
        as unflushed, so the flusher fdatasyncs them (recovery counted everything loaded as
        flushed; what the killed process wrote after its last flush may be page cache only).
        Units below ``phys`` were flushed before the checkpoint that put recovery's start there.
        """
        files = self.queue.files
        first = None
        for mf in reversed(files):
            if mf.wrote_position < UNIT_SIZE:
                first = mf
                continue
            last_phys, _size, _tags = UNIT.unpack_from(mf.mm, mf.wrote_position - UNIT_SIZE)
            if last_phys < phys:
                break
            first = mf
        if first is None:
            return
        for mf in files[files.index(first) :]:
            mf.flushed_position = 0
        self.queue.flushed_where = min(self.queue.flushed_where, first.file_from_offset)

    def delete_expired(self, phy_min_offset: int) -> int:
        """Delete files whose last unit points below the commit log's min offset."""

        def expired(mf: MappedFile) -> bool:
            if mf.wrote_position < UNIT_SIZE:
                return False
            phys, size, _ = UNIT.unpack_from(mf.mm, mf.wrote_position - UNIT_SIZE)
            return size != INT_MAX and phys < phy_min_offset and mf.is_full

        deleted = self.queue.delete_first_files(expired, max_files=1 << 30)
        self.correct_min_offset(phy_min_offset)
        return len(deleted)

    def destroy(self) -> None:
        self.queue.destroy()
        self.min_logic_offset = 0
        self.max_physic_offset = -1

    def close(self, *, as_crash: bool = False) -> None:
        self.queue.close(as_crash=as_crash)


def _valid_units(mf: MappedFile) -> int:
    """Bytes of valid units at the start of ``mf``; zeroes any garbage after them."""
    pos = 0
    for phys, size, _ in UNIT.iter_unpack(mf.mm):
        if phys < 0 or size <= 0:
            break
        pos += UNIT_SIZE
    if pos < mf.file_size:
        zero_stale_tail(mf, pos)
    return pos
