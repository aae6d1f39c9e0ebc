"""Send-side headers (reference §3.2.1-3.2.3, §3.2.6).

``SendMessageRequestHeaderV2`` is the same header with one-letter keys (``a``..``n``); the
broker handles V1 only and converts with :meth:`SendMessageRequestHeaderV2.to_v1`.
"""

from __future__ import annotations

from typing import Any

import attrs

from protocol.convert import wire


@attrs.frozen(kw_only=True)
class SendMessageRequestHeader:
    producer_group: str
    topic: str
    default_topic: str
    default_topic_queue_nums: int
    queue_id: int
    sys_flag: int
    born_timestamp: int
    flag: int
    properties: str | None = None
    reconsume_times: int | None = None
    unit_mode: bool = False
    batch: bool = False
    max_reconsume_times: int | None = None
    bname: str | None = None

    def to_v2(self) -> SendMessageRequestHeaderV2:
        return SendMessageRequestHeaderV2(**_send_fields(self))


@attrs.frozen(kw_only=True)
class SendMessageRequestHeaderV2:
    """Codes 310/320/325; C++ clients send 310 for batches too, with ``m`` true."""

    producer_group: str = attrs.field(metadata=wire("a"))
    topic: str = attrs.field(metadata=wire("b"))
    default_topic: str = attrs.field(metadata=wire("c"))
    default_topic_queue_nums: int = attrs.field(metadata=wire("d"))
    queue_id: int = attrs.field(metadata=wire("e"))
    sys_flag: int = attrs.field(metadata=wire("f"))
    born_timestamp: int = attrs.field(metadata=wire("g"))
    flag: int = attrs.field(metadata=wire("h"))
    properties: str | None = attrs.field(default=None, metadata=wire("i"))
    reconsume_times: int | None = attrs.field(default=None, metadata=wire("j"))
    unit_mode: bool = attrs.field(default=False, metadata=wire("k"))
    max_reconsume_times: int | None = attrs.field(default=None, metadata=wire("l"))
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


@attrs.frozen(kw_only=True)
class SendMessageResponseHeader:
    """``msg_region``/``trace_on`` are the extra ext keys the broker adds to every send reply."""

    msg_id: str
    queue_id: int
    queue_offset: int
    transaction_id: str | None = None
    msg_region: str | None = attrs.field(default=None, metadata=wire("MSG_REGION"))
    trace_on: bool | None = attrs.field(default=None, metadata=wire("TRACE_ON"))


@attrs.frozen(kw_only=True)
class ConsumerSendMsgBackRequestHeader:
    offset: int  # commit-log offset of the message that failed
    group: str
    delay_level: int
    origin_msg_id: str | None = None
    origin_topic: str | None = None
    unit_mode: bool = False
    max_reconsume_times: int | None = None
    bname: str | None = None


@attrs.frozen(kw_only=True)
class ReplyMessageRequestHeader:
    producer_group: str
    topic: str
    default_topic: str
    default_topic_queue_nums: int
    queue_id: int
    sys_flag: int
    born_timestamp: int
    flag: int
    born_host: str
    store_host: str
    store_timestamp: int
    properties: str | None = None
    reconsume_times: int | None = None
    unit_mode: bool = False
