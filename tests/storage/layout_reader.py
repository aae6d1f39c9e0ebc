"""An independent reader of the on-disk layout, written from the reference tables (§4.1, §5.4-5.6).

Deliberately shares no code with protocol/ or storage/: if our writer and this reader agree, the
files are what a RocketMQ user (or tool) expects.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass

MESSAGE_MAGIC = 0xDAA320A7
BLANK_MAGIC = 0xCBD43194


@dataclass
class Record:
    offset: int
    total: int
    body_crc: int
    queue_id: int
    flag: int
    queue_offset: int
    physical_offset: int
    sys_flag: int
    born_ts: int
    born_host: tuple[bytes, int]
    store_ts: int
    store_host: tuple[bytes, int]
    reconsume: int
    prepared: int
    body: bytes
    topic: str
    properties: dict[str, str]
    raw: bytes


def parse_record(buf: bytes, pos: int, base: int) -> Record:
    total, magic = struct.unpack_from(">iI", buf, pos)
    assert magic == MESSAGE_MAGIC, hex(magic)
    rec = buf[pos : pos + total]
    assert len(rec) == total
    crc, qid, flag, qoff, phys, sysflag, born_ts = struct.unpack_from(">iiiqqiq", rec, 8)
    p = 48
    blen = 16 if sysflag & 0x10 else 4
    born = (rec[p : p + blen], struct.unpack_from(">i", rec, p + blen)[0])
    p += blen + 4
    (store_ts,) = struct.unpack_from(">q", rec, p)
    p += 8
    slen = 16 if sysflag & 0x20 else 4
    store = (rec[p : p + slen], struct.unpack_from(">i", rec, p + slen)[0])
    p += slen + 4
    reconsume, prepared, body_len = struct.unpack_from(">iqi", rec, p)
    p += 16
    body = rec[p : p + body_len]
    p += body_len
    tlen = rec[p]
    topic = rec[p + 1 : p + 1 + tlen].decode()
    p += 1 + tlen
    (plen,) = struct.unpack_from(">h", rec, p)
    props_text = rec[p + 2 : p + 2 + plen].decode()
    assert p + 2 + plen == total
    assert zlib.crc32(body) & 0x7FFFFFFF == crc
    assert phys == base + pos
    props = {}
    for seg in props_text.split("\x02") if props_text else []:
        k, _, v = seg.partition("\x01")
        props[k] = v
    return Record(
        pos + base,
        total,
        crc,
        qid,
        flag,
        qoff,
        phys,
        sysflag,
        born_ts,
        born,
        store_ts,
        store,
        reconsume,
        prepared,
        body,
        topic,
        props,
        bytes(rec),
    )


def read_commit_log(directory: str, file_size: int) -> list[Record]:
    out: list[Record] = []
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
        assert len(data) == file_size
        base = int(name)
        pos = 0
        while pos + 8 <= file_size:
            total, magic = struct.unpack_from(">iI", data, pos)
            if magic == BLANK_MAGIC:
                assert total == file_size - pos
                break
            if magic != MESSAGE_MAGIC:
                break
            out.append(parse_record(data, pos, base))
            pos += total
    return out


def read_consume_queue(directory: str, file_size: int) -> list[tuple[int, int, int, int]]:
    """(queue offset, commit-log offset, size, tags code) of every valid unit."""
    out = []
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
        assert len(data) == file_size
        base = int(name)
        for i in range(0, file_size, 20):
            phys, size, tags = struct.unpack_from(">qiq", data, i)
            if phys < 0 or size <= 0:
                break
            if size != 0x7FFFFFFF:
                out.append(((base + i) // 20, phys, size, tags))
    return out


def java_string_hash(s: str) -> int:
    h = 0
    for ch in _utf16_units(s):
        h = (31 * h + ch) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def _utf16_units(s: str) -> list[int]:
    raw = s.encode("utf-16-be")
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


@dataclass
class IndexHeader:
    begin_ts: int
    end_ts: int
    begin_phy: int
    end_phy: int
    slot_count: int
    index_count: int


def read_index_file(
    path: str, slots: int, entries: int
) -> tuple[IndexHeader, dict[int, list[tuple[int, int, int]]]]:
    """Header, and per slot the chain [(keyHash, phyOffset, timeDiff), ...] newest first."""
    with open(path, "rb") as f:
        data = f.read()
    assert len(data) == 40 + slots * 4 + entries * 20
    header = IndexHeader(*struct.unpack_from(">qqqqii", data, 0))
    chains: dict[int, list[tuple[int, int, int]]] = {}
    for slot in range(slots):
        (n,) = struct.unpack_from(">i", data, 40 + slot * 4)
        chain = []
        while 0 < n < header.index_count:
            kh, phy, diff, prev = struct.unpack_from(">iqii", data, 40 + slots * 4 + n * 20)
            chain.append((kh, phy, diff))
            n = prev
        if chain:
            chains[slot] = chain
    return header, chains


def index_key_hash(key: str) -> int:
    h = java_string_hash(key)
    return 0 if h == -(2**31) else abs(h)


def read_checkpoint(path: str) -> tuple[int, int, int]:
    with open(path, "rb") as f:
        data = f.read()
    assert len(data) == 4096
    return struct.unpack_from(">qqq", data, 0)
