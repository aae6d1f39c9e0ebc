"""Queue and consumer offset headers (reference §3.2.6)."""

from __future__ import annotations

import attrs

from protocol.convert import Int32


@attrs.frozen(kw_only=True)
class QueryConsumerOffsetRequestHeader:
    consumer_group: str
    topic: str
    queue_id: Int32
    bname: str | None = None


@attrs.frozen(kw_only=True)
class QueryConsumerOffsetResponseHeader:
    offset: int


@attrs.frozen(kw_only=True)
class UpdateConsumerOffsetRequestHeader:
    consumer_group: str
    topic: str
    queue_id: Int32
    commit_offset: int
    bname: str | None = None


@attrs.frozen(kw_only=True)
class GetMaxOffsetRequestHeader:
    topic: str
    queue_id: Int32
    bname: str | None = None


@attrs.frozen(kw_only=True)
class GetMaxOffsetResponseHeader:
    offset: int


@attrs.frozen(kw_only=True)
class GetMinOffsetRequestHeader:
    topic: str
    queue_id: Int32
    bname: str | None = None


@attrs.frozen(kw_only=True)
class GetMinOffsetResponseHeader:
    offset: int


@attrs.frozen(kw_only=True)
class SearchOffsetRequestHeader:
    topic: str
    queue_id: Int32
    timestamp: int
    bname: str | None = None


@attrs.frozen(kw_only=True)
class SearchOffsetResponseHeader:
    offset: int


@attrs.frozen(kw_only=True)
class GetEarliestMsgStoretimeRequestHeader:
    topic: str
    queue_id: Int32
    bname: str | None = None


@attrs.frozen(kw_only=True)
class GetEarliestMsgStoretimeResponseHeader:
    timestamp: int
