"""The stored message record (reference §4): codec, properties string, sysFlag bits, batches.

One record layout serves the commit log, pull/query bodies, VIEW_MESSAGE_BY_ID and HA, so this
module is the single codec for all of them.  Everything is big-endian (§0).  The store's append
hot path packs records itself (storage/commitlog.py) with the same layout constants defined here.
"""

from __future__ import annotations

import operator
import struct
import zlib
from collections.abc import Iterable
from typing import Final

import attrs

from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.msgid import create_offset_msg_id, format_host, parse_host

MESSAGE_MAGIC_CODE = -626843481  # 0xDAA320A7
BLANK_MAGIC_CODE = -875286124  # 0xCBD43194

NAME_VALUE_SEPARATOR = "\x01"
PROPERTY_SEPARATOR = "\x02"

MAX_TOPIC_LENGTH = 127  # TOPICLEN is one signed byte
MAX_PROPERTIES_LENGTH = 32767  # PROPERTIESLEN is a signed short


class MessageConst:
    """Property keys (reference §4.5); attribute name = the key string on the wire."""

    KEYS: Final = "KEYS"
    TAGS: Final = "TAGS"
    WAIT: Final = "WAIT"
    DELAY: Final = "DELAY"
    RETRY_TOPIC: Final = "RETRY_TOPIC"
    REAL_TOPIC: Final = "REAL_TOPIC"
    REAL_QID: Final = "REAL_QID"
    TRAN_MSG: Final = "TRAN_MSG"
    PGROUP: Final = "PGROUP"
    MIN_OFFSET: Final = "MIN_OFFSET"
    MAX_OFFSET: Final = "MAX_OFFSET"
    BUYER_ID: Final = "BUYER_ID"
    ORIGIN_MESSAGE_ID: Final = "ORIGIN_MESSAGE_ID"
    TRANSFER_FLAG: Final = "TRANSFER_FLAG"
    CORRECTION_FLAG: Final = "CORRECTION_FLAG"
    MQ2_FLAG: Final = "MQ2_FLAG"
    RECONSUME_TIME: Final = "RECONSUME_TIME"
    MSG_REGION: Final = "MSG_REGION"
    TRACE_ON: Final = "TRACE_ON"
    UNIQ_KEY: Final = "UNIQ_KEY"
    MAX_RECONSUME_TIMES: Final = "MAX_RECONSUME_TIMES"
    CONSUME_START_TIME: Final = "CONSUME_START_TIME"
    TRAN_PREPARED_QUEUE_OFFSET: Final = "TRAN_PREPARED_QUEUE_OFFSET"
    TRANSACTION_CHECK_TIMES: Final = "TRANSACTION_CHECK_TIMES"
    CHECK_IMMUNITY_TIME_IN_SECONDS: Final = "CHECK_IMMUNITY_TIME_IN_SECONDS"
    INSTANCE_ID: Final = "INSTANCE_ID"
    CORRELATION_ID: Final = "CORRELATION_ID"
    REPLY_TO_CLIENT: Final = "REPLY_TO_CLIENT"
    TTL: Final = "TTL"
    ARRIVE_TIME: Final = "ARRIVE_TIME"
    PUSH_REPLY_TIME: Final = "PUSH_REPLY_TIME"
    CLUSTER: Final = "CLUSTER"
    MSG_TYPE: Final = "MSG_TYPE"
    INNER_MULTI_DISPATCH: Final = "INNER_MULTI_DISPATCH"
    INNER_MULTI_QUEUE_OFFSET: Final = "INNER_MULTI_QUEUE_OFFSET"
    SHARDINGKEY: Final = "__SHARDINGKEY"
    TRANSACTION_ID: Final = "__transactionId__"

    KEY_SEPARATOR: Final = " "


class MessageSysFlag:
    """sysFlag bits (reference §4.3)."""

    COMPRESSED: Final = 0x1
    MULTI_TAGS: Final = 0x2
    TRANSACTION_NOT_TYPE: Final = 0x0
    TRANSACTION_PREPARED: Final = 0x4
    TRANSACTION_COMMIT: Final = 0x8
    TRANSACTION_ROLLBACK: Final = 0xC
    TRANSACTION_MASK: Final = 0xC
    BORNHOST_V6: Final = 0x10
    STOREHOST_V6: Final = 0x20
    NEED_UNWRAP: Final = 0x40
    INNER_BATCH: Final = 0x80
    COMPRESSION_TYPE_MASK: Final = 0x700
    COMPRESSION_LZ4: Final = 0x100
    COMPRESSION_ZSTD: Final = 0x200
    COMPRESSION_ZLIB: Final = 0x300


def transaction_type(sys_flag: int) -> int:
    """One of MessageSysFlag.TRANSACTION_* (NOT_TYPE, PREPARED, COMMIT, ROLLBACK)."""
    return sys_flag & MessageSysFlag.TRANSACTION_MASK


def reset_transaction(sys_flag: int, kind: int) -> int:
    return (sys_flag & ~MessageSysFlag.TRANSACTION_MASK) | kind


# ---------------------------------------------------------------- properties string (§4.4)


def properties_to_string(properties: dict[str, str]) -> str:
    """``name\\x01value\\x02...`` without the trailing ``\\x02``; insertion order is kept."""
    return PROPERTY_SEPARATOR.join(map(NAME_VALUE_SEPARATOR.join, properties.items()))


def string_to_properties(text: str) -> dict[str, str]:
    """Java's ``MessageDecoder.string2messageProperties``: lenient, drops malformed segments."""
    result: dict[str, str] = {}
    if not text:
        return result
    for segment in text.split(PROPERTY_SEPARATOR):
        # a segment counts when both sides of its first separator are non-empty (then it has
        # at least 3 characters, Java's other condition); partition is half the cost of find
        name, _, value = segment.partition(NAME_VALUE_SEPARATOR)
        if name and value:
            result[name] = value
    return result


# ---------------------------------------------------------------- hashes


_POW31 = [pow(31, k, 1 << 32) for k in range(512)]  # 31**k mod 2**32


def java_hash(s: str) -> int:
    """Java ``String.hashCode()``: 31-polynomial over UTF-16 code units, 32-bit signed.

    Evaluated as sum(unit[n-1-k] * 31**k): ``map`` over reversed units keeps the loop in C,
    which matters because reput hashes every UNIQ_KEY and KEYS token.
    """
    if s.isascii():
        units: bytes | tuple[int, ...] = s.encode("ascii")[::-1]
    else:
        raw = s.encode("utf-16-be")
        units = struct.unpack(f">{len(raw) // 2}H", raw)[::-1]
    if len(units) <= len(_POW31):
        h: int = sum(map(operator.mul, units, _POW31)) & 0xFFFFFFFF
    else:
        h = 0
        for unit in reversed(units):
            h = (31 * h + unit) & 0xFFFFFFFF
    return h - 0x100000000 if h & 0x80000000 else h


def tags_code(tags: str | None) -> int:
    """Consume-queue tag hash (``tagsString2tagsCode``): 0 for no tag."""
    if not tags:
        return 0
    return java_hash(tags)


def body_crc(body: bytes | memoryview) -> int:
    """``UtilAll.crc32(body) & 0x7FFFFFFF`` as stored in BODYCRC."""
    return zlib.crc32(body) & 0x7FFFFFFF


# ---------------------------------------------------------------- host addresses


def host_sys_flag(born_host: str, store_host: str) -> int:
    """The BORNHOST_V6 / STOREHOST_V6 bits implied by the two host strings."""
    flag = 0
    if ":" in born_host.rpartition(":")[0]:
        flag |= MessageSysFlag.BORNHOST_V6
    if ":" in store_host.rpartition(":")[0]:
        flag |= MessageSysFlag.STOREHOST_V6
    return flag


# ---------------------------------------------------------------- the record (§4.1)

# TOTALSIZE MAGIC BODYCRC QUEUEID FLAG QUEUEOFFSET PHYSICALOFFSET SYSFLAG BORNTIMESTAMP
_HEAD = struct.Struct(">iiiiiqqiq")
_HOST4 = struct.Struct(">4si")
_HOST6 = struct.Struct(">16si")
_TS = struct.Struct(">q")
_TAIL = struct.Struct(">iqi")  # RECONSUMETIMES PREPARED_TX_OFFSET BODYLEN
_INT = struct.Struct(">i")
_SHORT = struct.Struct(">h")
_BYTE = struct.Struct(">b")

HEAD_SIZE = _HEAD.size  # 48
QUEUE_OFFSET_POS = 20
PHYSICAL_OFFSET_POS = 28
SYS_FLAG_POS = 36
BORN_HOST_POS = 48


def record_size(body_len: int, topic_len: int, props_len: int, sys_flag: int = 0) -> int:
    """``calMsgLength``: the TOTALSIZE of a record with these field lengths."""
    born = 20 if sys_flag & MessageSysFlag.BORNHOST_V6 else 8
    store = 20 if sys_flag & MessageSysFlag.STOREHOST_V6 else 8
    return (
        4
        + 4
        + 4
        + 4
        + 4
        + 8
        + 8
        + 4
        + 8
        + born
        + 8
        + store
        + 4
        + 8
        + 4
        + body_len
        + 1
        + topic_len
        + 2
        + props_len
    )


def store_timestamp_pos(sys_flag: int) -> int:
    return 68 if sys_flag & MessageSysFlag.BORNHOST_V6 else 56


@attrs.define(eq=True)
class MessageExt:
    """A stored message as decoded from (or encoded into) one record."""

    topic: str
    body: bytes
    queue_id: int = 0
    flag: int = 0
    properties: dict[str, str] = attrs.Factory(dict)
    sys_flag: int = 0
    born_timestamp: int = 0
    born_host: str = "127.0.0.1:0"
    store_timestamp: int = 0
    store_host: str = "127.0.0.1:0"
    reconsume_times: int = 0
    prepared_transaction_offset: int = 0
    queue_offset: int = 0
    commit_log_offset: int = 0
    body_crc: int = 0
    store_size: int = 0

    @property
    def msg_id(self) -> str:
        """The offset message id (store host + commit-log offset, §4.6)."""
        return create_offset_msg_id(self.store_host, self.commit_log_offset)

    @property
    def tags(self) -> str | None:
        """The TAGS property (what subscriptions filter on), or None."""
        return self.properties.get(MessageConst.TAGS)

    @property
    def keys(self) -> list[str]:
        """The KEYS property split on spaces (what queryMsgByKey finds)."""
        text = self.properties.get(MessageConst.KEYS, "")
        return [k for k in text.split(MessageConst.KEY_SEPARATOR) if k]

    @property
    def uniq_key(self) -> str | None:
        """The producer's message id (UNIQ_KEY), or None for a message sent without one."""
        return self.properties.get(MessageConst.UNIQ_KEY)


def encode_record(msg: MessageExt) -> bytes:
    """The stored bytes of ``msg`` (§4.1); BODYCRC, TOTALSIZE and the host bits are computed."""
    topic = msg.topic.encode()
    if len(topic) > MAX_TOPIC_LENGTH:
        raise LocalProtocolError(f"topic of {len(topic)} bytes exceeds {MAX_TOPIC_LENGTH}")
    props = properties_to_string(msg.properties).encode()
    if len(props) > MAX_PROPERTIES_LENGTH:
        raise LocalProtocolError(f"properties of {len(props)} bytes exceed {MAX_PROPERTIES_LENGTH}")
    sys_flag = (
        msg.sys_flag & ~(MessageSysFlag.BORNHOST_V6 | MessageSysFlag.STOREHOST_V6)
    ) | host_sys_flag(msg.born_host, msg.store_host)
    born_ip, born_port = parse_host(msg.born_host)
    store_ip, store_port = parse_host(msg.store_host)
    body = msg.body
    total = record_size(len(body), len(topic), len(props), sys_flag)
    out = bytearray(total)
    _HEAD.pack_into(
        out,
        0,
        total,
        MESSAGE_MAGIC_CODE,
        body_crc(body),
        msg.queue_id,
        msg.flag,
        msg.queue_offset,
        msg.commit_log_offset,
        sys_flag,
        msg.born_timestamp,
    )
    pos = HEAD_SIZE
    host = _HOST6 if len(born_ip) == 16 else _HOST4
    host.pack_into(out, pos, born_ip, born_port)
    pos += host.size
    _TS.pack_into(out, pos, msg.store_timestamp)
    pos += 8
    host = _HOST6 if len(store_ip) == 16 else _HOST4
    host.pack_into(out, pos, store_ip, store_port)
    pos += host.size
    _TAIL.pack_into(out, pos, msg.reconsume_times, msg.prepared_transaction_offset, len(body))
    pos += _TAIL.size
    out[pos : pos + len(body)] = body
    pos += len(body)
    out[pos] = len(topic)
    out[pos + 1 : pos + 1 + len(topic)] = topic
    pos += 1 + len(topic)
    _SHORT.pack_into(out, pos, len(props))
    out[pos + 2 :] = props
    return bytes(out)


def peek_record(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """(TOTALSIZE, MAGICCODE) at ``pos``; raises RemoteProtocolError if fewer than 8 bytes."""
    if len(buf) - pos < 8:
        raise RemoteProtocolError(f"record header truncated at {pos}")
    size, magic = struct.unpack_from(">ii", buf, pos)
    return size, magic


def decode_record(
    buf: bytes | bytearray | memoryview, pos: int = 0, *, check_crc: bool = False
) -> MessageExt:
    """Decode the record at ``pos``; RemoteProtocolError on anything that is not a whole record."""
    end_of_buf = len(buf)
    if end_of_buf - pos < HEAD_SIZE:
        raise RemoteProtocolError(f"record at {pos} truncated: {end_of_buf - pos} bytes")
    (
        total,
        magic,
        crc,
        queue_id,
        flag,
        queue_offset,
        phys_offset,
        sys_flag,
        born_ts,
    ) = _HEAD.unpack_from(buf, pos)
    if magic != MESSAGE_MAGIC_CODE:
        raise RemoteProtocolError(f"bad magic code {magic & 0xFFFFFFFF:#010x} at {pos}")
    if total < record_size(0, 0, 0, sys_flag) or total > end_of_buf - pos:
        raise RemoteProtocolError(f"record at {pos} has bad TOTALSIZE {total}")
    end = pos + total
    try:
        p = pos + HEAD_SIZE
        host = _HOST6 if sys_flag & MessageSysFlag.BORNHOST_V6 else _HOST4
        born_ip, born_port = host.unpack_from(buf, p)
        p += host.size
        (store_ts,) = _TS.unpack_from(buf, p)
        p += 8
        host = _HOST6 if sys_flag & MessageSysFlag.STOREHOST_V6 else _HOST4
        store_ip, store_port = host.unpack_from(buf, p)
        p += host.size
        reconsume, prepared, body_len = _TAIL.unpack_from(buf, p)
        p += _TAIL.size
        if body_len < 0 or p + body_len + 3 > end:
            raise RemoteProtocolError(f"record at {pos}: BODYLEN {body_len} out of range")
        body = bytes(buf[p : p + body_len])
        p += body_len
        topic_len = buf[p]
        if topic_len > MAX_TOPIC_LENGTH or p + 1 + topic_len + 2 > end:
            raise RemoteProtocolError(f"record at {pos}: TOPICLEN {topic_len} out of range")
        topic = bytes(buf[p + 1 : p + 1 + topic_len]).decode()
        p += 1 + topic_len
        (props_len,) = _SHORT.unpack_from(buf, p)
        p += 2
        if props_len < 0 or p + props_len != end:
            raise RemoteProtocolError(f"record at {pos}: lengths do not add up to TOTALSIZE")
        props = string_to_properties(bytes(buf[p:end]).decode()) if props_len else {}
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"record at {pos}: invalid UTF-8 ({exc})") from None
    except struct.error as exc:
        raise RemoteProtocolError(f"record at {pos} truncated ({exc})") from None
    if check_crc and body_crc(body) != crc:
        raise RemoteProtocolError(f"record at {pos}: body CRC mismatch")
    return MessageExt(
        topic=topic,
        body=body,
        queue_id=queue_id,
        flag=flag,
        properties=props,
        sys_flag=sys_flag,
        born_timestamp=born_ts,
        born_host=format_host(born_ip, born_port),
        store_timestamp=store_ts,
        store_host=format_host(store_ip, store_port),
        reconsume_times=reconsume,
        prepared_transaction_offset=prepared,
        queue_offset=queue_offset,
        commit_log_offset=phys_offset,
        body_crc=crc,
        store_size=total,
    )


# Every fixed field of a record whose two hosts are IPv4, each host as its raw 8 bytes (the
# cache key of its text form): one unpack instead of five on the pull path.
_FIXED_V4 = struct.Struct(">iiiiiqqiq8sq8siqi")
_FIXED_V4_SIZE = _FIXED_V4.size  # 88
_HOSTS_V6 = MessageSysFlag.BORNHOST_V6 | MessageSysFlag.STOREHOST_V6


def _format_raw_host(raw: bytes) -> str:
    return format_host(raw[:4], int.from_bytes(raw[4:], "big", signed=True))


def decode_records(
    body: bytes | bytearray | memoryview, *, check_crc: bool = False
) -> list[MessageExt]:
    """All records of a pull/query body (plain concatenation); strict: garbage raises.

    The result is what ``decode_record`` gives record by record.  A consumer decodes every
    message it receives here, so the usual record (IPv4 hosts, intact) is decoded inline with
    one unpack, the host strings formatted once per body; any other record (IPv6 hosts, or
    damage) goes through ``decode_record``, which decodes it or says what is wrong.
    """
    buf = body if type(body) is bytes else bytes(body)
    unpack = _FIXED_V4.unpack_from
    hosts: dict[bytes, str] = {}
    out: list[MessageExt] = []
    append = out.append
    pos = 0
    end = len(buf)
    while pos < end:
        if end - pos >= _FIXED_V4_SIZE:
            (
                total,
                magic,
                crc,
                queue_id,
                flag,
                queue_offset,
                phys_offset,
                sys_flag,
                born_ts,
                born_raw,
                store_ts,
                store_raw,
                reconsume,
                prepared,
                body_len,
            ) = unpack(buf, pos)
            p = pos + _FIXED_V4_SIZE
            q = p + body_len  # TOPICLEN
            nxt = pos + total
            if (
                magic == MESSAGE_MAGIC_CODE
                and not sys_flag & _HOSTS_V6
                and body_len >= 0
                and q + 3 <= nxt <= end
            ):
                r = q + 1 + buf[q]  # PROPERTIESLEN
                props_len = nxt - r - 2  # what TOTALSIZE leaves for them
                if (
                    buf[q] <= MAX_TOPIC_LENGTH
                    and 0 <= props_len <= MAX_PROPERTIES_LENGTH
                    and (buf[r] << 8) | buf[r + 1] == props_len
                ):
                    msg_body = buf[p:q]
                    if check_crc and body_crc(msg_body) != crc:
                        raise RemoteProtocolError(f"record at {pos}: body CRC mismatch")
                    born = hosts.get(born_raw)
                    if born is None:
                        born = hosts[born_raw] = _format_raw_host(born_raw)
                    store = hosts.get(store_raw)
                    if store is None:
                        store = hosts[store_raw] = _format_raw_host(store_raw)
                    props: dict[str, str] = {}
                    try:
                        topic = buf[q + 1 : r].decode()
                        if props_len:
                            # string_to_properties, inline: this loop runs for every message
                            for segment in buf[r + 2 : nxt].decode().split(PROPERTY_SEPARATOR):
                                name, _, value = segment.partition(NAME_VALUE_SEPARATOR)
                                if name and value:
                                    props[name] = value
                    except UnicodeDecodeError:
                        pass  # decode_record below raises the error
                    else:
                        append(
                            MessageExt(
                                topic,
                                msg_body,
                                queue_id,
                                flag,
                                props,
                                sys_flag,
                                born_ts,
                                born,
                                store_ts,
                                store,
                                reconsume,
                                prepared,
                                queue_offset,
                                phys_offset,
                                crc,
                                total,
                            )
                        )
                        pos = nxt
                        continue
        msg = decode_record(buf, pos, check_crc=check_crc)
        append(msg)
        pos += msg.store_size
    return out


# ---------------------------------------------------------------- batches (§4.8)


@attrs.frozen
class BatchEntry:
    """One message of a SEND_BATCH_MESSAGE body."""

    body: bytes
    flag: int = 0
    properties: dict[str, str] = attrs.Factory(dict)


_BATCH_HEAD = struct.Struct(">iiiii")  # TOTALSIZE MAGIC BODYCRC FLAG BODYLEN


def encode_batch(entries: Iterable[BatchEntry]) -> bytes:
    parts: list[bytes] = []
    for entry in entries:
        props = properties_to_string(entry.properties).encode()
        if len(props) > MAX_PROPERTIES_LENGTH:
            raise LocalProtocolError(f"batch entry properties of {len(props)} bytes too long")
        total = _BATCH_HEAD.size + len(entry.body) + 2 + len(props)
        parts.append(_BATCH_HEAD.pack(total, 0, 0, entry.flag, len(entry.body)))
        parts.append(entry.body)
        parts.append(_SHORT.pack(len(props)))
        parts.append(props)
    return b"".join(parts)


def decode_batch(body: bytes | bytearray | memoryview) -> list[BatchEntry]:
    return [
        BatchEntry(body=entry_body, flag=flag, properties=string_to_properties(props.decode()))
        for flag, entry_body, props in decode_batch_raw(body, b"")
    ]


# (flag, body, stored properties) of one batch entry
RawBatchEntry = tuple[int, bytes, bytes]


def decode_batch_raw(body: bytes | bytearray | memoryview, appended: bytes) -> list[RawBatchEntry]:
    """Entries of a batch body, each entry's properties bytes followed by ``appended``.

    The broker never needs an entry's properties as a dictionary: it stores the entry's own
    bytes, a separator and the batch's properties (``CLUSTER`` included), as Java's
    MessageExtBatchEncoder concatenates them in 4.9.8 (the separator only when the entry's
    properties are not empty and do not end with one; 4.9.1 never inserted it).
    RemoteProtocolError for an entry whose lengths do not add up, whose properties are not
    UTF-8 (reput could not read them back) or grow past PROPERTIESLEN's limit.
    """
    out: list[RawBatchEntry] = []
    view = memoryview(body)
    pos = 0
    end = len(view)
    while pos < end:
        if end - pos < _BATCH_HEAD.size + 2:
            raise RemoteProtocolError(f"batch entry at {pos} truncated")
        total, _magic, _crc, flag, body_len = _BATCH_HEAD.unpack_from(view, pos)
        p = pos + _BATCH_HEAD.size
        if body_len < 0 or p + body_len + 2 > end:
            raise RemoteProtocolError(f"batch entry at {pos}: BODYLEN {body_len} out of range")
        entry_body = view[p : p + body_len].tobytes()
        p += body_len
        (props_len,) = _SHORT.unpack_from(view, p)
        p += 2
        if props_len < 0 or p + props_len > end:
            raise RemoteProtocolError(f"batch entry at {pos}: PROPERTIESLEN out of range")
        if p + props_len - pos != total:
            raise RemoteProtocolError(f"batch entry at {pos}: TOTALSIZE {total} does not match")
        own = view[p : p + props_len].tobytes()
        try:
            own.decode()
        except UnicodeDecodeError:
            raise RemoteProtocolError(f"batch entry at {pos}: invalid UTF-8") from None
        sep = b"\x02" if own and appended and own[-1] != 0x02 else b""
        props = own + sep + appended
        if len(props) > MAX_PROPERTIES_LENGTH:
            raise RemoteProtocolError(
                f"batch entry at {pos}: {len(props)} bytes of properties exceed "
                f"{MAX_PROPERTIES_LENGTH}"
            )
        out.append((flag, entry_body, props))
        pos = p + props_len
    return out


def has_property(properties: bytes, name: str) -> bool:
    """Whether ``name`` is a key of an encoded properties string."""
    key = name.encode() + b"\x01"
    return properties.startswith(key) or b"\x02" + key in properties


_DELAY_KEY = b"DELAY\x01"


def batch_delayed(entries: list[RawBatchEntry]) -> bool:
    """Whether any entry asks for a delay level (batches cannot be delayed)."""
    # a substring search first: it rules out nearly every entry at C speed
    return any(
        _DELAY_KEY in props and has_property(props, MessageConst.DELAY) for _, _, props in entries
    )


# ---------------------------------------------------------------- compression (§4.9)

COMPRESS_LEVEL = 5


def compress(body: bytes) -> bytes:
    """zlib at level 5 with a zlib header, as java.util.zip.Deflater does for RocketMQ."""
    return zlib.compress(body, COMPRESS_LEVEL)


def maybe_decompress(body: bytes, sys_flag: int) -> bytes:
    """The user body: decompressed when COMPRESSED is set (zlib only; LZ4/zstd are refused)."""
    if not sys_flag & MessageSysFlag.COMPRESSED:
        return body
    kind = sys_flag & MessageSysFlag.COMPRESSION_TYPE_MASK
    if kind not in (0, MessageSysFlag.COMPRESSION_ZLIB):
        raise RemoteProtocolError(f"unsupported compression type {kind >> 8}")
    try:
        return zlib.decompress(body)
    except zlib.error as exc:
        raise RemoteProtocolError(f"corrupt compressed body: {exc}") from None
