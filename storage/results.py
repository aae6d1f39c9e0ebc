"""What the store's API takes and returns: statuses, messages to put, results, arrivals.

Status enums on the hot path, like Java's PutMessageStatus / GetMessageStatus; mapping them to
response codes is the broker's business.
"""

from __future__ import annotations

import enum

import attrs

from protocol.msgid import create_offset_msg_id


class PutStatus(enum.Enum):
    PUT_OK = "PUT_OK"
    FLUSH_DISK_TIMEOUT = "FLUSH_DISK_TIMEOUT"
    FLUSH_SLAVE_TIMEOUT = "FLUSH_SLAVE_TIMEOUT"
    SLAVE_NOT_AVAILABLE = "SLAVE_NOT_AVAILABLE"
    SERVICE_NOT_AVAILABLE = "SERVICE_NOT_AVAILABLE"
    CREATE_MAPPED_FILE_FAILED = "CREATE_MAPPED_FILE_FAILED"
    MESSAGE_ILLEGAL = "MESSAGE_ILLEGAL"
    PROPERTIES_SIZE_EXCEEDED = "PROPERTIES_SIZE_EXCEEDED"
    OS_PAGECACHE_BUSY = "OS_PAGECACHE_BUSY"
    DISK_FULL = "DISK_FULL"
    UNKNOWN_ERROR = "UNKNOWN_ERROR"


class GetStatus(enum.Enum):
    FOUND = "FOUND"
    NO_MATCHED_MESSAGE = "NO_MATCHED_MESSAGE"
    MESSAGE_WAS_REMOVING = "MESSAGE_WAS_REMOVING"
    OFFSET_FOUND_NULL = "OFFSET_FOUND_NULL"
    OFFSET_OVERFLOW_BADLY = "OFFSET_OVERFLOW_BADLY"
    OFFSET_OVERFLOW_ONE = "OFFSET_OVERFLOW_ONE"
    OFFSET_TOO_SMALL = "OFFSET_TOO_SMALL"
    NO_MATCHED_LOGIC_QUEUE = "NO_MATCHED_LOGIC_QUEUE"
    NO_MESSAGE_IN_QUEUE = "NO_MESSAGE_IN_QUEUE"


@attrs.define(slots=True)
class MessageInner:
    """A message to store; the store fills queue offset, commit-log offset, store time and host."""

    topic: str
    queue_id: int
    body: bytes
    properties: dict[str, str] = attrs.Factory(dict)
    flag: int = 0
    sys_flag: int = 0
    born_timestamp: int = 0
    born_host: str = "127.0.0.1:0"
    reconsume_times: int = 0
    prepared_transaction_offset: int = 0


@attrs.define(slots=True)
class BatchInner:
    """A batch to store: common fields once, and per entry (flag, body, encoded properties)."""

    topic: str
    queue_id: int
    entries: list[tuple[int, bytes, bytes]]
    sys_flag: int = 0
    born_timestamp: int = 0
    born_host: str = "127.0.0.1:0"
    reconsume_times: int = 0


@attrs.define(slots=True)
class AppendResult:
    wrote_offset: int
    wrote_bytes: int
    queue_offset: int
    msg_num: int
    store_timestamp: int
    store_host: str
    record_offsets: tuple[int, ...] = ()  # batches only; a single record is at wrote_offset

    @property
    def end_offset(self) -> int:
        return self.wrote_offset + self.wrote_bytes

    @property
    def msg_ids(self) -> list[str]:
        offsets = self.record_offsets or (self.wrote_offset,)
        return [create_offset_msg_id(self.store_host, o) for o in offsets]

    @property
    def msg_id(self) -> str:
        """Comma-separated offset msg ids, as the send response's ``msgId``."""
        return ",".join(self.msg_ids)


@attrs.define(slots=True)
class PutResult:
    status: PutStatus
    append: AppendResult | None = None

    @property
    def ok(self) -> bool:
        return self.status is PutStatus.PUT_OK


@attrs.define(slots=True)
class GetResult:
    status: GetStatus
    next_begin_offset: int
    min_offset: int
    max_offset: int
    buffers: list[bytes] = attrs.Factory(list)
    suggest_pulling_from_slave: bool = False

    @property
    def message_count(self) -> int:
        return len(self.buffers)

    @property
    def buffer_total_size(self) -> int:
        return sum(len(b) for b in self.buffers)


@attrs.frozen
class QueryResult:
    records: list[bytes]
    index_last_update_timestamp: int
    index_last_update_phyoffset: int


@attrs.frozen
class Arrived:
    """A message reached its consume queue; long polling wakes on ``max_offset``."""

    topic: str
    queue_id: int
    max_offset: int  # queue offset + 1
    store_timestamp: int
    tags_code: int


@attrs.define
class RunningFlags:
    writeable: bool = True
    disk_full: bool = False
    # a consume queue could not be written (Java's LOGICS_QUEUE_ERROR): reput waits at the
    # record and the store refuses messages until a retry succeeds
    logics_error: bool = False
    index_error: bool = False
    # reput met a corrupt or missing record and skipped the rest of the log
    corrupt_log: bool = False
