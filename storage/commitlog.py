"""The commit log: records (§4.1) appended back to back over a MappedFileQueue (§5.3).

The append path packs each record with one ``Struct.pack_into`` straight into the mapping; the
compiled Struct is cached per (host kinds, body, topic, properties lengths), so steady traffic
never recompiles.  A record never straddles two files: when it does not fit, an 8-byte BLANK
header closes the file (§4.2) and the record starts the next one.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import attrs

from protocol.message import BLANK_MAGIC_CODE, MESSAGE_MAGIC_CODE, MessageSysFlag
from storage.dispatch import BLANK, END, DispatchRequest, check_record, record_key
from storage.mapped_file import MappedFile
from storage.mapped_file_queue import MappedFileQueue

_BLANK = struct.Struct(">ii")
_MAGIC = struct.Struct(">i")
_FIXED = 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 4 + 8 + 4  # all but hosts and variable parts
_STRUCT_CACHE_MAX = 4096


class Host:
    """A host address pre-parsed for the append path (address bytes, port, layout bits)."""

    __slots__ = ("born_bit", "ip", "is_v6", "port", "size", "store_bit")

    def __init__(self, ip: bytes, port: int) -> None:
        self.ip = ip
        self.port = port
        self.is_v6 = len(ip) == 16
        self.size = 20 if self.is_v6 else 8  # bytes in the record
        self.born_bit = MessageSysFlag.BORNHOST_V6 if self.is_v6 else 0
        self.store_bit = MessageSysFlag.STOREHOST_V6 if self.is_v6 else 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Host) and (self.ip, self.port) == (other.ip, other.port)

    def __hash__(self) -> int:
        return hash((self.ip, self.port))

    def __repr__(self) -> str:
        return f"Host({self.ip!r}, {self.port})"


@attrs.define(slots=True)
class Pending:
    """One record to append (the store has filled in the broker-side fields)."""

    topic: bytes
    queue_id: int
    flag: int
    body: bytes
    properties: bytes
    sys_flag: int
    born_timestamp: int
    born_host: Host
    reconsume_times: int
    prepared_transaction_offset: int
    queue_offset: int

    def size(self, store_v6: bool) -> int:
        return (
            _FIXED
            + self.born_host.size
            + (20 if store_v6 else 8)
            + 3
            + len(self.body)
            + len(self.topic)
            + len(self.properties)
        )


class CommitLog:
    def __init__(
        self, directory: str, file_size: int, store_host: Host, *, warm: bool = False
    ) -> None:
        self.queue = MappedFileQueue(directory, file_size, warm=warm)
        self.file_size = file_size
        self.store_host = store_host
        self._structs: dict[tuple[int, int, int, int, int], struct.Struct] = {}
        # store time of the newest record; the checkpoint takes it after a full flush
        self.last_store_timestamp = 0

    # ------------------------------------------------------------ offsets

    @property
    def min_offset(self) -> int:
        return self.queue.min_offset

    @property
    def max_offset(self) -> int:
        return self.queue.max_offset

    @property
    def flushed_offset(self) -> int:
        return self.queue.flushed_where

    def roll_next_file(self, offset: int) -> int:
        return offset + self.file_size - offset % self.file_size

    # ------------------------------------------------------------ append

    def _struct(self, sys_flag: int, body: int, topic: int, props: int) -> struct.Struct:
        key = (sys_flag & 0x30, body, topic, props, 0)
        s = self._structs.get(key)
        if s is None:
            if len(self._structs) >= _STRUCT_CACHE_MAX:
                self._structs.clear()
            born = "16s" if sys_flag & MessageSysFlag.BORNHOST_V6 else "4s"
            store = "16s" if sys_flag & MessageSysFlag.STOREHOST_V6 else "4s"
            s = struct.Struct(f">iiiiiqqiq{born}iq{store}iiqi{body}sb{topic}sh{props}s")
            self._structs[key] = s
        return s

    def _file_with_room(self, total: int) -> MappedFile:
        """The file to write ``total`` bytes into, closing the current one with BLANK if needed."""
        mf = self.queue.file_for_write()
        if total + 8 > mf.remaining:
            if mf.remaining >= 8:
                _BLANK.pack_into(mf.mm, mf.wrote_position, mf.remaining, BLANK_MAGIC_CODE)
            mf.wrote_position = mf.file_size
            mf = self.queue.file_for_write()
        return mf

    def append_one(
        self,
        topic: bytes,
        queue_id: int,
        flag: int,
        body: bytes,
        properties: bytes,
        sys_flag: int,
        born_timestamp: int,
        born: Host,
        reconsume_times: int,
        prepared_transaction_offset: int,
        queue_offset: int,
        store_timestamp: int,
    ) -> tuple[int, int]:
        """Append one record; (wrote offset, size).  The put hot path: no per-record objects."""
        store = self.store_host
        body_len = len(body)
        topic_len = len(topic)
        props_len = len(properties)
        size = _FIXED + 3 + born.size + store.size + body_len + topic_len + props_len
        files = self.queue.files
        mf = files[-1] if files else None
        if mf is None or size + 8 > mf.file_size - mf.wrote_position:
            if size + 8 > self.file_size:
                raise ValueError(f"{size} bytes never fit a {self.file_size}-byte commit-log file")
            mf = self._file_with_room(size)
        pos = mf.wrote_position
        base = mf.file_from_offset
        sys_flag = (sys_flag & ~0x30) | born.born_bit | store.store_bit
        packer = self._structs.get((sys_flag & 0x30, body_len, topic_len, props_len, 0))
        if packer is None:
            packer = self._struct(sys_flag, body_len, topic_len, props_len)
        mm = mf.mm
        # MAGICCODE is written last, after everything else of the record is in place: a
        # process killed mid-copy leaves a record with magic 0, which recovery rejects.
        packer.pack_into(
            mm, pos,
            size, 0, zlib.crc32(body) & 0x7FFFFFFF, queue_id, flag, queue_offset, base + pos,
            sys_flag, born_timestamp, born.ip, born.port, store_timestamp, store.ip, store.port,
            reconsume_times, prepared_transaction_offset, body_len, body,
            topic_len, topic, props_len, properties,
        )  # fmt: skip
        _MAGIC.pack_into(mm, pos + 4, MESSAGE_MAGIC_CODE)
        mf.wrote_position = pos + size
        self.last_store_timestamp = store_timestamp
        return base + pos, size

    def append(
        self, records: Sequence[Pending], store_timestamp: int
    ) -> tuple[int, int, tuple[int, ...]]:
        """Append records contiguously in one file; (wrote offset, bytes, each record's offset).

        OSError if no file can be had."""
        store = self.store_host
        store_v6 = store.is_v6
        sizes = [r.size(store_v6) for r in records]
        total = sum(sizes)
        if total + 8 > self.file_size:
            raise ValueError(f"{total} bytes never fit a {self.file_size}-byte commit-log file")
        mf = self._file_with_room(total)
        mm = mf.mm
        base = mf.file_from_offset
        start = pos = mf.wrote_position
        store_flag = MessageSysFlag.STOREHOST_V6 if store_v6 else 0
        structs = self._structs
        offsets = []
        for r, size in zip(records, sizes, strict=True):
            sys_flag = (r.sys_flag & ~0x30) | store_flag | r.born_host.born_bit
            body = r.body
            # MAGICCODE is written last, after everything else of the record is in place: a
            # process killed mid-copy leaves a record with magic 0, which recovery rejects.
            packer = structs.get((sys_flag & 0x30, len(body), len(r.topic), len(r.properties), 0))
            if packer is None:
                packer = self._struct(sys_flag, len(body), len(r.topic), len(r.properties))
            offsets.append(base + pos)
            packer.pack_into(
                mm, pos,
                size, 0, zlib.crc32(body) & 0x7FFFFFFF, r.queue_id, r.flag,
                r.queue_offset, base + pos, sys_flag, r.born_timestamp,
                r.born_host.ip, r.born_host.port, store_timestamp, store.ip, store.port,
                r.reconsume_times, r.prepared_transaction_offset, len(body), body,
                len(r.topic), r.topic, len(r.properties), r.properties,
            )  # fmt: skip
            _MAGIC.pack_into(mm, pos + 4, MESSAGE_MAGIC_CODE)
            pos += size
        mf.wrote_position = pos
        self.last_store_timestamp = store_timestamp
        return base + start, total, tuple(offsets)

    def append_raw(self, offset: int, data: bytes | memoryview) -> None:
        """HA slave: append master bytes verbatim at ``offset``.

        ``offset`` must be the current end; an empty log may start at any file boundary (a new
        slave is fed from the start of the master's last file, §6.5).
        """
        empty = self.queue.last() is None
        if empty and offset % self.file_size:
            raise ValueError(f"an empty commit log must start at a file boundary, not {offset}")
        if not empty and offset != self.max_offset:
            raise ValueError(f"append at {offset} but the commit log ends at {self.max_offset}")
        view = memoryview(data)
        while view:
            mf = self.queue.file_for_write(offset)
            n = min(len(view), mf.remaining)
            mf.mm[mf.wrote_position : mf.wrote_position + n] = view[:n]
            mf.wrote_position += n
            view = view[n:]

    # ------------------------------------------------------------ read

    def read(self, offset: int, size: int) -> bytes | None:
        mf = self.queue.find(offset)
        if mf is None:
            return None
        pos = offset - mf.file_from_offset
        if pos + size > mf.wrote_position:
            return None
        try:
            return mf.mm[pos : pos + size]
        except ValueError:  # unmapped by the cleaner meanwhile: the file is being removed
            return None

    def read_record(self, offset: int) -> bytes | None:
        """The whole record starting at ``offset`` (its TOTALSIZE read first)."""
        mf = self.queue.find(offset)
        if mf is None:
            return None
        pos = offset - mf.file_from_offset
        if pos + 8 > mf.wrote_position:
            return None
        try:
            size, magic = _BLANK.unpack_from(mf.mm, pos)
            if magic != MESSAGE_MAGIC_CODE or size <= 0 or pos + size > mf.wrote_position:
                return None
            return mf.mm[pos : pos + size]
        except ValueError:  # unmapped by the cleaner meanwhile
            return None

    def read_range(self, offset: int, max_bytes: int) -> bytes:
        """Raw bytes from ``offset`` up to the end of its file's data (HA transfer)."""
        mf = self.queue.find(offset)
        if mf is None:
            return b""
        pos = offset - mf.file_from_offset
        end = min(mf.wrote_position, pos + max_bytes)
        try:
            return mf.mm[pos:end] if end > pos else b""
        except ValueError:  # unmapped by the cleaner meanwhile
            return b""

    def store_timestamp_at(self, offset: int, size: int) -> int:
        """STORETIMESTAMP of the record at ``offset`` (0 if unreadable)."""
        data = self.read(offset, min(size, 76))
        if data is None or len(data) < 76:
            return 0
        (sys_flag,) = struct.unpack_from(">i", data, 36)
        at = 68 if sys_flag & MessageSysFlag.BORNHOST_V6 else 56
        return int(struct.unpack_from(">q", data, at)[0])

    def next_dispatch(
        self, offset: int, *, delay_levels_ms: Sequence[int] = ()
    ) -> tuple[DispatchRequest | int, int]:
        """Parse the record at ``offset`` for reput; (request | BLANK/END/CORRUPT, next offset)."""
        mf = self.queue.find(offset)
        if mf is None:
            return END, offset
        pos = offset - mf.file_from_offset
        got = check_record(
            mf.mm,
            pos,
            mf.wrote_position,
            mf.file_from_offset,
            check_crc=False,
            delay_levels_ms=delay_levels_ms,
        )
        if isinstance(got, DispatchRequest):
            return got, offset + got.size
        if got == BLANK:
            return BLANK, self.roll_next_file(offset)
        return got, offset

    def next_key(self, offset: int) -> tuple[tuple[str, int, int, int] | None, int]:
        """Light parse for replay: ((topic, queue, queue offset, sysFlag) | None, next offset).

        None means "not a plain whole record here" (blank, end, corrupt): use next_dispatch.
        """
        mf = self.queue.find(offset)
        if mf is None:
            return None, offset
        pos = offset - mf.file_from_offset
        size = check_record(
            mf.mm, pos, mf.wrote_position, mf.file_from_offset, check_crc=False, decode=False
        )
        if not isinstance(size, int) or size <= 0:
            return None, offset
        return record_key(mf.mm, pos), offset + size

    def destroy(self) -> None:
        self.queue.destroy()

    def close(self, *, as_crash: bool = False) -> None:
        self.queue.close(as_crash=as_crash)
