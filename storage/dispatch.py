"""Parse-and-validate one commit-log record (``checkMessageAndReturnSize``): recovery and reput.

Reads fields straight from the mapping with ``struct.unpack_from``; only what the consume queue,
the index and long polling need is decoded.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import attrs

from protocol.message import (
    BLANK_MAGIC_CODE,
    MESSAGE_MAGIC_CODE,
    MessageConst,
    MessageSysFlag,
    string_to_properties,
    tags_code,
)

SCHEDULE_TOPIC = "SCHEDULE_TOPIC_XXXX"

# outcomes other than a DispatchRequest
BLANK = -1  # end-of-file filler: continue in the next file
END = -2  # zero area: no more data
CORRUPT = -3  # bad magic, sizes that do not add up, CRC mismatch

_HEAD = struct.Struct(">iiiiiqqiq")  # ... BORNTIMESTAMP; BORNHOST follows at 48
_PAIR = struct.Struct(">ii")
_TS = struct.Struct(">q")
_TAIL = struct.Struct(">iqi")  # RECONSUMETIMES PREPARED_TX_OFFSET BODYLEN
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
    properties: dict[str, str]

    @property
    def keys(self) -> str:
        return self.properties.get(MessageConst.KEYS, "")

    @property
    def uniq_key(self) -> str | None:
        return self.properties.get(MessageConst.UNIQ_KEY)


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
    buf: object,
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
    if limit - pos < 8:
        return END
    total, magic = _PAIR.unpack_from(buf, pos)  # type: ignore[arg-type]
    if magic == BLANK_MAGIC_CODE:
        return BLANK
    if magic != MESSAGE_MAGIC_CODE:
        return END if total == 0 and magic == 0 else CORRUPT
    if total < _MIN_RECORD or total > limit - pos:
        return CORRUPT
    (_, _, crc, queue_id, _flag, queue_offset, phys, sys_flag, _born) = _HEAD.unpack_from(
        buf,  # type: ignore[arg-type]
        pos,
    )
    if phys != base_offset + pos:
        return CORRUPT
    p = pos + 48 + (20 if sys_flag & MessageSysFlag.BORNHOST_V6 else 8)
    (store_ts,) = _TS.unpack_from(buf, p)  # type: ignore[arg-type]
    p += 8 + (20 if sys_flag & MessageSysFlag.STOREHOST_V6 else 8)
    end = pos + total
    if p + 16 + 3 > end:
        return CORRUPT
    _reconsume, prepared, body_len = _TAIL.unpack_from(buf, p)  # type: ignore[arg-type]
    p += 16
    if body_len < 0 or p + body_len + 3 > end:
        return CORRUPT
    body_at = p
    p += body_len
    mv = memoryview(buf)  # type: ignore[arg-type]
    try:
        topic_len = mv[p]
        if p + 1 + topic_len + 2 > end:
            return CORRUPT
        topic_at = p + 1
        p = topic_at + topic_len
        (props_len,) = _SHORT.unpack_from(mv, p)
        if props_len < 0 or p + 2 + props_len != end or topic_len == 0:
            return CORRUPT
        # the store refuses topics and properties ending in NUL, so a zero last byte means a
        # tail that was never written (the body CRC does not cover topic and properties)
        if (mv[end - 1] if props_len else mv[p - 1]) == 0:
            return CORRUPT
        if check_crc and zlib.crc32(mv[body_at : body_at + body_len]) & 0x7FFFFFFF != crc:
            return CORRUPT
        if not decode:
            return int(total)
        try:
            topic = str(mv[topic_at : topic_at + topic_len], "utf-8")
            props = string_to_properties(str(mv[p + 2 : end], "utf-8")) if props_len else {}
        except UnicodeDecodeError:
            return CORRUPT
    finally:
        mv.release()
    if topic == SCHEDULE_TOPIC:
        code = delivery_tags_code(store_ts, props, delay_levels_ms)
    else:
        code = tags_code(props.get(MessageConst.TAGS))
    return DispatchRequest(
        topic=topic,
        queue_id=queue_id,
        commit_log_offset=phys,
        size=total,
        tags_code=code,
        store_timestamp=store_ts,
        queue_offset=queue_offset,
        sys_flag=sys_flag,
        prepared_transaction_offset=prepared,
        properties=props,
    )
