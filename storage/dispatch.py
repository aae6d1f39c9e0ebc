"""Parse-and-validate one commit-log record (``checkMessageAndReturnSize``): recovery and reput.

Reads fields straight from the mapping with ``struct.unpack_from``; only what the consume queue,
the index and long polling need is decoded.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from collections.abc import Sequence

import attrs

from protocol.message import (
    BLANK_MAGIC_CODE,
    MESSAGE_MAGIC_CODE,
    MessageConst,
    string_to_properties,
    tags_code,
)

SCHEDULE_TOPIC = "SCHEDULE_TOPIC_XXXX"

# outcomes other than a DispatchRequest
BLANK = -1  # end-of-file filler: continue in the next file
END = -2  # zero area: no more data
CORRUPT = -3  # bad magic, sizes that do not add up, CRC mismatch

Buf = mmap.mmap | bytes | bytearray

_PAIR = struct.Struct(">ii")
_HEAD_V4 = struct.Struct(">iiiiiqqiq8xq8xiqi")  # TOTALSIZE .. BODYLEN when both hosts are IPv4
# from BORNHOST to BODYLEN (skipping both hosts), by (STOREHOST_V6, BORNHOST_V6) bits
_REST = [
    struct.Struct(">8xq8xiqi"),
    struct.Struct(">20xq8xiqi"),
    struct.Struct(">8xq20xiqi"),
    struct.Struct(">20xq20xiqi"),
]
_SHORT = struct.Struct(">h")
_MIN_RECORD = 91


@attrs.define(slots=True)
class DispatchRequest:
    topic: str
    queue_id: int
    commit_log_offset: int
    size: int
    tags_code: int
    store_timestamp: int
    queue_offset: int
    sys_flag: int
    prepared_transaction_offset: int
    keys: str | None  # the KEYS property: space-separated keys for the index
    uniq_key: str | None


# tags code by tag string: producers reuse a handful of tags, and hashing one is a Python loop
_TAGS_CODES: dict[str | None, int] = {}
_TAGS_CODES_MAX = 4096


def _tags_code_cached(tags: str | None) -> int:
    if len(_TAGS_CODES) >= _TAGS_CODES_MAX:
        _TAGS_CODES.clear()
    code = _TAGS_CODES[tags] = tags_code(tags)
    return code


def request_from_properties(
    topic: str,
    queue_id: int,
    commit_log_offset: int,
    size: int,
    store_timestamp: int,
    queue_offset: int,
    sys_flag: int,
    prepared_transaction_offset: int,
    props: dict[str, str],
    delay_levels_ms: Sequence[int] = (),
) -> DispatchRequest:
    """The dispatch request of a record whose properties are parsed."""
    if topic == SCHEDULE_TOPIC:
        code = delivery_tags_code(store_timestamp, props, delay_levels_ms)
    else:
        tags = props.get(MessageConst.TAGS)
        cached = _TAGS_CODES.get(tags) if tags else 0
        code = _tags_code_cached(tags) if cached is None else cached
    return DispatchRequest(
        topic,
        queue_id,
        commit_log_offset,
        size,
        code,
        store_timestamp,
        queue_offset,
        sys_flag,
        prepared_transaction_offset,
        props.get(MessageConst.KEYS),
        props.get(MessageConst.UNIQ_KEY),
    )


# What the put path keeps of a record so reput need not read it back (not for SCHEDULE_TOPIC,
# whose tags code comes from DELAY): (offset, size, topic, queue id, queue offset, store time,
# sysFlag, prepared offset, then TAGS, KEYS, UNIQ_KEY, or None and the properties' bytes).
Hint = tuple[
    int, int, str, int, int, int, int, int, str | None, str | None, str | None, bytes | None
]


def request_from_hint(h: Hint) -> DispatchRequest | int:
    """The dispatch request a hint stands for, or CORRUPT if its properties are not UTF-8."""
    raw = h[11]
    if raw is not None:
        try:
            props = string_to_properties(raw.decode())
        except UnicodeDecodeError:
            return CORRUPT
        return request_from_properties(h[2], h[3], h[0], h[1], h[5], h[4], h[6], h[7], props)
    tags = h[8]
    cached = _TAGS_CODES.get(tags) if tags else 0
    return DispatchRequest(
        h[2],
        h[3],
        h[0],
        h[1],
        _tags_code_cached(tags) if cached is None else cached,
        h[5],
        h[4],
        h[6],
        h[7],
        h[9],
        h[10],
    )


def delivery_tags_code(
    store_timestamp: int, properties: dict[str, str], delay_levels_ms: Sequence[int]
) -> int:
    """SCHEDULE_TOPIC_XXXX units carry the delivery time instead of a tag hash (§5.4)."""
    text = properties.get(MessageConst.DELAY)
    if not text or not delay_levels_ms:
        return store_timestamp
    try:
        level = int(text)
    except ValueError:
        return store_timestamp
    level = min(max(level, 1), len(delay_levels_ms))
    return store_timestamp + delay_levels_ms[level - 1]


def check_record(
    buf: Buf,
    pos: int,
    limit: int,
    base_offset: int,
    *,
    check_crc: bool,
    decode: bool = True,
    delay_levels_ms: Sequence[int] = (),
) -> DispatchRequest | int:
    """Validate the record at ``pos`` of ``buf`` (bytes below ``limit`` are readable).

    Returns a DispatchRequest (``decode=False``: its size as an int > 0), or BLANK, END, CORRUPT.
    ``base_offset`` is the global offset of ``buf[0]``; PHYSICALOFFSET must equal base + pos.
    """
    room = limit - pos
    if room < _MIN_RECORD:
        if room < 8:
            return END
        total, magic = _PAIR.unpack_from(buf, pos)
        if magic == BLANK_MAGIC_CODE:
            return BLANK
        return END if total == 0 and magic == 0 else CORRUPT
    # both hosts IPv4 is the common layout: one unpack reads up to BODYLEN (room >= 88 here)
    (
        total,
        magic,
        crc,
        queue_id,
        _flag,
        queue_offset,
        phys,
        sys_flag,
        _born,
        store_ts,
        _reconsume,
        prepared,
        body_len,
    ) = _HEAD_V4.unpack_from(buf, pos)
    if magic != MESSAGE_MAGIC_CODE:
        if magic == BLANK_MAGIC_CODE:
            return BLANK
        return END if total == 0 and magic == 0 else CORRUPT
    if total < _MIN_RECORD or total > room or phys != base_offset + pos:
        return CORRUPT
    end = pos + total
    hosts = (sys_flag >> 4) & 3
    rest = _REST[hosts]
    p = pos + 48 + rest.size
    if p + 3 > end:
        return CORRUPT
    if hosts:
        store_ts, _reconsume, prepared, body_len = rest.unpack_from(buf, pos + 48)
    if body_len < 0 or p + body_len + 3 > end:
        return CORRUPT
    body_at = p
    p += body_len
    topic_len = buf[p]
    if topic_len == 0 or p + 1 + topic_len + 2 > end:
        return CORRUPT
    topic_at = p + 1
    p = topic_at + topic_len
    (props_len,) = _SHORT.unpack_from(buf, p)
    if props_len < 0 or p + 2 + props_len != end:
        return CORRUPT
    # the store refuses topics and properties ending in NUL, so a zero last byte means a tail
    # that was never written (the body CRC does not cover topic and properties)
    if (buf[end - 1] if props_len else buf[p - 1]) == 0:
        return CORRUPT
    if check_crc and zlib.crc32(buf[body_at : body_at + body_len]) & 0x7FFFFFFF != crc:
        return CORRUPT
    if not decode:
        return int(total)
    try:
        topic = buf[topic_at:p].decode()
        props = string_to_properties(buf[p + 2 : end].decode()) if props_len else {}
    except UnicodeDecodeError:
        return CORRUPT
    return request_from_properties(
        topic, queue_id, phys, total, store_ts, queue_offset, sys_flag, prepared, props,
        delay_levels_ms,
    )  # fmt: skip


_KEY = struct.Struct(">12xi4xq8xi")  # QUEUEID @12, QUEUEOFFSET @20, SYSFLAG @36


def record_key(buf: Buf, pos: int) -> tuple[str, int, int, int]:
    """(topic, queue id, queue offset, sysFlag) of a record ``check_record`` has validated."""
    queue_id, queue_offset, sys_flag = _KEY.unpack_from(buf, pos)
    rest = _REST[(sys_flag >> 4) & 3]
    body_len = rest.unpack_from(buf, pos + 48)[3]
    topic_at = pos + 48 + rest.size + body_len + 1
    topic = buf[topic_at : topic_at + buf[topic_at - 1]].decode()
    return topic, queue_id, queue_offset, sys_flag
