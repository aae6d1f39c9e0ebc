"""Send-side headers (reference §3.2.1-3.2.3, §3.2.6).

``SendMessageRequestHeaderV2`` is the same header with one-letter keys (``a``..``n``); the
broker handles V1 only and converts with :meth:`SendMessageRequestHeaderV2.to_v1`, or with
:func:`decode_send_v2`, the hot path's decoder straight from the extFields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from protocol.convert import Int32, decode_header, utf8_encodable, wire


@attrs.frozen(kw_only=True)
class SendMessageRequestHeader:
    producer_group: str
    topic: str
    default_topic: str
    default_topic_queue_nums: Int32
    queue_id: Int32
    sys_flag: Int32
    born_timestamp: int
    flag: Int32
    properties: str | None = None
    reconsume_times: Int32 | None = None
    unit_mode: bool = False
    batch: bool = False
    max_reconsume_times: Int32 | None = None
    bname: str | None = None

    def to_v2(self) -> SendMessageRequestHeaderV2:
        return SendMessageRequestHeaderV2(**_send_fields(self))


@attrs.frozen(kw_only=True)
class SendMessageRequestHeaderV2:
    """Codes 310/320/325; C++ clients send 310 for batches too, with ``m`` true."""

    producer_group: str = attrs.field(metadata=wire("a"))
    topic: str = attrs.field(metadata=wire("b"))
    default_topic: str = attrs.field(metadata=wire("c"))
    default_topic_queue_nums: Int32 = attrs.field(metadata=wire("d"))
    queue_id: Int32 = attrs.field(metadata=wire("e"))
    sys_flag: Int32 = attrs.field(metadata=wire("f"))
    born_timestamp: int = attrs.field(metadata=wire("g"))
    flag: Int32 = attrs.field(metadata=wire("h"))
    properties: str | None = attrs.field(default=None, metadata=wire("i"))
    reconsume_times: Int32 | None = attrs.field(default=None, metadata=wire("j"))
    unit_mode: bool = attrs.field(default=False, metadata=wire("k"))
    max_reconsume_times: Int32 | None = attrs.field(default=None, metadata=wire("l"))
    batch: bool = attrs.field(default=False, metadata=wire("m"))
    bname: str | None = attrs.field(default=None, metadata=wire("n"))

    def to_v1(self) -> SendMessageRequestHeader:
        return SendMessageRequestHeader(**_send_fields(self))


def _send_fields(h: SendMessageRequestHeader | SendMessageRequestHeaderV2) -> dict[str, Any]:
    # Spelled out: attrs.asdict costs several microseconds and this runs on every V2 send.
    return {
        "producer_group": h.producer_group,
        "topic": h.topic,
        "default_topic": h.default_topic,
        "default_topic_queue_nums": h.default_topic_queue_nums,
        "queue_id": h.queue_id,
        "sys_flag": h.sys_flag,
        "born_timestamp": h.born_timestamp,
        "flag": h.flag,
        "properties": h.properties,
        "reconsume_times": h.reconsume_times,
        "unit_mode": h.unit_mode,
        "batch": h.batch,
        "max_reconsume_times": h.max_reconsume_times,
        "bname": h.bname,
    }


_BOOLS = {"true": True, "false": False, "1": True, "0": False}


class _Slow(Exception):
    """The fast decoder met something unusual: the cattrs path decides (and explains)."""


_ABSENT: Any = object()


def _int(value: object) -> int:
    # Up to 9 digits always fits a Java int; anything longer is range-checked on the slow path.
    if type(value) is str and len(value) < 10 and value.isdigit():
        return int(value)
    raise _Slow


def _long(value: object) -> int:
    if type(value) is str and len(value) < 19 and value.isdigit():
        return int(value)
    raise _Slow


def _opt_int(value: object) -> int | None:
    if value is _ABSENT or value == "":
        return None
    return _int(value)


def _opt_str(value: object) -> str | None:
    if value is _ABSENT:
        return None
    if type(value) is str and (value.isascii() or utf8_encodable(value)):
        return value
    raise _Slow


def _bool(value: object) -> bool:
    if value is _ABSENT:
        return False
    result = _BOOLS.get(value) if type(value) is str else None
    if result is None:
        raise _Slow
    return result


def decode_send_v2(ext: Mapping[str, str]) -> SendMessageRequestHeader:
    """``decode_header(SendMessageRequestHeaderV2, ext).to_v1()``, a few times faster.

    Every send pays this decode.  The common shape (plain strings, unsigned decimal numbers,
    lower-case booleans) is read here; anything else (a missing or non-string value, a sign,
    ``"TRUE"``, a malformed number) goes to the cattrs path, which returns the same header or
    raises the same HeaderFieldError.
    """
    get = ext.get
    try:
        group = get("a", _ABSENT)
        topic = get("b", _ABSENT)
        default_topic = get("c", _ABSENT)
        if type(group) is not str or type(topic) is not str or type(default_topic) is not str:
            raise _Slow
        if not (group.isascii() and topic.isascii() and default_topic.isascii()):
            raise _Slow  # rare (topic names are ASCII); the slow path refuses lone surrogates
        return SendMessageRequestHeader(
            producer_group=group,
            topic=topic,
            default_topic=default_topic,
            default_topic_queue_nums=_int(get("d", _ABSENT)),
            queue_id=_int(get("e", _ABSENT)),
            sys_flag=_int(get("f", _ABSENT)),
            born_timestamp=_long(get("g", _ABSENT)),
            flag=_int(get("h", _ABSENT)),
            properties=_opt_str(get("i", _ABSENT)),
            reconsume_times=_opt_int(get("j", _ABSENT)),
            unit_mode=_bool(get("k", _ABSENT)),
            batch=_bool(get("m", _ABSENT)),
            max_reconsume_times=_opt_int(get("l", _ABSENT)),
            bname=_opt_str(get("n", _ABSENT)),
        )
    except (_Slow, ValueError):  # ValueError: a non-ASCII digit int() refuses
        return decode_header(SendMessageRequestHeaderV2, ext).to_v1()


@attrs.frozen(kw_only=True)
class SendMessageResponseHeader:
    """``msg_region``/``trace_on`` are the extra ext keys the broker adds to every send reply."""

    msg_id: str
    queue_id: Int32
    queue_offset: int
    transaction_id: str | None = None
    msg_region: str | None = attrs.field(default=None, metadata=wire("MSG_REGION"))
    trace_on: bool | None = attrs.field(default=None, metadata=wire("TRACE_ON"))


@attrs.frozen(kw_only=True)
class ConsumerSendMsgBackRequestHeader:
    offset: int  # commit-log offset of the message that failed
    group: str
    delay_level: Int32
    origin_msg_id: str | None = None
    origin_topic: str | None = None
    unit_mode: bool = False
    max_reconsume_times: Int32 | None = None
    bname: str | None = None


@attrs.frozen(kw_only=True)
class ReplyMessageRequestHeader:
    producer_group: str
    topic: str
    default_topic: str
    default_topic_queue_nums: Int32
    queue_id: Int32
    sys_flag: Int32
    born_timestamp: int
    flag: Int32
    born_host: str
    store_host: str
    store_timestamp: int
    properties: str | None = None
    reconsume_times: Int32 | None = None
    unit_mode: bool = False
