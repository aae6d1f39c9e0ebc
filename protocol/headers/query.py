"""Message query headers (reference §3.2.6, §7.11)."""

from __future__ import annotations

import attrs

from protocol.convert import Int32, wire


@attrs.frozen(kw_only=True)
class QueryMessageRequestHeader:
    """``unique_key_query`` is the extra ext key ``_UNIQUE_KEY_QUERY`` riding beside the header."""

    topic: str
    key: str
    max_num: Int32
    begin_timestamp: int
    end_timestamp: int
    unique_key_query: bool | None = attrs.field(default=None, metadata=wire("_UNIQUE_KEY_QUERY"))


@attrs.frozen(kw_only=True)
class QueryMessageResponseHeader:
    index_last_update_timestamp: int
    index_last_update_phyoffset: int


@attrs.frozen(kw_only=True)
class ViewMessageRequestHeader:
    offset: int  # commit-log physical offset
