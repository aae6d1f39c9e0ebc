"""One IndexFile (§5.5): a 40-byte header, hash slots and chained 20-byte entries.

Header: beginTimestamp, endTimestamp, beginPhyOffset, endPhyOffset (longs), hashSlotCount,
indexCount (ints; indexCount starts at 1).  Slot i holds the newest entry number of its chain;
entry = keyHash, phyOffset, timeDiff (s), previous entry number.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading

from mypy_extensions import mypyc_attr

from protocol.message import java_hash
from storage.mapped_file import create_mapped, open_mapped, sync_directory

HEADER_SIZE = 40
SLOT_SIZE = 4
ENTRY_SIZE = 20
ENTRY_RESERVE = 1 << 20  # 52,428 entries per posix_fallocate
_HEADER = struct.Struct(">qqqqii")
_SLOT = struct.Struct(">i")
_ENTRY = struct.Struct(">iqii")
INT_MAX = 0x7FFFFFFF


def index_file_size(slots: int, entries: int) -> int:
    return HEADER_SIZE + slots * SLOT_SIZE + entries * ENTRY_SIZE


_INT_MIN = -(2**31)


# Reput hashes "topic#UNIQ_KEY" for every message.  A producer's UNIQ_KEYs share their first 20
# hex digits (its address, pid and class loader) and differ in the last 12 (time and counter),
# and String.hashCode of p + s is hash(p) * 31**len(s) + hash(s): so the prefix's hash is looked
# up and only the last 12 characters are hashed, a third of the work for a 43-character key.
_SUFFIX = 12
_POW31_SUFFIX = pow(31, _SUFFIX, 1 << 32)
_PREFIX_HASHES: dict[str, int] = {}
_PREFIX_HASHES_MAX = 1024


def key_hash(key: str) -> int:
    """abs(String.hashCode) with Integer.MIN_VALUE mapped to 0."""
    # ASCII only: then characters are UTF-16 units one for one, and len() is the suffix's
    if len(key) > 2 * _SUFFIX and key.isascii():
        cut = len(key) - _SUFFIX
        prefix = key[:cut]
        hp = _PREFIX_HASHES.get(prefix)
        if hp is None:
            if len(_PREFIX_HASHES) >= _PREFIX_HASHES_MAX:
                _PREFIX_HASHES.clear()
            hp = _PREFIX_HASHES[prefix] = java_hash(prefix) & 0xFFFFFFFF
        h = (hp * _POW31_SUFFIX + java_hash(key[cut:])) & 0xFFFFFFFF
        if h & 0x80000000:
            h -= 0x100000000
    else:
        h = java_hash(key)
    return 0 if h == _INT_MIN else abs(h)


# Not a native class under mypyc (scripts/build-mypyc.sh): a crash test replaces IndexFile.put
# on the class, which a native class refuses; its methods still compile.
@mypyc_attr(native_class=False)
class IndexFile:
    __slots__ = (
        "_fd",
        "_io_lock",
        "allocated_to",
        "begin_phy_offset",
        "begin_timestamp",
        "end_phy_offset",
        "end_timestamp",
        "hash_slot_count",
        "index_count",
        "index_num",
        "mm",
        "name_synced",
        "path",
        "slot_num",
    )

    def __init__(self, path: str, slot_num: int, index_num: int, fd: int, mm: mmap.mmap) -> None:
        self.path = path
        self.index_count: int = 1
        self.index_num: int = index_num
        self.end_timestamp: int = 0
        self.begin_timestamp: int = 0
        self.slot_num = slot_num
        self.index_num = index_num
        self._fd = fd
        self.mm = mm
        # bytes below this have disk blocks: the header and slots from creation on, the entries
        # region ENTRY_RESERVE at a time as entries arrive (the defaults make a 420 MB file, a
        # few KB of which a quiet broker ever writes); 0 after open: the next put reserves again
        self.allocated_to = 0
        self._io_lock = threading.Lock()  # flusher thread vs cleaner thread (see MappedFile)
        # whether a directory fsync has covered the name since it was created (reput creates
        # files on the event loop, without one) or opened (a crashed process may have left it
        # uncovered): the first flush does it, so flushed entries never sit under a lost name
        self.name_synced = False
        (
            self.begin_timestamp,
            self.end_timestamp,
            self.begin_phy_offset,
            self.end_phy_offset,
            self.hash_slot_count,
            self.index_count,
        ) = _HEADER.unpack_from(mm, 0)
        if self.index_count <= 0:
            self.index_count = 1

    @classmethod
    def create(
        cls,
        path: str,
        slot_num: int,
        index_num: int,
        *,
        begin_timestamp: int = 0,
        begin_phy_offset: int = 0,
    ) -> IndexFile:
        reserve = HEADER_SIZE + slot_num * SLOT_SIZE + ENTRY_RESERVE
        fd, mm = create_mapped(
            path, index_file_size(slot_num, index_num), sync_dir=False, reserve=reserve
        )
        f = cls(path, slot_num, index_num, fd, mm)
        f.allocated_to = min(reserve, index_file_size(slot_num, index_num))
        # a successor file starts where its predecessor ended
        f.begin_timestamp = f.end_timestamp = begin_timestamp
        f.begin_phy_offset = f.end_phy_offset = begin_phy_offset
        f.write_header()
        return f

    @classmethod
    def open(cls, path: str, slot_num: int, index_num: int) -> IndexFile:
        fd, mm = open_mapped(path, index_file_size(slot_num, index_num))
        return cls(path, slot_num, index_num, fd, mm)

    def _reserve(self, end: int) -> None:
        """Blocks up to ``end`` and ENTRY_RESERVE beyond; OSError (ENOSPC) before any write."""
        size = index_file_size(self.slot_num, self.index_num)
        target = min(size, end + ENTRY_RESERVE)
        start = self.allocated_to
        os.posix_fallocate(self._fd, start, target - start)
        self.allocated_to = target

    def write_header(self) -> None:
        _HEADER.pack_into(
            self.mm,
            0,
            self.begin_timestamp,
            self.end_timestamp,
            self.begin_phy_offset,
            self.end_phy_offset,
            self.hash_slot_count,
            self.index_count,
        )

    def plausible(self) -> bool:
        """Whether the header can describe this file (a torn write after power loss cannot)."""
        return (
            1 <= self.index_count <= self.index_num
            and 0 <= self.hash_slot_count <= min(self.slot_num, self.index_count)
            and 0 <= self.begin_timestamp <= self.end_timestamp
            and 0 <= self.begin_phy_offset <= self.end_phy_offset
        )

    @property
    def is_full(self) -> bool:
        return self.index_count >= self.index_num

    def put(self, key: str, phy_offset: int, store_timestamp: int) -> bool:
        """Add ``key``; False when the file is full.

        The header is left to the caller (``write_header``), once per record: after a process
        crash, load trusts the header's end offset as "every key of records up to here is
        indexed" and replays the commit log after it, so the header must never cover a record
        whose other keys are not in yet.
        """
        n = self.index_count
        if n >= self.index_num:
            return False
        h = key_hash(key)
        mm = self.mm
        slot_num = self.slot_num
        entries_at = HEADER_SIZE + slot_num * SLOT_SIZE
        if entries_at + (n + 1) * ENTRY_SIZE > self.allocated_to:
            self._reserve(entries_at + (n + 1) * ENTRY_SIZE)
        slot = h % slot_num
        slot_pos = HEADER_SIZE + slot * SLOT_SIZE
        (prev,) = _SLOT.unpack_from(mm, slot_pos)
        # A slot at or past the count was written by a put the header never covered (a crash
        # between them).  That entry's own link is what the slot held before it: follow it, or
        # the chain behind would be cut (Java resets such a slot to 0 and loses the chain, and
        # keeping it would make entry n link to itself).
        while n <= prev < self.index_num:
            stale_hash, _, _, before = _ENTRY.unpack_from(mm, entries_at + prev * ENTRY_SIZE)
            if stale_hash % slot_num != slot or before >= prev:
                prev = 0  # not this slot's entry after all: start the chain afresh
                break
            prev = before
        if prev <= 0 or prev >= n:
            prev = 0
        if n <= 1:
            self.begin_timestamp = store_timestamp
            self.begin_phy_offset = phy_offset
        begin_ts = self.begin_timestamp
        diff = 0
        if begin_ts > 0:
            diff = min(max((store_timestamp - begin_ts) // 1000, 0), INT_MAX)
        _ENTRY.pack_into(mm, entries_at + n * ENTRY_SIZE, h, phy_offset, diff, prev)
        _SLOT.pack_into(mm, slot_pos, n)
        if prev == 0:
            self.hash_slot_count += 1
        self.index_count = n + 1
        self.end_phy_offset = phy_offset
        self.end_timestamp = store_timestamp
        return True

    def room(self) -> int:
        return self.index_num - self.index_count

    def overlaps(self, begin: int, end: int) -> bool:
        return self.begin_timestamp <= end and self.end_timestamp >= begin

    def select(self, key: str, max_num: int, begin: int, end: int) -> list[int]:
        """Physical offsets of entries for ``key`` stored within [begin, end], newest first."""
        h = key_hash(key)
        (n,) = _SLOT.unpack_from(self.mm, HEADER_SIZE + (h % self.slot_num) * SLOT_SIZE)
        out: list[int] = []
        if n <= 0 or n >= self.index_count:
            return out
        entries_at = HEADER_SIZE + self.slot_num * SLOT_SIZE
        seen = 0
        while len(out) < max_num and 0 < n < self.index_count and seen < self.index_count:
            seen += 1
            eh, phy, diff, prev = _ENTRY.unpack_from(self.mm, entries_at + n * ENTRY_SIZE)
            ts = self.begin_timestamp + diff * 1000
            if ts < begin:
                break
            if eh == h and ts <= end:
                out.append(phy)
            if prev == n:
                break
            n = prev
        return out

    def flush(self) -> None:
        with self._io_lock:
            if self._fd >= 0:
                os.fdatasync(self._fd)
                if not self.name_synced:
                    sync_directory(os.path.dirname(self.path))
                    self.name_synced = True

    def close(self) -> bool:
        with self._io_lock:
            try:
                if not self.mm.closed:
                    self.write_header()
                self.mm.close()
            except BufferError:
                return False
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
        return True

    def destroy(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.close()
